//! Certificates for RTMPS, in-process: an `rtmps://` origin whose certificate another CA
//! issued (or that names another host) is refused, with the reason counted on both sides;
//! `tls_ca` naming the right CA is accepted, and `tls_insecure_upstream` takes any. A
//! reload swaps the served certificate while an ffmpeg player keeps playing over rtmps
//! with no gap (packet hashes), and a bad certificate file is refused on reload.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::interop::*;
use common::tls::*;
use common::*;
use rtmp_edge::relay::{Config, RelayHandle};

const FIXTURE: &str = "h264_aac.flv";
const APP: &str = "live";

fn with_http(config: Config) -> Config {
    Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..config }
}

/// An edge of the TLS origin at `origin` reached as `rtmps://HOST:PORT`, with `config` on top.
fn tls_edge(host: &str, origin: &RelayHandle, config: Config) -> RelayHandle {
    start_relay(with_http(Config {
        origins: vec![format!("rtmps://{host}:{}", origin.tls_addr().unwrap().port())],
        upstream_timeout: Duration::from_secs(2),
        pull_linger: Duration::from_millis(500),
        ..config
    }))
}

/// A player on `edge` waiting for "s" while the edge's pull fails: the edge counts
/// `upstream_certificate_rejected`, the origin counts the edge's alert as `tls_failed`,
/// and no play ever reaches the origin.
fn assert_pull_refused(origin: &RelayHandle, edge: &RelayHandle, label: &str) {
    let player = PlayerThread::spawn(
        edge.local_addr(),
        APP,
        "s",
        PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(30) },
        label,
    );
    player.wait_ready(EXCHANGE_TIMEOUT);
    assert!(
        eventually(Duration::from_secs(10), || closes_counted(edge, "upstream_certificate_rejected") >= 2),
        "{label}: the edge did not refuse the origin's certificate twice: {}",
        http::get(edge.http_addr().unwrap(), "/metrics", None).text()
    );
    assert!(
        eventually(Duration::from_secs(10), || closes_counted(origin, "tls_failed") >= 2),
        "{label}: the origin did not count the edge's alerts"
    );
    assert_eq!(origin.stats().players, 0, "{label}: a play reached the origin");
    drop(player.finish());
}

