//! `--workers N`: N drivers, each a whole single-threaded relay on its own thread, with its
//! own `Poll`, core, connections and streams. Shared-nothing on the media path: what they
//! share is control.
//!
//! - **Listeners.** Every worker listens on the RTMP (and RTMPS) address with
//!   `SO_REUSEPORT`, and the kernel spreads new connections over them. Only worker 0 has
//!   the HTTP listener; it gathers the others' parts of each API answer. Each worker also
//!   listens on a private loopback port, where its siblings pull streams published on it.
//! - **Directory.** Which worker has each stream's publisher (`core/siblings.rs`).
//! - **Mail.** A channel per worker plus its `mio::Waker`: the cores' [`SiblingMessage`]s
//!   (a publish started, the API's questions and answers) and reloads.
//! - **Control.** One stop flag for a graceful shutdown and one for exiting at once; the
//!   worker that sets one wakes the others. Signals arrive at worker 0.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use mio::{Poll, Waker};

use super::tls::TlsContext;
use super::{listen, Driver, Listener, WAKER};
use crate::relay::core::{ListenerKind, RelayCore, SiblingAnswer, SiblingMessage, StreamDirectory, WorkerPlace};
use crate::relay::{Config, Reloader, Stats};

/// What one worker's driver sends another's.
pub enum Mail {
    /// For the receiving core, from worker `from`.
    Core {
        /// The sender's index.
        from: usize,
        /// What its core said.
        message: SiblingMessage,
    },
    /// Worker 0 re-read the configuration (and the certificate): apply them.
    Reload(Box<Config>, Box<TlsContext>),
}

struct Peer {
    sender: Sender<Mail>,
    waker: Arc<Waker>,
}

/// One worker's way to reach the others.
pub struct Mailbox {
    inbox: Receiver<Mail>,
    /// Every worker by index; `None` in this worker's own place.
    peers: Vec<Option<Peer>>,
}

impl Mailbox {
    /// Sends `mail` to worker `to` and wakes it; false when that worker has stopped.
    pub fn send(&self, to: usize, mail: Mail) -> bool {
        let Some(Some(peer)) = self.peers.get(to) else { return false };
        if peer.sender.send(mail).is_err() {
            return false;
        }
        let _ = peer.waker.wake();
        true
    }

    /// The other workers' indexes.
    pub fn others(&self) -> impl Iterator<Item = usize> + '_ {
        self.peers.iter().enumerate().filter(|(_, peer)| peer.is_some()).map(|(index, _)| index)
    }

    /// Everything that arrived.
    pub fn take(&self) -> Vec<Mail> {
        self.inbox.try_iter().collect()
    }
}

/// The flags every worker watches, and the wakers to make them look.
#[derive(Clone, Debug)]
pub struct Control {
    /// Set to begin a graceful shutdown.
    pub stop: Arc<AtomicBool>,
    /// Set to exit at once (a second signal).
    pub exit_now: Arc<AtomicBool>,
    wakers: Arc<Vec<Arc<Waker>>>,
}

impl Control {
    /// Flags for workers with no wakers (tests of what sets them).
    #[cfg(test)]
    pub fn unwatched() -> Control {
        Control { stop: Arc::default(), exit_now: Arc::default(), wakers: Arc::default() }
    }

