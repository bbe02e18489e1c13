//! HTTP-FLV players in the core, on a fake clock: what a joiner gets and in which order,
//! timestamps from 0, one encoding shared by every FLV player (the same bytes at the same
//! address in every queue), nothing encoded without FLV players, waiting for a stream, the
//! slow-player policy, edge pulls, the API, access control, and HEAD/OPTIONS.

use std::collections::HashMap;
use std::time::Duration;

use super::flv_client::{flv_player, http_request, parse_flv, queued, read, split_head, stamps};
use super::harness::{avc_header, inter_frame, keyframe, test_config, Harness};
use super::ops::{aac_frame, aac_header};
use crate::relay::access::{signed_url, AccessConfig, HookOutcome, IpRules, Secret};
use crate::relay::core::{CloseReason, ConnId, StreamKey};
use crate::relay::Config;
use crate::sessions::MediaKind;
use crate::Amf0Value;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const SCRIPT: u8 = 18;

/// A publisher of live/s: metadata, AVC and AAC headers, then a GOP from a keyframe at
/// 1000 ms (inter frames every 40 ms, audio between).
fn publishing(h: &mut Harness) -> ConnId {
    let publisher = h.publisher("live", "s");
    let properties = HashMap::from([("width".to_string(), Amf0Value::Number(640.0))]);
    h.peer(publisher).client().publish_metadata(properties).unwrap();
    h.send_outbound(publisher);
    h.send_media(publisher, MediaKind::Video, 0, avc_header());
    h.send_media(publisher, MediaKind::Audio, 0, aac_header());
    h.send_media(publisher, MediaKind::Video, 1000, keyframe(600));
    h.send_media(publisher, MediaKind::Audio, 1021, aac_frame(50));
    h.send_media(publisher, MediaKind::Video, 1040, inter_frame(300));
    h.pump();
    publisher
}

fn stream_key() -> StreamKey {
    StreamKey::new("live", "s")
}

#[test]
fn a_joiner_gets_metadata_headers_and_the_gop_from_0_then_live_tags() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let player = flv_player(&mut h, 9001, "s");
    let bytes = read(&mut h, player);
    let (head, body) = split_head(&bytes);
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache, no-store\r\n\
         Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n"
    );
    let (flags, tags) = parse_flv(&body);
    assert_eq!(flags, 5, "audio and video");
    assert_eq!(stamps(&tags), [(SCRIPT, 0), (VIDEO, 0), (AUDIO, 0), (VIDEO, 0), (AUDIO, 21), (VIDEO, 40)]);
    assert_eq!(tags[1].data, avc_header().to_vec());
    assert_eq!(tags[3].data, keyframe(600).to_vec());
    assert!(tags[0].data.windows(10).any(|w| w == b"onMetaData"));

    h.send_media(publisher, MediaKind::Video, 1080, inter_frame(200));
    h.pump();
    let live = read(&mut h, player);
    assert_eq!(super::flv_client::parse_tags(&live), [super::flv_client::Tag { tag_type: VIDEO, timestamp: 80, data: inter_frame(200).to_vec() }]);
    let view = super::flv_client::client_view(&mut h, player);
    assert_eq!((view["role"].as_str(), view["protocol"].as_str(), view["name"].as_str()), (Some("player"), Some("http-flv"), Some("s")));
    assert_eq!(h.stats().players, 1);
}

#[test]
fn every_flv_player_queues_the_same_tail_and_players_of_one_gop_the_same_head() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let rtmp = h.player("live", "s");
    let (first, second) = (flv_player(&mut h, 9001, "s"), flv_player(&mut h, 9002, "s"));
    read(&mut h, first);
    read(&mut h, second);
    // A new GOP: a third player joins it, on a timeline of its own that starts at 0.
    h.send_media(publisher, MediaKind::Video, 3000, keyframe(500));
    h.pump();
    read(&mut h, first);
    read(&mut h, second);
    let late = flv_player(&mut h, 9003, "s");
    let (_, body) = split_head(&read(&mut h, late));
    assert_eq!(stamps(&parse_flv(&body).1), [(SCRIPT, 0), (VIDEO, 0), (AUDIO, 0), (VIDEO, 0)]);
    h.peer(rtmp).reading = false;

    h.send_media(publisher, MediaKind::Video, 3040, inter_frame(700));
    let [a, b, c] = [first, second, late].map(|id| queued(&h, id));
    assert_eq!((a.len(), b.len(), c.len()), (2, 2, 2), "a head and a tail each");
    assert_eq!(a[1].0, b[1].0, "one tail for every FLV player");
    assert_eq!(a[1].0, c[1].0, "the late joiner's tail is the same bytes");
    assert_eq!(a[0].0, b[0].0, "players of one GOP share the head");
    assert_ne!(a[0].0, c[0].0, "another timeline, another head");
    assert_eq!(&a[1].1[..700], &inter_frame(700)[..]);
    let timestamp = |head: &[u8]| u32::from_be_bytes([head[7], head[4], head[5], head[6]]);
    assert_eq!((timestamp(&a[0].1), timestamp(&c[0].1)), (2040, 40));
    let rtmp_queued = queued(&h, rtmp);
    assert!(rtmp_queued.iter().all(|(address, _)| *address != a[1].0), "RTMP players get chunks, not FLV");
    let stream = &h.core.streams[&stream_key()];
    let mut bases = stream.flv.bases();
    bases.sort_unstable();
    assert_eq!(bases, [1000, 3000]);
}

