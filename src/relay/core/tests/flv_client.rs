//! What an HTTP-FLV or WebSocket-FLV client sees, for core tests: requests sent as bytes,
//! the queued answer read as the socket would take it, parsed into a head and FLV tags
//! (checking every PreviousTagSize), or into WebSocket messages.

use std::io::IoSlice;
use std::net::SocketAddr;

use super::harness::Harness;
use crate::relay::core::{ConnId, ListenerKind};

/// One FLV tag as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub data: Vec<u8>,
}

/// An HTTP client from 127.0.0.1:`port` that sends `request`.
pub fn http_request(h: &mut Harness, port: u16, request: &str) -> ConnId {
    let id = h.core.accept(SocketAddr::from(([127, 0, 0, 1], port)), ListenerKind::Http, h.now).expect("HTTP accepted");
    h.core.handle_input(id, request.as_bytes(), h.now);
    h.pump();
    id
}

/// `GET /live/NAME.flv` from 127.0.0.1:`port`.
pub fn flv_player(h: &mut Harness, port: u16, name: &str) -> ConnId {
    http_request(h, port, &format!("GET /live/{name}.flv HTTP/1.1\r\nHost: relay\r\n\r\n"))
}

/// The WebSocket upgrade of `GET /live/NAME.flv`, with the RFC's example key.
pub fn ws_player(h: &mut Harness, port: u16, name: &str) -> ConnId {
    http_request(
        h,
        port,
        &format!(
            "GET /live/{name}.flv HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
}

/// The entries queued for `id` now, as (address of the first byte, bytes); nothing taken.
pub fn queued(h: &Harness, id: ConnId) -> Vec<(usize, Vec<u8>)> {
    let mut slices = vec![IoSlice::new(&[]); 100_000];
    let count = h.core.write_slices(id, &mut slices);
    slices[..count].iter().map(|slice| (slice.as_ptr() as usize, slice.to_vec())).collect()
}

/// Takes everything queued for `id`, as a reading client would.
pub fn read(h: &mut Harness, id: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    while h.core.has_queued(id) {
        let bytes: Vec<u8> = queued(h, id).into_iter().flat_map(|(_, bytes)| bytes).collect();
        h.core.handle_written(id, bytes.len(), h.now);
        out.extend(bytes);
    }
    h.pump();
    out
}

/// Splits a response into its head (text) and what follows.
pub fn split_head(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    (String::from_utf8(bytes[..end].to_vec()).unwrap(), bytes[end..].to_vec())
}

/// `id` as `GET /api/v1/clients` shows it.
pub fn client_view(h: &mut Harness, id: ConnId) -> serde_json::Value {
    let api = super::ops::http_client(h, 9999);
    let clients = super::ops::json(&super::ops::get(h, api, "/api/v1/clients"));
    clients.as_array().unwrap().iter().find(|c| c["client_id"] == id.to_u64()).cloned().expect("listed")
}

/// The FLV header's flags and the tags after it; every PreviousTagSize must be right.
pub fn parse_flv(bytes: &[u8]) -> (u8, Vec<Tag>) {
    assert_eq!(&bytes[..3], b"FLV", "FLV signature");
    assert_eq!((bytes[3], &bytes[5..13]), (1, &[0, 0, 0, 9, 0, 0, 0, 0][..]));
    (bytes[4], parse_tags(&bytes[13..]))
}

/// Tags (each with its PreviousTagSize), from a tag boundary.
pub fn parse_tags(mut bytes: &[u8]) -> Vec<Tag> {
    let mut tags = Vec::new();
    while !bytes.is_empty() {
        let size = u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]) as usize;
        let timestamp = u32::from_be_bytes([bytes[7], bytes[4], bytes[5], bytes[6]]);
        assert_eq!(&bytes[8..11], &[0, 0, 0], "stream id");
        let data = bytes[11..11 + size].to_vec();
        let previous = u32::from_be_bytes(bytes[11 + size..15 + size].try_into().unwrap()) as usize;
        assert_eq!(previous, 11 + size, "PreviousTagSize");
        tags.push(Tag { tag_type: bytes[0], timestamp, data });
        bytes = &bytes[15 + size..];
    }
    tags
}

/// Server WebSocket frames: (FIN, opcode, payload); server frames must be unmasked.
pub fn ws_frames(mut bytes: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[1] & 0x80, 0, "server frames are unmasked");
        let (length, start) = match bytes[1] & 0x7F {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            short => (short as usize, 2),
        };
        frames.push((bytes[0] & 0x80 != 0, bytes[0] & 0x0F, bytes[start..start + length].to_vec()));
        bytes = &bytes[start + length..];
    }
    frames
}

/// A masked client frame.
pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0xA1, 0x07, 0x5C, 0x33];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// (type, timestamp) of each tag.
pub fn stamps(tags: &[Tag]) -> Vec<(u8, u32)> {
    tags.iter().map(|tag| (tag.tag_type, tag.timestamp)).collect()
}
