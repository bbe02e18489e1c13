//! Access control in the core, on a fake clock: requests wait for the hook with nothing
//! relayed, denials carry the status and the reason, the core's own timer settles a hook
//! that never answers, and every bound holds.

use std::net::SocketAddr;
use std::time::Duration;

use super::harness::{avc_header, inter_frame, keyframe, raw_commands, raw_video, test_config, Harness};
use crate::relay::access::{signed_url, AccessConfig, HookFailPolicy, HookOutcome, IpRules, Secret};
use crate::relay::core::{CloseReason, ConnId, HookId};
use crate::relay::Config;
use crate::sessions::{ClientSessionEvent, MediaKind, PublishMode, RejectedRequestKind};

const TIMEOUT: Duration = Duration::from_millis(1000);

fn hooked(access: AccessConfig) -> Config {
    let access = AccessConfig {
        hook_url: Some("http://127.0.0.1:9/hook".parse().unwrap()),
        hook_timeout: TIMEOUT,
        ..access
    };
    Config { access, ..test_config() }
}

fn allow() -> HookOutcome {
    HookOutcome::Answered { status: 200, body: Vec::new() }
}

fn answer(h: &mut Harness, id: HookId, outcome: HookOutcome) {
    h.core.handle_hook_result(id, outcome, h.now);
    h.pump();
}

/// The JSON of every hook call asked for so far, and forgets them.
fn take_calls(h: &mut Harness) -> Vec<(HookId, serde_json::Value)> {
    h.hooks.drain(..).map(|(id, call, _)| (id, serde_json::from_str(&call.body).unwrap())).collect()
}

/// A client from `peer` that connects (the connect allowed by the hook when there is one)
/// and then asks to publish or play `name`; pumps until the request is pending or answered.
fn client(h: &mut Harness, peer: SocketAddr, name: &str, publish: bool) -> ConnId {
    let id = h.connect_client_from(peer);
    let session = h.peer(id).client();
    session.connect("live", "rtmp://127.0.0.1/live").unwrap();
    if publish {
        session.request_publishing(name, PublishMode::Live).unwrap();
    } else {
        session.request_playback(name).unwrap();
    }
    h.send_outbound(id);
    h.pump();
    allow_connects(h);
    id
}

fn allow_connects(h: &mut Harness) {
    let connects: Vec<HookId> =
        h.hooks.iter().filter(|(_, call, _)| call.body.contains("\"action\":\"connect\"")).map(|(id, _, _)| *id).collect();
    h.hooks.retain(|(_, call, _)| !call.body.contains("\"action\":\"connect\""));
    for id in connects {
        answer(h, id, allow());
    }
}

fn from(last_octet: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last_octet], port))
}

fn rejection(h: &mut Harness, id: ConnId) -> Option<(RejectedRequestKind, String, String)> {
    h.peer(id).client_events.iter().find_map(|event| match event {
        ClientSessionEvent::RequestRejected { kind, status } => Some((*kind, status.code.clone(), status.description.clone())),
        _ => None,
    })
}

fn started(h: &mut Harness, id: ConnId) -> bool {
    h.peer(id).count_events(|e| matches!(e, ClientSessionEvent::PublishStarted { .. } | ClientSessionEvent::PlaybackStarted { .. })) > 0
}

fn count(pairs: &[((&str, &str), u64)], wanted: (&str, &str)) -> u64 {
    pairs.iter().find(|(pair, _)| *pair == wanted).map_or(0, |(_, count)| *count)
}