#[test]
fn nothing_is_encoded_as_flv_while_no_flv_player_watches() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let tails = |h: &Harness| h.core.streams[&stream_key()].join_frames().map(|f| f.flv_tail.is_some()).collect::<Vec<_>>();
    assert_eq!(tails(&h), [false; 6]);
    let player = flv_player(&mut h, 9001, "s");
    assert_eq!(tails(&h), [true; 6], "the caches get tails when the first FLV player joins");
    h.core.handle_closed(player, CloseReason::PeerClosed, h.now);
    h.send_media(publisher, MediaKind::Video, 1080, inter_frame(100));
    h.pump();
    assert_eq!(tails(&h), [true, true, true, true, true, true, false], "and new frames none once it left");
    assert_eq!(h.core.streams[&stream_key()].flv.subscribers, 0);
    assert!(h.core.streams[&stream_key()].flv.bases().is_empty());
}

#[test]
fn a_player_of_a_stream_not_live_waits_and_starts_at_its_first_keyframe() {
    let mut h = Harness::new(test_config());
    let player = flv_player(&mut h, 9001, "s");
    let (head, rest) = split_head(&read(&mut h, player));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n"), "{head}");
    assert!(rest.is_empty());
    let publisher = h.publisher("live", "s");
    h.send_media(publisher, MediaKind::Video, 500, avc_header());
    h.send_media(publisher, MediaKind::Audio, 500, aac_header());
    h.send_media(publisher, MediaKind::Video, 520, inter_frame(100));
    h.pump();
    assert!(!h.core.has_queued(player), "nothing before a frame to start at");
    h.send_media(publisher, MediaKind::Video, 560, keyframe(300));
    h.send_media(publisher, MediaKind::Audio, 570, aac_frame(30));
    h.pump();
    let (flags, tags) = parse_flv(&read(&mut h, player));
    assert_eq!(flags, 5);
    assert_eq!(stamps(&tags), [(VIDEO, 0), (AUDIO, 0), (VIDEO, 0), (AUDIO, 10)]);

    // An audio-only stream starts at its first audio frame, with the audio flag alone.
    let audio_player = flv_player(&mut h, 9002, "radio");
    read(&mut h, audio_player);
    let radio = h.publisher("live", "radio");
    h.send_media(radio, MediaKind::Audio, 9000, aac_header());
    h.send_media(radio, MediaKind::Audio, 9023, aac_frame(40));
    h.pump();
    let (flags, tags) = parse_flv(&read(&mut h, audio_player));
    assert_eq!((flags, stamps(&tags)), (4, vec![(AUDIO, 0), (AUDIO, 0)]));
}

#[test]
fn a_slow_flv_player_drops_to_the_next_keyframe_then_is_disconnected() {
    let config = Config { queue_soft_limit_ms: 300, queue_hard_limit_ms: 1000, ..test_config() };
    let mut h = Harness::new(config);
    let publisher = publishing(&mut h);
    let player = flv_player(&mut h, 9001, "s");
    read(&mut h, player);
    let mut timestamp = 1080;
    for _ in 0..10 {
        h.advance(Duration::from_millis(40));
        h.send_media(publisher, MediaKind::Video, timestamp, inter_frame(100));
        timestamp += 40;
    }
    assert!(h.stats().frames_dropped > 0, "dropped under the soft limit");
    // Reading again, it resumes at the next keyframe and nothing between.
    read(&mut h, player);
    h.send_media(publisher, MediaKind::Video, timestamp, inter_frame(100));
    h.send_media(publisher, MediaKind::Video, timestamp + 40, keyframe(200));
    h.pump();
    let tags = super::flv_client::parse_tags(&read(&mut h, player));
    assert_eq!(stamps(&tags), [(VIDEO, timestamp + 40 - 1000)], "only the keyframe, on its timeline");
    for _ in 0..40 {
        h.advance(Duration::from_millis(40));
        timestamp += 40;
        h.send_media(publisher, MediaKind::Video, timestamp + 40, inter_frame(100));
    }
    assert!(matches!(h.close_reason(player), Some(CloseReason::TooSlow { .. })), "{:?}", h.close_reason(player));
    assert_eq!(h.stats().slow_players_disconnected, 1);
    assert!(h.core.streams[&stream_key()].players.is_empty());
}

