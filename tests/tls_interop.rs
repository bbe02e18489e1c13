//! RTMPS with real programs on loopback: ffmpeg publishes and plays over `rtmps://`
//! (GnuTLS underneath), rtmpdump plays over it (librtmp built with GnuTLS), and rtmp-edge
//! relays reach TLS origins as `rtmps://` for pulls, forwards and pushes. Every check is
//! on content: a player's packets must be a contiguous run of the published file's
//! (MD5 and size per packet, via ffprobe), from the first keyframe.
//!
//! Certificates are made at test time by a test CA (tests/common/tls.rs).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::interop::*;
use common::tls::*;
use common::*;
use rtmp_edge::relay::{Config, RelayHandle};
use rtmp_edge::url::RtmpUrl;

const FIXTURE: &str = "h264_aac.flv";

/// A relay that accepts RTMPS only (`--listen off`), with a certificate for localhost
/// and 127.0.0.1 issued by `ca`.
fn tls_only_relay(ca: &TestCa, dir: &TempDir, stem: &str) -> RelayHandle {
    let cert = ca.issue(dir, stem, &["localhost", "127.0.0.1"]);
    let relay = start_relay(Config { rtmp_listener: false, ..tls_config(&cert) });
    assert_eq!(Some(relay.local_addr()), relay.tls_addr(), "with listen off, the TLS listener is the address");
    relay
}

/// `rtmps://localhost:PORT/live/NAME`: the name the certificate carries, as SNI.
fn rtmps_localhost(relay: &RelayHandle, name: &str) -> String {
    format!("rtmps://localhost:{}/live/{name}", relay.tls_addr().unwrap().port())
}

fn rtmpdump_player(source: &str, out: &Path, dir: &TempDir, label: &str) -> (ChildGuard, PathBuf) {
    let rtmpdump = require_program("rtmpdump");
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(rtmpdump);
    command.args(["-r", source, "--live", "-o"]).arg(out).stdout(Stdio::null()).stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

#[test]
fn ffmpeg_publishes_and_ffmpeg_plays_over_rtmps_on_a_tls_only_relay() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("tls-ff-ff");
    let ca = TestCa::new(&dir, "test");
    let relay = tls_only_relay(&ca, &dir, "relay");
    let source = rtmps_url(relay.tls_addr().unwrap(), "s");
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "ffmpeg-player", &[]);
    wait_players(&relay, 1, "ffmpeg player over rtmps");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    let input = fixture_packets(FIXTURE);
    let output = check_output(&input, &out, &player_log, 1.0, false, "ffmpeg player over rtmps");
    let start = assert_contiguous_run(&input, &output, "video", 1, "ffmpeg player over rtmps video");
    assert_eq!(start, 0, "a player waiting from the start gets the first keyframe");
}

#[test]
fn rtmpdump_plays_over_rtmps_and_an_rtmp_player_shares_the_stream() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("tls-dump");
    let ca = TestCa::new(&dir, "test");
    let cert = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
    let relay = start_relay(tls_config(&cert));
    let tls_source = rtmps_url(relay.tls_addr().unwrap(), "s");
    let dump_out = dir.join("dump.flv");
    let plain_out = dir.join("plain.flv");
    let (mut dump, dump_log) = rtmpdump_player(&tls_source, &dump_out, &dir, "rtmpdump-rtmps");
    let (mut plain, plain_log) =
        ffmpeg_player(&ffmpeg, &live_url(relay.local_addr(), "s"), &plain_out, &dir, "ffmpeg-rtmp", &[]);
    wait_players(&relay, 2, "rtmpdump over rtmps and ffmpeg over rtmp");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &tls_source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut dump, &dump_log), (&mut plain, &plain_log)]);
    let input = fixture_packets(FIXTURE);
    check_output(&input, &dump_out, &dump_log, 1.0, false, "rtmpdump over rtmps");
    check_output(&input, &plain_out, &plain_log, 1.0, false, "ffmpeg over plain rtmp");
}

#[test]
fn an_edge_pulls_from_a_tls_only_origin_reached_as_rtmps() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("tls-edge-pull");
    let ca = TestCa::new(&dir, "test");
    let origin = tls_only_relay(&ca, &dir, "origin");
    let edge = start_relay(Config {
        origins: vec![format!("rtmps://localhost:{}", origin.tls_addr().unwrap().port())],
        tls_ca: Some(ca.pem.clone()),
        ..edge_config(&[])
    });
    let out = dir.join("edge-player.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &live_url(edge.local_addr(), "s"), &out, &dir, "edge-player", &[]);
    wait_players(&origin, 1, "the edge's pull at the origin");
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &rtmps_localhost(&origin, "s"), &dir, "publisher-to-origin", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(edge, &mut [(&mut player, &player_log)]);
    let input = fixture_packets(FIXTURE);
    check_output(&input, &out, &player_log, 1.0, false, "edge player of an rtmps origin");
    assert_eq!(origin.stats().protocol_errors, 0, "{:?}", origin.stats());
}

#[test]
fn a_forward_and_a_push_reach_tls_origins_as_rtmps() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("tls-forward-push");
    let ca = TestCa::new(&dir, "test");
    let origin = tls_only_relay(&ca, &dir, "origin");
    let target = tls_only_relay(&ca, &dir, "push-target");
    // A push URL that names a stream re-publishes that local stream (under the same name).
    let push = format!("rtmps://localhost:{}/live/s", target.tls_addr().unwrap().port());
    let edge = start_relay(Config {
        origins: vec![format!("rtmps://localhost:{}", origin.tls_addr().unwrap().port())],
        push: vec![RtmpUrl::parse(&push).unwrap()],
        tls_ca: Some(ca.pem.clone()),
        ..edge_config(&[])
    });
    let forwarded_out = dir.join("at-origin.flv");
    let pushed_out = dir.join("at-push-target.flv");
    let (mut at_origin, at_origin_log) =
        ffmpeg_player(&ffmpeg, &rtmps_localhost(&origin, "s"), &forwarded_out, &dir, "player-at-origin", &[]);
    let (mut at_target, at_target_log) = ffmpeg_player(&ffmpeg, &push, &pushed_out, &dir, "player-at-push-target", &[]);
    wait_players(&origin, 1, "player at the origin");
    wait_players(&target, 1, "player at the push target");
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(edge.local_addr(), "s"), &dir, "publisher-to-edge", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    // The edge closes its forward and push after what they queued; then the origins end
    // their players.
    shut_down_and_let_players_end(edge, &mut []);
    shut_down_and_let_players_end(origin, &mut [(&mut at_origin, &at_origin_log)]);
    shut_down_and_let_players_end(target, &mut [(&mut at_target, &at_target_log)]);
    let input = fixture_packets(FIXTURE);
    check_output(&input, &forwarded_out, &at_origin_log, 1.0, false, "player of the forward over rtmps");
    check_output(&input, &pushed_out, &at_target_log, 1.0, false, "player of the push over rtmps");
}
