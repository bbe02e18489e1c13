//! Protocol control, user control, media and opaque types: exact bytes both ways.

use bytes::Bytes;

use super::{decode, encode, payload};
use crate::messages::{
    type_id, MessageError, PeerBandwidthLimitType, RtmpMessage, UserControlEvent,
};

/// Decodes `bytes` as `type_id`, expects `message`, and encodes `message` back to `bytes`.
fn both_ways(type_id: u8, bytes: &[u8], message: RtmpMessage) {
    assert_eq!(decode(type_id, bytes), Ok(message.clone()));
    assert_eq!(encode(&message), bytes);
}

#[test]
fn set_chunk_size_both_ways() {
    both_ways(
        1,
        &[0x00, 0x00, 0x10, 0x00],
        RtmpMessage::SetChunkSize { size: 4096 },
    );
    both_ways(
        1,
        &[0x7F, 0xFF, 0xFF, 0xFF],
        RtmpMessage::set_chunk_size(0x7FFF_FFFF),
    );
    both_ways(1, &[0x00, 0x00, 0x00, 0x01], RtmpMessage::set_chunk_size(1));
}

#[test]
fn set_chunk_size_with_top_bit_or_zero_is_an_error() {
    assert_eq!(
        decode(1, &[0x80, 0x00, 0x10, 0x00]),
        Err(MessageError::InvalidChunkSize { size: 0x8000_1000 })
    );
    assert_eq!(
        decode(1, &[0, 0, 0, 0]),
        Err(MessageError::InvalidChunkSize { size: 0 })
    );
    assert_eq!(
        RtmpMessage::set_chunk_size(0).encode_body(),
        Err(MessageError::InvalidChunkSize { size: 0 })
    );
    assert_eq!(
        RtmpMessage::set_chunk_size(0x8000_0000).encode_body(),
        Err(MessageError::InvalidChunkSize { size: 0x8000_0000 })
    );
}

#[test]
fn short_protocol_control_bodies_are_typed_errors() {
    for id in [1u8, 2, 3, 5] {
        assert_eq!(
            decode(id, &[0x00, 0x10, 0x00]),
            Err(MessageError::BodyTooShort {
                type_id: id,
                needed: 4,
                actual: 3
            })
        );
    }
    assert_eq!(
        decode(6, &[0x00, 0x26, 0x25, 0xA0]),
        Err(MessageError::BodyTooShort {
            type_id: 6,
            needed: 5,
            actual: 4
        })
    );
    assert_eq!(
        decode(6, &[]),
        Err(MessageError::BodyTooShort {
            type_id: 6,
            needed: 4,
            actual: 0
        })
    );
}

#[test]
fn abort_acknowledgement_window_both_ways() {
    both_ways(
        2,
        &[0x00, 0x00, 0x00, 0x04],
        RtmpMessage::Abort { chunk_stream_id: 4 },
    );
    both_ways(
        3,
        &[0xFF, 0xFF, 0xFF, 0xFE],
        RtmpMessage::acknowledgement(0xFFFF_FFFE),
    );
    both_ways(
        5,
        &[0x00, 0x26, 0x25, 0xA0],
        RtmpMessage::window_acknowledgement_size(2_500_000),
    );
}

#[test]
fn set_peer_bandwidth_every_limit_type() {
    let window = [0x00, 0x4C, 0x4B, 0x40]; // 5_000_000
    for (byte, limit_type) in [
        (0u8, PeerBandwidthLimitType::Hard),
        (1, PeerBandwidthLimitType::Soft),
        (2, PeerBandwidthLimitType::Dynamic),
        (3, PeerBandwidthLimitType::Other(3)),
        (0xFF, PeerBandwidthLimitType::Other(0xFF)),
    ] {
        let mut bytes = window.to_vec();
        bytes.push(byte);
        both_ways(
            6,
            &bytes,
            RtmpMessage::set_peer_bandwidth(5_000_000, limit_type),
        );
    }
}

#[test]
fn protocol_control_ignores_trailing_bytes() {
    assert_eq!(
        decode(5, &[0x00, 0x00, 0x10, 0x00, 0xAA]),
        Ok(RtmpMessage::WindowAcknowledgementSize { size: 4096 })
    );
}

#[test]
fn every_user_control_event_both_ways() {
    let cases = [
        (
            vec![0x00, 0x00, 0x00, 0x00, 0x00, 0x01],
            RtmpMessage::stream_begin(1),
        ),
        (
            vec![0x00, 0x01, 0x00, 0x00, 0x00, 0x02],
            RtmpMessage::stream_eof(2),
        ),
        (
            vec![0x00, 0x02, 0x00, 0x00, 0x00, 0x03],
            RtmpMessage::UserControl(UserControlEvent::StreamDry { stream_id: 3 }),
        ),
        (
            vec![0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0B, 0xB8],
            RtmpMessage::set_buffer_length(1, 3000),
        ),
        (
            vec![0x00, 0x04, 0x00, 0x00, 0x00, 0x01],
            RtmpMessage::stream_is_recorded(1),
        ),
        (
            vec![0x00, 0x06, 0x12, 0x34, 0x56, 0x78],
            RtmpMessage::ping_request(0x1234_5678),
        ),
        (
            vec![0x00, 0x07, 0x12, 0x34, 0x56, 0x78],
            RtmpMessage::ping_response(0x1234_5678),
        ),
        (
            vec![0x00, 0x1F, 0x00, 0x00, 0x00, 0x01],
            RtmpMessage::UserControl(UserControlEvent::Unknown {
                event_type: 31,
                data: Bytes::from_static(&[0x00, 0x00, 0x00, 0x01]),
            }),
        ),
        (
            vec![0xFF, 0xFF],
            RtmpMessage::UserControl(UserControlEvent::Unknown {
                event_type: 0xFFFF,
                data: Bytes::new(),
            }),
        ),
    ];
    for (bytes, message) in cases {
        both_ways(4, &bytes, message);
    }
}

