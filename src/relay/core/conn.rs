//! Per-connection state in the core: protocol phase, output queue, role, timers.

use std::net::SocketAddr;
use std::time::Instant;

use super::close::CloseReason;
use super::links::UpstreamConn;
use super::out_queue::OutQueue;
use super::stream::StreamKey;
use crate::handshake::Handshake;
use crate::relay::http::HttpConn;
use crate::sessions::{ClientSession, ServerSession};

/// Where a connection is in the protocol.
#[derive(Debug)]
pub enum Phase {
    /// An upstream connection waiting for its TCP connect (or its host's address).
    Dialing,
    /// Exchanging C0-C2 / S0-S2.
    Handshake(Box<Handshake>),
    /// Serving a publisher or player.
    Server(Box<ServerSession>),
    /// An upstream link: playing from or publishing to another server.
    Client(Box<ClientSession>),
    /// An HTTP client of the API, metrics or status page (`core/http_conn.rs`).
    Http(Box<HttpConn>),
}

/// What a connection does on the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not publishing or playing yet.
    Undecided,
    /// Publishing `key` on message stream `stream_id`.
    Publisher {
        /// The stream.
        key: StreamKey,
        /// Message stream id.
        stream_id: u32,
    },
    /// Playing one or more streams.
    Player {
        /// (stream, message stream id) pairs.
        subscriptions: Vec<(StreamKey, u32)>,
    },
}

impl Role {
    /// For log lines.
    pub fn describe(&self) -> String {
        match self {
            Role::Undecided => "undecided".to_string(),
            Role::Publisher { key, .. } => format!("publisher of {key}"),
            Role::Player { subscriptions } => {
                let keys: Vec<String> = subscriptions.iter().map(|(key, _)| key.to_string()).collect();
                format!("player of {}", keys.join(","))
            }
        }
    }
}

/// One connection, accepted or opened by the relay.
#[derive(Debug)]
pub struct Conn {
    /// The peer's address.
    pub peer: SocketAddr,
    /// Protocol phase.
    pub phase: Phase,
    /// Bytes waiting to be written.
    pub out: OutQueue,
    /// A write was requested and not yet handed to the driver.
    pub write_requested: bool,
    /// Its queue grew during the current input (listed in `RelayCore::grown`).
    pub queue_grew: bool,
    /// What it publishes or plays.
    pub role: Role,
    /// What the connection did, for its close log line (kept after the role ends).
    pub summary: String,
    /// When it was accepted or opened.
    pub opened_at: Instant,
    /// Last time bytes arrived or left.
    pub last_activity: Instant,
    /// Last time bytes arrived.
    pub last_input: Instant,
    /// A ping went out and nothing arrived since.
    pub ping_outstanding: bool,
    /// Bytes read from the peer.
    pub bytes_in: u64,
    /// Bytes written to the peer.
    pub bytes_out: u64,
    /// Frames not sent to it under the soft limit.
    pub frames_dropped: u64,
    /// Close once everything queued is written, for this reason.
    pub close_after_flush: Option<CloseReason>,
    /// Marked for closing at the end of the current input; nothing more is queued for it.
    pub closing: Option<CloseReason>,
    /// Set for connections the relay opened to another server.
    pub upstream: Option<UpstreamConn>,
    /// Relay ids the client's connect said it came through (`rtmpEdgeVia`).
    pub via: String,
    /// Stream names as requested (query included), by stream, to pass upstream.
    pub requested_names: Vec<(StreamKey, String)>,
    /// Whether this connection's ignored media has been logged already.
    pub ignored_media_logged: bool,
    /// Whether media dropped for arriving before the connect was answered has been logged.
    pub early_media_logged: bool,
    /// On the private listener, and not yet proven a sibling (see
    /// [`RelayCore::MAX_UNPROVEN_SIBLINGS`](super::RelayCore::MAX_UNPROVEN_SIBLINGS)).
    pub sibling_unproven: bool,
    /// Accepted on a client listener, so counted against `max_connections` while open.
    pub counts_as_client: bool,
    /// The listener (protocol) it came in on; upstream connections say what they speak.
    pub protocol: super::ListenerKind,
    /// Accepted from a listener, so counted against its address's limit; false for the
    /// connections the relay opens itself, even after their link lets go of them, and for
    /// one whose PROXY header has not named its address yet.
    pub accepted: bool,
    /// What the client's connect said about it, for hook requests.
    pub client: ClientInfo,
    /// Decisions of this connection waiting for the hook.
    pub pending_decisions: u8,
    /// When its publish was allowed (for `publish_done`).
    pub publish_started: Option<Instant>,
    /// Whether `peer` came from a PROXY protocol header (or is still to come).
    pub proxy: super::proxy_header::ProxyState,
}

