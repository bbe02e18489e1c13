//! # rtmp_edge
//!
//! A sans-IO RTMP library, and (in the `rtmp-edge` binary) a single-threaded edge relay
//! built on it.
//!
//! ## Quick start
//!
//! Record a live stream to an FLV file, then publish a file, with the blocking client
//! (the `blocking` feature, on by default):
//!
//! ```no_run
//! use std::fs::File;
//! use rtmp_edge::{blocking, flv::{FlvReader, FlvWriter}, sessions::PublishMode, url::RtmpUrl};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = RtmpUrl::parse("rtmp://127.0.0.1/live/stream")?;
//! let mut recording = FlvWriter::new(File::create("stream.flv")?, true, true)?;
//! // Metadata, sequence headers and frames, in order, until the publisher stops.
//! for tag in blocking::connect(&url)?.play()? {
//!     recording.write_tag(&tag?)?;
//! }
//!
//! // Sending as fast as the socket takes it; pace by tag.timestamp for real time.
//! let mut publisher = blocking::connect(&url)?.publish(PublishMode::Live)?;
//! for tag in FlvReader::open("stream.flv")? {
//!     publisher.send_tag(&tag?)?;
//! }
//! publisher.finish()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Sans-IO
//!
//! Every module here except `relay` and `blocking` is sans-IO: the caller feeds it
//! the bytes that arrived and drains the bytes to send and the events to act on. Nothing
//! in the protocol layers opens a socket, reads a clock or takes the time: acknowledgements
//! are counted in bytes, and pings are sent when the caller decides to. So the same code
//! runs under mio (the relay), tokio (`examples/tokio_relay.rs`), blocking `std::net`
//! (`blocking`, `examples/record.rs`), or over recorded files.
//!
//! | module | job |
//! |---|---|
//! | [`url`] | [`url::RtmpUrl`]: `rtmp://` and `rtmps://` URLs, app, stream name, tcUrl |
//! | [`time`] | [`time::RtmpTimestamp`], wrapping 32-bit millisecond timestamps |
//! | [`handshake`] | C0-C2 / S0-S2, plain and Flash digest forms |
//! | [`chunk_io`] | chunk stream decoding and encoding (RTMP 1.0 section 5.3) |
//! | [`messages`] | every RTMP 1.0 message type, AMF0 through `rml_amf0` |
//! | [`media`] | FLV audio/video tag headers, legacy and Enhanced RTMP |
//! | [`flv`] | FLV file reading and writing |
//! | [`sessions`] | server and client command flows as events and requests |
//! | [`proxy_protocol`] | the PROXY protocol v1/v2 header L4 balancers put first |
//! | `blocking` | a client over `std::net::TcpStream` (feature `blocking`) |
//! | `relay` | the mio event loop behind the `rtmp-edge` binary (feature `relay`) |
//!
//! ## Features
//!
//! - `relay` (default): the relay and the two binaries, with every crate only they use:
//!   mio and signal-hook for the event loop, and what the logger, the command line, the
//!   config file, the HTTP API and the descriptor limit need. The `relay` feature in
//!   Cargo.toml is the list.
//! - `blocking` (default): the `blocking` module, std only.
//!
//! With `default-features = false` the crate is the sans-IO library alone, on bytes,
//! AMF0 (rml_amf0), HMAC-SHA256 for the digest handshake, rand for its random bytes, and
//! log; none of the relay's crates is built.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "blocking")]
pub mod blocking;
pub mod chunk_io;
pub mod flv;
pub mod handshake;
pub mod media;
pub mod messages;
pub mod proxy_protocol;
#[cfg(feature = "relay")]
pub mod relay;
pub mod sessions;
pub mod time;
pub mod url;

#[cfg(any(test, doctest))]
mod non_exhaustive;

/// The AMF0 value type used throughout the library, re-exported from `rml_amf0`.
pub use rml_amf0::Amf0Value;

/// The `bytes` crate, re-exported: message bodies and FLV tag data are [`bytes::Bytes`],
/// and [`flv::FlvReader::new`] takes one.
pub use bytes;
