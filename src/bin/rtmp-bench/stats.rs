//! Counters and latency histograms: each worker keeps its own and merges them into the
//! shared copy every 100 ms, so the hot path never takes a lock.

use std::collections::BTreeMap;

/// Sub-buckets per power of two: values are kept to within 1/64 (about 1.6 %).
const SUB_BUCKETS: usize = 64;
/// Powers of two covered above the linear range: microseconds up to 2^40 (12 days).
const OCTAVES: usize = 34;

/// A log-linear histogram of microsecond values: fixed size, mergeable, O(1) record.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; SUB_BUCKETS * (OCTAVES + 1)], total: 0, max: 0, min: u64::MAX }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let octave = 63 - value.leading_zeros() as usize - 5; // >= 1 for value >= 64
    let sub = ((value >> octave) as usize).saturating_sub(SUB_BUCKETS / 2);
    (SUB_BUCKETS + (octave - 1) * (SUB_BUCKETS / 2) + sub).min(SUB_BUCKETS * (OCTAVES + 1) - 1)
}

fn bucket_floor(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let octave = (index - SUB_BUCKETS) / (SUB_BUCKETS / 2) + 1;
    let sub = (index - SUB_BUCKETS) % (SUB_BUCKETS / 2);
    ((SUB_BUCKETS / 2 + sub) as u64) << octave
}

impl Histogram {
    /// Adds one value (microseconds).
    pub fn record(&mut self, value: u64) {
        if let Some(count) = self.counts.get_mut(bucket_of(value)) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(value);
        self.min = self.min.min(value);
    }

    /// Adds everything in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// How many values were at least `threshold` (to the bucket's 1.6 %: values just above
    /// it that share a bucket with values below it are left out).
    pub fn count_above(&self, threshold: u64) -> u64 {
        self.counts.iter().enumerate().filter(|(index, _)| bucket_floor(*index) >= threshold).map(|(_, count)| count).sum()
    }

    /// The value at quantile `q` (0..=1), as the floor of its bucket, capped by the max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_floor(index).clamp(self.min(), self.max);
            }
        }
        self.max
    }
}

/// Everything one worker counted since its last flush (or, merged, since the start).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Connections opened (TCP connect started).
    pub attempts: u64,
    /// Connections whose RTMP connect the server accepted.
    pub connected: u64,
    /// Players whose play the server confirmed (NetStream.Play.Start).
    pub playing: u64,
    /// Connections that ended in an error, by reason.
    pub errors: BTreeMap<String, u64>,
    /// Audio and video messages received.
    pub media_messages: u64,
    /// Bytes received after the handshake.
    pub bytes: u64,
    /// Server-added latency of live messages, microseconds.
    pub latency: Histogram,
    /// Arrival minus the publisher's actual send time, microseconds: the same as
    /// `latency` without the publisher's own lateness.
    pub latency_from_send: Histogram,
    /// Live messages that arrived before their scheduled send time by more than 5 ms
    /// (the server rewrote timestamps: latency cannot be measured).
    pub early_messages: u64,
    /// Churn: connections that reached a keyframe and were closed.
    pub churn_cycles: u64,
    /// Churn: connect start to first keyframe, microseconds.
    pub first_keyframe: Histogram,
    /// Connect start (TCP) to the server's whole handshake (S0+S1+S2) received, microseconds.
    pub handshake: Histogram,
    /// Connect start (TCP) to NetStream.Play.Start, microseconds.
    pub play_start: Histogram,
    /// Sequence-stamped messages received (`sequence.rs`), and what the stamps showed.
    pub sequence: SequenceCounts,
}

/// What players' sequence checks found, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceCounts {
    /// Stamped messages received.
    pub messages: u64,
    /// Messages missing inside a run (the gap did not end at a keyframe).
    pub lost: u64,
    /// Messages that came after a later one, or twice.
    pub reordered: u64,
    /// Skips to a keyframe (frames a relay dropped, or a re-established pull).
    pub resumed: u64,
    /// Changes to a later publisher.
    pub new_publisher: u64,
}

impl SequenceCounts {
    /// Counts one verdict.
    pub fn count(&mut self, verdict: crate::sequence::Verdict) {
        use crate::sequence::Verdict;
        self.messages += 1;
        match verdict {
            Verdict::InOrder => {}
            Verdict::Resumed => self.resumed += 1,
            Verdict::Lost(missing) => self.lost += missing,
            Verdict::Reordered => self.reordered += 1,
            Verdict::NewPublisher => self.new_publisher += 1,
        }
    }

    fn merge(&mut self, other: &SequenceCounts) {
        self.messages += other.messages;
        self.lost += other.lost;
        self.reordered += other.reordered;
        self.resumed += other.resumed;
        self.new_publisher += other.new_publisher;
    }
}

impl Counters {
    /// Counts one failed connection.
    pub fn fail(&mut self, reason: impl Into<String>) {
        *self.errors.entry(reason.into()).or_insert(0) += 1;
    }

    /// Total failed connections.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Counters) {
        self.attempts += other.attempts;
        self.connected += other.connected;
        self.playing += other.playing;
        for (reason, count) in &other.errors {
            *self.errors.entry(reason.clone()).or_insert(0) += count;
        }
        self.media_messages += other.media_messages;
        self.bytes += other.bytes;
        self.latency.merge(&other.latency);
        self.latency_from_send.merge(&other.latency_from_send);
        self.early_messages += other.early_messages;
        self.churn_cycles += other.churn_cycles;
        self.first_keyframe.merge(&other.first_keyframe);
        self.handshake.merge(&other.handshake);
        self.play_start.merge(&other.play_start);
        self.sequence.merge(&other.sequence);
    }
}

/// Point-in-time figures a worker reports with each flush.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Connections open now.
    pub open: u64,
    /// Players that have played and are open now.
    pub playing: u64,
    /// Players more than a second behind real time now.
    pub behind: u64,
    /// Fewest audio/video messages any finished-or-open player received.
    pub min_player_messages: u64,
    /// Most audio/video messages any player received.
    pub max_player_messages: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut histogram = Histogram::default();
        for value in 1..=100_000u64 {
            histogram.record(value);
        }
        for (q, exact) in [(0.5, 50_000u64), (0.99, 99_000), (0.999, 99_900)] {
            let got = histogram.quantile(q);
            assert!(got <= exact && got as f64 >= exact as f64 * 0.98, "q{q}: {got} vs {exact}");
        }
        assert_eq!(histogram.quantile(1.0), 100_000);
        assert_eq!(histogram.max(), 100_000);
        assert_eq!(histogram.count(), 100_000);
    }

    #[test]
    fn counts_above_a_threshold() {
        let mut histogram = Histogram::default();
        for value in [5_000, 900_000, 1_048_576, 3_000_000, 7_000_000] {
            histogram.record(value);
        }
        assert_eq!(histogram.count_above(1_048_576), 3, "1 s and more (a bucket floor)");
        assert_eq!(histogram.count_above(0), 5);
        assert_eq!(histogram.count_above(10_000_000), 0);
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(3);
        b.record(40);
        b.record(u64::MAX);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0), 3);
        assert_eq!(a.quantile(0.5), 40);
        assert_eq!(a.min(), 3);
        assert_eq!(a.max(), u64::MAX);
    }
}
