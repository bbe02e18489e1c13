//! What one input makes the core do: everything the client sent is acted on, and the
//! driver is never asked to work for a connection the core has already closed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::harness::{keyframe, test_config, Harness};
use crate::chunk_io::ChunkEncoder;
use crate::messages::RtmpMessage;
use crate::relay::core::{Action, CloseReason, RelayCore, SHUTDOWN_GRACE};
use crate::relay::{Config, ListenerKind};
use crate::sessions::MediaKind;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// C0, C1 and C2 of a client, all zeros after the version.
fn client_handshake() -> Vec<u8> {
    let mut bytes = vec![3u8];
    bytes.extend_from_slice(&[0; 2 * 1536]);
    bytes
}

/// Encodes commands as (message stream, command) pairs, as a client sends them.
fn commands(encoder: &mut ChunkEncoder, list: Vec<(u32, RtmpMessage)>) -> BytesMut {
    let mut out = BytesMut::new();
    for (stream, command) in list {
        let payload = command.into_payload(RtmpTimestamp::ZERO, stream).unwrap();
        encoder.encode(8, &payload, &mut out).unwrap();
    }
    out
}

fn connect() -> (u32, RtmpMessage) {
    let mut object = std::collections::HashMap::new();
    object.insert("app".to_string(), Amf0Value::Utf8String("live".to_string()));
    (0, RtmpMessage::command("connect", 1.0, Amf0Value::Object(object), vec![]))
}

/// createStream, then publish `s` on the stream it makes (1).
fn create_and_publish() -> Vec<(u32, RtmpMessage)> {
    let arguments = vec![Amf0Value::Utf8String("s".to_string()), Amf0Value::Utf8String("live".to_string())];
    vec![
        (0, RtmpMessage::command("createStream", 2.0, Amf0Value::Null, vec![])),
        (1, RtmpMessage::command("publish", 3.0, Amf0Value::Null, arguments)),
    ]
}

/// A fmt 0 chunk on chunk stream 3: timestamp 0, length 0xFFFFFF (past the 8 MiB message
/// limit), type 20, stream 0. The chunk decoder refuses it.
const OVERSIZED_CHUNK: [u8; 12] = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x14, 0, 0, 0, 0];

fn drain(core: &mut RelayCore) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

// Found by the relay_core fuzz target: one read held a handshake and then bytes that broke
// the chunk protocol. The handshake's answer asked for a Write, the error closed the
// connection, and the driver was handed `Write(id)` for a connection the core had already
// forgotten, before its `Close`. (A `Connect` asked for in such an input opened a socket
// only to close it.)
#[test]
fn an_input_that_closes_its_connection_hands_out_only_the_close() {
    let now = Instant::now();
    let mut core = RelayCore::new(test_config(), 7, now);
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let id = core.accept(peer, ListenerKind::Rtmp, now).unwrap();
    let mut input = client_handshake();
    input.extend_from_slice(&OVERSIZED_CHUNK);
    core.handle_input(id, &input, now);
    let actions = drain(&mut core);
    assert!(matches!(actions.as_slice(), [Action::Close { id: closed, reason: CloseReason::ProtocolError(_) }] if *closed == id), "{actions:?}");
    assert!(!core.is_open(id));
}

#[test]
fn a_write_asked_for_before_the_peer_hung_up_is_not_handed_out() {
    let now = Instant::now();
    let mut core = RelayCore::new(test_config(), 7, now);
    let id = core.accept("127.0.0.1:50000".parse().unwrap(), ListenerKind::Rtmp, now).unwrap();
    let mut c0_c1 = vec![3u8];
    c0_c1.extend_from_slice(&[0; 1536]);
    // The driver read C0+C1 and then the end of the stream in one readiness event.
    core.handle_input(id, &c0_c1, now);
    core.handle_closed(id, CloseReason::PeerClosed, now);
    assert_eq!(drain(&mut core), vec![Action::Close { id, reason: CloseReason::PeerClosed }]);
}

