//! Errors for message decoding and encoding: each variant says what the peer (or caller) got wrong.

use std::fmt;

/// Why an RTMP message body could not be decoded, or a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is shorter than the fixed fields of its message type.
    BodyTooShort {
        /// Message type id.
        type_id: u8,
        /// Bytes the fields need.
        needed: usize,
        /// Bytes the body has.
        actual: usize,
    },
    /// Set Chunk Size of 0, or with the reserved top bit set (or such a size given to encode).
    InvalidChunkSize {
        /// The 32-bit value as sent (or given).
        size: u32,
    },
    /// A known User Control event whose data is shorter than the event needs.
    UserControlTooShort {
        /// Event type.
        event_type: u16,
        /// Bytes of event data the event needs.
        needed: usize,
        /// Bytes of event data present.
        actual: usize,
    },
    /// AMF0 data that is malformed, hostile, or uses a type this library does not read.
    Amf0 {
        /// Byte offset of the problem within the AMF0 data.
        offset: usize,
        /// What is wrong there.
        problem: Amf0Problem,
    },
    /// A value that cannot be written as AMF0.
    Amf0Encode(Amf0EncodeProblem),
    /// A command (type 17 or 20) whose first value is not a string.
    MissingCommandName,
    /// A command whose second value is not a number.
    MissingTransactionId {
        /// The command's name, to help log what the peer attempted.
        name: String,
    },
    /// An AMF3 command or data message (type 17 or 15) whose first byte is not the 0x00 format
    /// byte that precedes its AMF0 encoding.
    UnexpectedAmf3Format {
        /// Message type id.
        type_id: u8,
        /// The first byte found.
        format: u8,
    },
    /// A malformed aggregate message (type 22).
    Aggregate {
        /// Byte offset of the problem within the aggregate body.
        offset: usize,
        /// What is wrong there.
        problem: AggregateProblem,
    },
}

/// What is wrong with a piece of AMF0 data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Amf0Problem {
    /// The data ends in the middle of a value.
    Truncated,
    /// A string (or property name) claims more bytes than are left.
    StringPastEnd {
        /// Length the string claims.
        length: usize,
        /// Bytes left after the length field.
        remaining: usize,
    },
    /// A string that is not valid UTF-8.
    InvalidUtf8,
    /// Objects and arrays nested deeper than [`AMF0_MAX_DEPTH`](super::AMF0_MAX_DEPTH).
    TooDeep,
    /// More values and properties than [`AMF0_MAX_VALUES`](super::AMF0_MAX_VALUES).
    TooManyValues,
    /// A type marker this library does not read (reference, date, long string, XML, typed
    /// object, AMF3 switch...) or that does not exist.
    UnsupportedMarker(u8),
    /// An object-end marker (0x09) where a value must be.
    UnexpectedObjectEnd,
    /// An empty property name not followed by the object-end marker.
    EmptyPropertyName,
    /// `rml_amf0` refused data the pre-scan accepted (a bug in this library if it happens).
    Rejected(String),
}

/// Why a value cannot be written as AMF0.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Amf0EncodeProblem {
    /// A string longer than the 65 535 bytes an AMF0 string can carry.
    StringTooLong {
        /// The string's length in bytes.
        length: usize,
    },
    /// An object property name that is empty (it would read back as the object's end) or longer
    /// than 65 535 bytes.
    InvalidPropertyName {
        /// The name's length in bytes.
        length: usize,
    },
    /// Objects and arrays nested deeper than [`AMF0_MAX_DEPTH`](super::AMF0_MAX_DEPTH): we would
    /// refuse to read it back, and so would careful peers.
    TooDeep,
    /// `rml_amf0` refused the values.
    Rejected(String),
}

