//! State the main thread, the publisher and the player loops share: atomics for what
//! changes per message, mutexes for what is merged a few times per second.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::stats::{Counters, Gauges, Histogram};

/// `publish_start_us` before the publisher starts.
pub const NOT_STARTED: u64 = u64::MAX;

/// Slots in the send-time ring: several seconds of audio and video at any frame rate.
const SENT_SLOTS: usize = 4096;

/// What one player loop publishes to the main thread.
#[derive(Default)]
pub struct WorkerSlot {
    /// How many players this loop should open (play, ramp) or keep open (churn).
    pub target: AtomicU64,
    /// Counters since the main thread last took them.
    pub counters: Mutex<Counters>,
    /// Gauges as of the last flush.
    pub gauges: Mutex<Gauges>,
}

/// Everything shared between threads.
pub struct Shared {
    /// Common time origin, so instants can live in atomics as microseconds.
    pub base: Instant,
    /// Players loops exit when set.
    pub stop: AtomicBool,
    /// The publisher stops sending when set.
    pub stop_publisher: AtomicBool,
    /// When the publisher sent timestamp 0, microseconds after `base`.
    pub publish_start_us: AtomicU64,
    /// Timestamp of the latest audio/video message sent.
    pub publisher_timestamp: AtomicU32,
    /// Timestamp of the latest video keyframe sent: where an HTTP-FLV player that joins now
    /// starts its timestamps at 0.
    pub last_keyframe_timestamp: AtomicU32,
    /// Whether the publisher is sending now.
    pub publisher_live: AtomicBool,
    /// Set when the publisher thread has ended.
    pub publisher_done: AtomicBool,
    /// Audio and video messages sent.
    pub published_media: AtomicU64,
    /// Send time minus scheduled time, microseconds.
    pub publisher_lag: Mutex<Histogram>,
    /// Why the publisher stopped, if it failed.
    pub publisher_error: Mutex<Option<String>>,
    /// One slot per player loop.
    pub workers: Vec<WorkerSlot>,
    /// Ring of (timestamp, send time): when the publisher actually wrote each message,
    /// so players can also measure latency from the real send, net of publisher lag.
    sent_timestamps: Vec<AtomicU32>,
    sent_at_us: Vec<AtomicU64>,
}

impl Shared {
    /// Shared state for `threads` player loops.
    pub fn new(threads: usize) -> Shared {
        Shared {
            base: Instant::now(),
            stop: AtomicBool::new(false),
            stop_publisher: AtomicBool::new(false),
            publish_start_us: AtomicU64::new(NOT_STARTED),
            publisher_timestamp: AtomicU32::new(0),
            last_keyframe_timestamp: AtomicU32::new(0),
            publisher_live: AtomicBool::new(false),
            publisher_done: AtomicBool::new(false),
            published_media: AtomicU64::new(0),
            publisher_lag: Mutex::new(Histogram::default()),
            publisher_error: Mutex::new(None),
            workers: (0..threads).map(|_| WorkerSlot::default()).collect(),
            sent_timestamps: (0..SENT_SLOTS).map(|_| AtomicU32::new(u32::MAX)).collect(),
            sent_at_us: (0..SENT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// `at` as microseconds after `base`.
    pub fn micros_since_base(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// Records that the message with `timestamp` left the publisher at `sent_us`.
    pub fn record_sent(&self, timestamp: u32, sent_us: u64) {
        let slot = timestamp as usize % SENT_SLOTS;
        if let (Some(ts), Some(at)) = (self.sent_timestamps.get(slot), self.sent_at_us.get(slot)) {
            // Audio and video may share a millisecond: keep the later send, the one a player
            // would wait for.
            if ts.load(Ordering::Acquire) == timestamp {
                at.fetch_max(sent_us, Ordering::AcqRel);
            } else {
                ts.store(u32::MAX, Ordering::Release);
                at.store(sent_us, Ordering::Release);
                ts.store(timestamp, Ordering::Release);
            }
        }
    }

    /// When the message with `timestamp` was sent, if the ring still has it.
    pub fn sent_at(&self, timestamp: u32) -> Option<u64> {
        let slot = timestamp as usize % SENT_SLOTS;
        let (ts, at) = (self.sent_timestamps.get(slot)?, self.sent_at_us.get(slot)?);
        if ts.load(Ordering::Acquire) != timestamp {
            return None;
        }
        let sent = at.load(Ordering::Acquire);
        (ts.load(Ordering::Acquire) == timestamp).then_some(sent)
    }

    /// Splits `total` players across the loops.
    pub fn set_target(&self, total: u64) {
        let threads = self.workers.len().max(1) as u64;
        for (index, slot) in self.workers.iter().enumerate() {
            let share = total / threads + u64::from((index as u64) < total % threads);
            slot.target.store(share, Ordering::SeqCst);
        }
    }

    /// Takes every loop's counters since the last call, merged.
    pub fn take_counters(&self) -> Counters {
        let mut merged = Counters::default();
        for slot in &self.workers {
            if let Ok(mut counters) = slot.counters.lock() {
                merged.merge(&counters);
                *counters = Counters::default();
            }
        }
        merged
    }

    /// Every loop's gauges, summed (min/max combined).
    pub fn gauges(&self) -> Gauges {
        let mut total = Gauges { min_player_messages: u64::MAX, ..Gauges::default() };
        for slot in &self.workers {
            if let Ok(gauges) = slot.gauges.lock() {
                total.open += gauges.open;
                total.playing += gauges.playing;
                total.behind += gauges.behind;
                if gauges.open > 0 {
                    total.min_player_messages = total.min_player_messages.min(gauges.min_player_messages);
                    total.max_player_messages = total.max_player_messages.max(gauges.max_player_messages);
                }
            }
        }
        if total.min_player_messages == u64::MAX {
            total.min_player_messages = 0;
        }
        total
    }
}
