//! The smallest HTTP/1.1 client the hooks need, sans-IO: the request's bytes, and a reader
//! that turns the answer's bytes into a status and a body, bounded in size. Bodies may be
//! delimited by `Content-Length`, chunked, or by the end of the connection (we always send
//! `Connection: close`). The driver's hook workers move the bytes.
//!
//! ```
//! use rtmp_edge::relay::access::http_client::{ResponseReader, Progress};
//!
//! let mut reader = ResponseReader::new();
//! assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"co"), Ok(Progress::NeedMore));
//! assert_eq!(reader.feed(b"de\":0}"), Ok(Progress::Done { status: 200, body: b"{\"code\":0}".to_vec() }));
//! ```

use std::fmt;

use super::hook::HookUrl;

/// Largest response head accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest response body accepted (hook answers are a few bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most headers in a response head.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 1024;
/// Most informational (1xx) heads skipped before the real answer.
const MAX_INTERIM_HEADS: usize = 8;

/// The bytes of a `POST` of `body` (JSON) to `url`, asking the server to close afterwards.
pub fn post_request(url: &HookUrl, body: &str) -> Vec<u8> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rtmp-edge/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.target(),
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// How far the answer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    NeedMore,
    /// The whole answer.
    Done {
        /// HTTP status code.
        status: u16,
        /// The body (de-chunked).
        body: Vec<u8>,
    },
}

/// Why an answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseError(String);

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResponseError {}

fn error(message: impl Into<String>) -> ResponseError {
    ResponseError(message.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// Reading this many more data bytes, then CRLF.
    Data(usize),
    /// Reading the trailer section, up to its empty line.
    Trailers,
}

/// Reads one HTTP/1.x response from bytes as they arrive.
#[derive(Debug, Default)]
pub struct ResponseReader {
    buffer: Vec<u8>,
    head: Option<(u16, Framing)>,
    body: Vec<u8>,
    chunk: Option<ChunkState>,
    interim_heads: usize,
}

impl ResponseReader {
    /// A reader waiting for the status line.
    pub fn new() -> ResponseReader {
        ResponseReader::default()
    }

    /// Takes more bytes of the answer.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ResponseError> {
        self.buffer.extend_from_slice(bytes);
        loop {
            let Some((status, framing)) = self.head else {
                if !self.read_head()? {
                    return Ok(Progress::NeedMore);
                }
                continue;
            };
            return match framing {
                Framing::Length(length) => {
                    let wanted = length.saturating_sub(self.body.len());
                    let take = wanted.min(self.buffer.len());
                    self.body.extend(self.buffer.drain(..take));
                    if self.body.len() == length {
                        Ok(Progress::Done { status, body: std::mem::take(&mut self.body) })
                    } else {
                        Ok(Progress::NeedMore)
                    }
                }
                Framing::UntilClose => {
                    if self.body.len().saturating_add(self.buffer.len()) > MAX_BODY_BYTES {
                        return Err(error(format!("response body over {MAX_BODY_BYTES} bytes")));
                    }
                    self.body.append(&mut self.buffer);
                    Ok(Progress::NeedMore)
                }
                Framing::Chunked => self.read_chunks(status),
            };
        }
    }

    /// The connection ended: an answer whose body runs to the end is complete now; any
    /// other unfinished one is an error.
    pub fn finish(&mut self) -> Result<Progress, ResponseError> {
        match self.head {
            Some((status, Framing::UntilClose)) => Ok(Progress::Done { status, body: std::mem::take(&mut self.body) }),
            Some(_) => Err(error("the connection closed in the middle of the response body")),
            None => Err(error("the connection closed before a complete response head")),
        }
    }

    /// Parses a head once it is all there; skips 1xx heads. Returns whether one was read.
    fn read_head(&mut self) -> Result<bool, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let length = match response.parse(&self.buffer) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if self.buffer.len() > MAX_HEAD_BYTES => {
                return Err(error(format!("response head over {MAX_HEAD_BYTES} bytes")))
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(parse_error) => return Err(error(format!("malformed response head: {parse_error}"))),
        };
        if length > MAX_HEAD_BYTES {
            return Err(error(format!("response head over {MAX_HEAD_BYTES} bytes")));
        }
        let status = response.code.ok_or_else(|| error("response without a status code"))?;
        let framing = framing(status, response.headers)?;
        self.buffer.drain(..length);
        if (100..200).contains(&status) {
            self.interim_heads += 1;
            if self.interim_heads > MAX_INTERIM_HEADS {
                return Err(error("too many informational (1xx) responses"));
            }
            return Ok(true);
        }
        if let Framing::Length(length) = framing {
            if length > MAX_BODY_BYTES {
                return Err(error(format!("response body of {length} bytes is over {MAX_BODY_BYTES}")));
            }
        }
        self.head = Some((status, framing));
        if framing == Framing::Chunked {
            self.chunk = Some(ChunkState::Size);
        }
        Ok(true)
    }

    fn read_chunks(&mut self, status: u16) -> Result<Progress, ResponseError> {
        loop {
            match self.chunk.unwrap_or(ChunkState::Size) {
                ChunkState::Size => {
                    let Some(line) = take_line(&mut self.buffer, MAX_CHUNK_LINE)? else { return Ok(Progress::NeedMore) };
                    let digits = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
                    let size = parse_hex(digits).ok_or_else(|| error("malformed chunk size"))?;
                    if self.body.len().saturating_add(size) > MAX_BODY_BYTES {
                        return Err(error(format!("response body over {MAX_BODY_BYTES} bytes")));
                    }
                    self.chunk = Some(if size == 0 { ChunkState::Trailers } else { ChunkState::Data(size) });
                }
                ChunkState::Data(remaining) => {
                    // The data, then its CRLF.
                    if self.buffer.len() < remaining.saturating_add(2) {
                        return Ok(Progress::NeedMore);
                    }
                    self.body.extend(self.buffer.drain(..remaining));
                    if self.buffer.drain(..2).as_slice() != b"\r\n" {
                        return Err(error("chunk data not followed by CRLF"));
                    }
                    self.chunk = Some(ChunkState::Size);
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(&mut self.buffer, MAX_HEAD_BYTES)? else { return Ok(Progress::NeedMore) };
                    if line.is_empty() {
                        return Ok(Progress::Done { status, body: std::mem::take(&mut self.body) });
                    }
                }
            }
        }
    }
}

