//! Edge mode with real programs on loopback: nginx-rtmp (the Debian module) as origin and
//! as push target, ffmpeg as publisher and player, rtmpdump and the library's client as
//! players whose output is read raw.
//!
//! Two kinds of check, each where it can fail:
//! - ffmpeg's file by packet hashes (MD5 and size per packet, via ffprobe): a contiguous run
//!   of the published file's packets. ffmpeg's muxer clamps timestamps that go back and
//!   drops packets before the first keyframe, so its file says nothing about those;
//! - timestamps and keyframes on raw output (rtmpdump's FLV file, the client's log), tag by
//!   tag: the published tags, each run from a keyframe after its sequence headers, with
//!   timestamps that never go back.
//!
//! Players wait before the publish and end at the edge's shutdown (its Play.Stop), or at
//! nginx's StreamEOF. A missing program fails the test with its name.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::interop::*;
use common::runs::{assert_payload_run, assert_runs, MetadataCheck};
use common::*;
use rtmp_edge::relay::{Config, RelayHandle};
use rtmp_edge::url::RtmpUrl;

const FIXTURE: &str = "h264_aac.flv";
const APP: &str = "live";

/// An edge of `origins` (short linger and upstream timeout), started.
fn edge(origins: &[SocketAddr]) -> RelayHandle {
    start_relay(edge_config(origins))
}

/// Until the relay closes it, or the test stops it.
fn until_closed() -> PlayerStop {
    PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(60) }
}

/// Waits until nginx shows `players` playing clients and `publishers` publishing ones on
/// stream `name`.
fn wait_nginx_clients(nginx: &Nginx, name: &str, players: usize, publishers: usize, what: &str) {
    let counts = || {
        let clients = nginx.stream_clients(name);
        (clients.iter().filter(|(publishing, _)| !publishing).count(), clients.iter().filter(|(publishing, _)| *publishing).count())
    };
    assert!(
        eventually_every(Duration::from_millis(50), Duration::from_secs(10), || counts() == (players, publishers)),
        "{what}: nginx shows (players, publishers) {:?}, expected ({players}, {publishers}):\n{}",
        counts(),
        nginx.error_log()
    );
}

/// Waits until `edge`'s pull is (or is no longer) playing a live stream.
fn wait_pull_live(edge: &RelayHandle, live: u64, what: &str) {
    assert!(
        eventually(Duration::from_secs(10), || edge.stats().pulls_live == live),
        "{what}: {:?}",
        edge.stats()
    );
}

/// Publishes `items` with the library's client on `addr` (`live/s`) and leaves. The edge
/// whose players wait must see the stream go live first, then end: waiting on both
/// (rather than on "not live" alone) makes sure it had all of it.
fn publish_to_relay(addr: SocketAddr, items: &[Item], edge: &RelayHandle) {
    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s").unwrap();
    wait_pull_live(edge, 1, "the origin's publisher starts");
    publisher.send_items(items, None).unwrap();
    publisher.stop().unwrap();
    wait_pull_live(edge, 0, "the origin's publisher left");
}

/// Publishes `items` on nginx at `addr` (`live/s`) and leaves, then waits until `client`,
/// a player on `edge`, got the last of them for the `runs`-th time, and the edge saw the
/// stream end. nginx tells players waiting for a stream nothing when it starts (no
/// StreamBegin): the edge's pull goes live with the first media.
fn publish_to_nginx(addr: SocketAddr, items: &[Item], edge: &RelayHandle, client: &PlayerThread, runs: usize) {
    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s").unwrap();
    publisher.send_items(items, None).unwrap();
    publisher.stop().unwrap();
    let last = items.last().unwrap().with_timestamp(0);
    let got_last = client.wait_until(Duration::from_secs(10), |log| {
        items_of(log).iter().filter(|item| item.with_timestamp(0) == last).count() == runs
    });
    assert!(got_last, "{}: the publish did not arrive whole: {}", client.label, summarize(&client.snapshot()));
    wait_pull_live(edge, 0, "nginx's publisher left");
}

