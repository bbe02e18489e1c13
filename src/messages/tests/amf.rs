//! The AMF0 pre-scan: hostile and quirky data, and the encode-side checks.

use std::collections::HashMap;

use super::{decode, object, string};
use crate::messages::{
    decode_amf0, encode_amf0, Amf0EncodeProblem, Amf0Problem, MessageError, RtmpMessage,
    AMF0_MAX_DEPTH, AMF0_MAX_VALUES,
};
use crate::Amf0Value;

fn amf0_error(offset: usize, problem: Amf0Problem) -> Result<Vec<Amf0Value>, MessageError> {
    Err(MessageError::Amf0 { offset, problem })
}

#[test]
fn string_longer_than_the_message_is_an_error() {
    // rml_amf0 alone would return "ab" padded with 14 NULs here.
    assert_eq!(
        decode_amf0(&[0x02, 0x00, 0x10, b'a', b'b']),
        amf0_error(
            1,
            Amf0Problem::StringPastEnd {
                length: 16,
                remaining: 2
            }
        )
    );
    // Same for a property name, at depth.
    assert_eq!(
        decode_amf0(&[0x03, 0x00, 0x01, b'a', 0x03, 0xFF, 0xFF, b'b']),
        amf0_error(
            5,
            Amf0Problem::StringPastEnd {
                length: 0xFFFF,
                remaining: 1
            }
        )
    );
}

#[test]
fn string_past_end_in_a_command_is_an_error() {
    let mut body = vec![0x02, 0x00, 0x04];
    body.extend_from_slice(b"play");
    body.extend_from_slice(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x02, 0x01, 0x00, b'x']);
    assert_eq!(
        decode(20, &body),
        Err(MessageError::Amf0 {
            offset: 18,
            problem: Amf0Problem::StringPastEnd {
                length: 256,
                remaining: 1
            }
        })
    );
}

#[test]
fn ten_thousand_nested_objects_are_an_error_not_a_stack_overflow() {
    let nested_objects: Vec<u8> = [0x03, 0x00, 0x01, b'a'].repeat(10_000);
    assert_eq!(
        decode_amf0(&nested_objects),
        amf0_error(4 * AMF0_MAX_DEPTH, Amf0Problem::TooDeep)
    );
    let nested_arrays: Vec<u8> = [0x0A, 0x00, 0x00, 0x00, 0x01].repeat(10_000);
    assert_eq!(
        decode_amf0(&nested_arrays),
        amf0_error(5 * AMF0_MAX_DEPTH, Amf0Problem::TooDeep)
    );
    let nested_ecma: Vec<u8> = [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01, b'a'].repeat(10_000);
    assert_eq!(
        decode(18, &nested_ecma),
        Err(MessageError::Amf0 {
            offset: 8 * AMF0_MAX_DEPTH,
            problem: Amf0Problem::TooDeep
        })
    );
}

#[test]
fn nesting_up_to_the_limit_decodes() {
    let mut bytes = [0x0A, 0x00, 0x00, 0x00, 0x01].repeat(AMF0_MAX_DEPTH);
    bytes.push(0x05);
    let mut expected = Amf0Value::Null;
    for _ in 0..AMF0_MAX_DEPTH {
        expected = Amf0Value::StrictArray(vec![expected]);
    }
    assert_eq!(decode_amf0(&bytes), Ok(vec![expected]));
}