// Also found by the fuzz target: on an edge, one read held a publish, which started a
// forward to the origin, and then broken chunks, which closed the publisher and with it the
// forward. The driver got the forward's Connect, opened a socket to the origin, then closed
// it.
#[test]
fn an_upstream_connection_opened_and_closed_in_one_input_is_never_announced() {
    let now = Instant::now();
    let config = Config { origins: vec!["127.0.0.1:1935".to_string()], ..test_config() };
    let mut core = RelayCore::new(config, 7, now);
    let publisher = core.accept("127.0.0.1:50000".parse().unwrap(), ListenerKind::Rtmp, now).unwrap();
    let mut encoder = ChunkEncoder::new();
    let mut input = BytesMut::from(&client_handshake()[..]);
    input.extend_from_slice(&commands(&mut encoder, vec![connect()]));
    core.handle_input(publisher, &input, now);
    assert_eq!(drain(&mut core), vec![Action::Write(publisher)]);
    let mut input = commands(&mut encoder, create_and_publish());
    input.extend_from_slice(&OVERSIZED_CHUNK);
    core.handle_input(publisher, &input, now);
    let actions = drain(&mut core);
    assert!(
        matches!(actions.as_slice(), [Action::Close { id, reason: CloseReason::ProtocolError(_) }] if *id == publisher),
        "{actions:?}"
    );
    let stats = core.stats().snapshot();
    assert_eq!((stats.connections_open, stats.publishers), (0, 0));
    assert_eq!(core.metrics_view().closed.iter().map(|(_, count)| count).sum::<u64>(), 2, "the forward was opened and closed");
}

// Found by the relay_core fuzz target, which sent connect and publish in one read:
// accepting a connect makes the session run the commands the client sent after it without
// waiting, and the publish or play they raise was left in the session until the client's
// next read, which for a player waiting in silence is the relay's ping, idle_timeout / 2
// later.
#[test]
fn a_publish_sent_in_one_write_with_its_connect_starts_at_once() {
    let now = Instant::now();
    let mut core = RelayCore::new(test_config(), 7, now);
    let publisher = core.accept("127.0.0.1:50000".parse().unwrap(), ListenerKind::Rtmp, now).unwrap();
    let mut encoder = ChunkEncoder::new();
    let mut input = BytesMut::from(&client_handshake()[..]);
    let mut list = vec![connect()];
    list.extend(create_and_publish());
    input.extend_from_slice(&commands(&mut encoder, list));
    core.handle_input(publisher, &input, now);
    let streams = core.stream_summaries();
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!((streams[0].key.to_string(), streams[0].publisher), ("live/s".to_string(), Some(publisher)));
    assert_eq!(core.stats().snapshot().publishers, 1);
}

// Found by the fuzz target: the shutdown deadline was acted on only in the 250 ms tick, but
// poll_timeout named the deadline itself. A deadline between two ticks was named, handled
// without effect, and named again: the driver spun until the next tick, and the connections
// still open outlived the deadline.
#[test]
fn the_shutdown_deadline_closes_what_is_left_on_time_and_the_driver_never_spins() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let stalled = h.player("live", "s");
    h.peer(stalled).reading = false;
    h.send_media(publisher, MediaKind::Video, 0, keyframe(100));
    // Between two ticks (they fall every 250 ms from the start).
    h.advance(Duration::from_millis(100));
    let deadline = h.now + SHUTDOWN_GRACE;
    h.core.begin_shutdown(h.now);
    h.pump();
    while let Some(at) = h.core.poll_timeout() {
        assert!(at > h.now, "poll_timeout {at:?} is not after the time just handled {:?}", h.now);
        assert!(at <= deadline + Duration::from_secs(1), "the shutdown did not end at its deadline");
        h.now = at;
        h.core.handle_timeout(at);
        h.pump();
    }
    assert!(h.stopped);
    assert_eq!(h.closes.iter().find(|(id, _, _)| *id == stalled).map(|(_, reason, at)| (reason.clone(), *at)), Some((CloseReason::Shutdown, deadline)));
}
