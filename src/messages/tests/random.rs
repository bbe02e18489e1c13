//! Randomised tests: arbitrary and mutated bytes never panic; generated messages round-trip.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::Union;

use super::{payload, FFMPEG_CONNECT, FFMPEG_SET_DATA_FRAME};
use crate::chunk_io::{MessagePayload, MAX_CHUNK_SIZE};
use crate::messages::{split_aggregate, RtmpMessage, UserControlEvent};
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// A comparable rendering of a message: object properties sorted, numbers by their bits (so
/// NaN equals itself), everything else through `Debug`.
fn canonical(message: &RtmpMessage) -> String {
    let values = |values: &[Amf0Value]| values.iter().map(canonical_value).collect::<Vec<_>>();
    match message {
        RtmpMessage::Amf0Data { values: data } => format!("data {:?}", values(data)),
        RtmpMessage::Amf0Command {
            name,
            transaction_id,
            command_object,
            arguments,
        } => format!(
            "command {name:?} {:x} {} {:?}",
            transaction_id.to_bits(),
            canonical_value(command_object),
            values(arguments)
        ),
        RtmpMessage::Amf3Command {
            name,
            transaction_id,
            command_object,
            arguments,
        } => format!(
            "amf3 command {name:?} {:x} {} {:?}",
            transaction_id.to_bits(),
            canonical_value(command_object),
            values(arguments)
        ),
        other => format!("{other:?}"),
    }
}

fn canonical_value(value: &Amf0Value) -> String {
    match value {
        Amf0Value::Number(number) => format!("n{:x}", number.to_bits()),
        Amf0Value::Object(properties) => {
            let mut entries: Vec<String> = properties
                .iter()
                .map(|(name, value)| format!("{name:?}:{}", canonical_value(value)))
                .collect();
            entries.sort();
            format!("{{{}}}", entries.join(","))
        }
        Amf0Value::StrictArray(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(canonical_value)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        other => format!("{other:?}"),
    }
}

/// Whatever decodes must encode, and decode again to the same message.
fn check_reencodes(type_id: u8, message: &RtmpMessage) -> Result<(), TestCaseError> {
    prop_assert_eq!(message.type_id(), type_id);
    let body = message.encode_body();
    prop_assert!(
        body.is_ok(),
        "{:?} decoded but does not encode: {:?}",
        message,
        body
    );
    let again = body.map(|body| {
        RtmpMessage::decode(&MessagePayload {
            data: body,
            ..payload(type_id, &[])
        })
    });
    match again {
        Ok(Ok(again)) => prop_assert_eq!(canonical(&again), canonical(message)),
        other => prop_assert!(
            false,
            "re-encoded {:?} fails to decode: {:?}",
            message,
            other
        ),
    }
    Ok(())
}

fn amf0_value() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        any::<f64>().prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        ".{0,12}".prop_map(Amf0Value::Utf8String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Amf0Value::StrictArray),
            prop::collection::hash_map(".{1,8}", inner, 0..5).prop_map(Amf0Value::Object),
        ]
    })
}

fn body() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn user_control_event() -> impl Strategy<Value = UserControlEvent> {
    prop_oneof![
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamBegin { stream_id }),
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamEof { stream_id }),
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamDry { stream_id }),
        (any::<u32>(), any::<u32>()).prop_map(|(stream_id, buffer_length_ms)| {
            UserControlEvent::SetBufferLength {
                stream_id,
                buffer_length_ms,
            }
        }),
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamIsRecorded { stream_id }),
        any::<u32>().prop_map(|timestamp| UserControlEvent::PingRequest { timestamp }),
        any::<u32>().prop_map(|timestamp| UserControlEvent::PingResponse { timestamp }),
        (prop_oneof![Just(5u16), 8u16..], body())
            .prop_map(|(event_type, data)| UserControlEvent::Unknown { event_type, data }),
    ]
}

fn command_parts() -> impl Strategy<Value = (String, f64, Amf0Value, Vec<Amf0Value>)> {
    (
        ".{0,16}",
        any::<f64>(),
        amf0_value(),
        prop::collection::vec(amf0_value(), 0..4),
    )
}

