//! What a server answers on its own: encoders' extra commands, malformed commands,
//! acknowledgements, pings; several message streams on one connection.

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::chunk_io::{ChunkDecoder, ChunkDecoderLimits};
use crate::messages::RtmpMessage;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

#[test]
fn server_answers_the_commands_encoders_send() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    let mut connect = HashMap::new();
    connect.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    let payload = RtmpMessage::command("connect", 1.0, Amf0Value::Object(connect), vec![])
        .into_payload(RtmpTimestamp::ZERO, 0)
        .unwrap();
    let mut bytes = bytes::BytesMut::new();
    crate::chunk_io::ChunkEncoder::encode_standalone(3, &payload, 128, &mut bytes).unwrap();
    server.handle_input(&bytes).unwrap();
    let Some(ServerSessionEvent::ConnectionRequested { request_id, .. }) = server.poll_event() else { panic!() };
    server.accept_request(request_id).unwrap();
    let replies = server_messages(&server.take_outbound(), &mut decoder);
    assert_eq!(replies[0], RtmpMessage::WindowAcknowledgementSize { size: 5_000_000 });
    assert!(matches!(replies[1], RtmpMessage::SetPeerBandwidth { size: 5_000_000, .. }));
    assert_eq!(replies[2], RtmpMessage::SetChunkSize { size: 4096 });
    assert!(matches!(&replies[3], RtmpMessage::Amf0Command { name, transaction_id, .. } if name == "_result" && *transaction_id == 1.0));

    let stream_name = Amf0Value::Utf8String("key".into());
    for (name, transaction_id, arguments, reply_name) in [
        ("releaseStream", 2.0, vec![stream_name.clone()], "_result"),
        ("FCPublish", 3.0, vec![stream_name.clone()], "onFCPublish"),
        ("createStream", 4.0, vec![], "_result"),
        ("getStreamLength", 5.0, vec![stream_name.clone()], "_result"),
        ("_checkbw", 6.0, vec![], "_result"),
    ] {
        server.handle_input(&command(name, transaction_id, arguments)).unwrap();
        let replies = server_messages(&server.take_outbound(), &mut decoder);
        assert!(
            matches!(&replies[..], [RtmpMessage::Amf0Command { name, .. }] if name == reply_name),
            "{name} got {replies:?}"
        );
    }
    assert!(server.poll_event().is_none());

    // Publish type in upper case is still live; a second publish on the stream is refused.
    let mut publish = RtmpMessage::command("publish", 0.0, Amf0Value::Null, vec![stream_name.clone(), Amf0Value::Utf8String("LIVE".into())])
        .into_payload(RtmpTimestamp::ZERO, 1)
        .unwrap();
    let mut bytes = bytes::BytesMut::new();
    crate::chunk_io::ChunkEncoder::encode_standalone(8, &publish, 4096, &mut bytes).unwrap();
    server.handle_input(&bytes).unwrap();
    let Some(ServerSessionEvent::PublishRequested { mode: PublishMode::Live, request_id, .. }) = server.poll_event() else { panic!() };
    server.accept_request(request_id).unwrap();
    publish.timestamp = RtmpTimestamp::new(1);
    bytes.clear();
    crate::chunk_io::ChunkEncoder::encode_standalone(8, &publish, 4096, &mut bytes).unwrap();
    server.handle_input(&bytes).unwrap();
    assert!(server.poll_event().is_none());
    let replies = server_messages(&server.take_outbound(), &mut decoder);
    let codes_sent: Vec<String> = replies
        .iter()
        .filter_map(|reply| match reply {
            RtmpMessage::Amf0Command { arguments, .. } => arguments.first().map(|status| crate::sessions::status::read_status(status).code),
            _ => None,
        })
        .collect();
    assert_eq!(codes_sent, vec![codes::PUBLISH_START.to_string(), codes::PUBLISH_BAD_NAME.to_string()]);
}

#[test]
fn malformed_command_is_answered_not_fatal() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    // type 20 body: a string marker claiming 100 bytes with 2 present.
    server.handle_input(&[0x03, 0, 0, 0, 0, 0, 5, 20, 0, 0, 0, 0, 0x02, 0x00, 0x64, b'a', b'b']).unwrap();
    assert!(matches!(server.poll_event(), Some(ServerSessionEvent::InvalidMessageIgnored { type_id: 20, .. })));
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    let replies = server_messages(&server.take_outbound(), &mut decoder);
    assert!(matches!(&replies[..], [RtmpMessage::Amf0Command { name, .. }] if name == "_error"));
}

#[test]
fn acknowledgements_follow_the_peer_window() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    // Window Acknowledgement Size 100 from the client (16 bytes on the wire).
    server.handle_input(&[0x02, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0, 0, 0, 100]).unwrap();
    assert!(server.take_outbound().is_empty());
    // 90 more bytes of a ping response (each message 18 bytes): 16 + 90 = 106 >= 100.
    let ping_response = [0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9];
    for _ in 0..5 {
        server.handle_input(&ping_response).unwrap();
    }
    let replies = server_messages(&server.take_outbound(), &mut decoder);
    assert_eq!(replies, vec![RtmpMessage::Acknowledgement { sequence_number: 106 }]);
    assert_eq!(server.poll_event(), Some(ServerSessionEvent::PingResponseReceived { timestamp: 9 }));
}

#[test]
fn server_answers_ping_requests() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    server.handle_input(&[0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 6, 0, 0, 0x12, 0x34]).unwrap();
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    assert_eq!(
        server_messages(&server.take_outbound(), &mut decoder),
        vec![RtmpMessage::UserControl(crate::messages::UserControlEvent::PingResponse { timestamp: 0x1234 })]
    );
}

#[test]
fn several_streams_share_one_connection() {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_publishing("up", PublishMode::Live).unwrap();
    pair.client.request_playback("down").unwrap();
    pair.run();
    let requests: Vec<(String, u32)> = pair
        .server_events
        .iter()
        .filter_map(|event| match event {
            ServerSessionEvent::PublishRequested { stream_name, stream_id, .. }
            | ServerSessionEvent::PlayRequested { stream_name, stream_id, .. } => Some((stream_name.clone(), *stream_id)),
            _ => None,
        })
        .collect();
    assert_eq!(requests, vec![("up".to_string(), 1), ("down".to_string(), 2)]);
    assert!(pair.client_events.contains(&ClientSessionEvent::PublishStarted { stream_id: 1, stream_name: "up".into() }));
    assert!(pair.client_events.contains(&ClientSessionEvent::PlaybackStarted { stream_id: 2, stream_name: "down".into() }));

    // Media published on stream 1 reaches the server while stream 2 plays.
    pair.server_events.clear();
    pair.client_events.clear();
    pair.client.publish_media(MediaKind::Audio, RtmpTimestamp::new(5), Bytes::from_static(b"\xaf\x01x")).unwrap();
    pair.server.send_media(2, MediaKind::Audio, RtmpTimestamp::new(7), Bytes::from_static(b"\xaf\x01y")).unwrap();
    pair.run();
    assert!(pair.server_events.contains(&ServerSessionEvent::MediaReceived {
        stream_id: 1,
        kind: MediaKind::Audio,
        timestamp: RtmpTimestamp::new(5),
        data: Bytes::from_static(b"\xaf\x01x"),
    }));
    assert!(pair.client_events.contains(&ClientSessionEvent::MediaReceived {
        stream_id: 2,
        kind: MediaKind::Audio,
        timestamp: RtmpTimestamp::new(7),
        data: Bytes::from_static(b"\xaf\x01y"),
    }));
}
