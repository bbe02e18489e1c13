//! AMF0 through `rml_amf0`, behind a bounded pre-scan.
//!
//! `rml_amf0` 0.3 trusts its input: it reads strings with `Read::read`, so a string longer than
//! the data is silently cut short instead of failing, and it recurses once per nesting level,
//! so a few hundred kilobytes of nested objects overflow the stack. [`decode_amf0`] therefore
//! walks the structure first, without recursion, checking every length against the bytes left,
//! the nesting depth, the number of values and every marker. Only data that passes goes to
//! `rml_amf0::deserialize`, which then cannot hit any of those cases.
//!
//! The scan accepts exactly the grammar `rml_amf0` reads, with two stricter points (both
//! reported as errors instead of silently accepted): a strict array cut short by the end of
//! the data or by an object-end marker. It keeps `rml_amf0`'s tolerances that real peers rely
//! on: an ECMA array's count is ignored (the array runs to its object-end marker), and an
//! object-end marker at the top level ends the values (anything after it is ignored).

use crate::Amf0Value;

use super::error::{Amf0EncodeProblem, Amf0Problem, MessageError};

/// The deepest nesting of objects and arrays [`decode_amf0`] accepts (and `encode_amf0` writes).
///
/// Real commands and metadata nest two or three levels (E-RTMP's `videoFourCcInfoMap` inside the
/// connect object is the deepest seen); 32 leaves room and keeps `rml_amf0`'s recursion shallow.
pub const AMF0_MAX_DEPTH: usize = 32;

/// The most values (including object properties, at any depth) [`decode_amf0`] accepts in one
/// piece of data.
///
/// Each value costs up to about 100 bytes once decoded, from as little as one byte on the wire,
/// so this bounds a hostile message to a few megabytes. A metadata keyframe index for a
/// two-hour file holds about ten thousand values.
pub const AMF0_MAX_VALUES: usize = 65_536;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;

/// Decodes a sequence of AMF0 values, refusing malformed or hostile data with
/// [`MessageError::Amf0`].
///
/// ECMA arrays decode as [`Amf0Value::Object`] (`rml_amf0` has no separate variant).
pub fn decode_amf0(data: &[u8]) -> Result<Vec<Amf0Value>, MessageError> {
    let end = scan(data)?;
    let mut accepted = data.get(..end).unwrap_or_default();
    rml_amf0::deserialize(&mut accepted).map_err(|error| MessageError::Amf0 {
        offset: 0,
        problem: Amf0Problem::Rejected(error.to_string()),
    })
}

/// Encodes values as AMF0, refusing what would not read back: strings over 65 535 bytes,
/// empty or oversized property names, nesting deeper than [`AMF0_MAX_DEPTH`].
///
/// Object properties come out in `HashMap` order, which is not stable between runs.
pub fn encode_amf0(values: &[Amf0Value]) -> Result<Vec<u8>, MessageError> {
    encode_amf0_vec(&values.to_vec())
}

/// [`encode_amf0`] for values already in a `Vec`, which is what `rml_amf0::serialize` takes:
/// no clone needed.
#[allow(clippy::ptr_arg)]
pub(super) fn encode_amf0_vec(values: &Vec<Amf0Value>) -> Result<Vec<u8>, MessageError> {
    for value in values {
        check_encodable(value, 0)?;
    }
    rml_amf0::serialize(values)
        .map_err(|error| MessageError::Amf0Encode(Amf0EncodeProblem::Rejected(error.to_string())))
}

