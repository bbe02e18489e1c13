//! Chunk basic headers (RTMP 1.0 section 5.3.1.1): format and chunk stream id.

use bytes::BufMut;

/// The 24-bit timestamp value that says "the real timestamp follows in 4 bytes".
pub(super) const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;

/// A chunk's format (0-3) and chunk stream id, with how many bytes they took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BasicHeader {
    pub fmt: u8,
    pub chunk_stream_id: u32,
    pub length: usize,
}

impl BasicHeader {
    /// Reads a basic header from the front of `input`, or `None` if more bytes are needed.
    pub fn peek(input: &[u8]) -> Option<BasicHeader> {
        let first = *input.first()?;
        let fmt = first >> 6;
        match first & 0x3F {
            0 => {
                let second = *input.get(1)?;
                Some(BasicHeader { fmt, chunk_stream_id: 64 + u32::from(second), length: 2 })
            }
            1 => {
                let low = *input.get(1)?;
                let high = *input.get(2)?;
                let chunk_stream_id = 64 + u32::from(low) + 256 * u32::from(high);
                Some(BasicHeader { fmt, chunk_stream_id, length: 3 })
            }
            id => Some(BasicHeader { fmt, chunk_stream_id: u32::from(id), length: 1 }),
        }
    }

    /// Writes the shortest basic header for `chunk_stream_id` (which must be 2..=65599).
    pub fn write(fmt: u8, chunk_stream_id: u32, out: &mut impl BufMut) {
        let fmt_bits = fmt << 6;
        match chunk_stream_id {
            0..=63 => out.put_u8(fmt_bits | chunk_stream_id as u8),
            64..=319 => {
                out.put_u8(fmt_bits);
                out.put_u8((chunk_stream_id - 64) as u8);
            }
            _ => {
                let offset = chunk_stream_id.saturating_sub(64);
                out.put_u8(fmt_bits | 1);
                out.put_u8((offset & 0xFF) as u8);
                out.put_u8(((offset >> 8) & 0xFF) as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_and_three_byte_forms_round_trip() {
        for (id, bytes) in [
            (2u32, vec![0x02u8]),
            (63, vec![0x3F]),
            (64, vec![0x00, 0x00]),
            (319, vec![0x00, 0xFF]),
            (320, vec![0x01, 0x00, 0x01]),
            (65599, vec![0x01, 0xFF, 0xFF]),
        ] {
            let mut out = Vec::new();
            BasicHeader::write(0, id, &mut out);
            assert_eq!(out, bytes, "csid {id}");
            let parsed = BasicHeader::peek(&bytes).unwrap();
            assert_eq!((parsed.chunk_stream_id, parsed.length), (id, bytes.len()));
        }
    }

    #[test]
    fn fmt_sits_in_the_top_two_bits() {
        let mut out = Vec::new();
        BasicHeader::write(3, 6, &mut out);
        assert_eq!(out, [0xC6]);
        assert_eq!(BasicHeader::peek(&[0x86]).unwrap().fmt, 2);
    }

    #[test]
    fn short_input_asks_for_more() {
        assert_eq!(BasicHeader::peek(&[]), None);
        assert_eq!(BasicHeader::peek(&[0x00]), None);
        assert_eq!(BasicHeader::peek(&[0x01, 0x00]), None);
    }
}
