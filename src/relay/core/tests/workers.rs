//! Cores as workers of one relay (`--workers N`): the shared directory decides who may
//! publish, a player of a stream published on a sibling pulls it from there, the private
//! listener takes only siblings, and the API gathers every worker's part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::harness::{keyframe, test_config, Harness};
use super::ops::{answers, http_client, take_output};
use crate::relay::access::IpRules;
use crate::relay::core::{
    Action, CloseReason, SiblingAnswer, SiblingMessage, SiblingRequest, StreamDirectory, StreamKey, WorkerPlace,
};
use crate::relay::Config;
use crate::sessions::{codes, ClientSessionEvent, MediaKind, PublishMode, RejectedRequestKind};

const SECRET: &str = "0123456789abcdef";

fn sibling_addr(worker: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + worker as u16))
}

/// Two workers of one relay, sharing a directory.
fn pair(config: Config) -> (Harness, Harness) {
    let directory = Arc::new(StreamDirectory::default());
    let clients_open = Arc::default();
    let place = |index| WorkerPlace {
        index,
        count: 2,
        directory: Arc::clone(&directory),
        sibling_addrs: vec![sibling_addr(0), sibling_addr(1)],
        secret: SECRET.to_string(),
        clients_open: Arc::clone(&clients_open),
    };
    (Harness::for_worker(config.clone(), place(0)), Harness::for_worker(config, place(1)))
}

fn key() -> StreamKey {
    StreamKey::new("live", "s")
}

/// Passes everything `from` told its siblings to `to` (worker `to_index`).
fn deliver(from: &mut Harness, from_index: usize, to: &mut Harness, to_index: usize) {
    for (target, message) in std::mem::take(&mut from.told) {
        if target.is_none_or(|target| target == to_index) {
            to.core.handle_sibling_message(from_index, message, to.now);
            to.pump();
        }
    }
}

fn rejection(h: &Harness, id: crate::relay::ConnId) -> Option<(RejectedRequestKind, String)> {
    h.peers[&id].client_events.iter().find_map(|event| match event {
        ClientSessionEvent::RequestRejected { kind, status } => Some((*kind, status.code.clone())),
        _ => None,
    })
}

#[test]
fn the_directory_gives_a_stream_to_one_worker_at_a_time() {
    let directory = StreamDirectory::default();
    assert_eq!(directory.holder(&key()), None);
    assert_eq!(directory.claim(&key(), 1), Ok(()));
    assert_eq!(directory.claim(&key(), 1), Ok(()), "claiming again is harmless");
    assert_eq!(directory.claim(&key(), 0), Err(1));
    directory.release(&key(), 0);
    assert_eq!(directory.holder(&key()), Some(1), "only the holder releases");
    directory.release(&key(), 1);
    assert_eq!(directory.holder(&key()), None);
    assert_eq!(directory.claim(&key(), 0), Ok(()));
    assert_eq!(directory.claim(&StreamKey::new("live", "other"), 1), Ok(()), "keys are independent");
}

#[test]
fn a_publish_on_one_worker_refuses_the_same_stream_on_another_until_it_ends() {
    let (mut a, mut b) = pair(test_config());
    let first = a.publisher("live", "s");
    assert_eq!(a.told, vec![(None, SiblingMessage::PublishStarted(key()))]);

    let second = b.connect_client();
    let client = b.peer(second).client();
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    client.request_publishing("s?again", PublishMode::Live).unwrap();
    b.send_outbound(second);
    b.pump();
    assert_eq!(rejection(&b, second), Some((RejectedRequestKind::Publish, codes::PUBLISH_BAD_NAME.to_string())));
    assert_eq!(b.stats().publishers, 0);
    assert!(b.told.is_empty(), "a refused publish announces nothing");

    // Once the first publisher is gone, the stream is free on every worker.
    a.core.handle_closed(first, CloseReason::PeerClosed, a.now);
    a.pump();
    b.publisher("live", "s");
    let third = a.connect_client();
    let client = a.peer(third).client();
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    client.request_publishing("s", PublishMode::Live).unwrap();
    a.send_outbound(third);
    a.pump();
    assert_eq!(rejection(&a, third), Some((RejectedRequestKind::Publish, codes::PUBLISH_BAD_NAME.to_string())));
}

