//! One live stream: its publisher, its players, and what late joiners need
//! (metadata, sequence headers, the GOP since the last keyframe).

use bytes::{Bytes, BytesMut};
use mio::Token;

use crate::chunk_io::{ChunkEncoder, ChunkError, MessagePayload};
use crate::media::{AudioTagHeader, VideoTagHeader};
use crate::sessions::MediaKind;
use crate::time::RtmpTimestamp;

/// The message stream id shared frames are encoded for. ffmpeg, OBS, GStreamer and librtmp
/// players all get stream id 1 from their first createStream.
pub const SHARED_STREAM_ID: u32 = 1;

/// A media message encoded once into chunk bytes, ready for every player's queue.
#[derive(Clone, Debug)]
pub struct SharedFrame {
    /// Chunk bytes (fmt 0 + fmt 3 continuations) at the relay's chunk size, stream id 1.
    pub bytes: Bytes,
    /// The message as the publisher's session gave it, with the relay's timestamp, for
    /// players that need their own encoding.
    pub kind: MediaKind,
    /// Timestamp as sent to players.
    pub timestamp: RtmpTimestamp,
    /// Message body.
    pub body: Bytes,
    /// Where a player may start (or resume) decoding.
    pub is_keyframe: bool,
    /// Whether dropping it for a slow player is allowed (never for headers and metadata).
    pub droppable: bool,
}

/// Which sequence header a cached frame is (per kind, codec and track).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderSlot {
    kind: MediaKind,
    codec_key: [u8; 4],
    track: u8,
}

/// Where a player stands in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayerState {
    /// Joined (or the publisher restarted) and waits for a frame to start at.
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
    pub token: Token,
    /// The message stream id the player asked to play on.
    pub stream_id: u32,
    /// Where it stands.
    pub state: PlayerState,
}

