//! A connection's queue of bytes to write: shared frames by reference, flushed with writev.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

use crate::time::RtmpTimestamp;

/// Most slices handed to one writev call (well under Linux's IOV_MAX of 1024).
const MAX_SLICES_PER_WRITE: usize = 64;

#[derive(Debug)]
struct QueuedBytes {
    bytes: Bytes,
    /// Media timestamp of the frame these bytes carry, for measuring the queue in ms.
    media_timestamp: Option<RtmpTimestamp>,
}

/// Bytes waiting to go to one peer, in order.
///
/// Entries are `Bytes` handles: a frame shared by a thousand players is queued a thousand
/// times without being copied. A partial write advances the front entry in place, so no
/// byte is sent twice or skipped.
#[derive(Debug, Default)]
pub struct OutQueue {
    entries: VecDeque<QueuedBytes>,
    queued_bytes: usize,
    newest_media: Option<RtmpTimestamp>,
}

/// What one flush achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Everything queued was written.
    Drained,
    /// The socket would block; wait for the next writable event.
    WouldBlock,
}

impl OutQueue {
    /// Queues control or session bytes (no media timestamp).
    pub fn push(&mut self, bytes: Bytes) {
        self.push_entry(bytes, None);
    }

    /// Queues the bytes of a media frame with its timestamp.
    pub fn push_media(&mut self, bytes: Bytes, timestamp: RtmpTimestamp) {
        self.newest_media = Some(timestamp);
        self.push_entry(bytes, Some(timestamp));
    }

    fn push_entry(&mut self, bytes: Bytes, media_timestamp: Option<RtmpTimestamp>) {
        if bytes.is_empty() {
            return;
        }
        self.queued_bytes += bytes.len();
        self.entries.push_back(QueuedBytes { bytes, media_timestamp });
    }

    /// Bytes waiting.
    pub fn len_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How much media (ms) sits in the queue: newest queued frame minus the oldest unsent.
    pub fn media_span_ms(&self) -> u32 {
        let oldest = self.entries.iter().find_map(|entry| entry.media_timestamp);
        match (oldest, self.newest_media) {
            (Some(oldest), Some(newest)) if newest >= oldest => newest - oldest,
            _ => 0,
        }
    }

    /// Writes as much as the socket takes, up to [`MAX_SLICES_PER_WRITE`] slices per call.
    pub fn flush(&mut self, writer: &mut impl Write) -> io::Result<(FlushOutcome, usize)> {
        let mut written_total = 0;
        while !self.entries.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES_PER_WRITE];
            let mut count = 0;
            for (slot, entry) in slices.iter_mut().zip(self.entries.iter()) {
                *slot = IoSlice::new(&entry.bytes);
                count += 1;
            }
            let written = match writer.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")),
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((FlushOutcome::WouldBlock, written_total))
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            written_total += written;
            self.consume(written);
        }
        Ok((FlushOutcome::Drained, written_total))
    }

    fn consume(&mut self, mut written: usize) {
        self.queued_bytes = self.queued_bytes.saturating_sub(written);
        while written > 0 {
            let Some(front) = self.entries.front_mut() else {
                return;
            };
            if written >= front.bytes.len() {
                written -= front.bytes.len();
                self.entries.pop_front();
            } else {
                front.bytes.advance(written);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, then blocks after `calls` calls.
    struct TrickleWriter {
        taken: Vec<u8>,
        limit: usize,
        calls_left: usize,
    }

    impl Write for TrickleWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let mut taken = 0;
            for buf in bufs {
                let take = buf.len().min(self.limit - taken);
                self.taken.extend_from_slice(&buf[..take]);
                taken += take;
                if taken == self.limit {
                    break;
                }
            }
            Ok(taken)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_at_the_exact_byte() {
        let mut queue = OutQueue::default();
        queue.push(Bytes::from_static(b"hello "));
        queue.push_media(Bytes::from_static(b"shared frame "), RtmpTimestamp::new(40));
        queue.push(Bytes::from_static(b"world"));
        let mut writer = TrickleWriter { taken: Vec::new(), limit: 4, calls_left: 2 };
        assert_eq!(queue.flush(&mut writer).unwrap(), (FlushOutcome::WouldBlock, 8));
        assert_eq!(queue.len_bytes(), 16);
        writer.calls_left = 100;
        assert_eq!(queue.flush(&mut writer).unwrap(), (FlushOutcome::Drained, 16));
        assert_eq!(writer.taken, b"hello shared frame world");
        assert!(queue.is_empty());
    }

    #[test]
    fn media_span_counts_from_the_oldest_unsent_frame() {
        let mut queue = OutQueue::default();
        queue.push(Bytes::from_static(b"ctl"));
        queue.push_media(Bytes::from_static(b"a"), RtmpTimestamp::new(1000));
        queue.push_media(Bytes::from_static(b"b"), RtmpTimestamp::new(1500));
        queue.push_media(Bytes::from_static(b"c"), RtmpTimestamp::new(4000));
        assert_eq!(queue.media_span_ms(), 3000);
        let mut writer = TrickleWriter { taken: Vec::new(), limit: 4, calls_left: 1 };
        queue.flush(&mut writer).unwrap();
        assert_eq!(queue.media_span_ms(), 2500);
    }
}
