//! Audio tag headers: legacy FLV `AudioTagHeader` and E-RTMP `ExAudioTagHeader`.

use std::ops::Range;

use super::multitrack::{Multitrack, MultitrackType, TrackWalker};
use super::reader::{skip_mod_ex, ByteReader, MOD_EX};
use super::{AudioFourCc, MediaError};

const SOUND_FORMAT_EX_HEADER: u8 = 9;
const SOUND_FORMAT_AAC: u8 = 10;

/// What an audio message carries.
///
/// [`AudioTagHeader::parse`] resolves the wire's `ModEx` and `Multitrack` signals: its
/// `packet_type` is never [`ModEx`](AudioPacketType::ModEx), and for a multitrack message it
/// is the packet type the tracks share (with [`AudioTagHeader::multitrack`] set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioPacketType {
    /// 0: decoder configuration (legacy AAC packet type 0).
    SequenceStart,
    /// 1: coded frames (legacy AAC packet type 1, and every legacy non-AAC message).
    CodedFrames,
    /// 2: end of sequence.
    SequenceEnd,
    /// 4: channel count and order, which late joiners need like a sequence header.
    MultichannelConfig,
    /// 5: multitrack signal (on the wire only).
    Multitrack,
    /// 7: modifier/extension signal (on the wire only).
    ModEx,
}

impl AudioPacketType {
    fn from_wire(value: u8) -> Result<Self, MediaError> {
        match value {
            0 => Ok(AudioPacketType::SequenceStart),
            1 => Ok(AudioPacketType::CodedFrames),
            2 => Ok(AudioPacketType::SequenceEnd),
            4 => Ok(AudioPacketType::MultichannelConfig),
            5 => Ok(AudioPacketType::Multitrack),
            MOD_EX => Ok(AudioPacketType::ModEx),
            other => Err(MediaError::ReservedAudioPacketType(other)),
        }
    }
}

/// The audio codec of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// A legacy FLV sound format (2 MP3, 10 AAC, 11 Speex...), kept as it is.
    Legacy(u8),
    /// An enhanced RTMP FourCC.
    FourCc(AudioFourCc),
}

/// The header of an audio message, legacy or enhanced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioTagHeader {
    /// Whether the header is an E-RTMP `ExAudioTagHeader` (sound format 9).
    pub enhanced: bool,
    /// The codec. `None` for a silence message (an empty body) and for multitrack messages
    /// whose tracks each name their own codec.
    pub codec: Option<AudioCodec>,
    /// The packet type (for multitrack messages, the one all tracks share). A silence
    /// message reports `CodedFrames`.
    pub packet_type: AudioPacketType,
    /// The nanosecond timestamp offset from a ModEx prefix, if any.
    pub timestamp_offset_nanos: Option<u32>,
    /// For a multitrack message, where its tracks are.
    pub multitrack: Option<Multitrack>,
    /// Offset in the body where the codec payload starts (for multitrack messages, where
    /// the first track starts).
    pub payload_offset: usize,
}

