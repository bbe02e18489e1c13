//! A blocking RTMP client over `std::net::TcpStream`: play a stream as FLV tags, or
//! publish FLV tags, in a few lines (feature `blocking`, std only).
//!
//! It is the library's sans-IO pieces put together the simplest way, and shows how to
//! drive them: [`handshake`] (the handshake loop), then a [`ClientSession`] fed with every
//! read and drained after it. A refusal from the server is an [`Error::Rejected`], not an
//! event to miss.
//!
//! ```no_run
//! use rtmp_edge::blocking;
//! use rtmp_edge::url::RtmpUrl;
//!
//! let url = RtmpUrl::parse("rtmp://127.0.0.1/live/stream")?;
//! for tag in blocking::connect(&url)?.play()? {
//!     let tag = tag?;
//!     println!("{:?} at {} ms: {} bytes", tag.tag_type, tag.timestamp, tag.data.len());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **What a publisher must keep reading.** The server asks for acknowledgements (Window
//! Acknowledgement Size) and may send ping requests; a publisher that never reads never
//! answers them, and servers drop it. It may also revoke a publish with an error status.
//! [`Publisher::send_tag`] reads whatever has arrived (without blocking) after each tag,
//! answers acks and pings, and returns a revocation as [`Error::Rejected`].
//!
//! No TLS: an `rtmps://` URL is refused with [`Error::TlsNotSupported`].

mod connection;
mod deadline;
mod player;
mod publisher;

pub use player::Player;
pub use publisher::Publisher;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;

use crate::handshake::{Handshake, HandshakeError, HandshakeProgress, HandshakeRole};
use crate::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, PublishMode, RejectedRequestKind, SessionError, StatusInfo,
};
use crate::url::{RtmpUrl, Scheme};
use connection::Connection;

/// How [`connect_with`] connects and how long it waits.
#[derive(Clone, Debug)]
pub struct Options {
    /// How the session presents itself (chunk size, flashVer, Enhanced RTMP codecs...).
    pub session: ClientSessionConfig,
    /// Longest wait for the TCP connection, per address the host resolves to.
    pub connect_timeout: Option<Duration>,
    /// Longest wait for the server to complete the handshake (in all, however it paces
    /// its bytes), for each answer to connect,
    /// play and publish, and for any single write. `None` waits forever.
    pub reply_timeout: Option<Duration>,
    /// Longest a [`Player`] waits for the next message once playing; `None` (the
    /// default) waits forever, as a player of a stream without a publisher yet should.
    pub idle_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            session: ClientSessionConfig::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            reply_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
        }
    }
}

