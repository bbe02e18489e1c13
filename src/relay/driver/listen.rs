//! Listening sockets: a backlog of our choosing, and `SO_REUSEPORT` so that several
//! workers listen on one port and the kernel spreads new connections over them.
//!
//! The backlog is how many connections the kernel completes and holds while the loop is
//! busy. mio's and std's `bind` use 128 (mio) or the default: a reconnect storm of a few
//! thousand players overflows that within a loop turn, and the SYNs dropped then are
//! retried by clients after 1, 3 and 7 seconds. Linux silently caps it at
//! `net.core.somaxconn`, so the cap is read and the effective figure logged.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// Where Linux keeps the largest backlog `listen(2)` grants.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// The backlog `listen(2)` will grant for `requested`: capped by `somaxconn` (when it
/// could be read), and at least 1.
pub fn effective_backlog(requested: u32, somaxconn: Option<u32>) -> u32 {
    let capped = somaxconn.map_or(requested, |max| requested.min(max));
    capped.clamp(1, i32::MAX as u32)
}

/// `net.core.somaxconn`, when this system has it.
pub fn somaxconn() -> Option<u32> {
    parse_somaxconn(&std::fs::read_to_string(SOMAXCONN_PATH).ok()?)
}

fn parse_somaxconn(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok()
}

/// A non-blocking listener on `addr` with `backlog`. With `reuse_port`, other sockets of
/// this user may listen on the same address, and the kernel balances connections over
/// them (`SO_REUSEPORT`); without, a taken address is an error, as with std's `bind`.
pub fn bind(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std and mio do on Unix: a restarted relay binds at once, past old TIME_WAITs.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(TcpListener::from_std(socket.into()))
}

/// The first of a group of `SO_REUSEPORT` listeners (worker 0's): fails if anything
/// listens on `addr` already. `SO_REUSEPORT` alone would let this relay join a group some
/// other process of the same user holds (a stale relay, a second unit), and the kernel
/// would then split clients between the two, publishers on one and players on the other,
/// with no error anywhere. A probe bound without it fails on a taken address, as a single
/// worker's listener does.
pub fn bind_first_of_group(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    if addr.port() != 0 {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    bind(addr, backlog, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_capped_by_somaxconn() {
        assert_eq!(effective_backlog(4096, Some(4096)), 4096);
        assert_eq!(effective_backlog(4096, Some(128)), 128, "an old kernel's default");
        assert_eq!(effective_backlog(100, Some(4096)), 100);
        assert_eq!(effective_backlog(8192, None), 8192, "unknown cap: ask, the kernel caps");
        assert_eq!(effective_backlog(0, Some(4096)), 1);
        assert_eq!(effective_backlog(u32::MAX, None), i32::MAX as u32);
        assert_eq!(parse_somaxconn("4096\n"), Some(4096));
        assert_eq!(parse_somaxconn("x"), None);
    }

    #[test]
    fn reuse_port_lets_two_listeners_share_a_port_and_without_it_the_second_fails() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr, 16, true).expect("a second SO_REUSEPORT listener on the same port");
        assert_eq!(second.local_addr().unwrap(), addr);
        let alone = bind("127.0.0.1:0".parse().unwrap(), 16, false).unwrap();
        let taken = bind(alone.local_addr().unwrap(), 16, false).unwrap_err();
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn the_first_of_a_group_does_not_join_a_group_another_process_holds() {
        // Another program's SO_REUSEPORT listener, as a stale relay's would be.
        let stranger = bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        let taken = bind_first_of_group(stranger.local_addr().unwrap(), 16).unwrap_err();
        assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
        drop(stranger);
        let first = bind_first_of_group("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        bind(addr, 16, true).expect("the other workers join the group");
        // A free port that was named (not 0) is bound too, after the probe lets go of it.
        let named = bind("127.0.0.1:0".parse().unwrap(), 16, false).unwrap();
        let free = named.local_addr().unwrap();
        drop(named);
        assert_eq!(bind_first_of_group(free, 16).unwrap().local_addr().unwrap(), free);
    }
}
