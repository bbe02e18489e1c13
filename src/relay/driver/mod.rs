//! The only part of the relay that touches the OS: one `mio::Poll`, the sockets, the
//! clock, signals and the resolver threads, and the transports under the core's bytes
//! (plain TCP, or TLS through rustls on the same thread). Everything it learns goes to
//! the [`RelayCore`]; everything the core asks for ([`Action`]) it does.

mod accept;
mod hook_pool;
pub mod listen;
mod process_stats;
mod proxy_header;
mod resolver;
mod tls;
mod tls_io;
mod transport;
pub mod workers;

use std::fs::File;
use std::io::{self, BufWriter, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::core::{Action, CloseReason, ConnId, ListenerKind, RelayCore};
use super::access::HookOutcome;
use super::Reloader;
use hook_pool::HookPool;
use resolver::Resolver;
pub use tls::{upstream_client_config, TlsContext};
use tls_io::Draining;
use transport::{TlsRead, TlsStream};
use workers::{Control, Mail, Mailbox};

pub const WAKER: Token = Token(usize::MAX - 2);
pub const SIGNALS: Token = Token(usize::MAX - 3);
/// Listener `i` is registered as `LISTENERS_TOP - i`.
const LISTENERS_TOP: usize = usize::MAX - 16;
/// Most listeners one driver serves (the tokens below them are never connection ids,
/// whose generation fits in 31 bits).
const MAX_LISTENERS: usize = 16;

const READ_BUFFER_SIZE: usize = 64 * 1024;
/// Reads one connection gets before the loop moves on (1 MiB), so a fast peer cannot hold
/// up the others' writes and timers.
const READS_PER_TURN: usize = 16;
/// Most slices handed to one writev call (well under Linux's IOV_MAX of 1024).
const MAX_SLICES_PER_WRITE: usize = 64;
/// How long a finished relay waits for its last hook notifications to go out.
const HOOK_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often the wall clock and (with an HTTP listener) the process figures go to the core.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Signals that arrived since the last poll, by what they ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalCount {
    /// SIGINT, SIGTERM: the first begins a graceful shutdown, another exits at once.
    pub shutdown: usize,
    /// SIGHUP: re-read the configuration.
    pub reload: usize,
}

fn token_of(id: ConnId) -> Token {
    Token(id.to_u64() as usize)
}

fn id_of(token: Token) -> Option<ConnId> {
    ConnId::from_u64(token.0 as u64)
}

struct Socket {
    id: ConnId,
    stream: TcpStream,
    /// Edge-triggered: true until a write returns WouldBlock, then until the next event.
    writable: bool,
    /// An outgoing connect still in progress.
    connecting: bool,
    dump: Option<BufWriter<File>>,
    /// RTMPS: TLS between the socket and the core. `None` is plain TCP, whose writes go
    /// from the core's shared frames to the socket with no copy.
    tls: Option<Box<TlsStream>>,
    /// A PROXY protocol header comes first and is not taken off yet (`proxy_header.rs`).
    awaits_proxy_header: bool,
    /// The peer as logs name it: the socket's, or the client's from a PROXY header.
    peer: SocketAddr,
}

/// A socket the driver accepts on, and what it speaks.
pub struct Listener {
    /// The bound, listening socket.
    pub socket: TcpListener,
    /// What connections accepted on it speak.
    pub kind: ListenerKind,
}

/// The event loop around one [`RelayCore`].
pub struct Driver {
    poll: Poll,
    /// Dropped (so new connections are refused) when a shutdown begins, all but HTTP. A
    /// listener's place is its token, so a dropped one leaves `None`.
    listeners: Vec<Option<Listener>>,
    sockets: Vec<Option<Socket>>,
    core: RelayCore,
    resolver: Resolver,
    hooks: HookPool,
    read_buffer: Vec<u8>,
    /// Connections that still had bytes to read when their turn ended.
    read_again: Vec<ConnId>,
    /// Listeners to accept from again, and from when (see `accept_all`).
    accept_again: Vec<(usize, Instant)>,
    /// The stop flags this worker shares with its siblings (and with a `RelayHandle`).
    control: Control,
    /// With several workers: the way to the others.
    mailbox: Option<Mailbox>,
    dump_dir: Option<PathBuf>,
    stopped: bool,
    /// Re-reads the configuration for SIGHUP and `POST /api/v1/reload`.
    reloader: Option<Reloader>,
    /// Whether `/metrics` can be asked for, so the process figures are worth reading.
    samples_process: bool,
    next_sample: Instant,
    /// The RTMPS listener's certificate and the roots for `rtmps://` upstreams.
    tls: TlsContext,
    /// Closed TLS connections still sending their last records and close_notify.
    draining: Vec<Draining>,
}

impl Driver {
    /// A driver for `core`, accepting on `listeners` (it registers them), with `tls` for
    /// the RTMPS listener and `rtmps://` upstreams.
    pub fn new(
        poll: Poll,
        mut listeners: Vec<Listener>,
        waker: Arc<Waker>,
        mut core: RelayCore,
        control: Control,
        dump_dir: Option<PathBuf>,
        tls: TlsContext,
    ) -> io::Result<Driver> {
        if listeners.len() > MAX_LISTENERS {
            return Err(io::Error::other(format!("at most {MAX_LISTENERS} listeners")));
        }
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(&mut listener.socket, Token(LISTENERS_TOP - index), Interest::READABLE)?;
        }
        let now = Instant::now();
        core.set_unix_time(now, unix_now());
        let samples_process = listeners.iter().any(|listener| listener.kind == ListenerKind::Http);
        Ok(Driver {
            poll,
            listeners: listeners.into_iter().map(Some).collect(),
            sockets: Vec::new(),
            core,
            resolver: Resolver::start(Arc::clone(&waker))?,
            hooks: HookPool::new(waker),
            read_buffer: vec![0; READ_BUFFER_SIZE],
            read_again: Vec::new(),
            accept_again: Vec::new(),
            control,
            mailbox: None,
            dump_dir,
            stopped: false,
            reloader: None,
            samples_process,
            next_sample: now,
            tls,
            draining: Vec::new(),
        })
    }

    /// How this worker reaches its siblings (with several workers).
    pub fn set_mailbox(&mut self, mailbox: Option<Mailbox>) {
        self.mailbox = mailbox;
    }

    /// The poll's registry, to register a signal source with.
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// Where reloads get the new configuration from; without one, a reload is refused.
    pub fn set_reloader(&mut self, reloader: Reloader) {
        self.reloader = Some(reloader);
    }

    /// Runs until a shutdown completes. `on_signal` is polled when the SIGNALS token fires
    /// and says which signals arrived: a reload re-reads the configuration; the first
    /// shutdown signal begins a graceful shutdown, the second exits at once.
    pub fn run(&mut self, mut on_signal: impl FnMut() -> SignalCount) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if self.control.exit_now.load(Ordering::SeqCst) {
                return Ok(());
            }
            let now = Instant::now();
            let timeout = if self.read_again.is_empty() {
                let accepts = self.accept_again.iter().map(|(_, at)| *at);
                let next = self.core.poll_timeout().into_iter().chain(self.drain_deadline()).chain(accepts).min();
                next.map(|at| at.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            for event in events.iter() {
                match event.token() {
                    Token(token) if token <= LISTENERS_TOP && token > LISTENERS_TOP - MAX_LISTENERS => {
                        self.accept_all(LISTENERS_TOP - token)
                    }
                    WAKER => {
                        self.take_resolver_answers();
                        self.take_hook_answers();
                        self.take_mail();
                    }
                    SIGNALS => {
                        let signals = on_signal();
                        if signals.reload > 0 {
                            self.reload();
                        }
                        let count = signals.shutdown;
                        if count > 0 && self.core.is_shutting_down() {
                            log::warn!("second signal: exiting now");
                            self.control.exit_all();
                            return Ok(());
                        }
                        if count > 1 {
                            log::warn!("two signals at once: exiting now");
                            self.control.exit_all();
                            return Ok(());
                        }
                        if count > 0 {
                            self.control.stop_all();
                        }
                    }
                    token => self.socket_event(token, event),
                }
                self.run_actions();
            }
            for id in std::mem::take(&mut self.read_again) {
                self.read_from(id);
                self.run_actions();
            }
            self.accept_due(Instant::now());
            if self.control.stop.load(Ordering::SeqCst) && !self.core.is_shutting_down() {
                // Dropping the listener makes new connections fail at once instead of
                // waiting in a backlog nobody accepts from. The HTTP listener stays, so
                // health checks see the shutdown (503) instead of a refused connection.
                for slot in &mut self.listeners {
                    if let Some(mut listener) = slot.take_if(|listener| listener.kind != ListenerKind::Http) {
                        let _ = self.poll.registry().deregister(&mut listener.socket);
                    }
                }
                self.core.begin_shutdown(Instant::now());
            }
            let now = Instant::now();
            if now >= self.next_sample {
                self.next_sample = now + SAMPLE_INTERVAL;
                self.core.set_unix_time(now, unix_now());
                if let Some(stats) = self.samples_process.then(process_stats::read).flatten() {
                    self.core.set_process_stats(stats);
                }
            }
            if self.core.poll_timeout().is_some_and(|at| now >= at) {
                self.core.handle_timeout(now);
            }
            self.run_actions();
            self.expire_draining(now);
            if self.stopped && self.draining.is_empty() {
                return Ok(());
            }
        }
    }

    fn add_socket(&mut self, id: ConnId, stream: &mut TcpStream, connecting: bool) -> io::Result<()> {
        if !connecting {
            stream.set_nodelay(true)?;
        }
        self.poll.registry().register(stream, token_of(id), Interest::READABLE | Interest::WRITABLE)
    }

    fn put_socket(&mut self, socket: Socket) {
        let index = socket.id.index();
        if self.sockets.len() <= index {
            self.sockets.resize_with(index + 1, || None);
        }
        if let Some(slot) = self.sockets.get_mut(index) {
            *slot = Some(socket);
        }
    }

    fn socket_mut(&mut self, id: ConnId) -> Option<&mut Socket> {
        socket_in(&mut self.sockets, id)
    }

    fn take_resolver_answers(&mut self) {
        for (id, result) in self.resolver.take_answers() {
            self.core.handle_resolved(id, result, Instant::now());
        }
    }

    fn take_hook_answers(&mut self) {
        for (id, outcome) in self.hooks.take_answers() {
            self.core.handle_hook_result(id, outcome, Instant::now());
        }
    }

    fn socket_event(&mut self, token: Token, event: &Event) {
        let Some(id) = id_of(token) else { return };
        let Some(socket) = self.socket_mut(id) else {
            self.drain_event(id, event);
            return;
        };
        if socket.connecting && (event.is_writable() || event.is_error()) {
            let failure = match socket.stream.take_error() {
                Ok(Some(error)) | Err(error) => Some(error),
                Ok(None) => match socket.stream.peer_addr() {
                    Ok(_) => None,
                    Err(error) if error.kind() == io::ErrorKind::NotConnected => return,
                    Err(error) => Some(error),
                },
            };
            let now = Instant::now();
            match failure {
                Some(error) => {
                    self.core.handle_closed(id, CloseReason::ConnectFailed(error.to_string()), now);
                    return;
                }
                None => {
                    socket.connecting = false;
                    let _ = socket.stream.set_nodelay(true);
                    self.core.handle_connected(id, now);
                }
            }
        }
        if event.is_writable() {
            if let Some(socket) = self.socket_mut(id) {
                socket.writable = true;
            }
            self.write_to(id);
        }
        if (event.is_readable() || event.is_read_closed() || event.is_error()) && self.take_proxy_header(id, event.is_read_closed()) {
            self.read_from(id);
        }
    }

    /// Reads until WouldBlock (the socket is edge-triggered) or the per-turn budget.
    fn read_from(&mut self, id: ConnId) {
        let mut buffer = std::mem::take(&mut self.read_buffer);
        let mut budget_used = true;
        let mut tls = false;
        for _ in 0..READS_PER_TURN {
            let Some(socket) = socket_in(&mut self.sockets, id) else {
                budget_used = false;
                break;
            };
            if socket.connecting || !self.core.is_open(id) {
                budget_used = false;
                break;
            }
            tls = socket.tls.is_some();
            let step = read_once(socket, &mut buffer);
            let now = Instant::now();
            match step {
                TlsRead::Plaintext(read) => {
                    let input = buffer.get(..read).unwrap_or_default();
                    dump_input(socket, input);
                    self.core.handle_input(id, input, now);
                }
                TlsRead::Progress => {}
                TlsRead::Blocked => {
                    budget_used = false;
                    break;
                }
                TlsRead::Ended => {
                    self.core.handle_closed(id, CloseReason::PeerClosed, now);
                    budget_used = false;
                    break;
                }
                TlsRead::Failed(reason) => {
                    self.core.handle_closed(id, reason, now);
                    budget_used = false;
                    break;
                }
            }
        }
        // Edge-triggered: no new event comes for bytes already waiting, so a connection that
        // used its whole budget is read again after everyone else had a turn.
        if budget_used && self.core.is_open(id) {
            self.read_again.push(id);
        }
        self.read_buffer = buffer;
        if tls {
            self.after_tls_read(id);
        }
    }

    /// Writes as much of `id`'s queue as the socket takes.
    fn write_to(&mut self, id: ConnId) {
        loop {
            let Some(socket) = socket_in(&mut self.sockets, id) else { return };
            if !socket.writable || socket.connecting {
                return;
            }
            if socket.tls.is_some() {
                return self.write_tls_to(id);
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES_PER_WRITE];
            let count = self.core.write_slices(id, &mut slices);
            if count == 0 {
                return;
            }
            let result = socket.stream.write_vectored(slices.get(..count).unwrap_or_default());
            let now = Instant::now();
            match result {
                Ok(0) => {
                    self.core.handle_closed(id, CloseReason::WriteFailed("socket accepted no bytes".to_string()), now);
                    return;
                }
                Ok(written) => self.core.handle_written(id, written, now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.writable = false;
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.core.handle_closed(id, CloseReason::WriteFailed(error.to_string()), now);
                    return;
                }
            }
        }
    }

    /// Does what the core asked for, until it asks nothing more.
    fn run_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Write(id) => self.write_to(id),
                Action::Close { id, .. } => self.remove_socket(id),
                Action::Connect { id, addr, tls } => self.connect(id, addr, tls),
                Action::Resolve { id, host, port } => {
                    if let Err(error) = self.resolver.request(id, host, port) {
                        self.core.handle_resolved(id, Err(error), Instant::now());
                    }
                }
                Action::Stopped => {
                    self.stopped = true;
                    // The last publish_done and play_done notifications go out first.
                    self.hooks.finish(Instant::now() + HOOK_SHUTDOWN_GRACE);
                }
                Action::ReloadConfig => self.reload(),
                Action::TellSiblings { to, message } => self.tell_siblings(to, message),
                Action::Hook { id, call } => {
                    let now = Instant::now();
                    // The core keeps at most hook-max-pending decisions and as many
                    // notifications in flight: a thread for each, never a queue.
                    let max_threads = self.core.config().access.hook_max_pending.saturating_mul(2);
                    if let Err(error) = self.hooks.submit(id, call, now, max_threads) {
                        self.core.handle_hook_result(id, HookOutcome::Failed(error), now);
                    }
                }
            }
        }
    }

    /// Re-reads the configuration (a small local file: fine to read in the loop) and hands
    /// the result to the core, which applies it or keeps the running one.
    fn reload(&mut self) {
        log::info!("reloading the configuration");
        let result = match &mut self.reloader {
            Some(reload) => reload(),
            // Without a file, a reload still re-reads the TLS certificate.
            None if self.tls.serves() => Ok(self.core.config().clone()),
            None => Err("no configuration file to re-read (start rtmp-edge with --config FILE)".to_string()),
        };
        // The certificate goes with the configuration: both apply, or neither does.
        let result = result
            .and_then(|config| config.validate().map(|()| config).map_err(|problems| problems.join("; ")))
            .and_then(|config| self.tls.reload(&config).map(|()| config));
        if let Ok(config) = &result {
            if config.tls_insecure_upstream && !self.core.config().tls_insecure_upstream {
                log::warn!("reload: --tls-insecure-upstream is now on: rtmps:// upstream certificates are not verified");
            }
            // Every worker applies what this one read (the core keeps what needs a restart).
            if let Some(mailbox) = &self.mailbox {
                for worker in mailbox.others() {
                    mailbox.send(worker, Mail::Reload(Box::new(config.clone()), Box::new(self.tls.clone())));
                }
            }
        }
        self.core.handle_reload(result, Instant::now());
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr, server_name: Option<String>) {
        let tls = match server_name {
            Some(name) => match self.tls.connect(&name, self.core.config()) {
                Ok(client) => Some(Box::new(TlsStream::client(client))),
                Err(error) => {
                    let reason = CloseReason::ConnectFailed(format!("{addr}: TLS for {name}: {error}"));
                    return self.core.handle_closed(id, reason, Instant::now());
                }
            },
            None => None,
        };
        let result = TcpStream::connect(addr).and_then(|mut stream| {
            self.add_socket(id, &mut stream, true)?;
            Ok(stream)
        });
        match result {
            Ok(stream) => {
                let socket =
                    Socket { id, stream, writable: false, connecting: true, dump: None, tls, awaits_proxy_header: false, peer: addr };
                self.put_socket(socket)
            }
            Err(error) => self.core.handle_closed(id, CloseReason::ConnectFailed(format!("{addr}: {error}")), Instant::now()),
        }
    }

    fn remove_socket(&mut self, id: ConnId) {
        let Some(slot) = self.sockets.get_mut(id.index()) else { return };
        if slot.as_ref().is_none_or(|socket| socket.id != id) {
            return;
        }
        if let Some(mut socket) = slot.take() {
            if let Some(mut dump) = socket.dump.take() {
                let _ = dump.flush();
            }
            if socket.tls.is_some() {
                return self.close_tls(socket);
            }
            let _ = self.poll.registry().deregister(&mut socket.stream);
        }
    }
}

