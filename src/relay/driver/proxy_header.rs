//! Taking a PROXY protocol header off an accepted socket, before anything else reads it.
//!
//! The header comes before the client's first byte, and on an RTMPS listener before the
//! TLS bytes, so it is taken here, under every transport: the socket is peeked (up to the
//! longest header accepted), the library's parser says whether a whole header is there,
//! and exactly its bytes are read off. What follows stays in the socket for TLS or the
//! core, as if the client had connected directly. The core decides what the header means
//! ([`RelayCore::handle_proxy_header`](crate::relay::RelayCore::handle_proxy_header)).

use std::io::{self, Read};
use std::time::Instant;

use mio::net::TcpStream;

use super::{socket_in, Driver};
use crate::relay::core::{CloseReason, ConnId};
use crate::proxy_protocol::{parse, Parsed, ProxyError, ProxyHeader, V2_MAX_LENGTH};

/// What one look at the socket found.
#[derive(Debug, PartialEq, Eq)]
pub enum Peeked {
    /// A header (its bytes are read off the socket), or bytes that cannot start one.
    Header(Result<ProxyHeader, ProxyError>),
    /// Part of a header, or nothing yet: wait for the socket to be readable again.
    Waiting {
        /// Bytes of the header that have arrived.
        arrived: usize,
    },
    /// The peer closed before sending anything.
    Ended,
    /// The socket failed (the error, as text).
    Failed(String),
}

/// Looks at the start of `stream` for a PROXY header; `scratch` must hold the longest
/// one ([`V2_MAX_LENGTH`] bytes).
pub fn take_header(stream: &mut (impl Read + Peek), scratch: &mut [u8]) -> Peeked {
    let window_len = scratch.len().min(V2_MAX_LENGTH);
    let Some(window) = scratch.get_mut(..window_len) else { return Peeked::Waiting { arrived: 0 } };
    let peeked = loop {
        match stream.peek(window) {
            Ok(0) => return Peeked::Ended,
            Ok(peeked) => break peeked,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Peeked::Waiting { arrived: 0 },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Peeked::Failed(error.to_string()),
        }
    };
    let (header, consumed) = match parse(window.get(..peeked).unwrap_or_default()) {
        Ok(Parsed::Incomplete) => return Peeked::Waiting { arrived: peeked },
        Err(error) => return Peeked::Header(Err(error)),
        Ok(Parsed::Done { header, consumed }) => (header, consumed),
    };
    // The peeked bytes are in the socket's buffer: reading them back returns them.
    let mut discarded = 0;
    while discarded < consumed {
        match stream.read(window.get_mut(discarded..consumed).unwrap_or_default()) {
            Ok(0) => return Peeked::Failed("the socket ended inside the PROXY header it had shown".to_string()),
            Ok(read) => discarded += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Peeked::Failed(error.to_string()),
        }
    }
    Peeked::Header(Ok(header))
}

/// A socket whose next bytes can be looked at without taking them.
pub trait Peek {
    /// `recv(MSG_PEEK)`.
    fn peek(&mut self, buffer: &mut [u8]) -> io::Result<usize>;
}

impl Peek for TcpStream {
    fn peek(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        TcpStream::peek(self, buffer)
    }
}

impl Driver {
    /// For a socket that still owes its PROXY header: takes it off and tells the core.
    /// Returns whether the socket may be read now (no header owed, or it just came).
    /// `read_closed`: the event said the peer closed its side, so a part header will
    /// never be finished.
    pub(super) fn take_proxy_header(&mut self, id: ConnId, read_closed: bool) -> bool {
        let mut buffer = std::mem::take(&mut self.read_buffer);
        let Some(socket) = socket_in(&mut self.sockets, id) else {
            self.read_buffer = buffer;
            return false;
        };
        if !socket.awaits_proxy_header {
            self.read_buffer = buffer;
            return true;
        }
        let peeked = take_header(&mut socket.stream, &mut buffer);
        self.read_buffer = buffer;
        let now = Instant::now();
        match peeked {
            Peeked::Header(header) => {
                socket.awaits_proxy_header = false;
                let ok = header.is_ok();
                self.core.handle_proxy_header(id, header, now);
                match self.core.peer_addr(id) {
                    // Driver log lines (TLS) name the client too.
                    Some(peer) if ok => {
                        if let Some(socket) = socket_in(&mut self.sockets, id) {
                            socket.peer = peer;
                        }
                        true
                    }
                    _ => false,
                }
            }
            Peeked::Waiting { arrived } if read_closed && arrived > 0 => {
                let reason = format!("the connection ended after {arrived} bytes of a PROXY header");
                self.core.handle_closed(id, CloseReason::ProxyHeaderFailed(reason), now);
                false
            }
            Peeked::Waiting { .. } => false,
            Peeked::Ended => {
                self.core.handle_closed(id, CloseReason::PeerClosed, now);
                false
            }
            Peeked::Failed(error) => {
                self.core.handle_closed(id, CloseReason::ReadFailed(error), now);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket as bytes: `peek` shows what `read` has not taken, a chunk at a time.
    struct Script {
        bytes: Vec<u8>,
        /// How many bytes have "arrived" so far.
        arrived: usize,
    }

    impl Read for Script {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let take = buffer.len().min(self.arrived);
            buffer[..take].copy_from_slice(&self.bytes[..take]);
            self.bytes.drain(..take);
            self.arrived -= take;
            Ok(take)
        }
    }

    impl Peek for Script {
        fn peek(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            if self.arrived == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let take = buffer.len().min(self.arrived);
            buffer[..take].copy_from_slice(&self.bytes[..take]);
            Ok(take)
        }
    }

    #[test]
    fn takes_exactly_the_header_and_leaves_the_client_bytes() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 1935\r\n";
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(&[0x16, 0x03, 0x01]); // a TLS ClientHello begins
        let mut socket = Script { arrived: 10, bytes };
        let mut scratch = vec![0; 64 * 1024];
        assert_eq!(take_header(&mut socket, &mut scratch), Peeked::Waiting { arrived: 10 });
        socket.arrived = line.len() + 3;
        let expected = ProxyHeader::Proxied {
            source: "192.0.2.7:50000".parse().unwrap(),
            destination: "198.51.100.1:1935".parse().unwrap(),
        };
        assert_eq!(take_header(&mut socket, &mut scratch), Peeked::Header(Ok(expected)));
        assert_eq!(socket.bytes, [0x16, 0x03, 0x01], "the TLS bytes stay for rustls");
    }

    #[test]
    fn no_header_is_an_error_and_nothing_is_read() {
        let mut socket = Script { bytes: vec![0x03, 0, 0, 0], arrived: 4 };
        let mut scratch = vec![0; 1024];
        assert_eq!(take_header(&mut socket, &mut scratch), Peeked::Header(Err(ProxyError::Missing)));
        assert_eq!(socket.bytes.len(), 4);
        let mut empty = Script { bytes: Vec::new(), arrived: 0 };
        assert_eq!(take_header(&mut empty, &mut scratch), Peeked::Waiting { arrived: 0 });
    }

    #[test]
    fn a_header_longer_than_the_bound_is_refused_from_what_the_window_holds() {
        // A v2 header announcing 600 bytes of TLVs: refused from its 16 fixed bytes.
        let mut bytes = crate::proxy_protocol::V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0x02, 0x58]);
        bytes.resize(16 + 600, 0);
        let arrived = bytes.len();
        let mut socket = Script { bytes, arrived };
        let mut scratch = vec![0; 64 * 1024];
        assert_eq!(take_header(&mut socket, &mut scratch), Peeked::Header(Err(ProxyError::TooLong)));
    }
}