#[test]
fn players_of_a_stream_published_on_a_sibling_pull_it_from_there_once() {
    let (mut a, mut b) = pair(test_config());
    // A player on worker 1 waits: nobody publishes yet, there is nowhere to pull from.
    let early = b.player("live", "s");
    assert!(b.connects.is_empty());
    // Worker 0 gets the publisher and tells worker 1, which pulls from worker 0's
    // private listener.
    let publisher = a.publisher("live", "s");
    deliver(&mut a, 0, &mut b, 1);
    assert_eq!(b.connects.len(), 1);
    assert_eq!(b.connects[0].1, sibling_addr(0));
    let pull = b.connects[0].0;
    // A later player shares the pull; one that comes after the publish looks the stream
    // up in the directory (no message needed).
    let late = b.player("live", "s");
    assert_eq!(b.connects.len(), 1, "one pull per stream per worker");
    let views = b.core.client_views(b.now);
    let role = |id: crate::relay::ConnId| views.iter().find(|view| view.client_id == id.to_u64()).map(|view| view.role);
    assert_eq!((role(pull), role(early), role(late)), (Some("sibling_pull"), Some("player"), Some("player")));
    assert_eq!(b.stats().pulls, 0, "pulls count pulls from origins");
    assert_eq!(b.core.stream_views()[0].upstreams[0].kind, "sibling");
    assert_eq!(b.core.stream_views()[0].upstreams[0].target, "worker 0 (127.0.0.1:7000)");
    // The publisher leaving frees the stream; a publisher on worker 1 itself replaces the
    // pull, as a local publisher replaces an edge's pull.
    a.core.handle_closed(publisher, CloseReason::PeerClosed, a.now);
    a.pump();
    b.accept_upstream(pull);
    b.publisher("live", "s");
    assert_eq!(b.close_reason(pull), Some(&CloseReason::LocalPublisherTookOver));
}

#[test]
fn a_pull_follows_the_publisher_to_another_worker() {
    let directory = Arc::new(StreamDirectory::default());
    let clients_open = Arc::default();
    let place = |index| WorkerPlace {
        index,
        count: 3,
        directory: Arc::clone(&directory),
        sibling_addrs: (0..3).map(sibling_addr).collect(),
        secret: SECRET.to_string(),
        clients_open: Arc::clone(&clients_open),
    };
    let mut a = Harness::for_worker(test_config(), place(0));
    let mut b = Harness::for_worker(test_config(), place(1));
    let mut c = Harness::for_worker(test_config(), place(2));
    let first = a.publisher("live", "s");
    c.player("live", "s");
    assert_eq!(c.connects.iter().map(|(_, addr, _)| *addr).collect::<Vec<_>>(), vec![sibling_addr(0)]);
    let to_a = c.connects[0].0;
    c.accept_upstream(to_a);
    // Worker 0's publisher leaves (worker 2 hears it as StreamDry over its pull, not
    // here); the next one lands on worker 1, which tells the others.
    a.core.handle_closed(first, CloseReason::PeerClosed, a.now);
    a.pump();
    a.told.clear();
    b.publisher("live", "s");
    deliver(&mut b, 1, &mut c, 2);
    assert_eq!(c.close_reason(to_a), Some(&CloseReason::SourceMoved));
    assert_eq!(c.connects.iter().map(|(_, addr, _)| *addr).collect::<Vec<_>>(), vec![sibling_addr(0), sibling_addr(1)]);
}

#[test]
fn a_lost_sibling_pull_with_no_publisher_anywhere_ends_and_its_players_wait() {
    let (mut a, mut b) = pair(test_config());
    let publisher = a.publisher("live", "s");
    let player = b.player("live", "s");
    let pull = b.connects[0].0;
    b.accept_upstream(pull);
    // The publisher and the pull go; the retry finds the directory empty and ends the pull.
    a.core.handle_closed(publisher, CloseReason::PeerClosed, a.now);
    b.core.handle_closed(pull, CloseReason::PeerClosed, b.now);
    b.advance(Duration::from_secs(2));
    assert_eq!(b.connects.len(), 1, "no retry to a worker without the publisher");
    assert!(b.core.stream_views()[0].upstreams.is_empty());
    assert!(b.peer(player).closed.is_none(), "the player waits");
}

