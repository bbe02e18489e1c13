//! The multitrack layout shared by enhanced audio and video: after the header, a run of
//! tracks, each `[FourCC if many codecs] trackId:UI8 [size:UI24 unless one track] data`.

use std::ops::Range;

use super::reader::ByteReader;
use super::MediaError;

/// How the tracks of a multitrack message are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MultitrackType {
    /// One track, no size field: its data runs to the end of the message.
    OneTrack,
    /// Several tracks of one codec (the FourCC is in the header), each with a size.
    ManyTracks,
    /// Several tracks, each naming its own codec FourCC, each with a size.
    ManyTracksManyCodecs,
}

impl MultitrackType {
    pub(crate) fn from_wire(value: u8) -> Result<Self, MediaError> {
        match value {
            0 => Ok(MultitrackType::OneTrack),
            1 => Ok(MultitrackType::ManyTracks),
            2 => Ok(MultitrackType::ManyTracksManyCodecs),
            other => Err(MediaError::ReservedMultitrackType(other)),
        }
    }
}

/// Where the tracks of a multitrack message are, as found (and validated) by the parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Multitrack {
    /// The track layout.
    pub multitrack_type: MultitrackType,
    /// How many tracks the message holds (at least 1).
    pub track_count: usize,
    /// Offset in the body of the first track's first byte.
    pub tracks_offset: usize,
}

/// One track as the layout describes it, before the codec-specific part.
pub(crate) struct RawTrack {
    pub(crate) fourcc: [u8; 4],
    pub(crate) track_id: u8,
    pub(crate) data: Range<usize>,
}

/// Walks the tracks of a message body. Stops after the end or after the first error.
pub(crate) struct TrackWalker<'a> {
    body: &'a [u8],
    position: usize,
    multitrack_type: MultitrackType,
    shared_fourcc: [u8; 4],
    finished: bool,
}

impl<'a> TrackWalker<'a> {
    pub(crate) fn new(
        body: &'a [u8],
        tracks_offset: usize,
        multitrack_type: MultitrackType,
        shared_fourcc: [u8; 4],
    ) -> Self {
        TrackWalker {
            body,
            position: tracks_offset,
            multitrack_type,
            shared_fourcc,
            finished: false,
        }
    }

    fn next_track(&mut self) -> Result<RawTrack, MediaError> {
        let mut reader = ByteReader::new(self.body, self.position);
        let fourcc = match self.multitrack_type {
            MultitrackType::ManyTracksManyCodecs => reader.fourcc("track FourCC")?,
            _ => self.shared_fourcc,
        };
        let track_id = reader.u8("track id")?;
        let data = match self.multitrack_type {
            MultitrackType::OneTrack => reader.position()..self.body.len(),
            _ => {
                let size = reader.u24("track size")? as usize;
                let remaining = reader.remaining();
                if size > remaining {
                    return Err(MediaError::TrackOverrun {
                        track_id,
                        size,
                        remaining,
                    });
                }
                let start = reader.position();
                start..start + size
            }
        };
        self.position = data.end;
        Ok(RawTrack {
            fourcc,
            track_id,
            data,
        })
    }

    /// Walks every track to check the layout; returns how many tracks there are.
    pub(crate) fn count(self) -> Result<usize, MediaError> {
        let mut count = 0usize;
        for track in self {
            track?;
            count += 1;
        }
        if count == 0 {
            return Err(MediaError::NoTracks);
        }
        Ok(count)
    }
}

impl Iterator for TrackWalker<'_> {
    type Item = Result<RawTrack, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished || self.position >= self.body.len() {
            return None;
        }
        let result = self.next_track();
        if result.is_err() || self.multitrack_type == MultitrackType::OneTrack {
            self.finished = true;
        }
        Some(result)
    }
}
