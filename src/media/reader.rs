//! A bounds-checked cursor over a message body: every read names its field so a short
//! body becomes a [`MediaError::Truncated`] that says where it broke.

use super::MediaError;

pub(crate) struct ByteReader<'a> {
    body: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(body: &'a [u8], position: usize) -> Self {
        ByteReader { body, position }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.position)
    }

    pub(crate) fn take(
        &mut self,
        needed: usize,
        field: &'static str,
    ) -> Result<&'a [u8], MediaError> {
        let truncated = MediaError::Truncated {
            field,
            offset: self.position,
            needed,
        };
        let end = self.position.checked_add(needed).ok_or(truncated)?;
        let bytes = self.body.get(self.position..end).ok_or(truncated)?;
        self.position = end;
        Ok(bytes)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, MediaError> {
        let bytes = self.take(1, field)?;
        Ok(bytes.first().copied().unwrap_or_default())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, MediaError> {
        match *self.take(2, field)? {
            [a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Ok(0),
        }
    }

    pub(crate) fn u24(&mut self, field: &'static str) -> Result<u32, MediaError> {
        match *self.take(3, field)? {
            [a, b, c] => Ok(u32::from_be_bytes([0, a, b, c])),
            _ => Ok(0),
        }
    }

    /// A signed 24-bit big-endian value (composition time offsets may be negative).
    pub(crate) fn si24(&mut self, field: &'static str) -> Result<i32, MediaError> {
        let raw = self.u24(field)?;
        // Shift the sign bit of the 24-bit value into bit 31, then back with sign extension.
        Ok(((raw << 8) as i32) >> 8)
    }

    pub(crate) fn fourcc(&mut self, field: &'static str) -> Result<[u8; 4], MediaError> {
        match *self.take(4, field)? {
            [a, b, c, d] => Ok([a, b, c, d]),
            _ => Ok([0; 4]),
        }
    }
}

/// A ModEx prefix, resolved: the packet type that follows all prefixes, and the
/// nanosecond timestamp offset if one of them carried it.
pub(crate) struct ModExResolved {
    pub(crate) packet_type: u8,
    pub(crate) timestamp_offset_nanos: Option<u32>,
}

/// The packet type value both audio and video use for ModEx.
pub(crate) const MOD_EX: u8 = 7;
const MOD_EX_TIMESTAMP_OFFSET_NANO: u8 = 0;

/// Skips ModEx prefixes (E-RTMP v2): each is a size (UI8 + 1, or UI16 + 1 when the UI8
/// says 256), that many bytes of data, then a byte of mod-ex type (high nibble) and the
/// next packet type (low nibble). Every round consumes at least 3 bytes, so the loop ends.
pub(crate) fn skip_mod_ex(
    reader: &mut ByteReader<'_>,
    mut packet_type: u8,
) -> Result<ModExResolved, MediaError> {
    let mut timestamp_offset_nanos = None;
    while packet_type == MOD_EX {
        let mut size = usize::from(reader.u8("ModEx data size")?) + 1;
        if size == 256 {
            size = usize::from(reader.u16("ModEx data size (16-bit)")?) + 1;
        }
        let data = reader.take(size, "ModEx data")?;
        let next = reader.u8("ModEx type and packet type")?;
        if next >> 4 == MOD_EX_TIMESTAMP_OFFSET_NANO {
            if let [a, b, c, ..] = *data {
                timestamp_offset_nanos = Some(u32::from_be_bytes([0, a, b, c]));
            }
        }
        packet_type = next & 0x0F;
    }
    Ok(ModExResolved {
        packet_type,
        timestamp_offset_nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si24_sign_extends() {
        let mut reader = ByteReader::new(&[0xFF, 0xFF, 0xFE, 0x00, 0x00, 0x21], 0);
        assert_eq!(reader.si24("a"), Ok(-2));
        assert_eq!(reader.si24("b"), Ok(0x21));
        assert_eq!(
            reader.u8("c"),
            Err(MediaError::Truncated {
                field: "c",
                offset: 6,
                needed: 1
            })
        );
    }

    #[test]
    fn mod_ex_with_sixteen_bit_size() {
        // size byte 255 -> 256 -> read UI16 (0x0100) + 1 = 257 bytes of data.
        let mut body = vec![0xFF, 0x01, 0x00];
        body.extend(std::iter::repeat_n(0xEE, 257));
        body.push(0x11); // mod-ex type 1 (unknown), packet type 1
        body.push(0x42);
        let mut reader = ByteReader::new(&body, 0);
        let resolved = skip_mod_ex(&mut reader, MOD_EX).unwrap();
        assert_eq!(resolved.packet_type, 1);
        assert_eq!(resolved.timestamp_offset_nanos, None);
        assert_eq!(reader.position(), 3 + 257 + 1);
    }
}
