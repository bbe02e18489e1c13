//! FLV file writing into any `std::io::Write`.

use std::io::{self, Write};

use super::{FlvTag, FLV_HEADER_SIZE, MAX_TAG_DATA_SIZE, TAG_HEADER_SIZE};

/// Writes an FLV file: the header on creation, then one tag (and its PreviousTagSize) per
/// [`write_tag`](FlvWriter::write_tag).
///
/// To write into a `BytesMut`, wrap it with `bytes::BufMut::writer`.
pub struct FlvWriter<W: Write> {
    inner: W,
}

impl<W: Write> FlvWriter<W> {
    /// Writes the 9-byte header (with the audio/video presence flags) and
    /// PreviousTagSize0.
    pub fn new(mut inner: W, has_audio: bool, has_video: bool) -> io::Result<Self> {
        let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
        let mut header = [0u8; FLV_HEADER_SIZE + 4];
        header[..3].copy_from_slice(b"FLV");
        header[3] = 1;
        header[4] = flags;
        header[5..9].copy_from_slice(&(FLV_HEADER_SIZE as u32).to_be_bytes());
        inner.write_all(&header)?;
        Ok(FlvWriter { inner })
    }

    /// Writes one tag and the PreviousTagSize that follows it. Data longer than the
    /// 24-bit size field allows is an `InvalidInput` error and nothing is written.
    pub fn write_tag(&mut self, tag: &FlvTag) -> io::Result<()> {
        let data_size = tag.data.len();
        if data_size > MAX_TAG_DATA_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("FLV tag data of {data_size} bytes exceeds the 24-bit size field"),
            ));
        }
        let size = (data_size as u32).to_be_bytes();
        let timestamp = tag.timestamp.value().to_be_bytes();
        let header: [u8; TAG_HEADER_SIZE] = [
            tag.tag_type.type_id(),
            size[1],
            size[2],
            size[3],
            timestamp[1],
            timestamp[2],
            timestamp[3],
            timestamp[0],
            0,
            0,
            0,
        ];
        self.inner.write_all(&header)?;
        self.inner.write_all(&tag.data)?;
        let previous_tag_size = (data_size + TAG_HEADER_SIZE) as u32;
        self.inner.write_all(&previous_tag_size.to_be_bytes())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}
