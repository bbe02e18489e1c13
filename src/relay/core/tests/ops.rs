//! The operator side of the core: HTTP connections (API, metrics, health), their limits
//! and timers, kicks, reloads, and the counters behind them.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::harness::{avc_header, inter_frame, keyframe, test_config, Harness};
use crate::relay::core::{CloseReason, ConnId, ListenerKind, Refusal};
use crate::relay::Config;
use crate::sessions::{ClientSessionEvent, MediaKind};

/// The AAC-LC sequence header (44.1 kHz stereo).
pub(super) fn aac_header() -> Bytes {
    Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10])
}

pub(super) fn aac_frame(len: usize) -> Bytes {
    let mut body = vec![0xAF, 0x01];
    body.resize(len.max(2), 0x21);
    Bytes::from(body)
}

/// An HTTP client connection from 127.0.0.1:`port`.
pub(super) fn http_client(h: &mut Harness, port: u16) -> ConnId {
    h.core.accept(SocketAddr::from(([127, 0, 0, 1], port)), ListenerKind::Http, h.now).expect("HTTP accepted")
}

/// Everything the core queued for `id`, as a peer reading all of it would get it.
pub(super) fn take_output(h: &mut Harness, id: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    while h.core.has_queued(id) {
        let mut slices = [IoSlice::new(&[]); 16];
        let count = h.core.write_slices(id, &mut slices);
        let before = out.len();
        for slice in &slices[..count] {
            out.extend_from_slice(slice);
        }
        let written = out.len() - before;
        h.core.handle_written(id, written, h.now);
    }
    h.pump();
    out
}

/// One response: status, head (lower-cased) and body.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Splits `bytes` into the responses it holds, in order.
pub(super) fn answers(bytes: &[u8]) -> Vec<Answer> {
    let mut text = String::from_utf8(bytes.to_vec()).expect("UTF-8 responses");
    let mut found = Vec::new();
    while !text.is_empty() {
        let (head, rest) = text.split_once("\r\n\r\n").expect("a complete head");
        let head = head.to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map(|value| value.parse().unwrap())
            .unwrap_or(0);
        let status = head[9..12].parse().unwrap();
        // A HEAD answer announces a length but has no body: the next answer follows at once.
        let body_length = if rest.starts_with("HTTP/1.1 ") { 0 } else { length.min(rest.len()) };
        found.push(Answer { status, head: head.clone(), body: rest[..body_length].to_string() });
        text = rest[body_length..].to_string();
    }
    found
}

pub(super) fn request(h: &mut Harness, id: ConnId, raw: &str) -> Vec<Answer> {
    h.core.handle_input(id, raw.as_bytes(), h.now);
    h.pump();
    answers(&take_output(h, id))
}

