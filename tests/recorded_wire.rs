//! The library on bytes that real peers sent: `tests/fixtures/wire/*.c2s` (ffmpeg and
//! rtmpdump as clients) and `*.s2c` (nginx-rtmp as server), recorded on loopback (see
//! `tests/fixtures/README.md`).
//!
//! Hand-written test vectors only show that we agree with ourselves. These recordings show
//! that we read what other implementations actually put on the wire: their header
//! compression, their chunk size changes, their AMF. Every check is exact: the media that
//! ffmpeg published must come out byte for byte equal to the FLV file it read.

use std::collections::HashMap;

use bytes::Bytes;
use rtmp_edge::chunk_io::{ChunkDecoder, ChunkDecoderLimits, MessagePayload, DEFAULT_CHUNK_SIZE};
use rtmp_edge::flv::{FlvReader, FlvTag, FlvTagType};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole, PACKET_LEN};
use rtmp_edge::messages::{strip_set_data_frame, type_id, RtmpMessage, UserControlEvent};
use rtmp_edge::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, MediaKind, PublishMode, ServerSession,
    ServerSessionConfig, ServerSessionEvent,
};
use rtmp_edge::Amf0Value;

/// The chunk size nginx-rtmp (per its config) and ffmpeg as a publisher switch to.
const RECORDED_CHUNK_SIZE: u32 = 4096;

/// A typical TCP segment payload, to feed the recordings the way a socket would.
const SEGMENT: usize = 1460;

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read(&path) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => panic!("cannot read fixture {path}: {e}"),
    }
}

/// Runs our handshake in `role` over everything the peer sent and returns the bytes after
/// C2/S2, which are the start of the peer's chunk stream.
fn chunk_stream_after_handshake(role: HandshakeRole, peer_bytes: &[u8]) -> Bytes {
    let mut handshake = Handshake::new(role, 0);
    let hello = handshake.start();
    let expected_hello = match role {
        HandshakeRole::Client => 1 + PACKET_LEN,
        HandshakeRole::Server => 0,
    };
    assert_eq!(hello.len(), expected_hello);
    // The whole recording at once: the handshake must take exactly its 1 + 2 * 1536 bytes
    // and hand back the rest untouched.
    match handshake.process(peer_bytes) {
        Ok(HandshakeProgress::Completed { response, remaining }) => {
            let expected_response = match role {
                // S0 + S1 + S2, all answered while consuming C0 + C1.
                HandshakeRole::Server => 1 + 2 * PACKET_LEN,
                // C2.
                HandshakeRole::Client => PACKET_LEN,
            };
            assert_eq!(response.len(), expected_response);
            assert_eq!(remaining.len(), peer_bytes.len() - (1 + 2 * PACKET_LEN));
            assert_eq!(&remaining[..], &peer_bytes[1 + 2 * PACKET_LEN..]);
            remaining
        }
        other => panic!("handshake did not complete over the recording: {other:?}"),
    }
}

/// What decoding a recorded chunk stream produced.
struct Decoded {
    messages: Vec<MessagePayload>,
    /// (index of the message after which it changed, new chunk size).
    chunk_size_changes: Vec<(usize, u32)>,
    /// Bytes left in the decoder at the end (a message cut off by the close).
    leftover: usize,
}

/// Decodes a chunk stream fed `piece` bytes at a time, draining messages after each push,
/// as a connection reading from a socket would. Any decoder error fails the test.
fn decode_chunk_stream(stream: &[u8], piece: usize) -> Decoded {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    assert_eq!(decoder.chunk_size(), DEFAULT_CHUNK_SIZE);
    let mut messages = Vec::new();
    let mut chunk_size_changes = Vec::new();
    for bytes in stream.chunks(piece) {
        decoder.push(bytes);
        loop {
            let before = decoder.chunk_size();
            match decoder.next_message() {
                Ok(Some(message)) => {
                    if decoder.chunk_size() != before {
                        chunk_size_changes.push((messages.len(), decoder.chunk_size()));
                    }
                    messages.push(message);
                }
                Ok(None) => break,
                Err(e) => panic!("decoder error after {} messages: {e}", messages.len()),
            }
        }
    }
    assert_eq!(decoder.partial_bytes(), 0, "a reassembly is still open at the end");
    Decoded { messages, chunk_size_changes, leftover: decoder.buffered_len() }
}

