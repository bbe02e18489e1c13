use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::chunk_io::{ChunkDecoder, ChunkDecoderLimits};
use crate::messages::RtmpMessage;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// How the test's server side answers requests.
#[derive(Clone, Copy)]
enum Policy {
    AcceptAll,
    RejectConnect,
    RejectPublish,
    RejectPlay,
    /// Accepts plays with `accept_play_waiting`, everything else with `accept_request`.
    AcceptPlayWaiting,
}

struct Pair {
    server: ServerSession,
    client: ClientSession,
    server_events: Vec<ServerSessionEvent>,
    client_events: Vec<ClientSessionEvent>,
    policy: Policy,
}

impl Pair {
    fn new(policy: Policy) -> Pair {
        Pair {
            server: ServerSession::new(ServerSessionConfig::default()),
            client: ClientSession::new(ClientSessionConfig::default()),
            server_events: Vec::new(),
            client_events: Vec::new(),
            policy,
        }
    }

    /// Moves bytes both ways until neither side has more to say.
    fn run(&mut self) {
        for _ in 0..20 {
            let to_server = self.client.take_outbound();
            self.server.handle_input(&to_server).unwrap();
            while let Some(event) = self.server.poll_event() {
                let request = match &event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. } => Some((*request_id, 0)),
                    ServerSessionEvent::PublishRequested { request_id, .. } => Some((*request_id, 1)),
                    ServerSessionEvent::PlayRequested { request_id, .. } => Some((*request_id, 2)),
                    _ => None,
                };
                if let Some((request_id, kind)) = request {
                    let reject = matches!(
                        (self.policy, kind),
                        (Policy::RejectConnect, 0) | (Policy::RejectPublish, 1) | (Policy::RejectPlay, 2)
                    );
                    if reject {
                        self.server.reject_request(request_id, "not allowed").unwrap();
                    } else if matches!((self.policy, kind), (Policy::AcceptPlayWaiting, 2)) {
                        self.server.accept_play_waiting(request_id).unwrap();
                    } else {
                        self.server.accept_request(request_id).unwrap();
                    }
                }
                self.server_events.push(event);
            }
            let to_client = self.server.take_outbound();
            self.client.handle_input(&to_client).unwrap();
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
        }
        panic!("sessions kept talking");
    }
}

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

fn published_pair() -> Pair {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_publishing("stream?key=abc", PublishMode::Live).unwrap();
    pair.run();
    pair
}

