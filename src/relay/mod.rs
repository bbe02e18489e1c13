//! The relay: one thread, one `mio::Poll`, a `Slab` of connections.
//!
//! Publishers and players connect; each media message a publisher sends is chunk-encoded
//! once and shared by reference with every player's write queue (see `DESIGN.md`).
//! [`run`] is what the `rtmp-edge` binary calls; [`spawn`] runs a relay on a thread for
//! tests and embedding.
//!
//! ```no_run
//! use rtmp_edge::relay::{spawn, Config};
//!
//! let relay = spawn(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).unwrap();
//! println!("publish to rtmp://{}/live/stream", relay.local_addr());
//! relay.shutdown().unwrap();
//! ```

mod config;
mod conn;
mod event_loop;
mod inspect;
mod out_queue;
mod stats;
mod stream;

pub use config::Config;
pub use event_loop::stream_key;
pub use inspect::inspect;
pub use stats::{Stats, StatsSnapshot};

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};

use event_loop::{Relay, LISTENER, SIGNALS, WAKER};

fn bind(config: &Config) -> io::Result<(Poll, TcpListener)> {
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(config.listen)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    Ok((poll, listener))
}

/// Runs the relay on this thread until SIGINT or SIGTERM, then shuts down gracefully
/// (players are told the stream ended, queues are flushed). A second signal exits at once.
pub fn run(config: Config) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook_mio::v1_0::Signals;

    let (poll, listener) = bind(&config)?;
    log::info!("rtmp-edge listening on {}", listener.local_addr()?);
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut relay = Relay::new(config, poll, listener, Arc::new(Stats::default()), stop);
    relay.run(|| {
        let mut count = 0;
        for signal in signals.pending() {
            log::info!("received signal {signal}");
            count += 1;
        }
        count
    })
}

/// A relay running on its own thread.
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Binds `config.listen` and runs a relay on a new thread.
pub fn spawn(config: Config) -> io::Result<RelayHandle> {
    let (poll, listener) = bind(&config)?;
    let local_addr = listener.local_addr()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut relay = Relay::new(config, poll, listener, Arc::clone(&stats), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("rtmp-edge-relay".to_string())
        .spawn(move || relay.run(|| 0))?;
    Ok(RelayHandle { local_addr, stats, stop, waker, thread: Some(thread) })
}

impl RelayHandle {
    /// The address the relay accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
