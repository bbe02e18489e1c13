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
pub use server::{media_chunk_stream, ServerSession, ServerSessionConfig};
pub use status::codes;

use std::fmt;

use crate::chunk_io::ChunkError;
use crate::messages::MessageError;

/// Why a session could not go on, or refused a call.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionError {
    /// The chunk layer rejected the peer's bytes; the connection should close.
    Chunk(ChunkError),
    /// A message could not be encoded (a bug in the caller's values, e.g. a NaN key).
    Message(MessageError),
    /// `accept_request`/`reject_request` named a request that is not pending.
    UnknownRequest(u32),
    /// The call does not fit the session's state (e.g. publishing before connecting).
    InvalidState(&'static str),
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
            SessionError::InvalidState(what) => write!(f, "invalid session state: {what}"),
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
