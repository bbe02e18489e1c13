//! Per-connection state: socket, protocol phase, output queue, and what it plays or publishes.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use super::out_queue::OutQueue;
use super::upstream::LinkPurpose;
use crate::handshake::Handshake;
use crate::sessions::{ClientSession, ServerSession};

/// Where a connection is in the protocol.
#[derive(Debug)]
pub enum Phase {
    /// Exchanging C0-C2 / S0-S2.
    Handshake(Box<Handshake>),
    /// Serving a publisher or player.
    Server(Box<ServerSession>),
    /// An upstream link: playing from or publishing to another server.
    Client(Box<ClientSession>),
}

/// What an upstream connection is for.
#[derive(Clone, Debug)]
pub struct UpstreamConn {
    /// Local stream key it serves.
    pub key: String,
    /// Pull, forward or push.
    pub purpose: LinkPurpose,
    /// Where it goes, for logs (`host:port`).
    pub target: String,
    /// Application to connect to.
    pub app: String,
    /// Stream name to play or publish, query string included.
    pub stream_name: String,
    /// tcUrl naming the target.
    pub tc_url: String,
    /// Relay ids this request has passed through, ours last (loop detection).
    pub via: String,
    /// TCP connect still in progress.
    pub connecting: bool,
}

/// What a connection does on the relay, for logs and cleanup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not publishing or playing yet.
    Undecided,
    /// Publishing `key` on message stream `stream_id`.
    Publisher {
        /// Stream key (shared, so the per-message lookup does not allocate).
        key: std::sync::Arc<str>,
        /// Message stream id.
        stream_id: u32,
    },
    /// Playing one or more streams.
    Player {
        /// (stream key, message stream id) pairs.
        subscriptions: Vec<(String, u32)>,
    },
}

impl Role {
    pub fn describe(&self) -> String {
        match self {
            Role::Undecided => "undecided".to_string(),
            Role::Publisher { key, .. } => format!("publisher of {key}"),
            Role::Player { subscriptions } => {
                let keys: Vec<&str> = subscriptions.iter().map(|(key, _)| key.as_str()).collect();
                format!("player of {}", keys.join(","))
            }
        }
    }
}

/// One accepted TCP connection.
#[derive(Debug)]
pub struct Conn {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    pub phase: Phase,
    pub out: OutQueue,
    /// Edge-triggered: true until a write returns WouldBlock, then until the next event.
    pub writable: bool,
    /// Queued in the relay's flush list already.
    pub flush_scheduled: bool,
    pub role: Role,
    /// What the connection did, for its close log line (kept after the role ends).
    pub summary: String,
    pub opened_at: Instant,
    pub last_activity: Instant,
    pub ping_outstanding: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Set when the connection must close after this iteration, with the reason to log.
    pub close_reason: Option<String>,
    /// Close once everything queued is written, with this reason (shutdown, a forward
    /// whose publisher stopped).
    pub close_after_flush: Option<&'static str>,
    pub dump: Option<BufWriter<File>>,
    /// Set for connections the relay opened to another server.
    pub upstream: Option<UpstreamConn>,
    /// Relay ids the client's connect said it came through (`rtmpEdgeVia`).
    pub via: String,
    /// Stream names as requested (query included), by stream key, to pass upstream.
    pub requested_names: Vec<(String, String)>,
}

impl Conn {
    pub fn new(socket: TcpStream, peer: SocketAddr, handshake: Handshake, now: Instant) -> Conn {
        Conn {
            socket,
            peer,
            phase: Phase::Handshake(Box::new(handshake)),
            out: OutQueue::default(),
            writable: false,
            flush_scheduled: false,
            role: Role::Undecided,
            summary: "did not publish or play".to_string(),
            opened_at: now,
            last_activity: now,
            ping_outstanding: false,
            bytes_in: 0,
            bytes_out: 0,
            close_reason: None,
            close_after_flush: None,
            dump: None,
            upstream: None,
            via: String::new(),
            requested_names: Vec::new(),
        }
    }

    /// Marks the connection for closing (the first reason wins).
    pub fn fail(&mut self, reason: impl Into<String>) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason.into());
        }
    }

    /// The session, once the handshake is done.
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

    /// Whether the client finished connecting (handshake done and connect accepted).
    pub fn is_connected(&self) -> bool {
        match &self.phase {
            Phase::Server(session) => session.app().is_some(),
            Phase::Client(session) => session.is_connected(),
            Phase::Handshake(_) => false,
        }
    }
}
