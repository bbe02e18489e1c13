//! Everything an operator can set on the relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Relay settings. `Config::default()` is a working standalone relay on 0.0.0.0:1935.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to accept RTMP connections on.
    pub listen: SocketAddr,
    /// Outgoing chunk size for every connection.
    pub chunk_size: u32,
    /// Whether late joiners get the cached GOP (from the last keyframe) at once.
    pub gop_cache: bool,
    /// Most connections open at once; more are refused at accept.
    pub max_connections: usize,
    /// Most connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Longest RTMP message accepted from a peer, in bytes.
    pub max_message_size: u32,
    /// A player whose oldest unsent byte has waited longer than this (ms, wall clock)
    /// drops frames up to the next keyframe.
    pub queue_soft_limit_ms: u32,
    /// A player whose oldest unsent byte has waited longer than this (ms) is disconnected.
    pub queue_hard_limit_ms: u32,
    /// A player whose queue costs more than this many bytes (each entry counted with its
    /// overhead) is disconnected.
    pub queue_hard_limit_bytes: usize,
    /// A player with more than this many queued entries is disconnected.
    pub queue_hard_limit_entries: usize,
    /// Live frames for players are written at most this often (zero: at once). Batching
    /// a few frames per write saves system calls and TCP segments, at this much latency.
    pub write_batch: Duration,
    /// Most bytes of media kept in one stream's GOP cache; a longer GOP is not cached.
    pub gop_cache_max_bytes: usize,
    /// Most frames kept in one stream's GOP cache.
    pub gop_cache_max_frames: usize,
    /// Time a connection has to finish the handshake and connect.
    pub handshake_timeout: Duration,
    /// A connection with no traffic in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Write each connection's raw inbound bytes to a file in this directory.
    pub dump_dir: Option<PathBuf>,
    /// Origins (`host:port`, tried in order) that make this relay an edge: plays of streams
    /// with no local publisher are pulled from them, local publishes are forwarded to them.
    pub origins: Vec<String>,
    /// How long an unwatched pull stays open after its last player leaves.
    pub pull_linger: Duration,
    /// The longest silence tolerated from a pull that was delivering media before it is
    /// retried.
    pub upstream_timeout: Duration,
    /// Time an upstream connection has to resolve and open TCP.
    pub upstream_connect_timeout: Duration,
    /// Time an upstream connection has for the RTMP handshake.
    pub upstream_handshake_timeout: Duration,
    /// Time an upstream connection has for the connect and play/publish answers.
    pub upstream_reply_timeout: Duration,
    /// Extra destinations every local publish (or the one named in the URL) is re-published to.
    pub push: Vec<crate::url::RtmpUrl>,
    /// Most upstream connections being set up at once.
    pub max_upstream_connects: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            chunk_size: 4096,
            gop_cache: true,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_message_size: 8 * 1024 * 1024,
            queue_soft_limit_ms: 3_000,
            queue_hard_limit_ms: 10_000,
            queue_hard_limit_bytes: 32 * 1024 * 1024,
            queue_hard_limit_entries: 8192,
            gop_cache_max_bytes: 16 * 1024 * 1024,
            gop_cache_max_frames: 8192,
            write_batch: Duration::ZERO,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            dump_dir: None,
            origins: Vec::new(),
            pull_linger: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(10),
            // Together under 5 s: a silent origin is left well inside a player's patience
            // (ffmpeg's -rw_timeout and many players give up after 10 s).
            upstream_connect_timeout: Duration::from_millis(1500),
            upstream_handshake_timeout: Duration::from_millis(1500),
            upstream_reply_timeout: Duration::from_millis(1500),
            push: Vec::new(),
            max_upstream_connects: 64,
        }
    }
}