/// An ffmpeg player and rtmpdump on `source`, each writing a file in `dir`.
struct FilePlayers {
    ffmpeg: (ChildGuard, PathBuf, PathBuf),
    rtmpdump: (ChildGuard, PathBuf, PathBuf),
}

fn file_players(source: &str, dir: &TempDir) -> FilePlayers {
    let ffmpeg_out = dir.join("ffmpeg.flv");
    let (ffmpeg, ffmpeg_log) = ffmpeg_player(&require_program("ffmpeg"), source, &ffmpeg_out, dir, "ffmpeg", &[]);
    let rtmpdump_out = dir.join("rtmpdump.flv");
    let (rtmpdump, rtmpdump_log) = rtmpdump_player(source, &rtmpdump_out, dir, "rtmpdump");
    FilePlayers { ffmpeg: (ffmpeg, ffmpeg_out, ffmpeg_log), rtmpdump: (rtmpdump, rtmpdump_out, rtmpdump_log) }
}

impl FilePlayers {
    /// Shuts `relay` down (its Play.Stop ends both) and waits for them to end.
    fn end_with(&mut self, relay: RelayHandle) {
        shut_down_and_let_players_end(
            relay,
            &mut [(&mut self.ffmpeg.0, &self.ffmpeg.2), (&mut self.rtmpdump.0, &self.rtmpdump.2)],
        );
    }

    /// ffmpeg's packets are all of the fixture's, from the first keyframe.
    fn check_ffmpeg_has_everything(&self, label: &str) {
        let input = fixture_packets(FIXTURE);
        let output = check_output(&input, &self.ffmpeg.1, &self.ffmpeg.2, 1.0, false, label);
        assert_eq!(assert_contiguous_run(&input, &output, "video", 1, label), 0, "{label}: from the first keyframe");
    }

