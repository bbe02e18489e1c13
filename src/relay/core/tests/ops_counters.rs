//! What operators read: every total `/metrics` promises, by its exported name and exact
//! value; the API fields that need time or a stalled peer to mean anything; the summary
//! line; and reloads reaching new pulls.

use std::net::SocketAddr;
use std::time::Duration;

use super::harness::{inter_frame, keyframe, test_config, Harness};
use super::ops::{get, http_client, json, publishing, request};
use crate::relay::core::{CloseReason, ListenerKind};
use crate::relay::Config;
use crate::sessions::MediaKind;

/// The value of the one sample `series` (name and labels, as written) in `text`.
fn sample(text: &str, series: &str) -> u64 {
    let prefix = format!("{series} ");
    let values: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix(prefix.as_str())).collect();
    assert_eq!(values.len(), 1, "{series} in:\n{text}");
    values[0].parse().unwrap_or_else(|e| panic!("{series}: {e}"))
}

#[test]
fn every_total_is_exported_by_name_with_its_exact_value() {
    let config = Config {
        max_connections: 7,
        queue_soft_limit_ms: 500,
        queue_hard_limit_ms: 2000,
        handshake_timeout: Duration::from_secs(1),
        ..test_config()
    };
    let mut h = Harness::new(config);
    let publisher = publishing(&mut h);
    let player = h.player("live", "s");
    let slow = h.player("live", "s");
    h.peer(slow).reading = false;
    // Accepted, and never a byte of handshake.
    let silent = h.core.accept(SocketAddr::from(([127, 0, 0, 1], 7001)), ListenerKind::Rtmp, h.now).unwrap();
    // Accepted, then an RTMPE version byte.
    let rtmpe = h.core.accept(SocketAddr::from(([127, 0, 0, 1], 7002)), ListenerKind::Rtmp, h.now).unwrap();
    h.core.handle_input(rtmpe, &[6], h.now);
    h.pump();
    let protocol_label = h.close_reason(rtmpe).expect("RTMPE refused").label();
    // 3 s of 25 fps, a keyframe every second: the slow player drops, then is cut.
    for frame in 1..=75u32 {
        let body = if frame % 25 == 0 { keyframe(2000) } else { inter_frame(1000) };
        h.send_media(publisher, MediaKind::Video, frame * 40, body);
        h.advance(Duration::from_millis(40));
    }
    assert!(matches!(h.close_reason(slow), Some(CloseReason::TooSlow { .. })), "{:?}", h.close_reason(slow));
    assert!(matches!(h.close_reason(silent), Some(CloseReason::HandshakeTimeout(_))), "{:?}", h.close_reason(silent));
    // Open now: publisher, player, the API client, then four more to reach the limit of 7.
    let api = http_client(&mut h, 9000);
    for port in 7003..7007 {
        h.core.accept(SocketAddr::from(([127, 0, 0, 2], port)), ListenerKind::Rtmp, h.now).unwrap();
    }
    assert!(h.core.accept(SocketAddr::from(([127, 0, 0, 2], 7007)), ListenerKind::Rtmp, h.now).is_err());

    let text = get(&mut h, api, "/metrics").body;
    let stats = h.stats();
    assert_eq!(sample(&text, "rtmp_edge_connections_accepted_total"), 10);
    assert_eq!(sample(&text, "rtmp_edge_connections_refused_total{reason=\"too_many_connections\"}"), 1);
    assert_eq!(sample(&text, "rtmp_edge_handshake_timeouts_total"), 1);
    assert_eq!(sample(&text, "rtmp_edge_slow_players_disconnected_total"), 1);
    assert_eq!(sample(&text, &format!("rtmp_edge_protocol_errors_total{{reason=\"{protocol_label}\"}}")), 1);
    let dropped = sample(&text, "rtmp_edge_frames_dropped_total");
    assert!(dropped > 0 && dropped == stats.frames_dropped, "{dropped} vs {stats:?}");
    assert_eq!(sample(&text, "rtmp_edge_connections_ended_total{role=\"player\"}"), 1);
    assert_eq!(sample(&text, "rtmp_edge_connections_ended_total{role=\"connecting\"}"), 2);
    assert_eq!(sample(&text, "rtmp_edge_connections_ended_total{role=\"publisher\"}"), 0);
    assert_eq!(sample(&text, "rtmp_edge_connections{role=\"publisher\"}"), 1);
    assert_eq!(sample(&text, "rtmp_edge_connections{role=\"player\"}"), 1);
    assert_eq!(sample(&text, "rtmp_edge_connections{role=\"http\"}"), 1);
    // Per stream: what players were sent, counted once per player, as the API says it.
    let streams = json(&get(&mut h, api, "/api/v1/streams"));
    let sent = sample(&text, "rtmp_edge_stream_sent_bytes_total{app=\"live\",stream=\"s\"}");
    assert!(sent > 75 * 1000, "{sent}");
    assert_eq!(Some(sent), streams[0]["bytes_out"].as_u64());
    assert_eq!(sample(&text, "rtmp_edge_stream_frames_received_total{app=\"live\",stream=\"s\"}"), 3 + 75);
    assert!(h.peer(player).closed.is_none());
}