/// A stream key's state in the relay.
#[derive(Debug)]
pub struct LiveStream {
    /// The publishing connection and its message stream id.
    pub publisher: Option<(Token, u32)>,
    /// Connections playing this stream.
    pub players: Vec<Player>,
    metadata: Option<SharedFrame>,
    sequence_headers: Vec<(HeaderSlot, SharedFrame)>,
    gop: Vec<SharedFrame>,
    gop_bytes: usize,
    /// Whether the current publisher has sent video; audio-only streams never wait for a keyframe.
    pub has_video: bool,
    timestamp_offset: u32,
    last_sent_timestamp: Option<RtmpTimestamp>,
    rebase_on_next_frame: bool,
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
        }
    }

    /// Whether a publisher is live on this stream.
    pub fn is_live(&self) -> bool {
        self.publisher.is_some()
    }

    /// Whether nothing references this stream any more.
    pub fn is_unused(&self) -> bool {
        self.publisher.is_none() && self.players.is_empty()
    }

    /// A new publisher starts: caches from the previous one no longer apply, and its
    /// timestamps will be shifted to continue after what players already saw.
    pub fn start_publishing(&mut self, publisher: (Token, u32)) {
        self.publisher = Some(publisher);
        self.clear_caches();
        self.has_video = false;
        self.rebase_on_next_frame = self.last_sent_timestamp.is_some();
        for player in &mut self.players {
            player.state = PlayerState::WaitingForStart;
        }
    }

    /// The publisher left; players stay and will resume at the next publisher's first keyframe.
    pub fn stop_publishing(&mut self) {
        self.publisher = None;
        self.clear_caches();
        for player in &mut self.players {
            player.state = PlayerState::WaitingForStart;
        }
    }

    fn clear_caches(&mut self) {
        self.metadata = None;
        self.sequence_headers.clear();
        self.gop.clear();
        self.gop_bytes = 0;
    }

    /// Maps a publisher timestamp to the one players see, so that a restarted publisher
    /// (which starts again near 0) never makes time go backwards for players.
    pub fn map_timestamp(&mut self, timestamp: RtmpTimestamp) -> RtmpTimestamp {
        if self.rebase_on_next_frame {
            self.rebase_on_next_frame = false;
            if let Some(last) = self.last_sent_timestamp {
                // Continue a frame interval after the last thing players saw.
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
        gop_cache: bool,
        gop_cache_max_bytes: usize,
    ) -> Result<SharedFrame, ChunkError> {
        let classification = classify(kind, &body);
        let timestamp = self.map_timestamp(timestamp);
        let frame = encode_frame(kind, timestamp, body, chunk_size, classification)?;
        if kind == MediaKind::Video && !classification.is_header {
            self.has_video = true;
        }
        if let Some(slot) = classification.header_slot {
            match self.sequence_headers.iter_mut().find(|(existing, _)| *existing == slot) {
                Some((_, cached)) => *cached = frame.clone(),
                None => self.sequence_headers.push((slot, frame.clone())),
            }
        } else if gop_cache && kind != MediaKind::Data {
            if frame.is_keyframe {
                self.gop.clear();
                self.gop_bytes = 0;
            }
            if !self.gop.is_empty() || frame.is_keyframe {
                self.gop_bytes += frame.bytes.len();
                if self.gop_bytes > gop_cache_max_bytes {
                    // A GOP this long is not worth holding; late joiners wait for a keyframe.
                    self.gop.clear();
                    self.gop_bytes = 0;
                } else {
                    self.gop.push(frame.clone());
                }
            }
        }
        Ok(frame)
    }

    /// Encodes and caches metadata (`onMetaData` AMF body).
    pub fn ingest_metadata(&mut self, raw: Bytes, chunk_size: u32) -> Result<SharedFrame, ChunkError> {
        let classification = Classification { is_keyframe: false, is_header: true, header_slot: None };
        let timestamp = self.last_sent_timestamp.unwrap_or(RtmpTimestamp::ZERO);
        let frame = encode_frame(MediaKind::Data, timestamp, raw, chunk_size, classification)?;
        self.metadata = Some(frame.clone());
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

    /// Whether the cached GOP starts at a keyframe a joiner can start from.
    pub fn has_gop(&self) -> bool {
        self.gop.first().is_some_and(|frame| frame.is_keyframe)
    }
}

/// Gap put between the last frame of one publisher and the first of the next.
const FRAME_GAP_MS: u32 = 40;

#[derive(Clone, Copy, Debug)]
struct Classification {
    is_keyframe: bool,
    is_header: bool,
    header_slot: Option<HeaderSlot>,
}

/// Reads just enough of a tag header to know how to cache and drop the frame. A header the
/// media module cannot read is forwarded as an ordinary droppable frame.
fn classify(kind: MediaKind, body: &[u8]) -> Classification {
    let plain = Classification { is_keyframe: false, is_header: false, header_slot: None };
    match kind {
        MediaKind::Video => match VideoTagHeader::parse(body) {
            Ok(header) if header.is_sequence_header() || header.is_metadata() => Classification {
                is_keyframe: false,
                is_header: true,
                header_slot: Some(HeaderSlot {
                    kind,
                    codec_key: video_codec_key(&header, header.is_metadata()),
                    track: header.tracks(body).next().and_then(Result::ok).map_or(0, |track| track.track_id),
                }),
            },
            Ok(header) => Classification { is_keyframe: header.is_keyframe(), ..plain },
            Err(_) => plain,
        },
        MediaKind::Audio => match AudioTagHeader::parse(body) {
            Ok(header) if header.is_config() => Classification {
                is_keyframe: false,
                is_header: true,
                header_slot: Some(HeaderSlot {
                    kind,
                    codec_key: audio_codec_key(&header),
                    track: header.tracks(body).next().and_then(Result::ok).map_or(0, |track| track.track_id),
                }),
            },
            _ => plain,
        },
        MediaKind::Data => plain,
    }
}

fn video_codec_key(header: &VideoTagHeader, metadata: bool) -> [u8; 4] {
    use crate::media::{VideoCodec, VideoFourCc};
    let mut key = match header.codec {
        Some(VideoCodec::Legacy(id)) => [b'l', id, 0, 0],
        Some(VideoCodec::FourCc(VideoFourCc::Avc1)) => *b"avc1",
        Some(VideoCodec::FourCc(VideoFourCc::Hvc1)) => *b"hvc1",
        Some(VideoCodec::FourCc(VideoFourCc::Av01)) => *b"av01",
        Some(VideoCodec::FourCc(VideoFourCc::Vp09)) => *b"vp09",
        Some(VideoCodec::FourCc(VideoFourCc::Vp08)) => *b"vp08",
        Some(VideoCodec::FourCc(VideoFourCc::Other(code))) => code,
        None => [0; 4],
    };
    if metadata {
        // The colour metadata packet is cached beside, not instead of, the sequence header.
        key[3] ^= 0x80;
    }
    key
}

fn audio_codec_key(header: &AudioTagHeader) -> [u8; 4] {
    use crate::media::{AudioCodec, AudioFourCc};
    match header.codec {
        Some(AudioCodec::Legacy(id)) => [b'l', id, 0, 0],
        Some(AudioCodec::FourCc(AudioFourCc::Mp4a)) => *b"mp4a",
        Some(AudioCodec::FourCc(AudioFourCc::Opus)) => *b"Opus",
        Some(AudioCodec::FourCc(AudioFourCc::Flac)) => *b"fLaC",
        Some(AudioCodec::FourCc(AudioFourCc::Ac3)) => *b"ac-3",
        Some(AudioCodec::FourCc(AudioFourCc::Ec3)) => *b"ec-3",
        Some(AudioCodec::FourCc(AudioFourCc::Mp3)) => *b".mp3",
        Some(AudioCodec::FourCc(AudioFourCc::Other(code))) => code,
        None => [0; 4],
    }
}

fn encode_frame(
    kind: MediaKind,
    timestamp: RtmpTimestamp,
    body: Bytes,
    chunk_size: u32,
    classification: Classification,
) -> Result<SharedFrame, ChunkError> {
    let (chunk_stream_id, type_id) = crate::sessions::media_chunk_stream(kind);
    let payload = MessagePayload { timestamp, type_id, message_stream_id: SHARED_STREAM_ID, data: body };
    let length = ChunkEncoder::standalone_encoded_len(chunk_stream_id, payload.data.len(), chunk_size, timestamp);
    let mut bytes = BytesMut::with_capacity(length);
    ChunkEncoder::encode_standalone(chunk_stream_id, &payload, chunk_size, &mut bytes)?;
    Ok(SharedFrame {
        bytes: bytes.freeze(),
        kind,
        timestamp,
        body: payload.data,
        is_keyframe: classification.is_keyframe,
        droppable: !classification.is_header,
    })
}