    /// rtmpdump's tags.
    fn rtmpdump_items(&self) -> Vec<Item> {
        flv_file_items(&self.rtmpdump.1, 0)
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn players_through_the_edge_share_one_nginx_upstream_and_get_everything() {
    let nginx = Nginx::start("edge-nginx-origin");
    let dir = TempDir::new("edge-nginx-origin-out");
    let edge = edge(&[nginx.addr()]);
    let source = live_url(edge.local_addr(), "s");
    let mut players = file_players(&source, &dir);
    let client = PlayerThread::spawn(edge.local_addr(), APP, "s", until_closed(), "client");
    wait_players(&edge, 3, "ffmpeg, rtmpdump and the client on the edge");
    // One upstream connection from the edge for three players.
    wait_nginx_clients(&nginx, "s", 1, 0, "the edge's pull");
    let published = fixture_items(FIXTURE, 0);
    publish_to_nginx(nginx.addr(), &published, &edge, &client, 1);
    assert_eq!(nginx.stream_clients("s").len(), 1, "nginx: {:?}", nginx.stream_clients("s"));
    players.end_with(edge);
    with_nginx_log_on_failure(&nginx, || {
        players.check_ffmpeg_has_everything("ffmpeg through the edge");
        let kept = kept_by_librtmp_and_rtmp2src(&published);
        assert_runs(&[&kept], &players.rtmpdump_items(), MetadataCheck::Rebuilt, "rtmpdump through the edge");
        assert_runs(&[&published], &items_of(&client.join()), MetadataCheck::Rebuilt, "client through the edge");
    });
}

/// ffmpeg publishes to our edge; the edge (with `config`) republishes to nginx, from which
/// ffmpeg and the library's client play. The ffmpeg player joins once the stream is live
/// at nginx: an ffmpeg player that waits at nginx for a stream to start and gets only 4 s
/// of it never finishes probing and writes nothing, even when the publisher talks to nginx
/// directly (checked by hand). The publisher sends the file twice (`-stream_loop 1`) so that
/// the stream outlasts that join.
fn publish_through_edge_played_from_nginx(label: &str, config: impl FnOnce(&Nginx) -> Config) {
    let ffmpeg = require_program("ffmpeg");
    let nginx = Nginx::start(label);
    let dir = TempDir::new(&format!("{label}-out"));
    let edge = start_relay(config(&nginx));
    let client = PlayerThread::spawn(nginx.addr(), APP, "s", until_closed(), "client at nginx");
    wait_nginx_clients(&nginx, "s", 1, 0, "the client waits at nginx");
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(edge.local_addr(), "s"), &dir, "publisher-to-edge", &["-stream_loop", "1"]);
    wait_nginx_clients(&nginx, "s", 1, 1, "the edge publishes to nginx");
    let out = dir.join("from-nginx.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &nginx.url("s"), &out, &dir, "player-at-nginx", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    // nginx tells its players the stream ended with StreamEOF alone, which ffmpeg ignores;
    // nginx's fast shutdown (SIGTERM) then closes their connections, and ffmpeg ends at
    // the end of its input, writing out everything.
    assert!(client.wait_until(Duration::from_secs(10), |log| log.contains(&Received::StreamEof)), "no StreamEOF at the client");
    let log = client.finish();
    nginx.terminate();
    match player.wait_timeout(Duration::from_secs(10)) {
        Some(status) => assert!(status.success(), "ffmpeg at nginx failed ({status}):\n{}", tail(&player_log)),
        None => panic!("ffmpeg at nginx did not end when nginx stopped:\n{}", tail(&player_log)),
    }
    with_nginx_log_on_failure(&nginx, || {
        let input = repeated(&fixture_packets(FIXTURE), 2);
        check_output(&input, &out, &player_log, 0.3, false, label);
        assert_payload_run(&fixture_items(FIXTURE, 0), 2, &items_of(&log), &format!("{label}: client at nginx"));
    });
    assert_eq!(edge.stats().protocol_errors, 0, "{:?}", edge.stats());
}

#[test]
fn ffmpeg_publishes_to_the_edge_forwarded_to_nginx_and_played_there() {
    publish_through_edge_played_from_nginx("edge-forward-nginx", |nginx| Config {
        origins: vec![nginx.addr().to_string()],
        upstream_timeout: Duration::from_secs(2),
        ..test_config()
    });
}

#[test]
fn push_to_a_dead_target_and_nginx_nginx_gets_the_full_stream() {
    let dead = RefusedPort::new();
    let dead = dead.addr();
    publish_through_edge_played_from_nginx("edge-push-nginx", |nginx| Config {
        push: vec![
            RtmpUrl::parse(&format!("rtmp://{dead}/live")).unwrap(),
            RtmpUrl::parse(&format!("rtmp://{}/live", nginx.addr())).unwrap(),
        ],
        ..test_config()
    });
}

#[test]
fn chain_origin_edge_edge_ffmpeg_and_rtmpdump_players() {
    let dir = TempDir::new("edge-chain");
    let origin = start_relay(test_config());
    let edge1 = edge(&[origin.local_addr()]);
    let edge2 = edge(&[edge1.local_addr()]);
    let mut players = file_players(&live_url(edge2.local_addr(), "s"), &dir);
    wait_players(&edge2, 2, "ffmpeg and rtmpdump at the end of the chain");
    wait_players(&edge1, 1, "edge2's pull");
    wait_players(&origin, 1, "edge1's pull");
    let published = fixture_items(FIXTURE, 0);
    publish_to_relay(origin.local_addr(), &published, &edge2);
    players.end_with(edge2);
    players.check_ffmpeg_has_everything("ffmpeg at the end of origin -> edge -> edge");
    let kept = kept_by_librtmp_and_rtmp2src(&published);
    assert_runs(&[&kept], &players.rtmpdump_items(), MetadataCheck::Exact, "rtmpdump at the end of the chain");
    assert_eq!(origin.stats().connections_accepted, 2, "{:?}", origin.stats());
    assert_eq!(edge1.stats().connections_accepted, 1, "{:?}", edge1.stats());
}

/// `output`'s packets of each kind: a run of `input`'s from its start, then a run that
/// ends at its end and starts at a keyframe (for video).
fn assert_packets_prefix_then_tail(input: &HashMap<String, Vec<Packet>>, output: &HashMap<String, Vec<Packet>>, label: &str) {
    let same = |a: &Packet, b: &Packet| a.hash == b.hash && a.size == b.size;
    for codec_type in ["video", "audio"] {
        let source = &input[codec_type];
        let got = output.get(codec_type).cloned().unwrap_or_default();
        let prefix = got.iter().zip(source).take_while(|(g, s)| same(g, s)).count();
        assert!(prefix > 0 && prefix < got.len(), "{label} {codec_type}: {prefix} packets of the first run, {} in all", got.len());
        let tail = &got[prefix..];
        assert!(tail.len() <= source.len(), "{label} {codec_type}: {} packets after the first run", tail.len());
        let start = source.len() - tail.len();
        for (index, (g, s)) in tail.iter().zip(&source[start..]).enumerate() {
            assert!(same(g, s), "{label} {codec_type}: packet {index} of the second run (from #{start}) differs");
        }
        if codec_type == "video" {
            assert!(source[start].key, "{label}: the second run starts at video packet #{start}, not a keyframe");
        }
    }
}

#[test]
fn nginx_origin_killed_and_restarted_players_resume() {
    let dir = TempDir::new("edge-nginx-restart");
    let mut nginx = Nginx::start("edge-nginx-restart-1");
    let nginx_addr = nginx.addr();
    let edge = edge(&[nginx_addr]);
    let ffmpeg_out = dir.join("ffmpeg.flv");
    let (mut ffmpeg, ffmpeg_log) =
        ffmpeg_player(&require_program("ffmpeg"), &live_url(edge.local_addr(), "s"), &ffmpeg_out, &dir, "ffmpeg", &[]);
    let client = PlayerThread::spawn(edge.local_addr(), APP, "s", until_closed(), "client");
    wait_players(&edge, 2, "ffmpeg and the client on the edge");
    wait_nginx_clients(&nginx, "s", 1, 0, "the edge's pull");
    let published = fixture_items(FIXTURE, 0);
    let split = published.iter().position(|i| i.timestamp() >= 2000).unwrap();
    let mut first = RtmpTestClient::connect(nginx_addr, APP).unwrap();
    first.publish("s").unwrap();
    first.send_items(&published[..split], None).unwrap();
    let last_sent = frames_of(&published[..split]).last().cloned().unwrap();
    assert!(
        client.wait_until(Duration::from_secs(10), |log| items_of(log).last() == Some(&last_sent)),
        "the first part did not arrive: {}",
        summarize(&client.snapshot())
    );
    // SIGKILL: no StreamEOF, the pull's TCP connection just dies.
    nginx.child.kill();
    drop(first);
    wait_pull_live(&edge, 0, "the edge noticed the origin died");
    let nginx = Nginx::start_on("edge-nginx-restart-2", nginx_addr);
    wait_nginx_clients(&nginx, "s", 1, 0, "the edge's pull comes back");
    publish_to_nginx(nginx_addr, &published, &edge, &client, 1);
    shut_down_and_let_players_end(edge, &mut [(&mut ffmpeg, &ffmpeg_log)]);
    with_nginx_log_on_failure(&nginx, || {
        // Raw: everything of the first publish, then all of the second from its start,
        // timestamps going on.
        let log = client.join();
        assert_runs(&[&published[..split], &published], &items_of(&log), MetadataCheck::Rebuilt, "client on the edge");
        let output = probe_packets(&ffmpeg_out);
        assert_packets_prefix_then_tail(&fixture_packets(FIXTURE), &output, "ffmpeg on the edge");
    });
}