/// What is wrong with an aggregate message body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AggregateProblem {
    /// Fewer bytes left than a sub-message header (11 bytes).
    TruncatedHeader {
        /// Bytes left.
        remaining: usize,
    },
    /// A sub-message whose size (plus its 4-byte back-pointer) runs past the aggregate's end.
    SubMessagePastEnd {
        /// Size the sub-message header claims.
        size: usize,
        /// Bytes left after the header.
        remaining: usize,
    },
    /// A sub-message type other than audio (8), video (9) or data (15, 18): protocol control or
    /// nested aggregates inside an aggregate are refused.
    UnexpectedType(u8),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::BodyTooShort {
                type_id,
                needed,
                actual,
            } => write!(
                f,
                "message type {type_id}: body has {actual} bytes, needs at least {needed}"
            ),
            MessageError::InvalidChunkSize { size } => write!(
                f,
                "invalid chunk size {size:#x}: must be 1..=0x7fffffff (top bit reserved)"
            ),
            MessageError::UserControlTooShort {
                event_type,
                needed,
                actual,
            } => write!(
                f,
                "user control event {event_type}: {actual} bytes of event data, needs {needed}"
            ),
            MessageError::Amf0 { offset, problem } => {
                write!(f, "bad AMF0 at byte {offset}: {problem}")
            }
            MessageError::Amf0Encode(problem) => write!(f, "cannot encode AMF0: {problem}"),
            MessageError::MissingCommandName => {
                write!(f, "command does not start with a name string")
            }
            MessageError::MissingTransactionId { name } => {
                write!(f, "command {name:?} has no transaction id number")
            }
            MessageError::UnexpectedAmf3Format { type_id, format } => write!(
                f,
                "message type {type_id}: format byte {format:#04x}, expected 0x00"
            ),
            MessageError::Aggregate { offset, problem } => {
                write!(f, "bad aggregate message at byte {offset}: {problem}")
            }
        }
    }
}

impl fmt::Display for Amf0Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf0Problem::Truncated => write!(f, "data ends inside a value"),
            Amf0Problem::StringPastEnd { length, remaining } => write!(
                f,
                "string of {length} bytes but only {remaining} bytes left"
            ),
            Amf0Problem::InvalidUtf8 => write!(f, "string is not valid UTF-8"),
            Amf0Problem::TooDeep => write!(
                f,
                "objects/arrays nested deeper than {}",
                super::AMF0_MAX_DEPTH
            ),
            Amf0Problem::TooManyValues => {
                write!(f, "more than {} values", super::AMF0_MAX_VALUES)
            }
            Amf0Problem::UnsupportedMarker(marker) => {
                write!(f, "unsupported type marker {marker:#04x}")
            }
            Amf0Problem::UnexpectedObjectEnd => {
                write!(f, "object-end marker where a value must be")
            }
            Amf0Problem::EmptyPropertyName => {
                write!(f, "empty property name not followed by object-end marker")
            }
            Amf0Problem::Rejected(reason) => write!(f, "rml_amf0 rejected it: {reason}"),
        }
    }
}

impl fmt::Display for Amf0EncodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf0EncodeProblem::StringTooLong { length } => {
                write!(
                    f,
                    "string of {length} bytes (AMF0 strings hold at most 65535)"
                )
            }
            Amf0EncodeProblem::InvalidPropertyName { length } => {
                write!(f, "property name of {length} bytes (must be 1..=65535)")
            }
            Amf0EncodeProblem::TooDeep => write!(
                f,
                "objects/arrays nested deeper than {}",
                super::AMF0_MAX_DEPTH
            ),
            Amf0EncodeProblem::Rejected(reason) => write!(f, "rml_amf0 rejected it: {reason}"),
        }
    }
}

impl fmt::Display for AggregateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AggregateProblem::TruncatedHeader { remaining } => {
                write!(f, "{remaining} bytes left, a sub-message header needs 11")
            }
            AggregateProblem::SubMessagePastEnd { size, remaining } => write!(
                f,
                "sub-message of {size} bytes (+4 back-pointer) but only {remaining} bytes left"
            ),
            AggregateProblem::UnexpectedType(type_id) => {
                write!(f, "sub-message type {type_id} is not audio, video or data")
            }
        }
    }
}

impl std::error::Error for MessageError {}
