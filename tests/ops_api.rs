//! The HTTP API and /metrics against real traffic: an ffmpeg publisher and ffmpeg players
//! on the relay in-process, asked over real HTTP. Metrics are checked by promtool and
//! parsed by the Python Prometheus client.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{self, check_metrics_text, sample};
use common::interop::*;
use common::*;
use rtmp_edge::relay::Config;

const FIXTURE: &str = "h264_aac.flv";

fn http_config() -> Config {
    Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() }
}

/// The stream `name` in /api/v1/streams, once `ready` holds for it (10 s deadline).
fn wait_for_stream(
    addr: SocketAddr,
    name: &str,
    token: Option<&str>,
    mut ready: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let found = eventually_every(Duration::from_millis(100), Duration::from_secs(20), || {
        let streams = http::get(addr, "/api/v1/streams", token).json();
        let stream = streams.as_array().unwrap().iter().find(|s| s["name"] == name).cloned();
        match stream {
            Some(stream) if ready(&stream) => {
                last = stream;
                true
            }
            Some(stream) => {
                last = stream;
                false
            }
            None => false,
        }
    });
    assert!(found, "stream {name} did not get ready; last seen: {last}");
    last
}

#[test]
fn the_api_reflects_an_ffmpeg_publisher_and_three_ffmpeg_players_and_a_kick_closes_one() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ops-api");
    let relay = start_relay(http_config());
    let api = relay.http_addr().expect("HTTP listener");
    let source = live_url(relay.local_addr(), "cam");
    // About 16 s of media, so the players join a live stream and bytes keep flowing.
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "publisher", &["-stream_loop", "3"]);
    wait_for_stream(api, "cam", None, |s| s["live"] == true && s["video_codec"] == "h264");
    let mut players = Vec::new();
    for index in 0..3 {
        let out = dir.join(&format!("player{index}.flv"));
        let (child, log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, &format!("player{index}"), &[]);
        players.push((child, log, out));
    }
    let first = wait_for_stream(api, "cam", None, |s| s["players"] == 3 && s["kbps_out"].as_u64().unwrap_or(0) > 0);
    assert_eq!(first["app"], "live");
    assert_eq!((first["video_codec"].as_str(), first["audio_codec"].as_str()), (Some("h264"), Some("aac")));
    let publisher_view = &first["publisher"];
    assert_eq!((publisher_view["video_codec"].as_str(), publisher_view["audio_codec"].as_str()), (Some("h264"), Some("aac")));
    assert_eq!((publisher_view["width"].as_u64(), publisher_view["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(publisher_view["ip"], "127.0.0.1");
    assert_eq!(first["upstream"], serde_json::Value::Null);
    // The fixture is about 320 kbit/s with its container overhead.
    let kbps_in = first["kbps_in"].as_u64().unwrap();
    assert!((150..=600).contains(&kbps_in), "kbps_in {kbps_in}: {first}");

    // Bytes grow over time, in and out.
    let later = wait_for_stream(api, "cam", None, |s| {
        s["bytes_in"].as_u64() > first["bytes_in"].as_u64() && s["bytes_out"].as_u64() > first["bytes_out"].as_u64()
    });
    assert!(later["publisher"]["bytes_in"].as_u64() > publisher_view["bytes_in"].as_u64());

    let clients = http::get(api, "/api/v1/clients", None).json();
    let clients = clients.as_array().unwrap();
    let player_views: Vec<&serde_json::Value> = clients.iter().filter(|c| c["role"] == "player").collect();
    assert_eq!(player_views.len(), 3, "{clients:?}");
    for view in &player_views {
        assert_eq!((view["app"].as_str(), view["name"].as_str(), view["protocol"].as_str()), (Some("live"), Some("cam"), Some("rtmp")));
        assert!(view["bytes_out"].as_u64().unwrap() > 0 && view["since"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(clients.iter().filter(|c| c["role"] == "publisher").count(), 1);

    // Kick the player that connected first: its ffmpeg sees the connection end and exits.
    let kicked_id = player_views.iter().map(|view| view["client_id"].as_u64().unwrap()).min().unwrap();
    let answer = http::request(api, "DELETE", &format!("/api/v1/clients/{kicked_id}"), None).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["role"], "player");
    let remaining = wait_for_stream(api, "cam", None, |s| s["players"] == 2);
    assert_eq!(remaining["live"], true);
    let clients = http::get(api, "/api/v1/clients", None).json();
    assert!(clients.as_array().unwrap().iter().all(|c| c["client_id"] != kicked_id), "the kicked client is gone");
    let mut ended = Vec::new();
    let one_ended = eventually_every(Duration::from_millis(50), Duration::from_secs(10), || {
        ended = (0..players.len()).filter(|i| players[*i].0.wait_timeout(Duration::ZERO).is_some()).collect();
        !ended.is_empty()
    });
    assert!(one_ended, "the kicked ffmpeg player did not end");
    assert_eq!(ended.len(), 1, "exactly the kicked ffmpeg player ended");

    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(40));
    let input = repeated(&fixture_packets(FIXTURE), 4);
    for (index, (mut child, log, out)) in players.into_iter().enumerate() {
        let kicked = ended.contains(&index);
        let interrupted = stop_player(&mut child, Duration::from_secs(8)) || kicked;
        // Joined while live: a contiguous run of what was published, from a keyframe; the
        // kicked one up to where it was cut off, the others to the end.
        let min_fraction = if kicked { 0.0 } else { 0.3 };
        check_output(&input, &out, &log, min_fraction, interrupted, &format!("player{index}"));
    }
    relay.shutdown().unwrap();
}

#[test]
fn metrics_pass_promtool_parse_and_lose_a_streams_series_when_it_ends() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ops-metrics");
    let relay = start_relay(http_config());
    let api = relay.http_addr().unwrap();
    let source = live_url(relay.local_addr(), "m");
    // 12 s: an ffmpeg player interrupted after only the 4 s fixture may lose what it
    // buffered (it keeps waiting after StreamEOF, and SIGINT aborts its final flush).
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "publisher", &["-stream_loop", "2"]);
    let out = dir.join("player.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "player", &[]);
    wait_for_stream(api, "m", None, |s| s["players"] == 1 && s["live"] == true && s["frames_in"].as_u64() > Some(20));

    let answer = http::get(api, "/metrics", None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let samples = check_metrics_text(&answer.text());
    assert_eq!(sample(&samples, "rtmp_edge_stream_players{app=live,stream=m}"), Some(1.0));
    assert_eq!(sample(&samples, "rtmp_edge_stream_live{app=live,stream=m}"), Some(1.0));
    assert!(sample(&samples, "rtmp_edge_stream_received_bytes_total{app=live,stream=m}").unwrap() > 10_000.0);
    assert!(sample(&samples, "rtmp_edge_stream_frames_received_total{app=live,stream=m}").unwrap() > 20.0);
    assert_eq!(sample(&samples, "rtmp_edge_connections{role=player}"), Some(1.0));
    assert_eq!(sample(&samples, "rtmp_edge_connections{role=publisher}"), Some(1.0));
    assert!(sample(&samples, "process_resident_memory_bytes{}").unwrap() > 100_000.0);
    assert!(sample(&samples, "process_open_fds{}").unwrap() >= 4.0);
    assert!(sample(&samples, "process_cpu_seconds_total{}").is_some());
    assert!(sample(&samples, "rtmp_edge_received_bytes_total{}").unwrap() > 10_000.0);

    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(30));
    let interrupted = stop_player(&mut player, Duration::from_secs(8));
    check_output(&repeated(&fixture_packets(FIXTURE), 3), &out, &player_log, 0.5, interrupted, "player");
    // Nobody publishes or plays m now: its series are gone; the totals stay.
    let gone = eventually(Duration::from_secs(10), || {
        let text = http::get(api, "/metrics", None).text();
        !text.contains("stream=\"m\"")
    });
    assert!(gone, "stream series outlived the stream");
    let samples = check_metrics_text(&http::get(api, "/metrics", None).text());
    assert_eq!(sample(&samples, "rtmp_edge_streams{}"), Some(0.0));
    assert!(sample(&samples, "rtmp_edge_sent_bytes_total{}").unwrap() > 10_000.0, "closed connections stay counted");
    relay.shutdown().unwrap();
}

#[test]
fn the_token_is_enforced_on_the_api_and_metrics_only() {
    let relay = start_relay(Config { http_token: Some("op3rat0r".into()), ..http_config() });
    let api = relay.http_addr().unwrap();
    for path in ["/metrics", "/api/v1/streams", "/api/v1/clients", "/api/v1/summary"] {
        let refused = http::get(api, path, None);
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"rtmp-edge\""));
        assert_eq!(http::get(api, path, Some("wrong")).status, 401, "{path}");
        assert_eq!(http::get(api, path, Some("op3rat0r")).status, 200, "{path}");
    }
    for (method, path) in [("DELETE", "/api/v1/clients/1"), ("POST", "/api/v1/reload")] {
        assert_eq!(http::request(api, method, path, None).unwrap().status, 401, "{method} {path}");
    }
    assert_eq!(http::request(api, "DELETE", "/api/v1/clients/123456", Some("op3rat0r")).unwrap().status, 404);
    let health = http::get(api, "/healthz", None);
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let page = http::get(api, "/", None);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.text().contains("/api/v1/streams"));
    let summary = http::get(api, "/api/v1/summary", Some("op3rat0r")).json();
    assert_eq!(summary["version"], env!("CARGO_PKG_VERSION"));
    // Keep-alive: several answers on one connection.
    let mut connection = http::KeepAlive::connect(api);
    for _ in 0..3 {
        assert_eq!(connection.request("GET", "/metrics", Some("op3rat0r")).status, 200);
    }
    relay.shutdown().unwrap();
}