#[test]
fn on_an_edge_an_flv_play_opens_the_pull_with_its_query() {
    let config = Config { origins: vec!["10.0.0.1:1935".into()], ..test_config() };
    let mut h = Harness::new(config);
    let player = http_request(&mut h, 9001, "GET /live/s.flv?token=abc HTTP/1.1\r\nHost: relay\r\n\r\n");
    assert_eq!(h.connects.len(), 1, "one pull");
    let upstream = h.connects[0].0;
    h.accept_upstream(upstream);
    let asked: Vec<String> = h.peer(upstream).origin_events.iter().filter_map(|e| match e {
        crate::sessions::ServerSessionEvent::PlayRequested { stream_name, .. } => Some(stream_name.clone()),
        _ => None,
    }).collect();
    assert_eq!(asked, ["s?token=abc"]);
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(70_000), avc_header()).unwrap();
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(70_000), keyframe(400)).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    let (_, body) = split_head(&read(&mut h, player));
    let (flags, tags) = parse_flv(&body);
    assert_eq!((flags, stamps(&tags)), (1, vec![(VIDEO, 0), (VIDEO, 0)]), "from 0, however late the origin's clock");
}

#[test]
fn on_an_edge_rtmp_and_flv_players_of_a_stream_share_one_pull() {
    let config = Config { origins: vec!["10.0.0.1:1935".into()], ..test_config() };
    let mut h = Harness::new(config);
    let rtmp_player = h.player("live", "s");
    assert_eq!(h.connects.len(), 1, "the RTMP play opens the pull");
    let flv_player = http_request(&mut h, 9001, "GET /live/s.flv HTTP/1.1\r\nHost: relay\r\n\r\n");
    assert_eq!(h.connects.len(), 1, "the HTTP-FLV play of the same stream shares it");
    let upstream = h.connects[0].0;
    h.accept_upstream(upstream);
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(5_000), avc_header()).unwrap();
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(5_000), keyframe(400)).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    assert_eq!(h.stats().pulls, 1);
    let rtmp_media: Vec<u32> = h.peer(rtmp_player).media().iter().map(|(_, timestamp, _)| *timestamp).collect();
    assert_eq!(rtmp_media.len(), 2, "the RTMP player gets the header and the keyframe: {rtmp_media:?}");
    let (_, body) = split_head(&read(&mut h, flv_player));
    let (_, tags) = parse_flv(&body);
    assert_eq!(stamps(&tags), vec![(VIDEO, 0), (VIDEO, 0)], "and so does the HTTP-FLV player");
}

