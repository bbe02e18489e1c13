//! HTTP-FLV and WebSocket-FLV with real programs and raw readers.
//!
//! - ffmpeg reads `http://127.0.0.1:PORT/live/x.flv` from the start and as a late joiner
//!   while ffmpeg publishes over RTMP: its packet hashes are a run of the source's from a
//!   keyframe, every packet for the player that waited.
//! - The same through an edge that pulls the stream from nginx-rtmp.
//! - Raw readers (HTTP-FLV and WebSocket-FLV, their bytes parsed tag by tag) joining late:
//!   metadata and sequence headers, then every frame from the GOP's keyframe to the end,
//!   byte for byte, with timestamps starting at 0 and keeping the publisher's spacing.
//!
//! Players stay connected when a publisher leaves; each test ends them by shutting the
//! relay down, which closes their connections after what is queued.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::flv_http::{on_publisher_clock, spawn_reader};
use common::http;
use common::interop::*;
use common::*;
use rtmp_edge::relay::Config;

const FIXTURE: &str = "h264_aac.flv";

fn http_config() -> Config {
    Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() }
}

/// `http://ADDR/live/NAME.flv`.
fn flv_url(addr: SocketAddr, name: &str) -> String {
    format!("http://{addr}/live/{name}.flv")
}

/// Frames the relay has taken in for `live/NAME`, from the API.
fn frames_in(api: SocketAddr, name: &str) -> u64 {
    let streams = http::get(api, "/api/v1/streams", None).json();
    streams.as_array().unwrap().iter().find(|s| s["name"] == name).and_then(|s| s["frames_in"].as_u64()).unwrap_or(0)
}

#[test]
fn ffmpeg_reads_http_flv_from_the_start_and_as_a_late_joiner() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("http-flv-ffmpeg");
    let relay = start_relay(http_config());
    let api = relay.http_addr().unwrap();
    let url = flv_url(api, "x");
    let early_out = dir.join("early.flv");
    let (mut early, early_log) = ffmpeg_player(&ffmpeg, &url, &early_out, &dir, "early-player", &[]);
    wait_players(&relay, 1, "the early HTTP-FLV player");
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(relay.local_addr(), "x"), &dir, "publisher", &["-stream_loop", "2"]);
    // Late: about a pass into the stream (the fixture has a keyframe every second).
    assert!(eventually(Duration::from_secs(20), || frames_in(api, "x") > 250), "the publisher's frames never arrived");
    let late_out = dir.join("late.flv");
    let (mut late, late_log) = ffmpeg_player(&ffmpeg, &url, &late_out, &dir, "late-player", &[]);
    wait_players(&relay, 2, "the late HTTP-FLV player");
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(30));
    shut_down_and_let_players_end(relay, &mut [(&mut early, &early_log), (&mut late, &late_log)]);

    let input = repeated(&fixture_packets(FIXTURE), 3);
    check_output(&input, &early_out, &early_log, 1.0, false, "early HTTP-FLV player");
    let late_packets = check_output(&input, &late_out, &late_log, 0.15, false, "late HTTP-FLV player");
    let total_video = input["video"].len();
    assert!(late_packets["video"].len() + 25 <= total_video, "the late player got {} of {total_video}: not late", late_packets["video"].len());
}

#[test]
fn ffmpeg_reads_http_flv_through_an_edge_pulling_from_nginx_rtmp() {
    let ffmpeg = require_program("ffmpeg");
    let nginx = Nginx::start("http-flv-nginx-origin");
    let dir = TempDir::new("http-flv-edge");
    let edge = start_relay(Config { origins: vec![nginx.addr().to_string()], ..http_config() });
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &nginx.url("s"), &dir, "publisher-at-nginx", &["-stream_loop", "1"]);
    assert!(
        eventually(Duration::from_secs(10), || nginx.stream_clients("s").iter().any(|(publishing, _)| *publishing)),
        "nginx never showed the publisher"
    );
    let out = dir.join("through-edge.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &flv_url(edge.http_addr().unwrap(), "s"), &out, &dir, "edge-player", &[]);
    wait_players(&edge, 1, "the HTTP-FLV player at the edge");
    assert!(eventually(Duration::from_secs(10), || edge.stats().pulls_live == 1), "the edge's pull never went live");
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(30));
    shut_down_and_let_players_end(edge, &mut [(&mut player, &player_log)]);
    with_nginx_log_on_failure(&nginx, || {
        check_output(&repeated(&fixture_packets(FIXTURE), 2), &out, &player_log, 0.3, false, "HTTP-FLV player through the edge");
    });
}

#[test]
fn raw_http_flv_and_websocket_flv_joiners_get_the_gop_from_0_and_every_frame_after() {
    let relay = start_relay(http_config());
    let api = relay.http_addr().unwrap();
    let published = fixture_items(FIXTURE, 5000);
    let mut publisher = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    publisher.publish("raw").unwrap();
    let half = published.len() / 2;
    publisher.send_items(&published[..half], None).unwrap();
    assert!(eventually(Duration::from_secs(10), || frames_in(api, "raw") as usize >= half - 3), "the first half never arrived");
    let http_reader = spawn_reader(api, "/live/raw.flv", false);
    let ws_reader = spawn_reader(api, "/live/raw.flv", true);
    wait_players(&relay, 2, "the raw readers");
    publisher.send_items(&published[half..], None).unwrap();
    assert!(eventually(Duration::from_secs(10), || frames_in(api, "raw") as usize >= published.len() - 3), "the rest never arrived");
    relay.shutdown().unwrap();

    for (reader, label) in [(http_reader, "HTTP-FLV"), (ws_reader, "WebSocket-FLV")] {
        let received = reader.join().unwrap().unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(received.flags, 5, "{label}: audio and video flags");
        assert!(received.head.contains("\r\nAccess-Control-Allow-Origin: *\r\n") || label == "WebSocket-FLV", "{}", received.head);
        for item in received.items.iter().filter(|item| !item.is_frame()) {
            assert_eq!(item.timestamp(), 0, "{label}: metadata and headers at 0: {item:?}");
        }
        runs::assert_kinds_monotonic(&received.items, label);
        let start = assert_late_join(&published, &on_publisher_clock(&received.items, &published), label);
        assert!(start > 0, "{label}: joined late, yet got the first frame");
    }
}
