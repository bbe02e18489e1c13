//! What happens with time: handshake and idle timeouts, keep-alive pings, queues that
//! stopped draining, upstream deadlines, and the graceful shutdown.

use std::time::{Duration, Instant};

use super::close::CloseReason;
use super::conn::Role;
use super::http_play::StreamTimer;
use super::{ConnId, RelayCore, SHUTDOWN_GRACE};

/// How long a connection on the private worker listener has to show the workers' secret.
pub const SIBLING_PROOF_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a denied client's denial may sit unwritten before the connection just closes.
pub const DENIAL_FLUSH_GRACE: Duration = Duration::from_secs(2);

impl RelayCore {
    pub(super) fn tick(&mut self, now: Instant) {
        self.upstream_tick(now);
        self.ops_tick(now);
        let handshake_timeout = self.config.handshake_timeout;
        let idle_timeout = self.config.idle_timeout;
        let limits = self.queue_limits();
        let mut to_ping = Vec::new();
        let mut websocket_pings = Vec::new();
        let mut to_close: Vec<(ConnId, CloseReason)> = Vec::new();
        for (id, conn) in self.conns.iter_mut() {
            if conn.closing.is_some() {
                continue;
            }
            // A denied client that does not read its denial is not waited for.
            if conn.is_denied() && now.saturating_duration_since(conn.last_activity) > DENIAL_FLUSH_GRACE {
                to_close.extend(conn.close_after_flush.clone().map(|reason| (id, reason)));
                continue;
            }
            // A queue that stopped draining breaks its limits even when nothing new arrives
            // (the publisher paused, or only control bytes were queued).
            if let Some(reason) = super::fanout::queue_overflow(conn, &limits, now) {
                to_close.push((id, reason));
                continue;
            }
            if conn.upstream.is_some() {
                continue;
            }
            // Before the HTTP timers, which start at the request's first byte: the header
            // comes before any.
            if conn.proxy == super::proxy_header::ProxyState::Awaiting {
                if now.saturating_duration_since(conn.opened_at) > handshake_timeout {
                    to_close.push((id, CloseReason::ProxyHeaderTimeout(handshake_timeout)));
                }
                continue;
            }
            if matches!(conn.phase, super::conn::Phase::Http(_)) {
                to_close.extend(Self::http_expired(conn, now, &self.config).map(|reason| (id, reason)));
                match Self::stream_timer(conn, now, idle_timeout) {
                    StreamTimer::Nothing => {}
                    StreamTimer::Ping => websocket_pings.push(id),
                    StreamTimer::Close(reason) => to_close.push((id, reason)),
                }
                continue;
            }
            if !conn.is_connected() && now.saturating_duration_since(conn.opened_at) > handshake_timeout {
                to_close.push((id, CloseReason::HandshakeTimeout(handshake_timeout)));
                continue;
            }
            // A sibling proves itself within a loopback round trip; a local program that
            // only holds the private listener's few unproven places must not keep the real
            // siblings out for a whole handshake timeout.
            if conn.sibling_unproven && now.saturating_duration_since(conn.opened_at) > SIBLING_PROOF_TIMEOUT {
                to_close.push((id, CloseReason::HandshakeTimeout(SIBLING_PROOF_TIMEOUT)));
                continue;
            }
            let idle = now.saturating_duration_since(conn.last_activity);
            if idle > idle_timeout {
                to_close.push((id, CloseReason::Idle(idle)));
            } else if idle > idle_timeout / 2 && !conn.ping_outstanding && conn.is_connected() {
                // Players waiting for a stream send nothing; a ping keeps the honest ones alive.
                conn.ping_outstanding = true;
                to_ping.push(id);
            }
        }
        for (id, reason) in to_close {
            self.fail(id, reason);
        }
        for id in websocket_pings {
            self.ping_websocket(id, now);
        }
        let timestamp = self.epoch_ms(now);
        for id in to_ping {
            if let Some(session) = self.conns.get_mut(id).and_then(|conn| conn.session()) {
                let _ = session.send_ping_request(timestamp);
            }
            self.sync_output(id, now);
        }
    }

    /// At the shutdown deadline, whatever is still open is closed. Called from every
    /// `handle_timeout`, not only from the tick: `poll_timeout` names the deadline, and a
    /// deadline that passed without effect would be named again at once, and the driver
    /// would spin until the next tick.
    pub(super) fn shutdown_deadline_passed(&mut self, now: Instant) {
        if self.shutdown_deadline.is_none_or(|deadline| now < deadline) {
            return;
        }
        let open = self.conns.len();
        for id in self.conns.ids() {
            self.fail(id, CloseReason::Shutdown);
        }
        if open > 0 {
            log::info!("shutdown: {open} connections closed at the deadline");
        }
    }

    /// Stops taking connections, tells players their streams ended (`NetStream.Play.Stop`),
    /// and closes each connection once its queue is written, or at the deadline. Links make
    /// no new connections. [`Action::Stopped`](super::Action::Stopped) follows when all are
    /// closed.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("shutting down: no new connections, telling players the streams ended");
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        for stream in self.streams.values_mut() {
            for link in stream.pull.iter_mut().chain(stream.pushes.iter_mut()) {
                link.retry_at = None;
            }
        }
        for id in self.conns.ids() {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            if let Role::Player { subscriptions } = conn.role.clone() {
                if let Some(session) = conn.session() {
                    for (key, stream_id) in &subscriptions {
                        let _ = session.send_stream_end(*stream_id, key.name());
                    }
                }
                // The plays are over: nothing of the streams (media, or StreamDry when
                // their publishers are closed next) may follow Play.Stop.
                for (key, stream_id) in subscriptions {
                    self.end_play(id, &key, stream_id, now);
                }
            }
            self.close_websocket_for_shutdown(id, now);
            self.sync_output(id, now);
            if let Some(conn) = self.conns.get_mut(id) {
                conn.close_after_flush = Some(CloseReason::Shutdown);
                if conn.out.is_empty() {
                    Self::mark_close(&mut self.to_close, id, conn, CloseReason::Shutdown);
                }
            }
        }
        self.finish(now);
    }

    /// Whether a shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }
}
