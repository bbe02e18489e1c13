//! An HTTP-FLV / WebSocket-FLV scanner for players: it skips the response head, strips
//! WebSocket frame headers, follows FLV tag headers to find each tag's type, timestamp and
//! first bytes, and skips the rest of the body in place, as [`crate::scan`] does for RTMP
//! chunks. A player's state is a few dozen bytes whatever the tag sizes.

use crate::scan::{ScannedMessage, HEAD_LEN};

/// Longest response head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// FLV file header (9) + PreviousTagSize0 (4).
const FILE_HEADER: usize = 13;
/// Tag header.
const TAG_HEADER: usize = 11;

/// Where the scanner is in the FLV byte stream.
#[derive(Clone, Copy, Debug)]
enum FlvState {
    /// Skipping the file header: bytes still to skip.
    FileHeader(usize),
    /// Reading a tag header.
    TagHeader,
    /// In a tag's body (and its PreviousTagSize).
    Body { remaining: usize },
}

/// Scans one player's bytes.
#[derive(Debug)]
pub struct FlvScanner {
    websocket: bool,
    /// The response head, until its end is found (then `None`).
    head: Option<Vec<u8>>,
    /// WebSocket: bytes of the current frame's payload still to come; `header` buffers a
    /// frame header.
    frame_remaining: usize,
    frame_header: Vec<u8>,
    state: FlvState,
    tag_header: [u8; TAG_HEADER],
    tag_header_len: usize,
    body_head: [u8; HEAD_LEN],
    body_head_len: usize,
    body_length: usize,
}

impl FlvScanner {
    /// A scanner for a response to an HTTP-FLV request or a WebSocket-FLV upgrade.
    pub fn new(websocket: bool) -> FlvScanner {
        FlvScanner {
            websocket,
            head: Some(Vec::new()),
            frame_remaining: 0,
            frame_header: Vec::new(),
            state: FlvState::FileHeader(FILE_HEADER),
            tag_header: [0; TAG_HEADER],
            tag_header_len: 0,
            body_head: [0; HEAD_LEN],
            body_head_len: 0,
            body_length: 0,
        }
    }

    /// Whether the response head has been read (and was a 200 or 101).
    pub fn answered(&self) -> bool {
        self.head.is_none()
    }

    /// Feeds bytes; `on_tag` gets each tag once its first bytes are in.
    pub fn feed(&mut self, mut bytes: &[u8], on_tag: &mut dyn FnMut(ScannedMessage<'_>)) -> Result<(), String> {
        if let Some(head) = &mut self.head {
            let before = head.len();
            head.extend_from_slice(bytes.get(..(MAX_HEAD - before).min(bytes.len())).unwrap_or_default());
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return if head.len() >= MAX_HEAD { Err("response head too long".to_string()) } else { Ok(()) };
            };
            let status = head.get(9..12).and_then(|s| std::str::from_utf8(s).ok()).unwrap_or("???");
            let expected = if self.websocket { "101" } else { "200" };
            if status != expected {
                return Err(format!("answered HTTP {status}"));
            }
            bytes = bytes.get(end + 4 - before..).unwrap_or_default();
            self.head = None;
        }
        if !self.websocket {
            return self.feed_flv(bytes, on_tag);
        }
        while !bytes.is_empty() {
            if self.frame_remaining == 0 {
                // A frame header: 2 bytes, then 0, 2 or 8 of length (server frames are unmasked).
                self.frame_header.push(bytes[0]);
                bytes = &bytes[1..];
                let needed = match self.frame_header.get(1).map(|b| b & 0x7F) {
                    None => continue,
                    Some(126) => 4,
                    Some(127) => 10,
                    Some(_) => 2,
                };
                if self.frame_header.len() < needed {
                    continue;
                }
                let length = match needed {
                    4 => u64::from(u16::from_be_bytes([self.frame_header[2], self.frame_header[3]])),
                    10 => u64::from_be_bytes(self.frame_header[2..10].try_into().unwrap_or_default()),
                    _ => u64::from(self.frame_header[1] & 0x7F),
                };
                let opcode = self.frame_header[0] & 0x0F;
                self.frame_header.clear();
                match opcode {
                    2 | 0 => self.frame_remaining = usize::try_from(length).map_err(|_| "frame too long")?,
                    8 => return Err("server sent a WebSocket close".to_string()),
                    // A ping from the server: this bench answers none (its payload is skipped).
                    _ => self.frame_remaining = usize::try_from(length).map_err(|_| "frame too long")?,
                }
                continue;
            }
            let take = self.frame_remaining.min(bytes.len());
            self.feed_flv(&bytes[..take], on_tag)?;
            self.frame_remaining -= take;
            bytes = &bytes[take..];
        }
        Ok(())
    }

