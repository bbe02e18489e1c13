//! Core tests: the relay's policy driven directly, with a fake clock and no sockets.

mod access;
mod edge;
mod hostile;
mod ops;
mod players;
mod stream_cache;
mod harness;