#[test]
fn the_private_listener_takes_only_siblings_which_skip_access_control_and_player_counts() {
    // Viewers from loopback may not play here, so only skipping access control lets a
    // sibling (also on loopback) in.
    let rules = IpRules::parse(&[(false, "127.0.0.0/8")]).unwrap();
    let mut config = test_config();
    config.access.play_rules = rules;
    let (mut a, _b) = pair(config);
    a.publisher("live", "s");
    for secret in [None, Some("not-the-secret")] {
        let stranger = a.sibling_player(secret, "live", "s");
        assert!(matches!(a.close_reason(stranger), Some(CloseReason::AccessDenied(_))), "{secret:?}");
        assert_eq!(rejection(&a, stranger).map(|(kind, _)| kind), Some(RejectedRequestKind::Connect), "{:?}", a.peers[&stranger].client_events);
    }
    let sibling = a.sibling_player(Some(SECRET), "live", "s");
    assert!(a.peer(sibling).closed.is_none());
    assert_eq!(a.peer(sibling).count_events(|e| matches!(e, ClientSessionEvent::PlaybackStarted { .. })), 1);
    assert!(a.hooks.is_empty());
    let viewer = a.player("live", "s");
    assert!(matches!(a.close_reason(viewer), Some(CloseReason::AccessDenied(_))), "the rule holds for viewers");
    assert_eq!(a.stats().players, 0, "a sibling's pull is not a player");
    let view = &a.core.stream_views()[0];
    assert_eq!((view.players, view.sibling_pulls), (0, 1));
    let role = a.core.client_views(a.now).into_iter().find(|c| c.client_id == sibling.to_u64()).map(|c| c.role);
    assert_eq!(role, Some("sibling"));
}

// Any local program can reach the private listener: until a connection shows the secret
// it is held to a limit of its own, and a flood of them cannot take the descriptors the
// public listeners need. Proven siblings do not count.
#[test]
fn connections_on_the_private_listener_are_limited_until_they_prove_they_are_siblings() {
    use crate::relay::core::{Refusal, RelayCore};
    use crate::relay::ListenerKind;
    let mut config = test_config();
    config.max_connections = 4;
    config.max_connections_per_ip = 1;
    let (mut a, _b) = pair(config);
    let max = RelayCore::MAX_UNPROVEN_SIBLINGS;
    let stranger = |port: u16| SocketAddr::from(([127, 0, 0, 1], 20_000 + port));
    let unproven: Vec<_> = (0..max as u16).map(|port| a.core.accept(stranger(port), ListenerKind::Sibling, a.now)).collect();
    assert!(unproven.iter().all(Result::is_ok), "more than --max-connections may wait to prove themselves");
    assert_eq!(a.core.accept(stranger(999), ListenerKind::Sibling, a.now), Err(Refusal::TooManyUnprovenSiblings { max }));
    // Two leave: one slot is taken and given back by a sibling proving itself, the other
    // is free again after that.
    for id in unproven.iter().take(2).flatten() {
        a.core.handle_closed(*id, CloseReason::PeerClosed, a.now);
    }
    a.publisher("live", "s");
    let sibling = a.sibling_player(Some(SECRET), "live", "s");
    assert!(a.peer(sibling).closed.is_none());
    assert!(a.core.accept(stranger(1000), ListenerKind::Sibling, a.now).is_ok());
    assert!(a.core.accept(stranger(1001), ListenerKind::Sibling, a.now).is_ok());
    assert!(a.core.accept(stranger(1002), ListenerKind::Sibling, a.now).is_err());
    // Holding the places is not enough: whoever has not proven itself within a second
    // is closed, and the places are free again.
    a.advance(Duration::from_millis(1500));
    assert!(matches!(unproven.last().and_then(|id| id.as_ref().ok()).and_then(|id| a.close_reason(*id)), Some(CloseReason::HandshakeTimeout(_))));
    assert!(a.peer(sibling).closed.is_none(), "a proven sibling stays");
    assert!(a.core.accept(stranger(1003), ListenerKind::Sibling, a.now).is_ok());
}

