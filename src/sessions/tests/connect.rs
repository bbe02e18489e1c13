//! connect: what the server sees of it, refusals, commands around it, calls out of order.

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::chunk_io::{ChunkDecoder, ChunkDecoderLimits};
use crate::messages::RtmpMessage;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

#[test]
fn connect_exposes_the_whole_connect_object() {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client = ClientSession::new(ClientSessionConfig {
        extra_connect_properties: vec![(
            "fourCcList".to_string(),
            Amf0Value::StrictArray(vec![Amf0Value::Utf8String("hvc1".into()), Amf0Value::Utf8String("av01".into())]),
        )],
        ..Default::default()
    });
    pair.client.connect("live?token=secret", "rtmp://127.0.0.1:1935/live?token=secret").unwrap();
    pair.run();
    let ServerSessionEvent::ConnectionRequested { request, .. } = &pair.server_events[0] else {
        panic!("first event was {:?}", pair.server_events[0]);
    };
    assert_eq!(request.app, "live");
    assert_eq!(request.query.as_deref(), Some("token=secret"));
    assert_eq!(request.tc_url.as_deref(), Some("rtmp://127.0.0.1:1935/live?token=secret"));
    assert_eq!(request.flash_ver.as_deref(), Some("FMLE/3.0 (compatible; rtmp-edge)"));
    assert_eq!(request.fourcc_list, vec!["hvc1".to_string(), "av01".to_string()]);
    assert!(matches!(
        &pair.client_events[0],
        ClientSessionEvent::ConnectionAccepted { status, .. } if status.code == codes::CONNECT_SUCCESS
    ));
    assert!(pair.client.is_connected());
    assert_eq!(pair.server.app(), Some("live"));
}

#[test]
fn rejected_connect_reaches_the_client() {
    let mut pair = Pair::new(Policy::RejectConnect);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("stream").unwrap();
    pair.run();
    assert_eq!(
        pair.client_events,
        vec![ClientSessionEvent::RequestRejected {
            kind: RejectedRequestKind::Connect,
            status: StatusInfo {
                level: "error".into(),
                code: codes::CONNECT_REJECTED.into(),
                description: "not allowed".into()
            },
        }]
    );
    assert!(pair.client.request_playback("again").is_err());
}

#[test]
fn commands_before_connect_are_refused() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    server.handle_input(&command("createStream", 2.0, vec![])).unwrap();
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    let replies = server_messages(&server.take_outbound(), &mut decoder);
    assert!(matches!(&replies[..], [RtmpMessage::Amf0Command { name, .. }] if name == "_error"));
}

#[test]
fn commands_sent_before_the_connect_answer_run_after_it() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut connect = HashMap::new();
    connect.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    let payload = RtmpMessage::command("connect", 1.0, Amf0Value::Object(connect), vec![])
        .into_payload(RtmpTimestamp::ZERO, 0)
        .unwrap();
    let mut bytes = bytes::BytesMut::new();
    crate::chunk_io::ChunkEncoder::encode_standalone(3, &payload, 128, &mut bytes).unwrap();
    bytes.extend_from_slice(&command("createStream", 2.0, vec![]));
    server.handle_input(&bytes).unwrap();
    let Some(ServerSessionEvent::ConnectionRequested { request_id, .. }) = server.poll_event() else { panic!() };
    assert!(server.take_outbound().is_empty(), "nothing may be answered before the connect decision");
    server.accept_request(request_id).unwrap();
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    let replies = server_messages(&server.take_outbound(), &mut decoder);
    let results: Vec<(String, f64)> = replies
        .iter()
        .filter_map(|reply| match reply {
            RtmpMessage::Amf0Command { name, transaction_id, .. } => Some((name.clone(), *transaction_id)),
            _ => None,
        })
        .collect();
    assert_eq!(results, vec![("_result".to_string(), 1.0), ("_result".to_string(), 2.0)]);
}