/// Decodes the recording whole, in TCP-sized pieces and one byte at a time; all three must
/// give the same messages, so no state depends on where reads happen to split.
fn decode_every_way(stream: &[u8]) -> Decoded {
    let whole = decode_chunk_stream(stream, stream.len().max(1));
    for piece in [SEGMENT, 1] {
        let split = decode_chunk_stream(stream, piece);
        assert_eq!(split.messages, whole.messages, "fed {piece} bytes at a time");
        assert_eq!(split.chunk_size_changes, whole.chunk_size_changes);
        assert_eq!(split.leftover, whole.leftover);
    }
    whole
}

/// The recording cut after each whole message, each piece at most a TCP segment long.
///
/// The recorded clients waited for the server's answer to connect (and to createStream)
/// before sending the next command; a recording concatenates everything, so a session must be
/// fed no further than one message at a time to see the same order of events the live
/// server saw. A session, unlike the bare decoder, answers commands that arrive before
/// connect is accepted with `_error`.
fn pieces_by_message(stream: &[u8]) -> Vec<&[u8]> {
    let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
    let mut pieces = Vec::new();
    let mut start = 0;
    for (index, byte) in stream.iter().enumerate() {
        decoder.push(std::slice::from_ref(byte));
        if let Ok(Some(_)) = decoder.next_message() {
            pieces.extend(stream[start..=index].chunks(SEGMENT));
            start = index + 1;
        }
    }
    pieces.extend(stream[start..].chunks(SEGMENT));
    pieces
}

fn decode_message(payload: &MessagePayload) -> RtmpMessage {
    match RtmpMessage::decode(payload) {
        Ok(message) => message,
        Err(e) => panic!("type {} at {} does not decode: {e}", payload.type_id, payload.timestamp.value()),
    }
}

/// A command as (name, transaction id, message stream id, arguments).
type Command = (String, f64, u32, Vec<Amf0Value>);

fn commands(messages: &[MessagePayload]) -> Vec<(Command, Amf0Value)> {
    messages
        .iter()
        .filter(|m| m.type_id == type_id::AMF0_COMMAND)
        .map(|m| match decode_message(m) {
            RtmpMessage::Amf0Command { name, transaction_id, command_object, arguments } => {
                ((name, transaction_id, m.message_stream_id, arguments), command_object)
            }
            other => panic!("type 20 decoded as {other:?}"),
        })
        .collect()
}

fn string(text: &str) -> Amf0Value {
    Amf0Value::Utf8String(text.to_string())
}

fn object_property<'a>(object: &'a Amf0Value, key: &str) -> Option<&'a Amf0Value> {
    match object {
        Amf0Value::Object(properties) => properties.get(key),
        _ => None,
    }
}

fn flv_tags(name: &str) -> Vec<FlvTag> {
    let reader = match FlvReader::new(fixture(name)) {
        Ok(reader) => reader,
        Err(e) => panic!("{name}: {e}"),
    };
    reader.map(|tag| tag.unwrap_or_else(|e| panic!("{name}: {e}"))).collect()
}

/// `onMetaData` followed by its properties (an ECMA array, read as an object).
fn metadata_properties(body: &[u8]) -> HashMap<String, Amf0Value> {
    let payload = MessagePayload {
        timestamp: rtmp_edge::time::RtmpTimestamp::ZERO,
        type_id: type_id::AMF0_DATA,
        message_stream_id: 0,
        data: Bytes::copy_from_slice(body),
    };
    match decode_message(&payload) {
        RtmpMessage::Amf0Data { values } => match values.as_slice() {
            [Amf0Value::Utf8String(name), Amf0Value::Object(properties)] if name == "onMetaData" => {
                properties.clone()
            }
            other => panic!("not onMetaData: {other:?}"),
        },
        other => panic!("not a data message: {other:?}"),
    }
}