// HTTP connections all land on worker 0, RTMP ones anywhere: max_connections is one total
// for every worker, not an even share each, and the relay's own links do not count.
#[test]
fn max_connections_is_one_total_over_the_workers() {
    use crate::relay::core::Refusal;
    use crate::relay::ListenerKind;
    let mut config = test_config();
    config.max_connections = 4;
    let (mut a, mut b) = pair(config);
    let client = |n: u8| SocketAddr::from(([127, 0, 0, n], 5000));
    let http: Vec<_> = (1..=3).map(|n| a.core.accept(client(n), ListenerKind::Http, a.now)).collect();
    assert!(http.iter().all(Result::is_ok), "{http:?}");
    let sibling = a.sibling_player(Some(SECRET), "live", "s");
    assert!(a.peer(sibling).closed.is_none(), "a sibling link is not a client");
    assert!(b.core.accept(client(4), ListenerKind::Rtmp, b.now).is_ok(), "the fourth, on the other worker");
    assert_eq!(b.core.accept(client(5), ListenerKind::Rtmp, b.now), Err(Refusal::TooManyConnections { max: 4 }));
    assert_eq!(a.core.accept(client(6), ListenerKind::Http, a.now), Err(Refusal::TooManyConnections { max: 4 }));
    if let Some(Ok(id)) = http.first() {
        a.core.handle_closed(*id, CloseReason::PeerClosed, a.now);
    }
    assert!(b.core.accept(client(7), ListenerKind::Rtmp, b.now).is_ok(), "a close on one worker frees a place on the other");
}

#[test]
fn media_reaches_a_sibling_and_is_not_counted_as_sent_to_viewers() {
    let (mut a, _b) = pair(test_config());
    let publisher = a.publisher("live", "s");
    let sibling = a.sibling_player(Some(SECRET), "live", "s");
    let viewer_bytes_before = a.core.stream_views()[0].bytes_out;
    a.send_media(publisher, MediaKind::Video, 0, keyframe(300));
    a.pump();
    assert_eq!(a.peer(sibling).media().len(), 1);
    assert_eq!(a.core.stream_views()[0].bytes_out, viewer_bytes_before, "bytes out count what viewers got");
}

#[test]
fn connection_ids_name_their_worker() {
    let (mut a, mut b) = pair(test_config());
    let (x, y) = (a.connect_client(), b.connect_client());
    assert_eq!((x.worker(), y.worker()), (0, 1));
    assert_ne!(x.to_u64(), y.to_u64());
}

#[test]
fn the_api_answers_with_every_workers_part_and_kicks_on_the_owning_worker() {
    let (mut a, mut b) = pair(test_config());
    a.publisher("live", "s");
    a.player("live", "s");
    deliver(&mut a, 0, &mut b, 1);
    let remote = b.player("live", "s");
    let pull = b.connects[0].0;
    b.accept_upstream(pull);
    // Worker 0's side of that pull.
    a.sibling_player(Some(SECRET), "live", "s");

    let http = http_client(&mut a, 9000);
    a.send_raw(http, b"GET /api/v1/streams HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/summary HTTP/1.1\r\nHost: x\r\n\r\n");
    a.pump();
    assert!(take_output(&mut a, http).is_empty(), "the answer waits for worker 1");
    let asked: Vec<(Option<usize>, SiblingMessage)> = a.told.clone();
    assert!(matches!(asked.as_slice(), [(None, SiblingMessage::Ask { request: SiblingRequest::Streams, .. })]), "{asked:?}");
    deliver(&mut a, 0, &mut b, 1);
    deliver(&mut b, 1, &mut a, 0);
    // The pipelined summary was asked next, and answered the same way.
    deliver(&mut a, 0, &mut b, 1);
    deliver(&mut b, 1, &mut a, 0);
    let replies = answers(&take_output(&mut a, http));
    assert_eq!(replies.len(), 2);
    let streams: serde_json::Value = serde_json::from_str(&replies[0].body).unwrap();
    assert_eq!(streams.as_array().map(Vec::len), Some(1));
    assert_eq!((streams[0]["players"].as_u64(), streams[0]["sibling_pulls"].as_u64()), (Some(2), Some(1)));
    let summary: serde_json::Value = serde_json::from_str(&replies[1].body).unwrap();
    assert_eq!((summary["players"].as_u64(), summary["streams"].as_u64(), summary["workers"].as_u64()), (Some(2), Some(1), Some(2)));

    // A kick of worker 1's player goes to worker 1.
    a.send_raw(http, format!("DELETE /api/v1/clients/{} HTTP/1.1\r\nHost: x\r\n\r\n", remote.to_u64()).as_bytes());
    a.pump();
    assert!(matches!(a.told.as_slice(), [(Some(1), SiblingMessage::Ask { request: SiblingRequest::Kick { .. }, .. })]));
    deliver(&mut a, 0, &mut b, 1);
    assert_eq!(b.close_reason(remote), Some(&CloseReason::Kicked));
    deliver(&mut b, 1, &mut a, 0);
    let kicked = answers(&take_output(&mut a, http));
    assert_eq!(kicked[0].status, 200);
    assert!(kicked[0].body.contains("\"role\":\"player\""), "{}", kicked[0].body);
}