#[test]
fn unknown_user_control_data_is_a_slice_of_the_payload() {
    let payload = payload(4, &[0x00, 0x20, 0xAB, 0xCD]);
    let Ok(RtmpMessage::UserControl(UserControlEvent::Unknown { event_type, data })) =
        RtmpMessage::decode(&payload)
    else {
        panic!("expected an unknown user control event");
    };
    assert_eq!(event_type, 0x20);
    assert_eq!(data.as_ptr(), payload.data[2..].as_ptr());
}

#[test]
fn short_user_control_bodies_are_typed_errors() {
    assert_eq!(
        decode(4, &[0x00]),
        Err(MessageError::BodyTooShort {
            type_id: 4,
            needed: 2,
            actual: 1
        })
    );
    assert_eq!(
        decode(4, &[0x00, 0x00, 0x00, 0x01]),
        Err(MessageError::UserControlTooShort {
            event_type: 0,
            needed: 4,
            actual: 2
        })
    );
    assert_eq!(
        decode(4, &[0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]),
        Err(MessageError::UserControlTooShort {
            event_type: 3,
            needed: 8,
            actual: 6
        })
    );
    assert_eq!(
        decode(4, &[0x00, 0x06]),
        Err(MessageError::UserControlTooShort {
            event_type: 6,
            needed: 4,
            actual: 0
        })
    );
}

#[test]
fn media_and_opaque_bodies_are_not_copied() {
    for (id, expect) in [
        (
            type_id::AUDIO,
            RtmpMessage::Audio {
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
        (
            type_id::VIDEO,
            RtmpMessage::Video {
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
        (
            type_id::AMF3_SHARED_OBJECT,
            RtmpMessage::SharedObject {
                amf3: true,
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
        (
            type_id::AMF0_SHARED_OBJECT,
            RtmpMessage::SharedObject {
                amf3: false,
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
        (
            type_id::AGGREGATE,
            RtmpMessage::Aggregate {
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
        (
            7,
            RtmpMessage::Unknown {
                type_id: 7,
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
        (
            255,
            RtmpMessage::Unknown {
                type_id: 255,
                data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
            },
        ),
    ] {
        let payload = payload(id, &[0xAF, 0x01, 0x21]);
        let message = RtmpMessage::decode(&payload);
        assert_eq!(message, Ok(expect.clone()));
        let body = expect.encode_body();
        assert_eq!(body.as_deref(), Ok(&[0xAF, 0x01, 0x21][..]));
        if let Ok(
            RtmpMessage::Audio { data }
            | RtmpMessage::Video { data }
            | RtmpMessage::SharedObject { data, .. }
            | RtmpMessage::Aggregate { data }
            | RtmpMessage::Unknown { data, .. },
        ) = &message
        {
            assert_eq!(
                data.as_ptr(),
                payload.data.as_ptr(),
                "type {id} copied its body"
            );
        } else {
            panic!("type {id} decoded as {message:?}");
        }
        assert_eq!(message.map(|m| m.type_id()), Ok(id));
    }
}

#[test]
fn amf3_data_keeps_the_body_after_the_format_byte() {
    let payload = payload(15, &[0x00, 0x0A, 0x0B]);
    let message = RtmpMessage::decode(&payload);
    let Ok(RtmpMessage::Amf3Data { data }) = &message else {
        panic!("decoded as {message:?}");
    };
    assert_eq!(&data[..], &[0x0A, 0x0B]);
    assert_eq!(data.as_ptr(), payload.data[1..].as_ptr());
    assert_eq!(
        encode(&RtmpMessage::Amf3Data { data: data.clone() }),
        [0x00, 0x0A, 0x0B]
    );
}

#[test]
fn amf3_bodies_need_the_zero_format_byte() {
    assert_eq!(
        decode(15, &[]),
        Err(MessageError::BodyTooShort {
            type_id: 15,
            needed: 1,
            actual: 0
        })
    );
    assert_eq!(
        decode(15, &[0x11, 0x02]),
        Err(MessageError::UnexpectedAmf3Format {
            type_id: 15,
            format: 0x11
        })
    );
    assert_eq!(
        decode(17, &[0x02, 0x00, 0x00]),
        Err(MessageError::UnexpectedAmf3Format {
            type_id: 17,
            format: 0x02
        })
    );
}
