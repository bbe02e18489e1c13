//! Edge mode with real programs on loopback: nginx-rtmp (the Debian module) as origin and
//! as push target, ffmpeg as publisher and players. Content is checked by packet hashes:
//! every player's packets must be a contiguous run of the published file's (MD5 and size per
//! packet, via ffprobe), starting at a keyframe, with increasing timestamps.
//!
//! A missing program fails the test with its name; nothing is skipped silently.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::interop::*;
use common::*;
use rtmp_edge::relay::{Config, RelayHandle};
use rtmp_edge::url::RtmpUrl;

const FIXTURE: &str = "h264_aac.flv";
/// Publishers send the file twice (`-stream_loop 1`) so that the stream outlasts setup.
const LOOP_ONCE: &[&str] = &["-stream_loop", "1"];

/// An edge of `origins` (short linger and upstream timeout), started.
fn edge(origins: &[SocketAddr]) -> RelayHandle {
    start_relay(edge_config(origins))
}

/// [`check_output`], and the dts of each stream never go back.
fn check_output_dts_increasing(
    input: &HashMap<String, Vec<Packet>>,
    out: &Path,
    log: &Path,
    min_fraction: f64,
    interrupted: bool,
    label: &str,
) -> HashMap<String, Vec<Packet>> {
    let output = check_output(input, out, log, min_fraction, interrupted, label);
    for codec_type in ["video", "audio"] {
        assert_dts_increasing(&output[codec_type], &format!("{label} {codec_type}"));
    }
    output
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn three_ffmpeg_players_through_the_edge_share_one_nginx_upstream() {
    let ffmpeg = require_program("ffmpeg");
    let nginx = Nginx::start("edge-nginx-origin");
    let dir = TempDir::new("edge-nginx-origin-out");
    let edge = edge(&[nginx.addr()]);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &nginx.url("s"), &dir, "publisher", LOOP_ONCE);
    assert!(
        eventually_every(Duration::from_millis(50), Duration::from_secs(5), || nginx
            .stream_clients("s")
            .iter()
            .any(|(p, _)| *p)),
        "nginx never showed the publisher; {}",
        tail(&publisher_log)
    );
    let source = live_url(edge.local_addr(), "s");
    let mut players: Vec<(ChildGuard, PathBuf, PathBuf)> = (0..3)
        .map(|i| {
            let out = dir.join(&format!("player-{i}.flv"));
            let (child, log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, &format!("player-{i}"), &[]);
            (child, out, log)
        })
        .collect();
    // Let all three be playing, then look at nginx.
    std::thread::sleep(Duration::from_secs(3));
    let clients = nginx.stream_clients("s");
    let edge_port = edge.local_addr().port();
    let players_at_nginx: Vec<&(bool, String)> = clients.iter().filter(|(publishing, _)| !publishing).collect();
    let stat = nginx.stream_stat("s").unwrap_or_default();
    assert_eq!(
        players_at_nginx.len(),
        1,
        "nginx should see exactly one upstream connection from the edge (port {edge_port}) for three players: {clients:?}\n{stat}"
    );
    assert!(
        stat.contains("<nclients>2</nclients>"),
        "nginx nclients should be 2 (publisher + edge): {stat}"
    );
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let input = repeated(&fixture_packets(FIXTURE), 2);
    for (i, (child, out, log)) in players.iter_mut().enumerate() {
        let interrupted = stop_player(child, Duration::from_secs(4));
        with_nginx_log_on_failure(&nginx, || {
            check_output_dts_increasing(&input, out, log, 0.4, interrupted, &format!("player {i}"))
        });
    }
}

