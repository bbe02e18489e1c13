//! Aggregate messages: sub-message splitting, timestamp rebasing, malformed bodies.

use bytes::Bytes;

use crate::chunk_io::MessagePayload;
use crate::messages::{split_aggregate, AggregateProblem, MessageError};
use crate::time::RtmpTimestamp;

fn sub_message(type_id: u8, timestamp: u32, body: &[u8]) -> Vec<u8> {
    let size = body.len() as u32;
    let [_, s0, s1, s2] = size.to_be_bytes();
    let [t_high, t0, t1, t2] = timestamp.to_be_bytes();
    let mut bytes = vec![type_id, s0, s1, s2, t0, t1, t2, t_high, 0, 0, 0];
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&(size + 11).to_be_bytes());
    bytes
}

fn aggregate(timestamp: u32, body: Vec<u8>) -> MessagePayload {
    MessagePayload {
        timestamp: RtmpTimestamp::new(timestamp),
        type_id: 22,
        message_stream_id: 1,
        data: Bytes::from(body),
    }
}

#[test]
fn splits_exact_bytes_into_rebased_zero_copy_sub_messages() {
    #[rustfmt::skip]
    let body = vec![
        // video, 3 bytes, timestamp 1000 (0x0003E8), stream id 0
        0x09, 0x00, 0x00, 0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x00, 0x00,
        0x17, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x0E,
        // audio, 2 bytes, timestamp 1023
        0x08, 0x00, 0x00, 0x02, 0x00, 0x03, 0xFF, 0x00, 0x00, 0x00, 0x00,
        0xAF, 0x01,
        0x00, 0x00, 0x00, 0x0D,
    ];
    let payload = aggregate(5000, body);
    let subs: Vec<_> = split_aggregate(&payload).collect();
    assert_eq!(
        subs,
        vec![
            Ok(MessagePayload {
                timestamp: RtmpTimestamp::new(5000),
                type_id: 9,
                message_stream_id: 1,
                data: Bytes::from_static(&[0x17, 0x01, 0x00]),
            }),
            Ok(MessagePayload {
                timestamp: RtmpTimestamp::new(5023),
                type_id: 8,
                message_stream_id: 1,
                data: Bytes::from_static(&[0xAF, 0x01]),
            }),
        ]
    );
    if let [Ok(video), Ok(audio)] = &subs[..] {
        assert_eq!(video.data.as_ptr(), payload.data[11..].as_ptr());
        assert_eq!(audio.data.as_ptr(), payload.data[29..].as_ptr());
    }
}

#[test]
fn timestamps_use_the_extension_byte_and_wrap() {
    let mut body = sub_message(9, 0xFFFF_FFF0, &[0x27]);
    body.extend(sub_message(18, 0x0000_0010, &[0x05]));
    let subs: Vec<_> = split_aggregate(&aggregate(100, body))
        .map(|sub| sub.map(|sub| (sub.type_id, sub.timestamp.value())))
        .collect();
    assert_eq!(subs, vec![Ok((9, 100)), Ok((18, 132))]);

    // An aggregate near the wrap: the later sub-message wraps past zero.
    let mut body = sub_message(8, 0, &[0xAF]);
    body.extend(sub_message(8, 0x30, &[0xAF]));
    let subs: Vec<_> = split_aggregate(&aggregate(0xFFFF_FFE0, body))
        .map(|sub| sub.map(|sub| sub.timestamp.value()))
        .collect();
    assert_eq!(subs, vec![Ok(0xFFFF_FFE0), Ok(0x10)]);
}

#[test]
fn empty_aggregate_has_no_sub_messages() {
    assert_eq!(split_aggregate(&aggregate(0, vec![])).count(), 0);
}

#[test]
fn truncated_header_is_an_error_then_the_iterator_ends() {
    let mut body = sub_message(9, 0, &[0x17]);
    body.extend_from_slice(&[0x09, 0x00, 0x00, 0x01, 0x00]);
    let mut subs = split_aggregate(&aggregate(0, body));
    assert!(matches!(subs.next(), Some(Ok(_))));
    assert_eq!(
        subs.next(),
        Some(Err(MessageError::Aggregate {
            offset: 16,
            problem: AggregateProblem::TruncatedHeader { remaining: 5 }
        }))
    );
    assert_eq!(subs.next(), None);
    assert_eq!(subs.next(), None);
}

#[test]
fn oversized_sub_message_is_an_error() {
    let mut body = sub_message(9, 0, &[0x17, 0x01, 0x02]);
    body[3] = 100; // size 100, only 3 + 4 bytes follow the header
    assert_eq!(
        split_aggregate(&aggregate(0, body)).collect::<Vec<_>>(),
        vec![Err(MessageError::Aggregate {
            offset: 0,
            problem: AggregateProblem::SubMessagePastEnd {
                size: 100,
                remaining: 7
            }
        })]
    );
    // Missing back-pointer.
    let mut body = sub_message(9, 0, &[0x17]);
    body.truncate(body.len() - 1);
    assert_eq!(
        split_aggregate(&aggregate(0, body)).collect::<Vec<_>>(),
        vec![Err(MessageError::Aggregate {
            offset: 0,
            problem: AggregateProblem::SubMessagePastEnd {
                size: 1,
                remaining: 4
            }
        })]
    );
}

#[test]
fn control_and_nested_aggregates_are_refused() {
    for type_id in [1u8, 4, 20, 22] {
        assert_eq!(
            split_aggregate(&aggregate(0, sub_message(type_id, 0, &[0, 0, 0, 1]))).next(),
            Some(Err(MessageError::Aggregate {
                offset: 0,
                problem: AggregateProblem::UnexpectedType(type_id)
            }))
        );
    }
}
