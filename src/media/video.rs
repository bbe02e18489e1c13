//! Video tag headers: legacy FLV `VideoTagHeader` and E-RTMP `ExVideoTagHeader`.

use std::ops::Range;

use super::multitrack::{Multitrack, MultitrackType, TrackWalker};
use super::reader::{skip_mod_ex, ByteReader, MOD_EX};
use super::{MediaError, VideoFourCc};

const IS_EX_HEADER: u8 = 0x80;
const LEGACY_AVC: u8 = 7;
/// Some forks (and pre-E-RTMP Chinese CDNs) put HEVC under legacy codec id 12, with the
/// AVC header layout.
const LEGACY_HEVC_QUIRK: u8 = 12;

/// The frame type of a video message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoFrameType {
    /// 1: a key frame, where decoding can start.
    Key,
    /// 2: an inter frame.
    Inter,
    /// 3: a disposable inter frame (H.263 only).
    Disposable,
    /// 4: a key frame a server generated.
    GeneratedKey,
    /// 5: a video info / command frame.
    Command,
}

impl VideoFrameType {
    fn from_wire(value: u8) -> Result<Self, MediaError> {
        match value {
            1 => Ok(VideoFrameType::Key),
            2 => Ok(VideoFrameType::Inter),
            3 => Ok(VideoFrameType::Disposable),
            4 => Ok(VideoFrameType::GeneratedKey),
            5 => Ok(VideoFrameType::Command),
            other => Err(MediaError::ReservedVideoFrameType(other)),
        }
    }
}

/// What a video message carries.
///
/// [`VideoTagHeader::parse`] resolves the wire's `ModEx` and `Multitrack` signals: its
/// `packet_type` is never [`ModEx`](VideoPacketType::ModEx), and for a multitrack message it
/// is the packet type the tracks share (with [`VideoTagHeader::multitrack`] set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoPacketType {
    /// 0: decoder configuration (legacy AVC packet type 0).
    SequenceStart,
    /// 1: coded frames (legacy AVC packet type 1, and every legacy non-AVC frame).
    CodedFrames,
    /// 2: end of sequence (legacy AVC packet type 2).
    SequenceEnd,
    /// 3: coded frames with an implicit composition time of 0.
    CodedFramesX,
    /// 4: AMF-encoded metadata (e.g. `colorInfo`), not video.
    Metadata,
    /// 5: an MPEG-2 TS style sequence start, exclusive with `SequenceStart`.
    Mpeg2TsSequenceStart,
    /// 6: multitrack signal (on the wire only).
    Multitrack,
    /// 7: modifier/extension signal (on the wire only).
    ModEx,
}

impl VideoPacketType {
    fn from_wire(value: u8) -> Result<Self, MediaError> {
        match value {
            0 => Ok(VideoPacketType::SequenceStart),
            1 => Ok(VideoPacketType::CodedFrames),
            2 => Ok(VideoPacketType::SequenceEnd),
            3 => Ok(VideoPacketType::CodedFramesX),
            4 => Ok(VideoPacketType::Metadata),
            5 => Ok(VideoPacketType::Mpeg2TsSequenceStart),
            6 => Ok(VideoPacketType::Multitrack),
            MOD_EX => Ok(VideoPacketType::ModEx),
            other => Err(MediaError::ReservedVideoPacketType(other)),
        }
    }
}

/// The video codec of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// A legacy FLV codec id (2 Sorenson H.263, 3 Screen, 4 VP6, 5 VP6 alpha, 6 Screen v2,
    /// 7 AVC; 12 is HEVC in some forks). Unknown ids are kept as they are.
    Legacy(u8),
    /// An enhanced RTMP FourCC.
    FourCc(VideoFourCc),
}

impl VideoCodec {
    /// The FourCC naming the same codec, for codecs both worlds can carry: legacy 7 is
    /// `avc1`, legacy 12 (the fork quirk) is `hvc1`.
    pub const fn fourcc_equivalent(self) -> Option<VideoFourCc> {
        match self {
            VideoCodec::Legacy(LEGACY_AVC) => Some(VideoFourCc::Avc1),
            VideoCodec::Legacy(LEGACY_HEVC_QUIRK) => Some(VideoFourCc::Hvc1),
            VideoCodec::Legacy(_) => None,
            VideoCodec::FourCc(fourcc) => Some(fourcc),
        }
    }
}

/// The command a video command frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCommand {
    /// 0: start of client-side seeking frame sequence.
    StartSeek,
    /// 1: end of client-side seeking frame sequence.
    EndSeek,
    /// A value the spec reserves, kept for forwarding.
    Other(u8),
}

impl VideoCommand {
    fn from_wire(value: u8) -> Self {
        match value {
            0 => VideoCommand::StartSeek,
            1 => VideoCommand::EndSeek,
            other => VideoCommand::Other(other),
        }
    }
}

