//! TLS under one connection's bytes: rustls's sans-IO state machine between the socket and
//! the core, on the loop's thread. The core reads and writes RTMP; this turns socket bytes
//! into plaintext for it, and its queued plaintext into records for the socket.
//!
//! Backpressure stays with the core: rustls takes plaintext only while its record buffer
//! holds less than [`TLS_BUFFER_LIMIT`], so a slow reader's backlog stays in the core's
//! queue, where the slow-player limits see it.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use rustls::{ClientConnection, Connection, ServerConnection};

use super::super::core::CloseReason;
use super::tls;

/// Most encrypted bytes one connection holds before it stops taking plaintext: four full
/// records, enough for one writev to fill a socket buffer's worth of room.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// What one [`TlsStream::read`] (or one plain read) gave.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsRead {
    /// This many bytes of plaintext are in the buffer.
    Plaintext(usize),
    /// Records were read, no plaintext yet (a handshake, or part of a record); or a plain
    /// read was interrupted. Read again.
    Progress,
    /// Nothing more until the socket is readable again.
    Blocked,
    /// The peer closed (close_notify or end of stream) and every byte before it was read.
    Ended,
    /// TLS failed; the alert (if any) was sent. Close for this reason.
    Failed(CloseReason),
}

/// One connection's TLS state.
pub struct TlsStream {
    conn: Connection,
    /// An accepted connection whose first byte was not looked at yet.
    check_first_byte: bool,
    /// The handshake's outcome has been logged.
    handshake_logged: bool,
}

impl TlsStream {
    /// The server side of an accepted RTMPS connection.
    pub fn server(mut conn: ServerConnection) -> TlsStream {
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        TlsStream { conn: Connection::Server(conn), check_first_byte: true, handshake_logged: false }
    }

    /// The client side of a connection to an `rtmps://` upstream.
    pub fn client(mut conn: ClientConnection) -> TlsStream {
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        TlsStream { conn: Connection::Client(conn), check_first_byte: false, handshake_logged: false }
    }

    /// Reads from `stream` once and decrypts: plaintext already decrypted comes first, and
    /// a read that completes no plaintext is [`TlsRead::Progress`], so the driver's per-turn
    /// read budget bounds the TLS work one peer gets too.
    pub fn read(&mut self, stream: &mut TcpStream, buffer: &mut [u8]) -> TlsRead {
        if let Some(done) = self.take_plaintext(buffer) {
            return done;
        }
        if self.check_first_byte {
            let mut first = [0u8; 1];
            match stream.peek(&mut first) {
                Ok(0) => return TlsRead::Ended,
                Ok(_) if first[0] != 0x16 => return TlsRead::Failed(tls::not_tls(first[0])),
                Ok(_) => self.check_first_byte = false,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return TlsRead::Blocked,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return TlsRead::Progress,
                Err(error) => return TlsRead::Failed(CloseReason::ReadFailed(error.to_string())),
            }
        }
        match self.conn.read_tls(stream) {
            // Ok(0) is the end of the stream: what came before it is still decrypted below.
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return TlsRead::Blocked,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return TlsRead::Progress,
            Err(error) => return TlsRead::Failed(CloseReason::ReadFailed(error.to_string())),
        }
        if let Err(error) = self.conn.process_new_packets() {
            // rustls queued the matching alert: tell the peer before closing.
            let _ = self.conn.write_tls(stream);
            return TlsRead::Failed(tls::close_reason(&error));
        }
        self.take_plaintext(buffer).unwrap_or(TlsRead::Progress)
    }

    /// Decrypted plaintext into `buffer`, the end of the stream, or `None` when neither.
    fn take_plaintext(&mut self, buffer: &mut [u8]) -> Option<TlsRead> {
        match self.conn.reader().read(buffer) {
            Ok(0) => Some(TlsRead::Ended),
            Ok(read) => Some(TlsRead::Plaintext(read)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
            // The stream ended without close_notify: an ending all the same.
            Err(_) => Some(TlsRead::Ended),
        }
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes waiting records to `stream` (one writev of up to 64 of them).
    pub fn write_tls(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        self.conn.write_tls(stream)
    }

    /// Encrypts as much of `slices` as the record buffer has room for; returns how many
    /// plaintext bytes it took (0 when the buffer is full, or during a handshake whose
    /// early-data buffer is full).
    pub fn write_plaintext(&mut self, slices: &[IoSlice<'_>]) -> usize {
        self.conn.writer().write_vectored(slices).unwrap_or(0)
    }

    /// Queues close_notify, so the peer can tell an ending from a cut.
    pub fn close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Logs the version and cipher suite once the handshake is done (once).
    pub fn log_handshake_done(&mut self, peer: SocketAddr) {
        if self.handshake_logged || self.conn.is_handshaking() {
            return;
        }
        self.handshake_logged = true;
        let version = self.conn.protocol_version().map_or_else(|| "?".to_string(), |v| format!("{v:?}"));
        let suite = self.conn.negotiated_cipher_suite().map_or_else(|| "?".to_string(), |s| format!("{:?}", s.suite()));
        let server_name = match &self.conn {
            Connection::Server(server) => server.server_name().map(|name| format!(", SNI {name}")).unwrap_or_default(),
            Connection::Client(_) => String::new(),
        };
        log::debug!("{peer}: TLS handshake done: {version}, {suite}{server_name}");
    }
}