#[test]
fn a_publish_waits_for_the_hook_and_nothing_it_sends_before_the_allow_is_relayed() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let player = client(&mut h, from(1, 5000), "s", false);
    let (play_call, _) = take_calls(&mut h)[0];
    answer(&mut h, play_call, allow());
    assert!(started(&mut h, player));

    let publisher = client(&mut h, from(1, 5001), "s?k=v", true);
    let calls = take_calls(&mut h);
    assert_eq!(calls.len(), 1);
    let (publish_call, payload) = &calls[0];
    let fields: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["action", "app", "client_id", "ip", "param", "protocol", "server_id", "stream", "tc_url"]);
    assert_eq!(payload["protocol"], "rtmp");
    assert_eq!(payload["action"], "publish");
    assert_eq!((&payload["app"], &payload["stream"], &payload["param"]), (&"live".into(), &"s".into(), &"?k=v".into()));
    assert_eq!(payload["client_id"], publisher.to_u64());
    assert_eq!(payload["ip"], "127.0.0.1");
    assert_eq!(payload["tc_url"], "rtmp://127.0.0.1/live");
    assert_eq!(payload["server_id"], h.core.node_id());

    // Waiting: no Publish.Start, no publisher, and media sent anyway goes nowhere.
    assert!(!started(&mut h, publisher));
    assert_eq!(h.stats().publishers, 0);
    // Our ClientSession will not send media before Publish.Start; a hostile client would.
    h.send_raw(publisher, &raw_video(&[avc_header(), keyframe(300), inter_frame(100)]));
    h.advance(Duration::from_millis(500));
    assert!(h.peer(player).media().is_empty(), "media before the allow reached a player");
    assert!(h.core.stream_summaries().iter().all(|stream| stream.gop_frames == 0 && !stream.live));

    answer(&mut h, *publish_call, allow());
    assert!(started(&mut h, publisher));
    assert_eq!(h.stats().publishers, 1);
    h.send_media(publisher, MediaKind::Video, 40, avc_header());
    h.send_media(publisher, MediaKind::Video, 40, keyframe(301));
    h.send_media(publisher, MediaKind::Video, 80, inter_frame(100));
    h.pump();
    let lengths: Vec<usize> = h.peer(player).media().iter().map(|(_, _, body)| body.len()).collect();
    assert_eq!(lengths, [avc_header().len(), 301, 100], "only what came after the allow");
    let metrics = h.core.metrics_view();
    assert_eq!(count(&metrics.hook_decisions, ("publish", "allow")), 1);
    assert_eq!(count(&metrics.hook_decisions, ("connect", "allow")), 2);
    assert_eq!(metrics.hook_pending, 0);
}

#[test]
fn denials_carry_the_players_status_and_reason_then_close() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let publisher = client(&mut h, from(1, 5000), "s", true);
    let player = client(&mut h, from(1, 5001), "s", false);
    let calls = take_calls(&mut h);
    answer(&mut h, calls[0].0, HookOutcome::Answered { status: 403, body: b"no".to_vec() });
    answer(&mut h, calls[1].0, HookOutcome::Answered { status: 200, body: b"{\"code\":1}".to_vec() });
    assert_eq!(
        rejection(&mut h, publisher),
        Some((RejectedRequestKind::Publish, "NetStream.Publish.BadName".into(), "Access denied: hook answered HTTP 403.".into()))
    );
    assert_eq!(
        rejection(&mut h, player),
        Some((RejectedRequestKind::Play, "NetStream.Play.Failed".into(), "Access denied: hook answered code 1.".into()))
    );
    assert_eq!(h.close_reason(publisher), Some(&CloseReason::AccessDenied("publish denied: hook_denied".into())));
    assert_eq!(h.close_reason(player), Some(&CloseReason::AccessDenied("play denied: hook_denied".into())));
    let connect = h.connect_client_from(from(1, 5002));
    h.peer(connect).client().connect("live", "rtmp://127.0.0.1/live").unwrap();
    h.send_outbound(connect);
    h.pump();
    let (call, _) = take_calls(&mut h)[0];
    answer(&mut h, call, HookOutcome::Answered { status: 500, body: Vec::new() });
    let (kind, code, _) = rejection(&mut h, connect).unwrap();
    assert_eq!((kind, code.as_str()), (RejectedRequestKind::Connect, "NetConnection.Connect.Rejected"));
    let metrics = h.core.metrics_view();
    assert_eq!(count(&metrics.access_denials, ("publish", "hook_denied")), 1);
    assert_eq!(count(&metrics.access_denials, ("play", "hook_denied")), 1);
    assert_eq!(count(&metrics.access_denials, ("connect", "hook_denied")), 1);
    assert_eq!(count(&metrics.hook_decisions, ("play", "deny")), 1);
    assert_eq!(h.stats().players + h.stats().publishers, 0);
}

