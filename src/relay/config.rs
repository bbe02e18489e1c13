//! Everything an operator can set on the relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::core::ListenerKind;

/// The largest `hook-max-pending`: the hook pool may run twice as many threads.
pub const MAX_HOOK_PENDING: usize = 4096;
/// The most workers (`--workers`): connection ids carry the worker in 7 bits.
pub const MAX_WORKERS: usize = 64;

/// How many worker threads run the relay (`--workers N|auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// This many.
    Count(usize),
    /// One per core the process may run on (`std::thread::available_parallelism`).
    Auto,
}

impl Workers {
    /// The number to start, at most [`MAX_WORKERS`].
    pub fn resolve(self) -> usize {
        let count = match self {
            Workers::Count(count) => count,
            Workers::Auto => std::thread::available_parallelism().map_or(1, usize::from),
        };
        count.clamp(1, MAX_WORKERS)
    }
}

impl std::str::FromStr for Workers {
    type Err = String;

    /// `auto` or a count from 1 to [`MAX_WORKERS`].
    fn from_str(text: &str) -> Result<Workers, String> {
        if text == "auto" {
            return Ok(Workers::Auto);
        }
        match text.parse::<usize>() {
            Ok(count) if (1..=MAX_WORKERS).contains(&count) => Ok(Workers::Count(count)),
            _ => Err(format!("workers takes auto or a number from 1 to {MAX_WORKERS}, not {text:?}")),
        }
    }
}

/// Relay settings. `Config::default()` is a working standalone relay on 0.0.0.0:1935.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to accept plain RTMP connections on (when `rtmp_listener` is on).
    pub listen: SocketAddr,
    /// Whether the plain RTMP listener is open. Off (`--listen off`) for a relay that
    /// serves RTMPS only.
    pub rtmp_listener: bool,
    /// Worker threads, each with its own loop, listeners (`SO_REUSEPORT` on the same
    /// port) and streams; a stream published on one is played from every other through a
    /// pull over loopback (see `relay::driver::workers`).
    pub workers: Workers,
    /// The `listen(2)` backlog of every listener: connections the kernel completes and
    /// holds until the loop accepts them. Capped by `net.core.somaxconn`.
    pub listen_backlog: u32,
    /// Address to accept RTMPS (RTMP over TLS) connections on; off when `None`. Needs
    /// `tls_cert` and `tls_key`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM file with the TLS listener's certificate chain, leaf first. Re-read on reload.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Re-read on reload.
    pub tls_key: Option<PathBuf>,
    /// PEM file with the CA certificates that `rtmps://` origins and pushes are verified
    /// against, instead of the system's roots.
    pub tls_ca: Option<PathBuf>,
    /// Accept any certificate from `rtmps://` upstreams (tests and labs only: it gives up
    /// the protection TLS is there for). Logged as a warning at start.
    pub tls_insecure_upstream: bool,
    /// Outgoing chunk size for every connection.
    pub chunk_size: u32,
    /// Whether late joiners get the cached GOP (from the last keyframe) at once.
    pub gop_cache: bool,
    /// Most client connections open at once, on all the workers together; more are
    /// refused at accept. The relay's own pulls and links between workers do not count.
    pub max_connections: usize,
    /// Most connections open at once from one IP address, on each worker.
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
    /// Origins (`host[:port]`, `rtmp://host[:port]` or `rtmps://host[:port]` for TLS; tried
    /// in order) that make this relay an edge: plays of streams with no local publisher are
    /// pulled from them, local publishes are forwarded to them.
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
    /// Address for the HTTP API, metrics and status page; off when `None`.
    pub http_listen: Option<SocketAddr>,
    /// When set, the API and `/metrics` require `Authorization: Bearer TOKEN`.
    pub http_token: Option<String>,
    /// Most HTTP connections open at once. At the limit, a new one takes the place of the
    /// connection idle longest; when none is idle, it is refused.
    pub http_max_connections: usize,
    /// Time an HTTP client has to send a request's head, from accept or from its first byte.
    pub http_header_timeout: Duration,
    /// An HTTP connection idle between requests (keep-alive) this long is closed.
    pub http_idle_timeout: Duration,
    /// Who may publish and play: IP rules, signed URLs, the HTTP hook.
    pub access: super::access::AccessConfig,
    /// Listeners whose connections start with a PROXY protocol header (from HAProxy or
    /// another L4 balancer): the client's address comes from it.
    pub proxy_protocol: ProxyProtocolListeners,
}

/// Which listeners require a PROXY protocol header (v1 or v2) before their first byte.
/// Given as names: `rtmp`, `rtmps`, `http` (`--proxy-protocol rtmp,rtmps`).
///
/// ```
/// use rtmp_edge::relay::{ListenerKind, ProxyProtocolListeners};
///
/// let listeners = ProxyProtocolListeners::parse(&["rtmp", "http"]).unwrap();
/// assert!(listeners.requires(ListenerKind::Rtmp) && !listeners.requires(ListenerKind::Rtmps));
/// assert_eq!(listeners.names(), ["rtmp", "http"]);
/// assert!(ProxyProtocolListeners::parse(&["ftp"]).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyProtocolListeners {
    /// The plain RTMP listener.
    pub rtmp: bool,
    /// The RTMPS listener: the header comes before the TLS bytes.
    pub rtmps: bool,
    /// The HTTP listener (API, metrics, status page).
    pub http: bool,
}