/// ffmpeg publishes to our edge; the edge (with `config`) republishes to nginx, from which
/// ffmpeg plays. The player must get the stream in full.
fn publish_through_edge_played_from_nginx(label: &str, config: impl FnOnce(&Nginx) -> Config) {
    let ffmpeg = require_program("ffmpeg");
    let nginx = Nginx::start(label);
    let dir = TempDir::new(&format!("{label}-out"));
    let edge = start_relay(config(&nginx));
    let out = dir.join("from-nginx.flv");
    // The player joins once the stream is live at nginx: an ffmpeg player that waits at
    // nginx for a stream to start and gets only 4 s of it never finishes probing and writes
    // nothing, even when the publisher talks to nginx directly (checked by hand).
    let (mut publisher, publisher_log) = ffmpeg_publisher(
        &ffmpeg,
        FIXTURE,
        &live_url(edge.local_addr(), "s"),
        &dir,
        "publisher-to-edge",
        LOOP_ONCE,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &nginx.url("s"), &out, &dir, "player-at-nginx", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let interrupted = stop_player(&mut player, Duration::from_secs(6));
    let input = repeated(&fixture_packets(FIXTURE), 2);
    with_nginx_log_on_failure(&nginx, || {
        check_output_dts_increasing(&input, &out, &player_log, 0.3, interrupted, label)
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
fn chain_origin_edge_edge_ffmpeg_player() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("edge-chain");
    let origin = start_relay(test_config());
    let edge1 = edge(&[origin.local_addr()]);
    let edge2 = edge(&[edge1.local_addr()]);
    let (mut publisher, publisher_log) = ffmpeg_publisher(
        &ffmpeg,
        FIXTURE,
        &live_url(origin.local_addr(), "s"),
        &dir,
        "publisher",
        LOOP_ONCE,
    );
    std::thread::sleep(Duration::from_millis(1000));
    let out = dir.join("end-of-chain.flv");
    let (mut player, player_log) = ffmpeg_player(
        &ffmpeg,
        &live_url(edge2.local_addr(), "s"),
        &out,
        &dir,
        "player",
        &[],
    );
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let interrupted = stop_player(&mut player, Duration::from_secs(5));
    check_output_dts_increasing(
        &repeated(&fixture_packets(FIXTURE), 2),
        &out,
        &player_log,
        0.4,
        interrupted,
        "ffmpeg at the end of origin -> edge -> edge",
    );
    assert_eq!(origin.stats().connections_accepted, 2, "{:?}", origin.stats());
    assert_eq!(edge1.stats().connections_accepted, 1, "{:?}", edge1.stats());
}

#[test]
fn nginx_origin_killed_and_restarted_players_resume() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("edge-nginx-restart");
    let mut nginx = Nginx::start("edge-nginx-restart-1");
    let nginx_addr = nginx.rtmp_addr;
    let edge = edge(&[nginx.addr()]);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &nginx.url("s"), &dir, "publisher-1", LOOP_ONCE);
    std::thread::sleep(Duration::from_millis(1000));
    let out = dir.join("player.flv");
    let (mut player, player_log) = ffmpeg_player(
        &ffmpeg,
        &live_url(edge.local_addr(), "s"),
        &out,
        &dir,
        "player",
        &[],
    );
    std::thread::sleep(Duration::from_secs(3));
    // SIGKILL: no UnpublishNotify, the pull's TCP connection just dies.
    nginx.child.kill();
    publisher.kill();
    let _ = publisher_log;
    std::thread::sleep(Duration::from_millis(500));
    let nginx2 = Nginx::start_on("edge-nginx-restart-2", nginx_addr);
    let (mut publisher2, publisher2_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &nginx2.url("s"), &dir, "publisher-2", LOOP_ONCE);
    expect_finished(&mut publisher2, &publisher2_log, Duration::from_secs(20));
    let interrupted = stop_player(&mut player, Duration::from_secs(4));
    assert!(
        interrupted || player.wait_timeout(Duration::ZERO).is_some_and(|s| s.success()),
        "player failed:\n{}",
        tail(&player_log)
    );
    let mut output = probe_packets(&out);
    if interrupted {
        drop_last_packets(&mut output);
    }
    // The file is two runs: some of the first publish, then a run of the second one
    // starting at a keyframe, with dts increasing across the cut.
    let input = repeated(&fixture_packets(FIXTURE), 2);
    for codec_type in ["video", "audio"] {
        let got = &output[codec_type];
        let source = &input[codec_type];
        assert_dts_increasing(got, &format!("{codec_type} across the restart"));
        let same = |a: &Packet, b: &Packet| a.hash == b.hash && a.size == b.size;
        let first_len = (0..source.len())
            .filter(|&s| same(&got[0], &source[s]))
            .map(|s| got.iter().zip(&source[s..]).take_while(|(g, i)| same(g, i)).count())
            .max()
            .unwrap_or(0);
        assert!(first_len > 0, "{codec_type}: first packet is not from the input");
        let second: HashMap<String, Vec<Packet>> = [(codec_type.to_string(), got[first_len..].to_vec())]
            .into_iter()
            .collect();
        let second_total = source.len();
        assert!(
            second[codec_type].len() >= second_total / 3,
            "{codec_type}: only {} packets after the restart ({} before): the player did not resume\n{}",
            second[codec_type].len(),
            first_len,
            tail(&player_log)
        );
        assert_contiguous_run(
            &input,
            &second,
            codec_type,
            1,
            &format!("{codec_type} after the restart"),
        );
    }
}
