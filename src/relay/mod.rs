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
/// The PROXY protocol parser lives in the library (it is sans-IO); re-exported here,
/// where it was first.
pub use crate::proxy_protocol;
mod stats;

pub use self::core::{
    Action, CloseReason, ConnId, HookId, LinkPurpose, ListenerKind, ProcessStats, Refusal, RelayCore, StreamKey,
    StreamSummary,
};
pub use config::{Config, ProxyProtocolListeners, Workers, MAX_WORKERS};
pub use driver::upstream_client_config;
pub use inspect::inspect;
pub use stats::{Stats, StatsSnapshot};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::Interest;

use driver::workers::{self, Control};
use driver::{SignalCount, SIGNALS};

/// Re-reads the configuration for a reload (SIGHUP, `POST /api/v1/reload`): the binary
/// passes one that reads its `--config` file again and applies the command line on top.
/// An `Err` is logged and the running configuration stays.
pub type Reloader = Box<dyn FnMut() -> Result<Config, String> + Send>;

/// Runs the relay on this thread until SIGINT or SIGTERM, then shuts down gracefully
/// (players are told the stream ended, queues are flushed for up to 3 s, new connections
/// are refused). A second signal exits at once. SIGHUP reloads the configuration when
/// `reloader` is given (see [`Reloader`]). With `config.workers` above 1, workers 1 and up
/// run on threads of their own and this thread runs worker 0, which takes the signals.
pub fn run(config: Config) -> io::Result<()> {
    run_with_reloader(config, None)
}

/// [`run`], with SIGHUP and `POST /api/v1/reload` re-reading the configuration through
/// `reloader`.
pub fn run_with_reloader(config: Config, reloader: Option<Reloader>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook_mio::v1_0::Signals;

    let rtmp_listener = config.rtmp_listener;
    let started = workers::start(config, reloader)?;
    if rtmp_listener {
        log::info!("rtmp-edge listening on {}", started.local_addr);
    }
    if let Some(tls) = started.tls_addr {
        log::info!("rtmp-edge listening for RTMPS (TLS) on {tls}");
    }
    if let Some(http) = started.http_addr {
        log::info!("HTTP API, metrics and status page on http://{http}/");
    }
    if started.drivers.len() > 1 {
        log::info!("{} workers, one thread each", started.drivers.len());
    }
    let mut drivers = started.drivers.into_iter();
    let mut first = drivers.next().ok_or_else(|| io::Error::other("no workers"))?;
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    first.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
    let others = spawn_workers(drivers, 1, &started.control)?;
    let result = first.run(|| {
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
    });
    if result.is_err() {
        started.control.exit_all();
    }
    join_workers(others).and(result)
}

/// Runs each driver on a thread of its own, naming it by its worker index. If a thread
/// cannot be started, those that were are stopped and waited for: the caller gets an
/// error and no handle to stop them with.
fn spawn_workers(
    drivers: impl Iterator<Item = driver::Driver>,
    first_index: usize,
    control: &Control,
) -> io::Result<Vec<JoinHandle<io::Result<()>>>> {
    let mut threads = Vec::new();
    for (offset, mut driver) in drivers.enumerate() {
        let worker = first_index + offset;
        let watcher = control.clone();
        let spawned = std::thread::Builder::new().name(format!("rtmp-edge-worker-{worker}")).spawn(move || {
            let _on_panic = StopAllOnPanic { control: &watcher, worker };
            let result = driver.run(SignalCount::default);
            if let Err(error) = &result {
                stop_all_after_failure(&watcher, worker, error);
            }
            result
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                control.exit_all();
                let _ = join_workers(threads);
                return Err(error);
            }
        }
    }
    Ok(threads)
}

/// A worker that fails takes the relay down with it, gracefully: its streams, directory
/// claims and private listener are gone, so the others would refuse those streams and
/// pull from a closed port until restarted. Better a clear exit that a supervisor sees.
fn stop_all_after_failure(control: &Control, worker: usize, error: &dyn std::fmt::Display) {
    log::error!("worker {worker} failed: {error}; stopping every worker");
    control.stop_all();
}

/// Stops every worker if the worker thread holding it panics (when panics unwind).
struct StopAllOnPanic<'a> {
    control: &'a Control,
    worker: usize,
}

impl Drop for StopAllOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            stop_all_after_failure(self.control, self.worker, &"panicked");
        }
    }
}

/// Waits for every worker thread; the first error (or panic) is the result.
fn join_workers(threads: Vec<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    let mut result = Ok(());
    for thread in threads {
        let outcome = thread.join().map_err(|_| io::Error::other("relay thread panicked")).and_then(|outcome| outcome);
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

/// A relay running on its own threads (one per worker).
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    sibling_addrs: Vec<SocketAddr>,
    stats: Vec<Arc<Stats>>,
    control: Control,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

/// Binds `config.listen` (and `config.tls_listen`, `config.http_listen`) and runs a relay
/// on new threads, one per worker.
pub fn spawn(config: Config) -> io::Result<RelayHandle> {
    spawn_with_reloader(config, None)
}

/// [`spawn`], with `POST /api/v1/reload` re-reading the configuration through `reloader`.
pub fn spawn_with_reloader(config: Config, reloader: Option<Reloader>) -> io::Result<RelayHandle> {
    let started = workers::start(config, reloader)?;
    let threads = spawn_workers(started.drivers.into_iter(), 0, &started.control)?;
    Ok(RelayHandle {
        local_addr: started.local_addr,
        tls_addr: started.tls_addr,
        http_addr: started.http_addr,
        sibling_addrs: started.sibling_addrs,
        stats: started.stats,
        control: started.control,
        threads,
    })
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

    /// How many workers run the relay.
    pub fn workers(&self) -> usize {
        self.stats.len()
    }

    /// Each worker's private loopback address, where its siblings pull from it (empty with
    /// one worker). Only sibling workers are served there.
    pub fn sibling_addrs(&self) -> &[SocketAddr] {
        &self.sibling_addrs
    }

    /// The relay's counters now, every worker's added up. `players` counts viewers only,
    /// not the pulls between workers; `connections_open` counts every socket.
    pub fn stats(&self) -> StatsSnapshot {
        let mut total = StatsSnapshot::default();
        for stats in &self.stats {
            total.add(&stats.snapshot());
        }
        total
    }

    /// One worker's counters now.
    pub fn worker_stats(&self, worker: usize) -> Option<StatsSnapshot> {
        self.stats.get(worker).map(|stats| stats.snapshot())
    }

    /// Shuts down gracefully and waits for every worker.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.control.stop_all();
        join_workers(std::mem::take(&mut self.threads))
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_worker_thread_that_panics_stops_every_worker() {
        let control = Control::unwatched();
        let watched = control.clone();
        let thread = std::thread::spawn(move || {
            let _on_panic = StopAllOnPanic { control: &control, worker: 3 };
            panic!("a bug in worker 3");
        });
        assert!(thread.join().is_err());
        assert!(watched.stop.load(Ordering::SeqCst), "the others begin a graceful shutdown");
        assert!(!watched.exit_now.load(Ordering::SeqCst));
    }

    #[test]
    fn a_worker_thread_that_ends_normally_stops_nobody() {
        let control = Control::unwatched();
        let watched = control.clone();
        std::thread::spawn(move || {
            let _on_panic = StopAllOnPanic { control: &control, worker: 0 };
        })
        .join()
        .unwrap();
        assert!(!watched.stop.load(Ordering::SeqCst));
    }
}