#[test]
fn a_denied_client_that_keeps_talking_gets_no_second_decision() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let publisher = client(&mut h, from(1, 5000), "s", true);
    let (call, _) = take_calls(&mut h)[0];
    h.peer(publisher).reading = false;
    answer(&mut h, call, HookOutcome::Answered { status: 403, body: Vec::new() });
    assert!(h.peer(publisher).closed.is_none(), "waits to flush the denial");
    h.peer(publisher).client().request_publishing("other", PublishMode::Live).unwrap();
    h.send_outbound(publisher);
    h.pump();
    assert!(h.hooks.is_empty(), "no hook call for a denied connection");
    // It never reads its denial: closed after the grace, not at the idle timeout.
    h.advance(Duration::from_secs(3));
    assert_eq!(h.close_reason(publisher), Some(&CloseReason::AccessDenied("publish denied: hook_denied".into())));
}

#[test]
fn a_hook_that_never_answers_is_settled_by_the_core_at_the_timeout() {
    for (policy, allowed) in [(HookFailPolicy::Closed, false), (HookFailPolicy::Open, true)] {
        let mut h = Harness::new(hooked(AccessConfig { hook_fail: policy, ..AccessConfig::default() }));
        let publisher = client(&mut h, from(1, 5000), "s", true);
        let (call, _) = take_calls(&mut h)[0];
        h.advance(TIMEOUT - Duration::from_millis(1));
        assert!(!started(&mut h, publisher) && rejection(&mut h, publisher).is_none(), "{policy:?}: decided early");
        h.advance(Duration::from_millis(1));
        assert_eq!(started(&mut h, publisher), allowed, "{policy:?}");
        if !allowed {
            let (_, code, description) = rejection(&mut h, publisher).unwrap();
            assert_eq!(code, "NetStream.Publish.BadName");
            assert_eq!(description, "Access denied: the authorization hook did not answer in time.");
        }
        // The worker's answer comes later, and changes nothing.
        answer(&mut h, call, allow());
        assert_eq!(h.stats().publishers, u64::from(allowed), "{policy:?}");
        let metrics = h.core.metrics_view();
        assert_eq!(count(&metrics.hook_decisions, ("publish", "timeout")), 1);
        assert_eq!(count(&metrics.hook_decisions, ("publish", "allow")), 0);
        assert_eq!(count(&metrics.access_denials, ("publish", "hook_timeout")), u64::from(!allowed));
    }
}

// Review finding: the grace for a denied client to read its denial ran from its last
// traffic, which for a denial after a 3 s hook timeout was already past; when the timeout
// and a tick fell in one call, the client was closed before the denial was written.
#[test]
fn a_denial_after_a_long_hook_wait_is_written_before_the_close() {
    let config = hooked(AccessConfig::default());
    let config = Config { access: AccessConfig { hook_timeout: Duration::from_secs(3), ..config.access }, ..config };
    let mut h = Harness::new(config);
    let publisher = client(&mut h, from(1, 5000), "s", true);
    h.advance(Duration::from_secs(3));
    let (_, code, _) = rejection(&mut h, publisher).expect("the denial reached the client");
    assert_eq!(code, "NetStream.Publish.BadName");
    assert!(matches!(h.close_reason(publisher), Some(CloseReason::AccessDenied(_))));
}

#[test]
fn a_hook_that_is_down_follows_the_fail_policy() {
    for (policy, allowed) in [(HookFailPolicy::Closed, false), (HookFailPolicy::Open, true)] {
        let mut h = Harness::new(hooked(AccessConfig { hook_fail: policy, ..AccessConfig::default() }));
        let player = client(&mut h, from(1, 5000), "s", false);
        let (call, _) = take_calls(&mut h)[0];
        answer(&mut h, call, HookOutcome::Failed("connecting to 127.0.0.1:9: Connection refused".into()));
        assert_eq!(started(&mut h, player), allowed, "{policy:?}");
        if !allowed {
            let (_, code, description) = rejection(&mut h, player).unwrap();
            assert_eq!((code.as_str(), description.as_str()), ("NetStream.Play.Failed", "Access denied: the authorization hook is unavailable."));
        }
        assert_eq!(count(&h.core.metrics_view().hook_decisions, ("play", "error")), 1);
    }
}

