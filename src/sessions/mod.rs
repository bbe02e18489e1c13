//! RTMP command flows as sans-IO state machines: [`ServerSession`] and [`ClientSession`].
//!
//! A session starts after the handshake. The caller feeds it the peer's bytes with
//! `handle_input`, then drains what it produced until both are empty:
//!
//! * `poll_event()` gives [`ServerSessionEvent`]s / [`ClientSessionEvent`]s, one at a time;
//! * `take_outbound()` gives the bytes to write to the peer.
//!
//! Requests the application must decide on (a connect, a publish, a play) arrive as events
//! with a `request_id`; answer them with `accept_request` or `reject_request`. Nothing here
//! allocates per media message beyond the event itself: media bodies are `Bytes` slices of
//! the input.
//!
//! **No clock.** Sessions take bytes, never the time, and need none:
//! - acknowledgements are due by bytes received (a window the peer announced), and are
//!   queued by the `handle_input` call that completes one;
//! - a peer's ping request is answered in the same `handle_input` call;
//! - a ping of your own (`send_ping_request`) carries whatever timestamp you pass.
//!
//! Keep-alives, timeouts and deadlines are the caller's policy, on the caller's clock.
//!
//! **What a client must watch for.** A refusal (of connect, createStream, play or publish)
//! is the event [`ClientSessionEvent::RequestRejected`], not an error from a call: a loop
//! that waits only for [`ClientSessionEvent::PlaybackStarted`] waits forever. Check
//! [`ClientSession::rejection`] too, or use `rtmp_edge::blocking` (feature `blocking`),
//! which turns a refusal into an error. A play that the server accepted before the stream has a publisher gets
//! [`ClientSessionEvent::WaitingForPublisher`] after `PlaybackStarted`; its media starts
//! after [`ClientSessionEvent::StreamBegin`].
//!
//! ```
//! use rtmp_edge::sessions::*;
//!
//! let mut server = ServerSession::new(ServerSessionConfig::default());
//! let mut client = ClientSession::new(ClientSessionConfig::default());
//! client.connect("live", "rtmp://127.0.0.1/live").unwrap();
//!
//! // Shuttle bytes both ways until neither side has anything to say.
//! let mut publish_started = false;
//! client.request_publishing("stream?token=abc", PublishMode::Live).unwrap();
//! for _ in 0..10 {
//!     server.handle_input(&client.take_outbound()).unwrap();
//!     while let Some(event) = server.poll_event() {
//!         match event {
//!             ServerSessionEvent::ConnectionRequested { request_id, .. }
//!             | ServerSessionEvent::PublishRequested { request_id, .. } => {
//!                 server.accept_request(request_id).unwrap();
//!             }
//!             _ => {}
//!         }
//!     }
//!     client.handle_input(&server.take_outbound()).unwrap();
//!     while let Some(event) = client.poll_event() {
//!         if let ClientSessionEvent::PublishStarted { .. } = event {
//!             publish_started = true;
//!         }
//!     }
//! }
//! assert!(publish_started);
//! ```

mod capabilities;
mod client;
mod connection;
mod events;
mod server;
mod status;

#[cfg(test)]
mod tests;

pub use capabilities::{CapsEx, EnhancedCapabilities, FourCcInfo, KNOWN_FOURCCS, MAX_ANNOUNCED_CODECS};
pub use client::{ClientSession, ClientSessionConfig};
pub use events::{
    ClientSessionEvent, ConnectRequest, MediaKind, PublishMode, RejectedRequestKind, ServerSessionEvent, StatusInfo,
    StreamMetadata,
};
pub use server::{media_chunk_stream, ServerSession, ServerSessionConfig, MAX_DEFERRED_BYTES};
pub use status::codes;

use std::fmt;

use crate::chunk_io::ChunkError;
use crate::messages::MessageError;

/// Why a session could not go on, or refused a call.
///
/// [`Chunk`](SessionError::Chunk),
/// [`TooManyMessagesBeforeConnect`](SessionError::TooManyMessagesBeforeConnect) and
/// [`TooManyBytesBeforeConnect`](SessionError::TooManyBytesBeforeConnect) come from
/// `handle_input` and mean the peer broke the protocol: close the connection. The others
/// answer a call that does not fit the session's state, and the session carries on.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionError {
    /// The chunk layer rejected the peer's bytes; the connection should close.
    Chunk(ChunkError),
    /// A message could not be encoded (a bug in the caller's values, e.g. a NaN key).
    Message(MessageError),
    /// `accept_request`/`reject_request` named a request that is not pending.
    UnknownRequest(u32),
    /// The request named is pending but is not of the kind the call answers (e.g.
    /// [`ServerSession::accept_play_waiting`] for a publish).
    WrongRequestKind(u32),
    /// `connect` (or `play`/`publish`, which connect) was called a second time.
    AlreadyConnected,
    /// A stream was requested before `connect`.
    NotConnected,
    /// A stream was requested after the server refused `connect`.
    ConnectRejected,
    /// Media was sent while no publish had been accepted.
    NotPublishing,
    /// [`ClientSession::play`] or [`ClientSession::publish`] got a URL that names no
    /// stream (`rtmp://host/app` without `/name`).
    NoStreamName,
    /// The client sent more than `max` messages while its `connect` awaited an answer.
    TooManyMessagesBeforeConnect {
        /// The most that are held.
        max: usize,
    },
    /// The client's commands held while its `connect` awaited an answer passed `max`
    /// bytes.
    TooManyBytesBeforeConnect {
        /// The most bytes that are held.
        max: usize,
    },
    /// The peer opened more message streams than allowed.
    TooManyStreams {
        /// The configured maximum.
        max: u32,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Chunk(error) => write!(f, "chunk stream error: {error}"),
            SessionError::Message(error) => write!(f, "message error: {error}"),
            SessionError::UnknownRequest(id) => write!(f, "no pending request with id {id}"),
            SessionError::WrongRequestKind(id) => write!(f, "request {id} is not of the kind this call answers"),
            SessionError::AlreadyConnected => write!(f, "connect was already sent"),
            SessionError::NotConnected => write!(f, "a stream was requested before connect"),
            SessionError::ConnectRejected => write!(f, "the server rejected connect"),
            SessionError::NotPublishing => write!(f, "media sent while not publishing"),
            SessionError::NoStreamName => write!(f, "the URL names no stream (rtmp://HOST/APP/STREAM)"),
            SessionError::TooManyMessagesBeforeConnect { max } => {
                write!(f, "peer sent more than {max} messages before connect was answered")
            }
            SessionError::TooManyBytesBeforeConnect { max } => {
                write!(f, "peer sent more than {max} bytes of commands before connect was answered")
            }
            SessionError::TooManyStreams { max } => write!(f, "peer opened more than {max} streams"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<ChunkError> for SessionError {
    fn from(error: ChunkError) -> Self {
        SessionError::Chunk(error)
    }
}

impl From<MessageError> for SessionError {
    fn from(error: MessageError) -> Self {
        SessionError::Message(error)
    }
}