    /// Begins a graceful shutdown of every worker.
    pub fn stop_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Makes every worker exit at once.
    pub fn exit_all(&self) {
        self.exit_now.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    fn wake_all(&self) {
        for waker in self.wakers.iter() {
            let _ = waker.wake();
        }
    }
}

/// The workers, bound and ready to run.
pub struct Workers {
    /// One driver per worker, worker 0 first.
    pub drivers: Vec<Driver>,
    /// The plain RTMP address (or the RTMPS one when the plain listener is off).
    pub local_addr: SocketAddr,
    /// The RTMPS address, if any.
    pub tls_addr: Option<SocketAddr>,
    /// The HTTP address, if any (worker 0's).
    pub http_addr: Option<SocketAddr>,
    /// Each worker's private address (empty with one worker).
    pub sibling_addrs: Vec<SocketAddr>,
    /// Each worker's counters.
    pub stats: Vec<Arc<Stats>>,
    /// Stops them.
    pub control: Control,
}

/// One worker's sockets before its driver exists.
struct Bound {
    poll: Poll,
    listeners: Vec<Listener>,
    waker: Arc<Waker>,
    rtmp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    sibling_addr: Option<SocketAddr>,
}

/// Binds every worker's listeners and builds its driver; `reloader` goes to worker 0.
pub fn start(config: Config, reloader: Option<Reloader>) -> io::Result<Workers> {
    let count = config.workers.resolve();
    let backlog = listen::effective_backlog(config.listen_backlog, listen::somaxconn());
    if backlog < config.listen_backlog {
        log::warn!("listen backlog {backlog}: --listen-backlog {} is capped by net.core.somaxconn", config.listen_backlog);
    } else {
        log::info!("listen backlog {backlog}");
    }
    // Certificates first: a bad file fails the start before any port is taken.
    let tls = TlsContext::new(&config)?;
    let mut bounds: Vec<Bound> = Vec::with_capacity(count);
    let (mut rtmp_at, mut tls_at) = (config.listen, config.tls_listen);
    for index in 0..count {
        let bound = bind(&config, index, count, rtmp_at, tls_at, backlog)?;
        // Worker 0 picked the ports (an ephemeral one when asked for 0); the others join it.
        rtmp_at = bound.rtmp_addr.unwrap_or(rtmp_at);
        tls_at = bound.tls_addr.or(tls_at);
        bounds.push(bound);
    }
    let first = bounds.first().ok_or_else(|| io::Error::other("no workers"))?;
    let local_addr = first.rtmp_addr.or(first.tls_addr).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "no RTMP listener: listen is off and tls-listen unset")
    })?;
    let (tls_addr, http_addr) = (first.tls_addr, first.http_addr);
    let sibling_addrs: Vec<SocketAddr> = bounds.iter().filter_map(|bound| bound.sibling_addr).collect();
    let control = Control {
        stop: Arc::new(AtomicBool::new(false)),
        exit_now: Arc::new(AtomicBool::new(false)),
        wakers: Arc::new(bounds.iter().map(|bound| Arc::clone(&bound.waker)).collect()),
    };
    let channels: Vec<(Sender<Mail>, Receiver<Mail>)> = (0..count).map(|_| channel()).collect();
    let senders: Vec<Sender<Mail>> = channels.iter().map(|(sender, _)| sender.clone()).collect();
    let directory = Arc::new(StreamDirectory::default());
    let clients_open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let secret = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let mut reloader = reloader;
    let mut drivers = Vec::with_capacity(count);
    let mut stats = Vec::with_capacity(count);
    for (index, (bound, (_, inbox))) in bounds.into_iter().zip(channels).enumerate() {
        let worker_stats = Arc::new(Stats::default());
        let now = Instant::now();
        let core = match count {
            1 => RelayCore::with_stats(config.clone(), rand::random(), now, Arc::clone(&worker_stats)),
            _ => {
                let place = WorkerPlace {
                    index,
                    count,
                    directory: Arc::clone(&directory),
                    sibling_addrs: sibling_addrs.clone(),
                    secret: secret.clone(),
                    clients_open: Arc::clone(&clients_open),
                };
                RelayCore::for_worker(config.clone(), rand::random(), now, Arc::clone(&worker_stats), place)
            }
        };
        let mailbox = (count > 1).then(|| Mailbox {
            inbox,
            peers: (0..count)
                .map(|peer| {
                    let waker = control.wakers.get(peer)?;
                    let sender = senders.get(peer)?;
                    (peer != index).then(|| Peer { sender: sender.clone(), waker: Arc::clone(waker) })
                })
                .collect(),
        });
        let dump_dir = config.dump_dir.clone();
        let mut driver =
            Driver::new(bound.poll, bound.listeners, bound.waker, core, control.clone(), dump_dir, tls.clone())?;
        driver.set_mailbox(mailbox);
        if let Some(reloader) = reloader.take() {
            driver.set_reloader(reloader);
        }
        drivers.push(driver);
        stats.push(worker_stats);
    }
    Ok(Workers { drivers, local_addr, tls_addr, http_addr, sibling_addrs, stats, control })
}