pub(super) fn get(h: &mut Harness, id: ConnId, path: &str) -> Answer {
    let mut found = request(h, id, &format!("GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

pub(super) fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

/// A publisher of live/s sending H.264 and AAC headers, then a keyframe.
pub(super) fn publishing(h: &mut Harness) -> ConnId {
    let publisher = h.publisher("live", "s");
    h.send_media(publisher, MediaKind::Video, 0, avc_header());
    h.send_media(publisher, MediaKind::Audio, 0, aac_header());
    h.send_media(publisher, MediaKind::Video, 0, keyframe(1000));
    h.pump();
    publisher
}

#[test]
fn the_streams_api_shows_publisher_codecs_players_and_bitrates() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let players: Vec<ConnId> = (0..3).map(|_| h.player("live", "s")).collect();
    // 10 s of 30 video frames of 5,000 bytes and 40 audio frames of 250 bytes a second.
    for tenth in 0..100u32 {
        for frame in 0..2 {
            h.send_media(publisher, MediaKind::Video, tenth * 100 + frame * 40, inter_frame(5000));
        }
        h.send_media(publisher, MediaKind::Video, tenth * 100 + 80, inter_frame(5000));
        for frame in 0..4 {
            h.send_media(publisher, MediaKind::Audio, tenth * 100 + frame * 25, aac_frame(250));
        }
        h.advance(Duration::from_millis(100));
    }
    let api = http_client(&mut h, 9000);
    let streams = json(&get(&mut h, api, "/api/v1/streams"));
    let stream = &streams[0];
    assert_eq!(streams.as_array().unwrap().len(), 1);
    assert_eq!((stream["app"].as_str(), stream["name"].as_str()), (Some("live"), Some("s")));
    assert_eq!(stream["players"], 3);
    assert_eq!(stream["live"], true);
    let publisher_view = &stream["publisher"];
    assert_eq!(publisher_view["client_id"], publisher.to_u64());
    assert_eq!(publisher_view["ip"], "127.0.0.1");
    assert_eq!((publisher_view["video_codec"].as_str(), publisher_view["audio_codec"].as_str()), (Some("h264"), Some("aac")));
    // 30 video frames of 5,000 bytes and 40 audio frames of 250 a second: 1,280 kbit/s.
    let kbps_in = stream["kbps_in"].as_u64().unwrap();
    assert!((1250..=1310).contains(&kbps_in), "kbps_in {kbps_in}");
    let kbps_out = stream["kbps_out"].as_u64().unwrap();
    assert!((3 * 1250..=3 * 1330).contains(&kbps_out), "three players' worth out: {kbps_out}");
    assert_eq!(stream["upstream"], serde_json::Value::Null);
    let bytes_in = stream["bytes_in"].as_u64().unwrap();
    assert!(bytes_in > 1_500_000, "{bytes_in}");

    let clients = json(&get(&mut h, api, "/api/v1/clients"));
    let roles: Vec<&str> = clients.as_array().unwrap().iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "player").count(), 3);
    assert_eq!(roles.iter().filter(|r| **r == "publisher").count(), 1);
    assert_eq!(roles.iter().filter(|r| **r == "http").count(), 1);
    for player in &players {
        let view = clients.as_array().unwrap().iter().find(|c| c["client_id"] == player.to_u64()).unwrap();
        assert_eq!((view["app"].as_str(), view["name"].as_str(), view["protocol"].as_str()), (Some("live"), Some("s"), Some("rtmp")));
        assert!(view["bytes_out"].as_u64().unwrap() > 1_000_000);
    }
}

#[test]
fn a_kicked_publisher_leaves_its_players_waiting_and_a_kicked_player_is_closed() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let player = h.player("live", "s");
    let other = h.player("live", "s");
    let api = http_client(&mut h, 9000);
    let kicked = request(&mut h, api, &format!("DELETE /api/v1/clients/{} HTTP/1.1\r\n\r\n", publisher.to_u64()));
    assert_eq!(kicked[0].status, 200);
    assert_eq!(json(&kicked[0])["role"], "publisher");
    assert_eq!(h.close_reason(publisher), Some(&CloseReason::Kicked));
    assert!(h.peer(player).closed.is_none() && h.peer(other).closed.is_none(), "players stay");
    assert_eq!(h.peer(player).count_events(|e| matches!(e, ClientSessionEvent::StreamDry { .. })), 1);
    // They resume with the next publisher, as after a publisher that left by itself.
    let next = h.publisher("live", "s");
    h.send_media(next, MediaKind::Video, 0, keyframe(300));
    h.pump();
    assert!(h.peer(player).media().iter().any(|(_, _, body)| body.len() == 300));

    let gone = request(&mut h, api, &format!("DELETE /api/v1/clients/{} HTTP/1.1\r\n\r\n", other.to_u64()));
    assert_eq!(gone[0].status, 200);
    assert_eq!(h.close_reason(other), Some(&CloseReason::Kicked));
    let again = request(&mut h, api, &format!("DELETE /api/v1/clients/{} HTTP/1.1\r\n\r\n", other.to_u64()));
    assert_eq!(again[0].status, 404, "an id is never reused for another connection");
    let metrics = get(&mut h, api, "/metrics");
    assert!(metrics.body.contains("rtmp_edge_connections_closed_total{reason=\"kicked\"} 2\n"), "{}", metrics.body);
}