/// The header of a video message, legacy or enhanced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VideoTagHeader {
    /// Whether the header is an E-RTMP `ExVideoTagHeader`.
    pub enhanced: bool,
    /// The frame type. For [`Metadata`](VideoPacketType::Metadata) messages the spec says
    /// to ignore it.
    pub frame_type: VideoFrameType,
    /// The codec. `None` for enhanced command frames (which carry no FourCC) and for
    /// multitrack messages whose tracks each name their own codec.
    pub codec: Option<VideoCodec>,
    /// The packet type (for multitrack messages, the one all tracks share).
    pub packet_type: VideoPacketType,
    /// The composition time offset in milliseconds, when the header carries one (AVC/HEVC
    /// coded frames, not multitrack). `CodedFramesX` reports `Some(0)`.
    pub composition_time: Option<i32>,
    /// The command of a command frame.
    pub command: Option<VideoCommand>,
    /// The nanosecond timestamp offset from a ModEx prefix, if any.
    pub timestamp_offset_nanos: Option<u32>,
    /// For a multitrack message, where its tracks are.
    pub multitrack: Option<Multitrack>,
    /// Offset in the body where the codec payload starts (for multitrack messages, where
    /// the first track starts).
    pub payload_offset: usize,
}

impl VideoTagHeader {
    /// Reads the header at the start of a video message body.
    pub fn parse(body: &[u8]) -> Result<VideoTagHeader, MediaError> {
        let first = *body.first().ok_or(MediaError::EmptyVideoBody)?;
        if first & IS_EX_HEADER != 0 {
            parse_enhanced(body, first)
        } else {
            parse_legacy(body, first)
        }
    }

    /// Whether this is a frame a player can start decoding at: a (generated) key frame
    /// carrying coded frames. Sequence headers, metadata and commands are not.
    pub fn is_keyframe(&self) -> bool {
        matches!(
            self.frame_type,
            VideoFrameType::Key | VideoFrameType::GeneratedKey
        ) && matches!(
            self.packet_type,
            VideoPacketType::CodedFrames | VideoPacketType::CodedFramesX
        ) && self.command.is_none()
    }

    /// Whether this carries decoder configuration that late joiners need before any frame
    /// (per codec, and for multitrack messages per track).
    pub fn is_sequence_header(&self) -> bool {
        self.command.is_none()
            && matches!(
                self.packet_type,
                VideoPacketType::SequenceStart | VideoPacketType::Mpeg2TsSequenceStart
            )
    }

    /// Whether this is an end-of-sequence marker.
    pub fn is_sequence_end(&self) -> bool {
        self.command.is_none() && self.packet_type == VideoPacketType::SequenceEnd
    }

    /// Whether this carries AMF video metadata (e.g. HDR `colorInfo`) instead of video.
    pub fn is_metadata(&self) -> bool {
        self.packet_type == VideoPacketType::Metadata
    }

    /// Whether this is a command frame (no video data, one command byte).
    pub fn is_command(&self) -> bool {
        self.command.is_some()
    }

    /// The tracks of a multitrack message, read from `body` (which must be the body this
    /// header was parsed from). Empty for single-track messages. Allocates nothing.
    pub fn tracks<'a>(&self, body: &'a [u8]) -> VideoTracks<'a> {
        let walker = self.multitrack.map(|layout| {
            let shared = match self.codec {
                Some(VideoCodec::FourCc(fourcc)) => fourcc.to_bytes(),
                _ => [0; 4],
            };
            TrackWalker::new(body, layout.tracks_offset, layout.multitrack_type, shared)
        });
        VideoTracks {
            walker,
            packet_type: self.packet_type,
            body,
        }
    }
}

fn parse_legacy(body: &[u8], first: u8) -> Result<VideoTagHeader, MediaError> {
    let frame_type = VideoFrameType::from_wire(first >> 4)?;
    let codec_id = first & 0x0F;
    let mut reader = ByteReader::new(body, 1);
    let mut header = VideoTagHeader {
        enhanced: false,
        frame_type,
        codec: Some(VideoCodec::Legacy(codec_id)),
        packet_type: VideoPacketType::CodedFrames,
        composition_time: None,
        command: None,
        timestamp_offset_nanos: None,
        multitrack: None,
        payload_offset: 1,
    };
    if frame_type == VideoFrameType::Command {
        header.command = Some(VideoCommand::from_wire(reader.u8("video command")?));
    } else if codec_id == LEGACY_AVC || codec_id == LEGACY_HEVC_QUIRK {
        header.packet_type = match reader.u8("AVC packet type")? {
            0 => VideoPacketType::SequenceStart,
            1 => VideoPacketType::CodedFrames,
            2 => VideoPacketType::SequenceEnd,
            other => return Err(MediaError::ReservedAvcPacketType(other)),
        };
        header.composition_time = Some(reader.si24("composition time")?);
    }
    header.payload_offset = reader.position();
    Ok(header)
}