#[test]
fn api_fields_that_need_time_or_a_stalled_peer() {
    let config = Config {
        origins: vec!["10.0.0.1:1935".into()],
        push: vec![crate::url::RtmpUrl::parse("rtmp://10.0.0.2:1935/backup").unwrap()],
        queue_soft_limit_ms: 500,
        queue_hard_limit_ms: 60_000,
        ..test_config()
    };
    let mut h = Harness::new(config);
    // 2026-12-04T00:00:00Z.
    h.core.set_unix_time(h.now, Duration::from_secs(1_796_342_400));
    h.advance(Duration::from_secs(1));
    let publisher = publishing(&mut h);
    let stalled = h.player("live", "s");
    h.peer(stalled).reading = false;
    for frame in 1..=50u32 {
        h.send_media(publisher, MediaKind::Video, frame * 40, inter_frame(500));
    }
    h.advance(Duration::from_millis(700));
    // Past the soft limit, new frames up to the next keyframe are dropped for it.
    for frame in 51..=53u32 {
        h.send_media(publisher, MediaKind::Video, frame * 40, inter_frame(500));
    }
    h.pump();
    let api = http_client(&mut h, 9000);
    let streams = json(&get(&mut h, api, "/api/v1/streams"));
    let stream = &streams[0];
    assert_eq!(stream["publisher"]["since"], "2026-12-04T00:00:01.000Z");
    // The GOP: the keyframe at 0 and 53 inter frames, the last at 2120 ms.
    assert_eq!(stream["gop_cache_ms"], 2120);
    let mut kinds: Vec<(String, String)> = stream["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["kind"].as_str().unwrap().to_string(), u["target"].as_str().unwrap().to_string()))
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec![("forward".into(), "10.0.0.1:1935".into()), ("push".into(), "10.0.0.2:1935".into())]);
    let clients = json(&get(&mut h, api, "/api/v1/clients"));
    let view = clients.as_array().unwrap().iter().find(|c| c["client_id"] == stalled.to_u64()).unwrap();
    // Queued since the first frame it did not take, 700 ms ago; past the soft limit of 500 ms
    // the three frames that came next were dropped.
    assert_eq!(view["queue_ms"], 700);
    assert_eq!(view["frames_dropped"], 3, "{view}");
    assert_eq!(h.stats().frames_dropped, 3);
}

#[test]
fn the_summary_line_names_streams_players_and_the_last_minutes_bytes() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let _player = h.player("live", "s");
    h.advance(Duration::from_secs(59));
    assert_eq!(h.core.ops.last_summary, "", "not before a minute");
    let (read_before, written_before) = h.core.byte_totals();
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(100));
    h.advance(Duration::from_secs(2));
    let (read, written) = h.core.byte_totals();
    assert_eq!(
        h.core.ops.last_summary,
        format!(
            "summary: 1 streams (1 live), 1 publishers, 1 players, 2 connections; last 60 s: {} bytes in ({} kbit/s), {} bytes out ({} kbit/s)",
            read,
            read * 8 / 1000 / 60,
            written,
            written * 8 / 1000 / 60
        )
    );
    assert!(read > read_before && written > written_before);
}

#[test]
fn a_reload_sends_new_pulls_to_the_new_origins_and_leaves_open_ones() {
    let mut h = Harness::new(Config { origins: vec!["10.0.0.1:1935".into()], ..test_config() });
    h.player("live", "a");
    assert_eq!(h.connects.last().map(|c| c.1), Some("10.0.0.1:1935".parse().unwrap()));
    let first_pull = h.connects[0].0;
    h.core.handle_reload(Ok(Config { origins: vec!["10.0.0.9:1935".into()], ..test_config() }), h.now);
    h.player("live", "b");
    assert_eq!(h.connects.len(), 2);
    assert_eq!(h.connects[1].1, "10.0.0.9:1935".parse().unwrap(), "the new pull goes to the new origin");
    assert!(h.core.is_open(first_pull), "the pull that was open stays");
}

#[test]
fn an_http_client_that_never_reads_its_answers_is_closed() {
    let mut h = Harness::new(Config { queue_hard_limit_ms: 2000, ..test_config() });
    let api = http_client(&mut h, 9000);
    // Pipelined requests, none of the answers taken.
    let requests = "GET /metrics HTTP/1.1\r\n\r\n".repeat(20);
    let answered = request(&mut h, api, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(answered.len(), 1);
    h.core.handle_input(api, requests.as_bytes(), h.now);
    h.pump();
    assert!(h.advance_until(Duration::from_secs(5), |h| !h.core.is_open(api)));
    assert!(matches!(h.close_reason(api), Some(CloseReason::NotReading { .. })), "{:?}", h.close_reason(api));
}
