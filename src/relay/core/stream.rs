//! One live stream: its publisher, its players, and what late joiners need
//! (metadata, sequence headers, the GOP since the last keyframe).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::flv_egress::{encode_tail, FlvSubscriber, FlvTimelines};
use super::frame::{classify, encode_frame, Classification, HeaderSlot, SharedFrame};
use super::ids::ConnId;
use super::links::UpstreamLink;
use super::media_info::MediaInfo;
use super::peer_text::PeerText;
use super::rates::StreamMeter;
use crate::chunk_io::ChunkError;
use crate::sessions::MediaKind;
use crate::time::RtmpTimestamp;

/// A stream's identity: application and stream name, the query string left out.
///
/// The two parts stay apart, so app `a/b` with name `c` is a different stream from app `a`
/// with name `b/c`. Clones are cheap (shared strings).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    app: Arc<str>,
    name: Arc<str>,
}

impl StreamKey {
    /// The key for a publish or play of `stream_name` (which may carry `?query`) in `app`.
    ///
    /// ```
    /// use rtmp_edge::relay::StreamKey;
    ///
    /// let key = StreamKey::new("live", "cam1?token=abc");
    /// assert_eq!((key.app(), key.name()), ("live", "cam1"));
    /// assert_ne!(StreamKey::new("a/b", "c"), StreamKey::new("a", "b/c"));
    /// ```
    pub fn new(app: &str, stream_name: &str) -> StreamKey {
        let name = stream_name.split_once('?').map_or(stream_name, |(name, _)| name);
        StreamKey { app: Arc::from(app), name: Arc::from(name) }
    }

    /// The application.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The stream name, without its query string.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `app/name`, for log lines: each part as the log shows any peer text (cut short, control
/// characters escaped), since both are the peer's to choose.
impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", PeerText(&self.app), PeerText(&self.name))
    }
}

/// Where a player stands in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayerState {
    /// Joined (or the source restarted, or it unpaused) and waits for a frame to start at.
    WaitingForStart,
    /// Receiving everything.
    Live,
    /// Fell behind: frames are dropped until the next keyframe.
    Skipping,
}

/// A player of this stream.
#[derive(Debug)]
pub struct Player {
    /// The player's connection.
    pub conn: ConnId,
    /// The message stream id the player asked to play on.
    pub stream_id: u32,
    /// Where it stands.
    pub state: PlayerState,
    /// No video keyframe sent since it joined or the source restarted: inter frames would
    /// not decode, so they are held back even while audio flows.
    pub needs_keyframe: bool,
    /// Paused with the `pause` command: nothing is queued for it.
    pub paused: bool,
    /// `receiveAudio` as the player last set it.
    pub receive_audio: bool,
    /// `receiveVideo` as the player last set it.
    pub receive_video: bool,
    /// When it joined (for `play_done`).
    pub joined_at: Instant,
    /// A sibling worker's pull, not a viewer: left out of player counts, byte counts and
    /// hooks.
    pub sibling: bool,
    /// For an HTTP-FLV or WebSocket-FLV player: its protocol and timeline. `None` for RTMP.
    pub flv: Option<FlvSubscriber>,
}

impl Player {
    /// A player that joined at `now`.
    pub fn new(conn: ConnId, stream_id: u32, now: Instant) -> Player {
        Player {
            conn,
            joined_at: now,
            stream_id,
            state: PlayerState::WaitingForStart,
            needs_keyframe: true,
            paused: false,
            receive_audio: true,
            receive_video: true,
            sibling: false,
            flv: None,
        }
    }

    /// Starts again at the next frame a decoder can start from.
    pub fn wait_for_start(&mut self) {
        self.state = PlayerState::WaitingForStart;
        self.needs_keyframe = true;
    }
}

/// Bounds on what a stream caches for late joiners.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// Whether to cache the GOP at all.
    pub gop_cache: bool,
    /// Most bytes the GOP may hold; a longer GOP is not cached.
    pub gop_max_bytes: usize,
    /// Most frames the GOP may hold.
    pub gop_max_frames: usize,
}

