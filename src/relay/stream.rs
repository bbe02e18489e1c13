//! One live stream: its publisher, its players, and what late joiners need
//! (metadata, sequence headers, the GOP since the last keyframe).

use bytes::{Bytes, BytesMut};
use std::time::Instant;

use mio::Token;

use super::upstream::UpstreamLink;

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

/// Which sequence header a cached frame is (per kind, codec, track and what it configures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeaderSlot {
    kind: MediaKind,
    codec_key: [u8; 4],
    track: u8,
    config: ConfigKind,
}

/// The kinds of configuration message a late joiner needs, each cached on its own: a
/// codec may send several (ffmpeg sends Opus as SequenceStart, then MultichannelConfig;
/// E-RTMP video sends SequenceStart, then a Metadata colorInfo packet), and one must not
/// replace another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConfigKind {
    /// The decoder configuration record (AVCDecoderConfigurationRecord, OpusHead...).
    SequenceHeader,
    /// E-RTMP audio MultichannelConfig.
    ChannelConfig,
    /// E-RTMP video Metadata (colorInfo).
    VideoMetadata,
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
    /// No video keyframe sent since it joined or the source restarted: inter frames would
    /// not decode, so they are held back even while audio flows.
    pub needs_keyframe: bool,
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
        }
    }

    /// Whether a publisher is live on this stream.
    pub fn is_live(&self) -> bool {
        self.publisher.is_some() || self.pull_live
    }

    /// Whether nothing references this stream any more.
    pub fn is_unused(&self) -> bool {
        self.publisher.is_none() && self.players.is_empty() && self.pull.is_none() && self.pushes.is_empty()
    }

    /// A new publisher starts: caches from the previous one no longer apply, and its
    /// timestamps will be shifted to continue after what players already saw.
    pub fn start_publishing(&mut self, publisher: (Token, u32)) {
        self.publisher = Some(publisher);
        self.restart_source();
    }

    /// A source (publisher or pull) starts or restarts: caches are reset, players wait for
    /// a keyframe, and timestamps will continue after what players already saw.
    pub fn restart_source(&mut self) {
        self.clear_caches();
        self.has_video = false;
        self.rebase_on_next_frame = self.last_sent_timestamp.is_some();
        for player in &mut self.players {
            player.state = PlayerState::WaitingForStart;
            player.needs_keyframe = true;
        }
    }

    /// The publisher left; players stay and will resume at the next publisher's first keyframe.
    pub fn stop_publishing(&mut self) {
        self.publisher = None;
        self.source_lost();
    }

    /// The source went away (publisher left, pull lost): players wait for the next one.
    pub fn source_lost(&mut self) {
        self.clear_caches();
        for player in &mut self.players {
            player.state = PlayerState::WaitingForStart;
            player.needs_keyframe = true;
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
            let room = self.sequence_headers.len() < MAX_HEADER_SLOTS && frame.body.len() <= MAX_HEADER_BYTES;
            match self.sequence_headers.iter_mut().find(|(existing, _)| *existing == slot) {
                Some((_, cached)) => *cached = frame.clone(),
                // The slot key (codec, track) is the publisher's to choose: bound what it can
                // make every late joiner receive and us hold.
                None if room => {
                    self.sequence_headers.push((slot, frame.clone()))
                }
                None => {}
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

/// Most distinct sequence headers (codec x track x kind) cached per stream.
pub const MAX_HEADER_SLOTS: usize = 16;
/// Largest sequence header cached; real ones are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

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
                    codec_key: video_codec_key(&header),
                    track: header.tracks(body).next().and_then(Result::ok).map_or(0, |track| track.track_id),
                    config: if header.is_metadata() { ConfigKind::VideoMetadata } else { ConfigKind::SequenceHeader },
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
                    config: if header.is_sequence_header() { ConfigKind::SequenceHeader } else { ConfigKind::ChannelConfig },
                }),
            },
            _ => plain,
        },
        MediaKind::Data => plain,
    }
}

