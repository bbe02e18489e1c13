//! Reading HTTP/1.1 requests from a byte stream, with bounded memory.
//!
//! [`RequestReader`] buffers at most [`RequestLimits::capacity`] bytes of one connection's
//! input. Complete requests are parsed with `httparse` and taken out of the buffer one at a
//! time, so keep-alive and pipelining work; a request head or body that cannot fit is an
//! error, never a bigger buffer.

use std::fmt;

/// How big a request may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Request line plus headers, in bytes.
    pub max_head_bytes: usize,
    /// Body (`Content-Length`), in bytes. The API needs none; small bodies are read and ignored.
    pub max_body_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_head_bytes: 8 * 1024, max_body_bytes: 8 * 1024 }
    }
}

impl RequestLimits {
    /// The most bytes a reader ever buffers.
    pub fn capacity(&self) -> usize {
        self.max_head_bytes.saturating_add(self.max_body_bytes)
    }
}

/// Most header lines in one request.
pub const MAX_HEADERS: usize = 32;

/// The request method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: as GET, without the body.
    Head,
    /// POST.
    Post,
    /// DELETE.
    Delete,
    /// Anything else (answered 405 where a path exists).
    Other(String),
}

impl Method {
    fn parse(text: &str) -> Method {
        match text {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Other(other) => other,
        }
    }
}

/// One parsed request. The body, if any, has been read and dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query string (origin form: starts with `/`).
    pub path: String,
    /// What followed `?`, without it; empty when there was none.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Whether the connection stays open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
}

impl Request {
    /// The first header named `name` (give it lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// Why a request could not be read. Each is answered with its status, then the connection
/// closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP/1.x, or broken syntax.
    Malformed(String),
    /// The request line and headers passed the limit before they ended.
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header lines than [`MAX_HEADERS`].
    TooManyHeaders,
    /// `Content-Length` passes the limit.
    BodyTooLarge {
        /// What the client announced.
        length: u64,
        /// The limit.
        limit: usize,
    },
    /// `Transfer-Encoding` (chunked bodies) is not accepted.
    TransferEncoding,
}

impl HttpError {
    /// The status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::TransferEncoding => 501,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed request: {why}"),
            HttpError::HeadTooLarge { limit } => write!(f, "request head longer than {limit} bytes"),
            HttpError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            HttpError::BodyTooLarge { length, limit } => write!(f, "body of {length} bytes (limit {limit})"),
            HttpError::TransferEncoding => write!(f, "Transfer-Encoding is not supported"),
        }
    }
}

/// Buffers one connection's input and hands out complete requests.
///
/// ```
/// use rtmp_edge::relay::http::{Method, RequestLimits, RequestReader};
///
/// let mut reader = RequestReader::new(RequestLimits::default());
/// let input = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n";
/// assert_eq!(reader.fill(input), input.len());
/// let request = reader.next_request().unwrap().unwrap();
/// assert_eq!((request.method, request.path.as_str()), (Method::Get, "/metrics"));
/// assert_eq!(reader.next_request().unwrap(), None, "the second request is not complete yet");
/// assert!(!reader.is_empty());
/// ```
#[derive(Debug)]
pub struct RequestReader {
    buffer: Vec<u8>,
    limits: RequestLimits,
}

impl RequestReader {
    /// An empty reader.
    pub fn new(limits: RequestLimits) -> RequestReader {
        RequestReader { buffer: Vec::new(), limits }
    }

    /// Takes as much of `bytes` as fits under the limit; returns how many it took. The
    /// caller parses what is buffered ([`next_request`](Self::next_request)) before offering
    /// the rest.
    pub fn fill(&mut self, bytes: &[u8]) -> usize {
        let room = self.limits.capacity().saturating_sub(self.buffer.len());
        let take = room.min(bytes.len());
        self.buffer.extend_from_slice(bytes.get(..take).unwrap_or_default());
        take
    }

    /// Whether no byte of a next request is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Whether the buffer is at its limit.
    pub fn is_full(&self) -> bool {
        self.buffer.len() >= self.limits.capacity()
    }

    /// The next complete request, taken out of the buffer; `None` until one is complete.
    pub fn next_request(&mut self) -> Result<Option<Request>, HttpError> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let head_length = match parsed.parse(&self.buffer) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => {
                if self.buffer.len() >= self.limits.max_head_bytes {
                    return Err(HttpError::HeadTooLarge { limit: self.limits.max_head_bytes });
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
            Err(error) => return Err(HttpError::Malformed(error.to_string())),
        };
        if head_length > self.limits.max_head_bytes {
            return Err(HttpError::HeadTooLarge { limit: self.limits.max_head_bytes });
        }
        let method = Method::parse(parsed.method.unwrap_or_default());
        let target = parsed.path.unwrap_or_default();
        let version_minor = parsed.version.unwrap_or_default();
        let (path, query) = split_target(target)?;
        let mut header_list = Vec::with_capacity(parsed.headers.len());
        let mut body_length: u64 = 0;
        for header in parsed.headers.iter() {
            let name = header.name.to_ascii_lowercase();
            let value = std::str::from_utf8(header.value)
                .map_err(|_| HttpError::Malformed(format!("header {name} is not UTF-8")))?
                .trim()
                .to_string();
            match name.as_str() {
                "content-length" => {
                    let length: u64 =
                        value.parse().map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?;
                    if header_list.iter().any(|(key, _): &(String, String)| key == "content-length") {
                        return Err(HttpError::Malformed("two Content-Length headers".to_string()));
                    }
                    body_length = length;
                }
                "transfer-encoding" => return Err(HttpError::TransferEncoding),
                _ => {}
            }
            header_list.push((name, value));
        }
        if body_length > self.limits.max_body_bytes as u64 {
            return Err(HttpError::BodyTooLarge { length: body_length, limit: self.limits.max_body_bytes });
        }
        // Bounded by max_body_bytes just above, so it fits in usize.
        let total = head_length.saturating_add(body_length as usize);
        if self.buffer.len() < total {
            return Ok(None);
        }
        let keep_alive = wants_keep_alive(version_minor, &header_list);
        self.buffer.drain(..total);
        Ok(Some(Request { method, path, query, version_minor, headers: header_list, keep_alive }))
    }
}

