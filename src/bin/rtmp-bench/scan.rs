//! A chunk-stream scanner for players: it follows chunk headers to find message boundaries,
//! timestamps and types, keeps the first bytes of each message, and skips the rest of the
//! payload in place.
//!
//! The library's `ChunkDecoder` reassembles every message into its own buffer, which is
//! right for a relay but doubles the memory traffic of a load generator holding thousands
//! of players of a 2.5 Mbps stream. Here nothing is copied but the few header bytes, and a
//! player's state is a few hundred bytes whatever the message sizes.

use std::fmt;

/// Bytes kept from the start of every message: enough for every protocol control message
/// and for the FLV video/audio tag header (legacy or Enhanced RTMP FourCC).
pub const HEAD_LEN: usize = 16;

/// Bytes kept from the end of every message: a sequence stamp (`sequence.rs`).
pub const TAIL_LEN: usize = crate::sequence::STAMP_LEN;

/// Most chunk streams a server may use on one connection (nginx-rtmp and rtmp-edge use 5).
const MAX_CHUNK_STREAMS: usize = 16;

/// Largest incoming chunk size accepted (the library's decoder has the same default).
const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// Why the scanner gave up on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// A fmt 1/2/3 chunk on a chunk stream with no earlier fmt 0 header.
    NoPreviousHeader(u32),
    /// A fmt 0/1/2 header arrived while a message on that chunk stream was unfinished.
    HeaderChangedMidMessage(u32),
    /// More chunk streams than [`MAX_CHUNK_STREAMS`].
    TooManyChunkStreams,
    /// SetChunkSize outside 1..=16 MiB.
    BadChunkSize(u32),
    /// A SetChunkSize or Abort message shorter than 4 bytes.
    ShortControlMessage(u8),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::NoPreviousHeader(csid) => write!(f, "chunk stream {csid} continued without a first header"),
            ScanError::HeaderChangedMidMessage(csid) => write!(f, "new header mid-message on chunk stream {csid}"),
            ScanError::TooManyChunkStreams => write!(f, "more than {MAX_CHUNK_STREAMS} chunk streams"),
            ScanError::BadChunkSize(size) => write!(f, "chunk size {size} out of range"),
            ScanError::ShortControlMessage(type_id) => write!(f, "control message type {type_id} too short"),
        }
    }
}

impl std::error::Error for ScanError {}

/// One complete message as the scanner saw it.
#[derive(Debug)]
pub struct ScannedMessage<'a> {
    /// Message type id.
    pub type_id: u8,
    /// Absolute timestamp (wrapping u32 milliseconds).
    pub timestamp: u32,
    /// Body length.
    #[allow(dead_code)] // read by the tests; kept so a message is fully described
    pub length: u32,
    /// The first `min(length, HEAD_LEN)` bytes of the body.
    pub head: &'a [u8],
    /// The last `min(length, TAIL_LEN)` bytes of the body.
    pub tail: &'a [u8],
}

#[derive(Clone, Debug)]
struct ChunkStream {
    csid: u32,
    timestamp: u32,
    /// Timestamp field of the last fmt 0/1/2 header: a fmt 3 chunk starting a new message
    /// adds it, as the library decoder (and ffmpeg, librtmp) do.
    timestamp_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    /// Bytes of the current message still to come (0: between messages).
    remaining: u32,
    head: [u8; HEAD_LEN],
    head_len: u8,
    tail: [u8; TAIL_LEN],
}

/// Follows a chunk stream (after the handshake) without keeping payloads.
#[derive(Clone, Debug)]
pub struct ChunkScanner {
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    header: [u8; 18],
    header_len: usize,
    /// While inside a chunk's payload: which stream, and how many bytes are left.
    in_payload: Option<(usize, u32)>,
}

impl Default for ChunkScanner {
    fn default() -> Self {
        ChunkScanner { chunk_size: 128, streams: Vec::new(), header: [0; 18], header_len: 0, in_payload: None }
    }
}