/// Why a blocking client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed (resolving, connecting, reading or writing).
    Io(io::Error),
    /// The server's handshake could not be answered.
    Handshake(HandshakeError),
    /// The session failed: the server broke the protocol, or the URL names no stream.
    Session(SessionError),
    /// The server refused a request (connect, createStream, play or publish), or
    /// revoked a publish.
    Rejected {
        /// What was refused.
        kind: RejectedRequestKind,
        /// The server's status (`code` says why, e.g. `NetStream.Publish.BadName`).
        status: StatusInfo,
    },
    /// The server closed the connection before the answer this call waited for.
    Closed,
    /// The server did not answer within [`Options::reply_timeout`] (or, for a player,
    /// sent nothing within [`Options::idle_timeout`]).
    TimedOut,
    /// The URL is `rtmps://`; this client speaks plain TCP only.
    TlsNotSupported,
    /// The host resolved to no address.
    NoAddress(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(error) => write!(f, "I/O error: {error}"),
            Error::Handshake(error) => write!(f, "handshake failed: {error}"),
            Error::Session(error) => write!(f, "session error: {error}"),
            Error::Rejected { kind, status } => {
                write!(f, "server refused {kind:?}: {} ({})", status.code, status.description)
            }
            Error::Closed => write!(f, "the server closed the connection"),
            Error::TimedOut => write!(f, "the server did not answer in time"),
            Error::TlsNotSupported => write!(f, "rtmps:// needs TLS, which the blocking client does not speak"),
            Error::NoAddress(host) => write!(f, "{host} resolves to no address"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(error) => Some(error),
            Error::Handshake(error) => Some(error),
            Error::Session(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            // A socket read timeout shows up as one or the other, depending on the OS.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::TimedOut,
            _ => Error::Io(error),
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Self {
        Error::Handshake(error)
    }
}

impl From<SessionError> for Error {
    fn from(error: SessionError) -> Self {
        Error::Session(error)
    }
}

/// Connects to `url`'s server with the default [`Options`] and completes the handshake.
/// Nothing RTMP is sent yet: [`Client::play`] or [`Client::publish`] does that.
pub fn connect(url: &RtmpUrl) -> Result<Client, Error> {
    connect_with(url, Options::default())
}

/// As [`connect`], with options.
pub fn connect_with(url: &RtmpUrl, options: Options) -> Result<Client, Error> {
    if url.scheme() == Scheme::Rtmps {
        return Err(Error::TlsNotSupported);
    }
    let mut last_error = None;
    let mut stream = None;
    for address in (url.host(), url.port()).to_socket_addrs()? {
        let attempt = match options.connect_timeout {
            Some(timeout) => TcpStream::connect_timeout(&address, timeout),
            None => TcpStream::connect(address),
        };
        match attempt {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(error) => last_error = Some(error),
        }
    }
    let mut stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(error)) => return Err(error.into()),
        (None, None) => return Err(Error::NoAddress(url.host().to_string())),
    };
    stream.set_nodelay(true)?;
    stream.set_write_timeout(options.reply_timeout)?;
    // The whole handshake within one reply_timeout, however the server paces its bytes.
    let leftover = handshake(&mut deadline::ReadsUntil::new(&mut stream, options.reply_timeout), HandshakeRole::Client)?;
    stream.set_read_timeout(options.reply_timeout)?;
    let session = ClientSession::new(options.session.clone());
    let connection = Connection::new(stream, session, leftover)?;
    Ok(Client { connection, url: url.clone(), options })
}

/// Runs the handshake for `role` over any blocking stream, and returns the bytes that
/// followed it: the start of the chunk stream, for the session's first `handle_input`.
///
/// C1/S1 carry time 0: the field is the sender's epoch, which peers echo and never check,
/// so a blocking program with no clock of its own needs none.
pub fn handshake<S: Read + Write>(stream: &mut S, role: HandshakeRole) -> Result<Bytes, Error> {
    let mut handshake = Handshake::new(role, 0);
    stream.write_all(&handshake.start())?;
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer)?;
        let input = buffer.get(..read).unwrap_or_default();
        if input.is_empty() {
            return Err(Error::Closed);
        }
        match handshake.process(input)? {
            HandshakeProgress::InProgress { response } => stream.write_all(&response)?,
            HandshakeProgress::Completed { response, remaining } => {
                stream.write_all(&response)?;
                return Ok(remaining);
            }
        }
    }
}

/// A connection whose handshake is done, about to play or publish one stream.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
    url: RtmpUrl,
    options: Options,
}

impl Client {
    /// Connects and plays the URL's stream; returns once the server said NetStream.Play.Start.
    /// The [`Player`] is an iterator of FLV tags: metadata, sequence headers and frames,
    /// in the order they came.
    pub fn play(mut self) -> Result<Player, Error> {
        self.connection.session.play(&self.url)?;
        let (started, early) =
            self.connection.wait_for(self.options.reply_timeout, |event| matches!(event, ClientSessionEvent::PlaybackStarted { .. }))?;
        let stream_id = match started {
            ClientSessionEvent::PlaybackStarted { stream_id, .. } => stream_id,
            _ => 0,
        };
        self.connection.stream.set_read_timeout(self.options.idle_timeout)?;
        Ok(Player::new(self.connection, stream_id, early))
    }

    /// Connects and publishes to the URL's stream; returns once the server said
    /// NetStream.Publish.Start.
    pub fn publish(mut self, mode: PublishMode) -> Result<Publisher, Error> {
        self.connection.session.publish(&self.url, mode)?;
        let (_, early) = self
            .connection
            .wait_for(self.options.reply_timeout, |event| matches!(event, ClientSessionEvent::PublishStarted { .. }))?;
        let mut publisher = Publisher::new(self.connection);
        publisher.handle_events(early)?;
        Ok(publisher)
    }

    /// The URL this client connected to.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// The session, for anything the conveniences do not cover (e.g. a call before play).
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.connection.session
    }
}