/// Most distinct sequence headers (codec x track x kind) cached per stream.
pub const MAX_HEADER_SLOTS: usize = 16;
/// Largest sequence header or metadata cached; real ones are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Gap put between the last frame of one source and the first of the next.
const FRAME_GAP_MS: u32 = 40;

/// A stream key's state in the relay.
#[derive(Debug)]
pub struct LiveStream {
    /// The publishing connection and its message stream id.
    pub publisher: Option<(ConnId, u32)>,
    /// Connections playing this stream.
    pub players: Vec<Player>,
    metadata: Option<SharedFrame>,
    sequence_headers: Vec<(HeaderSlot, SharedFrame)>,
    gop: Vec<SharedFrame>,
    gop_bytes: usize,
    /// Whether the current source has sent video; audio-only streams never wait for a keyframe.
    pub has_video: bool,
    timestamp_offset: u32,
    last_sent_timestamp: Option<RtmpTimestamp>,
    rebase_on_next_frame: bool,
    /// Edge mode: the pull that feeds this stream from an origin.
    pub pull: Option<UpstreamLink>,
    /// Whether the pull is playing (the stream is live through it).
    pub pull_live: bool,
    /// When an unwatched pull closes.
    pub linger_until: Option<Instant>,
    /// `rtmpEdgeVia` of the player that started the pull, for loop detection upstream.
    pub via: String,
    /// Forwards to the origin and `--push` targets of the local publisher.
    pub pushes: Vec<UpstreamLink>,
    /// Counters and media description for the API and metrics.
    pub meter: StreamMeter,
    /// The time bases of its HTTP-FLV and WebSocket-FLV players.
    pub flv: FlvTimelines,
    /// A source (a publisher, or a pull that went live) has fed it.
    had_source: bool,
}

/// What [`LiveStream::delivery_parts`] lends the fan-out at once.
pub struct DeliveryParts<'a> {
    /// The players.
    pub players: &'a mut Vec<Player>,
    /// The FLV players' timelines.
    pub timelines: &'a mut FlvTimelines,
    /// Counters.
    pub meter: &'a mut StreamMeter,
    /// Metadata and sequence headers, for an FLV player that starts now.
    pub prelude: Prelude<'a>,
}

/// Metadata then sequence headers: what an FLV player gets before its first frame.
#[derive(Clone, Copy)]
pub struct Prelude<'a> {
    metadata: &'a Option<SharedFrame>,
    sequence_headers: &'a [(HeaderSlot, SharedFrame)],
}

impl<'a> Prelude<'a> {
    /// The frames, in order.
    pub fn frames(self) -> impl Iterator<Item = &'a SharedFrame> + Clone {
        self.metadata.iter().chain(self.sequence_headers.iter().map(|(_, frame)| frame))
    }
}

impl Default for LiveStream {
    fn default() -> Self {
        LiveStream::new()
    }
}

impl LiveStream {
    /// A stream with nobody on it yet.
    pub fn new() -> Self {
        LiveStream {
            publisher: None,
            players: Vec::new(),
            metadata: None,
            sequence_headers: Vec::new(),
            gop: Vec::new(),
            gop_bytes: 0,
            has_video: false,
            timestamp_offset: 0,
            last_sent_timestamp: None,
            rebase_on_next_frame: false,
            pull: None,
            pull_live: false,
            linger_until: None,
            via: String::new(),
            pushes: Vec::new(),
            meter: StreamMeter::default(),
            flv: FlvTimelines::default(),
            had_source: false,
        }
    }

    /// Whether a source (publisher or pull) is live on this stream.
    pub fn is_live(&self) -> bool {
        self.publisher.is_some() || self.pull_live
    }

    /// The players that are viewers (not sibling workers' pulls).
    pub fn audience(&self) -> impl Iterator<Item = &Player> {
        self.players.iter().filter(|player| !player.sibling)
    }

    /// Whether the API and metrics show this stream: it has or had a source, or a pull or
    /// push. A stream that only players asked for, and nobody published, is left out: its
    /// name is any player's choice, so showing it would let anonymous clients add objects
    /// to every API answer, and series to every scrape, at will (16 per connection).
    pub fn is_reported(&self) -> bool {
        self.had_source || self.publisher.is_some() || self.pull.is_some() || !self.pushes.is_empty()
    }

