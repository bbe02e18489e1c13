//! A connection's queue of bytes to send: shared frames by reference, handed out as slices.
//!
//! The queue is measured the way it costs the relay and the player: in bytes including each
//! entry's bookkeeping, in entries, and by how long its oldest unsent byte has waited on the
//! wall clock. Media time says nothing here: an encoder's timestamps may jump by seconds
//! while the player reads at full speed.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

/// What one queued entry costs beyond its bytes: the entry itself and the shared buffer's
/// header, so a flood of tiny messages is measured as the memory it really takes.
pub const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    queued_at: Instant,
    /// Written by the connection's own session (see [`OutQueue::push_reply`]).
    reply: bool,
}

/// Bytes waiting to go to one peer, in order.
///
/// Entries are `Bytes` handles: a frame shared by a thousand players is queued a thousand
/// times without being copied. A partial write advances the front entry in place, so no
/// byte is sent twice or skipped.
#[derive(Debug, Default)]
pub struct OutQueue {
    entries: VecDeque<Entry>,
    payload_bytes: usize,
    reply_bytes: usize,
}

impl OutQueue {
    /// Queues bytes (nothing for an empty buffer).
    pub fn push(&mut self, bytes: Bytes, now: Instant) {
        self.push_entry(bytes, now, false);
    }

    /// Queues bytes the connection's own session wrote: answers to its commands, status
    /// messages, pings and acks. They are counted apart ([`reply_bytes`](Self::reply_bytes)):
    /// unlike shared frames, each costs its full size for this one connection, and a client
    /// that sends commands without reading the answers decides how many there are.
    pub fn push_reply(&mut self, bytes: Bytes, now: Instant) {
        self.push_entry(bytes, now, true);
    }

    fn push_entry(&mut self, bytes: Bytes, now: Instant, reply: bool) {
        if bytes.is_empty() {
            return;
        }
        self.payload_bytes += bytes.len();
        if reply {
            self.reply_bytes += bytes.len();
        }
        self.entries.push_back(Entry { bytes, queued_at: now, reply });
    }

    /// Unsent bytes queued with [`push_reply`](Self::push_reply).
    pub fn reply_bytes(&self) -> usize {
        self.reply_bytes
    }

    /// Unsent bytes, without overhead.
    #[cfg(test)]
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// What the queue costs: its bytes plus [`ENTRY_OVERHEAD`] per entry.
    pub fn cost(&self) -> usize {
        self.payload_bytes.saturating_add(self.entries.len().saturating_mul(ENTRY_OVERHEAD))
    }

    /// Entries queued.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How long the oldest unsent byte has waited (zero when empty).
    pub fn oldest_wait(&self, now: Instant) -> Duration {
        self.entries.front().map_or(Duration::ZERO, |entry| now.saturating_duration_since(entry.queued_at))
    }

    /// Fills `slices` from the front of the queue; returns how many it filled.
    pub fn fill_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slot, entry) in slices.iter_mut().zip(self.entries.iter()) {
            *slot = IoSlice::new(&entry.bytes);
            count += 1;
        }
        count
    }

    /// Drops `written` bytes from the front (what a write took).
    pub fn consume(&mut self, mut written: usize) {
        self.payload_bytes = self.payload_bytes.saturating_sub(written);
        while written > 0 {
            let Some(front) = self.entries.front_mut() else {
                return;
            };
            let taken = written.min(front.bytes.len());
            if front.reply {
                self.reply_bytes = self.reply_bytes.saturating_sub(taken);
            }
            written -= taken;
            if taken == front.bytes.len() {
                self.entries.pop_front();
            } else {
                front.bytes.advance(taken);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut OutQueue, take_per_write: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); 4];
            let count = queue.fill_slices(&mut slices);
            let mut taken = 0;
            for slice in &slices[..count] {
                let take = slice.len().min(take_per_write - taken);
                out.extend_from_slice(&slice[..take]);
                taken += take;
                if taken == take_per_write {
                    break;
                }
            }
            queue.consume(taken);
        }
        out
    }

    #[test]
    fn partial_writes_resume_at_the_exact_byte() {
        let now = Instant::now();
        let mut queue = OutQueue::default();
        queue.push(Bytes::from_static(b"hello "), now);
        queue.push(Bytes::from_static(b"shared frame "), now);
        queue.push(Bytes::new(), now);
        queue.push(Bytes::from_static(b"world"), now);
        assert_eq!(queue.entries(), 3);
        assert_eq!(queue.payload_bytes(), 24);
        assert_eq!(queue.cost(), 24 + 3 * ENTRY_OVERHEAD);
        assert_eq!(drain(&mut queue, 5), b"hello shared frame world");
        assert_eq!((queue.payload_bytes(), queue.cost()), (0, 0));
    }

    #[test]
    fn the_wait_is_the_oldest_unsent_entrys_wall_clock_age() {
        let start = Instant::now();
        let mut queue = OutQueue::default();
        assert_eq!(queue.oldest_wait(start), Duration::ZERO);
        queue.push(Bytes::from_static(b"ab"), start);
        queue.push(Bytes::from_static(b"cd"), start + Duration::from_millis(300));
        let later = start + Duration::from_millis(500);
        assert_eq!(queue.oldest_wait(later), Duration::from_millis(500));
        queue.consume(1);
        assert_eq!(queue.oldest_wait(later), Duration::from_millis(500), "half-sent entry still waits");
        queue.consume(1);
        assert_eq!(queue.oldest_wait(later), Duration::from_millis(200));
    }

    #[test]
    fn replies_are_counted_apart_through_partial_writes() {
        let now = Instant::now();
        let mut queue = OutQueue::default();
        queue.push(Bytes::from_static(b"frame"), now);
        queue.push_reply(Bytes::from_static(b"reply"), now);
        queue.push(Bytes::from_static(b"frame"), now);
        assert_eq!((queue.payload_bytes(), queue.reply_bytes()), (15, 5));
        queue.consume(7);
        assert_eq!(queue.reply_bytes(), 3, "two bytes of the reply were written");
        assert_eq!(drain(&mut queue, 2), b"plyframe");
        assert_eq!(queue.reply_bytes(), 0);
    }

    #[test]
    fn a_flood_of_tiny_entries_costs_its_overhead() {
        let now = Instant::now();
        let mut queue = OutQueue::default();
        for _ in 0..1000 {
            queue.push(Bytes::from_static(b"x"), now);
        }
        assert_eq!(queue.payload_bytes(), 1000);
        assert_eq!(queue.cost(), 1000 * (1 + ENTRY_OVERHEAD));
    }
}
