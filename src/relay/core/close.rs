//! Why a connection closed: one enum feeds the close log line and the counters; and the
//! one close path.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::super::stats::Stats;
use super::conn::{Conn, Phase, Role};
use super::{Action, ConnId, ListenerKind, RelayCore};

/// Why the relay closed a connection, or why it went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// Reading from the socket failed.
    ReadFailed(String),
    /// Writing to the socket failed.
    WriteFailed(String),
    /// The handshake bytes were not RTMP (or an unsupported version).
    HandshakeFailed(String),
    /// TLS failed: the peer sent something that is not TLS (plain RTMP on the TLS port),
    /// a bad record, or a fatal alert. Holds the alert or reason.
    TlsFailed(String),
    /// An `rtmps://` upstream's certificate did not verify (unknown issuer, wrong name,
    /// expired). Holds rustls's reason.
    UpstreamCertificateRejected(String),
    /// The peer broke the chunk or command protocol, or passed a limit.
    ProtocolError(String),
    /// Handshake and connect were not done within the handshake timeout.
    HandshakeTimeout(Duration),
    /// No traffic either way for the idle timeout.
    Idle(Duration),
    /// A player's queue passed a hard limit.
    TooSlow {
        /// How long its oldest unsent byte had waited.
        waited_ms: u64,
        /// Bytes queued, counting each entry's overhead.
        queued_bytes: usize,
        /// Entries queued.
        queued_entries: usize,
    },
    /// A peer that sends commands but does not read the answers.
    NotReading {
        /// Bytes queued.
        queued_bytes: usize,
    },
    /// The relay is shutting down.
    Shutdown,
    /// The local publisher of a forward or push stopped.
    PublisherStopped,
    /// A pull nobody watched any more, after its linger time.
    PullUnwatched,
    /// A local publisher took the stream over from a pull.
    LocalPublisherTookOver,
    /// A pull from a sibling worker ended: the stream's publisher is on another worker
    /// now, or on none.
    SourceMoved,
    /// The upstream refused the connect, play or publish with this status code.
    UpstreamRefused(String),
    /// The origin ended the play (NetStream.Play.Stop).
    UpstreamStoppedPlay,
    /// An upstream stage (connect, handshake, replies) did not finish in time.
    UpstreamStageTimeout {
        /// Which stage.
        stage: &'static str,
        /// Its deadline.
        after: Duration,
    },
    /// A pull that was delivering media went silent.
    UpstreamSilent(Duration),
    /// An upstream stopped reading what we publish to it.
    UpstreamTooSlow {
        /// Bytes queued.
        queued_bytes: usize,
    },
    /// Resolving or connecting to an upstream failed.
    ConnectFailed(String),
    /// The upstream session could not be started or driven.
    UpstreamProtocolError(String),
    /// The relay could not encode what it had to send (a bug, or a limit).
    EncodeFailed(String),
    /// An operator closed it through the API (`DELETE /api/v1/clients/{id}`).
    Kicked,
    /// An HTTP request was malformed or past a limit; it was answered with an error status.
    HttpBadRequest(String),
    /// An HTTP request's head did not arrive within the header timeout.
    HttpHeaderTimeout(Duration),
    /// An HTTP exchange ended with `Connection: close`, after the response was written.
    HttpDone,
    /// An idle HTTP connection made room for a new one at `http_max_connections`.
    HttpEvicted,
    /// A connect, publish or play was denied (IP rule, signature, hook); the denial was sent.
    AccessDenied(String),
    /// On a PROXY protocol listener: no valid PROXY header (holds why, as the parser or
    /// the driver said it).
    ProxyHeaderFailed(String),
    /// On a PROXY protocol listener: the header did not arrive within the handshake timeout.
    ProxyHeaderTimeout(Duration),
    /// Refused once its PROXY header named the client (the per-IP limit).
    Refused(super::Refusal),
}