fn check_encodable(value: &Amf0Value, depth: usize) -> Result<(), MessageError> {
    let problem = |problem| Err(MessageError::Amf0Encode(problem));
    match value {
        Amf0Value::Utf8String(text) if text.len() > usize::from(u16::MAX) => {
            problem(Amf0EncodeProblem::StringTooLong { length: text.len() })
        }
        Amf0Value::Object(_) | Amf0Value::StrictArray(_) if depth >= AMF0_MAX_DEPTH => {
            problem(Amf0EncodeProblem::TooDeep)
        }
        Amf0Value::Object(properties) => {
            for (name, property) in properties {
                if name.is_empty() || name.len() > usize::from(u16::MAX) {
                    return problem(Amf0EncodeProblem::InvalidPropertyName { length: name.len() });
                }
                check_encodable(property, depth + 1)?;
            }
            Ok(())
        }
        Amf0Value::StrictArray(items) => {
            for item in items {
                check_encodable(item, depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A container the scan is inside of.
enum Open {
    /// An object or ECMA array: properties until an empty name and the object-end marker.
    Object,
    /// A strict array with this many items still to read.
    StrictArray { items_left: u32 },
}

/// Walks AMF0 data without recursion; returns how many leading bytes `rml_amf0` should read.
fn scan(data: &[u8]) -> Result<usize, MessageError> {
    let mut cursor = Cursor { data, position: 0 };
    let mut open: Vec<Open> = Vec::new();
    let mut values = 0usize;
    loop {
        match open.last_mut() {
            None => match data.get(cursor.position) {
                None | Some(&OBJECT_END) => return Ok(cursor.position),
                Some(_) => {}
            },
            Some(Open::StrictArray { items_left }) => {
                if *items_left == 0 {
                    open.pop();
                    continue;
                }
                *items_left -= 1;
            }
            Some(Open::Object) => {
                let name_at = cursor.position;
                let name_length = usize::from(cursor.read_u16()?);
                if name_length == 0 {
                    let end_at = cursor.position;
                    if cursor.read_u8()? != OBJECT_END {
                        return Err(amf0_error(end_at, Amf0Problem::EmptyPropertyName));
                    }
                    open.pop();
                    continue;
                }
                cursor.read_string_bytes(name_at, name_length)?;
            }
        }
        values += 1;
        if values > AMF0_MAX_VALUES {
            return Err(amf0_error(cursor.position, Amf0Problem::TooManyValues));
        }
        if let Some(container) = scan_value(&mut cursor, open.len())? {
            open.push(container);
        }
    }
}

/// Reads one value's marker and fixed part; returns the container it opens, if any.
fn scan_value(cursor: &mut Cursor<'_>, depth: usize) -> Result<Option<Open>, MessageError> {
    let marker_at = cursor.position;
    let marker = cursor.read_u8()?;
    let opens_container = matches!(marker, OBJECT | ECMA_ARRAY | STRICT_ARRAY);
    if opens_container && depth >= AMF0_MAX_DEPTH {
        return Err(amf0_error(marker_at, Amf0Problem::TooDeep));
    }
    match marker {
        NUMBER => cursor.skip(8).map(|()| None),
        BOOLEAN => cursor.skip(1).map(|()| None),
        STRING => {
            let length_at = cursor.position;
            let length = usize::from(cursor.read_u16()?);
            cursor.read_string_bytes(length_at, length).map(|()| None)
        }
        NULL | UNDEFINED => Ok(None),
        OBJECT => Ok(Some(Open::Object)),
        // The count is often wrong in the wild; like rml_amf0, read to the object-end marker.
        ECMA_ARRAY => cursor.skip(4).map(|()| Some(Open::Object)),
        STRICT_ARRAY => {
            let items_left = cursor.read_u32()?;
            Ok(Some(Open::StrictArray { items_left }))
        }
        OBJECT_END => Err(amf0_error(marker_at, Amf0Problem::UnexpectedObjectEnd)),
        other => Err(amf0_error(marker_at, Amf0Problem::UnsupportedMarker(other))),
    }
}

fn amf0_error(offset: usize, problem: Amf0Problem) -> MessageError {
    MessageError::Amf0 { offset, problem }
}

/// Checked reads over the data being scanned.
struct Cursor<'a> {
    data: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.position)
    }

    fn take(&mut self, count: usize) -> Result<&[u8], MessageError> {
        let start = self.position;
        let bytes = start
            .checked_add(count)
            .and_then(|end| self.data.get(start..end))
            .ok_or_else(|| amf0_error(start, Amf0Problem::Truncated))?;
        self.position = start + count;
        Ok(bytes)
    }

    fn skip(&mut self, count: usize) -> Result<(), MessageError> {
        self.take(count).map(|_| ())
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let start = self.position;
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| amf0_error(start, Amf0Problem::Truncated))
    }

    fn read_u8(&mut self) -> Result<u8, MessageError> {
        self.take_array::<1>().map(|[byte]| byte)
    }

    fn read_u16(&mut self) -> Result<u16, MessageError> {
        self.take_array().map(u16::from_be_bytes)
    }

    fn read_u32(&mut self) -> Result<u32, MessageError> {
        self.take_array().map(u32::from_be_bytes)
    }

    /// Consumes `length` bytes of UTF-8; `length_at` is where the length field was, for errors.
    fn read_string_bytes(&mut self, length_at: usize, length: usize) -> Result<(), MessageError> {
        let remaining = self.remaining();
        if length > remaining {
            return Err(amf0_error(
                length_at,
                Amf0Problem::StringPastEnd { length, remaining },
            ));
        }
        let text_at = self.position;
        let bytes = self.take(length)?;
        if std::str::from_utf8(bytes).is_err() {
            return Err(amf0_error(text_at, Amf0Problem::InvalidUtf8));
        }
        Ok(())
    }
}
