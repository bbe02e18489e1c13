//! Loopback ports no other test can take.
//!
//! Binding 127.0.0.1:0, reading the port and releasing it leaves a window in which another
//! test (tests run in parallel, and other test processes share the machine) binds it, or
//! the kernel hands it out as an outgoing connection's source port. Two race-free ways
//! instead:
//! - a port whose connects must be refused stays held by a socket that is bound and never
//!   listens ([`RefusedPort`]): the kernel gives a bound port to no one else;
//! - a program that binds its own port (nginx, `ffmpeg -listen`, a relay whose address
//!   must be known before it starts) gets one on a loopback address of this process's own
//!   ([`own_loopback_addr`]). Every other socket in the tests binds 127.0.0.1, so nothing
//!   else binds that address, and within the process each port is handed out once.
//!
//! No relay code here: tests/handshake_interop.rs, built without the relay, includes it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};

/// A loopback address nothing listens on and no one else can bind while this lives:
/// connecting to it is refused at once.
pub struct RefusedPort {
    /// Held, never listening: the port stays ours.
    _socket: socket2::Socket,
    addr: SocketAddr,
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

impl RefusedPort {
    /// Binds 127.0.0.1:0 without listening.
    pub fn new() -> RefusedPort {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&addr.into()).expect("bind 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .ok()
            .and_then(|addr| addr.as_socket())
            .expect("bound address");
        RefusedPort { _socket: socket, addr }
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The loopback address of this process: 127.N.H.L from its 22-bit process id (N from 1
/// to 64), so test processes running at the same time never share one.
pub fn own_loopback_ip() -> std::net::Ipv4Addr {
    let pid = std::process::id();
    std::net::Ipv4Addr::new(127, 1 + ((pid >> 16) & 0x3f) as u8, (pid >> 8) as u8, pid as u8)
}

/// A port on [`own_loopback_ip`] that no other test of this process was given, for a
/// program that binds it itself. A port some other program on the machine holds on every
/// address (a wildcard listener) is skipped.
pub fn own_loopback_addr() -> SocketAddr {
    static NEXT_PORT: AtomicU16 = AtomicU16::new(20_000);
    loop {
        let port = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 60_000, "ran out of ports on {}", own_loopback_ip());
        let addr = SocketAddr::from((own_loopback_ip(), port));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}
