//! The chunk stream reader: bytes from the peer in, whole messages out.

use bytes::{Buf, BytesMut};

use super::header::{BasicHeader, EXTENDED_TIMESTAMP_MARKER};
use super::{ChunkError, MessagePayload, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_PEER_CHUNK_SIZE};
use crate::messages::type_id;
use crate::time::RtmpTimestamp;

/// Limits that bound what one peer can make the decoder hold.
///
/// Every one is checked before anything is allocated for it; breaking one is a
/// [`ChunkError`], after which the connection should be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkDecoderLimits {
    /// Longest message body accepted, in bytes.
    pub max_message_length: u32,
    /// Largest chunk size a peer may set with SetChunkSize. (The smallest is
    /// [`MIN_PEER_CHUNK_SIZE`], whatever the limits.)
    pub max_chunk_size: u32,
    /// Most chunk streams one peer may use.
    pub max_chunk_streams: usize,
    /// Most bytes that partly received messages may announce at once: each message that
    /// spans chunks counts its full length from its first chunk until it completes. What
    /// reassembly holds (see [`ChunkDecoder::partial_capacity`]) never passes it.
    pub max_partial_bytes: usize,
}

impl Default for ChunkDecoderLimits {
    /// Generous enough for 4K keyframes and for servers that use a 60000-byte chunk size;
    /// small enough that thousands of connections stay within a small host's memory.
    fn default() -> Self {
        ChunkDecoderLimits {
            max_message_length: 8 * 1024 * 1024,
            max_chunk_size: 16 * 1024 * 1024,
            max_chunk_streams: 64,
            max_partial_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What the decoder remembers per chunk stream, for header compression.
#[derive(Debug)]
struct ChunkStreamState {
    chunk_stream_id: u32,
    timestamp: RtmpTimestamp,
    /// The timestamp field of the last fmt 0/1/2 header (absolute for fmt 0, delta for 1/2).
    /// A fmt 3 chunk that starts a new message adds this, as ffmpeg and librtmp do.
    timestamp_field: u32,
    /// Whether the last fmt 0/1/2 header carried an extended timestamp, and its raw value:
    /// fmt 3 chunks may repeat those 4 bytes (ffmpeg, nginx-rtmp) or not (librtmp).
    extended_timestamp: Option<u32>,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
    /// Body bytes of a message that spans chunks, while it is being received. Its capacity
    /// is exactly what [`grow_partial`] sets.
    partial: Option<BytesMut>,
}

/// What one chunk's header says, before anything is consumed.
struct ParsedChunkHeader {
    header_length: usize,
    starts_message: bool,
    timestamp: RtmpTimestamp,
    timestamp_field: u32,
    extended_timestamp: Option<u32>,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
}

/// Decodes a peer's chunk stream into [`MessagePayload`]s.
///
/// Feed bytes with [`push`](Self::push), then call [`next_message`](Self::next_message)
/// until it returns `Ok(None)`. A message that arrives in a single chunk comes out as a
/// slice of the input buffer (no copy); only messages that span chunks are reassembled.
///
/// SetChunkSize (type 1) and Abort (type 2) take effect inside the decoder, at the exact
/// byte where they end, and are still returned so the caller can see them.
///
/// ```
/// use rtmp_edge::chunk_io::{ChunkDecoder, ChunkDecoderLimits};
///
/// let mut decoder = ChunkDecoder::new(ChunkDecoderLimits::default());
/// // fmt 0, chunk stream 3, timestamp 0, length 3, type 20 (command), stream 0, then the body.
/// decoder.push(&[0x03, 0, 0, 0, 0, 0, 3, 20, 0, 0, 0, 0, b'a', b'b', b'c']);
/// let message = decoder.next_message().unwrap().unwrap();
/// assert_eq!(message.type_id, 20);
/// assert_eq!(&message.data[..], b"abc");
/// assert!(decoder.next_message().unwrap().is_none());
/// ```
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkDecoderLimits,
    input: BytesMut,
    chunk_size: u32,
    streams: Vec<ChunkStreamState>,
    /// The full lengths of the messages being reassembled, checked against
    /// `limits.max_partial_bytes` when each starts.
    announced_partial_bytes: usize,
}

impl ChunkDecoder {
    /// A decoder with the default chunk size of 128.
    pub fn new(limits: ChunkDecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            input: BytesMut::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            announced_partial_bytes: 0,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &ChunkDecoderLimits {
        &self.limits
    }

    /// Changes the limits, for messages that start from now on: a server may keep them
    /// small until a peer has a reason to send large messages (it publishes). Messages
    /// already partly received keep the length they were admitted with.
    pub fn set_limits(&mut self, limits: ChunkDecoderLimits) {
        self.limits = limits;
    }

    /// The chunk size the peer is currently sending with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes received but not yet turned into messages (excluding partial message bodies).
    pub fn buffered_len(&self) -> usize {
        self.input.len()
    }

    /// Body bytes received so far of the messages still being reassembled.
    pub fn partial_bytes(&self) -> usize {
        self.partial_buffers().map(BytesMut::len).sum()
    }

    /// Memory reserved for reassembly: the capacity of every partly received message's
    /// buffer. It follows what has arrived, never the announced length: a buffer takes room
    /// for its chunk and for bytes already received after it that no buffer has room for,
    /// and otherwise at most doubles, never past the message's length. So a peer that
    /// announces large messages and sends little makes the decoder hold little: at most
    /// about twice what it sent.
    pub fn partial_capacity(&self) -> usize {
        self.partial_buffers().map(BytesMut::capacity).sum()
    }

    fn partial_buffers(&self) -> impl Iterator<Item = &BytesMut> {
        self.streams.iter().filter_map(|state| state.partial.as_ref())
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Sets the peer's chunk size, as a SetChunkSize message does.
    ///
    /// Sizes below [`MIN_PEER_CHUNK_SIZE`] are refused: no real peer sends them, and they
    /// only multiply the chunks (and headers) a message costs to send and to reassemble.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size < MIN_PEER_CHUNK_SIZE {
            return Err(ChunkError::ChunkSizeBelowMinimum { size, min: MIN_PEER_CHUNK_SIZE });
        }
        let max = self.limits.max_chunk_size.min(MAX_CHUNK_SIZE);
        if size > max {
            return Err(ChunkError::InvalidChunkSize { size, max });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the partly received message on a chunk stream, as an Abort message does.
    pub fn abort(&mut self, chunk_stream_id: u32) {
        if let Some(state) = self.streams.iter_mut().find(|s| s.chunk_stream_id == chunk_stream_id) {
            if state.partial.take().is_some() {
                self.announced_partial_bytes = self.announced_partial_bytes.saturating_sub(state.length as usize);
            }
        }
    }

    /// Decodes the next whole message from the bytes pushed so far.
    ///
    /// `Ok(None)` means more input is needed. After an `Err` the stream is out of sync and
    /// the connection should be closed.
    pub fn next_message(&mut self) -> Result<Option<MessagePayload>, ChunkError> {
        loop {
            let Some(basic) = BasicHeader::peek(&self.input) else {
                return Ok(None);
            };
            let stream_index = self.stream_index(basic)?;
            let Some(header) = self.peek_message_header(basic, stream_index)? else {
                return Ok(None);
            };

            // Limits come before waiting for the body, so a huge announced length costs nothing.
            if header.starts_message {
                if header.length > self.limits.max_message_length {
                    return Err(ChunkError::MessageTooLong {
                        chunk_stream_id: basic.chunk_stream_id,
                        length: header.length,
                        max: self.limits.max_message_length,
                    });
                }
                if (self.chunk_size as usize) < header.length as usize {
                    let held = self.announced_partial_bytes.saturating_add(header.length as usize);
                    if held > self.limits.max_partial_bytes {
                        return Err(ChunkError::PartialMessagesTooLarge {
                            bytes: held,
                            max: self.limits.max_partial_bytes,
                        });
                    }
                }
            }

            let (received, reserved) = match stream_index.and_then(|i| self.streams.get(i)) {
                Some(state) if !header.starts_message => {
                    state.partial.as_ref().map_or((0, 0), |partial| (partial.len(), partial.capacity()))
                }
                _ => (0, 0),
            };
            let remaining = (header.length as usize).saturating_sub(received);
            let chunk_body = remaining.min(self.chunk_size as usize);
            let Some(chunk_end) = header.header_length.checked_add(chunk_body) else {
                return Ok(None);
            };
            if self.input.len() < chunk_end {
                return Ok(None);
            }

            let index = match stream_index {
                Some(index) => index,
                None => {
                    self.streams.push(ChunkStreamState {
                        chunk_stream_id: basic.chunk_stream_id,
                        timestamp: RtmpTimestamp::ZERO,
                        timestamp_field: 0,
                        extended_timestamp: None,
                        length: 0,
                        type_id: 0,
                        message_stream_id: 0,
                        partial: None,
                    });
                    self.streams.len() - 1
                }
            };
            // A message longer than one chunk is copied into a reassembly buffer, which may
            // need more room for this chunk. (A whole message in one chunk needs none.)
            let needs_room = received.saturating_add(chunk_body) > reserved
                && !(header.starts_message && chunk_body == header.length as usize);
            let arrived_unreserved = if needs_room {
                self.input.len().saturating_sub(chunk_end).saturating_sub(self.spare_partial_capacity())
            } else {
                0
            };
            self.input.advance(header.header_length);

            let Some(state) = self.streams.get_mut(index) else {
                return Ok(None);
            };
            if header.starts_message {
                state.timestamp = header.timestamp;
                state.timestamp_field = header.timestamp_field;
                state.extended_timestamp = header.extended_timestamp;
                state.length = header.length;
                state.type_id = header.type_id;
                state.message_stream_id = header.message_stream_id;
            }

            // Only a whole message in one chunk is split off the input (zero copy); chunks of
            // a longer message are copied straight into its reassembly buffer.
            let Some(body) = self.input.get(..chunk_body) else {
                return Ok(None);
            };
            let data = match &mut state.partial {
                None if chunk_body == state.length as usize => self.input.split_to(chunk_body).freeze(),
                None => {
                    // What has arrived, not the announced length: memory follows arrival.
                    let capacity = chunk_body.saturating_add(arrived_unreserved).min(state.length as usize);
                    let mut partial = BytesMut::with_capacity(capacity.max(chunk_body));
                    partial.extend_from_slice(body);
                    state.partial = Some(partial);
                    self.input.advance(chunk_body);
                    self.announced_partial_bytes =
                        self.announced_partial_bytes.saturating_add(state.length as usize);
                    continue;
                }
                Some(partial) => {
                    if needs_room {
                        grow_partial(partial, chunk_body, state.length as usize, arrived_unreserved);
                    }
                    partial.extend_from_slice(body);
                    self.input.advance(chunk_body);
                    if partial.len() < state.length as usize {
                        continue;
                    }
                    self.announced_partial_bytes =
                        self.announced_partial_bytes.saturating_sub(state.length as usize);
                    match state.partial.take() {
                        Some(partial) => partial.freeze(),
                        None => return Ok(None),
                    }
                }
            };

            let message = MessagePayload {
                timestamp: state.timestamp,
                type_id: state.type_id,
                message_stream_id: state.message_stream_id,
                data,
            };
            self.apply_protocol_control(&message)?;
            return Ok(Some(message));
        }
    }

    /// Room reserved in reassembly buffers and not yet filled.
    fn spare_partial_capacity(&self) -> usize {
        self.partial_buffers().map(|partial| partial.capacity().saturating_sub(partial.len())).sum()
    }

    /// Finds the state for a chunk stream, checking the stream limit for a new one.
    fn stream_index(&self, basic: BasicHeader) -> Result<Option<usize>, ChunkError> {
        let index = self
            .streams
            .iter()
            .position(|state| state.chunk_stream_id == basic.chunk_stream_id);
        if index.is_none() {
            if basic.fmt != 0 {
                return Err(ChunkError::NoPreviousHeader {
                    chunk_stream_id: basic.chunk_stream_id,
                    fmt: basic.fmt,
                });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams { max: self.limits.max_chunk_streams });
            }
        }
        Ok(index)
    }

    /// Reads the message header (and extended timestamp) that follows a basic header,
    /// without consuming anything. `Ok(None)` means more bytes are needed.
    fn peek_message_header(
        &self,
        basic: BasicHeader,
        stream_index: Option<usize>,
    ) -> Result<Option<ParsedChunkHeader>, ChunkError> {
        let previous = stream_index.and_then(|i| self.streams.get(i));
        let in_progress = previous.is_some_and(|state| state.partial.is_some());
        let fields = match self.input.get(basic.length..) {
            Some(fields) => fields,
            None => return Ok(None),
        };
        let message_header_length = match basic.fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let Some(fields) = fields.get(..message_header_length) else {
            return Ok(None);
        };
        if basic.fmt != 3 && in_progress {
            return Err(ChunkError::HeaderChangedMidMessage {
                chunk_stream_id: basic.chunk_stream_id,
            });
        }
        let after_fields = basic.length + message_header_length;

        if basic.fmt == 3 {
            let Some(state) = previous else {
                return Err(ChunkError::NoPreviousHeader { chunk_stream_id: basic.chunk_stream_id, fmt: 3 });
            };
            let mut header_length = after_fields;
            if let Some(extended) = state.extended_timestamp {
                let Some(next) = self.input.get(after_fields..after_fields + 4) else {
                    return Ok(None);
                };
                if read_u32_be(next) == extended {
                    header_length += 4;
                }
            }
            let timestamp = if in_progress {
                state.timestamp
            } else {
                state.timestamp + state.timestamp_field
            };
            return Ok(Some(ParsedChunkHeader {
                header_length,
                starts_message: !in_progress,
                timestamp,
                timestamp_field: state.timestamp_field,
                extended_timestamp: state.extended_timestamp,
                length: state.length,
                type_id: state.type_id,
                message_stream_id: state.message_stream_id,
            }));
        }

        let short_timestamp = read_u24_be(fields);
        let (timestamp_field, extended_timestamp, header_length) =
            if short_timestamp == EXTENDED_TIMESTAMP_MARKER {
                let Some(extended) = self.input.get(after_fields..after_fields + 4) else {
                    return Ok(None);
                };
                let extended = read_u32_be(extended);
                (extended, Some(extended), after_fields + 4)
            } else {
                (short_timestamp, None, after_fields)
            };

        let (length, type_id, message_stream_id) = match (fields, previous) {
            ([_, _, _, l0, l1, l2, type_id, s0, s1, s2, s3], _) => (
                u32::from_be_bytes([0, *l0, *l1, *l2]),
                *type_id,
                u32::from_le_bytes([*s0, *s1, *s2, *s3]),
            ),
            ([_, _, _, l0, l1, l2, type_id], Some(state)) => {
                (u32::from_be_bytes([0, *l0, *l1, *l2]), *type_id, state.message_stream_id)
            }
            (_, Some(state)) => (state.length, state.type_id, state.message_stream_id),
            (_, None) => {
                return Err(ChunkError::NoPreviousHeader {
                    chunk_stream_id: basic.chunk_stream_id,
                    fmt: basic.fmt,
                })
            }
        };
        let timestamp = match (basic.fmt, previous) {
            (0, _) | (_, None) => RtmpTimestamp::new(timestamp_field),
            (_, Some(state)) => state.timestamp + timestamp_field,
        };
        Ok(Some(ParsedChunkHeader {
            header_length,
            starts_message: true,
            timestamp,
            timestamp_field,
            extended_timestamp,
            length,
            type_id,
            message_stream_id,
        }))
    }

    /// SetChunkSize and Abort change how the following bytes are read, so they act here.
    fn apply_protocol_control(&mut self, message: &MessagePayload) -> Result<(), ChunkError> {
        if message.message_stream_id != 0 && message.type_id > type_id::ABORT {
            return Ok(());
        }
        match message.type_id {
            type_id::SET_CHUNK_SIZE => {
                let Some(bytes) = message.data.get(..4) else {
                    return Err(ChunkError::MalformedControlMessage {
                        type_id: message.type_id,
                        length: message.data.len(),
                    });
                };
                self.set_chunk_size(read_u32_be(bytes))
            }
            type_id::ABORT => {
                let Some(bytes) = message.data.get(..4) else {
                    return Err(ChunkError::MalformedControlMessage {
                        type_id: message.type_id,
                        length: message.data.len(),
                    });
                };
                self.abort(read_u32_be(bytes));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Makes room in a reassembly buffer for the next `chunk_body` bytes of a message of
/// `length` bytes, and for up to `arrived_unreserved` more: bytes already received after
/// this chunk that no buffer has room for yet, so that a message whose chunks came in one
/// read is copied once. Otherwise the capacity doubles, so a message that trickles in costs
/// a logarithmic number of copies. It never passes `length`, so the finished buffer becomes
/// the message body with no spare capacity.
fn grow_partial(partial: &mut BytesMut, chunk_body: usize, length: usize, arrived_unreserved: usize) {
    let needed = partial.len().saturating_add(chunk_body);
    let target = partial
        .capacity()
        .saturating_mul(2)
        .max(needed.saturating_add(arrived_unreserved))
        .min(length)
        .max(needed);
    // A new buffer rather than `reserve`, which may round the capacity up past `length`.
    let mut grown = BytesMut::with_capacity(target);
    grown.extend_from_slice(partial);
    *partial = grown;
}

pub(super) fn read_u24_be(bytes: &[u8]) -> u32 {
    match bytes {
        [a, b, c, ..] => u32::from_be_bytes([0, *a, *b, *c]),
        _ => 0,
    }
}

pub(super) fn read_u32_be(bytes: &[u8]) -> u32 {
    match bytes {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}