#[test]
fn the_token_guards_the_api_and_metrics_but_not_health_or_the_page() {
    let mut h = Harness::new(Config { http_token: Some("s3cret".into()), ..test_config() });
    let api = http_client(&mut h, 9000);
    for path in ["/metrics", "/api/v1/streams", "/api/v1/clients", "/api/v1/summary"] {
        let answer = get(&mut h, api, path);
        assert_eq!(answer.status, 401, "{path}");
        assert!(answer.head.contains("www-authenticate: bearer"), "{path}");
    }
    let wrong = request(&mut h, api, "DELETE /api/v1/clients/0 HTTP/1.1\r\nAuthorization: Bearer s3cre\r\n\r\n");
    assert_eq!(wrong[0].status, 401);
    let right = request(&mut h, api, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n");
    assert_eq!(right[0].status, 200);
    assert!(right[0].head.contains("content-type: text/plain; version=0.0.4"));
    assert_eq!(get(&mut h, api, "/healthz").status, 200);
    let page = get(&mut h, api, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>rtmp-edge</title>"));
}

#[test]
fn pipelined_requests_are_answered_in_order_and_head_has_no_body() {
    let mut h = Harness::new(test_config());
    let api = http_client(&mut h, 9000);
    let found = request(&mut h, api, "GET /healthz HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\nPOST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /healthz HTTP/1.0\r\n\r\n");
    let statuses: Vec<u16> = found.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![200, 200, 404, 405, 200]);
    assert_eq!(found[0].body, "ok\n");
    assert!(found[1].body.is_empty() && found[1].head.contains("content-length: "));
    assert!(found[3].head.contains("allow: get, head"));
    assert!(found[4].head.contains("connection: close"), "HTTP/1.0 without keep-alive");
    assert_eq!(h.close_reason(api), Some(&CloseReason::HttpDone));
}

#[test]
fn garbage_and_oversized_heads_are_answered_with_an_error_and_closed() {
    let mut h = Harness::new(test_config());
    let garbage = http_client(&mut h, 9000);
    let answer = request(&mut h, garbage, "\u{3}\u{0}\u{0}\u{0}hello\r\n\r\n");
    assert_eq!(answer[0].status, 400);
    assert!(matches!(h.close_reason(garbage), Some(CloseReason::HttpBadRequest(_))));
    let huge = http_client(&mut h, 9001);
    let mut head = "GET / HTTP/1.1\r\nX-Filler: ".to_string();
    head.push_str(&"a".repeat(100_000));
    let answer = request(&mut h, huge, &head);
    assert_eq!(answer[0].status, 431);
    assert!(matches!(h.close_reason(huge), Some(CloseReason::HttpBadRequest(_))));
    assert_eq!(h.stats().protocol_errors, 2);
}

#[test]
fn slow_heads_time_out_idle_keep_alives_close_and_rtmp_players_go_on() {
    let config = Config {
        http_header_timeout: Duration::from_secs(2),
        http_idle_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let mut h = Harness::new(config);
    let publisher = publishing(&mut h);
    let player = h.player("live", "s");
    let silent = http_client(&mut h, 9000);
    let slowloris = http_client(&mut h, 9001);
    let keep_alive = http_client(&mut h, 9002);
    assert_eq!(get(&mut h, keep_alive, "/healthz").status, 200);
    super::log_capture::start();
    // One byte every 500 ms: each keeps the connection busy, none finishes the head.
    for (step, byte) in b"GET /metrics HTTP/1.1\r\nX: y".iter().enumerate().take(6) {
        h.core.handle_input(slowloris, &[*byte], h.now);
        h.send_media(publisher, MediaKind::Video, step as u32 * 500, inter_frame(100));
        h.advance(Duration::from_millis(500));
    }
    assert!(matches!(h.close_reason(silent), Some(CloseReason::HttpHeaderTimeout(_))));
    assert!(matches!(h.close_reason(slowloris), Some(CloseReason::HttpHeaderTimeout(_))));
    // The slow-loris client is named in a warning; the silent one (a browser's
    // preconnect, maybe) only at debug.
    let closes = super::log_capture::containing("request head not received");
    let level_of = |port: u16| closes.iter().find(|(_, line)| line.contains(&format!(":{port}: "))).map(|(level, _)| *level);
    assert_eq!(level_of(9001), Some(log::Level::Warn), "{closes:?}");
    assert_eq!(level_of(9000), Some(log::Level::Debug), "{closes:?}");
    assert!(h.close_reason(keep_alive).is_none(), "answered and idle: its own timer");
    h.advance(Duration::from_secs(3));
    assert!(matches!(h.close_reason(keep_alive), Some(CloseReason::Idle(_))));
    assert!(h.peer(player).closed.is_none());
    assert_eq!(h.peer(player).media().iter().filter(|(_, _, body)| body.len() == 100).count(), 6);
}

#[test]
fn at_the_http_limit_the_longest_idle_connection_makes_room() {
    let mut h = Harness::new(Config { http_max_connections: 3, ..test_config() });
    let first = http_client(&mut h, 9000);
    h.advance(Duration::from_millis(100));
    let second = http_client(&mut h, 9001);
    let busy = http_client(&mut h, 9002);
    h.core.handle_input(busy, b"GET /healthz HTTP/1.1\r\n", h.now);
    h.advance(Duration::from_millis(100));
    let fourth = http_client(&mut h, 9003);
    h.pump();
    assert_eq!(h.close_reason(first), Some(&CloseReason::HttpEvicted));
    let _fifth = http_client(&mut h, 9004);
    h.pump();
    assert_eq!(h.close_reason(second), Some(&CloseReason::HttpEvicted));
    assert!(h.close_reason(busy).is_none() && h.close_reason(fourth).is_none());
    // Connections waiting for an answer are never taken: with all three waiting, refused.
    h.core.handle_input(busy, b"\r\nPOST /api/v1/reload HTTP/1.1\r\n\r\n", h.now);
    for id in [fourth, _fifth] {
        h.core.handle_input(id, b"POST /api/v1/reload HTTP/1.1\r\n\r\n", h.now);
    }
    assert_eq!(h.core.ops.reload_waiters.len(), 3);
    let refused = h.core.accept(SocketAddr::from(([127, 0, 0, 1], 9005)), ListenerKind::Http, h.now);
    assert_eq!(refused, Err(Refusal::TooManyHttpConnections { max: 3 }));
    // RTMP is not limited by HTTP's bound.
    h.connect_client();
}

#[test]
fn a_reload_applies_to_the_next_connection_and_a_bad_one_is_refused() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let player = h.player("live", "s");
    let api = http_client(&mut h, 9000);
    // The answer, and the request pipelined behind it, wait for the driver.
    let waiting = request(&mut h, api, "POST /api/v1/reload HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
    assert!(waiting.is_empty());
    assert_eq!(h.reloads_asked, 1);
    // The chunk size was announced to connected peers: it stays until a restart.
    let tighter = Config { max_connections_per_ip: 3, chunk_size: 128, ..test_config() };
    h.core.handle_reload(Ok(tighter), h.now);
    let answered = answers(&take_output(&mut h, api));
    assert_eq!(answered.iter().map(|a| a.status).collect::<Vec<_>>(), vec![200, 200]);
    assert_eq!(json(&answered[0])["reloaded"], true);
    assert_eq!(h.core.config().max_connections_per_ip, 3);
    // Three connections from 127.0.0.1 are open: the next one is refused, the old ones stay.
    let refused = h.core.accept(SocketAddr::from(([127, 0, 0, 1], 9999)), ListenerKind::Rtmp, h.now);
    assert_eq!(refused, Err(Refusal::TooManyFromAddress { ip: [127, 0, 0, 1].into(), max: 3 }));
    assert_eq!(h.core.config().chunk_size, test_config().chunk_size);
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(3000));
    h.pump();
    assert!(h.peer(player).media().iter().any(|(_, _, body)| body.len() == 3000), "the player still decodes");

    request(&mut h, api, "POST /api/v1/reload HTTP/1.1\r\n\r\n");
    let bad = Config { queue_soft_limit_ms: 9_000, queue_hard_limit_ms: 100, ..test_config() };
    h.core.handle_reload(Ok(bad), h.now);
    let refused = answers(&take_output(&mut h, api));
    assert_eq!(refused[0].status, 422);
    assert!(json(&refused[0])["error"].as_str().unwrap().contains("queue-soft-limit"));
    request(&mut h, api, "POST /api/v1/reload HTTP/1.1\r\n\r\n");
    h.core.handle_reload(Err("rtmp-edge.toml: line 3, column 1: unknown field".into()), h.now);
    let refused = answers(&take_output(&mut h, api));
    assert!(json(&refused[0])["error"].as_str().unwrap().contains("line 3"));
    assert_eq!(h.core.config().max_connections_per_ip, 3, "the running configuration stays");
    let metrics = get(&mut h, api, "/metrics");
    assert!(metrics.body.contains("rtmp_edge_config_reloads_total{result=\"applied\"} 1\n"));
    assert!(metrics.body.contains("rtmp_edge_config_reloads_total{result=\"refused\"} 2\n"));
}

#[test]
fn health_turns_503_in_a_shutdown_and_new_http_clients_are_still_answered() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let stalled = h.player("live", "s");
    h.peer(stalled).reading = false;
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(100));
    h.core.begin_shutdown(h.now);
    h.pump();
    assert!(!h.stopped, "the stalled player keeps the shutdown waiting");
    let probe = http_client(&mut h, 9000);
    let answer = get(&mut h, probe, "/healthz");
    assert_eq!(answer.status, 503);
    assert!(answer.head.contains("connection: close"));
    assert_eq!(h.close_reason(probe), Some(&CloseReason::Shutdown));
    assert!(h.core.accept(SocketAddr::from(([127, 0, 0, 1], 9001)), ListenerKind::Rtmp, h.now).is_err());
    h.advance(Duration::from_secs(4));
    assert!(h.stopped);
    let late = h.core.accept(SocketAddr::from(([127, 0, 0, 1], 9002)), ListenerKind::Http, h.now);
    assert_eq!(late, Err(Refusal::ShuttingDown), "after the deadline HTTP is refused too");
}

