//! The chunk stream writer: messages in, chunk bytes out.

use bytes::{BufMut, BytesMut};

use super::header::{BasicHeader, EXTENDED_TIMESTAMP_MARKER};
use super::{ChunkError, MessagePayload, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_CHUNK_STREAM_ID};
use crate::time::RtmpTimestamp;

/// The largest body the 24-bit length field can describe.
const MAX_MESSAGE_LENGTH: usize = 0xFF_FFFF;

/// What the encoder last told the peer about a chunk stream.
#[derive(Clone, Copy, Debug)]
struct SentHeader {
    chunk_stream_id: u32,
    timestamp: RtmpTimestamp,
    /// The delta of the last fmt 1/2 header. `None` after fmt 0, because peers disagree
    /// on what a fmt 3 new message means after fmt 0, so we never send one there.
    delta: Option<u32>,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
}

/// Encodes messages into chunks, compressing headers against what was sent before on the
/// same chunk stream.
///
/// The chunk size starts at 128. To change it, send a SetChunkSize message (encoded at the
/// old size), then call [`set_chunk_size`](Self::set_chunk_size).
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use rtmp_edge::chunk_io::{ChunkEncoder, MessagePayload};
/// use rtmp_edge::time::RtmpTimestamp;
///
/// let mut encoder = ChunkEncoder::new();
/// let message = MessagePayload {
///     timestamp: RtmpTimestamp::new(40),
///     type_id: 9,
///     message_stream_id: 1,
///     data: Bytes::from_static(b"frame"),
/// };
/// let mut out = BytesMut::new();
/// encoder.encode(6, &message, &mut out).unwrap();
/// assert_eq!(&out[..12], &[0x06, 0, 0, 40, 0, 0, 5, 9, 1, 0, 0, 0]);
/// assert_eq!(&out[12..], b"frame");
/// ```
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    sent: Vec<SentHeader>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder at the default chunk size of 128.
    pub fn new() -> Self {
        ChunkEncoder { chunk_size: DEFAULT_CHUNK_SIZE, sent: Vec::new() }
    }

    /// The chunk size this encoder splits messages at.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size (1..=0x7FFFFFFF).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        validate_chunk_size(size)?;
        self.chunk_size = size;
        Ok(())
    }

    /// Forgets what was sent on a chunk stream, so its next message gets a fmt 0 header.
    ///
    /// Call this after writing bytes for that chunk stream by other means (for example a
    /// shared [`encode_standalone`](Self::encode_standalone) frame).
    pub fn forget_chunk_stream(&mut self, chunk_stream_id: u32) {
        self.sent.retain(|header| header.chunk_stream_id != chunk_stream_id);
    }

    /// Appends the chunks for `message` on `chunk_stream_id` to `out`, with the smallest
    /// header the peer can decode given what this encoder sent before.
    pub fn encode(
        &mut self,
        chunk_stream_id: u32,
        message: &MessagePayload,
        out: &mut BytesMut,
    ) -> Result<(), ChunkError> {
        let length = validate_message(chunk_stream_id, message)?;
        let index = self.sent.iter().position(|h| h.chunk_stream_id == chunk_stream_id);
        let previous = index.and_then(|i| self.sent.get(i)).copied();

        let mut next = SentHeader {
            chunk_stream_id,
            timestamp: message.timestamp,
            delta: None,
            length,
            type_id: message.type_id,
            message_stream_id: message.message_stream_id,
        };
        let fmt = match previous {
            Some(previous)
                if previous.message_stream_id == message.message_stream_id
                    && message.timestamp >= previous.timestamp
                    && message.timestamp - previous.timestamp < EXTENDED_TIMESTAMP_MARKER =>
            {
                let delta = message.timestamp - previous.timestamp;
                next.delta = Some(delta);
                if previous.length != length || previous.type_id != message.type_id {
                    1
                } else if previous.delta == Some(delta) {
                    3
                } else {
                    2
                }
            }
            _ => 0,
        };

        let timestamp_field = match next.delta {
            Some(delta) => delta,
            None => message.timestamp.value(),
        };
        write_chunks(fmt, chunk_stream_id, timestamp_field, message, self.chunk_size, out);

        match index.and_then(|i| self.sent.get_mut(i)) {
            Some(slot) => *slot = next,
            None => self.sent.push(next),
        }
        Ok(())
    }

    /// Appends a self-contained encoding of `message`: a fmt 0 header on the first chunk and
    /// fmt 3 on continuations, depending on no earlier header.
    ///
    /// The bytes are the same for every receiver that uses `chunk_size`, so a relay encodes a
    /// frame once and shares it with all its subscribers. The extended timestamp, when
    /// needed, is repeated on every continuation, as ffmpeg and nginx-rtmp expect.
    pub fn encode_standalone(
        chunk_stream_id: u32,
        message: &MessagePayload,
        chunk_size: u32,
        out: &mut BytesMut,
    ) -> Result<(), ChunkError> {
        validate_chunk_size(chunk_size)?;
        validate_message(chunk_stream_id, message)?;
        write_chunks(0, chunk_stream_id, message.timestamp.value(), message, chunk_size, out);
        Ok(())
    }

    /// How many bytes [`encode_standalone`](Self::encode_standalone) will append.
    pub fn standalone_encoded_len(chunk_stream_id: u32, body_length: usize, chunk_size: u32, timestamp: RtmpTimestamp) -> usize {
        let basic = basic_header_len(chunk_stream_id);
        let extended = if timestamp.value() >= EXTENDED_TIMESTAMP_MARKER { 4 } else { 0 };
        let chunks = body_length.div_ceil(chunk_size.max(1) as usize).max(1);
        basic + 11 + extended + (chunks - 1) * (basic + extended) + body_length
    }
}

