//! FLV egress: how a stream's frames reach HTTP-FLV and WebSocket-FLV players, encoded once
//! and shared by reference like the RTMP chunks.
//!
//! An FLV tag is `[tag header 11][body][PreviousTagSize 4]`; over WebSocket each tag is one
//! binary message, so a frame header (2, 4 or 10 bytes, unmasked, the same for everyone)
//! goes in front. Only the tag header depends on the player: it holds the timestamp, and
//! players are given timestamps that start at 0 where they start (flv.js and mpegts.js read
//! the 32-bit timestamp as a signed number, and some players mishandle a large first one).
//! So each frame is encoded in two parts:
//!
//! - the **tail**, body and PreviousTagSize, once per frame for every HTTP and WebSocket
//!   player ([`encode_tail`], held in [`SharedFrame::flv_tail`]);
//! - the **head**, WebSocket frame header then tag header, once per frame per *timeline*.
//!
//! A timeline is a time base shared by the players that started at the same frame: every
//! player that joins during one GOP starts at its keyframe, so they all share one. A stream
//! keeps at most [`MAX_TIMELINES`]; past that a new player joins the latest timeline that
//! started before it, and its timestamps start a little after 0. A player's queue gets two
//! entries per frame (its timeline's head, a slice of one buffer for both protocols, and the
//! shared tail) and nothing is copied or allocated per player.
//!
//! Nothing is encoded for FLV while a stream has no HTTP or WebSocket player: tails are
//! made at ingest only when one is subscribed, and the caches a joiner needs get theirs when
//! the first one joins.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::SharedFrame;
use super::out_queue::OutQueue;
use crate::flv::{FlvTagType, FLV_HEADER_SIZE, MAX_TAG_DATA_SIZE, TAG_HEADER_SIZE};
use crate::relay::http::websocket;
pub use crate::relay::http::FlvProtocol;
use crate::sessions::MediaKind;
use crate::time::RtmpTimestamp;

/// Most time bases one stream encodes heads for at once.
pub const MAX_TIMELINES: usize = 32;

/// The message stream id HTTP players are subscribed with (RTMP players use 1 and up).
pub const HTTP_STREAM_ID: u32 = 0;

/// An HTTP-FLV or WebSocket-FLV player's place in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlvSubscriber {
    /// HTTP or WebSocket.
    pub protocol: FlvProtocol,
    /// Its timeline, once it started: it has had the FLV header, the stream's metadata and
    /// sequence headers and its first frame. Until then it is sent nothing.
    pub timeline: Option<usize>,
}

impl FlvSubscriber {
    /// A player that has not started yet.
    pub fn new(protocol: FlvProtocol) -> FlvSubscriber {
        FlvSubscriber { protocol, timeline: None }
    }
}

/// The FLV tag type of a message kind.
fn tag_type(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Audio => FlvTagType::Audio.type_id(),
        MediaKind::Video => FlvTagType::Video.type_id(),
        MediaKind::Data => FlvTagType::Script.type_id(),
    }
}

/// A frame's body followed by its PreviousTagSize: what every FLV player gets of it after
/// its own head. `None` for a body the 24-bit tag size cannot describe.
pub fn encode_tail(body: &[u8]) -> Option<Bytes> {
    if body.len() > MAX_TAG_DATA_SIZE {
        return None;
    }
    let mut tail = BytesMut::with_capacity(body.len() + 4);
    tail.put_slice(body);
    // Bounded by MAX_TAG_DATA_SIZE just above.
    tail.put_u32((TAG_HEADER_SIZE + body.len()) as u32);
    Some(tail.freeze())
}

/// `timestamp` on a timeline that starts at `base`; what came before the base is at 0.
pub fn rebase(timestamp: RtmpTimestamp, base: RtmpTimestamp) -> u32 {
    u32::try_from(timestamp.signed_distance_from(base)).unwrap_or(0)
}

/// Appends one head: the WebSocket frame header for the whole tag, then the tag header.
/// Returns the WebSocket header's length (HTTP players skip it).
fn put_head(out: &mut BytesMut, kind: MediaKind, timestamp: u32, body_length: usize) -> usize {
    let tag_length = TAG_HEADER_SIZE + body_length + 4;
    let before = out.len();
    websocket::put_binary_header(out, tag_length);
    let ws_length = out.len() - before;
    let size = (body_length as u32).to_be_bytes();
    let time = timestamp.to_be_bytes();
    out.put_slice(&[tag_type(kind), size[1], size[2], size[3], time[1], time[2], time[3], time[0], 0, 0, 0]);
    ws_length
}

/// One frame's head on one timeline, in both forms.
#[derive(Clone, Debug)]
pub struct Head {
    /// WebSocket frame header + tag header.
    pub websocket: Bytes,
    /// The tag header alone (a slice of the same buffer).
    pub http: Bytes,
}