/// One read from `socket` into `buffer`: plain bytes as they come, or TLS decrypted. The
/// outcomes are TLS's, of which plain TCP has all but [`TlsRead::Progress`] (after EINTR).
fn read_once(socket: &mut Socket, buffer: &mut [u8]) -> TlsRead {
    if let Some(tls) = socket.tls.as_mut() {
        return tls.read(&mut socket.stream, buffer);
    }
    match socket.stream.read(buffer) {
        Ok(0) => TlsRead::Ended,
        Ok(read) => TlsRead::Plaintext(read),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => TlsRead::Blocked,
        Err(error) if error.kind() == io::ErrorKind::Interrupted => TlsRead::Progress,
        Err(error) => TlsRead::Failed(CloseReason::ReadFailed(error.to_string())),
    }
}

/// Writes what the core is about to read from `socket` to its `--dump` file, if any.
fn dump_input(socket: &mut Socket, input: &[u8]) {
    if let Some(dump) = &mut socket.dump {
        if let Err(error) = dump.write_all(input) {
            log::warn!("{}: dump write failed, dump stopped: {error}", socket.id);
            socket.dump = None;
        }
    }
}

fn socket_in(sockets: &mut [Option<Socket>], id: ConnId) -> Option<&mut Socket> {
    sockets.get_mut(id.index())?.as_mut().filter(|socket| socket.id == id)
}

fn unix_now() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}