/// Media messages (audio, video, data) of a recording, in order.
fn media_messages(messages: &[MessagePayload]) -> Vec<&MessagePayload> {
    messages
        .iter()
        .filter(|m| matches!(m.type_id, type_id::AUDIO | type_id::VIDEO | type_id::AMF0_DATA))
        .collect()
}

fn publish_chunk_stream() -> Bytes {
    chunk_stream_after_handshake(HandshakeRole::Server, &fixture("wire/ffmpeg_publish.c2s"))
}

#[test]
fn ffmpeg_publish_commands_arrive_in_order() {
    let decoded = decode_every_way(&publish_chunk_stream());
    let commands = commands(&decoded.messages);
    let sequence: Vec<(&str, f64, u32)> =
        commands.iter().map(|((name, txn, sid, _), _)| (name.as_str(), *txn, *sid)).collect();
    assert_eq!(
        sequence,
        [
            ("connect", 1.0, 0),
            ("releaseStream", 2.0, 0),
            ("FCPublish", 3.0, 0),
            ("createStream", 4.0, 0),
            ("publish", 5.0, 1),
            ("FCUnpublish", 6.0, 0),
            ("deleteStream", 7.0, 0),
        ]
    );
    let ((_, _, _, connect_args), connect_object) = &commands[0];
    assert!(connect_args.is_empty());
    assert_eq!(object_property(connect_object, "app"), Some(&string("live")));
    assert_eq!(object_property(connect_object, "flashVer"), Some(&string("FMLE/3.0 (compatible; Lavf59.27.100)")));
    assert_eq!(object_property(connect_object, "type"), Some(&string("nonprivate")));
    assert!(matches!(object_property(connect_object, "tcUrl"), Some(Amf0Value::Utf8String(url)) if url.starts_with("rtmp://127.0.0.1:") && url.ends_with("/live")));
    assert_eq!(commands[1].0 .3, [string("stream")]);
    assert_eq!(commands[2].0 .3, [string("stream")]);
    assert_eq!(commands[3].0 .3, []);
    assert_eq!(commands[4].0 .3, [string("stream"), string("live")]);
    assert_eq!(commands[5].0 .3, [string("stream")]);
    assert_eq!(commands[6].0 .3, [Amf0Value::Number(1.0)]);
    for (_, command_object) in &commands[1..] {
        assert_eq!(*command_object, Amf0Value::Null);
    }

    // ffmpeg sends its Set Chunk Size right after connect, and nothing else is left over.
    assert_eq!(decoded.messages[1].type_id, type_id::SET_CHUNK_SIZE);
    assert_eq!(decoded.chunk_size_changes, [(1, RECORDED_CHUNK_SIZE)]);
    assert_eq!(decoded.leftover, 0);
    // 278 FLV tags + 7 commands + Set Chunk Size.
    assert_eq!(decoded.messages.len(), 278 + 8);
}