impl Head {
    fn encode(kind: MediaKind, timestamp: u32, body_length: usize) -> Head {
        let mut out = BytesMut::with_capacity(websocket::server_header_len(TAG_HEADER_SIZE + body_length + 4) + TAG_HEADER_SIZE);
        let ws_length = put_head(&mut out, kind, timestamp, body_length);
        let websocket = out.freeze();
        let http = websocket.slice(ws_length..);
        Head { websocket, http }
    }

    fn for_protocol(&self, protocol: FlvProtocol) -> &Bytes {
        match protocol {
            FlvProtocol::Http => &self.http,
            FlvProtocol::WebSocket => &self.websocket,
        }
    }
}

/// The FLV file header (and PreviousTagSize0) with these flags, for a protocol: static,
/// so every player's first bytes cost no allocation.
pub fn file_header(has_audio: bool, has_video: bool, protocol: FlvProtocol) -> Bytes {
    // [0x82, 13] frames the 13 bytes as one final binary message; HTTP players skip it.
    const fn header(flags: u8) -> [u8; 15] {
        [0x82, (FLV_HEADER_SIZE + 4) as u8, b'F', b'L', b'V', 1, flags, 0, 0, 0, FLV_HEADER_SIZE as u8, 0, 0, 0, 0]
    }
    static HEADERS: [[u8; 15]; 4] = [header(0), header(1), header(4), header(5)];
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    let index = usize::from(has_audio) * 2 + usize::from(has_video);
    let bytes = Bytes::from_static(&HEADERS[index]);
    debug_assert_eq!(bytes[6], flags);
    match protocol {
        FlvProtocol::Http => bytes.slice(2..),
        FlvProtocol::WebSocket => bytes,
    }
}

#[derive(Clone, Copy, Debug)]
struct Timeline {
    base: RtmpTimestamp,
    players: usize,
}

/// A stream's FLV players' timelines, and the heads of the frame being delivered.
#[derive(Debug, Default)]
pub struct FlvTimelines {
    slots: Vec<Option<Timeline>>,
    /// Heads of the frame being delivered, by slot, made at first use.
    heads: Vec<Option<Head>>,
    /// HTTP and WebSocket players subscribed (started or not).
    pub subscribers: usize,
}

impl FlvTimelines {
    /// Whether frames need FLV tails: somebody may be sent them.
    pub fn wanted(&self) -> bool {
        self.subscribers > 0
    }

    /// A timeline for a player whose first frame has timestamp `start`: the one that
    /// starts there, else a new one, else (at [`MAX_TIMELINES`]) the latest that started
    /// before it, else the earliest.
    pub fn assign(&mut self, start: RtmpTimestamp) -> usize {
        let live = self.slots.iter().enumerate().filter_map(|(slot, timeline)| timeline.map(|t| (slot, t)));
        let exact = live.clone().find(|(_, timeline)| timeline.base == start).map(|(slot, _)| slot);
        let slot = exact.or_else(|| {
            if self.slots.iter().flatten().count() < MAX_TIMELINES {
                return None;
            }
            let before = live.clone().filter(|(_, t)| t.base <= start).max_by_key(|(_, t)| t.base).map(|(slot, _)| slot);
            before.or_else(|| live.min_by_key(|(_, t)| t.base).map(|(slot, _)| slot))
        });
        let slot = slot.unwrap_or_else(|| match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.slots.push(None);
                self.heads.push(None);
                self.slots.len() - 1
            }
        });
        match self.slots.get_mut(slot) {
            Some(Some(timeline)) => timeline.players += 1,
            Some(empty) => *empty = Some(Timeline { base: start, players: 1 }),
            None => {}
        }
        slot
    }

    /// A started player left its timeline.
    pub fn release(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if let Some(timeline) = entry {
                timeline.players = timeline.players.saturating_sub(1);
                if timeline.players == 0 {
                    *entry = None;
                }
            }
        }
    }

    /// Time bases in use.
    #[cfg(test)]
    pub fn bases(&self) -> Vec<u32> {
        self.slots.iter().flatten().map(|timeline| timeline.base.value()).collect()
    }

    /// Forgets the heads of the previous frame; call before delivering a frame.
    pub fn begin_frame(&mut self) {
        for head in &mut self.heads {
            *head = None;
        }
    }

    /// The head of `frame` on `slot`'s timeline, made once per frame and slot.
    pub fn head(&mut self, slot: usize, frame: &SharedFrame) -> Option<&Head> {
        let base = self.slots.get(slot).copied().flatten()?.base;
        let cached = self.heads.get_mut(slot)?;
        Some(cached.get_or_insert_with(|| Head::encode(frame.kind, rebase(frame.timestamp, base), frame.body.len())))
    }
}

/// Queues one frame for a started player: its timeline's head, then the shared tail.
/// Returns the bytes queued.
pub fn queue_tag(out: &mut OutQueue, protocol: FlvProtocol, head: &Head, tail: &Bytes, now: Instant) -> usize {
    let head = head.for_protocol(protocol);
    out.push(head.clone(), now);
    out.push(tail.clone(), now);
    head.len() + tail.len()
}

