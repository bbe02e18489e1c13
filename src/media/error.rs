use std::fmt;

/// Why an audio or video tag header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaError {
    /// A video message had no bytes at all (an empty audio message is valid: silence).
    EmptyVideoBody,
    /// The body ended inside a header field.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Offset in the body where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
    },
    /// A video frame type the specs reserve (0, or 6 and up).
    ReservedVideoFrameType(u8),
    /// An enhanced video packet type the spec reserves (8 and up).
    ReservedVideoPacketType(u8),
    /// An enhanced audio packet type the spec reserves (3, 6, 8 and up).
    ReservedAudioPacketType(u8),
    /// A legacy AVC/HEVC packet type other than 0, 1, 2.
    ReservedAvcPacketType(u8),
    /// A legacy AAC packet type other than 0, 1.
    ReservedAacPacketType(u8),
    /// Inside a multitrack message, the tracks' packet type was Multitrack or ModEx,
    /// which the spec forbids there.
    NestedPacketType(u8),
    /// A multitrack type the spec reserves (3 and up).
    ReservedMultitrackType(u8),
    /// A multitrack message held no track.
    NoTracks,
    /// A track's declared size runs past the end of the message.
    TrackOverrun {
        /// The track's id.
        track_id: u8,
        /// The declared size.
        size: usize,
        /// Bytes left in the message after the size field.
        remaining: usize,
    },
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaError::EmptyVideoBody => write!(f, "video message has an empty body"),
            MediaError::Truncated {
                field,
                offset,
                needed,
            } => write!(
                f,
                "media header truncated: {field} needs {needed} byte(s) at offset {offset}"
            ),
            MediaError::ReservedVideoFrameType(v) => write!(f, "reserved video frame type {v}"),
            MediaError::ReservedVideoPacketType(v) => {
                write!(f, "reserved enhanced video packet type {v}")
            }
            MediaError::ReservedAudioPacketType(v) => {
                write!(f, "reserved enhanced audio packet type {v}")
            }
            MediaError::ReservedAvcPacketType(v) => write!(f, "reserved AVC packet type {v}"),
            MediaError::ReservedAacPacketType(v) => write!(f, "reserved AAC packet type {v}"),
            MediaError::NestedPacketType(v) => {
                write!(
                    f,
                    "packet type {v} is not allowed inside a multitrack message"
                )
            }
            MediaError::ReservedMultitrackType(v) => write!(f, "reserved multitrack type {v}"),
            MediaError::NoTracks => write!(f, "multitrack message holds no track"),
            MediaError::TrackOverrun {
                track_id,
                size,
                remaining,
            } => write!(
                f,
                "track {track_id} declares {size} bytes but only {remaining} remain in the message"
            ),
        }
    }
}

impl std::error::Error for MediaError {}
