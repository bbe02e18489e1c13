//! A message body with a fuzzed type id (the first byte). Decoding must not panic; a message
//! that decodes and re-encodes must decode again; aggregates must split without panicking.
#![no_main]

#[path = "common/recorded.rs"]
mod recorded;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::chunk_io::MessagePayload;
use rtmp_edge::messages::{split_aggregate, type_id, RtmpMessage};
use rtmp_edge::time::RtmpTimestamp;

fuzz_target!(
    init: {
        // Every recorded message but the bulk of the media: commands, statuses, control
        // messages, metadata, and the first few audio and video messages of each recording.
        recorded::write_if_asked(|| {
            let mut seeds = Vec::new();
            for (name, bytes) in recorded::wire() {
                let mut media = 0;
                for (index, message) in recorded::messages(&bytes).into_iter().enumerate() {
                    if matches!(message.type_id, type_id::AUDIO | type_id::VIDEO) {
                        media += 1;
                        if media > 8 {
                            continue;
                        }
                    }
                    let body = &message.data[..message.data.len().min(4096)];
                    seeds.push((format!("{name}_{index}"), recorded::with_prefix(message.type_id, body)));
                }
            }
            seeds
        });
    },
    |data: &[u8]| {
        let Some((&message_type, body)) = data.split_first() else {
            return;
        };
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(1000),
            type_id: message_type,
            message_stream_id: 1,
            data: Bytes::copy_from_slice(body),
        };
        if message_type == type_id::AGGREGATE {
            // Each sub-message is at least a tag header long, so there are at most len / 11.
            let count = split_aggregate(&payload).take(body.len() + 1).count();
            assert!(count <= body.len() / 11 + 1);
        }
        let Ok(message) = RtmpMessage::decode(&payload) else {
            return;
        };
        // Every type, known or not, decodes to a message that re-encodes under the same id.
        assert_eq!(message.type_id(), message_type);
        if let Ok(encoded) = message.encode_body() {
            let again = MessagePayload { data: encoded, ..payload };
            assert!(RtmpMessage::decode(&again).is_ok(), "re-encoded {message:?} does not decode");
        }
    }
);
