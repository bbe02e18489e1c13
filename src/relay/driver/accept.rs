//! Taking connections off the listeners, a bounded number per turn.

use std::fs::File;
use std::io::{self, BufWriter};
use std::time::{Duration, Instant};

use super::transport::TlsStream;
use super::{Driver, Socket};
use crate::relay::core::{CloseReason, ListenerKind};

/// Connections accepted from one listener before the loop serves its sockets again: in a
/// reconnect storm the players already connected keep being fed, and the rest of the
/// backlog waits one turn (bench.sh's burst: 5,000 new connections in 1 s).
const ACCEPTS_PER_TURN: usize = 128;
/// How long to wait before accepting again after accept itself failed (out of
/// descriptors, usually): at once would spin.
const ACCEPT_RETRY_AFTER_ERROR: Duration = Duration::from_millis(100);

impl Driver {
    /// Accepts what the listener holds, up to [`ACCEPTS_PER_TURN`]: a connection storm
    /// must not keep the loop from the sockets it serves. What is left (or what could not
    /// be accepted for want of descriptors) is taken up again on a later turn; the
    /// listener is edge-triggered, so no new event would come for it.
    pub(super) fn accept_all(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Some(listener)) = self.listeners.get(index) else { return };
            let kind = listener.kind;
            let (mut stream, peer) = match listener.socket.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // EMFILE and friends: keep serving the existing connections, and try
                    // again once some may have closed.
                    log::error!("accept failed: {error}");
                    self.accept_again.push((index, Instant::now() + ACCEPT_RETRY_AFTER_ERROR));
                    return;
                }
            };
            let now = Instant::now();
            let Ok(id) = self.core.accept(peer, kind, now) else { continue };
            // Only for connections the core took: a refused one costs no TLS state.
            let tls = match kind {
                ListenerKind::Rtmps => match self.tls.accept() {
                    Ok(server) => Some(Box::new(TlsStream::server(server))),
                    Err(error) => {
                        log::error!("{peer}: cannot start TLS: {error}");
                        self.core.handle_closed(id, CloseReason::ReadFailed(format!("cannot start TLS: {error}")), now);
                        continue;
                    }
                },
                _ => None,
            };
            if let Err(error) = self.add_socket(id, &mut stream, false) {
                self.core.handle_closed(id, CloseReason::ReadFailed(format!("could not register: {error}")), now);
                continue;
            }
            // The private listener's connect carries the workers' secret: never on disk.
            let dump = self.dump_dir.as_ref().filter(|_| kind != ListenerKind::Sibling).and_then(|dir| {
                let path = dir.join(format!("{}-{peer}.rtmp", id.to_u64()).replace(':', "_"));
                File::create(&path)
                    .map_err(|error| log::warn!("{peer}: cannot create dump file {}: {error}", path.display()))
                    .ok()
                    .map(BufWriter::new)
            });
            let awaits_proxy_header = self.core.awaits_proxy_header(id);
            self.put_socket(Socket { id, stream, writable: false, connecting: false, dump, tls, awaits_proxy_header, peer });
        }
        self.accept_again.push((index, Instant::now()));
    }

    /// Listeners whose turn to accept again has come.
    pub(super) fn accept_due(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.accept_again).into_iter().partition(|(_, at)| *at <= now);
        self.accept_again = later;
        for (index, _) in due {
            self.accept_all(index);
            self.run_actions();
        }
    }
}
