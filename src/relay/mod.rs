//! The relay: a sans-IO policy core ([`RelayCore`]) under a thin mio driver, on one thread.
//!
//! Publishers and players connect; each media message a publisher sends is chunk-encoded
//! once and shared by reference with every player's write queue. The core decides
//! everything (streams, fan-out, slow players, admission, edge links, timers) from inputs
//! and the time the driver passes in; the driver owns the sockets (and TLS over them, for
//! RTMPS), the clock, signals and the resolver threads. [`run`] is what the `rtmp-edge` binary calls; [`spawn`] runs a
//! relay on a thread for tests and embedding.
//!
//! ```no_run
//! use rtmp_edge::relay::{spawn, Config};
//!
//! let relay = spawn(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).unwrap();
//! println!("publish to rtmp://{}/live/stream", relay.local_addr());
//! relay.shutdown().unwrap();
//! ```

pub mod access;
pub mod config_file;
mod config;
pub mod http;
pub mod core;
mod driver;
mod inspect;
pub mod proxy_protocol;
mod stats;

pub use self::core::{
    Action, CloseReason, ConnId, HookId, LinkPurpose, ListenerKind, ProcessStats, Refusal, RelayCore, StreamKey,
    StreamSummary,
};
pub use config::{Config, ProxyProtocolListeners};
pub use driver::upstream_client_config;
pub use inspect::inspect;
pub use stats::{Stats, StatsSnapshot};

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};

use driver::{Driver, Listener, SignalCount, TlsContext, SIGNALS, WAKER};

/// Re-reads the configuration for a reload (SIGHUP, `POST /api/v1/reload`): the binary
/// passes one that reads its `--config` file again and applies the command line on top.
/// An `Err` is logged and the running configuration stays.
pub type Reloader = Box<dyn FnMut() -> Result<Config, String> + Send>;

/// Everything a relay thread needs, bound.
struct Bound {
    poll: Poll,
    listeners: Vec<Listener>,
    waker: Arc<Waker>,
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    tls: TlsContext,
}

fn bind(config: &Config) -> io::Result<Bound> {
    let poll = Poll::new()?;
    // Certificates first: a bad file fails the start before any port is taken.
    let tls = TlsContext::new(config)?;
    let mut listeners = Vec::new();
    let mut plain_addr = None;
    if config.rtmp_listener {
        let listener = TcpListener::bind(config.listen)?;
        plain_addr = Some(listener.local_addr()?);
        listeners.push(Listener { socket: listener, kind: ListenerKind::Rtmp });
    }
    let mut tls_addr = None;
    if let Some(address) = config.tls_listen {
        let listener = TcpListener::bind(address)
            .map_err(|error| io::Error::new(error.kind(), format!("TLS listener {address}: {error}")))?;
        tls_addr = Some(listener.local_addr()?);
        listeners.push(Listener { socket: listener, kind: ListenerKind::Rtmps });
    }
    let local_addr = plain_addr
        .or(tls_addr)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no RTMP listener: listen is off and tls-listen unset"))?;
    let mut http_addr = None;
    if let Some(address) = config.http_listen {
        let http = TcpListener::bind(address)
            .map_err(|error| io::Error::new(error.kind(), format!("HTTP listener {address}: {error}")))?;
        http_addr = Some(http.local_addr()?);
        listeners.push(Listener { socket: http, kind: ListenerKind::Http });
    }
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    Ok(Bound { poll, listeners, waker, local_addr, tls_addr, http_addr, tls })
}

fn driver(
    config: Config,
    bound: Bound,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    reloader: Option<Reloader>,
) -> io::Result<Driver> {
    let dump_dir = config.dump_dir.clone();
    let core = RelayCore::with_stats(config, rand::random(), Instant::now(), stats);
    let mut driver = Driver::new(bound.poll, bound.listeners, bound.waker, core, stop, dump_dir, bound.tls)?;
    if let Some(reloader) = reloader {
        driver.set_reloader(reloader);
    }
    Ok(driver)
}

/// Runs the relay on this thread until SIGINT or SIGTERM, then shuts down gracefully
/// (players are told the stream ended, queues are flushed for up to 3 s, new connections
/// are refused). A second signal exits at once. SIGHUP reloads the configuration when
/// `reloader` is given (see [`Reloader`]).
pub fn run(config: Config) -> io::Result<()> {
    run_with_reloader(config, None)
}

/// [`run`], with SIGHUP and `POST /api/v1/reload` re-reading the configuration through
/// `reloader`.
pub fn run_with_reloader(config: Config, reloader: Option<Reloader>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook_mio::v1_0::Signals;

    let bound = bind(&config)?;
    if config.rtmp_listener {
        log::info!("rtmp-edge listening on {}", bound.local_addr);
    }
    if let Some(tls) = bound.tls_addr {
        log::info!("rtmp-edge listening for RTMPS (TLS) on {tls}");
    }
    if let Some(http) = bound.http_addr {
        log::info!("HTTP API, metrics and status page on http://{http}/");
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    bound.poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut driver = driver(config, bound, Arc::new(Stats::default()), stop, reloader)?;
    driver.run(|| {
        let mut count = SignalCount::default();
        for signal in signals.pending() {
            log::info!("received signal {signal}");
            if signal == SIGHUP {
                count.reload += 1;
            } else {
                count.shutdown += 1;
            }
        }
        count
    })
}

/// A relay running on its own thread.
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Binds `config.listen` (and `config.tls_listen`, `config.http_listen`) and runs a relay
/// on a new thread.
pub fn spawn(config: Config) -> io::Result<RelayHandle> {
    spawn_with_reloader(config, None)
}

/// [`spawn`], with `POST /api/v1/reload` re-reading the configuration through `reloader`.
pub fn spawn_with_reloader(config: Config, reloader: Option<Reloader>) -> io::Result<RelayHandle> {
    let bound = bind(&config)?;
    let local_addr = bound.local_addr;
    let tls_addr = bound.tls_addr;
    let http_addr = bound.http_addr;
    let waker = Arc::clone(&bound.waker);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut driver = driver(config, bound, Arc::clone(&stats), Arc::clone(&stop), reloader)?;
    let thread = std::thread::Builder::new()
        .name("rtmp-edge-relay".to_string())
        .spawn(move || driver.run(SignalCount::default))?;
    Ok(RelayHandle { local_addr, tls_addr, http_addr, stats, stop, waker, thread: Some(thread) })
}

impl RelayHandle {
    /// The address the relay accepts plain RTMP on (the TLS listener's when the plain
    /// listener is off).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the relay accepts RTMPS on, when `tls_listen` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The address the HTTP API accepts on, when `http_listen` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The relay's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Shuts down gracefully and waits for the relay thread.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake()?;
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| io::Error::other("relay thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
