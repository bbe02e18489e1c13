//! One blocking socket and the session on it: the read, feed, drain, write cycle.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Error;
use crate::sessions::{ClientSession, ClientSessionEvent};

/// Bytes asked for per read: a few chunks of media at the usual 4096-byte chunk size.
const READ_SIZE: usize = 64 * 1024;

/// How long [`Connection::close`] waits for the server to close its side.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct Connection {
    pub stream: TcpStream,
    pub session: ClientSession,
    buffer: Box<[u8]>,
}

impl Connection {
    /// Takes over a socket whose handshake is done; `leftover` is what followed it.
    pub fn new(stream: TcpStream, mut session: ClientSession, leftover: Bytes) -> Result<Connection, Error> {
        session.handle_input(&leftover)?;
        Ok(Connection { stream, session, buffer: vec![0; READ_SIZE].into_boxed_slice() })
    }

    /// Writes whatever the session has to send.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.session.has_outbound() {
            self.stream.write_all(&self.session.take_outbound())?;
        }
        Ok(())
    }

    /// Blocks for one read, feeds it to the session and writes its answers (acks, pongs).
    /// False when the server closed the connection.
    pub fn read(&mut self) -> Result<bool, Error> {
        let read = loop {
            match self.stream.read(&mut self.buffer) {
                Ok(read) => break read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            }
        };
        if read == 0 {
            return Ok(false);
        }
        self.session.handle_input(self.buffer.get(..read).unwrap_or_default())?;
        self.flush()?;
        Ok(true)
    }

    /// Reads, without blocking, whatever has arrived, feeds it and writes the answers.
    /// False when the server closed the connection.
    pub fn read_available(&mut self) -> Result<bool, Error> {
        self.stream.set_nonblocking(true)?;
        let result = self.read_until_would_block();
        self.stream.set_nonblocking(false)?;
        let open = result?;
        self.flush()?;
        Ok(open)
    }

    fn read_until_would_block(&mut self) -> Result<bool, Error> {
        loop {
            match self.stream.read(&mut self.buffer) {
                Ok(0) => return Ok(false),
                Ok(read) => self.session.handle_input(self.buffer.get(..read).unwrap_or_default())?,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Error::Io(error)),
            }
        }
    }

    /// Sends what is queued, then reads until the session raises an event that `wanted`
    /// matches. Returns it and the events that came after it in the same read; a
    /// refusal first is an error, and so is `timeout` passing (a server that keeps
    /// talking without answering would otherwise hold us past every read timeout).
    pub fn wait_for(
        &mut self,
        timeout: Option<Duration>,
        wanted: impl Fn(&ClientSessionEvent) -> bool,
    ) -> Result<(ClientSessionEvent, VecDeque<ClientSessionEvent>), Error> {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        self.flush()?;
        loop {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(Error::TimedOut);
            }
            while let Some(event) = self.session.poll_event() {
                if wanted(&event) {
                    let rest = std::iter::from_fn(|| self.session.poll_event()).collect();
                    return Ok((event, rest));
                }
                if let ClientSessionEvent::RequestRejected { kind, status } = event {
                    return Err(Error::Rejected { kind, status });
                }
            }
            if !self.read()? {
                return Err(Error::Closed);
            }
        }
    }

    /// Sends what is queued, half-closes, and reads until the server closes too (or
    /// [`CLOSE_TIMEOUT`] passes), so that nothing we sent is lost to a reset.
    pub fn close(mut self) -> Result<(), Error> {
        self.flush()?;
        self.stream.shutdown(Shutdown::Write)?;
        // CLOSE_TIMEOUT in all: a server that keeps sending (pings, media) must not keep us.
        let mut stream = super::deadline::ReadsUntil::new(&mut self.stream, Some(CLOSE_TIMEOUT));
        loop {
            match stream.read(&mut self.buffer) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(())
                }
                Err(error) => return Err(Error::Io(error)),
            }
        }
    }
}
