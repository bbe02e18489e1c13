//! The relay's policy as a sans-IO state machine: streams, fan-out, slow players,
//! admission, edge links and backoff, timers.
//!
//! [`RelayCore`] never touches a socket and never reads the clock. The driver feeds it what
//! happened (a connection accepted, bytes read, bytes written, a connection closed, a host
//! resolved, an outgoing connect done) with the current time, then drains [`Action`]s
//! until there are none, and sleeps until [`RelayCore::poll_timeout`]. Bytes to send stay
//! in the core's queues; the driver borrows them as slices ([`RelayCore::write_slices`])
//! and reports what the socket took ([`RelayCore::handle_written`]), so frames shared by
//! thousands of players are never copied.
//!
//! ```
//! use std::time::Instant;
//! use rtmp_edge::relay::{Action, Config, ListenerKind, RelayCore};
//!
//! let now = Instant::now();
//! let mut core = RelayCore::new(Config::default(), 7, now);
//! let id = core.accept("127.0.0.1:50000".parse().unwrap(), ListenerKind::Rtmp, now).unwrap();
//! let mut c0_c1 = vec![3u8];
//! c0_c1.extend_from_slice(&[0u8; 1536]);
//! core.handle_input(id, &c0_c1, now);
//! assert_eq!(core.poll_action(), Some(Action::Write(id)));
//! let mut slices = [std::io::IoSlice::new(&[]); 8];
//! let count = core.write_slices(id, &mut slices);
//! let queued: usize = slices[..count].iter().map(|slice| slice.len()).sum();
//! assert_eq!(queued, 1 + 1536 + 1536); // S0, S1, S2
//! core.handle_written(id, queued, now);
//! assert!(!core.has_queued(id));
//! ```

mod accept;
mod access;
mod api;
mod close;
mod conn;
mod edge;
mod fanout;
mod flv_egress;
mod frame;
mod http_conn;
mod http_play;
mod ids;
mod input;
mod links;
mod media_info;
mod ops;
mod out_queue;
mod peer_text;
mod play;
mod proxy_header;
mod publish;
mod rates;
mod refusal;
mod siblings;
mod stream;
mod timers;
mod upstream_session;
mod worker_api;

#[cfg(test)]
mod tests;

pub use access::HookId;
pub use close::CloseReason;
pub use http_play::MAX_PINGS_PER_SECOND;
pub use frame::SharedFrame;
pub use ids::ConnId;
pub use links::LinkPurpose;
pub use ops::ProcessStats;
pub use out_queue::ENTRY_OVERHEAD;
pub use refusal::{Refusal, RefusalLog};
pub use siblings::{SiblingAnswer, SiblingMessage, SiblingRequest, StreamDirectory, WorkerPlace, WORKER_SECRET_PROPERTY};
pub use stream::StreamKey;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conn::Conn;
use ids::IdTable;
use stream::LiveStream;

use super::stats::Stats;
use super::Config;
use crate::sessions::{ClientSessionEvent, ServerSessionEvent};

/// How often the core checks timeouts, pings and upstream deadlines.
const TICK: Duration = Duration::from_millis(250);
/// How long a graceful shutdown waits for queues to drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Bytes are queued for this connection: write them as the socket takes them
    /// ([`RelayCore::write_slices`], then [`RelayCore::handle_written`]).
    Write(ConnId),
    /// Close this connection's socket. The core has already forgotten it.
    Close {
        /// Which connection.
        id: ConnId,
        /// Why (already logged and counted).
        reason: CloseReason,
    },
    /// Open a TCP connection to `addr` for this (upstream) connection, then report
    /// [`RelayCore::handle_connected`] or [`RelayCore::handle_closed`].
    Connect {
        /// The connection the socket belongs to.
        id: ConnId,
        /// Where to connect.
        addr: SocketAddr,
        /// For an `rtmps://` upstream: run TLS over the connection, sending this server
        /// name (SNI) and verifying the certificate against it. The core sees RTMP bytes
        /// either way.
        tls: Option<String>,
    },
    /// Resolve `host`, then report [`RelayCore::handle_resolved`]. Never in the loop thread.
    Resolve {
        /// The connection waiting for the address.
        id: ConnId,
        /// Host name.
        host: String,
        /// Port to pair the addresses with.
        port: u16,
    },
    /// A graceful shutdown finished: every connection is closed.
    Stopped,
    /// Re-read the configuration (`POST /api/v1/reload`), then report
    /// [`RelayCore::handle_reload`]. The driver does the reading; the core never touches files.
    ReloadConfig,
    /// Make this hook call off the loop thread, then report
    /// [`RelayCore::handle_hook_result`]. The core times decisions out by itself.
    Hook {
        /// Names the call in the answer.
        id: HookId,
        /// Where, what, and how long it may take.
        call: crate::relay::access::HookCall,
    },
    /// Pass `message` to the sibling worker `to` (every other worker when `None`), which
    /// hands it to [`RelayCore::handle_sibling_message`]. Only a core that is one of
    /// several workers asks for this.
    TellSiblings {
        /// The worker, or all of them.
        to: Option<usize>,
        /// What to pass on.
        message: SiblingMessage,
    },
}