#[test]
fn pending_decisions_are_bounded_in_total_and_per_address() {
    // 8 in total, 2 per address.
    let mut h = Harness::new(hooked(AccessConfig { hook_max_pending: 8, ..AccessConfig::default() }));
    let mut waiting = Vec::new();
    for last_octet in 1..=4 {
        for port in 0..2 {
            waiting.push(client(&mut h, from(last_octet, 6000 + port), "s", false));
        }
    }
    assert_eq!(h.core.metrics_view().hook_pending, 8);
    let flood = client(&mut h, from(1, 6100), "s", false);
    let elsewhere = client(&mut h, from(9, 6101), "s", false);
    // Their connects are the requests past the bound.
    for refused in [flood, elsewhere] {
        let (_, code, description) = rejection(&mut h, refused).unwrap();
        assert_eq!(code, "NetConnection.Connect.Rejected");
        assert!(description.contains("too many requests"), "{description}");
    }
    assert_eq!(count(&h.core.metrics_view().access_denials, ("connect", "hook_overloaded")), 2);
    assert_eq!(count(&h.core.metrics_view().hook_decisions, ("connect", "overloaded")), 2);
    // One address alone fills only its quarter: another address still gets through.
    let mut h = Harness::new(hooked(AccessConfig { hook_max_pending: 8, ..AccessConfig::default() }));
    for port in 0..2 {
        client(&mut h, from(2, 7000 + port), "s", false);
    }
    let third = client(&mut h, from(2, 7002), "s", false);
    assert!(rejection(&mut h, third).is_some(), "the flooding address is cut at its share");
    let mapped = client(&mut h, SocketAddr::new("::ffff:127.0.0.2".parse().unwrap(), 7003), "s", false);
    assert!(rejection(&mut h, mapped).is_some(), "an IPv4-mapped peer counts as its IPv4 address");
    let other = client(&mut h, from(3, 7004), "s", false);
    assert!(rejection(&mut h, other).is_none() && h.hooks.len() == 3, "{:?}", h.hooks.len());
    // Answers free the places.
    for (id, _) in take_calls(&mut h) {
        answer(&mut h, id, allow());
    }
    assert_eq!(h.core.metrics_view().hook_pending, 0);
    let again = client(&mut h, from(2, 7005), "s", false);
    assert!(rejection(&mut h, again).is_none());
}

#[test]
fn a_connection_that_closes_while_waiting_frees_its_place_and_its_answer_is_ignored() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let publisher = client(&mut h, from(1, 5000), "s", true);
    let (call, _) = take_calls(&mut h)[0];
    assert_eq!(h.core.metrics_view().hook_pending, 1);
    h.core.handle_closed(publisher, CloseReason::PeerClosed, h.now);
    h.pump();
    assert_eq!(h.core.metrics_view().hook_pending, 0);
    answer(&mut h, call, allow());
    assert_eq!(h.stats().publishers, 0);
    assert!(h.core.stream_summaries().is_empty());
    h.advance(TIMEOUT * 2);
    assert_eq!(count(&h.core.metrics_view().hook_decisions, ("publish", "timeout")), 0);
}

#[test]
fn a_play_opens_no_pull_until_it_is_allowed() {
    let mut config = hooked(AccessConfig::default());
    config.origins = vec!["127.0.0.1:1935".to_string()];
    let mut h = Harness::new(config);
    let denied = client(&mut h, from(1, 5000), "s?token=bad", false);
    let (call, _) = take_calls(&mut h)[0];
    h.advance(Duration::from_millis(300));
    assert!(h.connects.is_empty() && h.resolves.is_empty(), "a pull before the decision");
    answer(&mut h, call, HookOutcome::Answered { status: 403, body: Vec::new() });
    h.advance(Duration::from_secs(2));
    assert!(h.connects.is_empty(), "a denied player opened a pull");
    assert!(rejection(&mut h, denied).is_some());
    let allowed = client(&mut h, from(1, 5001), "s?token=good", false);
    let (call, _) = take_calls(&mut h)[0];
    assert!(h.connects.is_empty());
    answer(&mut h, call, allow());
    assert!(started(&mut h, allowed));
    assert_eq!(h.connects.len(), 1, "the allowed play opens the pull");
}