#[test]
fn flv_plays_are_decided_like_rtmp_plays_by_hook_ip_rules_and_signature() {
    let access = AccessConfig { hook_url: Some("http://127.0.0.1:9/hook".parse().unwrap()), ..AccessConfig::default() };
    let mut h = Harness::new(Config { access, ..test_config() });
    let player = http_request(&mut h, 9001, "GET /live/s.flv?token=t1 HTTP/1.1\r\nHost: relay:8080\r\nReferer: http://page.test/w\r\n\r\n");
    assert!(!h.core.has_queued(player), "nothing before the decision");
    let (hook, call, _) = h.hooks.remove(0);
    let payload: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        (&payload["action"], &payload["protocol"], &payload["stream"], &payload["param"]),
        (&"play".into(), &"http-flv".into(), &"s".into(), &"?token=t1".into())
    );
    assert_eq!((&payload["tc_url"], &payload["page_url"]), (&"http://relay:8080/live".into(), &"http://page.test/w".into()));
    h.core.handle_hook_result(hook, HookOutcome::Answered { status: 403, body: Vec::new() }, h.now);
    h.pump();
    let (head, body) = split_head(&read(&mut h, player));
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n") && head.contains("Access-Control-Allow-Origin: *"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("hook"));
    assert!(matches!(h.close_reason(player), Some(CloseReason::AccessDenied(_))));
    assert_eq!(h.stats().players, 0);

    let rules = IpRules::parse(&[(false, "127.0.0.0/8")]).unwrap();
    let access = AccessConfig { play_rules: rules, ..AccessConfig::default() };
    let mut h = Harness::new(Config { access, ..test_config() });
    let denied = flv_player(&mut h, 9002, "s");
    assert!(split_head(&read(&mut h, denied)).0.starts_with("HTTP/1.1 403 "));
    assert!(h.hooks.is_empty());

    // Signed names: the query carries exp and sig, checked against the driver's wall clock.
    let secret = Secret::new("s3cret").unwrap();
    let access = AccessConfig { play_secret: Some(secret), ..AccessConfig::default() };
    let mut h = Harness::new(Config { access, ..test_config() });
    h.core.set_unix_time(h.now, Duration::from_secs(1_700_000_000));
    let query = signed_url::signed_query(b"s3cret", "live", "s", 1_700_000_100);
    let signed = http_request(&mut h, 9003, &format!("GET /live/s.flv?{query} HTTP/1.1\r\n\r\n"));
    assert!(split_head(&read(&mut h, signed)).0.starts_with("HTTP/1.1 200 OK\r\n"));
    let unsigned = flv_player(&mut h, 9004, "s");
    let (head, body) = split_head(&read(&mut h, unsigned));
    assert!(head.starts_with("HTTP/1.1 403 ") && String::from_utf8_lossy(&body).contains("not signed"), "{head}");
    let expired_query = signed_url::signed_query(b"s3cret", "live", "s", 1_699_999_999);
    let expired = http_request(&mut h, 9005, &format!("GET /live/s.flv?{expired_query} HTTP/1.1\r\n\r\n"));
    assert!(split_head(&read(&mut h, expired)).0.starts_with("HTTP/1.1 403 "));
    assert_eq!(h.stats().players, 1);
}

#[test]
fn head_options_and_bad_paths_are_answered_without_playing() {
    let mut h = Harness::new(test_config());
    let not_live = http_request(&mut h, 9001, "HEAD /live/s.flv HTTP/1.1\r\n\r\n");
    assert!(split_head(&read(&mut h, not_live)).0.starts_with("HTTP/1.1 404 "));
    publishing(&mut h);
    let live = http_request(&mut h, 9002, "HEAD /live/s.flv HTTP/1.1\r\n\r\n");
    let (head, body) = split_head(&read(&mut h, live));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n") && body.is_empty(), "{head}");
    let preflight = http_request(
        &mut h,
        9003,
        "OPTIONS /live/s.flv HTTP/1.1\r\nOrigin: http://other.test\r\nAccess-Control-Request-Headers: range\r\n\r\n",
    );
    let (head, _) = split_head(&read(&mut h, preflight));
    assert!(head.starts_with("HTTP/1.1 204 No Content\r\n") && !head.contains("Content-Length"), "{head}");
    for header in ["Access-Control-Allow-Origin: *", "Access-Control-Allow-Methods: GET, HEAD, OPTIONS", "Access-Control-Allow-Headers: range"] {
        assert!(head.contains(header), "{header} in {head}");
    }
    let bad = http_request(&mut h, 9004, "GET /live/%zz.flv HTTP/1.1\r\n\r\n");
    assert!(split_head(&read(&mut h, bad)).0.starts_with("HTTP/1.1 400 "));
    assert_eq!(h.core.streams[&stream_key()].players.len(), 0);
    assert_eq!(h.stats().players, 0);
}

#[test]
fn flv_players_do_not_count_against_the_http_limit_and_are_never_evicted() {
    let mut h = Harness::new(Config { http_max_connections: 2, ..test_config() });
    let players: Vec<ConnId> = (0..4).map(|i| flv_player(&mut h, 9001 + i, "s")).collect();
    for player in &players {
        read(&mut h, *player);
    }
    let api = super::ops::http_client(&mut h, 9100);
    let other = super::ops::http_client(&mut h, 9101);
    let third = super::ops::http_client(&mut h, 9102);
    assert!(h.core.is_open(other) && h.core.is_open(third));
    assert!(!h.core.is_open(api), "the idle API client made room, not a player");
    assert!(players.iter().all(|id| h.core.is_open(*id)));
    // Waiting players are not idle either.
    h.advance(Duration::from_secs(120));
    assert!(players.iter().all(|id| h.core.is_open(*id)));
}