impl ChunkScanner {
    /// Scans `input`, calling `on_message` for every message completed in it.
    pub fn feed(&mut self, mut input: &[u8], on_message: &mut dyn FnMut(ScannedMessage<'_>)) -> Result<(), ScanError> {
        loop {
            if let Some((index, left)) = self.in_payload {
                let Some(stream) = self.streams.get_mut(index) else {
                    self.in_payload = None;
                    continue;
                };
                let take = (left as usize).min(input.len());
                let (taken, rest) = input.split_at(take);
                let already = stream.length.saturating_sub(stream.remaining) as usize;
                if already < HEAD_LEN {
                    let want = (HEAD_LEN - already).min(taken.len());
                    let start = usize::from(stream.head_len);
                    if let (Some(dst), Some(src)) = (stream.head.get_mut(start..start + want), taken.get(..want)) {
                        dst.copy_from_slice(src);
                        stream.head_len += want as u8;
                    }
                }
                // The part of these bytes that falls in the message's last TAIL_LEN.
                let tail_start = (stream.length as usize).saturating_sub(TAIL_LEN);
                let end = already + taken.len();
                if end > tail_start {
                    let from = already.max(tail_start);
                    if let (Some(dst), Some(src)) = (stream.tail.get_mut(from - tail_start..end - tail_start), taken.get(from - already..)) {
                        dst.copy_from_slice(src);
                    }
                }
                input = rest;
                let take = take as u32;
                stream.remaining = stream.remaining.saturating_sub(take);
                let left = left - take.min(left);
                if left > 0 {
                    self.in_payload = Some((index, left));
                    return Ok(());
                }
                self.in_payload = None;
                if stream.remaining == 0 {
                    self.complete(index, on_message)?;
                }
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            // Gather the header byte by byte: at most 18 per chunk of up to chunk_size.
            loop {
                let needed = self.header_needed()?;
                if self.header_len >= needed {
                    break;
                }
                let Some((&byte, rest)) = input.split_first() else {
                    return Ok(());
                };
                if let Some(slot) = self.header.get_mut(self.header_len) {
                    *slot = byte;
                }
                self.header_len += 1;
                input = rest;
            }
            self.apply_header(on_message)?;
        }
    }

    /// Total header length given what has been gathered so far (may grow as bytes arrive).
    fn header_needed(&self) -> Result<usize, ScanError> {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else { return Ok(1) };
        let basic = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic {
            return Ok(basic);
        }
        let fmt = first >> 6;
        let message_header = [11, 7, 3, 0][usize::from(fmt)];
        let fields = basic + message_header;
        if h.len() < fields {
            return Ok(fields);
        }
        let extended = if fmt == 3 {
            let csid = self.csid();
            self.streams.iter().find(|s| s.csid == csid).ok_or(ScanError::NoPreviousHeader(csid))?.extended
        } else {
            h.get(basic..).map_or(0, read_u24) == 0xFF_FFFF
        };
        Ok(fields + if extended { 4 } else { 0 })
    }

    fn csid(&self) -> u32 {
        let h = &self.header;
        match h[0] & 0x3f {
            0 => 64 + u32::from(h[1]),
            1 => 64 + u32::from(h[1]) + 256 * u32::from(h[2]),
            n => u32::from(n),
        }
    }

    fn apply_header(&mut self, on_message: &mut dyn FnMut(ScannedMessage<'_>)) -> Result<(), ScanError> {
        let h = self.header;
        let len = self.header_len;
        self.header_len = 0;
        let fmt = h[0] >> 6;
        let basic = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let csid = self.csid();
        let index = match self.streams.iter().position(|s| s.csid == csid) {
            Some(index) => index,
            None if fmt == 0 => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(ScanError::TooManyChunkStreams);
                }
                self.streams.push(ChunkStream {
                    csid,
                    timestamp: 0,
                    timestamp_field: 0,
                    extended: false,
                    length: 0,
                    type_id: 0,
                    remaining: 0,
                    head: [0; HEAD_LEN],
                    head_len: 0,
                    tail: [0; TAIL_LEN],
                });
                self.streams.len() - 1
            }
            None => return Err(ScanError::NoPreviousHeader(csid)),
        };
        let Some(stream) = self.streams.get_mut(index) else {
            return Err(ScanError::NoPreviousHeader(csid));
        };
        let fields = h.get(basic..len).unwrap_or_default();
        if fmt != 3 {
            if stream.remaining > 0 {
                return Err(ScanError::HeaderChangedMidMessage(csid));
            }
            let short = read_u24(fields);
            let field = if short == 0xFF_FFFF { h.get(len.saturating_sub(4)..len).map_or(0, read_u32) } else { short };
            stream.extended = short == 0xFF_FFFF;
            stream.timestamp_field = field;
            stream.timestamp = if fmt == 0 { field } else { stream.timestamp.wrapping_add(field) };
            if fmt <= 1 {
                stream.length = fields.get(3..).map_or(0, read_u24);
                stream.type_id = fields.get(6).copied().unwrap_or(0);
            }
            stream.remaining = stream.length;
            stream.head_len = 0;
        } else if stream.remaining == 0 {
            stream.timestamp = stream.timestamp.wrapping_add(stream.timestamp_field);
            stream.remaining = stream.length;
            stream.head_len = 0;
        }
        if stream.remaining == 0 {
            // A zero-length message is complete with its header.
            return self.complete(index, on_message);
        }
        let chunk = stream.remaining.min(self.chunk_size);
        self.in_payload = Some((index, chunk));
        Ok(())
    }

    fn complete(&mut self, index: usize, on_message: &mut dyn FnMut(ScannedMessage<'_>)) -> Result<(), ScanError> {
        let Some(stream) = self.streams.get(index) else { return Ok(()) };
        let head = &stream.head[..usize::from(stream.head_len)];
        let tail = stream.tail.get(..(stream.length as usize).min(TAIL_LEN)).unwrap_or_default();
        let (type_id, timestamp, length) = (stream.type_id, stream.timestamp, stream.length);
        // SetChunkSize and Abort change how the next bytes are read.
        let control = match type_id {
            1 | 2 => Some(head.get(..4).map(read_u32).ok_or(ScanError::ShortControlMessage(type_id))?),
            _ => None,
        };
        on_message(ScannedMessage { type_id, timestamp, length, head, tail });
        match (type_id, control) {
            (1, Some(size)) => {
                let size = size & 0x7FFF_FFFF;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(ScanError::BadChunkSize(size));
                }
                self.chunk_size = size;
            }
            (2, Some(csid)) => {
                if let Some(aborted) = self.streams.iter_mut().find(|s| s.csid == csid) {
                    aborted.remaining = 0;
                    if matches!(self.in_payload, Some((i, _)) if self.streams.get(i).is_some_and(|s| s.csid == csid)) {
                        self.in_payload = None;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn read_u24(bytes: &[u8]) -> u32 {
    match bytes {
        [a, b, c, ..] => u32::from_be_bytes([0, *a, *b, *c]),
        _ => 0,
    }
}

/// Big-endian u32 from the first four bytes (0 when shorter).
pub fn read_u32(bytes: &[u8]) -> u32 {
    match bytes {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;
    use rtmp_edge::chunk_io::{ChunkEncoder, MessagePayload};
    use rtmp_edge::time::RtmpTimestamp;

    /// (type id, timestamp, length, head, tail) of each message.
    type Seen = Vec<(u8, u32, u32, Vec<u8>, Vec<u8>)>;

    fn collect(scanner: &mut ChunkScanner, input: &[u8]) -> Result<Seen, ScanError> {
        let mut out = Vec::new();
        scanner.feed(input, &mut |m| out.push((m.type_id, m.timestamp, m.length, m.head.to_vec(), m.tail.to_vec())))?;
        Ok(out)
    }

    fn encoded(messages: &[(u32, u8, u32, usize)], chunk_size: u32) -> Vec<u8> {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for &(csid, type_id, timestamp, length) in messages {
            let data: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let payload = MessagePayload {
                timestamp: RtmpTimestamp::new(timestamp),
                type_id,
                message_stream_id: 1,
                data: Bytes::from(data),
            };
            encoder.encode(csid, &payload, &mut out).unwrap();
        }
        let _ = chunk_size;
        out.to_vec()
    }

    #[test]
    fn follows_compressed_headers_and_multi_chunk_messages() {
        // 300-byte video at 128-byte chunks: three chunks; then fmt 1/2/3 headers from the encoder.
        let wire = encoded(&[(6, 9, 1000, 300), (6, 9, 1040, 300), (4, 8, 1000, 10), (4, 8, 1023, 10), (4, 8, 1046, 10)], 128);
        let mut scanner = ChunkScanner::default();
        let got = collect(&mut scanner, &wire).unwrap();
        let summary: Vec<(u8, u32, u32)> = got.iter().map(|m| (m.0, m.1, m.2)).collect();
        assert_eq!(summary, vec![(9, 1000, 300), (9, 1040, 300), (8, 1000, 10), (8, 1023, 10), (8, 1046, 10)]);
        assert_eq!(got[0].3, (0..16).collect::<Vec<u8>>());
        assert_eq!(got[2].3, (0..10).collect::<Vec<u8>>());
        // The last 12 bytes, in the last of three chunks (bytes are i % 251).
        assert_eq!(got[0].4, (288..300).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        assert_eq!(got[2].4, (0..10).collect::<Vec<u8>>(), "a message shorter than the tail");
    }

    #[test]
    fn a_tail_split_over_chunks_and_reads_is_whole() {
        // 260 bytes at 128-byte chunks: the last 12 span the second and third chunks.
        let wire = encoded(&[(6, 9, 0, 260)], 128);
        let expected: Vec<u8> = (248..260).map(|i| (i % 251) as u8).collect();
        for cut in 1..wire.len() {
            let mut scanner = ChunkScanner::default();
            let mut got = collect(&mut scanner, &wire[..cut]).unwrap();
            got.extend(collect(&mut scanner, &wire[cut..]).unwrap());
            assert_eq!(got[0].4, expected, "cut at {cut}");
        }
    }

    #[test]
    fn applies_set_chunk_size() {
        let mut wire = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x00, 0x00, 0x10, 0x00];
        // fmt 0, csid 6, ts 5, length 5000, type 9, stream 1: two chunks at 4096.
        wire.extend_from_slice(&[0x06, 0, 0, 5, 0, 0x13, 0x88, 9, 1, 0, 0, 0]);
        wire.extend(std::iter::repeat_n(7u8, 4096));
        wire.push(0xC6);
        wire.extend(std::iter::repeat_n(7u8, 904));
        let mut scanner = ChunkScanner::default();
        let got = collect(&mut scanner, &wire).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].2), (1, 4));
        assert_eq!((got[1].0, got[1].1, got[1].2), (9, 5, 5000));
    }

    #[test]
    fn rejects_continuation_without_header() {
        let mut scanner = ChunkScanner::default();
        assert_eq!(collect(&mut scanner, &[0xC6, 1, 2]), Err(ScanError::NoPreviousHeader(6)));
        let mut scanner = ChunkScanner::default();
        let wire = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x80, 0, 0, 0];
        assert_eq!(collect(&mut scanner, &wire), Err(ScanError::BadChunkSize(0)));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_messages(
            lengths in proptest::collection::vec(0usize..1000, 1..20),
            cut in proptest::collection::vec(1usize..700, 1..40),
        ) {
            let messages: Vec<(u32, u8, u32, usize)> = lengths.iter().enumerate()
                .map(|(i, &len)| (4 + (i % 3) as u32, 8 + (i % 2) as u8, (i * 33) as u32, len)).collect();
            let wire = encoded(&messages, 128);
            let mut whole = ChunkScanner::default();
            let expected = collect(&mut whole, &wire).unwrap();
            prop_assert_eq!(expected.len(), messages.len());
            let mut pieces = ChunkScanner::default();
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let mut cuts = cut.iter().cycle();
            while !rest.is_empty() {
                let n = (*cuts.next().unwrap()).min(rest.len());
                got.extend(collect(&mut pieces, &rest[..n]).unwrap());
                rest = &rest[n..];
            }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut scanner = ChunkScanner::default();
            let _ = collect(&mut scanner, &input);
        }
    }
}