/// Worker `index`'s listeners: RTMP and RTMPS at the given addresses (shared through
/// `SO_REUSEPORT` when there are several workers), HTTP on worker 0 only, and with several
/// workers a private loopback listener for the siblings.
fn bind(
    config: &Config,
    index: usize,
    count: usize,
    rtmp_at: SocketAddr,
    tls_at: Option<SocketAddr>,
    backlog: u32,
) -> io::Result<Bound> {
    let poll = Poll::new()?;
    let shared = count > 1;
    let mut listeners = Vec::new();
    let mut rtmp_addr = None;
    // Worker 0 founds each shared group; the others join the address it got.
    let bind_shared = |address, backlog| match (shared, index) {
        (true, 0) => listen::bind_first_of_group(address, backlog),
        _ => listen::bind(address, backlog, shared),
    };
    if config.rtmp_listener {
        let listener = bind_shared(rtmp_at, backlog)?;
        rtmp_addr = Some(listener.local_addr()?);
        listeners.push(Listener { socket: listener, kind: ListenerKind::Rtmp });
    }
    let mut tls_addr = None;
    if let Some(address) = tls_at {
        let listener = bind_shared(address, backlog)
            .map_err(|error| io::Error::new(error.kind(), format!("TLS listener {address}: {error}")))?;
        tls_addr = Some(listener.local_addr()?);
        listeners.push(Listener { socket: listener, kind: ListenerKind::Rtmps });
    }
    let mut http_addr = None;
    if let Some(address) = config.http_listen.filter(|_| index == 0) {
        let listener = listen::bind(address, backlog, false)
            .map_err(|error| io::Error::new(error.kind(), format!("HTTP listener {address}: {error}")))?;
        http_addr = Some(listener.local_addr()?);
        listeners.push(Listener { socket: listener, kind: ListenerKind::Http });
    }
    let mut sibling_addr = None;
    if shared {
        let listener = listen::bind(SocketAddr::from(([127, 0, 0, 1], 0)), backlog, false)?;
        sibling_addr = Some(listener.local_addr()?);
        listeners.push(Listener { socket: listener, kind: ListenerKind::Sibling });
    }
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    if shared {
        log::info!("worker {index} of {count}: private listener for sibling workers on {}", sibling_addr.map_or_else(String::new, |a| a.to_string()));
    }
    Ok(Bound { poll, listeners, waker, rtmp_addr, tls_addr, http_addr, sibling_addr })
}

impl Driver {
    /// Passes a core's message to its siblings. An ask for a worker that has stopped is
    /// answered for it: it has nothing.
    pub(super) fn tell_siblings(&mut self, to: Option<usize>, message: SiblingMessage) {
        let Some(mailbox) = &self.mailbox else { return };
        let me = self.core.worker_place().map_or(0, |place| place.index);
        let targets: Vec<usize> = match to {
            Some(worker) => vec![worker],
            None => mailbox.others().collect(),
        };
        let mut gone = Vec::new();
        for worker in targets {
            if !mailbox.send(worker, Mail::Core { from: me, message: message.clone() }) {
                gone.push(worker);
            }
        }
        if let SiblingMessage::Ask { id, .. } = message {
            for worker in gone {
                let answer = SiblingMessage::Answer { id, answer: SiblingAnswer::Gone };
                self.core.handle_sibling_message(worker, answer, Instant::now());
            }
        }
    }

    /// Hands what the siblings sent to the core.
    pub(super) fn take_mail(&mut self) {
        let Some(mailbox) = &self.mailbox else { return };
        for mail in mailbox.take() {
            match mail {
                Mail::Core { from, message } => self.core.handle_sibling_message(from, message, Instant::now()),
                Mail::Reload(config, tls) => {
                    self.tls = *tls;
                    self.core.handle_reload(Ok(*config), Instant::now());
                }
            }
        }
    }
}