/// What a player gets when it starts: the file header, then `frames` (metadata and
/// sequence headers at 0, then GOP frames on the timeline from `base`, if `base` is given),
/// their heads made in one buffer for this player. Returns the bytes queued.
pub fn queue_start<'a>(
    out: &mut OutQueue,
    protocol: FlvProtocol,
    flags: (bool, bool),
    prelude: impl Iterator<Item = &'a SharedFrame> + Clone,
    gop: impl Iterator<Item = &'a SharedFrame> + Clone,
    base: RtmpTimestamp,
    now: Instant,
) -> usize {
    let header = file_header(flags.0, flags.1, protocol);
    let mut queued = header.len();
    out.push(header, now);
    let frames = prelude.clone().map(|frame| (frame, 0)).chain(gop.clone().map(|frame| (frame, rebase(frame.timestamp, base))));
    let capacity: usize = frames
        .clone()
        .filter(|(frame, _)| frame.flv_tail.is_some())
        .map(|(frame, _)| websocket::server_header_len(TAG_HEADER_SIZE + frame.body.len() + 4) + TAG_HEADER_SIZE)
        .sum();
    let mut heads = BytesMut::with_capacity(capacity);
    let mut spans = Vec::new();
    for (frame, timestamp) in frames.clone() {
        if frame.flv_tail.is_some() {
            let start = heads.len();
            let ws_length = put_head(&mut heads, frame.kind, timestamp, frame.body.len());
            spans.push((start, ws_length, heads.len()));
        }
    }
    let heads = heads.freeze();
    let tails = frames.filter_map(|(frame, _)| frame.flv_tail.as_ref());
    for ((start, ws_length, end), tail) in spans.into_iter().zip(tails) {
        let head = match protocol {
            FlvProtocol::Http => heads.slice(start + ws_length..end),
            FlvProtocol::WebSocket => heads.slice(start..end),
        };
        queued += head.len() + tail.len();
        out.push(head, now);
        out.push(tail.clone(), now);
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_the_body_and_its_previous_tag_size() {
        let tail = encode_tail(&[0x17, 1, 2]).unwrap();
        assert_eq!(&tail[..], &[0x17, 1, 2, 0, 0, 0, 14]);
        assert!(encode_tail(&vec![0; MAX_TAG_DATA_SIZE + 1]).is_none());
    }

    #[test]
    fn heads_carry_the_rebased_timestamp_with_its_extension_byte() {
        let head = Head::encode(MediaKind::Video, 0x0102_0304, 3);
        assert_eq!(&head.http[..], &[9, 0, 0, 3, 0x02, 0x03, 0x04, 0x01, 0, 0, 0]);
        assert_eq!(&head.websocket[..2], &[0x82, 11 + 3 + 4]);
        assert_eq!(&head.websocket[2..], &head.http[..]);
        assert_eq!(head.http.as_ptr(), head.websocket[2..].as_ptr(), "one buffer");
        assert_eq!(rebase(RtmpTimestamp::new(5000), RtmpTimestamp::new(4000)), 1000);
        assert_eq!(rebase(RtmpTimestamp::new(3000), RtmpTimestamp::new(4000)), 0, "before the base");
        assert_eq!(rebase(RtmpTimestamp::new(10), RtmpTimestamp::new(u32::MAX - 9)), 20, "across the wrap");
    }

    #[test]
    fn file_headers_carry_the_flags() {
        assert_eq!(&file_header(true, true, FlvProtocol::Http)[..], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(file_header(false, true, FlvProtocol::Http)[4], 1);
        assert_eq!(file_header(true, false, FlvProtocol::Http)[4], 4);
        assert_eq!(&file_header(true, false, FlvProtocol::WebSocket)[..3], &[0x82, 13, b'F']);
    }

    #[test]
    fn timelines_are_shared_by_start_and_bounded() {
        let mut timelines = FlvTimelines::default();
        let a = timelines.assign(RtmpTimestamp::new(1000));
        assert_eq!(timelines.assign(RtmpTimestamp::new(1000)), a);
        let b = timelines.assign(RtmpTimestamp::new(3000));
        assert_ne!(a, b);
        timelines.release(a);
        assert_eq!(timelines.bases(), [1000, 3000]);
        timelines.release(a);
        assert_eq!(timelines.bases(), [3000]);
        assert_eq!(timelines.assign(RtmpTimestamp::new(5000)), a, "a freed slot is reused");
        for start in 3..=MAX_TIMELINES as u32 + 5 {
            timelines.assign(RtmpTimestamp::new(start * 2000));
        }
        assert_eq!(timelines.bases().len(), MAX_TIMELINES);
        let latest = *timelines.bases().iter().max().unwrap();
        let joined = timelines.assign(RtmpTimestamp::new(latest + 500));
        assert_eq!(timelines.slots[joined].unwrap().base.value(), latest, "the latest base before it");
    }
}