    fn feed_flv(&mut self, mut bytes: &[u8], on_tag: &mut dyn FnMut(ScannedMessage<'_>)) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.state {
                FlvState::FileHeader(remaining) => {
                    let take = remaining.min(bytes.len());
                    if remaining == FILE_HEADER && !bytes.starts_with(b"FLV"[..take.min(3)].as_ref()) {
                        return Err("the body is not FLV".to_string());
                    }
                    bytes = &bytes[take..];
                    self.state = if take == remaining { FlvState::TagHeader } else { FlvState::FileHeader(remaining - take) };
                }
                FlvState::TagHeader => {
                    let take = (TAG_HEADER - self.tag_header_len).min(bytes.len());
                    self.tag_header[self.tag_header_len..self.tag_header_len + take].copy_from_slice(&bytes[..take]);
                    self.tag_header_len += take;
                    bytes = &bytes[take..];
                    if self.tag_header_len == TAG_HEADER {
                        self.tag_header_len = 0;
                        let h = self.tag_header;
                        self.body_length = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                        self.body_head_len = 0;
                        self.state = FlvState::Body { remaining: self.body_length + 4 };
                        if self.body_length == 0 {
                            self.emit(on_tag);
                        }
                    }
                }
                FlvState::Body { remaining } => {
                    let take = remaining.min(bytes.len());
                    let wanted = self.body_length.min(HEAD_LEN);
                    if self.body_head_len < wanted {
                        let copy = (wanted - self.body_head_len).min(take);
                        self.body_head[self.body_head_len..self.body_head_len + copy].copy_from_slice(&bytes[..copy]);
                        self.body_head_len += copy;
                        if self.body_head_len == wanted {
                            self.emit(on_tag);
                        }
                    }
                    bytes = &bytes[take..];
                    self.state = if take == remaining { FlvState::TagHeader } else { FlvState::Body { remaining: remaining - take } };
                }
            }
        }
        Ok(())
    }

    fn emit(&self, on_tag: &mut dyn FnMut(ScannedMessage<'_>)) {
        let h = self.tag_header;
        on_tag(ScannedMessage {
            type_id: h[0],
            timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
            length: self.body_length as u32,
            head: &self.body_head[..self.body_head_len],
            // Tags are reported at their head, before their end arrives: FLV players do not
            // check `--sequence` stamps.
            tail: &[],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, timestamp: u32, body: &[u8]) -> Vec<u8> {
        let size = (body.len() as u32).to_be_bytes();
        let time = timestamp.to_be_bytes();
        let mut tag = vec![kind, size[1], size[2], size[3], time[1], time[2], time[3], time[0], 0, 0, 0];
        tag.extend_from_slice(body);
        tag.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        tag
    }

    fn scan(scanner: &mut FlvScanner, input: &[u8], step: usize) -> Vec<(u8, u32, Vec<u8>)> {
        let mut seen = Vec::new();
        for piece in input.chunks(step) {
            scanner.feed(piece, &mut |m| seen.push((m.type_id, m.timestamp, m.head.to_vec()))).unwrap();
        }
        seen
    }

    #[test]
    fn tags_are_found_across_any_split_over_http_and_websocket() {
        let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let (first, second) = (tag(9, 0x0100_0002, &[0x17, 1, 2, 3]), tag(8, 40, &vec![0xAF; 300]));
        let tags = [first, second];
        for t in &tags {
            flv.extend_from_slice(t);
        }
        let expected = vec![(9, 0x0100_0002, vec![0x17, 1, 2, 3]), (8, 40, vec![0xAF; HEAD_LEN])];
        let mut http = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n".to_vec();
        http.extend_from_slice(&flv);
        let mut ws = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        ws.extend_from_slice(&[0x82, 13]);
        ws.extend_from_slice(&flv[..13]);
        for t in &tags {
            if t.len() < 126 {
                ws.extend_from_slice(&[0x82, t.len() as u8]);
            } else {
                ws.extend_from_slice(&[0x82, 126]);
                ws.extend_from_slice(&(t.len() as u16).to_be_bytes());
            }
            ws.extend_from_slice(t);
        }
        for step in [1, 3, 7, 1000] {
            assert_eq!(scan(&mut FlvScanner::new(false), &http, step), expected, "HTTP in pieces of {step}");
            assert_eq!(scan(&mut FlvScanner::new(true), &ws, step), expected, "WebSocket in pieces of {step}");
        }
    }

    #[test]
    fn an_error_status_or_a_body_that_is_not_flv_fails() {
        let mut scanner = FlvScanner::new(false);
        assert!(scanner.feed(b"HTTP/1.1 403 Forbidden\r\n\r\n", &mut |_| {}).unwrap_err().contains("403"));
        let mut scanner = FlvScanner::new(false);
        assert!(scanner.feed(b"HTTP/1.1 200 OK\r\n\r\n<html>", &mut |_| {}).is_err());
    }
}