fn parse_enhanced(body: &[u8], first: u8) -> Result<VideoTagHeader, MediaError> {
    let mut reader = ByteReader::new(body, 1);
    let resolved = skip_mod_ex(&mut reader, first & 0x0F)?;
    let packet_type = VideoPacketType::from_wire(resolved.packet_type)?;
    let raw_frame_type = (first >> 4) & 0x07;
    // The spec says to ignore the frame type of metadata; writers use 5 (ffmpeg) but any
    // value must be accepted there.
    let frame_type = match VideoFrameType::from_wire(raw_frame_type) {
        Err(_) if packet_type == VideoPacketType::Metadata => VideoFrameType::Command,
        other => other?,
    };
    let mut header = VideoTagHeader {
        enhanced: true,
        frame_type,
        codec: None,
        packet_type,
        composition_time: None,
        command: None,
        timestamp_offset_nanos: resolved.timestamp_offset_nanos,
        multitrack: None,
        payload_offset: 0,
    };
    if frame_type == VideoFrameType::Command && packet_type != VideoPacketType::Metadata {
        header.command = Some(VideoCommand::from_wire(reader.u8("video command")?));
    } else if packet_type == VideoPacketType::Multitrack {
        let byte = reader.u8("multitrack type and packet type")?;
        let multitrack_type = MultitrackType::from_wire(byte >> 4)?;
        header.packet_type = match VideoPacketType::from_wire(byte & 0x0F)? {
            VideoPacketType::Multitrack | VideoPacketType::ModEx => {
                return Err(MediaError::NestedPacketType(byte & 0x0F))
            }
            inner => inner,
        };
        if multitrack_type != MultitrackType::ManyTracksManyCodecs {
            let shared = VideoFourCc::from_bytes(reader.fourcc("video FourCC")?);
            header.codec = Some(VideoCodec::FourCc(shared));
        }
        let tracks_offset = reader.position();
        header.multitrack = Some(Multitrack {
            multitrack_type,
            track_count: 0,
            tracks_offset,
        });
        // Walk the tracks once here so a relay rejects a malformed message up front, and
        // the iterator over a validated header yields no error.
        let mut track_count = 0usize;
        for track in header.tracks(body) {
            track?;
            track_count += 1;
        }
        if track_count == 0 {
            return Err(MediaError::NoTracks);
        }
        header.multitrack = Some(Multitrack {
            multitrack_type,
            track_count,
            tracks_offset,
        });
    } else {
        let fourcc = VideoFourCc::from_bytes(reader.fourcc("video FourCC")?);
        header.codec = Some(VideoCodec::FourCc(fourcc));
        header.composition_time = composition_time(&mut reader, fourcc, packet_type)?;
    }
    header.payload_offset = reader.position();
    Ok(header)
}

fn composition_time(
    reader: &mut ByteReader<'_>,
    fourcc: VideoFourCc,
    packet_type: VideoPacketType,
) -> Result<Option<i32>, MediaError> {
    if !fourcc.has_composition_time() {
        return Ok(None);
    }
    match packet_type {
        VideoPacketType::CodedFrames => Ok(Some(reader.si24("composition time")?)),
        VideoPacketType::CodedFramesX => Ok(Some(0)),
        _ => Ok(None),
    }
}

/// One track of a multitrack video message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VideoTrack {
    /// The track id (0 is the default/highest-priority track by convention).
    pub track_id: u8,
    /// The track's codec.
    pub codec: VideoFourCc,
    /// The track's packet type (shared by all tracks of the message).
    pub packet_type: VideoPacketType,
    /// The composition time offset, for AVC/HEVC coded frames.
    pub composition_time: Option<i32>,
    /// Where the track's codec payload is in the message body (after any composition time).
    pub data: Range<usize>,
}

/// Iterator over the tracks of a multitrack video message; see [`VideoTagHeader::tracks`].
pub struct VideoTracks<'a> {
    walker: Option<TrackWalker<'a>>,
    packet_type: VideoPacketType,
    body: &'a [u8],
}

impl Iterator for VideoTracks<'_> {
    type Item = Result<VideoTrack, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.walker.as_mut()?.next()? {
            Ok(raw) => raw,
            Err(error) => return Some(Err(error)),
        };
        let codec = VideoFourCc::from_bytes(raw.fourcc);
        // The track's data slice bounds the composition time read, so a short track is an
        // error rather than a read into the next track.
        let track_body = self.body.get(..raw.data.end).unwrap_or_default();
        let mut reader = ByteReader::new(track_body, raw.data.start);
        Some(
            composition_time(&mut reader, codec, self.packet_type).map(|composition_time| {
                VideoTrack {
                    track_id: raw.track_id,
                    codec,
                    packet_type: self.packet_type,
                    composition_time,
                    data: reader.position()..raw.data.end,
                }
            }),
        )
    }
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
