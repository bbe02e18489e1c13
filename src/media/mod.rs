//! Reading FLV audio/video tag headers: the first bytes of every RTMP audio (type 8) and
//! video (type 9) message body, in both the legacy FLV layout and the Enhanced RTMP
//! (veovera E-RTMP v1/v2) layout.
//!
//! A relay does not decode media, but it must know, per message: which codec (and, for
//! multitrack messages, which tracks), whether the message is a sequence header (decoder
//! configuration that every late joiner needs before any frame), whether it is a keyframe
//! (where a new player may start), and whether it is metadata or a command frame.
//! [`VideoTagHeader::parse`] and [`AudioTagHeader::parse`] answer exactly that, without
//! allocating, in a few dozen byte reads. Malformed and truncated headers are a
//! [`MediaError`], never a panic.
//!
//! What is parsed:
//! - legacy video: frame type, codec id, and for AVC (codec id 7, and 12, a HEVC id some
//!   forks use) the packet type and composition time; command frames (frame type 5);
//! - enhanced video (`IsExHeader` set): frame type, packet type, FourCC, composition time
//!   for `avc1`/`hvc1` coded frames, video command frames, metadata, multitrack, and ModEx
//!   prefixes (skipped, with a nanosecond timestamp offset kept when present);
//! - legacy audio: sound format, and the AAC packet type;
//! - enhanced audio (sound format 9): packet type, FourCC, multitrack and ModEx.
//!
//! Leniency: codec ids and FourCCs a relay does not know are reported (as a raw id or
//! [`VideoFourCc::Other`] / [`AudioFourCc::Other`]), not rejected, because a relay only
//! forwards them. Frame types and packet types drive relay decisions (caching, where a GOP
//! starts), so reserved values there are errors.
//!
//! Legacy HEVC quirk: OBS before 29.1 sent HEVC under the legacy AVC codec id 7; the
//! header layout is the same as AVC, so classification is right either way, but the
//! codec cannot be told apart from the header alone. Codec id 12 is read with the AVC
//! layout and reported as [`VideoCodec::Legacy`]`(12)`;
//! [`VideoCodec::fourcc_equivalent`] maps it to [`VideoFourCc::Hvc1`].
//!
//! ```
//! use rtmp_edge::media::{VideoTagHeader, VideoCodec, VideoFourCc, VideoPacketType};
//!
//! // Enhanced RTMP: IsExHeader | key frame | SequenceStart, then "hvc1", then the config.
//! let body = [0x90, b'h', b'v', b'c', b'1', 0x01, 0x02];
//! let header = VideoTagHeader::parse(&body).unwrap();
//! assert_eq!(header.codec, Some(VideoCodec::FourCc(VideoFourCc::Hvc1)));
//! assert_eq!(header.packet_type, VideoPacketType::SequenceStart);
//! assert!(header.is_sequence_header());
//! assert!(!header.is_keyframe()); // a config record is not a frame to start playback on
//! assert_eq!(&body[header.payload_offset..], &[0x01, 0x02]);
//!
//! // Legacy AVC key frame (NALUs) with composition time 0x000021 ms.
//! let header = VideoTagHeader::parse(&[0x17, 0x01, 0x00, 0x00, 0x21, 0xAA]).unwrap();
//! assert!(header.is_keyframe());
//! assert_eq!(header.composition_time, Some(0x21));
//! ```
//!
//! Multitrack messages carry several tracks in one message; iterate them without
//! allocating:
//!
//! ```
//! use rtmp_edge::media::{VideoTagHeader, VideoFourCc};
//!
//! // IsExHeader | key frame | Multitrack, then ManyTracks | SequenceStart, "av01",
//! // then track 0 (2 bytes) and track 1 (1 byte).
//! let body = [0x96, 0x10, b'a', b'v', b'0', b'1', 0, 0, 0, 2, 0xA0, 0xA1, 1, 0, 0, 1, 0xB0];
//! let header = VideoTagHeader::parse(&body).unwrap();
//! assert!(header.is_sequence_header());
//! let tracks: Vec<_> = header.tracks(&body).map(|t| t.unwrap()).collect();
//! assert_eq!(tracks.len(), 2);
//! assert_eq!((tracks[1].track_id, tracks[1].codec), (1, VideoFourCc::Av01));
//! assert_eq!(&body[tracks[0].data.clone()], &[0xA0, 0xA1]);
//! ```

mod audio;
mod error;
mod fourcc;
mod multitrack;
mod reader;
mod video;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod robustness_tests;

pub use audio::{AudioCodec, AudioPacketType, AudioTagHeader, AudioTrack, AudioTracks};
pub use error::MediaError;
pub use fourcc::{AudioFourCc, VideoFourCc};
pub use multitrack::{Multitrack, MultitrackType};
pub use video::{
    VideoCodec, VideoCommand, VideoFrameType, VideoPacketType, VideoTagHeader, VideoTrack,
    VideoTracks,
};

/// Classifies a video message body: the per-message call on the relay's hot path.
///
/// The same as [`VideoTagHeader::parse`]; it reads only the header (and, for multitrack
/// messages, walks the track sizes to validate them).
pub fn classify_video(body: &[u8]) -> Result<VideoTagHeader, MediaError> {
    VideoTagHeader::parse(body)
}

/// Classifies an audio message body: the per-message call on the relay's hot path.
///
/// The same as [`AudioTagHeader::parse`].
pub fn classify_audio(body: &[u8]) -> Result<AudioTagHeader, MediaError> {
    AudioTagHeader::parse(body)
}