/// What a listener speaks: the driver tells the core which listener accepted a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Plain RTMP.
    Rtmp,
    /// RTMP over TLS (the driver decrypts; the core sees RTMP bytes).
    Rtmps,
    /// HTTP/1.1: the API, metrics, status page, and HTTP-FLV and WebSocket-FLV players
    /// (`core/http_conn.rs`, `core/http_play.rs`).
    Http,
    /// A worker's private loopback listener, where sibling workers pull streams published
    /// here (`core/siblings.rs`): plain RTMP, from peers that prove they are siblings.
    Sibling,
}

impl ListenerKind {
    /// The protocol's name in logs and the API.
    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::Rtmp => "rtmp",
            ListenerKind::Rtmps => "rtmps",
            ListenerKind::Http => "http",
            ListenerKind::Sibling => "sibling",
        }
    }
}

/// One stream as [`RelayCore::stream_summaries`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream.
    pub key: StreamKey,
    /// Its local publisher.
    pub publisher: Option<ConnId>,
    /// Play subscriptions.
    pub players: usize,
    /// Whether a source (publisher or pull) is live.
    pub live: bool,
    /// Frames in the GOP cache.
    pub gop_frames: usize,
    /// Bytes the GOP cache holds.
    pub gop_bytes: usize,
    /// Media time the GOP cache spans (ms).
    pub gop_ms: u32,
    /// Edge pull: (playing now, reconnects so far).
    pub pull: Option<(bool, u64)>,
}

/// The relay's whole policy state. See the [module docs](self).
pub struct RelayCore {
    config: Config,
    conns: IdTable<Conn>,
    streams: HashMap<StreamKey, LiveStream>,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections on the private listener that have not shown the workers' secret yet.
    unproven_siblings: usize,
    /// Client connections open on this worker (accepted, not on the private listener).
    clients_open: usize,
    refusal_log: refusal::RefusalLog,
    actions: VecDeque<Action>,
    /// Connections marked for closing during the current input, closed at its end.
    to_close: Vec<(ConnId, CloseReason)>,
    /// Players whose live frames wait for the next batch write (`Config::write_batch`).
    batched: Vec<ConnId>,
    /// Connections whose queue grew during the current input, each once.
    grown: Vec<ConnId>,
    batch_deadline: Option<Instant>,
    stats: Arc<Stats>,
    shutdown_deadline: Option<Instant>,
    stopped: bool,
    next_tick: Instant,
    epoch: Instant,
    /// Wall-clock time at `epoch` (since the Unix epoch), as the driver last told it.
    unix_at_epoch: Duration,
    /// This relay's id in `rtmpEdgeVia`, to refuse pulling a stream from itself.
    node_id: String,
    rng_state: u64,
    server_events: Vec<ServerSessionEvent>,
    client_events: Vec<ClientSessionEvent>,
    /// Counts and timers for the API, metrics and the summary line.
    ops: ops::OpsState,
    /// Hook calls in flight and the access counters.
    access: access::AccessState,
    /// With several workers: this one's place among them.
    siblings: Option<WorkerPlace>,
    /// API requests waiting for the other workers' parts.
    asks: worker_api::Asks,
}