impl CloseReason {
    /// A short, stable name for counters and metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::ReadFailed(_) => "read_failed",
            CloseReason::WriteFailed(_) => "write_failed",
            CloseReason::HandshakeFailed(_) => "handshake_failed",
            CloseReason::TlsFailed(_) => "tls_failed",
            CloseReason::UpstreamCertificateRejected(_) => "upstream_certificate_rejected",
            CloseReason::ProtocolError(_) => "protocol_error",
            CloseReason::HandshakeTimeout(_) => "handshake_timeout",
            CloseReason::Idle(_) => "idle",
            CloseReason::TooSlow { .. } => "too_slow",
            CloseReason::NotReading { .. } => "not_reading",
            CloseReason::Shutdown => "shutdown",
            CloseReason::PublisherStopped => "publisher_stopped",
            CloseReason::PullUnwatched => "pull_unwatched",
            CloseReason::LocalPublisherTookOver => "local_publisher_took_over",
            CloseReason::SourceMoved => "source_moved",
            CloseReason::UpstreamRefused(_) => "upstream_refused",
            CloseReason::UpstreamStoppedPlay => "upstream_stopped_play",
            CloseReason::UpstreamStageTimeout { .. } => "upstream_stage_timeout",
            CloseReason::UpstreamSilent(_) => "upstream_silent",
            CloseReason::UpstreamTooSlow { .. } => "upstream_too_slow",
            CloseReason::ConnectFailed(_) => "connect_failed",
            CloseReason::UpstreamProtocolError(_) => "upstream_protocol_error",
            CloseReason::EncodeFailed(_) => "encode_failed",
            CloseReason::Kicked => "kicked",
            CloseReason::HttpBadRequest(_) => "http_bad_request",
            CloseReason::HttpHeaderTimeout(_) => "http_header_timeout",
            CloseReason::HttpDone => "http_done",
            CloseReason::HttpEvicted => "http_evicted",
            CloseReason::AccessDenied(_) => "access_denied",
            CloseReason::ProxyHeaderFailed(_) => "proxy_header_failed",
            CloseReason::ProxyHeaderTimeout(_) => "proxy_header_timeout",
            CloseReason::Refused(_) => "refused",
        }
    }

    /// Whether the peer is to blame: worth a warning rather than an info line (and see
    /// `RelayCore::is_slow_head`).
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            CloseReason::HandshakeFailed(_)
                | CloseReason::TlsFailed(_)
                | CloseReason::ProtocolError(_)
                | CloseReason::HandshakeTimeout(_)
                | CloseReason::TooSlow { .. }
                | CloseReason::NotReading { .. }
                | CloseReason::HttpBadRequest(_)
                | CloseReason::ProxyHeaderFailed(_)
                | CloseReason::ProxyHeaderTimeout(_)
                | CloseReason::Refused(_)
        )
    }

    /// Whether the peer broke a protocol (RTMP or HTTP) or its limits: counted in
    /// `protocol_errors`.
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            CloseReason::HandshakeFailed(_)
                | CloseReason::TlsFailed(_)
                | CloseReason::ProtocolError(_)
                | CloseReason::NotReading { .. }
                | CloseReason::HttpBadRequest(_)
                | CloseReason::ProxyHeaderFailed(_)
        )
    }

    /// Adds this close to the counters it belongs to.
    pub(in crate::relay) fn count(&self, stats: &Stats) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.is_protocol_error() {
            stats.protocol_errors.fetch_add(1, Relaxed);
        }
        match self {
            CloseReason::HandshakeTimeout(_) => {
                stats.handshake_timeouts.fetch_add(1, Relaxed);
            }
            CloseReason::TooSlow { .. } => {
                stats.slow_players_disconnected.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => write!(f, "peer closed the connection"),
            CloseReason::ReadFailed(error) => write!(f, "read error: {error}"),
            CloseReason::WriteFailed(error) => write!(f, "write error: {error}"),
            CloseReason::HandshakeFailed(error) => write!(f, "handshake failed: {error}"),
            CloseReason::TlsFailed(reason) => write!(f, "TLS failed: {reason}"),
            CloseReason::UpstreamCertificateRejected(reason) => write!(f, "upstream certificate rejected: {reason}"),
            CloseReason::ProtocolError(error) => write!(f, "protocol error: {error}"),
            CloseReason::HandshakeTimeout(after) => {
                write!(f, "did not finish handshake and connect within {} s", after.as_secs_f64())
            }
            CloseReason::Idle(after) => write!(f, "idle for {} s", after.as_secs()),
            CloseReason::TooSlow { waited_ms, queued_bytes, queued_entries } => write!(
                f,
                "too slow: oldest queued byte waited {waited_ms} ms, {queued_bytes} bytes in {queued_entries} entries queued"
            ),
            CloseReason::NotReading { queued_bytes } => {
                write!(f, "not reading: {queued_bytes} bytes of replies queued")
            }
            CloseReason::Shutdown => write!(f, "relay shutting down"),
            CloseReason::PublisherStopped => write!(f, "the local publisher stopped"),
            CloseReason::PullUnwatched => write!(f, "pull no longer watched"),
            CloseReason::LocalPublisherTookOver => write!(f, "a local publisher took over the stream"),
            CloseReason::SourceMoved => write!(f, "the stream's publisher is on another worker now, or on none"),
            CloseReason::UpstreamRefused(code) => write!(f, "upstream refused: {code}"),
            CloseReason::UpstreamStoppedPlay => write!(f, "origin stopped the play"),
            CloseReason::UpstreamStageTimeout { stage, after } => {
                write!(f, "upstream {stage} not done within {} s", after.as_secs_f64())
            }
            CloseReason::UpstreamSilent(after) => write!(f, "upstream silent for {} s", after.as_secs_f64()),
            CloseReason::UpstreamTooSlow { queued_bytes } => {
                write!(f, "upstream too slow: {queued_bytes} bytes queued")
            }
            CloseReason::ConnectFailed(error) => write!(f, "connect failed: {error}"),
            CloseReason::UpstreamProtocolError(error) => write!(f, "upstream protocol error: {error}"),
            CloseReason::EncodeFailed(error) => write!(f, "could not encode: {error}"),
            CloseReason::Kicked => write!(f, "closed through the API"),
            CloseReason::HttpBadRequest(error) => write!(f, "bad HTTP request: {error}"),
            CloseReason::HttpHeaderTimeout(after) => {
                write!(f, "HTTP request head not received within {} s", after.as_secs_f64())
            }
            CloseReason::HttpDone => write!(f, "HTTP exchange done"),
            CloseReason::HttpEvicted => write!(f, "idle HTTP connection closed to make room for a new one"),
            CloseReason::AccessDenied(what) => write!(f, "access denied: {what}"),
            CloseReason::ProxyHeaderFailed(why) => f.write_str(why),
            CloseReason::ProxyHeaderTimeout(after) => {
                write!(f, "no PROXY protocol header within {} s", after.as_secs_f64())
            }
            CloseReason::Refused(refusal) => write!(f, "refused: {refusal}"),
        }
    }
}

