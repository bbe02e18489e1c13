use std::fmt;

/// Why an FLV file could not be read, or a tag could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlvError {
    /// The file is shorter than the 9-byte header.
    TruncatedHeader(usize),
    /// The file does not start with `FLV`.
    BadSignature([u8; 3]),
    /// A version other than 1.
    UnsupportedVersion(u8),
    /// The header's data offset is below 9 or past the end of the file.
    BadDataOffset(u32),
    /// The file ended inside a tag or size field.
    Truncated {
        /// What was being read.
        field: &'static str,
        /// Offset in the file where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
    },
    /// A PreviousTagSize field that does not match the tag before it.
    PreviousTagSizeMismatch {
        /// Offset of the field in the file.
        offset: usize,
        /// The size of the tag before it (0 before the first tag).
        expected: u32,
        /// The value in the file.
        found: u32,
    },
    /// A tag type other than 8, 9 and 18.
    UnknownTagType {
        /// Offset of the tag in the file.
        offset: usize,
        /// The tag type.
        tag_type: u8,
    },
    /// A tag with the Filter bit set (encrypted/pre-processed content), which this reader
    /// does not support: it is an error, not skipped, so nothing is silently dropped.
    FilteredTag {
        /// Offset of the tag in the file.
        offset: usize,
    },
    /// An RTMP message whose type is not audio, video or AMF0 data has no FLV tag type.
    NotAnFlvMessage(u8),
    /// Tag data longer than the 24-bit size field can describe.
    TagTooLarge(usize),
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvError::TruncatedHeader(length) => {
                write!(
                    f,
                    "FLV file of {length} bytes is shorter than its 9-byte header"
                )
            }
            FlvError::BadSignature(bytes) => write!(f, "not an FLV file: signature {bytes:02x?}"),
            FlvError::UnsupportedVersion(version) => {
                write!(f, "unsupported FLV version {version}")
            }
            FlvError::BadDataOffset(offset) => write!(f, "bad FLV header data offset {offset}"),
            FlvError::Truncated {
                field,
                offset,
                needed,
            } => {
                write!(
                    f,
                    "FLV file truncated: {field} needs {needed} byte(s) at offset {offset}"
                )
            }
            FlvError::PreviousTagSizeMismatch {
                offset,
                expected,
                found,
            } => write!(
                f,
                "PreviousTagSize at offset {offset} is {found}, the tag before it is {expected}"
            ),
            FlvError::UnknownTagType { offset, tag_type } => {
                write!(f, "unknown FLV tag type {tag_type} at offset {offset}")
            }
            FlvError::FilteredTag { offset } => {
                write!(
                    f,
                    "filtered (encrypted) FLV tag at offset {offset} is not supported"
                )
            }
            FlvError::NotAnFlvMessage(type_id) => {
                write!(f, "RTMP message type {type_id} has no FLV tag type")
            }
            FlvError::TagTooLarge(size) => {
                write!(
                    f,
                    "tag data of {size} bytes exceeds the 24-bit FLV size field"
                )
            }
        }
    }
}

impl std::error::Error for FlvError {}