#[test]
fn unsupported_markers_are_errors() {
    // 0x04 movie clip, 0x07 reference, 0x0B date, 0x0C long string, 0x0D unsupported,
    // 0x0F XML, 0x10 typed object, 0x11 AMF3 switch, 0xFF nonsense.
    for marker in [0x04u8, 0x07, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0xFF] {
        assert_eq!(
            decode_amf0(&[0x05, marker, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            amf0_error(1, Amf0Problem::UnsupportedMarker(marker))
        );
    }
}

#[test]
fn truncated_values_are_errors() {
    assert_eq!(
        decode_amf0(&[0x00, 1, 2, 3]),
        amf0_error(1, Amf0Problem::Truncated)
    );
    assert_eq!(decode_amf0(&[0x01]), amf0_error(1, Amf0Problem::Truncated));
    assert_eq!(
        decode_amf0(&[0x02, 0x00]),
        amf0_error(1, Amf0Problem::Truncated)
    );
    assert_eq!(
        decode_amf0(&[0x08, 0x00, 0x00]),
        amf0_error(1, Amf0Problem::Truncated)
    );
    // Object never closed.
    assert_eq!(
        decode_amf0(&[0x03, 0x00, 0x01, b'a', 0x05]),
        amf0_error(5, Amf0Problem::Truncated)
    );
    // Property name with no value.
    assert_eq!(
        decode_amf0(&[0x03, 0x00, 0x01, b'a']),
        amf0_error(4, Amf0Problem::Truncated)
    );
    // Strict array shorter than its count (rml_amf0 alone would accept it).
    assert_eq!(
        decode_amf0(&[0x0A, 0x00, 0x00, 0x00, 0x02, 0x05]),
        amf0_error(6, Amf0Problem::Truncated)
    );
    // A huge strict array count with nothing behind it.
    assert_eq!(
        decode_amf0(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF]),
        amf0_error(5, Amf0Problem::Truncated)
    );
}

#[test]
fn object_structure_errors() {
    assert_eq!(
        decode_amf0(&[0x03, 0x00, 0x00, 0x05]),
        amf0_error(3, Amf0Problem::EmptyPropertyName)
    );
    assert_eq!(
        decode_amf0(&[0x03, 0x00, 0x01, b'a', 0x09]),
        amf0_error(4, Amf0Problem::UnexpectedObjectEnd)
    );
    assert_eq!(
        decode_amf0(&[0x0A, 0x00, 0x00, 0x00, 0x01, 0x09]),
        amf0_error(5, Amf0Problem::UnexpectedObjectEnd)
    );
    assert_eq!(
        decode_amf0(&[0x02, 0x00, 0x01, 0xFF]),
        amf0_error(3, Amf0Problem::InvalidUtf8)
    );
    assert_eq!(
        decode_amf0(&[0x03, 0x00, 0x02, 0xC3, 0x28, 0x05, 0x00, 0x00, 0x09]),
        amf0_error(3, Amf0Problem::InvalidUtf8)
    );
}

#[test]
fn value_count_is_capped() {
    let at_limit = vec![0x05; AMF0_MAX_VALUES];
    assert_eq!(
        decode_amf0(&at_limit).map(|values| values.len()),
        Ok(AMF0_MAX_VALUES)
    );
    let over_limit = vec![0x05; AMF0_MAX_VALUES + 1];
    assert_eq!(
        decode_amf0(&over_limit),
        amf0_error(AMF0_MAX_VALUES, Amf0Problem::TooManyValues)
    );
    // Properties count too: an ECMA array of 65 536 one-letter properties plus the array itself.
    let mut properties = vec![0x08, 0x00, 0x00, 0x00, 0x00];
    properties.extend([0x00, 0x01, b'p', 0x05].repeat(AMF0_MAX_VALUES));
    properties.extend([0x00, 0x00, 0x09]);
    assert_eq!(
        decode_amf0(&properties),
        amf0_error(properties.len() - 4, Amf0Problem::TooManyValues)
    );
}

#[test]
fn ecma_array_count_is_ignored() {
    let one_property = [0x00, 0x01, b'a', 0x01, 0x01, 0x00, 0x00, 0x09];
    for count in [[0u8, 0, 0, 0], [0, 0, 0, 5], [0xFF, 0xFF, 0xFF, 0xFF]] {
        let mut bytes = vec![0x08];
        bytes.extend_from_slice(&count);
        bytes.extend_from_slice(&one_property);
        assert_eq!(
            decode_amf0(&bytes),
            Ok(vec![object(&[("a", Amf0Value::Boolean(true))])]),
            "count {count:?}"
        );
    }
}

#[test]
fn top_level_object_end_stops_reading_like_rml_amf0() {
    assert_eq!(
        decode_amf0(&[0x05, 0x09, 0xFF, 0xFF]),
        Ok(vec![Amf0Value::Null])
    );
}

#[test]
fn every_supported_type_decodes_to_exact_values() {
    let mut bytes = vec![0x00, 0x40, 0x59, 0, 0, 0, 0, 0, 0]; // 100.0
    bytes.extend_from_slice(&[0x01, 0x01, 0x02, 0x00, 0x02, b'h', b'i', 0x05, 0x06]);
    bytes.extend_from_slice(&[0x03, 0x00, 0x01, b'k', 0x06, 0x00, 0x00, 0x09]);
    bytes.extend_from_slice(&[0x0A, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00]);
    assert_eq!(
        decode_amf0(&bytes),
        Ok(vec![
            Amf0Value::Number(100.0),
            Amf0Value::Boolean(true),
            string("hi"),
            Amf0Value::Null,
            Amf0Value::Undefined,
            object(&[("k", Amf0Value::Undefined)]),
            Amf0Value::StrictArray(vec![Amf0Value::Boolean(false)]),
        ])
    );
}

#[test]
fn encode_refuses_what_would_not_read_back() {
    let long = "x".repeat(70_000);
    assert_eq!(
        encode_amf0(&[Amf0Value::Utf8String(long.clone())]),
        Err(MessageError::Amf0Encode(Amf0EncodeProblem::StringTooLong {
            length: 70_000
        }))
    );
    assert_eq!(
        encode_amf0(&[object(&[("", Amf0Value::Null)])]),
        Err(MessageError::Amf0Encode(
            Amf0EncodeProblem::InvalidPropertyName { length: 0 }
        ))
    );
    let long_name = Amf0Value::Object(HashMap::from([(long, Amf0Value::Null)]));
    assert_eq!(
        encode_amf0(&[long_name]),
        Err(MessageError::Amf0Encode(
            Amf0EncodeProblem::InvalidPropertyName { length: 70_000 }
        ))
    );
    let mut deep = Amf0Value::Null;
    for _ in 0..=AMF0_MAX_DEPTH {
        deep = Amf0Value::StrictArray(vec![deep]);
    }
    assert_eq!(
        RtmpMessage::command("x", 1.0, deep, vec![]).encode_body(),
        Err(MessageError::Amf0Encode(Amf0EncodeProblem::TooDeep))
    );
}

#[test]
fn errors_display_what_went_wrong() {
    let error = MessageError::Amf0 {
        offset: 7,
        problem: Amf0Problem::StringPastEnd {
            length: 16,
            remaining: 2,
        },
    };
    assert_eq!(
        error.to_string(),
        "bad AMF0 at byte 7: string of 16 bytes but only 2 bytes left"
    );
    assert_eq!(
        MessageError::Amf0 {
            offset: 0,
            problem: Amf0Problem::TooDeep
        }
        .to_string(),
        "bad AMF0 at byte 0: objects/arrays nested deeper than 32"
    );
}