#[test]
fn a_pipelined_connect_and_publish_wait_for_the_connect_decision_in_order() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let id = h.connect_client_from(from(1, 5000));
    let session = h.peer(id).client();
    session.connect("live?site=a", "rtmp://127.0.0.1/live?site=a").unwrap();
    h.send_outbound(id);
    // createStream and publish right behind the connect, before any answer.
    let mut raw = bytes::BytesMut::new();
    let mut encoder = crate::chunk_io::ChunkEncoder::new();
    for (name, transaction, arguments) in [
        ("createStream", 2.0, vec![]),
        ("publish", 0.0, vec![crate::Amf0Value::Utf8String("s".into()), crate::Amf0Value::Utf8String("live".into())]),
    ] {
        let message = crate::messages::RtmpMessage::Amf0Command {
            name: name.to_string(),
            transaction_id: transaction,
            command_object: crate::Amf0Value::Null,
            arguments,
        };
        let stream_id = if name == "publish" { 1 } else { 0 };
        let payload = message.into_payload(crate::time::RtmpTimestamp::ZERO, stream_id).unwrap();
        encoder.encode(3, &payload, &mut raw).unwrap();
    }
    h.send_raw(id, &raw);
    h.pump();
    let calls = take_calls(&mut h);
    assert_eq!(calls.len(), 1);
    assert_eq!((&calls[0].1["action"], &calls[0].1["param"], &calls[0].1["stream"]), (&"connect".into(), &"?site=a".into(), &"".into()));
    answer(&mut h, calls[0].0, allow());
    let calls = take_calls(&mut h);
    assert_eq!(calls.len(), 1, "the held publish is asked about at once");
    assert_eq!(calls[0].1["action"], "publish");
}

#[test]
fn done_notifications_carry_duration_and_byte_counts_and_are_bounded() {
    let mut h = Harness::new(hooked(AccessConfig { hook_max_pending: 1, ..AccessConfig::default() }));
    let publisher = client(&mut h, from(1, 5000), "s?k=v", true);
    let (call, _) = take_calls(&mut h)[0];
    answer(&mut h, call, allow());
    h.send_media(publisher, MediaKind::Video, 0, keyframe(5000));
    h.advance(Duration::from_millis(1500));
    h.peer(publisher).client().stop().unwrap();
    h.send_outbound(publisher);
    h.pump();
    let calls = take_calls(&mut h);
    assert_eq!(calls.len(), 1);
    let done = &calls[0].1;
    assert_eq!((&done["action"], &done["stream"], &done["param"]), (&"publish_done".into(), &"s".into(), &"?k=v".into()));
    assert_eq!(done["duration_ms"], 1500);
    let view = h.core.client_views(h.now).into_iter().find(|view| view.client_id == publisher.to_u64()).unwrap();
    // Counted when the publish ended: the replies to the stop were written after.
    assert_eq!(done["bytes_in"].as_u64(), Some(view.bytes_in));
    assert!(view.bytes_in > 5000);
    let bytes_out = done["bytes_out"].as_u64().unwrap();
    assert!(bytes_out > 3000 && bytes_out < view.bytes_out, "{bytes_out} of {}", view.bytes_out);
    // One notification in flight already: the next is dropped and counted.
    let player = client(&mut h, from(1, 5001), "s", false);
    let (call, _) = take_calls(&mut h)[0];
    answer(&mut h, call, allow());
    h.core.handle_closed(player, CloseReason::PeerClosed, h.now);
    h.pump();
    assert!(h.hooks.is_empty());
    let metrics = h.core.metrics_view();
    assert_eq!(count(&metrics.hook_notifications, ("play_done", "dropped")), 1);
    answer(&mut h, calls[0].0, allow());
    assert_eq!(count(&h.core.metrics_view().hook_notifications, ("publish_done", "sent")), 1);
}