impl RelayCore {
    /// An HTTP connection that began a request head and did not finish it in time: a
    /// slow-loris client, worth a warning. One that sent nothing (a browser's preconnect)
    /// is not.
    fn is_slow_head(conn: &Conn, reason: &CloseReason) -> bool {
        matches!(reason, CloseReason::HttpHeaderTimeout(_)) && conn.bytes_in > 0
    }

    /// The one close path: leave streams, fail links, forget the connection, log.
    pub(super) fn close(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        let Some(conn) = self.conns.get(id) else { return };
        // Before the streams are left: leaving them forgets a publisher's role.
        let role_label = self.role_label(conn);
        let role = conn.role.clone();
        let upstream = conn.upstream.clone();
        if conn.pending_decisions > 0 {
            self.drop_decisions_of(id);
        }
        if let Some(upstream) = &upstream {
            if self.link(&upstream.key, upstream.purpose).is_some_and(|link| link.conn == Some(id)) {
                self.ops.upstream_reconnects += 1;
            }
            self.upstream_closed(id, upstream, &reason, now);
        }
        match &role {
            Role::Publisher { .. } => self.end_publish(id, now),
            Role::Player { subscriptions } => {
                for (key, stream_id) in subscriptions {
                    self.end_play(id, key, *stream_id, now);
                }
            }
            Role::Undecided => {}
        }
        let Some(conn) = self.conns.remove(id) else { return };
        // Not `upstream.is_none()`: a forward or pull whose link let go of it (the publisher
        // stopped, the pull was dropped) has no upstream any more, and its origin's address
        // may be a client's.
        if conn.sibling_unproven {
            self.unproven_siblings = self.unproven_siblings.saturating_sub(1);
        }
        if conn.counts_as_client {
            self.clients_open = self.clients_open.saturating_sub(1);
            if let Some(place) = &self.siblings {
                // Never below 0: only this worker's own connections are taken off.
                let _ = place.clients_open.fetch_update(Relaxed, Relaxed, |open| Some(open.saturating_sub(1)));
            }
        }
        if conn.accepted && conn.protocol != ListenerKind::Sibling {
            if let Some(count) = self.per_ip.get_mut(&conn.peer.ip()) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_ip.remove(&conn.peer.ip());
                }
            }
        }
        self.stats.connections_open.fetch_sub(1, Relaxed);
        reason.count(&self.stats);
        self.count_close(&conn, role_label, &reason);
        let seconds = now.saturating_duration_since(conn.opened_at).as_secs_f64();
        let line = format!(
            "{}: connection {id} closed: {} after {seconds:.1}s, {} bytes in, {} bytes out: {reason}",
            conn.peer, conn.summary, conn.bytes_in, conn.bytes_out
        );
        // HTTP-FLV and WebSocket-FLV players are players: their closes are worth a line.
        let http_client = conn.protocol == ListenerKind::Http && Self::protocol_label(&conn) == ListenerKind::Http.label();
        if conn.is_balancer_check(&reason) {
            // A balancer's health check connects (with a LOCAL header, or none) and
            // closes: every few seconds, for every backend. Not worth more than debug.
            log::debug!("{line}");
        } else if reason.is_peer_fault() || Self::is_slow_head(&conn, &reason) {
            log::warn!("{line}");
        } else if http_client {
            log::debug!("{line}");
        } else {
            log::info!("{line}");
        }
        // An upstream connection opened and closed before the driver took its Connect or
        // Resolve: a connect now would open a socket only to close it, so the driver hears
        // of neither. (Only dialing connections can have one queued; they are few.)
        if matches!(conn.phase, Phase::Dialing) {
            let queued = self.actions.len();
            self.actions.retain(|action| {
                !matches!(action, Action::Connect { id: dialed, .. } | Action::Resolve { id: dialed, .. } if *dialed == id)
            });
            if self.actions.len() < queued {
                return;
            }
        }
        self.actions.push_back(Action::Close { id, reason });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::super::stats::Stats;
    use super::CloseReason;

    /// The counters each reason adds to: (protocol errors, handshake timeouts, slow players).
    fn counted(reason: CloseReason) -> (u64, u64, u64) {
        let stats = Stats::default();
        reason.count(&stats);
        let snapshot = stats.snapshot();
        (snapshot.protocol_errors, snapshot.handshake_timeouts, snapshot.slow_players_disconnected)
    }

    #[test]
    fn each_reason_counts_where_it_belongs_and_nowhere_else() {
        let too_slow = CloseReason::TooSlow { waited_ms: 10_001, queued_bytes: 5, queued_entries: 1 };
        for (reason, expected) in [
            (CloseReason::HandshakeFailed("version 6".into()), (1, 0, 0)),
            (CloseReason::ProtocolError("chunk size 1".into()), (1, 0, 0)),
            (CloseReason::NotReading { queued_bytes: 300_000 }, (1, 0, 0)),
            (CloseReason::HttpBadRequest("header too large".into()), (1, 0, 0)),
            (CloseReason::HandshakeTimeout(Duration::from_secs(10)), (0, 1, 0)),
            (too_slow, (0, 0, 1)),
            (CloseReason::PeerClosed, (0, 0, 0)),
            (CloseReason::Idle(Duration::from_secs(60)), (0, 0, 0)),
            (CloseReason::Shutdown, (0, 0, 0)),
            (CloseReason::UpstreamTooSlow { queued_bytes: 1 }, (0, 0, 0)),
            (CloseReason::UpstreamProtocolError("bad chunk".into()), (0, 0, 0)),
            (CloseReason::HttpHeaderTimeout(Duration::from_secs(10)), (0, 0, 0)),
            (CloseReason::Kicked, (0, 0, 0)),
            (CloseReason::ProxyHeaderFailed("no PROXY protocol header".into()), (1, 0, 0)),
            (CloseReason::ProxyHeaderTimeout(Duration::from_secs(10)), (0, 0, 0)),
        ] {
            assert_eq!(counted(reason.clone()), expected, "{reason:?} ({})", reason.label());
        }
    }

    #[test]
    fn counts_add_up() {
        let stats = Stats::default();
        for _ in 0..3 {
            CloseReason::ProtocolError("x".into()).count(&stats);
        }
        CloseReason::HandshakeTimeout(Duration::from_secs(1)).count(&stats);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.protocol_errors, snapshot.handshake_timeouts), (3, 1));
    }
}
