//! Counters the relay keeps, readable from other threads (tests, the API and metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated by the relay thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub(super) connections_accepted: AtomicU64,
    pub(super) connections_refused: AtomicU64,
    pub(super) connections_open: AtomicU64,
    pub(super) protocol_errors: AtomicU64,
    pub(super) frames_dropped: AtomicU64,
    pub(super) slow_players_disconnected: AtomicU64,
    pub(super) handshake_timeouts: AtomicU64,
    pub(super) players: AtomicU64,
    pub(super) publishers: AtomicU64,
    pub(super) pulls: AtomicU64,
    pub(super) pulls_live: AtomicU64,
    pub(super) media_ignored: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused by --max-connections or --max-connections-per-ip.
    pub connections_refused: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections closed for breaking the protocol (bad handshake, bad chunks, limits).
    pub protocol_errors: u64,
    /// Frames not sent to slow players (soft queue limit).
    pub frames_dropped: u64,
    /// Players disconnected at the hard queue limit.
    pub slow_players_disconnected: u64,
    /// Connections closed for not finishing handshake and connect in time.
    pub handshake_timeouts: u64,
    /// Play subscriptions open now (a connection playing two streams counts twice).
    pub players: u64,
    /// Streams with a local publisher now.
    pub publishers: u64,
    /// Edge mode: upstream pulls open now (connected or retrying).
    pub pulls: u64,
    /// Edge mode: pulls whose upstream is playing now.
    pub pulls_live: u64,
    /// Media messages not relayed because they were empty or too small to be media.
    pub media_ignored: u64,
}

impl StatsSnapshot {
    /// Adds another worker's counters to these.
    pub fn add(&mut self, other: &StatsSnapshot) {
        let pairs = [
            (&mut self.connections_accepted, other.connections_accepted),
            (&mut self.connections_refused, other.connections_refused),
            (&mut self.connections_open, other.connections_open),
            (&mut self.protocol_errors, other.protocol_errors),
            (&mut self.frames_dropped, other.frames_dropped),
            (&mut self.slow_players_disconnected, other.slow_players_disconnected),
            (&mut self.handshake_timeouts, other.handshake_timeouts),
            (&mut self.players, other.players),
            (&mut self.publishers, other.publishers),
            (&mut self.pulls, other.pulls),
            (&mut self.pulls_live, other.pulls_live),
            (&mut self.media_ignored, other.media_ignored),
        ];
        for (sum, value) in pairs {
            *sum = sum.saturating_add(value);
        }
    }
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: read(&self.connections_accepted),
            connections_refused: read(&self.connections_refused),
            connections_open: read(&self.connections_open),
            protocol_errors: read(&self.protocol_errors),
            frames_dropped: read(&self.frames_dropped),
            slow_players_disconnected: read(&self.slow_players_disconnected),
            handshake_timeouts: read(&self.handshake_timeouts),
            players: read(&self.players),
            publishers: read(&self.publishers),
            pulls: read(&self.pulls),
            pulls_live: read(&self.pulls_live),
            media_ignored: read(&self.media_ignored),
        }
    }
}
