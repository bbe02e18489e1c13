//! The driver's reads and writes for RTMPS connections, and the last flush of closed ones.
//!
//! Plain connections never come here: their writes stay a writev of the core's shared
//! frames. A TLS connection's plaintext goes into rustls as its record buffer has room
//! ([`TlsStream::write_plaintext`]), and records go to the socket as it takes them.

use std::io::{self, IoSlice};
use std::time::{Duration, Instant};

use mio::event::Event;

use super::{socket_in, Driver, Socket, MAX_SLICES_PER_WRITE};
use crate::relay::core::{CloseReason, ConnId};

/// How long a closed TLS connection may take to send its last records and close_notify.
/// Plain TCP gets this from the kernel, which sends what it took after close(); rustls's
/// buffer is ours, so it is flushed before the socket goes.
const DRAIN_TIME: Duration = Duration::from_secs(3);

/// Most closed TLS connections flushing at once; past it the oldest is dropped.
const MAX_DRAINING: usize = 1024;

/// A closed TLS connection still flushing.
pub struct Draining {
    socket: Socket,
    deadline: Instant,
}

impl Draining {
    /// Writes what is left; true when done (all sent, or the socket failed).
    fn flush(&mut self) -> bool {
        let Some(tls) = self.socket.tls.as_mut() else { return true };
        if self.socket.connecting {
            return true;
        }
        while tls.wants_write() {
            match tls.write_tls(&mut self.socket.stream) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        true
    }
}

impl Driver {
    /// After [`read_from`](Driver::read_from) read a TLS connection: log the handshake's
    /// outcome once, and write what the handshake or the core has to send (handshake
    /// messages, and plaintext that waited for the handshake to end).
    pub(super) fn after_tls_read(&mut self, id: ConnId) {
        if let Some(socket) = socket_in(&mut self.sockets, id) {
            if let Some(tls) = socket.tls.as_mut() {
                tls.log_handshake_done(socket.peer);
            }
        }
        self.write_tls_to(id);
    }

    /// [`write_to`](Driver::write_to) for a TLS connection: records first, then as much of
    /// the core's queue as rustls's record buffer takes, until the socket is full.
    pub(super) fn write_tls_to(&mut self, id: ConnId) {
        loop {
            let Some(socket) = socket_in(&mut self.sockets, id) else { return };
            if !socket.writable || socket.connecting {
                return;
            }
            let Some(tls) = socket.tls.as_mut() else { return };
            if tls.wants_write() {
                match tls.write_tls(&mut socket.stream) {
                    Ok(0) => {
                        let reason = CloseReason::WriteFailed("socket accepted no bytes".to_string());
                        return self.core.handle_closed(id, reason, Instant::now());
                    }
                    Ok(_) => continue,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        socket.writable = false;
                        return;
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        return self.core.handle_closed(id, CloseReason::WriteFailed(error.to_string()), Instant::now());
                    }
                }
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES_PER_WRITE];
            let count = self.core.write_slices(id, &mut slices);
            if count == 0 {
                return;
            }
            let taken = tls.write_plaintext(slices.get(..count).unwrap_or_default());
            if taken == 0 {
                // The handshake is not done and its buffer is full: the read that ends it
                // writes again.
                return;
            }
            self.core.handle_written(id, taken, Instant::now());
        }
    }

    /// Closes a TLS connection the core let go: close_notify and the last records are sent
    /// now or, if the socket is full, as it drains, for up to [`DRAIN_TIME`].
    pub(super) fn close_tls(&mut self, mut socket: Socket) {
        if let Some(tls) = socket.tls.as_mut() {
            if tls.is_handshaking() {
                log::info!("{}: connection {} closed before its TLS handshake was done", socket.peer, socket.id);
            }
            tls.close_notify();
        }
        let mut draining = Draining { socket, deadline: Instant::now() + DRAIN_TIME };
        if draining.flush() {
            let _ = self.poll.registry().deregister(&mut draining.socket.stream);
            return;
        }
        // The core no longer counts these against --max-connections: bound them here, so
        // that clients which finish a handshake and stop reading cannot pile up descriptors.
        if self.draining.len() >= MAX_DRAINING {
            let mut oldest = self.draining.remove(0);
            log::debug!("{}: dropped undrained to make room ({MAX_DRAINING} closed TLS connections draining)", oldest.socket.id);
            let _ = self.poll.registry().deregister(&mut oldest.socket.stream);
        }
        self.draining.push(draining);
    }

    /// An event for a socket the core no longer has: a closed TLS connection draining.
    pub(super) fn drain_event(&mut self, id: ConnId, event: &Event) {
        let Some(index) = self.draining.iter().position(|draining| draining.socket.id == id) else { return };
        let done = match self.draining.get_mut(index) {
            Some(draining) if event.is_error() || event.is_write_closed() => {
                draining.deadline = Instant::now();
                true
            }
            Some(draining) => event.is_writable() && draining.flush(),
            None => false,
        };
        if done {
            let mut draining = self.draining.swap_remove(index);
            let _ = self.poll.registry().deregister(&mut draining.socket.stream);
        }
    }

    /// When the next draining connection runs out of time.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        self.draining.iter().map(|draining| draining.deadline).min()
    }

    /// Drops draining connections whose time is up; what they still held is lost.
    pub(super) fn expire_draining(&mut self, now: Instant) {
        let registry = self.poll.registry();
        self.draining.retain_mut(|draining| {
            if now < draining.deadline {
                return true;
            }
            log::debug!("{}: closed TLS connection did not drain within {} s", draining.socket.id, DRAIN_TIME.as_secs());
            let _ = registry.deregister(&mut draining.socket.stream);
            false
        });
    }
}