fn rtmp_message() -> impl Strategy<Value = RtmpMessage> {
    Union::new(vec![
        (1..=MAX_CHUNK_SIZE)
            .prop_map(|size| RtmpMessage::SetChunkSize { size })
            .boxed(),
        any::<u32>()
            .prop_map(|chunk_stream_id| RtmpMessage::Abort { chunk_stream_id })
            .boxed(),
        any::<u32>().prop_map(RtmpMessage::acknowledgement).boxed(),
        user_control_event()
            .prop_map(RtmpMessage::UserControl)
            .boxed(),
        any::<u32>()
            .prop_map(RtmpMessage::window_acknowledgement_size)
            .boxed(),
        (any::<u32>(), any::<u8>())
            .prop_map(|(size, limit)| RtmpMessage::set_peer_bandwidth(size, limit.into()))
            .boxed(),
        body().prop_map(|data| RtmpMessage::Audio { data }).boxed(),
        body().prop_map(|data| RtmpMessage::Video { data }).boxed(),
        prop::collection::vec(amf0_value(), 0..5)
            .prop_map(RtmpMessage::data)
            .boxed(),
        command_parts()
            .prop_map(|(name, transaction_id, command_object, arguments)| {
                RtmpMessage::command(name, transaction_id, command_object, arguments)
            })
            .boxed(),
        command_parts()
            .prop_map(|(name, transaction_id, command_object, arguments)| {
                RtmpMessage::Amf3Command {
                    name,
                    transaction_id,
                    command_object,
                    arguments,
                }
            })
            .boxed(),
        body()
            .prop_map(|data| RtmpMessage::Amf3Data { data })
            .boxed(),
        (any::<bool>(), body())
            .prop_map(|(amf3, data)| RtmpMessage::SharedObject { amf3, data })
            .boxed(),
        body()
            .prop_map(|data| RtmpMessage::Aggregate { data })
            .boxed(),
        (
            prop::sample::select(vec![0u8, 7, 10, 11, 12, 13, 14, 21, 23, 100, 255]),
            body(),
        )
            .prop_map(|(type_id, data)| RtmpMessage::Unknown { type_id, data })
            .boxed(),
    ])
}

/// Bytes that are mostly a real body, with some bytes replaced and the end possibly cut.
fn mutated(original: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        0..=original.len(),
    )
        .prop_map(move |(changes, length)| {
            let mut bytes = original.to_vec();
            for (index, byte) in changes {
                let position = index.index(bytes.len());
                if let Some(slot) = bytes.get_mut(position) {
                    *slot = byte;
                }
            }
            bytes.truncate(length);
            bytes
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_for_any_type(
        type_id in any::<u8>(),
        data in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok(message) = RtmpMessage::decode(&payload(type_id, &data)) {
            check_reencodes(type_id, &message)?;
        }
    }

    #[test]
    fn amf_shaped_bytes_never_panic(
        type_id in prop::sample::select(vec![15u8, 17, 18, 20]),
        prefix in prop::sample::select(vec![vec![], vec![0x00], vec![0x02, 0x00, 0x01, b'x']]),
        data in prop::collection::vec(
            prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x03, 0x05, 0x06, 0x08, 0x09, 0x0A, 0xFF]),
            0..400,
        ),
    ) {
        let mut body = prefix;
        body.extend(data);
        if let Ok(message) = RtmpMessage::decode(&payload(type_id, &body)) {
            check_reencodes(type_id, &message)?;
        }
    }

    #[test]
    fn mutated_ffmpeg_connect_never_panics(bytes in mutated(FFMPEG_CONNECT)) {
        if let Ok(message) = RtmpMessage::decode(&payload(20, &bytes)) {
            check_reencodes(20, &message)?;
        }
    }

    #[test]
    fn mutated_ffmpeg_metadata_never_panics(bytes in mutated(FFMPEG_SET_DATA_FRAME)) {
        if let Ok(message) = RtmpMessage::decode(&payload(18, &bytes)) {
            check_reencodes(18, &message)?;
        }
    }

    #[test]
    fn arbitrary_aggregates_never_panic_and_stay_inside_the_body(
        timestamp in any::<u32>(),
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let aggregate = MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp),
            type_id: 22,
            message_stream_id: 1,
            data: Bytes::from(data),
        };
        let start = aggregate.data.as_ptr() as usize;
        let end = start + aggregate.data.len();
        let mut items = 0usize;
        for sub in split_aggregate(&aggregate) {
            items += 1;
            prop_assert!(items <= aggregate.data.len() / 15 + 1);
            if let Ok(sub) = sub {
                let sub_start = sub.data.as_ptr() as usize;
                prop_assert!(sub.data.is_empty() || (sub_start >= start && sub_start + sub.data.len() <= end));
                prop_assert_eq!(sub.message_stream_id, 1);
            }
        }
    }

    #[test]
    fn generated_messages_round_trip(
        message in rtmp_message(),
        timestamp in any::<u32>(),
        stream_id in any::<u32>(),
    ) {
        let expected = canonical(&message);
        let payload = message.into_payload(RtmpTimestamp::new(timestamp), stream_id);
        prop_assert!(payload.is_ok(), "{:?}", payload);
        if let Ok(payload) = payload {
            prop_assert_eq!(payload.timestamp.value(), timestamp);
            prop_assert_eq!(payload.message_stream_id, stream_id);
            let decoded = RtmpMessage::decode(&payload);
            prop_assert!(decoded.is_ok(), "{:?}", decoded);
            if let Ok(decoded) = decoded {
                prop_assert_eq!(canonical(&decoded), expected);
            }
        }
    }
}