#[test]
fn publish_flow_keeps_the_query_and_starts() {
    let pair = published_pair();
    let publish = pair
        .server_events
        .iter()
        .find_map(|event| match event {
            ServerSessionEvent::PublishRequested { app, stream_name, stream_id, mode, .. } => {
                Some((app.clone(), stream_name.clone(), *stream_id, *mode))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(publish, ("live".to_string(), "stream?key=abc".to_string(), 1, PublishMode::Live));
    assert!(pair.client_events.contains(&ClientSessionEvent::PublishStarted {
        stream_id: 1,
        stream_name: "stream?key=abc".into()
    }));
}

#[test]
fn media_and_metadata_arrive_in_order_with_their_timestamps() {
    let mut pair = published_pair();
    pair.server_events.clear();
    let mut metadata = HashMap::new();
    metadata.insert("width".to_string(), Amf0Value::Number(320.0));
    pair.client.publish_metadata(metadata.clone()).unwrap();
    let video: Vec<Bytes> = (0..5u8).map(|i| { let mut frame = vec![i; 1000]; frame[..5].copy_from_slice(&[0x17, 1, 0, 0, 0]); Bytes::from(frame) }).collect();
    for (i, frame) in video.iter().enumerate() {
        pair.client.publish_media(MediaKind::Video, RtmpTimestamp::new(i as u32 * 40), frame.clone()).unwrap();
        pair.client.publish_media(MediaKind::Audio, RtmpTimestamp::new(i as u32 * 40 + 3), Bytes::from_static(b"\xaf\x01ab")).unwrap();
    }
    pair.run();
    let ServerSessionEvent::MetadataReceived { metadata: received, .. } = &pair.server_events[0] else {
        panic!("expected metadata first, got {:?}", pair.server_events[0]);
    };
    assert_eq!(received.properties, metadata);
    assert!(received.raw.starts_with(b"\x02\x00\x0aonMetaData"));
    let media: Vec<(MediaKind, u32, Bytes)> = pair.server_events[1..]
        .iter()
        .filter_map(|event| match event {
            ServerSessionEvent::MediaReceived { kind, timestamp, data, stream_id: 1 } => {
                Some((*kind, timestamp.value(), data.clone()))
            }
            _ => None,
        })
        .collect();
    let mut expected = Vec::new();
    for (i, frame) in video.iter().enumerate() {
        expected.push((MediaKind::Video, i as u32 * 40, frame.clone()));
        expected.push((MediaKind::Audio, i as u32 * 40 + 3, Bytes::from_static(b"\xaf\x01ab")));
    }
    assert_eq!(media, expected);
}

#[test]
fn stop_finishes_the_publish() {
    let mut pair = published_pair();
    pair.client.stop().unwrap();
    pair.run();
    assert!(pair.server_events.contains(&ServerSessionEvent::PublishFinished {
        app: "live".into(),
        stream_name: "stream?key=abc".into(),
        stream_id: 1
    }));
}

#[test]
fn rejected_publish_gives_bad_name() {
    let mut pair = Pair::new(Policy::RejectPublish);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_publishing("taken", PublishMode::Live).unwrap();
    pair.run();
    assert!(pair.client_events.iter().any(|event| matches!(
        event,
        ClientSessionEvent::RequestRejected { kind: RejectedRequestKind::Publish, status } if status.code == codes::PUBLISH_BAD_NAME
    )));
    assert!(pair.client.publish_media(MediaKind::Video, RtmpTimestamp::ZERO, Bytes::new()).is_err());
}

#[test]
fn play_flow_then_media_from_the_server() {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("stream?token=t").unwrap();
    pair.run();
    let play = pair.server_events.iter().find_map(|event| match event {
        ServerSessionEvent::PlayRequested { stream_name, stream_id, start, .. } => Some((stream_name.clone(), *stream_id, *start)),
        _ => None,
    });
    assert_eq!(play, Some(("stream?token=t".to_string(), 1, -2000.0)));
    assert!(pair.client_events.contains(&ClientSessionEvent::StreamBegin { stream_id: 1 }));
    assert!(pair.client_events.contains(&ClientSessionEvent::PlaybackStarted { stream_id: 1, stream_name: "stream?token=t".into() }));

    pair.client_events.clear();
    let frame = Bytes::from(vec![0x27u8; 9000]);
    pair.server.send_media(1, MediaKind::Video, RtmpTimestamp::new(0x0100_0000), frame.clone()).unwrap();
    pair.server.notify_publish_stopped(1, "stream").unwrap();
    pair.run();
    assert_eq!(
        pair.client_events[0],
        ClientSessionEvent::MediaReceived { stream_id: 1, kind: MediaKind::Video, timestamp: RtmpTimestamp::new(0x0100_0000), data: frame }
    );
    assert!(matches!(&pair.client_events[1], ClientSessionEvent::StatusReceived { stream_id: 1, status } if status.code == codes::PLAY_UNPUBLISH_NOTIFY));
}

#[test]
fn rejected_play_gives_stream_not_found() {
    let mut pair = Pair::new(Policy::RejectPlay);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("missing").unwrap();
    pair.run();
    assert!(pair.client_events.iter().any(|event| matches!(
        event,
        ClientSessionEvent::RequestRejected { kind: RejectedRequestKind::Play, status } if status.code == codes::PLAY_STREAM_NOT_FOUND
    )));
}

/// Decodes what a server sent into messages, for exact checks of its replies.
fn server_messages(bytes: &[u8], decoder: &mut ChunkDecoder) -> Vec<RtmpMessage> {
    decoder.push(bytes);
    let mut messages = Vec::new();
    while let Some(payload) = decoder.next_message().unwrap() {
        messages.push(RtmpMessage::decode(&payload).unwrap());
    }
    messages
}

fn command(name: &str, transaction_id: f64, arguments: Vec<Amf0Value>) -> Vec<u8> {
    let payload = RtmpMessage::command(name, transaction_id, Amf0Value::Null, arguments)
        .into_payload(RtmpTimestamp::ZERO, 0)
        .unwrap();
    let mut out = bytes::BytesMut::new();
    crate::chunk_io::ChunkEncoder::encode_standalone(3, &payload, 128, &mut out).unwrap();
    out.to_vec()
}

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
            RtmpMessage::Amf0Command { arguments, .. } => arguments.first().map(|status| super::status::read_status(status).code),
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

#[test]
fn play_with_a_url_connects_to_its_app_and_plays_its_stream() {
    let mut pair = Pair::new(Policy::AcceptAll);
    let url = crate::url::RtmpUrl::parse("rtmp://127.0.0.1/live/cam/1?token=t").unwrap();
    pair.client.play(&url).unwrap();
    pair.run();
    let ServerSessionEvent::ConnectionRequested { request, .. } = &pair.server_events[0] else {
        panic!("expected connect first, got {:?}", pair.server_events[0]);
    };
    assert_eq!((request.app.as_str(), request.query.as_deref()), ("live", None));
    assert_eq!(request.tc_url.as_deref(), Some("rtmp://127.0.0.1:1935/live"));
    assert!(pair.server_events.iter().any(
        |event| matches!(event, ServerSessionEvent::PlayRequested { stream_name, .. } if stream_name == "cam/1?token=t")
    ));
    // StreamBegin came before Play.Start: the stream is live, nobody waits.
    let starts: Vec<_> = pair
        .client_events
        .iter()
        .filter(|event| {
            matches!(
                event,
                ClientSessionEvent::StreamBegin { .. }
                    | ClientSessionEvent::PlaybackStarted { .. }
                    | ClientSessionEvent::WaitingForPublisher { .. }
            )
        })
        .cloned()
        .collect();
    assert_eq!(
        starts,
        vec![
            ClientSessionEvent::StreamBegin { stream_id: 1 },
            ClientSessionEvent::PlaybackStarted { stream_id: 1, stream_name: "cam/1?token=t".into() },
        ]
    );
}

#[test]
fn publish_with_a_url_sends_the_query_with_the_stream_name() {
    let mut pair = Pair::new(Policy::AcceptAll);
    let url = crate::url::RtmpUrl::parse("rtmp://127.0.0.1:1940/app/key?auth=1").unwrap();
    pair.client.publish(&url, PublishMode::Record).unwrap();
    pair.run();
    assert!(pair.server_events.iter().any(|event| matches!(
        event,
        ServerSessionEvent::PublishRequested { app, stream_name, mode: PublishMode::Record, .. }
            if app == "app" && stream_name == "key?auth=1"
    )));
    assert!(pair.client_events.contains(&ClientSessionEvent::PublishStarted { stream_id: 1, stream_name: "key?auth=1".into() }));
}

#[test]
fn a_url_without_a_stream_sends_nothing() {
    let mut client = ClientSession::new(ClientSessionConfig::default());
    let url = crate::url::RtmpUrl::parse("rtmp://127.0.0.1/live").unwrap();
    assert_eq!(client.play(&url), Err(SessionError::NoStreamName));
    assert_eq!(client.publish(&url, PublishMode::Live), Err(SessionError::NoStreamName));
    assert!(!client.has_outbound());
    // Nothing was half done: the client can still connect.
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
}

#[test]
fn a_play_accepted_before_its_publisher_says_it_waits() {
    let mut pair = Pair::new(Policy::AcceptPlayWaiting);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("later").unwrap();
    pair.run();
    let stream_events = |events: &[ClientSessionEvent]| -> Vec<String> {
        events
            .iter()
            .filter_map(|event| match event {
                ClientSessionEvent::StreamBegin { .. } => Some("StreamBegin".to_string()),
                ClientSessionEvent::PlaybackStarted { .. } => Some("PlaybackStarted".to_string()),
                ClientSessionEvent::WaitingForPublisher { stream_id: 1, stream_name } => Some(format!("Waiting {stream_name}")),
                ClientSessionEvent::StatusReceived { status, .. } => Some(status.code.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(stream_events(&pair.client_events), [codes::PLAY_RESET, "PlaybackStarted", "Waiting later"]);

    pair.client_events.clear();
    pair.server.notify_publish_started(1, "later").unwrap();
    pair.server.send_media(1, MediaKind::Audio, RtmpTimestamp::new(5), Bytes::from_static(b"\xaf\x01x")).unwrap();
    pair.run();
    assert_eq!(stream_events(&pair.client_events), ["StreamBegin", codes::PLAY_PUBLISH_NOTIFY]);
    assert!(matches!(pair.client_events.last(), Some(ClientSessionEvent::MediaReceived { kind: MediaKind::Audio, .. })));

    pair.client_events.clear();
    pair.server.notify_publish_stopped(1, "later").unwrap();
    pair.run();
    assert_eq!(stream_events(&pair.client_events), [codes::PLAY_UNPUBLISH_NOTIFY, "Waiting later"]);
}

#[test]
fn accept_play_waiting_answers_only_plays() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut client = ClientSession::new(ClientSessionConfig::default());
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    server.handle_input(&client.take_outbound()).unwrap();
    let Some(ServerSessionEvent::ConnectionRequested { request_id, .. }) = server.poll_event() else {
        panic!("no connect request");
    };
    assert_eq!(server.accept_play_waiting(request_id), Err(SessionError::WrongRequestKind(request_id)));
    assert_eq!(server.accept_play_waiting(request_id + 100), Err(SessionError::UnknownRequest(request_id + 100)));
    // Still pending, so it can be answered properly.
    server.accept_request(request_id).unwrap();
}

#[test]
fn publish_tag_sends_script_tags_as_metadata_or_data() {
    use crate::flv::{FlvTag, FlvTagType};
    let mut pair = published_pair();
    pair.server_events.clear();
    let on_meta_data: &[u8] = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09";
    let mut with_prefix = b"\x02\x00\x0d@setDataFrame".to_vec();
    with_prefix.extend_from_slice(on_meta_data);
    let cue_point: &[u8] = b"\x02\x00\x0aonCuePoint\x05";
    let tag = |tag_type, timestamp, data: &[u8]| FlvTag {
        tag_type,
        timestamp: RtmpTimestamp::new(timestamp),
        data: Bytes::copy_from_slice(data),
    };
    for sent in [
        tag(FlvTagType::Script, 0, on_meta_data),
        tag(FlvTagType::Script, 1, &with_prefix),
        tag(FlvTagType::Script, 2, cue_point),
        tag(FlvTagType::Audio, 3, b"\xaf\x00\x12\x10"),
        tag(FlvTagType::Video, 4, b"\x17\x00\x00\x00\x00"),
    ] {
        pair.client.publish_tag(&sent).unwrap();
    }
    pair.run();
    let received: Vec<(FlvTagType, u32, Bytes, bool)> = pair
        .server_events
        .iter()
        .filter_map(|event| {
            let is_metadata = matches!(event, ServerSessionEvent::MetadataReceived { .. });
            event.to_flv_tag().map(|tag| (tag.tag_type, tag.timestamp.value(), tag.data, is_metadata))
        })
        .collect();
    let expected = vec![
        // Either way, onMetaData arrives as metadata, its body without the prefix.
        (FlvTagType::Script, 0, Bytes::from_static(on_meta_data), true),
        (FlvTagType::Script, 1, Bytes::from_static(on_meta_data), true),
        (FlvTagType::Script, 2, Bytes::from_static(cue_point), false),
        (FlvTagType::Audio, 3, Bytes::from_static(b"\xaf\x00\x12\x10"), false),
        (FlvTagType::Video, 4, Bytes::from_static(b"\x17\x00\x00\x00\x00"), false),
    ];
    assert_eq!(received, expected);
}

#[test]
fn client_events_become_the_flv_tags_a_recorder_writes() {
    use crate::flv::{FlvTag, FlvTagType};
    let metadata = StreamMetadata { raw: Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"), properties: HashMap::new() };
    let event = ClientSessionEvent::MetadataReceived { stream_id: 1, timestamp: RtmpTimestamp::new(7), metadata };
    assert_eq!(
        event.to_flv_tag(),
        Some(FlvTag {
            tag_type: FlvTagType::Script,
            timestamp: RtmpTimestamp::new(7),
            data: Bytes::from_static(b"\x02\x00\x0aonMetaData\x05")
        })
    );
    let event = ClientSessionEvent::MediaReceived {
        stream_id: 1,
        kind: MediaKind::Video,
        timestamp: RtmpTimestamp::new(9),
        data: Bytes::from_static(b"\x27\x01"),
    };
    assert_eq!(
        event.to_flv_tag(),
        Some(FlvTag { tag_type: FlvTagType::Video, timestamp: RtmpTimestamp::new(9), data: Bytes::from_static(b"\x27\x01") })
    );
    assert_eq!(ClientSessionEvent::StreamBegin { stream_id: 1 }.to_flv_tag(), None);
    for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Data] {
        assert_eq!(MediaKind::from(FlvTagType::from(kind)), kind);
        assert_eq!(FlvTagType::from(kind).type_id(), media_chunk_stream(kind).1);
    }
}

#[test]
fn a_refusal_is_kept_for_callers_that_missed_the_event() {
    let mut pair = Pair::new(Policy::RejectPlay);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    assert_eq!(pair.client.rejection(), None);
    pair.client.request_playback("missing").unwrap();
    pair.run();
    let (kind, status) = pair.client.rejection().unwrap();
    assert_eq!((kind, status.code.as_str()), (RejectedRequestKind::Play, codes::PLAY_STREAM_NOT_FOUND));
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
