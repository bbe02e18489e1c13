//! WebSocket (RFC 6455) as WebSocket-FLV needs it, sans-IO: the opening handshake's
//! answer, server frame headers, and a bounded reader of what a client may send (pings,
//! pongs, close, and small data frames that are dropped).
//!
//! The relay only sends: FLV tags in binary messages, unmasked as server frames must be, so
//! one encoding of a frame serves every WebSocket player. A client sends nothing but control
//! frames in practice. Whatever it sends is read with a fixed bound ([`MAX_CLIENT_PAYLOAD`]),
//! and a broken or hostile frame is a [`WsError`] that closes that one connection.

use std::fmt;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

use super::request::Request;

/// Appended to the client's key before hashing (RFC 6455 section 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest payload a client frame may have. Control frames are at most 125 bytes by
/// the RFC; data frames carry nothing the relay needs, so they get little more room.
pub const MAX_CLIENT_PAYLOAD: usize = 4096;

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// Opcodes (RFC 6455 section 5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Close status codes the relay sends.
pub mod status {
    /// 1000: normal closure (an answer to the client's close).
    pub const NORMAL: u16 = 1000;
    /// 1001: the relay is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: the client broke the protocol (an unmasked frame, reserved bits...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1008: the client broke a policy (a ping flood).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: a frame larger than [`MAX_CLIENT_PAYLOAD`](super::MAX_CLIENT_PAYLOAD).
    pub const TOO_BIG: u16 = 1009;
}

/// Why an upgrade request is refused, with the status it is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeError {
    /// `Sec-WebSocket-Version` is not 13 (answered 426 with the version we speak).
    Version(String),
    /// No `Sec-WebSocket-Key`, or one that is not 16 bytes in base64.
    Key,
    /// The upgrade is not a `GET`, or `Connection` does not name `upgrade`.
    NotAnUpgrade,
}

impl UpgradeError {
    /// The HTTP status the request is answered with.
    pub fn status(&self) -> u16 {
        match self {
            UpgradeError::Version(_) => 426,
            UpgradeError::Key | UpgradeError::NotAnUpgrade => 400,
        }
    }
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::Version(version) => write!(f, "WebSocket version {version:?} (this relay speaks 13)"),
            UpgradeError::Key => write!(f, "Sec-WebSocket-Key is missing or not 16 bytes of base64"),
            UpgradeError::NotAnUpgrade => write!(f, "a WebSocket upgrade must be a GET with Connection: Upgrade"),
        }
    }
}

/// Whether the request asks to upgrade to WebSocket (`Upgrade: websocket`).
pub fn wants_upgrade(request: &Request) -> bool {
    request.header("upgrade").is_some_and(|value| value.split(',').any(|token| token.trim().eq_ignore_ascii_case("websocket")))
}

/// Checks an upgrade request and returns the `Sec-WebSocket-Accept` value for it.
///
/// ```
/// use rtmp_edge::relay::http::websocket::accept_key;
///
/// // The example of RFC 6455, section 1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn check_upgrade(request: &Request) -> Result<String, UpgradeError> {
    let connection_upgrade = request
        .header("connection")
        .is_some_and(|value| value.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade")));
    if request.method != super::Method::Get || !connection_upgrade {
        return Err(UpgradeError::NotAnUpgrade);
    }
    match request.header("sec-websocket-version") {
        Some("13") => {}
        other => return Err(UpgradeError::Version(other.unwrap_or_default().to_string())),
    }
    let key = request.header("sec-websocket-key").ok_or(UpgradeError::Key)?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(accept_key(key)),
        _ => Err(UpgradeError::Key),
    }
}

/// `base64(SHA-1(key + GUID))`, the server's proof that it read the handshake.
pub fn accept_key(key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// The 101 answer to an accepted upgrade.
pub fn switching_protocols(accept: &str) -> Bytes {
    Bytes::from(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    ))
}

/// Length of the header of an unmasked server frame with `payload` bytes.
pub const fn server_header_len(payload: usize) -> usize {
    if payload < 126 {
        2
    } else if payload <= 0xFFFF {
        4
    } else {
        10
    }
}