fn video_codec_key(header: &VideoTagHeader) -> [u8; 4] {
    use crate::media::{VideoCodec, VideoFourCc};
    match header.codec {
        Some(VideoCodec::Legacy(id)) => [b'l', id, 0, 0],
        Some(VideoCodec::FourCc(VideoFourCc::Avc1)) => *b"avc1",
        Some(VideoCodec::FourCc(VideoFourCc::Hvc1)) => *b"hvc1",
        Some(VideoCodec::FourCc(VideoFourCc::Av01)) => *b"av01",
        Some(VideoCodec::FourCc(VideoFourCc::Vp09)) => *b"vp09",
        Some(VideoCodec::FourCc(VideoFourCc::Vp08)) => *b"vp08",
        Some(VideoCodec::FourCc(VideoFourCc::Other(code))) => code,
        None => [0; 4],
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(stream: &mut LiveStream, kind: MediaKind, timestamp: u32, body: &[u8]) -> SharedFrame {
        stream
            .ingest(kind, RtmpTimestamp::from(timestamp), Bytes::copy_from_slice(body), 4096, true, 1 << 20)
            .expect("encode")
    }

    fn joined(stream: &LiveStream) -> Vec<Vec<u8>> {
        stream.join_frames().map(|frame| frame.body.to_vec()).collect()
    }

    // ffmpeg 9 sends Opus as SequenceStart (OpusHead) then MultichannelConfig; the second
    // used to replace the first in the cache, so late joiners never got OpusHead and ffmpeg
    // aborted ("Assertion par->extradata_size failed").
    #[test]
    fn opus_sequence_start_and_multichannel_config_are_both_kept() {
        let mut stream = LiveStream::new();
        let sequence_start = [0x90, b'O', b'p', b'u', b's', b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd'];
        let channel_config = [0x94, b'O', b'p', b'u', b's', 0x01, 0x02, 0x00, 0x00, 0x00, 0x03];
        let frame = [0x91, b'O', b'p', b'u', b's', 0xFC, 0x01];
        ingest(&mut stream, MediaKind::Audio, 0, &sequence_start);
        ingest(&mut stream, MediaKind::Audio, 0, &channel_config);
        ingest(&mut stream, MediaKind::Audio, 20, &frame);
        // (Audio frames are not keyframes, so no GOP is cached for audio alone.)
        assert_eq!(joined(&stream), vec![sequence_start.to_vec(), channel_config.to_vec()]);

        // A new sequence header replaces only the old sequence header, in place.
        let sequence_start_2 = [0x90, b'O', b'p', b'u', b's', 0x02];
        ingest(&mut stream, MediaKind::Audio, 40, &sequence_start_2);
        assert_eq!(joined(&stream)[..2], [sequence_start_2.to_vec(), channel_config.to_vec()]);
    }

    #[test]
    fn video_metadata_is_kept_beside_the_sequence_header() {
        let mut stream = LiveStream::new();
        let sequence_start = [0x90, b'v', b'p', b'0', b'9', 0x01, 0x00, 0x00, 0x00];
        // Frame type 5 (info) | Metadata, "vp09", then an AMF0 string "colorInfo" and null.
        let metadata = [0xD4, b'v', b'p', b'0', b'9', 0x02, 0x00, 0x09, b'c', b'o', b'l', b'o', b'r', b'I', b'n', b'f', b'o', 0x05];
        let keyframe = [0x91, b'v', b'p', b'0', b'9', 0xAA];
        ingest(&mut stream, MediaKind::Video, 0, &sequence_start);
        ingest(&mut stream, MediaKind::Video, 0, &metadata);
        let frame = ingest(&mut stream, MediaKind::Video, 7, &keyframe);
        assert!(frame.is_keyframe);
        assert!(stream.has_gop());
        assert_eq!(joined(&stream), vec![sequence_start.to_vec(), metadata.to_vec(), keyframe.to_vec()]);
    }

    // OBS sends multitrack video as one OneTrack message per track; each track's
    // sequence header is cached on its own, so a late joiner gets all of them.
    #[test]
    fn multitrack_sequence_headers_are_cached_per_track() {
        let mut stream = LiveStream::new();
        // IsExHeader | key | Multitrack, then OneTrack | SequenceStart, "hvc1", track id, record.
        let track0 = [0x96, 0x00, b'h', b'v', b'c', b'1', 0x00, 0x01, 0xA0];
        let track1 = [0x96, 0x00, b'h', b'v', b'c', b'1', 0x01, 0x01, 0xB0];
        // ManyTracksManyCodecs | SequenceStart: "av01" track 2 (2 bytes), "vp09" track 3 (1 byte).
        let many_codecs = [
            0x96, 0x20, b'a', b'v', b'0', b'1', 0x02, 0x00, 0x00, 0x02, 0xC0, 0xC1, b'v', b'p', b'0', b'9', 0x03, 0x00, 0x00,
            0x01, 0xD0,
        ];
        // Audio: Multitrack (9 << 4 | 5), OneTrack | SequenceStart, "Opus", track 1, OpusHead.
        let audio_track1 = [0x95, 0x00, b'O', b'p', b'u', b's', 0x01, 0x4F];
        let audio_track0 = [0x95, 0x00, b'O', b'p', b'u', b's', 0x00, 0x4E];
        // OneTrack | CodedFrames, "hvc1", track 0, composition time 0, NALU bytes.
        let keyframe0 = [0x96, 0x01, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x00, 0x00, 0xEE];
        for body in [&track0[..], &track1[..], &many_codecs[..]] {
            let frame = ingest(&mut stream, MediaKind::Video, 0, body);
            assert!(!frame.droppable && !frame.is_keyframe);
        }
        ingest(&mut stream, MediaKind::Audio, 0, &audio_track1);
        ingest(&mut stream, MediaKind::Audio, 0, &audio_track0);
        let frame = ingest(&mut stream, MediaKind::Video, 33, &keyframe0);
        assert!(frame.is_keyframe && frame.droppable);
        assert_eq!(
            joined(&stream),
            vec![
                track0.to_vec(),
                track1.to_vec(),
                many_codecs.to_vec(),
                audio_track1.to_vec(),
                audio_track0.to_vec(),
                keyframe0.to_vec()
            ]
        );

        // Track 1's header changes: it is replaced in place, the others stay.
        let track1_new = [0x96, 0x00, b'h', b'v', b'c', b'1', 0x01, 0x01, 0xB1];
        ingest(&mut stream, MediaKind::Video, 66, &track1_new);
        assert_eq!(joined(&stream)[1], track1_new.to_vec());
        assert_eq!(joined(&stream)[0], track0.to_vec());
        assert_eq!(joined(&stream).len(), 6);
    }

    #[test]
    fn a_new_publisher_clears_every_cached_header() {
        let mut stream = LiveStream::new();
        stream.start_publishing((Token(1), 1));
        ingest(&mut stream, MediaKind::Video, 0, &[0x96, 0x00, b'h', b'v', b'c', b'1', 0x00, 0x01]);
        ingest(&mut stream, MediaKind::Audio, 0, &[0x94, b'O', b'p', b'u', b's', 0x01, 0x02, 0, 0, 0, 3]);
        assert_eq!(joined(&stream).len(), 2);
        stream.stop_publishing();
        assert!(joined(&stream).is_empty());
    }

    #[test]
    fn a_publisher_cannot_grow_the_header_cache_without_bound() {
        let mut stream = LiveStream::new();
        for i in 0..100u8 {
            // Enhanced video SequenceStart with a made-up FourCC each time.
            ingest(&mut stream, MediaKind::Video, 0, &[0x90, b'z', b'z', b'z', i, 1, 2, 3]);
        }
        assert_eq!(stream.join_frames().count(), MAX_HEADER_SLOTS);
        let big = vec![0x90, b'b', b'i', b'g', b'!'].into_iter().chain(std::iter::repeat_n(0, MAX_HEADER_BYTES)).collect::<Vec<u8>>();
        let mut fresh = LiveStream::new();
        ingest(&mut fresh, MediaKind::Video, 0, &big);
        assert_eq!(fresh.join_frames().count(), 0, "a header over MAX_HEADER_BYTES is not cached");
    }
}