impl ProxyProtocolListeners {
    /// Reads listener names; `off` alone means none.
    pub fn parse(names: &[&str]) -> Result<ProxyProtocolListeners, String> {
        let mut listeners = ProxyProtocolListeners::default();
        for name in names {
            match name.trim() {
                "rtmp" => listeners.rtmp = true,
                "rtmps" => listeners.rtmps = true,
                "http" => listeners.http = true,
                "off" if names.len() == 1 => {}
                other => return Err(format!("{other:?} is not a listener: give rtmp, rtmps and/or http, or off")),
            }
        }
        Ok(listeners)
    }

    /// Whether connections accepted on a `kind` listener must start with a PROXY header.
    pub fn requires(&self, kind: ListenerKind) -> bool {
        match kind {
            ListenerKind::Rtmp => self.rtmp,
            ListenerKind::Rtmps => self.rtmps,
            ListenerKind::Http => self.http,
            // Workers' private loopback listener: only siblings connect, directly.
            ListenerKind::Sibling => false,
        }
    }

    /// The listeners named, in the order rtmp, rtmps, http.
    pub fn names(&self) -> Vec<&'static str> {
        [(self.rtmp, "rtmp"), (self.rtmps, "rtmps"), (self.http, "http")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            rtmp_listener: true,
            workers: Workers::Count(1),
            listen_backlog: 4096,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_insecure_upstream: false,
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
            http_listen: None,
            http_token: None,
            http_max_connections: 128,
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            access: super::access::AccessConfig::default(),
            proxy_protocol: ProxyProtocolListeners::default(),
        }
    }
}

impl Config {
    /// Checks what no single option can: the whole configuration, whichever way it was
    /// made (flags, a file, a reload). Returns every problem found.
    ///
    /// ```
    /// use rtmp_edge::relay::Config;
    ///
    /// assert!(Config::default().validate().is_ok());
    /// let bad = Config { queue_soft_limit_ms: 9_000, queue_hard_limit_ms: 100, ..Config::default() };
    /// assert_eq!(bad.validate().unwrap_err().len(), 1);
    /// ```
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(128..=0x7FFF_FFFF).contains(&self.chunk_size) {
            problems.push(format!("chunk-size {} is not between 128 and 2147483647", self.chunk_size));
        }
        if self.queue_soft_limit_ms > self.queue_hard_limit_ms {
            problems.push(format!(
                "queue-soft-limit ({} ms) must not exceed queue-hard-limit ({} ms)",
                self.queue_soft_limit_ms, self.queue_hard_limit_ms
            ));
        }
        for origin in &self.origins {
            if let Err(error) = crate::url::parse_origin(origin) {
                problems.push(format!("origin {origin}: {error}"));
            }
        }
        if self.http_token.as_deref().is_some_and(|token| token.is_empty() || token.chars().any(char::is_whitespace)) {
            problems.push("http-token must be non-empty and contain no spaces".to_string());
        }
        if !self.rtmp_listener && self.tls_listen.is_none() {
            problems.push("listen is off and tls-listen is not set: the relay would accept no RTMP".to_string());
        }
        match (self.tls_listen, &self.tls_cert, &self.tls_key) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => {}
            (Some(_), _, _) => problems.push("tls-listen needs tls-cert and tls-key".to_string()),
            (None, _, _) => problems.push("tls-cert and tls-key are only used with tls-listen".to_string()),
        }
        if let Workers::Count(count) = self.workers {
            if !(1..=MAX_WORKERS).contains(&count) {
                problems.push(format!("workers must be auto or between 1 and {MAX_WORKERS}"));
            }
        }
        if !(1..=65_535).contains(&self.listen_backlog) {
            problems.push("listen-backlog must be between 1 and 65535".to_string());
        }
        if self.http_max_connections == 0 {
            problems.push("http-max-connections must be at least 1".to_string());
        }
        // A connect waits for the hook before the handshake timeout ends it.
        if self.access.hook_url.is_some() && self.access.hook_timeout >= self.handshake_timeout {
            problems.push(format!(
                "hook-timeout ({} ms) must be shorter than handshake-timeout ({} s): a connect waits for the hook within it",
                self.access.hook_timeout.as_millis(),
                self.handshake_timeout.as_secs()
            ));
        }
        // Each decision and each notification in flight may hold a hook thread.
        if !(1..=MAX_HOOK_PENDING).contains(&self.access.hook_max_pending) {
            problems.push(format!("hook-max-pending must be between 1 and {MAX_HOOK_PENDING}"));
        }
        for (required, open, name, listener) in [
            (self.proxy_protocol.rtmp, self.rtmp_listener, "rtmp", "listen is off"),
            (self.proxy_protocol.rtmps, self.tls_listen.is_some(), "rtmps", "tls-listen is not set"),
            (self.proxy_protocol.http, self.http_listen.is_some(), "http", "http-listen is not set"),
        ] {
            if required && !open {
                problems.push(format!("proxy-protocol names {name}, but {listener}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
