//! RTMP 1.0 messages: [`RtmpMessage`] <-> [`MessagePayload`](crate::chunk_io::MessagePayload).
//!
//! [`RtmpMessage::decode`] reads any message the chunk layer delivers, by type id; media and
//! other opaque bodies stay `Bytes` slices of the payload (no copy). [`RtmpMessage::encode_body`]
//! and [`RtmpMessage::into_payload`] go the other way. AMF0 goes through `rml_amf0`, behind a
//! bounded pre-scan ([`decode_amf0`]) that turns hostile data into [`MessageError::Amf0`]
//! instead of a truncated string or a stack overflow. Aggregates split lazily with
//! [`split_aggregate`].
//!
//! ```
//! use bytes::Bytes;
//! use rtmp_edge::chunk_io::MessagePayload;
//! use rtmp_edge::messages::{type_id, RtmpMessage};
//! use rtmp_edge::time::RtmpTimestamp;
//! use rtmp_edge::Amf0Value;
//!
//! // Decode a Window Acknowledgement Size of 2 500 000 bytes.
//! let payload = MessagePayload {
//!     timestamp: RtmpTimestamp::ZERO,
//!     type_id: type_id::WINDOW_ACKNOWLEDGEMENT_SIZE,
//!     message_stream_id: 0,
//!     data: Bytes::from_static(&[0x00, 0x26, 0x25, 0xA0]),
//! };
//! assert_eq!(
//!     RtmpMessage::decode(&payload)?,
//!     RtmpMessage::WindowAcknowledgementSize { size: 2_500_000 }
//! );
//!
//! // Encode createStream (transaction 2, null command object) and read it back.
//! let create_stream = RtmpMessage::command("createStream", 2.0, Amf0Value::Null, vec![]);
//! let payload = create_stream.clone().into_payload(RtmpTimestamp::ZERO, 0)?;
//! assert_eq!(payload.type_id, type_id::AMF0_COMMAND);
//! assert_eq!(&payload.data[..3], &[0x02, 0x00, 0x0C]); // string marker, length 12
//! assert_eq!(RtmpMessage::decode(&payload)?, create_stream);
//! # Ok::<(), rtmp_edge::messages::MessageError>(())
//! ```

mod aggregate;
mod amf0;
mod decode;
mod encode;
mod error;
mod user_control;

#[cfg(test)]
mod tests;

pub use aggregate::{split_aggregate, AggregateSubMessages};
pub use amf0::{decode_amf0, encode_amf0, AMF0_MAX_DEPTH, AMF0_MAX_VALUES};
pub use decode::strip_set_data_frame;
pub use error::{AggregateProblem, Amf0EncodeProblem, Amf0Problem, MessageError};
pub use user_control::event_type;

use bytes::Bytes;

use crate::Amf0Value;

/// Message type ids (RTMP 1.0 section 5.4 and 7.1).
pub mod type_id {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACKNOWLEDGEMENT_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio.
    pub const AUDIO: u8 = 8;
    /// Video.
    pub const VIDEO: u8 = 9;
    /// Data, AMF3 encoded.
    pub const AMF3_DATA: u8 = 15;
    /// Shared object, AMF3 encoded.
    pub const AMF3_SHARED_OBJECT: u8 = 16;
    /// Command, AMF3 encoded.
    pub const AMF3_COMMAND: u8 = 17;
    /// Data, AMF0 encoded.
    pub const AMF0_DATA: u8 = 18;
    /// Shared object, AMF0 encoded.
    pub const AMF0_SHARED_OBJECT: u8 = 19;
    /// Command, AMF0 encoded.
    pub const AMF0_COMMAND: u8 = 20;
    /// Aggregate.
    pub const AGGREGATE: u8 = 22;
}