fn validate_chunk_size(size: u32) -> Result<(), ChunkError> {
    if size == 0 || size > MAX_CHUNK_SIZE {
        return Err(ChunkError::InvalidChunkSize { size, max: MAX_CHUNK_SIZE });
    }
    Ok(())
}

fn validate_message(chunk_stream_id: u32, message: &MessagePayload) -> Result<u32, ChunkError> {
    if !(2..=MAX_CHUNK_STREAM_ID).contains(&chunk_stream_id) {
        return Err(ChunkError::InvalidChunkStreamId { chunk_stream_id });
    }
    if message.data.len() > MAX_MESSAGE_LENGTH {
        return Err(ChunkError::PayloadTooLong { length: message.data.len() });
    }
    Ok(message.data.len() as u32)
}

fn basic_header_len(chunk_stream_id: u32) -> usize {
    match chunk_stream_id {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Writes the first chunk with a `fmt` header and the rest as fmt 3 continuations.
fn write_chunks(
    fmt: u8,
    chunk_stream_id: u32,
    timestamp_field: u32,
    message: &MessagePayload,
    chunk_size: u32,
    out: &mut BytesMut,
) {
    let extended = timestamp_field >= EXTENDED_TIMESTAMP_MARKER;
    let short_timestamp = timestamp_field.min(EXTENDED_TIMESTAMP_MARKER);
    let body = &message.data[..];
    let chunk_size = chunk_size.max(1) as usize;
    let basic = basic_header_len(chunk_stream_id);
    let extra = if extended { 4 } else { 0 };
    let continuations = body.len().saturating_sub(1) / chunk_size;
    out.reserve(basic + 11 + extra + continuations * (basic + extra) + body.len());

    BasicHeader::write(fmt, chunk_stream_id, out);
    if fmt <= 2 {
        out.put_uint(u64::from(short_timestamp), 3);
    }
    if fmt <= 1 {
        out.put_uint(body.len() as u64, 3);
        out.put_u8(message.type_id);
    }
    if fmt == 0 {
        out.put_u32_le(message.message_stream_id);
    }
    if extended {
        out.put_u32(timestamp_field);
    }

    let mut chunks = body.chunks(chunk_size);
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for chunk in chunks {
        BasicHeader::write(3, chunk_stream_id, out);
        if extended {
            out.put_u32(timestamp_field);
        }
        out.put_slice(chunk);
    }
}