/// A connect awaiting its answer (an HTTP hook may take seconds) holds what the client
/// pipelines behind it, bounded in bytes as well as in messages.
#[test]
fn what_waits_behind_an_undecided_connect_is_bounded_in_bytes() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut connect = HashMap::new();
    connect.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    let encode = |message: RtmpMessage, stream_id: u32| {
        let payload = message.into_payload(RtmpTimestamp::ZERO, stream_id).unwrap();
        let mut bytes = bytes::BytesMut::new();
        crate::chunk_io::ChunkEncoder::encode_standalone(3, &payload, 128, &mut bytes).unwrap();
        bytes
    };
    server.handle_input(&encode(RtmpMessage::command("connect", 1.0, Amf0Value::Object(connect), vec![]), 0)).unwrap();
    assert!(matches!(server.poll_event(), Some(ServerSessionEvent::ConnectionRequested { .. })));
    // Media is dropped (no stream can publish yet), so it does not count...
    let video = RtmpMessage::Video { data: Bytes::from(vec![0x17; 60 * 1024]) };
    for _ in 0..8 {
        server.handle_input(&encode(video.clone(), 1)).unwrap();
    }
    // ...but commands are held, up to MAX_DEFERRED_BYTES.
    let command = |size: usize| RtmpMessage::command("FCPublish", 0.0, Amf0Value::Null, vec![Amf0Value::Utf8String("m".repeat(size))]);
    let max = crate::sessions::MAX_DEFERRED_BYTES;
    let mut result = Ok(());
    for _ in 0..(max / 60_000 + 1) {
        result = server.handle_input(&encode(command(60_000), 1));
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(SessionError::TooManyBytesBeforeConnect { max }));
}

#[test]
fn calls_out_of_order_are_typed_errors() {
    let mut client = ClientSession::new(ClientSessionConfig::default());
    assert_eq!(client.request_playback("s"), Err(SessionError::NotConnected));
    assert_eq!(client.publish_media(MediaKind::Audio, RtmpTimestamp::ZERO, Bytes::new()), Err(SessionError::NotPublishing));
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    assert_eq!(client.connect("live", "rtmp://127.0.0.1/live"), Err(SessionError::AlreadyConnected));

    let mut pair = Pair::new(Policy::RejectConnect);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.run();
    assert_eq!(pair.client.request_playback("s"), Err(SessionError::ConnectRejected));
}

// One 64 KiB read of bare type-3 chunk headers is 65,536 empty messages, each an event:
// the queue grows for a moment, and gives the room back once drained, or each idle
// connection that did this would keep megabytes.
#[test]
fn a_drained_event_queue_gives_back_the_room_a_burst_of_empty_messages_took() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut connect = HashMap::new();
    connect.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    let payload = RtmpMessage::command("connect", 1.0, Amf0Value::Object(connect), vec![]).into_payload(RtmpTimestamp::ZERO, 0).unwrap();
    let mut bytes = bytes::BytesMut::new();
    crate::chunk_io::ChunkEncoder::encode_standalone(3, &payload, 128, &mut bytes).unwrap();
    server.handle_input(&bytes).unwrap();
    let Some(ServerSessionEvent::ConnectionRequested { request_id, .. }) = server.poll_event() else { panic!("no connect") };
    server.accept_request(request_id).unwrap();
    while server.poll_event().is_some() {}
    // A zero-length video message on chunk stream 5, then type-3 headers repeating it.
    let mut burst = vec![0x05, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0];
    burst.extend(std::iter::repeat_n(0xC5, 64 * 1024));
    server.handle_input(&burst).unwrap();
    let grown = server.event_capacity();
    assert!(grown > 64 * 1024, "each empty message is an event: {grown}");
    while server.poll_event().is_some() {}
    assert!(server.event_capacity() <= crate::sessions::events::EVENTS_KEPT, "{} kept", server.event_capacity());
}
