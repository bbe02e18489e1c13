//! FLV files: reading and writing the container RTMP media comes from.
//!
//! An FLV file is a 9-byte header, then `PreviousTagSize0` (always 0), then tags, each
//! followed by its own size: `[tag header 11][data][PreviousTagSize 4]`. A tag's data is
//! exactly the body of the RTMP message of the same type (8 audio, 9 video, 18 data), so
//! tags convert to and from [`MessagePayload`] without touching the bytes.
//!
//! Used for fixtures, benchmarks and recording; not on the relay's hot path.
//!
//! Reading is zero-copy: [`FlvReader`] takes the whole file as [`Bytes`] (or reads it,
//! with [`FlvReader::open`] and [`FlvReader::from_reader`]) and every [`FlvTag::data`] is
//! a slice of it.
//!
//! Tags and sessions: a tag's type is a [`MediaKind`](crate::sessions::MediaKind) (`From`
//! both ways, with script data as `MediaKind::Data`). A client publishes a tag with
//! [`ClientSession::publish_tag`](crate::sessions::ClientSession::publish_tag), which
//! sends `onMetaData` script tags as metadata, and records with
//! [`ClientSessionEvent::to_flv_tag`](crate::sessions::ClientSessionEvent::to_flv_tag),
//! which covers both media and metadata events.
//!
//! ```
//! use bytes::Bytes;
//! use rtmp_edge::flv::{FlvReader, FlvTag, FlvTagType, FlvWriter};
//! use rtmp_edge::time::RtmpTimestamp;
//!
//! let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
//! writer
//!     .write_tag(&FlvTag {
//!         tag_type: FlvTagType::Audio,
//!         timestamp: RtmpTimestamp::new(0x0100_0020),
//!         data: Bytes::from_static(&[0xAF, 0x01, 0x21]),
//!     })
//!     .unwrap();
//! let file = Bytes::from(writer.into_inner());
//!
//! let reader = FlvReader::new(file).unwrap();
//! assert!(reader.header().has_audio && reader.header().has_video);
//! let tags: Vec<FlvTag> = reader.collect::<Result<_, _>>().unwrap();
//! assert_eq!(tags.len(), 1);
//! assert_eq!(tags[0].timestamp.value(), 0x0100_0020);
//! assert_eq!(&tags[0].data[..], &[0xAF, 0x01, 0x21]);
//!
//! // A tag is an RTMP message body: convert with the caller's message stream id.
//! let message = tags[0].to_message(1);
//! assert_eq!((message.type_id, message.message_stream_id), (8, 1));
//! assert_eq!(FlvTag::from_message(&message).unwrap(), tags[0]);
//! ```

mod error;
mod reader;
mod writer;

pub use error::FlvError;
pub use reader::{FlvHeader, FlvReader};
pub use writer::FlvWriter;

use bytes::Bytes;

use crate::chunk_io::MessagePayload;
use crate::time::RtmpTimestamp;

/// Size of the FLV file header (signature, version, flags, data offset).
pub const FLV_HEADER_SIZE: usize = 9;
/// Size of a tag header (type, data size, timestamp, extended timestamp, stream id).
pub const TAG_HEADER_SIZE: usize = 11;
/// The largest tag data a 24-bit size field can describe.
pub const MAX_TAG_DATA_SIZE: usize = 0xFF_FFFF;

/// What a tag carries; the values are the RTMP message type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlvTagType {
    /// 8: audio.
    Audio,
    /// 9: video.
    Video,
    /// 18: script data (AMF0), e.g. `onMetaData`.
    Script,
}

impl FlvTagType {
    /// The tag type (and RTMP message type id) on the wire.
    pub const fn type_id(self) -> u8 {
        match self {
            FlvTagType::Audio => 8,
            FlvTagType::Video => 9,
            FlvTagType::Script => 18,
        }
    }

    /// The tag type for an id, if it is one FLV carries.
    pub const fn from_type_id(type_id: u8) -> Option<Self> {
        match type_id {
            8 => Some(FlvTagType::Audio),
            9 => Some(FlvTagType::Video),
            18 => Some(FlvTagType::Script),
            _ => None,
        }
    }
}

/// One FLV tag: its type, its timestamp and its data (an RTMP message body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlvTag {
    /// What the tag carries.
    pub tag_type: FlvTagType,
    /// The tag's timestamp (24 bits plus the 8-bit upper extension).
    pub timestamp: RtmpTimestamp,
    /// The tag data; a slice of the file when read, never copied.
    pub data: Bytes,
}

impl FlvTag {
    /// The RTMP message carrying this tag, on the given message stream. The data is
    /// shared, not copied. This is the message layer's view, for chunk-level code; a
    /// session publishes a tag with
    /// [`ClientSession::publish_tag`](crate::sessions::ClientSession::publish_tag).
    pub fn to_message(&self, message_stream_id: u32) -> MessagePayload {
        MessagePayload {
            timestamp: self.timestamp,
            type_id: self.tag_type.type_id(),
            message_stream_id,
            data: self.data.clone(),
        }
    }

    /// The tag carrying an RTMP audio, video or data (AMF0) message. The message stream
    /// id is dropped (FLV has none). The data is shared, not copied.
    pub fn from_message(message: &MessagePayload) -> Result<FlvTag, FlvError> {
        let tag_type = FlvTagType::from_type_id(message.type_id)
            .ok_or(FlvError::NotAnFlvMessage(message.type_id))?;
        if message.data.len() > MAX_TAG_DATA_SIZE {
            return Err(FlvError::TagTooLarge(message.data.len()));
        }
        Ok(FlvTag {
            tag_type,
            timestamp: message.timestamp,
            data: message.data.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