/// What a client's `connect` said that hooks pass on. Kept for the connection's life, so
/// only when it fits a hook request: a client cannot make every connection hold megabytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// `tcUrl`, when sent.
    pub tc_url: Option<String>,
    /// `pageUrl`, when sent.
    pub page_url: Option<String>,
    /// The query of the connect's `app` (`?` included), or empty.
    pub app_param: String,
    /// One of them, or the connect's relay chain, was too long to keep (the connect is
    /// denied).
    pub oversized: bool,
}

impl ClientInfo {
    /// What to keep of a connect's `tcUrl`, `pageUrl` and app query.
    pub fn new(tc_url: Option<&str>, page_url: Option<&str>, app_query: Option<&str>) -> ClientInfo {
        let max = crate::relay::access::MAX_FIELD_BYTES;
        let fits = |text: Option<&str>| text.is_none_or(|text| text.len() <= max);
        if !(fits(tc_url) && fits(page_url) && fits(app_query)) {
            return ClientInfo { oversized: true, ..ClientInfo::default() };
        }
        ClientInfo {
            tc_url: tc_url.map(str::to_string),
            page_url: page_url.map(str::to_string),
            app_param: app_query.map_or_else(String::new, |query| format!("?{query}")),
            oversized: false,
        }
    }
}

impl Conn {
    /// A connection in `phase`, opened now.
    pub fn new(peer: SocketAddr, phase: Phase, now: Instant) -> Conn {
        Conn {
            peer,
            phase,
            out: OutQueue::default(),
            write_requested: false,
            queue_grew: false,
            role: Role::Undecided,
            summary: "did not publish or play".to_string(),
            opened_at: now,
            last_activity: now,
            last_input: now,
            ping_outstanding: false,
            bytes_in: 0,
            bytes_out: 0,
            frames_dropped: 0,
            close_after_flush: None,
            closing: None,
            upstream: None,
            via: String::new(),
            requested_names: Vec::new(),
            ignored_media_logged: false,
            early_media_logged: false,
            sibling_unproven: false,
            counts_as_client: false,
            protocol: super::ListenerKind::Rtmp,
            accepted: false,
            client: ClientInfo::default(),
            pending_decisions: 0,
            publish_started: None,
            proxy: super::proxy_header::ProxyState::Direct,
        }
    }

    /// Whether closing for `reason` ends what looks like a balancer's health check: a
    /// connection on a PROXY listener that sent nothing beyond a LOCAL header, or nothing
    /// at all, and went away by itself.
    pub fn is_balancer_check(&self, reason: &CloseReason) -> bool {
        use super::proxy_header::ProxyState;
        matches!(self.proxy, ProxyState::Awaiting | ProxyState::Local)
            && self.bytes_in == 0
            && matches!(reason, CloseReason::PeerClosed | CloseReason::ReadFailed(_))
    }

    /// Whether an access denial was sent and the connection only waits to flush it; its
    /// input is ignored from then on.
    pub fn is_denied(&self) -> bool {
        matches!(self.close_after_flush, Some(CloseReason::AccessDenied(_)))
    }

    /// The server session, once the handshake is done.
    pub fn session(&mut self) -> Option<&mut ServerSession> {
        match &mut self.phase {
            Phase::Server(session) => Some(session),
            _ => None,
        }
    }

    /// The client session of an upstream connection, once the handshake is done.
    pub fn client(&mut self) -> Option<&mut ClientSession> {
        match &mut self.phase {
            Phase::Client(session) => Some(session),
            _ => None,
        }
    }

    /// Whether the peer finished connecting (handshake done and connect accepted).
    pub fn is_connected(&self) -> bool {
        match &self.phase {
            Phase::Server(session) => session.app().is_some(),
            Phase::Client(session) => session.is_connected(),
            Phase::Handshake(_) | Phase::Dialing => false,
            // HTTP has its own header-read timer (`core/http_conn.rs`), not the handshake's.
            Phase::Http(_) => true,
        }
    }

    /// The name requested for `key` (query included), if this connection asked for it.
    pub fn requested_name(&self, key: &StreamKey) -> Option<&str> {
        self.requested_names.iter().find(|(k, _)| k == key).map(|(_, name)| name.as_str())
    }
}
