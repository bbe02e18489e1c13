use std::fmt;

/// What was wrong with chunk-layer input or an encoding request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// A message header announced a length above the configured maximum.
    MessageTooLong {
        /// Chunk stream id.
        chunk_stream_id: u32,
        /// Announced length.
        length: u32,
        /// Configured maximum.
        max: u32,
    },
    /// A chunk size with the top bit set or above the configured maximum (from a peer's
    /// SetChunkSize), or 0 (asked of the encoder).
    InvalidChunkSize {
        /// Requested size.
        size: u32,
        /// Configured maximum.
        max: u32,
    },
    /// A peer's SetChunkSize asked for less than
    /// [`MIN_PEER_CHUNK_SIZE`](super::MIN_PEER_CHUNK_SIZE).
    ChunkSizeBelowMinimum {
        /// Requested size.
        size: u32,
        /// The smallest size accepted.
        min: u32,
    },
    /// A fmt 1, 2 or 3 chunk arrived on a chunk stream with no earlier header.
    NoPreviousHeader {
        /// Chunk stream id.
        chunk_stream_id: u32,
        /// Header format (1, 2 or 3).
        fmt: u8,
    },
    /// More chunk streams open than the configured maximum.
    TooManyChunkStreams {
        /// Configured maximum.
        max: usize,
    },
    /// The bytes held for partial messages would pass the configured maximum.
    PartialMessagesTooLarge {
        /// Bytes that would be held.
        bytes: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A fmt 1 or 2 chunk started a new message while a message was still in progress.
    HeaderChangedMidMessage {
        /// Chunk stream id.
        chunk_stream_id: u32,
    },
    /// A protocol control message (SetChunkSize, Abort) had a body that is too short.
    MalformedControlMessage {
        /// Message type id.
        type_id: u8,
        /// Body length.
        length: usize,
    },
    /// Chunk stream id out of range for encoding (must be 2..=65599).
    InvalidChunkStreamId {
        /// Requested id.
        chunk_stream_id: u32,
    },
    /// A message too long to be described by the 24-bit length field.
    PayloadTooLong {
        /// Body length.
        length: usize,
    },
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::MessageTooLong { chunk_stream_id, length, max } => write!(
                f,
                "message of {length} bytes on chunk stream {chunk_stream_id} exceeds the limit of {max}"
            ),
            ChunkError::InvalidChunkSize { size, max } => {
                write!(f, "invalid chunk size {size} (0, or over the maximum of {max})")
            }
            ChunkError::ChunkSizeBelowMinimum { size, min } => {
                write!(f, "chunk size {size} is below {min}, which no real peer goes under")
            }
            ChunkError::NoPreviousHeader { chunk_stream_id, fmt } => write!(
                f,
                "fmt {fmt} chunk on chunk stream {chunk_stream_id}, which has no earlier header"
            ),
            ChunkError::TooManyChunkStreams { max } => {
                write!(f, "more than {max} chunk streams open")
            }
            ChunkError::PartialMessagesTooLarge { bytes, max } => write!(
                f,
                "partial messages would hold {bytes} bytes, over the limit of {max}"
            ),
            ChunkError::HeaderChangedMidMessage { chunk_stream_id } => write!(
                f,
                "new message header on chunk stream {chunk_stream_id} before the previous message ended"
            ),
            ChunkError::MalformedControlMessage { type_id, length } => write!(
                f,
                "protocol control message type {type_id} with a {length}-byte body"
            ),
            ChunkError::InvalidChunkStreamId { chunk_stream_id } => {
                write!(f, "chunk stream id {chunk_stream_id} outside 2..=65599")
            }
            ChunkError::PayloadTooLong { length } => {
                write!(f, "message body of {length} bytes does not fit in 24 bits")
            }
        }
    }
}

impl std::error::Error for ChunkError {}