#[test]
fn a_worker_that_does_not_answer_makes_the_api_answer_503_and_one_that_stopped_counts_as_empty() {
    let (mut a, _b) = pair(test_config());
    let http = http_client(&mut a, 9000);
    a.send_raw(http, b"GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n\r\n");
    a.pump();
    assert!(take_output(&mut a, http).is_empty());
    a.advance(Duration::from_millis(1900));
    assert!(take_output(&mut a, http).is_empty(), "still within the 2 s");
    a.advance(Duration::from_millis(200));
    assert_eq!(answers(&take_output(&mut a, http))[0].status, 503);

    a.told.clear();
    a.send_raw(http, b"GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n\r\n");
    a.pump();
    let Some((_, SiblingMessage::Ask { id, .. })) = a.told.pop() else { panic!("no ask") };
    a.core.handle_sibling_message(1, SiblingMessage::Answer { id, answer: SiblingAnswer::Gone }, a.now);
    a.pump();
    let reply = &answers(&take_output(&mut a, http))[0];
    assert_eq!(reply.status, 200);
    let clients: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(clients.as_array().map(Vec::len), Some(1), "worker 0's HTTP client alone");
    assert!(!a.core.poll_action().is_some_and(|action| matches!(action, Action::TellSiblings { .. })));
}

// A player may claim any relay chain in its connect (rtmpEdgeVia). Passed on to a sibling
// pull, a chain naming the publisher's worker made that worker refuse the pull as a loop,
// and every player of the stream on this worker got nothing. A sibling pull carries this
// worker's id alone.
#[test]
fn a_players_claimed_relay_chain_does_not_reach_a_sibling_pull() {
    use crate::relay::core::input::VIA_PROPERTY;
    use crate::sessions::{ClientSession, ClientSessionConfig};
    use super::harness::PeerSession;
    let (mut a, mut b) = pair(test_config());
    assert_ne!(a.core.node_id(), b.core.node_id());
    let poison = ClientSessionConfig {
        extra_connect_properties: vec![(VIA_PROPERTY.to_string(), crate::Amf0Value::Utf8String(a.core.node_id().to_string()))],
        ..ClientSessionConfig::default()
    };
    let claimant = b.connect_client();
    b.peer(claimant).session = Some(PeerSession::Client(Box::new(ClientSession::new(poison))));
    b.peer(claimant).client().connect("live", "rtmp://127.0.0.1/live").unwrap();
    b.peer(claimant).client().request_playback("s").unwrap();
    b.send_outbound(claimant);
    b.pump();
    a.publisher("live", "s");
    deliver(&mut a, 0, &mut b, 1);
    assert!(b.peer(claimant).closed.is_none() && !b.connects.is_empty(), "{:?} {:?} {:?}", b.close_reason(claimant), b.peers[&claimant].client_events, b.core.stream_views());
    let pull = b.connects.first().map(|(id, _, _)| *id).expect("a sibling pull");
    let via = b.core.conns.get(pull).and_then(|conn| conn.upstream.as_ref()).map(|upstream| upstream.via.clone());
    assert_eq!(via.as_deref(), Some(b.core.node_id()));
}
