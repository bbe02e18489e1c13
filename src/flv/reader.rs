//! FLV file reading, zero-copy over the whole file.

use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;

use super::{FlvError, FlvTag, FlvTagType, FLV_HEADER_SIZE, TAG_HEADER_SIZE};
use crate::time::RtmpTimestamp;

const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;
const TAG_FILTER_BIT: u8 = 0x20;
const TAG_TYPE_MASK: u8 = 0x1F;
const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// The FLV file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlvHeader {
    /// The format version (always 1).
    pub version: u8,
    /// The file says it has audio tags.
    pub has_audio: bool,
    /// The file says it has video tags.
    pub has_video: bool,
    /// Where the body (PreviousTagSize0) starts; 9 unless a writer added header bytes.
    pub data_offset: u32,
}

/// Reads the tags of a whole FLV file held in memory.
///
/// Iterates `Result<FlvTag, FlvError>`; after the first error it ends. The file may end
/// right after a tag's data without the final PreviousTagSize (as recordings cut short
/// do): nothing is lost, so that is not an error. Tag stream ids (always 0 by the spec)
/// are not checked. Tags with the Filter bit are an error ([`FlvError::FilteredTag`]).
pub struct FlvReader {
    file: Bytes,
    header: FlvHeader,
    position: usize,
    previous_tag_size: u32,
    finished: bool,
}

impl FlvReader {
    /// Validates the header; tags are read as the iterator advances.
    pub fn new(file: Bytes) -> Result<FlvReader, FlvError> {
        let header = match *file.as_ref() {
            [a, b, c, version, flags, o1, o2, o3, o4, ..] => {
                if [a, b, c] != *b"FLV" {
                    return Err(FlvError::BadSignature([a, b, c]));
                }
                if version != 1 {
                    return Err(FlvError::UnsupportedVersion(version));
                }
                FlvHeader {
                    version,
                    has_audio: flags & FLAG_AUDIO != 0,
                    has_video: flags & FLAG_VIDEO != 0,
                    data_offset: u32::from_be_bytes([o1, o2, o3, o4]),
                }
            }
            _ => return Err(FlvError::TruncatedHeader(file.len())),
        };
        let position = usize::try_from(header.data_offset)
            .ok()
            .filter(|&offset| offset >= FLV_HEADER_SIZE && offset <= file.len())
            .ok_or(FlvError::BadDataOffset(header.data_offset))?;
        Ok(FlvReader {
            file,
            header,
            position,
            previous_tag_size: 0,
            finished: false,
        })
    }

    /// Reads the file at `path` into memory and validates its header. An invalid header
    /// is an [`io::ErrorKind::InvalidData`] error whose source is the [`FlvError`].
    ///
    /// ```no_run
    /// use rtmp_edge::flv::FlvReader;
    ///
    /// for tag in FlvReader::open("input.flv")? {
    ///     let tag = tag?;
    ///     println!("{:?} at {} ms", tag.tag_type, tag.timestamp);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> io::Result<FlvReader> {
        let file = std::fs::read(path)?;
        FlvReader::new(Bytes::from(file)).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// Reads `source` to its end (a pipe, a socket, an HTTP body) and validates the
    /// header; the same errors as [`open`](Self::open). The reader works on the whole
    /// file, so this returns only once the source ends.
    pub fn from_reader(mut source: impl Read) -> io::Result<FlvReader> {
        let mut file = Vec::new();
        source.read_to_end(&mut file)?;
        FlvReader::new(Bytes::from(file)).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// The file header.
    pub fn header(&self) -> &FlvHeader {
        &self.header
    }

    fn take(&mut self, needed: usize, field: &'static str) -> Result<&[u8], FlvError> {
        let truncated = FlvError::Truncated {
            field,
            offset: self.position,
            needed,
        };
        let end = self.position.checked_add(needed).ok_or(truncated)?;
        let bytes = self.file.get(self.position..end).ok_or(truncated)?;
        self.position = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FlvError> {
        let offset = self.position;
        let bytes = self.take(N, field)?;
        <[u8; N]>::try_from(bytes).map_err(|_| FlvError::Truncated {
            field,
            offset,
            needed: N,
        })
    }

    /// Reads one PreviousTagSize field and, unless the file ends there, one tag.
    fn read_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if self.position == self.file.len() {
            // Ended right after a tag's data (or the header): the size field that would
            // follow describes nothing more, so nothing is lost.
            return Ok(None);
        }
        let size_offset = self.position;
        let expected = self.previous_tag_size;
        let found =
            u32::from_be_bytes(self.take_array::<PREVIOUS_TAG_SIZE_LEN>("PreviousTagSize")?);
        if found != expected {
            return Err(FlvError::PreviousTagSizeMismatch {
                offset: size_offset,
                expected,
                found,
            });
        }
        if self.position == self.file.len() {
            return Ok(None);
        }
        let tag_offset = self.position;
        let [type_byte, s1, s2, s3, t1, t2, t3, t_upper, _, _, _] =
            self.take_array::<TAG_HEADER_SIZE>("tag header")?;
        let data_size = u32::from_be_bytes([0, s1, s2, s3]);
        // The extended byte holds the upper 8 bits of the 32-bit timestamp.
        let timestamp = u32::from_be_bytes([t_upper, t1, t2, t3]);
        if type_byte & TAG_FILTER_BIT != 0 {
            return Err(FlvError::FilteredTag { offset: tag_offset });
        }
        let tag_type = FlvTagType::from_type_id(type_byte & TAG_TYPE_MASK).ok_or(
            FlvError::UnknownTagType {
                offset: tag_offset,
                tag_type: type_byte & TAG_TYPE_MASK,
            },
        )?;
        let data_start = self.position;
        // A 24-bit size always fits usize on the platforms we build for (>= 32-bit).
        let data_len = data_size as usize;
        self.take(data_len, "tag data")?;
        self.previous_tag_size = data_size + TAG_HEADER_SIZE as u32;
        Ok(Some(FlvTag {
            tag_type,
            timestamp: RtmpTimestamp::new(timestamp),
            data: self.file.slice(data_start..data_start + data_len),
        }))
    }
}

impl Iterator for FlvReader {
    type Item = Result<FlvTag, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let result = self.read_tag();
        match result {
            Ok(Some(tag)) => Some(Ok(tag)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}
