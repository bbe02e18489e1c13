//! # rtmp_edge
//!
//! A sans-IO RTMP library, and (in the `rtmp-edge` binary) a single-threaded edge relay
//! built on it.
//!
//! Every module here except [`relay`] is sans-IO: it takes bytes (and, where time matters,
//! the current time) from the caller and hands back bytes to send and events to act on.
//! Nothing in the protocol layers opens a socket or reads a clock, so the same code runs
//! under mio, tokio, blocking `std::net`, or over recorded files.
//!
//! | module | job |
//! |---|---|
//! | [`time`] | [`time::RtmpTimestamp`], wrapping 32-bit millisecond timestamps |
//! | [`handshake`] | C0-C2 / S0-S2, plain and Flash digest forms |
//! | [`chunk_io`] | chunk stream decoding and encoding (RTMP 1.0 section 5.3) |
//! | [`messages`] | every RTMP 1.0 message type, AMF0 through `rml_amf0` |
//! | [`media`] | FLV audio/video tag headers, legacy and Enhanced RTMP |
//! | [`flv`] | FLV file reading and writing |
//! | [`sessions`] | server and client command flows as events and requests |
//! | [`relay`] | the mio event loop behind the `rtmp-edge` binary |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chunk_io;
pub mod flv;
pub mod handshake;
pub mod media;
pub mod messages;
pub mod sessions;
pub mod relay;
pub mod time;

/// The AMF0 value type used throughout the library, re-exported from `rml_amf0`.
pub use rml_amf0::Amf0Value;
