//! Accepting a connection: the limits it must pass (shutdown, the private listener's
//! unproven connections, `max_connections` over all workers, the per-IP limit, HTTP's
//! own), and the connection it starts as.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::conn::{Conn, Phase};
use super::{proxy_header, ConnId, ListenerKind, Refusal, RelayCore};
use crate::handshake::{Handshake, HandshakeRole};

impl RelayCore {
    /// A connection was accepted from `peer` on a `kind` listener. Refused connections are
    /// logged and counted here; the driver just drops the socket.
    ///
    /// On a listener that requires the PROXY protocol, `peer` is the balancer: the per-IP
    /// limit waits for the header's address ([`handle_proxy_header`](Self::handle_proxy_header)).
    pub fn accept(&mut self, peer: SocketAddr, kind: ListenerKind, now: Instant) -> Result<ConnId, Refusal> {
        let proxied = self.config.proxy_protocol.requires(kind);
        // The HTTP listener stays open in a shutdown, so health checks see the 503, until
        // the deadline closes everything.
        // A sibling's pulls are bounded by streams times workers, and must not be refused
        // for what viewers hold; but any local program can reach the private listener, so
        // until a connection proves it is a sibling it counts against a small limit of its
        // own, or a local flood would hold descriptors the public listeners need.
        let sibling = kind == ListenerKind::Sibling;
        let max_connections = self.config.max_connections;
        let refusal = if self.shutdown_deadline.is_some_and(|deadline| kind != ListenerKind::Http || now >= deadline) {
            Some(Refusal::ShuttingDown)
        } else if sibling {
            (self.unproven_siblings >= Self::MAX_UNPROVEN_SIBLINGS).then_some(Refusal::TooManyUnprovenSiblings { max: Self::MAX_UNPROVEN_SIBLINGS })
        } else if self.clients_open_everywhere() >= max_connections {
            Some(Refusal::TooManyConnections { max: max_connections })
        } else if !proxied && self.per_ip.get(&peer.ip()).copied().unwrap_or(0) >= self.config.max_connections_per_ip {
            Some(Refusal::TooManyFromAddress { ip: peer.ip(), max: self.config.max_connections_per_ip })
        } else if kind == ListenerKind::Http {
            self.http_admission(now)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.stats.connections_refused.fetch_add(1, Relaxed);
            self.ops.refusals.add(refusal.label());
            self.refusal_log.refused(peer, &refusal, now);
            return Err(refusal);
        }
        let mut conn = if kind == ListenerKind::Http {
            self.new_http_conn(peer, now)
        } else {
            let handshake = Handshake::new(HandshakeRole::Server, self.epoch_ms(now));
            let mut conn = Conn::new(peer, Phase::Handshake(Box::new(handshake)), now);
            conn.protocol = kind;
            conn
        };
        if proxied {
            // Counted against its address once the header names it.
            conn.proxy = proxy_header::ProxyState::Awaiting;
        } else {
            conn.accepted = true;
            if sibling {
                conn.sibling_unproven = true;
                self.unproven_siblings += 1;
            } else {
                *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
            }
        }
        if !sibling {
            conn.counts_as_client = true;
            self.clients_open += 1;
            if let Some(place) = &self.siblings {
                place.clients_open.fetch_add(1, Relaxed);
            }
        }
        let id = self.conns.insert(conn);
        self.stats.connections_accepted.fetch_add(1, Relaxed);
        self.stats.connections_open.fetch_add(1, Relaxed);
        if kind == ListenerKind::Http || proxied {
            // Health checks and scrapes would flood the info log; a proxied connection is
            // logged with its client's address when the header names it.
            log::debug!("{peer}: {} connection {id} opened", kind.label());
        } else if let Some(place) = &self.siblings {
            log::info!("{peer}: {} connection {id} opened on worker {}", kind.label(), place.index);
        } else {
            log::info!("{peer}: {} connection {id} opened", kind.label());
        }
        Ok(id)
    }

    /// The private listener's connections are counted against this until they show the
    /// workers' secret. Sibling pulls prove themselves within a loopback round trip, so
    /// only a burst of this many new pulls at once could meet it (and they retry).
    pub const MAX_UNPROVEN_SIBLINGS: usize = 128;

    /// Client connections open on every worker: what `max_connections` limits. Two workers
    /// accepting at the same instant may each see one fewer than there will be, so the
    /// limit can be passed by at most the number of workers less one.
    fn clients_open_everywhere(&self) -> usize {
        match &self.siblings {
            Some(place) => place.clients_open.load(Relaxed),
            None => self.clients_open,
        }
    }
}