/// Writes the header of a final, unmasked server frame of `opcode` with `payload` bytes.
fn put_server_header(out: &mut BytesMut, opcode: u8, payload: usize) {
    out.put_u8(0x80 | opcode);
    if payload < 126 {
        out.put_u8(payload as u8);
    } else if payload <= 0xFFFF {
        out.put_u8(126);
        out.put_u16(payload as u16);
    } else {
        out.put_u8(127);
        out.put_u64(payload as u64);
    }
}

/// Writes the header of a final binary message of `payload` bytes (the FLV tags follow).
pub fn put_binary_header(out: &mut BytesMut, payload: usize) {
    put_server_header(out, BINARY, payload);
}

/// A whole binary message holding `payload`.
pub fn binary_message(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(server_header_len(payload.len()) + payload.len());
    put_binary_header(&mut out, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// A pong echoing a ping's payload (at most 125 bytes, as the reader guarantees).
pub fn pong(payload: &[u8]) -> Bytes {
    control_frame(PONG, payload)
}

/// A ping the relay sends to see that a waiting player is still there.
pub fn ping(payload: &[u8]) -> Bytes {
    control_frame(PING, payload)
}

/// A close frame with a status code and a short reason (cut to fit a control frame).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(125);
    payload.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(reason.as_bytes().get(..end).unwrap_or_default());
    control_frame(CLOSE, &payload)
}

fn control_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let payload = payload.get(..payload.len().min(125)).unwrap_or_default();
    let mut out = BytesMut::with_capacity(2 + payload.len());
    put_server_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// What a client frame was, once read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// A ping: answer with a pong carrying this payload.
    Ping(Bytes),
    /// A pong (an answer to the relay's ping).
    Pong,
    /// The client closes, with this status code if it gave one.
    Close(Option<u16>),
    /// A text, binary or continuation frame: nothing the relay uses; dropped.
    Data(usize),
}

/// Why a client's frames cannot be read on; each closes the connection (with the status
/// [`WsError::close_code`] gives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsError {
    /// A client frame without the mask bit (RFC 6455 section 5.1: clients must mask).
    Unmasked,
    /// Reserved bits set, with no extension negotiated.
    ReservedBits(u8),
    /// An opcode RFC 6455 does not define.
    UnknownOpcode(u8),
    /// A control frame that is fragmented or over 125 bytes.
    BadControlFrame,
    /// A frame announcing more than [`MAX_CLIENT_PAYLOAD`] bytes.
    TooBig(u64),
}

impl WsError {
    /// The status code of the close frame sent before closing.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooBig(_) => status::TOO_BIG,
            _ => status::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Unmasked => write!(f, "unmasked client frame"),
            WsError::ReservedBits(bits) => write!(f, "reserved bits {bits:#x} set"),
            WsError::UnknownOpcode(opcode) => write!(f, "unknown opcode {opcode:#x}"),
            WsError::BadControlFrame => write!(f, "fragmented or oversized control frame"),
            WsError::TooBig(length) => write!(f, "client frame of {length} bytes (limit {MAX_CLIENT_PAYLOAD})"),
        }
    }
}

/// Reads client frames from a byte stream, buffering at most one frame
/// ([`MAX_HEADER`] + [`MAX_CLIENT_PAYLOAD`] bytes).
///
/// ```
/// use rtmp_edge::relay::http::websocket::{ClientFrame, FrameReader};
///
/// let mut reader = FrameReader::default();
/// // A masked ping with payload "hi" (mask 1, 2, 3, 4).
/// let ping = [0x89, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
/// let mut frames = Vec::new();
/// reader.feed(&ping[..3], |frame| frames.push(frame)).unwrap();
/// assert!(frames.is_empty());
/// reader.feed(&ping[3..], |frame| frames.push(frame)).unwrap();
/// assert_eq!(frames, [ClientFrame::Ping(bytes::Bytes::from_static(b"hi"))]);
/// ```
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
}

