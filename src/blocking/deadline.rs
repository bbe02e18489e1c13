//! A socket whose reads all end by one instant. A per-read timeout alone is not a limit on
//! a whole exchange: a peer that sends a byte now and then restarts it with each byte, and
//! could hold a caller for hours.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads from `stream` until `deadline`, then fails with [`io::ErrorKind::TimedOut`];
/// writes pass through. The socket's read timeout is left at whatever remained at the
/// last read: set it again after use.
pub(super) struct ReadsUntil<'a> {
    stream: &'a mut TcpStream,
    deadline: Option<Instant>,
}

impl<'a> ReadsUntil<'a> {
    /// Reads end `limit` from now; `None` keeps the socket's own timeout.
    pub fn new(stream: &'a mut TcpStream, limit: Option<Duration>) -> ReadsUntil<'a> {
        ReadsUntil { stream, deadline: limit.and_then(|limit| Instant::now().checked_add(limit)) }
    }
}

impl Read for ReadsUntil<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buffer)
    }
}

impl Write for ReadsUntil<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.stream.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