#[test]
fn ip_rules_decide_before_the_hook_and_match_mapped_addresses() {
    let rules = IpRules::parse(&[(false, "127.0.0.2"), (true, "127.0.0.0/8")]).unwrap();
    let mut h = Harness::new(hooked(AccessConfig { publish_rules: rules, ..AccessConfig::default() }));
    let denied = client(&mut h, from(2, 5000), "s", true);
    let mapped = client(&mut h, SocketAddr::new("::ffff:127.0.0.2".parse().unwrap(), 5001), "t", true);
    let outside = client(&mut h, SocketAddr::new("::1".parse().unwrap(), 5002), "u", true);
    assert!(h.hooks.is_empty(), "no hook call for a request the rules deny");
    for id in [denied, mapped, outside] {
        let (_, code, description) = rejection(&mut h, id).unwrap();
        assert_eq!((code.as_str(), description.as_str()), ("NetStream.Publish.BadName", "Access denied: not allowed from this address."));
    }
    let allowed = client(&mut h, from(3, 5003), "s", true);
    assert_eq!(h.hooks.len(), 1, "allowed by the rules, so the hook is asked");
    assert!(rejection(&mut h, allowed).is_none());
    let player = client(&mut h, from(2, 5004), "s", false);
    assert!(rejection(&mut h, player).is_none(), "publish rules do not apply to plays");
    assert_eq!(count(&h.core.metrics_view().access_denials, ("publish", "ip_rule")), 3);
}

// Review finding: a taken name was refused before access control, so a client the rules
// deny learned which streams were live ("already being published").
#[test]
fn a_denied_publisher_learns_nothing_of_which_streams_are_live() {
    let rules = IpRules::parse(&[(true, "127.0.0.1")]).unwrap();
    let mut h = Harness::new(Config { access: AccessConfig { publish_rules: rules, ..AccessConfig::default() }, ..test_config() });
    let live = client(&mut h, from(1, 5000), "s", true);
    assert!(started(&mut h, live));
    for name in ["s", "t"] {
        let outsider = client(&mut h, from(9, 6000), name, true);
        let (_, code, description) = rejection(&mut h, outsider).unwrap();
        assert_eq!((code.as_str(), description.as_str()), ("NetStream.Publish.BadName", "Access denied: not allowed from this address."), "{name}");
    }
    // An allowed client is told the name is taken.
    let second = client(&mut h, from(1, 5001), "s", true);
    assert_eq!(rejection(&mut h, second).map(|(_, _, why)| why).as_deref(), Some("Stream is already being published."));
}

#[test]
fn signed_names_are_checked_against_the_wall_clock_the_driver_gives() {
    let secret = Secret::new("s3cret").unwrap();
    let config = Config { access: AccessConfig { play_secret: Some(secret), ..AccessConfig::default() }, ..test_config() };
    let mut h = Harness::new(config);
    h.core.set_unix_time(h.now, Duration::from_secs(1_700_000_000));
    let signed = |name: &str, exp: u64| format!("{name}?{}", signed_url::signed_query(b"s3cret", "live", name, exp));
    let valid = client(&mut h, from(1, 5000), &signed("s", 1_700_000_100), false);
    assert!(started(&mut h, valid));
    let expired = client(&mut h, from(1, 5001), &signed("s", 1_699_999_999), false);
    let tampered = client(&mut h, from(1, 5002), &signed("s", 1_700_000_100).replacen("s?", "t?", 1), false);
    let missing = client(&mut h, from(1, 5003), "s", false);
    let expected = [
        (expired, "Access denied: the stream URL expired (exp=1699999999)."),
        (tampered, "Access denied: the stream URL's signature does not match."),
        (missing, "Access denied: the stream URL is not signed (it needs ?exp=...&sig=...)."),
    ];
    for (id, description) in expected {
        assert_eq!(rejection(&mut h, id).map(|(_, _, d)| d).as_deref(), Some(description));
    }
    // Time passes on the core's clock: the valid name expires too, for the next player.
    h.advance(Duration::from_secs(101));
    let late = client(&mut h, from(1, 5004), &signed("s", 1_700_000_100), false);
    assert!(rejection(&mut h, late).is_some());
    let publisher = client(&mut h, from(1, 5005), "s", true);
    assert!(started(&mut h, publisher), "no publish secret: publishes need no signature");
    let metrics = h.core.metrics_view();
    assert_eq!(count(&metrics.access_denials, ("play", "signature_expired")), 2);
    assert_eq!(count(&metrics.access_denials, ("play", "signature_invalid")), 1);
    assert_eq!(count(&metrics.access_denials, ("play", "signature_missing")), 1);
}