#[test]
fn an_origin_certificate_the_edge_cannot_verify_is_refused_and_tls_ca_accepts_it() {
    let dir = TempDir::new("tls-certs");
    let right = TestCa::new(&dir, "right");
    let wrong = TestCa::new(&dir, "wrong");
    let cert = right.issue(&dir, "origin", &["localhost", "127.0.0.1"]);
    let origin = start_relay(with_http(tls_config(&cert)));

    // Issued by a CA the edge does not trust.
    let untrusting = tls_edge("localhost", &origin, Config { tls_ca: Some(wrong.pem.clone()), ..test_config() });
    assert_pull_refused(&origin, &untrusting, "edge trusting another CA");
    // Trusted CA, but the certificate does not name the host the edge asked for.
    let other_host = right.issue(&dir, "elsewhere", &["elsewhere.example"]);
    let misnamed_origin = start_relay(with_http(tls_config(&other_host)));
    let misnamed = tls_edge("localhost", &misnamed_origin, Config { tls_ca: Some(right.pem.clone()), ..test_config() });
    assert_pull_refused(&misnamed_origin, &misnamed, "edge asking for localhost, served elsewhere.example");

    // The right CA: the pull plays, and its players get exactly what was published.
    let trusting = tls_edge("localhost", &origin, Config { tls_ca: Some(right.pem.clone()), ..test_config() });
    let by_ip = tls_edge("127.0.0.1", &origin, Config { tls_ca: Some(right.pem.clone()), ..test_config() });
    let until_dry = PlayerStop { after_unpublish: 1, deadline: Duration::from_secs(30) };
    let players = [
        PlayerThread::spawn(trusting.local_addr(), APP, "s", until_dry, "edge trusting the CA"),
        PlayerThread::spawn(by_ip.local_addr(), APP, "s", until_dry, "edge reaching the origin by IP"),
    ];
    for player in &players {
        player.wait_ready(EXCHANGE_TIMEOUT);
    }
    wait_players(&origin, 2, "the two pulls at the origin");
    let clients = http::get(origin.http_addr().unwrap(), "/api/v1/clients", None).json();
    let rtmp_clients = clients.as_array().unwrap().iter().filter(|c| c["role"] == "player");
    let protocols: Vec<&str> = rtmp_clients.filter_map(|c| c["protocol"].as_str()).collect();
    assert_eq!(protocols, vec!["rtmps", "rtmps"], "{clients}");
    let published = fixture_items(FIXTURE, 0);
    let mut publisher = RtmpTestClient::connect(origin.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    publisher.send_items(&published, None).unwrap();
    publisher.stop().unwrap();
    for player in players {
        let label = player.label.clone();
        let log = player.join();
        let start = assert_late_join(&published, &items_of(&log), &label);
        assert!(start <= first_keyframe_frame_index(&published), "{label}: started late, at frame {start}");
    }
    assert_eq!(closes_counted(&trusting, "upstream_certificate_rejected"), 0);
}

#[test]
fn tls_insecure_upstream_takes_a_certificate_nobody_vouches_for() {
    let dir = TempDir::new("tls-insecure");
    let unknown = TestCa::new(&dir, "unknown");
    let cert = unknown.issue(&dir, "origin", &["localhost"]);
    let origin = start_relay(with_http(tls_config(&cert)));
    let edge = tls_edge("localhost", &origin, Config { tls_insecure_upstream: true, ..test_config() });
    let player = PlayerThread::spawn(
        edge.local_addr(),
        APP,
        "s",
        PlayerStop { after_unpublish: 1, deadline: Duration::from_secs(30) },
        "player",
    );
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_players(&origin, 1, "the insecure edge's pull");
    let published = fixture_items(FIXTURE, 0);
    let mut publisher = RtmpTestClient::connect(origin.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    publisher.send_items(&published, None).unwrap();
    publisher.stop().unwrap();
    assert_late_join(&published, &items_of(&player.join()), "player of an insecure pull");
}

#[test]
fn a_reload_swaps_the_certificate_while_an_ffmpeg_player_keeps_playing() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("tls-reload");
    let ca = TestCa::new(&dir, "test");
    let first = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
    let relay = start_relay(with_http(tls_config(&first)));
    let tls_addr = relay.tls_addr().unwrap();
    let http_addr = relay.http_addr().unwrap();
    assert_eq!(served_certificate(tls_addr, &ca.pem).unwrap(), first.der);

    let source = rtmps_url(tls_addr, "s");
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "ffmpeg-player", &[]);
    wait_players(&relay, 1, "ffmpeg player over rtmps");
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &["-stream_loop", "1"]);
    assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 1), "the publisher never started");

    // New key and certificate in the same files; new connections get them.
    let second = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
    assert_ne!(first.der, second.der);
    let answer = http::request(http_addr, "POST", "/api/v1/reload", None).unwrap();
    assert_eq!((answer.status, answer.json()["reloaded"].as_bool()), (200, Some(true)), "{}", answer.text());
    assert_eq!(served_certificate(tls_addr, &ca.pem).unwrap(), second.der, "a new connection after the reload");

    // A broken key file is refused, and the running certificate stays.
    std::fs::write(&second.key, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n").unwrap();
    let answer = http::request(http_addr, "POST", "/api/v1/reload", None).unwrap();
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.json()["error"].as_str().unwrap().contains("tls-key"), "{}", answer.text());
    assert_eq!(served_certificate(tls_addr, &ca.pem).unwrap(), second.der, "after a refused reload");

    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(40));
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    // One contiguous run of both passes from the first keyframe: the reloads left no gap.
    let input = repeated(&fixture_packets(FIXTURE), 2);
    let output = check_output(&input, &out, &player_log, 1.0, false, "ffmpeg player across the reloads");
    assert_eq!(assert_contiguous_run(&input, &output, "video", 1, "player video"), 0);
}
