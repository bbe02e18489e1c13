//! A media message encoded once for every player, and what the relay needs to know of it.

use bytes::{Bytes, BytesMut};

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
    /// Audio, video or data.
    pub kind: MediaKind,
    /// Timestamp as sent to players.
    pub timestamp: RtmpTimestamp,
    /// The message body, for players and upstreams that need their own encoding. When the
    /// body fits in one chunk it is a slice of `bytes`, so the frame holds one buffer, never
    /// a slice that pins some larger read buffer.
    pub body: Bytes,
    /// Where a player may start (or resume) decoding.
    pub is_keyframe: bool,
    /// Whether dropping it for a slow player is allowed (never for headers and metadata).
    pub droppable: bool,
    /// For HTTP-FLV and WebSocket-FLV players: the body and its PreviousTagSize, made
    /// once when the stream has such players (`core/flv_egress.rs`).
    pub flv_tail: Option<Bytes>,
    body_shares_bytes: bool,
}

impl SharedFrame {
    /// Bytes of memory this frame keeps alive.
    pub fn held_bytes(&self) -> usize {
        let tail = self.flv_tail.as_ref().map_or(0, Bytes::len);
        if self.body_shares_bytes {
            self.bytes.len() + tail
        } else {
            self.bytes.len() + self.body.len() + tail
        }
    }
}

/// What a message is, for caching and dropping.
#[derive(Clone, Copy, Debug)]
pub struct Classification {
    /// A video keyframe (or a frame that starts decoding).
    pub is_keyframe: bool,
    /// A sequence header or other configuration: never dropped, cached for joiners.
    pub is_header: bool,
    /// Which configuration slot it fills, when it is one.
    pub header_slot: Option<HeaderSlot>,
}

impl Classification {
    /// Metadata (`onMetaData`): a header without a slot.
    pub const METADATA: Classification = Classification { is_keyframe: false, is_header: true, header_slot: None };
}

/// Which sequence header a cached frame is (per kind, codec, track and what it configures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSlot {
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
    SequenceHeader,
    ChannelConfig,
    VideoMetadata,
}

/// Audio and video messages shorter than this carry no media: a legacy tag header alone
/// is one byte, and the shortest real message (a video command frame) is two.
const MIN_MEDIA_BYTES: usize = 2;

/// Whether a message is too small to be media. Such messages are not relayed: a flood of
/// them would cost every player a queue entry each while carrying nothing.
pub fn is_implausibly_small(kind: MediaKind, body: &[u8]) -> bool {
    match kind {
        MediaKind::Audio | MediaKind::Video => body.len() < MIN_MEDIA_BYTES,
        MediaKind::Data => body.is_empty(),
    }
}

/// Reads just enough of a tag header to know how to cache and drop the frame. A header the
/// media module cannot read is forwarded as an ordinary droppable frame.
pub fn classify(kind: MediaKind, body: &[u8]) -> Classification {
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

/// Encodes a message once, for every player that uses the shared stream id and chunk size.
pub fn encode_frame(
    kind: MediaKind,
    timestamp: RtmpTimestamp,
    body: Bytes,
    chunk_size: u32,
    classification: Classification,
) -> Result<SharedFrame, ChunkError> {
    let (chunk_stream_id, type_id) = crate::sessions::media_chunk_stream(kind);
    let payload = MessagePayload { timestamp, type_id, message_stream_id: SHARED_STREAM_ID, data: body };
    let length = ChunkEncoder::standalone_encoded_len(chunk_stream_id, payload.data.len(), chunk_size, timestamp);
    let mut encoded = BytesMut::with_capacity(length);
    ChunkEncoder::encode_standalone(chunk_stream_id, &payload, chunk_size, &mut encoded)?;
    let bytes = encoded.freeze();
    let body_length = payload.data.len();
    // One chunk: the body is the tail of the encoding, byte for byte.
    let body_shares_bytes = body_length <= chunk_size as usize && body_length <= bytes.len();
    let body = if body_shares_bytes { bytes.slice(bytes.len() - body_length..) } else { payload.data };
    Ok(SharedFrame {
        bytes,
        kind,
        timestamp,
        body,
        is_keyframe: classification.is_keyframe,
        droppable: !classification.is_header,
        flv_tail: None,
        body_shares_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Classification = Classification { is_keyframe: false, is_header: false, header_slot: None };

    #[test]
    fn a_one_chunk_body_is_a_slice_of_the_encoding() {
        // A body sliced from a big read buffer must not be what the frame keeps.
        let read_buffer = Bytes::from(vec![0x27u8; 64 * 1024]);
        let body = read_buffer.slice(100..110);
        let frame = encode_frame(MediaKind::Video, RtmpTimestamp::new(40), body, 4096, PLAIN).unwrap();
        assert_eq!(&frame.body[..], &[0x27; 10][..]);
        assert_eq!(frame.bytes.len(), 12 + 10);
        assert_eq!(frame.held_bytes(), 22);
        assert_eq!(frame.body.as_ptr(), frame.bytes[12..].as_ptr());
    }

    #[test]
    fn a_body_over_several_chunks_is_held_beside_the_encoding() {
        let body = Bytes::from(vec![0x17u8; 300]);
        let frame = encode_frame(MediaKind::Video, RtmpTimestamp::new(0), body, 128, PLAIN).unwrap();
        // fmt 0 header (12 bytes) + two fmt 3 headers (1 byte each) + 300.
        assert_eq!(frame.bytes.len(), 12 + 2 + 300);
        assert_eq!(frame.held_bytes(), 314 + 300);
        assert_eq!(frame.body.len(), 300);
    }

    #[test]
    fn empty_and_one_byte_media_is_implausible() {
        assert!(is_implausibly_small(MediaKind::Video, &[]));
        assert!(is_implausibly_small(MediaKind::Video, &[0x17]));
        assert!(!is_implausibly_small(MediaKind::Video, &[0x57, 0x00]), "a video command frame is two bytes");
        assert!(is_implausibly_small(MediaKind::Audio, &[0xAF]));
        assert!(!is_implausibly_small(MediaKind::Audio, &[0xAF, 0x01]));
        assert!(is_implausibly_small(MediaKind::Data, &[]));
        assert!(!is_implausibly_small(MediaKind::Data, &[0x02]));
    }
}
