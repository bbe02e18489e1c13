//! Per-stream counters for operators: bytes and frames in, bytes out, and bitrates over the
//! last 5 s from a small fixed ring sampled once a second by the tick. Counting is two
//! additions per frame; nothing allocates and nothing locks.

use std::time::Instant;

use super::media_info::MediaInfo;
use crate::sessions::MediaKind;

/// Samples kept: one a second, so the oldest is 5 s before the newest.
pub const RATE_SAMPLES: usize = 6;

#[derive(Clone, Copy, Debug)]
struct RateSample {
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
}

/// The last [`RATE_SAMPLES`] byte counter readings.
#[derive(Clone, Debug, Default)]
pub struct RateRing {
    samples: [Option<RateSample>; RATE_SAMPLES],
    next: usize,
}

impl RateRing {
    /// Records the counters as they are at `at`, replacing the oldest reading.
    pub fn record(&mut self, at: Instant, bytes_in: u64, bytes_out: u64) {
        if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = Some(RateSample { at, bytes_in, bytes_out });
        }
        self.next = (self.next + 1) % RATE_SAMPLES;
    }

    /// (in, out) in kbit/s between the oldest and the newest reading; zero until there are
    /// two readings.
    pub fn kbps(&self) -> (u64, u64) {
        let mut oldest: Option<RateSample> = None;
        let mut newest: Option<RateSample> = None;
        for sample in self.samples.iter().flatten() {
            if oldest.is_none_or(|o| sample.at < o.at) {
                oldest = Some(*sample);
            }
            if newest.is_none_or(|n| sample.at > n.at) {
                newest = Some(*sample);
            }
        }
        let (Some(oldest), Some(newest)) = (oldest, newest) else { return (0, 0) };
        let millis = newest.at.saturating_duration_since(oldest.at).as_millis() as u64;
        if millis == 0 {
            return (0, 0);
        }
        // bytes * 8 / ms is bits per ms, which is kbit/s.
        let rate = |from: u64, to: u64| to.saturating_sub(from).saturating_mul(8) / millis;
        (rate(oldest.bytes_in, newest.bytes_in), rate(oldest.bytes_out, newest.bytes_out))
    }
}

/// What a stream counts for the API and metrics.
#[derive(Clone, Debug, Default)]
pub struct StreamMeter {
    /// Media bytes received (message bodies), from every source the stream has had.
    pub bytes_in: u64,
    /// Media bytes queued for players (chunk-encoded), join bursts included.
    pub bytes_out: u64,
    /// Audio, video and data messages received.
    pub frames_in: u64,
    /// Readings for bitrates.
    pub rates: RateRing,
    /// Codecs and picture size of the current source.
    pub media: MediaInfo,
}

impl StreamMeter {
    /// A message from the source.
    pub fn count_in(&mut self, kind: MediaKind, body: &[u8]) {
        self.bytes_in = self.bytes_in.saturating_add(body.len() as u64);
        self.frames_in = self.frames_in.saturating_add(1);
        self.media.observe(kind, body);
    }

    /// Bytes queued for a player.
    pub fn count_out(&mut self, bytes: usize) {
        self.bytes_out = self.bytes_out.saturating_add(bytes as u64);
    }

    /// Takes a reading for the bitrates.
    pub fn sample(&mut self, now: Instant) {
        self.rates.record(now, self.bytes_in, self.bytes_out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_rate_spans_the_last_five_seconds_only() {
        let start = Instant::now();
        let mut ring = RateRing::default();
        assert_eq!(ring.kbps(), (0, 0));
        // 1 s at 8,000 kbit/s in, then 10 s at 1,000 kbit/s in (125,000 bytes a second).
        let mut bytes = 0u64;
        ring.record(start, 0, 0);
        bytes += 1_000_000;
        ring.record(start + Duration::from_secs(1), bytes, 0);
        assert_eq!(ring.kbps(), (8_000, 0));
        for second in 2..=11 {
            bytes += 125_000;
            ring.record(start + Duration::from_secs(second), bytes, bytes * 2);
        }
        assert_eq!(ring.kbps(), (1_000, 2_000), "the burst has left the window");
    }
}