/// Splits a request target into path and query. Absolute form (`http://host/path`) is
/// accepted, as HTTP/1.1 servers must; anything not starting with `/` is not.
fn split_target(target: &str) -> Result<(String, String), HttpError> {
    let origin_form = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
            rest.find('/').map_or("/", |slash| rest.get(slash..).unwrap_or("/"))
        }
        _ => target,
    };
    if !origin_form.starts_with('/') {
        return Err(HttpError::Malformed(format!("request target {target:?}")));
    }
    let (path, query) = origin_form.split_once('?').unwrap_or((origin_form, ""));
    Ok((path.to_string(), query.to_string()))
}

fn wants_keep_alive(version_minor: u8, headers: &[(String, String)]) -> bool {
    let mut keep_alive = version_minor >= 1;
    for (_, value) in headers.iter().filter(|(name, _)| name == "connection") {
        for token in value.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") {
                return false;
            }
            if token.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    keep_alive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> RequestReader {
        RequestReader::new(RequestLimits { max_head_bytes: 256, max_body_bytes: 64 })
    }

    #[test]
    fn pipelined_requests_come_out_one_by_one_in_order() {
        let mut reader = reader();
        let input = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcDELETE /c HTTP/1.0\r\n\r\n";
        assert_eq!(reader.fill(input), input.len());
        let first = reader.next_request().unwrap().unwrap();
        assert_eq!((&first.method, first.path.as_str(), first.query.as_str()), (&Method::Get, "/a", "x=1"));
        assert!(first.keep_alive);
        assert_eq!(first.header("host"), Some("h"));
        let second = reader.next_request().unwrap().unwrap();
        assert_eq!((&second.method, second.path.as_str()), (&Method::Post, "/b"));
        let third = reader.next_request().unwrap().unwrap();
        assert_eq!((third.method, third.version_minor, third.keep_alive), (Method::Delete, 0, false));
        assert_eq!(reader.next_request().unwrap(), None);
        assert!(reader.is_empty());
    }

    #[test]
    fn a_request_split_at_every_byte_is_read_once_complete() {
        let input = b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n";
        let mut reader = reader();
        for (index, byte) in input.iter().enumerate() {
            assert_eq!(reader.fill(&[*byte]), 1);
            let result = reader.next_request().unwrap();
            if index + 1 < input.len() {
                assert_eq!(result, None, "complete too early at byte {index}");
            } else {
                let request = result.unwrap();
                assert_eq!(request.header("authorization"), Some("Bearer t"));
                assert!(!request.keep_alive);
            }
        }
    }

    #[test]
    fn a_head_past_the_limit_is_an_error_and_the_buffer_never_grows_past_capacity() {
        let mut reader = reader();
        let mut input = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        input.resize(10_000, b'a');
        let taken = reader.fill(&input);
        assert_eq!(taken, 256 + 64);
        assert!(reader.is_full());
        assert_eq!(reader.next_request(), Err(HttpError::HeadTooLarge { limit: 256 }));
    }

    #[test]
    fn bodies_over_the_limit_chunked_bodies_and_garbage_are_refused() {
        let cases: [(&[u8], u16); 5] = [
            (b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
            (b"GET nowhere HTTP/1.1\r\n\r\n", 400),
        ];
        for (input, status) in cases {
            let mut reader = reader();
            reader.fill(input);
            let error = reader.next_request().unwrap_err();
            assert_eq!(error.status(), status, "{error} for {:?}", String::from_utf8_lossy(input));
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let mut reader = RequestReader::new(RequestLimits::default());
        reader.fill(&many);
        assert_eq!(reader.next_request(), Err(HttpError::TooManyHeaders));
    }

    #[test]
    fn absolute_form_targets_and_connection_tokens_are_understood() {
        let mut reader = reader();
        reader.fill(b"GET http://relay:8080/healthz?a HTTP/1.0\r\nConnection: Keep-Alive, TE\r\n\r\n");
        let request = reader.next_request().unwrap().unwrap();
        assert_eq!((request.path.as_str(), request.query.as_str(), request.keep_alive), ("/healthz", "a", true));
    }
}