#[test]
fn a_reload_applies_new_rules_to_new_requests_only() {
    let mut h = Harness::new(test_config());
    let publisher = client(&mut h, from(2, 5000), "s", true);
    assert!(started(&mut h, publisher));
    let rules = IpRules::parse(&[(false, "127.0.0.2")]).unwrap();
    let stricter = Config { access: AccessConfig { publish_rules: rules.clone(), play_rules: rules, ..AccessConfig::default() }, ..test_config() };
    h.core.handle_reload(Ok(stricter), h.now);
    let player = client(&mut h, from(2, 5001), "s", false);
    assert!(rejection(&mut h, player).is_some());
    h.send_media(publisher, MediaKind::Video, 0, keyframe(100));
    h.pump();
    assert!(h.peer(publisher).closed.is_none(), "the running publish goes on");
    assert_eq!(h.stats().publishers, 1);
}

/// AMF0 commands as raw chunks on chunk stream 3, as a client that does not wait for
/// answers sends them.
#[test]
fn one_connection_cannot_hold_more_than_its_share_of_decisions() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let id = h.connect_client_from(from(1, 5000));
    h.peer(id).client().connect("live", "rtmp://127.0.0.1/live").unwrap();
    h.send_outbound(id);
    h.pump();
    allow_connects(&mut h);
    let name = |text: &str| vec![crate::Amf0Value::Utf8String(text.to_string())];
    let mut commands = Vec::new();
    for stream in 1..=3u32 {
        commands.push(("createStream", f64::from(stream) + 10.0, 0, Vec::new()));
        commands.push(("play", 0.0, stream, name(&format!("s{stream}"))));
    }
    h.send_raw(id, &raw_commands(&commands));
    h.pump();
    assert_eq!(h.hooks.len(), 2, "two plays asked about, the third refused at once");
    assert!(matches!(h.close_reason(id), Some(CloseReason::AccessDenied(why)) if why.contains("hook_overloaded")));
    assert_eq!(h.core.metrics_view().hook_pending, 0, "the closed connection's decisions are dropped");
}

#[test]
fn fields_too_long_for_a_hook_request_are_denied_without_a_call() {
    let mut h = Harness::new(hooked(AccessConfig::default()));
    let long_name = "n".repeat(crate::relay::access::MAX_FIELD_BYTES + 1);
    let player = client(&mut h, from(1, 5000), &long_name, false);
    let (_, _, description) = rejection(&mut h, player).unwrap();
    assert_eq!(description, "Access denied: the request is too long to authorize.");
    assert!(h.hooks.is_empty());
    // A tcUrl of 60 KB (AMF0 strings go to 64 KB) is neither kept for the connection's life nor sent.
    let id = h.connect_client_from(from(1, 5001));
    let tc_url = format!("rtmp://127.0.0.1/live/{}", "x".repeat(60_000));
    h.peer(id).client().connect("live", &tc_url).unwrap();
    h.send_outbound(id);
    h.pump();
    assert!(h.hooks.is_empty());
    let (kind, _, description) = rejection(&mut h, id).unwrap();
    assert_eq!((kind, description.as_str()), (RejectedRequestKind::Connect, "Access denied: the request is too long to authorize."));
    assert_eq!(count(&h.core.metrics_view().access_denials, ("connect", "request_too_long")), 1);
}
