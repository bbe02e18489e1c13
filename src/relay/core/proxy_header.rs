//! The PROXY protocol in the core. On a listener that requires it
//! ([`Config::proxy_protocol`](crate::relay::Config::proxy_protocol)), a connection
//! accepted from the balancer waits for its header before anything else: the driver takes
//! the header off the socket, before TLS, with the library's parser
//! ([`crate::proxy_protocol`]), and hands the result to
//! [`RelayCore::handle_proxy_header`]. The core decides what it means: the client's address
//! replaces the balancer's for logs, the per-IP limit, IP rules, hooks and the API; a
//! missing or broken header closes the connection; a LOCAL header (the balancer's own
//! health check) keeps the socket's address.
//!
//! The header is bounded in size by the parser (107 bytes for v1, 528 for v2) and in time
//! by `handshake_timeout`, counted from accept, on every listener kind (HTTP included).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::close::CloseReason;
use super::{ConnId, ListenerKind, Refusal, RelayCore};
use crate::relay::access::canonical;
use crate::proxy_protocol::{ProxyError, ProxyHeader};

/// Where a connection's address came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyState {
    /// The socket's own peer (no PROXY protocol on its listener, or an upstream).
    #[default]
    Direct,
    /// Accepted on a PROXY listener; the header has not been read yet. Not counted against
    /// any address's limit until it is.
    Awaiting,
    /// The balancer spoke for itself (LOCAL, a health check): the socket's address.
    Local,
    /// The address is the client's from the header; the socket's peer was this balancer.
    Proxied {
        /// The socket's peer: the balancer.
        balancer: SocketAddr,
    },
}

impl RelayCore {
    /// Whether `id` still waits for its PROXY header: the driver must take the header off
    /// the socket (and call [`handle_proxy_header`](Self::handle_proxy_header)) before
    /// anything else reads from it.
    pub fn awaits_proxy_header(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|conn| conn.proxy == ProxyState::Awaiting)
    }

    /// The address `id`'s logs and policy use: the socket's peer, or the client's from a
    /// PROXY header.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns.get(id).map(|conn| conn.peer)
    }

    /// The driver read `id`'s PROXY header, or found bytes that are not one. A proxied
    /// address becomes the connection's peer, checked against the per-IP limit (IP rules
    /// see it at connect, publish and play); an error closes the connection with a log
    /// line naming the balancer and the reason.
    pub fn handle_proxy_header(&mut self, id: ConnId, header: Result<ProxyHeader, ProxyError>, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.proxy != ProxyState::Awaiting || conn.closing.is_some() {
            return;
        }
        let socket_peer = conn.peer;
        let kind = conn.protocol;
        match header {
            Err(error) => {
                Self::mark_close(&mut self.to_close, id, conn, CloseReason::ProxyHeaderFailed(error.to_string()));
            }
            Ok(ProxyHeader::Local) => {
                conn.proxy = ProxyState::Local;
                log::debug!("{socket_peer}: connection {id}: PROXY LOCAL (the balancer's own check): the socket's address is used");
                self.count_address(id);
            }
            Ok(ProxyHeader::Proxied { source, .. }) => {
                let client = SocketAddr::new(canonical(source.ip()), source.port());
                conn.peer = client;
                conn.proxy = ProxyState::Proxied { balancer: socket_peer };
                // HTTP connections (scrapes, checks) are logged at debug, as at accept.
                if self.count_address(id) && kind != ListenerKind::Http {
                    log::info!("{client}: {} connection {id} opened (PROXY header from {socket_peer})", kind.label());
                }
            }
        }
        self.finish(now);
    }

    /// Holds a connection whose address the header settled to the per-IP limit, as accept
    /// does for others. Returns whether it stays open.
    fn count_address(&mut self, id: ConnId) -> bool {
        let max = self.config.max_connections_per_ip;
        let Some(conn) = self.conns.get_mut(id) else { return false };
        let ip = conn.peer.ip();
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= max {
            let refusal = Refusal::TooManyFromAddress { ip, max };
            self.stats.connections_refused.fetch_add(1, Relaxed);
            self.ops.refusals.add(refusal.label());
            Self::mark_close(&mut self.to_close, id, conn, CloseReason::Refused(refusal));
            return false;
        }
        conn.accepted = true;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        true
    }
}