/// How the body of a response with these headers ends.
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<Framing, ResponseError> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = std::str::from_utf8(header.value).map_err(|_| error("Transfer-Encoding is not text"))?;
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(error(format!("unsupported Transfer-Encoding {value:?}")));
            }
            chunked = true;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).map_err(|_| error("Content-Length is not text"))?.trim();
            if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error(format!("malformed Content-Length {value:?}")));
            }
            let parsed: usize = value.parse().map_err(|_| error(format!("malformed Content-Length {value:?}")))?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err(error("conflicting Content-Length headers"));
            }
            length = Some(parsed);
        }
    }
    Ok(match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::UntilClose,
    })
}

/// Takes one CRLF-terminated line off the front of `buffer` (without the CRLF).
fn take_line(buffer: &mut Vec<u8>, max: usize) -> Result<Option<Vec<u8>>, ResponseError> {
    match buffer.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) if end > max => Err(error("line too long in a chunked body")),
        Some(end) => {
            let line: Vec<u8> = buffer.drain(..end).collect();
            buffer.drain(..2);
            Ok(Some(line))
        }
        None if buffer.len() > max => Err(error("line too long in a chunked body")),
        None => Ok(None),
    }
}

/// A chunk size: 1 to 8 hex digits (a chunk over 4 GiB is over any limit here anyway).
fn parse_hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    digits.iter().try_fold(0usize, |value, digit| {
        let digit = char::from(*digit).to_digit(16)?;
        Some(value * 16 + digit as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(pieces: &[&[u8]], eof: bool) -> Result<Progress, ResponseError> {
        let mut reader = ResponseReader::new();
        let mut last = Progress::NeedMore;
        for piece in pieces {
            last = reader.feed(piece)?;
            if last != Progress::NeedMore {
                return Ok(last);
            }
        }
        if eof {
            last = reader.finish()?;
        }
        Ok(last)
    }

    fn done(status: u16, body: &str) -> Result<Progress, ResponseError> {
        Ok(Progress::Done { status, body: body.as_bytes().to_vec() })
    }

    #[test]
    fn the_request_is_one_well_formed_post() {
        let url: HookUrl = "http://[::1]:8080/on?x=1".parse().unwrap();
        let bytes = post_request(&url, "{\"a\":1}");
        let text = String::from_utf8(bytes).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            text,
            format!("POST /on?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: rtmp-edge/{version}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{{\"a\":1}}")
        );
    }

    #[test]
    fn bodies_end_by_length_by_chunks_or_at_close_byte_by_byte() {
        let cases: [(&[u8], bool, &str, u16); 5] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"code\":0}", false, "{\"code\":0}", 200),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"co\r\n6\r\nde\":1}\r\n0\r\nX-T: y\r\n\r\n", false, "{\"code\":1}", 200),
            (b"HTTP/1.0 403 Forbidden\r\nServer: x\r\n\r\nno", true, "no", 403),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false, "", 204),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, "", 200),
        ];
        for (bytes, eof, body, status) in cases {
            assert_eq!(read_all(&[bytes], eof), done(status, body), "{:?}", String::from_utf8_lossy(bytes));
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(read_all(&singles, eof), done(status, body), "byte by byte");
        }
    }

    #[test]
    fn hostile_answers_are_errors_not_growth() {
        let huge_length = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BODY_BYTES + 1);
        let huge_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n";
        let bad: Vec<Vec<u8>> = vec![
            b"garbage\r\n\r\n".to_vec(),
            huge_length.into_bytes(),
            huge_chunk.as_bytes().to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n".to_vec(),
        ];
        for bytes in bad {
            assert!(read_all(&[&bytes], false).is_err(), "{:?} must be an error", String::from_utf8_lossy(&bytes));
        }
        // A head that never ends, a body to the close that never ends, endless 1xx heads,
        // an endless chunk line: each stops at its bound.
        let mut reader = ResponseReader::new();
        let endless_head = reader.feed(b"HTTP/1.1 200 OK\r\n").and_then(|_| reader.feed(&vec![b'a'; MAX_HEAD_BYTES]));
        assert!(endless_head.is_err());
        let mut reader = ResponseReader::new();
        assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(Progress::NeedMore));
        assert_eq!(reader.feed(&vec![b'x'; MAX_BODY_BYTES]), Ok(Progress::NeedMore));
        assert!(reader.feed(b"x").is_err());
        let interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM_HEADS + 1);
        assert!(read_all(&[interim.as_bytes()], false).is_err());
        let mut reader = ResponseReader::new();
        reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(reader.feed(&vec![b'1'; MAX_CHUNK_LINE + 1]).is_err());
        // Cut short: an error at the close, not a made-up answer.
        assert!(read_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"], true).is_err());
        assert!(read_all(&[b"HTTP/1.1 200 OK\r\n"], true).is_err());
        assert!(read_all(&[b""], true).is_err());
    }
}
