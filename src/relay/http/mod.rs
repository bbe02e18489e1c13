//! HTTP/1.1 on the relay's own loop, sans-IO: request parsing with bounded size
//! ([`RequestReader`]), routing ([`route`]), responses as bytes ([`Response`]), the JSON
//! API's documents ([`api`]), the Prometheus text ([`render_metrics`]), the status page
//! ([`STATUS_PAGE`]) with its player script ([`PLAYER_SCRIPT`]), and WebSocket
//! ([`websocket`]) for WebSocket-FLV.
//!
//! Nothing here touches a socket, a clock or the relay's state. The core owns HTTP
//! connections like any other (`core/http_conn.rs`): it feeds their bytes to an
//! [`HttpConn`], answers each request from its own counters, and queues the response
//! bytes on the connection's queue, which the driver writes like any other.

pub mod api;
pub mod merge;
mod metrics;
mod request;
mod response;
mod router;
pub mod websocket;

use std::time::Instant;

pub use api::{rfc3339, ClientView, KickedView, PublisherView, ReloadView, StreamView, SummaryView, UpstreamView};
pub use metrics::{render as render_metrics, MetricsView, StreamMetrics};
pub use request::{HttpError, Method, Request, RequestLimits, RequestReader, MAX_HEADERS};
pub use response::{reason_phrase, Response, HTML, JAVASCRIPT, JSON, PROMETHEUS_TEXT, TEXT};
pub use router::{has_bearer_token, route, Route};

/// The status page: one HTML file with its styles and script inline, no CDN, no build step.
/// It polls `/api/v1/summary` and `/api/v1/streams` every second.
pub const STATUS_PAGE: &str = include_str!("status.html");

/// mpegts.js, the player the status page's "watch" buttons use: vendored from the npm
/// registry (`scripts/vendor-mpegts.sh`), licence beside it in `vendor/`.
pub const PLAYER_SCRIPT: &[u8] = include_bytes!("vendor/mpegts.js");

/// The vendored mpegts.js version; the page asks for `/mpegts.js?v=VERSION`, so the script
/// can be cached for good.
pub const PLAYER_SCRIPT_VERSION: &str = include_str!("vendor/mpegts.version");

/// How an HTTP client plays a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlvProtocol {
    /// HTTP-FLV: the FLV file as the response body, until the connection closes.
    Http,
    /// WebSocket-FLV: one binary message per tag (and one for the file header).
    WebSocket,
}

impl FlvProtocol {
    /// The name in the API (`protocol`), hook payloads and logs.
    pub fn label(self) -> &'static str {
        match self {
            FlvProtocol::Http => "http-flv",
            FlvProtocol::WebSocket => "ws-flv",
        }
    }
}

/// An HTTP connection that asked for a stream. It reads no more requests: an HTTP-FLV
/// client's further bytes are dropped, a WebSocket client's are read as frames.
#[derive(Debug)]
pub struct StreamPlayback {
    /// HTTP or WebSocket.
    pub protocol: FlvProtocol,
    /// For WebSocket: the `Sec-WebSocket-Accept` to answer with.
    pub accept: Option<String>,
    /// Whether the response head went out (the play was allowed).
    pub answered: bool,
    /// A WebSocket client's frames.
    pub frames: websocket::FrameReader,
    /// When the current one-second window of client pings began, and the pings in it.
    pub ping_window: Option<(Instant, u32)>,
}

impl StreamPlayback {
    /// A request for a stream, waiting for its access decision.
    pub fn new(protocol: FlvProtocol, accept: Option<String>) -> StreamPlayback {
        StreamPlayback { protocol, accept, answered: false, frames: websocket::FrameReader::default(), ping_window: None }
    }
}
/// One HTTP connection's protocol state. Deadlines are the core's policy; this only records
/// when the request being read began.
#[derive(Debug)]
pub struct HttpConn {
    /// Input not yet parsed into requests.
    pub reader: RequestReader,
    /// When the request being read began: at accept, then at the first byte after each
    /// answered request. `None` while the connection is idle between requests (keep-alive)
    /// or waiting for a reload's result.
    pub request_started: Option<Instant>,
    /// A request is waiting for something the driver does (a configuration reload); requests
    /// after it wait in the reader so answers keep their order.
    pub awaiting: Option<Awaiting>,
    /// Requests answered so far.
    pub requests: u64,
    /// Set once a request asked for a stream (`GET /APP/NAME.flv`).
    pub stream: Option<StreamPlayback>,
}

/// A request whose answer waits for the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Awaiting {
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// Whether the answer goes without a body.
    pub head_only: bool,
}

impl HttpConn {
    /// A connection accepted at `now`: its first request must arrive within the header
    /// timeout from now.
    pub fn new(limits: RequestLimits, now: Instant) -> HttpConn {
        HttpConn { reader: RequestReader::new(limits), request_started: Some(now), awaiting: None, requests: 0, stream: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_asks_for_the_vendored_player_by_its_version() {
        assert_eq!(PLAYER_SCRIPT_VERSION, "1.8.2");
        assert!(STATUS_PAGE.contains(&format!("<script src=\"/mpegts.js?v={PLAYER_SCRIPT_VERSION}\"></script>")));
        assert!(PLAYER_SCRIPT.starts_with(b"/*! For license information please see mpegts.js.LICENSE.txt */"));
    }
}
