//! HTTP/1.1 responses as bytes for a connection's queue.

use std::fmt::Write as _;

use bytes::Bytes;
use serde::Serialize;

/// `Content-Type` of JSON answers.
pub const JSON: &str = "application/json";
/// `Content-Type` of plain text answers.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of the status page.
pub const HTML: &str = "text/html; charset=utf-8";
/// `Content-Type` of the player script.
pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// A response: status, type, extra headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Headers beyond the ones every response gets.
    pub headers: Vec<(&'static str, String)>,
    /// `Cache-Control` (`no-store` unless set: the API's answers change every second).
    pub cache_control: &'static str,
    /// The body (not sent for HEAD).
    pub body: Bytes,
}

impl Response {
    /// A response with this body.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response { status, content_type, headers: Vec::new(), cache_control: "no-store", body: body.into() }
    }

    /// A JSON body.
    pub fn json(status: u16, value: &impl Serialize) -> Response {
        match serde_json::to_vec(value) {
            Ok(mut body) => {
                body.push(b'\n');
                Response::new(status, JSON, body)
            }
            Err(error) => Response::error(500, &format!("could not encode the answer: {error}")),
        }
    }

    /// A JSON `{"error": message}` body.
    pub fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({ "error": message });
        let mut bytes = body.to_string().into_bytes();
        bytes.push(b'\n');
        Response::new(status, JSON, bytes)
    }

    /// Sets `Cache-Control`.
    pub fn with_cache_control(mut self, value: &'static str) -> Response {
        self.cache_control = value;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The status line and headers, then the body (empty for HEAD): two buffers, so a
    /// static body (the status page) is queued without a copy.
    ///
    /// ```
    /// use rtmp_edge::relay::http::{Response, TEXT};
    ///
    /// let (head, body) = Response::new(200, TEXT, "ok\n").encode(false, false);
    /// assert_eq!(
    ///     &head[..],
    ///     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
    ///       Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    /// );
    /// assert_eq!(&body[..], b"ok\n");
    /// ```
    pub fn encode(&self, keep_alive: bool, head_only: bool) -> (Bytes, Bytes) {
        let mut head = String::with_capacity(160);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status));
        // A 204 has no body, and says nothing of one.
        if self.status != 204 {
            let _ = write!(head, "Content-Type: {}\r\nContent-Length: {}\r\n", self.content_type, self.body.len());
        }
        let _ = write!(head, "Cache-Control: {}\r\n", self.cache_control);
        for (name, value) in &self.headers {
            // Values come from the relay, not the client; a line break would still split the
            // header, so none is let through.
            let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
        let body = if head_only { Bytes::new() } else { self.body.clone() };
        (Bytes::from(head), body)
    }
}

/// The reason phrase of the statuses the relay sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_responses_keep_the_length_and_drop_the_body() {
        let response = Response::json(200, &serde_json::json!({"a": 1})).with_header("Allow", "GET");
        let (head, body) = response.encode(true, true);
        let head = String::from_utf8(head.to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"), "{head}");
        assert!(head.contains("\r\nAllow: GET\r\n"));
        assert!(head.ends_with("Connection: keep-alive\r\n\r\n"));
        assert!(body.is_empty());
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let (head, _) = Response::new(200, TEXT, "").with_header("X", "a\r\nSet-Cookie: b").encode(false, false);
        assert!(String::from_utf8_lossy(&head).contains("X: aSet-Cookie: b\r\n"));
    }
}