impl AudioTagHeader {
    /// Reads the header at the start of an audio message body.
    ///
    /// An empty body is valid: RTMP uses it as a silence message.
    pub fn parse(body: &[u8]) -> Result<AudioTagHeader, MediaError> {
        let mut header = AudioTagHeader {
            enhanced: false,
            codec: None,
            packet_type: AudioPacketType::CodedFrames,
            timestamp_offset_nanos: None,
            multitrack: None,
            payload_offset: 0,
        };
        let Some(&first) = body.first() else {
            return Ok(header);
        };
        let sound_format = first >> 4;
        let mut reader = ByteReader::new(body, 1);
        if sound_format != SOUND_FORMAT_EX_HEADER {
            header.codec = Some(AudioCodec::Legacy(sound_format));
            if sound_format == SOUND_FORMAT_AAC {
                header.packet_type = match reader.u8("AAC packet type")? {
                    0 => AudioPacketType::SequenceStart,
                    1 => AudioPacketType::CodedFrames,
                    other => return Err(MediaError::ReservedAacPacketType(other)),
                };
            }
            header.payload_offset = reader.position();
            return Ok(header);
        }

        header.enhanced = true;
        let resolved = skip_mod_ex(&mut reader, first & 0x0F)?;
        header.timestamp_offset_nanos = resolved.timestamp_offset_nanos;
        header.packet_type = AudioPacketType::from_wire(resolved.packet_type)?;
        if header.packet_type == AudioPacketType::Multitrack {
            let byte = reader.u8("multitrack type and packet type")?;
            let multitrack_type = MultitrackType::from_wire(byte >> 4)?;
            header.packet_type = match AudioPacketType::from_wire(byte & 0x0F)? {
                AudioPacketType::Multitrack | AudioPacketType::ModEx => {
                    return Err(MediaError::NestedPacketType(byte & 0x0F))
                }
                inner => inner,
            };
            let mut shared = [0; 4];
            if multitrack_type != MultitrackType::ManyTracksManyCodecs {
                shared = reader.fourcc("audio FourCC")?;
                header.codec = Some(AudioCodec::FourCc(AudioFourCc::from_bytes(shared)));
            }
            let tracks_offset = reader.position();
            let track_count =
                TrackWalker::new(body, tracks_offset, multitrack_type, shared).count()?;
            header.multitrack = Some(Multitrack {
                multitrack_type,
                track_count,
                tracks_offset,
            });
        } else {
            let fourcc = AudioFourCc::from_bytes(reader.fourcc("audio FourCC")?);
            header.codec = Some(AudioCodec::FourCc(fourcc));
        }
        header.payload_offset = reader.position();
        Ok(header)
    }

    /// Whether this is a silence message (an empty body).
    pub fn is_silence(&self) -> bool {
        self.codec.is_none() && self.multitrack.is_none()
    }

    /// Whether this is a sequence header (decoder configuration).
    pub fn is_sequence_header(&self) -> bool {
        self.packet_type == AudioPacketType::SequenceStart
    }

    /// Whether this is configuration a late joiner needs before any frame: a sequence
    /// header or a multichannel configuration (per codec, and per track).
    pub fn is_config(&self) -> bool {
        matches!(
            self.packet_type,
            AudioPacketType::SequenceStart | AudioPacketType::MultichannelConfig
        )
    }

    /// Whether this is an end-of-sequence marker.
    pub fn is_sequence_end(&self) -> bool {
        self.packet_type == AudioPacketType::SequenceEnd
    }

    /// The tracks of a multitrack message, read from `body` (which must be the body this
    /// header was parsed from). Empty for single-track messages. Allocates nothing.
    pub fn tracks<'a>(&self, body: &'a [u8]) -> AudioTracks<'a> {
        let walker = self.multitrack.map(|layout| {
            let shared = match self.codec {
                Some(AudioCodec::FourCc(fourcc)) => fourcc.to_bytes(),
                _ => [0; 4],
            };
            TrackWalker::new(body, layout.tracks_offset, layout.multitrack_type, shared)
        });
        AudioTracks {
            walker,
            packet_type: self.packet_type,
        }
    }
}

/// One track of a multitrack audio message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AudioTrack {
    /// The track id (0 is the default/highest-priority track by convention).
    pub track_id: u8,
    /// The track's codec.
    pub codec: AudioFourCc,
    /// The track's packet type (shared by all tracks of the message).
    pub packet_type: AudioPacketType,
    /// Where the track's codec payload is in the message body.
    pub data: Range<usize>,
}

/// Iterator over the tracks of a multitrack audio message; see [`AudioTagHeader::tracks`].
pub struct AudioTracks<'a> {
    walker: Option<TrackWalker<'a>>,
    packet_type: AudioPacketType,
}

impl Iterator for AudioTracks<'_> {
    type Item = Result<AudioTrack, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        let packet_type = self.packet_type;
        Some(self.walker.as_mut()?.next()?.map(|raw| AudioTrack {
            track_id: raw.track_id,
            codec: AudioFourCc::from_bytes(raw.fourcc),
            packet_type,
            data: raw.data,
        }))
    }
}

#[cfg(test)]
#[path = "audio_tests.rs"]
mod tests;
