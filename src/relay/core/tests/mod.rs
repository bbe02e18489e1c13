//! Core tests: the relay's policy driven directly, with a fake clock and no sockets.

mod actions;
mod access;
mod edge;
mod flv_client;
mod http_flv;
mod hostile;
mod hostile_requests;
mod log_capture;
mod ops;
mod ops_counters;
mod players;
mod proxy;
mod stream_cache;
mod tls;
mod workers;
mod ws_flv;
mod harness;
