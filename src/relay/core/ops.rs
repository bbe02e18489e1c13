//! What the core keeps for operators beyond [`Stats`](crate::relay::Stats): counts by
//! reason, the bytes of closed connections, process figures the driver passes in, and when
//! the next rate sample and summary line are due. Plain integers, touched on accept, close
//! and the tick, never per frame.

use std::time::{Duration, Instant};

use super::ids::ConnId;

/// How often stream byte counters are sampled for bitrates.
pub const RATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the summary line is logged.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Figures about the process that only the driver can read (from `/proc`), passed in with
/// [`RelayCore::set_process_stats`](super::RelayCore::set_process_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_memory_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft RLIMIT_NOFILE, when known.
    pub max_fds: Option<u64>,
}

/// Counts by a small, fixed set of labels (close reasons, refusals, status codes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelCounts<L> {
    counts: Vec<(L, u64)>,
}

impl<L: Copy + PartialEq + Ord> LabelCounts<L> {
    /// Counts with these labels present at zero, so their series exist from the start.
    pub fn with_labels(labels: &[L]) -> Self {
        LabelCounts { counts: labels.iter().map(|label| (*label, 0)).collect() }
    }

    /// Adds one under `label`.
    pub fn add(&mut self, label: L) {
        match self.counts.iter_mut().find(|(existing, _)| *existing == label) {
            Some((_, count)) => *count += 1,
            None => {
                self.counts.push((label, 1));
                self.counts.sort_by_key(|(label, _)| *label);
            }
        }
    }

    /// Every label with its count, sorted by label.
    pub fn to_vec(&self) -> Vec<(L, u64)> {
        self.counts.clone()
    }

    /// The count under `label`.
    #[cfg(test)]
    pub fn get(&self, label: L) -> u64 {
        self.counts.iter().find(|(existing, _)| *existing == label).map_or(0, |(_, count)| *count)
    }
}

/// The core's operator-facing state.
#[derive(Debug)]
pub struct OpsState {
    /// Bytes read from connections that have closed.
    pub closed_bytes_in: u64,
    /// Bytes written to connections that have closed.
    pub closed_bytes_out: u64,
    /// Closes by [`CloseReason::label`](super::CloseReason::label).
    pub closes: LabelCounts<&'static str>,
    /// Closes that were protocol errors, by label.
    pub protocol_errors: LabelCounts<&'static str>,
    /// Refusals at accept, by label.
    pub refusals: LabelCounts<&'static str>,
    /// HTTP responses by status.
    pub http_responses: LabelCounts<u16>,
    /// Reloads by result (`applied`, `refused`).
    pub reloads: LabelCounts<&'static str>,
    /// Upstream connections lost while their link still wanted them.
    pub upstream_reconnects: u64,
    /// What the driver last read about the process.
    pub process: Option<ProcessStats>,
    /// HTTP connections waiting for the reload the driver was asked for.
    pub reload_waiters: Vec<ConnId>,
    /// When stream byte counters are sampled next.
    pub next_rate_sample: Instant,
    /// When the summary line is logged next.
    pub next_summary: Instant,
    /// Byte totals at the last summary line, for its "in the last minute" figures.
    pub summary_totals: (u64, u64),
    /// The last summary line logged.
    pub last_summary: String,
    /// Closed connections by the role they had (`RelayCore::role_label`).
    pub ended_by_role: LabelCounts<&'static str>,
}

impl OpsState {
    /// Nothing counted yet; the first sample and summary are due one interval after `now`.
    pub fn new(now: Instant) -> OpsState {
        OpsState {
            closed_bytes_in: 0,
            closed_bytes_out: 0,
            closes: LabelCounts::default(),
            protocol_errors: LabelCounts::default(),
            refusals: LabelCounts::with_labels(&[
                "shutting_down",
                "too_many_connections",
                "too_many_from_address",
                "too_many_http_connections",
            ]),
            http_responses: LabelCounts::default(),
            reloads: LabelCounts::with_labels(&["applied", "refused"]),
            upstream_reconnects: 0,
            process: None,
            reload_waiters: Vec::new(),
            next_rate_sample: now + RATE_SAMPLE_INTERVAL,
            next_summary: now + SUMMARY_INTERVAL,
            summary_totals: (0, 0),
            last_summary: String::new(),
            ended_by_role: LabelCounts::with_labels(&super::api::ROLES),
        }
    }
}

impl OpsState {
    /// Closed connections between workers are counted by role from the start too.
    pub fn add_sibling_roles(&mut self) {
        self.ended_by_role = LabelCounts::with_labels(&super::api::ROLES_WITH_SIBLINGS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_counts_stay_sorted_and_keep_preset_zeros() {
        let mut counts = LabelCounts::with_labels(&["b"]);
        counts.add("c");
        counts.add("a");
        counts.add("c");
        assert_eq!(counts.to_vec(), vec![("a", 1), ("b", 0), ("c", 2)]);
        assert_eq!(counts.get("c"), 2);
        assert_eq!(counts.get("z"), 0);
    }
}
