//! Sequence stamps, for telling lost and reordered messages from what a relay may drop.
//!
//! A publisher run with `--sequence` ends each audio and video message it sends (sequence
//! headers and metadata aside, which a relay repeats to late joiners) with [`STAMP_LEN`]
//! bytes: `rtSQ`, then a big-endian u32 generation (the publisher's start time in 10 ms
//! units, so a restarted publisher has a later one) and a big-endian u32 counting its
//! messages from 0. The bytes are appended after the codec data, so a relay (which reads
//! only the tag header) passes them through; a decoder would not accept them: stamped
//! media is for load generators, not for players that decode.
//!
//! Every player reads the stamp of each message (the chunk scanner keeps the last bytes
//! of each) and checks it against the previous one:
//! - the next counter of the same generation: in order;
//! - a later counter on a video keyframe: the relay resumed the stream at a keyframe (a
//!   slow player's frames were dropped, or a pull was re-established): a resume;
//! - a later counter on anything else: messages were lost (the gap is counted);
//! - an earlier or equal counter, or an earlier generation: reordered (or repeated);
//! - a later generation: a new publisher.

use bytes::{Bytes, BytesMut};

/// Bytes a stamp adds to a message.
pub const STAMP_LEN: usize = 12;
const MAGIC: [u8; 4] = *b"rtSQ";

/// `data` with the stamp for (`generation`, `counter`) after it.
pub fn stamp(data: &[u8], generation: u32, counter: u32) -> Bytes {
    let mut stamped = BytesMut::with_capacity(data.len() + STAMP_LEN);
    stamped.extend_from_slice(data);
    stamped.extend_from_slice(&MAGIC);
    stamped.extend_from_slice(&generation.to_be_bytes());
    stamped.extend_from_slice(&counter.to_be_bytes());
    stamped.freeze()
}

/// The (generation, counter) of a message whose last bytes are `tail`, when stamped.
pub fn read_stamp(tail: &[u8]) -> Option<(u32, u32)> {
    match tail {
        [b'r', b't', b'S', b'Q', g0, g1, g2, g3, c0, c1, c2, c3] => {
            Some((u32::from_be_bytes([*g0, *g1, *g2, *g3]), u32::from_be_bytes([*c0, *c1, *c2, *c3])))
        }
        _ => None,
    }
}

/// A generation for a publisher starting now: 10 ms units of Unix time.
pub fn generation_now() -> u32 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (since_epoch.as_millis() / 10) as u32
}

/// What one stamped message was, next to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The first stamped message this player got, or the next in order.
    InOrder,
    /// Messages skipped up to a video keyframe.
    Resumed,
    /// This many messages are missing before this one (not a keyframe).
    Lost(u64),
    /// Earlier than (or the same as) one already received.
    Reordered,
    /// The first message of a later publisher.
    NewPublisher,
}

/// One player's view of the stamps.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequenceCheck {
    /// The latest (generation, counter) received.
    last: Option<(u32, u32)>,
}

impl SequenceCheck {
    /// Judges the message stamped (`generation`, `counter`).
    pub fn check(&mut self, generation: u32, counter: u32, keyframe: bool) -> Verdict {
        let Some((last_generation, last_counter)) = self.last else {
            self.last = Some((generation, counter));
            return Verdict::InOrder;
        };
        // Generations compare as wrapping time, so a wrap does not look like going back.
        let generation_step = generation.wrapping_sub(last_generation) as i32;
        let verdict = match generation_step {
            step if step < 0 => Verdict::Reordered,
            step if step > 0 => Verdict::NewPublisher,
            _ if counter <= last_counter => Verdict::Reordered,
            _ if counter == last_counter + 1 => Verdict::InOrder,
            _ if keyframe => Verdict::Resumed,
            _ => Verdict::Lost(u64::from(counter - last_counter - 1)),
        };
        if verdict != Verdict::Reordered {
            self.last = Some((generation, counter));
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_back_and_other_tails_are_not_stamps() {
        let stamped = stamp(&[0x27, 1, 0, 0, 0, 9, 9], 0x0102_0304, 7);
        assert_eq!(stamped.len(), 7 + STAMP_LEN);
        assert_eq!(&stamped[7..], b"rtSQ\x01\x02\x03\x04\x00\x00\x00\x07");
        assert_eq!(read_stamp(&stamped[stamped.len() - STAMP_LEN..]), Some((0x0102_0304, 7)));
        assert_eq!(read_stamp(&[0; STAMP_LEN]), None);
        assert_eq!(read_stamp(b"rtSQ\x00\x00"), None, "a message shorter than a stamp");
    }

    #[test]
    fn each_kind_of_step_is_told_apart() {
        let mut check = SequenceCheck::default();
        assert_eq!(check.check(100, 5, false), Verdict::InOrder, "a late joiner starts anywhere");
        assert_eq!(check.check(100, 6, false), Verdict::InOrder);
        assert_eq!(check.check(100, 9, false), Verdict::Lost(2));
        assert_eq!(check.check(100, 15, true), Verdict::Resumed, "skipped to a keyframe");
        assert_eq!(check.check(100, 15, false), Verdict::Reordered, "a repeat");
        assert_eq!(check.check(100, 12, true), Verdict::Reordered);
        assert_eq!(check.check(100, 16, false), Verdict::InOrder, "a reordered message does not move the mark");
        assert_eq!(check.check(99, 17, false), Verdict::Reordered, "an earlier publisher");
        assert_eq!(check.check(130, 0, false), Verdict::NewPublisher);
        assert_eq!(check.check(130, 1, false), Verdict::InOrder);
        let mut wrapping = SequenceCheck::default();
        wrapping.check(u32::MAX, 3, false);
        assert_eq!(wrapping.check(2, 0, false), Verdict::NewPublisher, "generations wrap");
    }
}
