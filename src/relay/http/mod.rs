//! HTTP/1.1 on the relay's own loop, sans-IO: request parsing with bounded size
//! ([`RequestReader`]), routing ([`route`]), responses as bytes ([`Response`]), the JSON
//! API's documents ([`api`]), the Prometheus text ([`render_metrics`]) and the status page
//! ([`STATUS_PAGE`]).
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

use std::time::Instant;

pub use api::{rfc3339, ClientView, KickedView, PublisherView, ReloadView, StreamView, SummaryView, UpstreamView};
pub use metrics::{render as render_metrics, MetricsView, StreamMetrics};
pub use request::{HttpError, Method, Request, RequestLimits, RequestReader, MAX_HEADERS};
pub use response::{reason_phrase, Response, HTML, JSON, PROMETHEUS_TEXT, TEXT};
pub use router::{has_bearer_token, route, Route};

/// The status page: one HTML file with its styles and script inline, no CDN, no build step.
/// It polls `/api/v1/summary` and `/api/v1/streams` every second.
pub const STATUS_PAGE: &str = include_str!("status.html");

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
        HttpConn { reader: RequestReader::new(limits), request_started: Some(now), awaiting: None, requests: 0 }
    }
}
