//! What one hostile client can make the core hold with its requests (connect, commands,
//! names) rather than its media: each bound, and that honest requests still pass.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::harness::{test_config, Harness};
use crate::chunk_io::ChunkEncoder;
use crate::messages::{type_id, RtmpMessage};
use crate::relay::access::AccessConfig;
use crate::relay::core::{CloseReason, ConnId};
use crate::relay::Config;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// A relay whose hook is asked about every connect (and never answers by itself).
fn hooked() -> Config {
    let access = AccessConfig {
        hook_url: Some("http://127.0.0.1:9/hook".parse().unwrap()),
        hook_timeout: Duration::from_secs(3),
        ..AccessConfig::default()
    };
    Config { access, ..test_config() }
}

/// The chunk bytes of `messages`, at the chunk size the harness's clients announce.
fn encode(messages: &[(u8, u32, Bytes)]) -> Bytes {
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(crate::sessions::ClientSessionConfig::default().chunk_size).unwrap();
    let mut raw = BytesMut::new();
    for (index, (type_id, stream_id, data)) in messages.iter().enumerate() {
        let payload = crate::chunk_io::MessagePayload {
            timestamp: RtmpTimestamp::ZERO,
            type_id: *type_id,
            message_stream_id: *stream_id,
            data: data.clone(),
        };
        encoder.encode(4 + (index % 8) as u32, &payload, &mut raw).unwrap();
        encoder.forget_chunk_stream(4 + (index % 8) as u32);
    }
    raw.freeze()
}

fn command(name: &str, arguments: Vec<Amf0Value>) -> (u8, u32, Bytes) {
    let message = RtmpMessage::Amf0Command {
        name: name.to_string(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        arguments,
    };
    let payload = message.into_payload(RtmpTimestamp::ZERO, 0).unwrap();
    (type_id::AMF0_COMMAND, 0, payload.data)
}

/// A client whose connect waits for the hook.
fn connect_waiting(h: &mut Harness) -> ConnId {
    let id = h.connect_client();
    h.peer(id).client().connect("live", "rtmp://127.0.0.1/live").unwrap();
    h.send_outbound(id);
    h.pump();
    assert_eq!(h.hooks.len(), 1, "the connect waits for the hook");
    id
}

// A client sent megabytes of media behind a connect that waited for the hook, and the
// session held up to 64 messages of up to 8 MiB each (512 MiB) until the answer came.
#[test]
fn media_behind_an_undecided_connect_is_not_held() {
    let mut h = Harness::new(hooked());
    let id = connect_waiting(&mut h);
    let frame = Bytes::from(vec![0x17; 100 * 1024]);
    let media: Vec<_> = (0..100).map(|_| (type_id::VIDEO, 1, frame.clone())).collect();
    h.send_raw(id, &encode(&media));
    h.pump();
    assert_eq!(h.peer(id).closed, None, "media before the connect is answered is dropped, not counted against it");
    // Commands are held, in order, up to a bound in bytes.
    // About 120 KB each (an AMF0 string holds at most 64 KiB).
    let big = command("FCPublish", vec![Amf0Value::Utf8String("n".repeat(60_000)); 2]);
    h.send_raw(id, &encode(&[big.clone(), big.clone()]));
    h.pump();
    assert_eq!(h.peer(id).closed, None);
    h.send_raw(id, &encode(&[big]));
    h.pump();
    assert_eq!(
        h.close_reason(id),
        Some(&CloseReason::ProtocolError(
            "peer sent more than 262144 bytes of commands before connect was answered".to_string()
        ))
    );
}