#[test]
fn ffmpeg_publish_media_equals_the_flv_it_read() {
    let decoded = decode_every_way(&publish_chunk_stream());
    let published = media_messages(&decoded.messages);
    let tags = flv_tags("h264_aac.flv");
    assert_eq!(tags.len(), 278);
    assert_eq!(published.len(), tags.len());

    for (index, (message, tag)) in published.iter().zip(&tags).enumerate() {
        assert_eq!(message.type_id, tag.tag_type.type_id(), "tag {index}: type");
        assert_eq!(message.timestamp, tag.timestamp, "tag {index}: timestamp");
        assert_eq!(message.message_stream_id, 1, "tag {index}: stream id");
        if tag.tag_type == FlvTagType::Script {
            continue;
        }
        assert_eq!(message.data, tag.data, "tag {index}: body bytes");
        // Every body is one RtmpMessage::Audio/Video slice of the same bytes.
        match (decode_message(message), tag.tag_type) {
            (RtmpMessage::Audio { data }, FlvTagType::Audio) | (RtmpMessage::Video { data }, FlvTagType::Video) => {
                assert_eq!(data, tag.data)
            }
            (other, kind) => panic!("tag {index} ({kind:?}) decoded as {other:?}"),
        }
    }

    // The one script tag is onMetaData; ffmpeg publishes it as @setDataFrame("onMetaData", ...)
    // with the muxer's live values: duration and filesize are 0 (the file had them patched in
    // after muxing) and it names itself as encoder (the file was made with +bitexact). The
    // other properties and their values are identical.
    assert_eq!(tags[0].tag_type, FlvTagType::Script);
    let Some(stripped) = strip_set_data_frame(&published[0].data) else {
        panic!("the published data message does not start with @setDataFrame")
    };
    let mut on_air = metadata_properties(&stripped);
    let mut in_file = metadata_properties(&tags[0].data);
    assert!(matches!(in_file.remove("duration"), Some(Amf0Value::Number(d)) if (4.0..4.1).contains(&d)));
    assert_eq!(in_file.remove("filesize"), Some(Amf0Value::Number(177_104.0)));
    assert_eq!(in_file.remove("encoder"), None);
    assert_eq!(on_air.remove("duration"), Some(Amf0Value::Number(0.0)));
    assert_eq!(on_air.remove("filesize"), Some(Amf0Value::Number(0.0)));
    assert_eq!(on_air.remove("encoder"), Some(string("Lavf59.27.100")));
    assert_eq!(on_air, in_file);
    assert_eq!(on_air.get("videocodecid"), Some(&Amf0Value::Number(7.0)));
    assert_eq!(on_air.get("audiocodecid"), Some(&Amf0Value::Number(10.0)));
}

#[test]
fn server_session_accepts_the_ffmpeg_publish_and_reports_the_flv_media() {
    let stream = publish_chunk_stream();
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut events = Vec::new();
    for segment in pieces_by_message(&stream) {
        if let Err(e) = session.handle_input(segment) {
            panic!("session error after {} events: {e}", events.len());
        }
        while let Some(event) = session.poll_event() {
            match &event {
                ServerSessionEvent::ConnectionRequested { request_id, .. }
                | ServerSessionEvent::PublishRequested { request_id, .. }
                | ServerSessionEvent::PlayRequested { request_id, .. } => {
                    if let Err(e) = session.accept_request(*request_id) {
                        panic!("accepting request {request_id}: {e}");
                    }
                }
                _ => {}
            }
            events.push(event);
        }
        let _ = session.take_outbound();
    }
    assert_eq!(session.app(), Some("live"));

    let tags = flv_tags("h264_aac.flv");
    let mut media = Vec::new();
    let mut metadata = Vec::new();
    let mut others = Vec::new();
    for event in &events {
        match event {
            ServerSessionEvent::MediaReceived { stream_id: 1, kind, timestamp, data } => {
                media.push((*kind, *timestamp, data.clone()))
            }
            ServerSessionEvent::MetadataReceived { stream_id: 1, timestamp, metadata: m } => {
                metadata.push((*timestamp, m.raw.clone()))
            }
            other => others.push(other.clone()),
        }
    }

    let expected_media: Vec<_> = tags
        .iter()
        .filter_map(|tag| {
            let kind = match tag.tag_type {
                FlvTagType::Audio => MediaKind::Audio,
                FlvTagType::Video => MediaKind::Video,
                FlvTagType::Script => return None,
            };
            Some((kind, tag.timestamp, tag.data.clone()))
        })
        .collect();
    assert_eq!(media.len(), 277);
    assert!(media == expected_media, "media events differ from the FLV tags");

    let c2s_metadata = media_messages(&decode_chunk_stream(&stream, stream.len()).messages)[0].data.clone();
    assert_eq!(metadata, [(tags[0].timestamp, strip_set_data_frame(&c2s_metadata).unwrap_or_default())]);

    match others.first() {
        Some(ServerSessionEvent::ConnectionRequested { request_id: 1, request }) => {
            assert_eq!(request.app, "live");
            assert_eq!(request.query, None);
            assert_eq!(request.flash_ver.as_deref(), Some("FMLE/3.0 (compatible; Lavf59.27.100)"));
        }
        other => panic!("first event is not the connect request: {other:?}"),
    }
    assert!(others.iter().any(|e| matches!(e,
        ServerSessionEvent::PublishRequested { app, stream_name, stream_id: 1, mode: PublishMode::Live, .. }
            if app == "live" && stream_name == "stream")));
    assert!(others.iter().any(|e| matches!(e,
        ServerSessionEvent::PublishFinished { app, stream_name, stream_id: 1 }
            if app == "live" && stream_name == "stream")));
    assert!(
        !others.iter().any(|e| matches!(e, ServerSessionEvent::InvalidMessageIgnored { .. })),
        "ignored messages: {others:?}"
    );
}

