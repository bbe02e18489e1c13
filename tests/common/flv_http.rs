//! A raw HTTP-FLV and WebSocket-FLV reader for tests: it sends the request itself, keeps
//! every byte of the answer, and parses the FLV tags with the library's reader, so
//! timestamps and the start are checked as the relay sent them (no demuxer repairs them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rtmp_edge::flv::{FlvReader, FlvTagType};
use rtmp_edge::sessions::MediaKind;

use super::Item;

/// What a reader got: the response head and the FLV tags, in order.
#[derive(Debug)]
pub struct FlvReceived {
    /// Status line and headers.
    pub head: String,
    /// The FLV header's flags (4 audio | 1 video).
    pub flags: u8,
    /// The tags.
    pub items: Vec<Item>,
}

/// Reads `GET PATH` (upgraded to WebSocket when `websocket`) from `addr` until the relay
/// closes the connection, on a thread of its own.
pub fn spawn_reader(addr: SocketAddr, path: &str, websocket: bool) -> JoinHandle<Result<FlvReceived, String>> {
    let path = path.to_string();
    std::thread::spawn(move || read_stream(addr, &path, websocket))
}

fn read_stream(addr: SocketAddr, path: &str, websocket: bool) -> Result<FlvReceived, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let upgrade = if websocket {
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).map_err(|e| format!("read: {e} after {} bytes", bytes.len()))?;
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no complete head")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let body = if websocket { websocket_payloads(&bytes[end..])? } else { bytes[end..].to_vec() };
    if body.is_empty() {
        return Ok(FlvReceived { head, flags: 0, items: Vec::new() });
    }
    let flags = *body.get(4).ok_or("no FLV header")?;
    let reader = FlvReader::new(Bytes::from(body)).map_err(|e| format!("FLV header: {e}"))?;
    let mut items = Vec::new();
    for tag in reader {
        let tag = tag.map_err(|e| format!("FLV tag {}: {e}", items.len()))?;
        let timestamp = tag.timestamp.value();
        items.push(match tag.tag_type {
            FlvTagType::Script => Item::Metadata { timestamp, raw: tag.data },
            FlvTagType::Audio => Item::Media { kind: MediaKind::Audio, timestamp, data: tag.data },
            FlvTagType::Video => Item::Media { kind: MediaKind::Video, timestamp, data: tag.data },
        });
    }
    Ok(FlvReceived { head, flags, items })
}

/// The payloads of the binary messages in `bytes`, joined; a close frame ends them. Each
/// message must be final and unmasked, as the relay sends them.
fn websocket_payloads(mut bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut payloads = Vec::new();
    while bytes.len() >= 2 {
        if bytes[0] & 0x80 == 0 || bytes[1] & 0x80 != 0 {
            return Err(format!("not a final unmasked frame: {:02x} {:02x}", bytes[0], bytes[1]));
        }
        let (length, start) = match bytes[1] & 0x7F {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            short => (short as usize, 2),
        };
        let payload = bytes.get(start..start + length).ok_or("a frame cut short")?;
        match bytes[0] & 0x0F {
            2 => payloads.extend_from_slice(payload),
            8 => break,
            opcode => return Err(format!("unexpected opcode {opcode}")),
        }
        bytes = &bytes[start + length..];
    }
    Ok(payloads)
}

/// Moves a late joiner's frames back onto the publisher's clock: its first frame (a
/// keyframe, at 0) was published at `base`. Metadata and sequence headers stay.
pub fn on_publisher_clock(items: &[Item], published: &[Item]) -> Vec<Item> {
    let first = items.iter().find(|item| item.is_frame()).expect("a frame");
    assert_eq!(first.timestamp(), 0, "the first frame is at 0: {first:?}");
    let same_bytes = |a: &Item, b: &Item| a.with_timestamp(0) == b.with_timestamp(0);
    let base = published
        .iter()
        .rev()
        .find(|item| item.is_video_keyframe() && same_bytes(item, first))
        .map(Item::timestamp)
        .expect("the first frame was published as a keyframe");
    items.iter().map(|item| if item.is_frame() { item.with_timestamp(item.timestamp() + base) } else { item.clone() }).collect()
}