impl FrameReader {
    /// Reads what `bytes` completes; `on_frame` gets each whole frame in order. After an
    /// error nothing more should be fed.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(ClientFrame)) -> Result<(), WsError> {
        while !bytes.is_empty() {
            // Take only what completes the current frame, so the buffer stays bounded.
            let wanted = match self.frame_length()? {
                Some(total) => total - self.buffer.len(),
                None => self.length_field_end().saturating_sub(self.buffer.len()).max(1),
            };
            let take = wanted.min(bytes.len());
            self.buffer.extend_from_slice(bytes.get(..take).unwrap_or_default());
            bytes = bytes.get(take..).unwrap_or_default();
            if let Some(total) = self.frame_length()? {
                if self.buffer.len() >= total {
                    let frame = self.take_frame(total)?;
                    on_frame(frame);
                }
            }
        }
        Ok(())
    }

    /// How many bytes of header must be buffered before the frame's length is known.
    fn length_field_end(&self) -> usize {
        match self.buffer.get(1).map(|second| second & 0x7F) {
            None => 2,
            Some(126) => 4,
            Some(127) => 10,
            Some(_) => 2,
        }
    }

    /// The whole frame's length once its header is buffered; checks the header.
    fn frame_length(&self) -> Result<Option<usize>, WsError> {
        let (Some(&first), Some(&second)) = (self.buffer.first(), self.buffer.get(1)) else { return Ok(None) };
        let reserved = first & 0x70;
        if reserved != 0 {
            return Err(WsError::ReservedBits(reserved));
        }
        let opcode = first & 0x0F;
        let is_control = opcode & 0x08 != 0;
        if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
            return Err(WsError::UnknownOpcode(opcode));
        }
        if second & 0x80 == 0 {
            return Err(WsError::Unmasked);
        }
        let (length, extended) = match second & 0x7F {
            126 => {
                let Some(raw) = self.buffer.get(2..4) else { return Ok(None) };
                (u64::from(u16::from_be_bytes([raw[0], raw[1]])), 2)
            }
            127 => {
                let Some(raw) = self.buffer.get(2..10) else { return Ok(None) };
                let mut eight = [0u8; 8];
                eight.copy_from_slice(raw);
                (u64::from_be_bytes(eight), 8)
            }
            short => (u64::from(short), 0),
        };
        if is_control && (first & 0x80 == 0 || length > 125) {
            return Err(WsError::BadControlFrame);
        }
        if length > MAX_CLIENT_PAYLOAD as u64 {
            return Err(WsError::TooBig(length));
        }
        // Bounded by MAX_CLIENT_PAYLOAD just above.
        Ok(Some(2 + extended + 4 + length as usize))
    }

    fn take_frame(&mut self, total: usize) -> Result<ClientFrame, WsError> {
        let first = self.buffer.first().copied().unwrap_or_default();
        let second = self.buffer.get(1).copied().unwrap_or_default();
        let extended = match second & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_start = 2 + extended;
        let mut mask = [0u8; 4];
        mask.copy_from_slice(self.buffer.get(mask_start..mask_start + 4).unwrap_or(&[0; 4]));
        let mut payload: Vec<u8> = self.buffer.get(mask_start + 4..total).unwrap_or_default().to_vec();
        for (index, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[index % 4];
        }
        self.buffer.drain(..total.min(self.buffer.len()));
        Ok(match first & 0x0F {
            PING => ClientFrame::Ping(Bytes::from(payload)),
            PONG => ClientFrame::Pong,
            CLOSE => ClientFrame::Close(payload.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]]))),
            _ => ClientFrame::Data(payload.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::http::{Method, Request};

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<ClientFrame>, WsError> {
        let mut reader = FrameReader::default();
        let mut frames = Vec::new();
        reader.feed(bytes, |frame| frames.push(frame))?;
        Ok(frames)
    }

    fn upgrade(headers: &[(&str, &str)]) -> Request {
        Request {
            method: Method::Get,
            path: "/live/s.flv".to_string(),
            query: String::new(),
            version_minor: 1,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            keep_alive: true,
        }
    }

    #[test]
    fn the_handshake_answers_the_rfc_example_and_refuses_bad_keys_and_versions() {
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        let request = upgrade(&good);
        assert!(wants_upgrade(&request));
        assert_eq!(check_upgrade(&request).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            &switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")[..],
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"[..]
        );
        let with = |name: &str, value: &str| {
            let headers: Vec<(&str, &str)> = good.iter().map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) }).collect();
            check_upgrade(&upgrade(&headers))
        };
        assert_eq!(with("sec-websocket-version", "8"), Err(UpgradeError::Version("8".to_string())));
        assert_eq!(with("sec-websocket-key", "c2hvcnQ="), Err(UpgradeError::Key), "5 bytes");
        assert_eq!(with("sec-websocket-key", "!!!!!!!!!!!!!!!!!!!!!!=="), Err(UpgradeError::Key));
        assert_eq!(with("connection", "keep-alive"), Err(UpgradeError::NotAnUpgrade));
        assert_eq!(UpgradeError::Version(String::new()).status(), 426);
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length_form() {
        assert_eq!(&binary_message(b"abc")[..], &[0x82, 3, b'a', b'b', b'c']);
        for (length, header) in [(125usize, vec![0x82, 125]), (126, vec![0x82, 126, 0, 126]), (65_536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])] {
            let message = binary_message(&vec![7; length]);
            assert_eq!(&message[..header.len()], &header[..], "{length}");
            assert_eq!(message.len(), header.len() + length);
            assert_eq!(server_header_len(length), header.len());
        }
        assert_eq!(&pong(b"x")[..], &[0x8A, 1, b'x']);
        assert_eq!(&close(1002, "bad")[..], &[0x88, 5, 0x03, 0xEA, b'b', b'a', b'd']);
        assert_eq!(close(1000, &"é".repeat(100)).len(), 2 + 2 + 122, "cut at a character boundary");
    }

    #[test]
    fn client_frames_are_read_across_any_split() {
        let mut input = masked(0x89, b"ping!");
        input.extend(masked(0x8A, b""));
        input.extend(masked(0x82, &[9; 300]));
        input.extend(masked(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
        let expected = vec![
            ClientFrame::Ping(Bytes::from_static(b"ping!")),
            ClientFrame::Pong,
            ClientFrame::Data(300),
            ClientFrame::Close(Some(1000)),
        ];
        assert_eq!(read_all(&input).unwrap(), expected);
        for step in [1, 2, 3, 7, 13] {
            let mut reader = FrameReader::default();
            let mut frames = Vec::new();
            for piece in input.chunks(step) {
                reader.feed(piece, |frame| frames.push(frame)).unwrap();
                assert!(reader.buffer.len() <= MAX_HEADER + MAX_CLIENT_PAYLOAD);
            }
            assert_eq!(frames, expected, "in pieces of {step}");
        }
    }

    #[test]
    fn hostile_frames_are_errors_before_their_payload_is_buffered() {
        let mut unmasked = masked(0x89, b"x");
        unmasked[1] &= 0x7F;
        assert_eq!(read_all(&unmasked), Err(WsError::Unmasked));
        assert_eq!(read_all(&masked(0xC2, b"x")), Err(WsError::ReservedBits(0x40)));
        assert_eq!(read_all(&masked(0x83, b"x")), Err(WsError::UnknownOpcode(3)));
        assert_eq!(read_all(&masked(0x09, b"x")), Err(WsError::BadControlFrame), "fragmented ping");
        assert_eq!(read_all(&masked(0x89, &[0; 126])), Err(WsError::BadControlFrame));
        // Only the header of a huge frame is needed to refuse it.
        let huge = &masked(0x82, &vec![0; MAX_CLIENT_PAYLOAD + 1])[..8];
        assert_eq!(read_all(huge), Err(WsError::TooBig(MAX_CLIENT_PAYLOAD as u64 + 1)));
        let mut claims_exabytes = vec![0x82, 0x80 | 127];
        claims_exabytes.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(read_all(&claims_exabytes), Err(WsError::TooBig(u64::MAX)));
        assert_eq!(WsError::TooBig(1).close_code(), status::TOO_BIG);
        assert_eq!(WsError::Unmasked.close_code(), status::PROTOCOL_ERROR);
    }
}
