//! Chunk streams (RTMP 1.0 section 5.3): bytes <-> [`MessagePayload`].
//!
//! [`ChunkDecoder`] turns the bytes a peer sends (after the handshake) into whole messages.
//! [`ChunkEncoder`] turns messages into chunk bytes, choosing the smallest header it can,
//! or, with [`ChunkEncoder::encode_standalone`], a self-contained encoding that depends on
//! no earlier header, so one encoding can be shared by every subscriber of a stream.

mod decoder;
mod header;
mod encoder;
mod error;

pub use decoder::{ChunkDecoder, ChunkDecoderLimits};
pub use encoder::ChunkEncoder;
pub use error::ChunkError;

use bytes::Bytes;

use crate::time::RtmpTimestamp;

/// The chunk size both directions start with (RTMP 1.0 section 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// The smallest chunk size [`ChunkDecoder`] accepts from a peer's SetChunkSize.
///
/// The spec allows down to 1 but says it "should be at least 128"; no real peer goes below
/// the default, and a tiny chunk size only multiplies the chunks (and so the headers and
/// the work) a peer can make us spend per byte of a message.
pub const MIN_PEER_CHUNK_SIZE: u32 = DEFAULT_CHUNK_SIZE;

/// The largest chunk size the protocol can express (31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

/// The largest chunk stream id the 3-byte basic header can express.
pub const MAX_CHUNK_STREAM_ID: u32 = 65599;

/// Chunk stream ids this library uses when it sends, by kind of message.
///
/// Peers accept any id from 3 up for anything but protocol control, which must be on 2.
/// These match what ffmpeg and nginx-rtmp use, which keeps captures easy to compare.
pub mod csid {
    /// Protocol control messages (types 1-6). Fixed by the spec.
    pub const PROTOCOL_CONTROL: u32 = 2;
    /// AMF commands (connect, createStream, onStatus...).
    pub const COMMAND: u32 = 3;
    /// Audio messages.
    pub const AUDIO: u32 = 4;
    /// Data messages (onMetaData, |RtmpSampleAccess).
    pub const DATA: u32 = 5;
    /// Video messages.
    pub const VIDEO: u32 = 6;
}

/// One whole RTMP message as carried by the chunk layer: header fields plus the body.
///
/// The body is a [`Bytes`]: cloning a payload never copies the media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePayload {
    /// Absolute timestamp of the message.
    pub timestamp: RtmpTimestamp,
    /// Message type id (1 = SetChunkSize ... 22 = Aggregate).
    pub type_id: u8,
    /// Message stream id (0 for connection-level messages).
    pub message_stream_id: u32,
    /// Message body.
    pub data: Bytes,
}

#[cfg(test)]
mod tests;