#[test]
fn stream_series_end_with_their_stream_and_totals_keep_closed_connections() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let player = h.player("live", "s");
    let api = http_client(&mut h, 9000);
    let live = get(&mut h, api, "/metrics").body;
    assert!(live.contains("rtmp_edge_stream_players{app=\"live\",stream=\"s\"} 1\n"), "{live}");
    assert!(live.contains("rtmp_edge_stream_frames_received_total{app=\"live\",stream=\"s\"} 3\n"), "{live}");
    assert!(live.contains("rtmp_edge_connections{role=\"publisher\"} 1\n"));
    let (read_before, _) = h.core.byte_totals();
    h.core.handle_closed(player, CloseReason::PeerClosed, h.now);
    h.core.handle_closed(publisher, CloseReason::PeerClosed, h.now);
    h.pump();
    let ended = get(&mut h, api, "/metrics").body;
    assert!(!ended.contains("rtmp_edge_stream_players{"), "{ended}");
    assert!(ended.contains("rtmp_edge_streams 0\n"));
    let received: u64 = ended
        .lines()
        .find_map(|line| line.strip_prefix("rtmp_edge_received_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(received >= read_before, "closed connections' bytes stay in the total");
    assert!(ended.contains("rtmp_edge_connections_closed_total{reason=\"peer_closed\"} 2\n"));
    assert!(ended.contains("rtmp_edge_http_responses_total{code=\"200\"} 1\n"));
}

#[test]
fn the_summary_runs_every_minute() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    h.advance(Duration::from_secs(59));
    assert_eq!(h.core.ops.summary_totals, (0, 0));
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(100));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.core.ops.summary_totals, h.core.byte_totals());
}