/// A player's command as (name, message stream id, arguments).
type PlayerCommand = (String, u32, Vec<Amf0Value>);

/// A recorded player's commands in order, its connect command object, and the decoding.
fn player_commands(name: &str) -> (Vec<PlayerCommand>, Amf0Value, Decoded) {
    let stream = chunk_stream_after_handshake(HandshakeRole::Server, &fixture(name));
    let decoded = decode_every_way(&stream);
    for message in &decoded.messages {
        decode_message(message);
    }
    assert!(decoded.chunk_size_changes.is_empty(), "players never change their chunk size");
    let commands = commands(&decoded.messages);
    let connect_object = commands.first().map(|(_, object)| object.clone()).unwrap_or(Amf0Value::Null);
    let commands = commands.into_iter().map(|((name, _, sid, args), _)| (name, sid, args)).collect();
    (commands, connect_object, decoded)
}

#[test]
fn rtmpdump_play_commands_decode() {
    let (commands, connect, decoded) = player_commands("wire/rtmpdump_play.c2s");
    assert_eq!(
        commands,
        [
            ("connect".to_string(), 0, vec![]),
            ("createStream".to_string(), 0, vec![]),
            ("FCSubscribe".to_string(), 0, vec![string("stream")]),
            ("play".to_string(), 1, vec![string("stream"), Amf0Value::Number(-1000.0)]),
            ("deleteStream".to_string(), 0, vec![Amf0Value::Number(1.0)]),
        ]
    );
    assert_eq!(object_property(&connect, "app"), Some(&string("live")));
    assert_eq!(object_property(&connect, "flashVer"), Some(&string("LNX 10,0,32,18")));
    let controls: Vec<RtmpMessage> = decoded
        .messages
        .iter()
        .filter(|m| m.type_id != type_id::AMF0_COMMAND)
        .map(decode_message)
        .collect();
    assert_eq!(
        controls,
        [
            RtmpMessage::WindowAcknowledgementSize { size: 5_000_000 },
            RtmpMessage::UserControl(UserControlEvent::SetBufferLength { stream_id: 0, buffer_length_ms: 300 }),
            RtmpMessage::UserControl(UserControlEvent::SetBufferLength { stream_id: 1, buffer_length_ms: 36_000_000 }),
        ]
    );
    assert_eq!(decoded.leftover, 0);
}