/// Set Peer Bandwidth limit type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerBandwidthLimitType {
    /// 0: limit output to the window size.
    Hard,
    /// 1: limit to the window or the current limit, whichever is smaller.
    Soft,
    /// 2: hard if the previous limit was hard, otherwise ignore.
    Dynamic,
    /// Any other value, kept as sent.
    Other(u8),
}

/// User Control Message events (RTMP 1.0 section 7.1.7).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserControlEvent {
    /// 0: the stream became functional.
    StreamBegin {
        /// Message stream id.
        stream_id: u32,
    },
    /// 1: playback of the stream ended.
    StreamEof {
        /// Message stream id.
        stream_id: u32,
    },
    /// 2: no more data on the stream for now.
    StreamDry {
        /// Message stream id.
        stream_id: u32,
    },
    /// 3: the client's buffer length for a stream.
    SetBufferLength {
        /// Message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_length_ms: u32,
    },
    /// 4: the stream is a recorded one.
    StreamIsRecorded {
        /// Message stream id.
        stream_id: u32,
    },
    /// 6: the server asks the client to echo this timestamp.
    PingRequest {
        /// Server's timestamp.
        timestamp: u32,
    },
    /// 7: the client's echo of a ping request.
    PingResponse {
        /// The timestamp from the ping request.
        timestamp: u32,
    },
    /// Any other event type, kept as sent (not an error).
    Unknown {
        /// Event type.
        event_type: u16,
        /// Event data after the type.
        data: Bytes,
    },
}

/// A decoded RTMP message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RtmpMessage {
    /// 1: the sender's new chunk size.
    SetChunkSize {
        /// New chunk size (1..=0x7FFFFFFF).
        size: u32,
    },
    /// 2: discard the partial message on a chunk stream.
    Abort {
        /// Chunk stream id.
        chunk_stream_id: u32,
    },
    /// 3: bytes received so far, wrapping at 2^32.
    Acknowledgement {
        /// Sequence number.
        sequence_number: u32,
    },
    /// 4: a user control event.
    UserControl(UserControlEvent),
    /// 5: how many bytes the sender wants between acknowledgements.
    WindowAcknowledgementSize {
        /// Window size in bytes.
        size: u32,
    },
    /// 6: the receiver should limit its output bandwidth.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type.
        limit_type: PeerBandwidthLimitType,
    },
    /// 8: audio (an FLV audio tag body).
    Audio {
        /// Tag body.
        data: Bytes,
    },
    /// 9: video (an FLV video tag body).
    Video {
        /// Tag body.
        data: Bytes,
    },
    /// 18: AMF0 data, e.g. `@setDataFrame`/`onMetaData`.
    Amf0Data {
        /// Values in order.
        values: Vec<Amf0Value>,
    },
    /// 20 (or 17 with the AMF3 format byte): a command.
    Amf0Command {
        /// Command name.
        name: String,
        /// Transaction id.
        transaction_id: f64,
        /// Command object (often Null).
        command_object: Amf0Value,
        /// Remaining arguments.
        arguments: Vec<Amf0Value>,
    },
    /// 15: AMF3 data, body after the format byte kept opaque.
    Amf3Data {
        /// Body.
        data: Bytes,
    },
    /// 17: an AMF3 command: a format byte, then an AMF0-encoded command.
    Amf3Command {
        /// Command name.
        name: String,
        /// Transaction id.
        transaction_id: f64,
        /// Command object.
        command_object: Amf0Value,
        /// Remaining arguments.
        arguments: Vec<Amf0Value>,
    },
    /// 16 / 19: shared object messages, kept opaque.
    SharedObject {
        /// True for type 16 (AMF3), false for 19 (AMF0).
        amf3: bool,
        /// Body.
        data: Bytes,
    },
    /// 22: several audio/video/data messages in one; see [`split_aggregate`].
    Aggregate {
        /// Body.
        data: Bytes,
    },
    /// Any other type id.
    Unknown {
        /// Type id.
        type_id: u8,
        /// Body.
        data: Bytes,
    },
}