#[test]
fn a_pulled_stream_shows_its_upstream_and_its_reconnects() {
    let config = Config { origins: vec!["10.0.0.1:1935".into()], ..test_config() };
    let mut h = Harness::new(config);
    let player = h.player("live", "s");
    let upstream = h.connects[0].0;
    let api = http_client(&mut h, 9000);
    let dialing = json(&get(&mut h, api, "/api/v1/streams"));
    assert_eq!(dialing[0]["upstream"]["state"], "connecting");
    h.accept_upstream(upstream);
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(0), avc_header()).unwrap();
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(0), keyframe(400)).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    let playing = json(&get(&mut h, api, "/api/v1/streams"));
    let stream = &playing[0];
    assert_eq!(stream["publisher"], serde_json::Value::Null);
    assert_eq!((stream["live"].as_bool(), stream["video_codec"].as_str()), (Some(true), Some("h264")));
    assert_eq!(stream["upstream"], serde_json::json!({"kind": "pull", "target": "10.0.0.1:1935", "state": "playing", "reconnects": 0}));
    let clients = json(&get(&mut h, api, "/api/v1/clients"));
    let pull = clients.as_array().unwrap().iter().find(|c| c["client_id"] == upstream.to_u64()).unwrap();
    assert_eq!((pull["role"].as_str(), pull["name"].as_str()), (Some("pull"), Some("s")));

    h.core.handle_closed(upstream, CloseReason::PeerClosed, h.now);
    h.pump();
    let lost = json(&get(&mut h, api, "/api/v1/streams"));
    assert_eq!((lost[0]["upstream"]["state"].as_str(), lost[0]["upstream"]["reconnects"].as_u64()), (Some("backoff"), Some(1)));
    assert!(get(&mut h, api, "/metrics").body.contains("rtmp_edge_upstream_reconnects_total 1\n"));
    assert!(h.peer(player).closed.is_none());
}