    /// Whether nothing references this stream any more.
    pub fn is_unused(&self) -> bool {
        self.publisher.is_none() && self.players.is_empty() && self.pull.is_none() && self.pushes.is_empty()
    }

    /// A source (publisher or pull) starts or restarts: caches are reset, players wait for
    /// a keyframe, and timestamps will continue after what players already saw.
    pub fn restart_source(&mut self) {
        self.had_source = true;
        self.clear_caches();
        self.meter.media = MediaInfo::default();
        self.has_video = false;
        self.rebase_on_next_frame = self.last_sent_timestamp.is_some();
        for player in &mut self.players {
            player.wait_for_start();
        }
    }

    /// The source went away (publisher left, pull lost): players wait for the next one.
    pub fn source_lost(&mut self) {
        self.clear_caches();
        self.meter.media = MediaInfo::default();
        for player in &mut self.players {
            player.wait_for_start();
        }
    }

    fn clear_caches(&mut self) {
        self.metadata = None;
        self.sequence_headers.clear();
        self.clear_gop();
    }

    fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
    }

    /// Maps a source timestamp to the one players see, so that a restarted source (which
    /// starts again near 0) never makes time go backwards for players.
    pub fn map_timestamp(&mut self, timestamp: RtmpTimestamp) -> RtmpTimestamp {
        if self.rebase_on_next_frame {
            self.rebase_on_next_frame = false;
            if let Some(last) = self.last_sent_timestamp {
                self.timestamp_offset = (last + FRAME_GAP_MS).wrapping_sub(timestamp);
            }
        }
        let mapped = timestamp + self.timestamp_offset;
        match self.last_sent_timestamp {
            Some(last) if last >= mapped => {}
            _ => self.last_sent_timestamp = Some(mapped),
        }
        mapped
    }

    /// Encodes a media message once and updates the caches. Returns the shared frame.
    pub fn ingest(
        &mut self,
        kind: MediaKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        chunk_size: u32,
        limits: CacheLimits,
    ) -> Result<SharedFrame, ChunkError> {
        self.meter.count_in(kind, &body);
        let classification = classify(kind, &body);
        let timestamp = self.map_timestamp(timestamp);
        let mut frame = encode_frame(kind, timestamp, body, chunk_size, classification)?;
        if self.flv.wanted() {
            frame.flv_tail = encode_tail(&frame.body);
        }
        if kind == MediaKind::Video && !classification.is_header {
            self.has_video = true;
        }
        if let Some(slot) = classification.header_slot {
            self.cache_header(slot, &frame);
        } else if limits.gop_cache && kind != MediaKind::Data {
            self.cache_in_gop(&frame, limits);
        }
        Ok(frame)
    }

    fn cache_header(&mut self, slot: HeaderSlot, frame: &SharedFrame) {
        // The slot key (codec, track) is the publisher's to choose: bound what it can make
        // every late joiner receive and us hold.
        let fits = frame.body.len() <= MAX_HEADER_BYTES;
        let room = self.sequence_headers.len() < MAX_HEADER_SLOTS;
        match self.sequence_headers.iter().position(|(existing, _)| *existing == slot) {
            Some(index) if fits => {
                if let Some((_, cached)) = self.sequence_headers.get_mut(index) {
                    *cached = frame.clone();
                }
            }
            Some(index) => {
                self.sequence_headers.remove(index);
            }
            None if fits && room => self.sequence_headers.push((slot, frame.clone())),
            None => {}
        }
    }

    fn cache_in_gop(&mut self, frame: &SharedFrame, limits: CacheLimits) {
        if frame.is_keyframe {
            self.clear_gop();
        } else if self.gop.is_empty() {
            return;
        }
        let held = frame.held_bytes();
        if self.gop_bytes.saturating_add(held) > limits.gop_max_bytes || self.gop.len() >= limits.gop_max_frames {
            // A GOP this long is not worth holding; late joiners wait for a keyframe.
            self.clear_gop();
            return;
        }
        self.gop_bytes += held;
        self.gop.push(frame.clone());
    }

    /// Encodes and caches metadata (`onMetaData` AMF body).
    pub fn ingest_metadata(&mut self, raw: Bytes, chunk_size: u32) -> Result<SharedFrame, ChunkError> {
        self.meter.count_in(MediaKind::Data, &raw);
        self.meter.media.observe_metadata(&raw);
        let timestamp = self.last_sent_timestamp.unwrap_or(RtmpTimestamp::ZERO);
        let mut frame = encode_frame(MediaKind::Data, timestamp, raw, chunk_size, Classification::METADATA)?;
        if self.flv.wanted() {
            frame.flv_tail = encode_tail(&frame.body);
        }
        self.metadata = if frame.body.len() <= MAX_HEADER_BYTES { Some(frame.clone()) } else { None };
        Ok(frame)
    }

    /// What a late joiner gets before live frames, in order: metadata, sequence headers,
    /// then the GOP from its keyframe.
    pub fn join_frames(&self) -> impl Iterator<Item = &SharedFrame> {
        self.metadata
            .iter()
            .chain(self.sequence_headers.iter().map(|(_, frame)| frame))
            .chain(self.gop.iter())
    }

    /// Metadata and sequence headers, as an FLV player gets them first.
    pub fn prelude(&self) -> Prelude<'_> {
        Prelude { metadata: &self.metadata, sequence_headers: &self.sequence_headers }
    }

    /// The cached GOP, from its keyframe.
    pub fn gop_frames(&self) -> impl Iterator<Item = &SharedFrame> + Clone {
        self.gop.iter()
    }

    /// The players, the FLV timelines, the meter and the prelude, borrowed together.
    pub fn delivery_parts(&mut self) -> DeliveryParts<'_> {
        DeliveryParts {
            players: &mut self.players,
            timelines: &mut self.flv,
            meter: &mut self.meter,
            prelude: Prelude { metadata: &self.metadata, sequence_headers: &self.sequence_headers },
        }
    }

    /// An FLV player subscribes: from now on frames get FLV tails, and the cached ones get
    /// theirs now (once; later joiners find them made).
    pub fn add_flv_subscriber(&mut self) {
        self.flv.subscribers += 1;
        let cached = self.metadata.iter_mut().chain(self.sequence_headers.iter_mut().map(|(_, frame)| frame));
        for frame in cached.chain(self.gop.iter_mut()) {
            if frame.flv_tail.is_none() {
                frame.flv_tail = encode_tail(&frame.body);
            }
        }
        self.gop_bytes = self.gop.iter().map(SharedFrame::held_bytes).sum();
    }

    /// The FLV header's flags: (audio, video), from what the current source has sent.
    pub fn flv_flags(&self) -> (bool, bool) {
        let media = &self.meter.media;
        (media.audio.is_some(), self.has_video || media.video.is_some())
    }

    /// Removes the player entry of `conn` on `stream_id` (releasing its FLV timeline);
    /// whether there was one.
    pub fn remove_player(&mut self, conn: ConnId, stream_id: u32) -> Option<Player> {
        let index = self.players.iter().position(|p| p.conn == conn && p.stream_id == stream_id)?;
        let player = self.players.remove(index);
        if let Some(flv) = &player.flv {
            self.flv.subscribers = self.flv.subscribers.saturating_sub(1);
            if let Some(slot) = flv.timeline {
                self.flv.release(slot);
            }
        }
        Some(player)
    }

    /// Whether the cached GOP starts at a keyframe a joiner can start from.
    pub fn has_gop(&self) -> bool {
        self.gop.first().is_some_and(|frame| frame.is_keyframe)
    }

    /// Frames and bytes held in the GOP cache.
    pub fn gop_held(&self) -> (usize, usize) {
        (self.gop.len(), self.gop_bytes)
    }

    /// Media time the GOP cache spans, in ms.
    pub fn gop_span_ms(&self) -> u32 {
        match (self.gop.first(), self.gop.last()) {
            (Some(first), Some(last)) if last.timestamp >= first.timestamp => last.timestamp - first.timestamp,
            _ => 0,
        }
    }

    /// The player entry of `conn` on message stream `stream_id`.
    pub fn player_mut(&mut self, conn: ConnId, stream_id: u32) -> Option<&mut Player> {
        self.players.iter_mut().find(|player| player.conn == conn && player.stream_id == stream_id)
    }
}