#[test]
fn ffmpeg_play_commands_decode() {
    let (commands, connect, decoded) = player_commands("wire/ffmpeg_play.c2s");
    assert_eq!(
        commands,
        [
            ("connect".to_string(), 0, vec![]),
            ("createStream".to_string(), 0, vec![]),
            ("getStreamLength".to_string(), 0, vec![string("stream")]),
            ("play".to_string(), 1, vec![string("stream"), Amf0Value::Number(-2000.0)]),
        ]
    );
    assert_eq!(object_property(&connect, "app"), Some(&string("live")));
    assert_eq!(object_property(&connect, "flashVer"), Some(&string("LNX 9,0,124,2")));
    // ffmpeg closed the connection with the 8-byte header of one more command written
    // (fmt 1 on chunk stream 3: length 34, type 20) and none of its body: the decoder
    // waits for the body and reports nothing, which is what must happen at a close.
    let stream = chunk_stream_after_handshake(HandshakeRole::Server, &fixture("wire/ffmpeg_play.c2s"));
    assert_eq!(decoded.leftover, 8);
    assert_eq!(&stream[stream.len() - 8..], &[0x43, 0, 0, 0, 0, 0, 34, type_id::AMF0_COMMAND]);
}

#[test]
fn server_session_accepts_the_recorded_plays() {
    for name in ["wire/rtmpdump_play.c2s", "wire/ffmpeg_play.c2s"] {
        let stream = chunk_stream_after_handshake(HandshakeRole::Server, &fixture(name));
        let mut session = ServerSession::new(ServerSessionConfig::default());
        let mut plays = Vec::new();
        for segment in pieces_by_message(&stream) {
            if let Err(e) = session.handle_input(segment) {
                panic!("{name}: session error: {e}");
            }
            while let Some(event) = session.poll_event() {
                match event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                        session.accept_request(request_id).unwrap_or_else(|e| panic!("{name}: {e}"))
                    }
                    ServerSessionEvent::PlayRequested { request_id, app, stream_name, stream_id, .. } => {
                        session.accept_request(request_id).unwrap_or_else(|e| panic!("{name}: {e}"));
                        plays.push((app, stream_name, stream_id));
                    }
                    ServerSessionEvent::InvalidMessageIgnored { type_id, reason } => {
                        panic!("{name}: ignored type {type_id}: {reason}")
                    }
                    _ => {}
                }
            }
            let _ = session.take_outbound();
        }
        assert_eq!(plays, [("live".to_string(), "stream".to_string(), 1)], "{name}");
    }
}

/// Checks an nginx-rtmp recording with the decoder: every message decodes, the chunk size
/// goes from 128 to 4096 exactly once (as nginx answers connect), media timestamps never go
/// back within a type, and nothing is left over. Returns the decoded messages.
fn check_nginx_recording(name: &str) -> Vec<MessagePayload> {
    let stream = chunk_stream_after_handshake(HandshakeRole::Client, &fixture(name));
    let decoded = decode_every_way(&stream);
    assert_eq!(decoded.leftover, 0, "{name}");
    assert_eq!(decoded.chunk_size_changes, [(2, RECORDED_CHUNK_SIZE)], "{name}");
    assert_eq!(decode_message(&decoded.messages[2]), RtmpMessage::SetChunkSize { size: RECORDED_CHUNK_SIZE });
    assert!(
        decoded.messages[3..].iter().any(|m| m.data.len() > DEFAULT_CHUNK_SIZE as usize),
        "{name}: nothing after the chunk size change needed it"
    );
    let mut last: HashMap<u8, u32> = HashMap::new();
    for (index, message) in decoded.messages.iter().enumerate() {
        decode_message(message);
        if matches!(message.type_id, type_id::AUDIO | type_id::VIDEO) {
            let time = message.timestamp.value();
            if let Some(previous) = last.insert(message.type_id, time) {
                assert!(time >= previous, "{name}: message {index} type {} goes back from {previous} to {time}", message.type_id);
            }
        }
    }
    decoded.messages
}