impl fmt::Debug for RelayCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayCore")
            .field("connections", &self.conns.len())
            .field("streams", &self.streams.len())
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl RelayCore {
    /// A core with no connections. `seed` drives backoff jitter and the relay's id, so a test
    /// that fixes it gets the same decisions every run.
    pub fn new(config: Config, seed: u64, now: Instant) -> RelayCore {
        Self::with_stats(config, seed, now, Arc::new(Stats::default()))
    }

    /// Like [`new`](Self::new), counting into `stats` (which other threads may read).
    pub fn with_stats(config: Config, seed: u64, now: Instant, stats: Arc<Stats>) -> RelayCore {
        let mut core = RelayCore {
            config,
            conns: IdTable::default(),
            streams: HashMap::new(),
            per_ip: HashMap::new(),
            unproven_siblings: 0,
            clients_open: 0,
            refusal_log: refusal::RefusalLog::default(),
            actions: VecDeque::new(),
            to_close: Vec::new(),
            batched: Vec::new(),
            grown: Vec::new(),
            batch_deadline: None,
            stats,
            shutdown_deadline: None,
            stopped: false,
            next_tick: now + TICK,
            epoch: now,
            unix_at_epoch: Duration::ZERO,
            node_id: String::new(),
            // xorshift must not start at zero.
            rng_state: seed | 1,
            server_events: Vec::new(),
            client_events: Vec::new(),
            ops: ops::OpsState::new(now),
            access: access::AccessState::new(),
            siblings: None,
            asks: worker_api::Asks::default(),
        };
        core.node_id = format!("{:016x}", core.next_random());
        core
    }

    /// Like [`with_stats`](Self::with_stats), as worker `place.index` of `place.count`:
    /// its connection ids name it, publishes claim their streams in the shared directory,
    /// and players of streams published on another worker pull from there.
    pub fn for_worker(config: Config, seed: u64, now: Instant, stats: Arc<Stats>, place: WorkerPlace) -> RelayCore {
        let mut core = Self::with_stats(config, seed, now, stats);
        core.conns = IdTable::for_worker(place.index);
        core.ops.add_sibling_roles();
        core.siblings = Some(place);
        core
    }

    /// The counters this core updates.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// This relay's id in loop detection.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Connections open now (accepted and upstream).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether `id` names an open connection.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conns.contains(id)
    }

    /// What each stream holds now, sorted by key: for logs, the API and metrics.
    pub fn stream_summaries(&self) -> Vec<StreamSummary> {
        let mut summaries: Vec<StreamSummary> = self
            .streams
            .iter()
            .map(|(key, stream)| {
                let (gop_frames, gop_bytes) = stream.gop_held();
                StreamSummary {
                    key: key.clone(),
                    publisher: stream.publisher.map(|(id, _)| id),
                    players: stream.audience().count(),
                    live: stream.is_live(),
                    gop_frames,
                    gop_bytes,
                    gop_ms: stream.gop_span_ms(),
                    pull: stream.pull.as_ref().map(|link| (link.ready, link.reconnects)),
                }
            })
            .collect();
        summaries.sort_by(|a, b| a.key.cmp(&b.key));
        summaries
    }

    // ------------------------------------------------------------------ inputs

    /// Tells the core the wall-clock time (since the Unix epoch) at `now`, for what needs
    /// it (expiring signed URLs, API timestamps). The core never reads a clock itself.
    pub fn set_unix_time(&mut self, now: Instant, unix: Duration) {
        self.unix_at_epoch = unix.saturating_sub(now.saturating_duration_since(self.epoch));
    }

    /// Wall-clock time at `now`, from the last [`set_unix_time`](Self::set_unix_time).
    pub fn unix_time(&self, now: Instant) -> Duration {
        self.unix_at_epoch + now.saturating_duration_since(self.epoch)
    }

    /// Applies a new configuration. Limits, origins, pushes and timeouts apply to new
    /// connections, new pulls and new link attempts; live streams and their players go on.
    /// The listen address and dump directory belong to the driver and are not changed here.
    pub fn reload(&mut self, config: Config) {
        log::info!("configuration reloaded");
        self.config = config;
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `id` came in on the private listener, from a sibling worker.
    fn is_sibling(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|conn| conn.protocol == ListenerKind::Sibling)
    }

    /// Bytes arrived on `id`.
    pub fn handle_input(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        self.input(id, bytes, now);
        self.finish(now);
    }

    /// The socket took `written` bytes of what [`write_slices`](Self::write_slices) gave.
    pub fn handle_written(&mut self, id: ConnId, written: usize, now: Instant) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.out.consume(written);
            conn.bytes_out += written as u64;
            if written > 0 {
                conn.last_activity = now;
            }
            if conn.out.is_empty() {
                if let Some(reason) = conn.close_after_flush.clone() {
                    Self::mark_close(&mut self.to_close, id, conn, reason);
                }
            }
        }
        self.finish(now);
    }

    /// The connection closed under the driver (peer closed, I/O error, connect failed).
    pub fn handle_closed(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        if let Some(conn) = self.conns.get_mut(id) {
            Self::mark_close(&mut self.to_close, id, conn, reason);
        }
        self.finish(now);
    }

    /// Time passed: run whatever is due. Call it at [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.access_timeouts(now);
        self.asks_timed_out(now);
        if self.batch_deadline.is_some_and(|deadline| now >= deadline) {
            self.batch_deadline = None;
            // Batched players were marked as having a write requested when batched.
            for id in self.batched.drain(..) {
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.write_requested = true;
                    self.actions.push_back(Action::Write(id));
                }
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.refusal_log.flush(now);
            self.tick(now);
        }
        self.shutdown_deadline_passed(now);
        self.finish(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let mut next = self.next_tick;
        let deadlines = [self.batch_deadline, self.shutdown_deadline, self.access.next_deadline(), self.asks.next_deadline()];
        for deadline in deadlines.into_iter().flatten() {
            next = next.min(deadline);
        }
        Some(next)
    }

    /// The next thing for the driver to do. A `Write`, `Connect` or `Resolve` always names
    /// an open connection; a `Close` names one the driver knows (accepted, or announced by
    /// a `Connect` or `Resolve`) and the core has just forgotten.
    pub fn poll_action(&mut self) -> Option<Action> {
        while let Some(action) = self.actions.pop_front() {
            match &action {
                Action::Write(id) | Action::Connect { id, .. } | Action::Resolve { id, .. } => {
                    // Asked for earlier in an input that then closed the connection; its
                    // Close follows (`close` already took back an unannounced connect).
                    let Some(conn) = self.conns.get_mut(*id) else { continue };
                    if matches!(action, Action::Write(_)) {
                        conn.write_requested = false;
                    }
                }
                Action::Close { .. }
                | Action::Stopped
                | Action::ReloadConfig
                | Action::Hook { .. }
                | Action::TellSiblings { .. } => {}
            }
            return Some(action);
        }
        None
    }

    /// Fills `slices` with the front of `id`'s queue; returns how many were filled.
    pub fn write_slices<'a>(&'a self, id: ConnId, slices: &mut [IoSlice<'a>]) -> usize {
        self.conns.get(id).map_or(0, |conn| conn.out.fill_slices(slices))
    }

    /// Whether `id` has bytes waiting to be written.
    pub fn has_queued(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|conn| !conn.out.is_empty())
    }

    /// What `id`'s send queue holds, as the hard limits measure it: (bytes, counting
    /// [`ENTRY_OVERHEAD`] per entry; entries). For the API, tests and the `relay_core`
    /// fuzz target, which checks that no open connection's queue passes
    /// `queue_hard_limit_bytes` or `queue_hard_limit_entries`.
    pub fn queue_size(&self, id: ConnId) -> Option<(usize, usize)> {
        self.conns.get(id).map(|conn| (conn.out.cost(), conn.out.entries()))
    }

    // ------------------------------------------------------------------ helpers

    fn epoch_ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng_state = x;
        x
    }

    /// A fraction in [0, 1) for backoff jitter.
    fn jitter(&mut self) -> f64 {
        (self.next_random() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Asks the driver to write `id`'s queue (once until the driver picks it up), and notes
    /// that the queue grew, so that the end of the input holds it to the limits.
    fn request_write(actions: &mut VecDeque<Action>, grown: &mut Vec<ConnId>, id: ConnId, conn: &mut Conn) {
        Self::note_growth(grown, id, conn);
        if !conn.write_requested {
            conn.write_requested = true;
            actions.push_back(Action::Write(id));
        }
    }

    /// Notes once per input that `id`'s queue grew (see `hold_queues_to_limits`).
    fn note_growth(grown: &mut Vec<ConnId>, id: ConnId, conn: &mut Conn) {
        if !conn.queue_grew {
            conn.queue_grew = true;
            grown.push(id);
        }
    }

    /// Marks `id` for closing at the end of the current input (the first reason wins).
    fn mark_close(to_close: &mut Vec<(ConnId, CloseReason)>, id: ConnId, conn: &mut Conn, reason: CloseReason) {
        if conn.closing.is_none() {
            conn.closing = Some(reason.clone());
            to_close.push((id, reason));
        }
    }

    /// Marks a connection for closing by id.
    fn fail(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(id) {
            Self::mark_close(&mut self.to_close, id, conn, reason);
        }
    }

    /// Closes what was marked during this input, and notices the end of a shutdown.
    fn finish(&mut self, now: Instant) {
        // Closing tells others (players hear their stream went dry), so queues grow here too.
        loop {
            self.hold_queues_to_limits(now);
            if self.to_close.is_empty() {
                break;
            }
            while let Some((id, reason)) = self.to_close.pop() {
                self.close(id, reason, now);
            }
        }
        if self.shutdown_deadline.is_some() && self.conns.is_empty() && !self.stopped {
            self.stopped = true;
            log::info!("shutdown complete");
            self.actions.push_back(Action::Stopped);
        }
    }
}