#[test]
fn nginx_answers_to_the_ffmpeg_publish_decode() {
    let messages = check_nginx_recording("wire/ffmpeg_publish.s2c");
    let decoded: Vec<RtmpMessage> = messages.iter().map(decode_message).collect();
    let codes: Vec<String> = decoded
        .iter()
        .filter_map(|m| match m {
            RtmpMessage::Amf0Command { name, arguments, .. } if name == "onStatus" => {
                match arguments.first().and_then(|status| object_property(status, "code")) {
                    Some(Amf0Value::Utf8String(code)) => Some(code.clone()),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect();
    assert_eq!(codes, ["NetStream.Publish.Start", "NetStream.Unpublish.Success"]);
    assert_eq!(decoded.len(), 7);
}

#[test]
fn nginx_plays_decode() {
    for name in ["wire/rtmpdump_play.s2c", "wire/ffmpeg_play.s2c"] {
        let messages = check_nginx_recording(name);
        let media = media_messages(&messages);
        // |RtmpSampleAccess, onMetaData, then audio and video on stream 1.
        assert!(media.len() > 100, "{name}: only {} media messages", media.len());
        assert!(media.iter().all(|m| m.message_stream_id == 1), "{name}");
        assert!(matches!(decode_message(media[0]), RtmpMessage::Amf0Data { values }
            if values.first() == Some(&string("|RtmpSampleAccess"))));
        assert!(matches!(decode_message(media[1]), RtmpMessage::Amf0Data { values }
            if values.first() == Some(&string("onMetaData"))));
        // Every audio and video body nginx relayed is one the publisher sent, i.e. one of
        // the FLV file's tags (the play starts mid-stream, so a subsequence of them).
        let tags = flv_tags("h264_aac.flv");
        for message in media.iter().filter(|m| m.type_id != type_id::AMF0_DATA) {
            assert!(
                tags.iter().any(|t| t.tag_type.type_id() == message.type_id && t.data == message.data),
                "{name}: a body at {} is not in the FLV file",
                message.timestamp.value()
            );
        }
    }
}

#[test]
fn client_session_follows_the_recorded_plays() {
    for name in ["wire/rtmpdump_play.s2c", "wire/ffmpeg_play.s2c"] {
        let expected_media: Vec<_> = media_messages(&check_nginx_recording(name))
            .into_iter()
            .filter(|m| m.type_id != type_id::AMF0_DATA)
            .map(|m| (m.type_id, m.timestamp, m.data.clone()))
            .collect();
        let stream = chunk_stream_after_handshake(HandshakeRole::Client, &fixture(name));
        let mut session = ClientSession::new(ClientSessionConfig::default());
        session.connect("live", "rtmp://127.0.0.1/live").unwrap_or_else(|e| panic!("{name}: {e}"));
        session.request_playback("stream").unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut events = Vec::new();
        for segment in stream.chunks(SEGMENT) {
            if let Err(e) = session.handle_input(segment) {
                panic!("{name}: session error after {} events: {e}", events.len());
            }
            while let Some(event) = session.poll_event() {
                events.push(event);
            }
            let _ = session.take_outbound();
        }
        assert!(session.is_connected(), "{name}");
        assert!(matches!(events.first(), Some(ClientSessionEvent::ConnectionAccepted { status, .. })
            if status.code == "NetConnection.Connect.Success"), "{name}: {:?}", events.first());
        assert!(events.iter().any(|e| matches!(e, ClientSessionEvent::PlaybackStarted { stream_id: 1, stream_name }
            if stream_name == "stream")), "{name}");
        assert!(events.iter().any(|e| matches!(e, ClientSessionEvent::MetadataReceived { stream_id: 1, .. })), "{name}");
        assert!(
            !events.iter().any(|e| matches!(e, ClientSessionEvent::InvalidMessageIgnored { .. })),
            "{name}: {events:?}"
        );
        let media: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ClientSessionEvent::MediaReceived { stream_id: 1, kind: MediaKind::Audio, timestamp, data } => {
                    Some((type_id::AUDIO, *timestamp, data.clone()))
                }
                ClientSessionEvent::MediaReceived { stream_id: 1, kind: MediaKind::Video, timestamp, data } => {
                    Some((type_id::VIDEO, *timestamp, data.clone()))
                }
                _ => None,
            })
            .collect();
        assert!(media == expected_media, "{name}: media events differ from the decoded messages");
    }
}
