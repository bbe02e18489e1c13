//! Arbitrary bytes as an FLV file. Reading must not panic, must end, and every tag must be a
//! slice of the file (so at most one tag per 11-byte tag header).
#![no_main]

#[path = "common/recorded.rs"]
mod recorded;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::flv::{FlvReader, TAG_HEADER_SIZE};

fuzz_target!(
    init: {
        // The start of every FLV fixture.
        recorded::write_if_asked(|| {
            recorded::flv_files()
                .into_iter()
                .map(|(name, bytes)| (name, bytes[..bytes.len().min(recorded::MAX_SEED)].to_vec()))
                .collect()
        });
    },
    |data: &[u8]| {
        let file = Bytes::copy_from_slice(data);
        let Ok(reader) = FlvReader::new(file) else {
            return;
        };
        let mut tags = 0usize;
        let mut body_bytes = 0usize;
        for tag in reader {
            match tag {
                Ok(tag) => {
                    tags += 1;
                    body_bytes += tag.data.len();
                    assert!(tags * TAG_HEADER_SIZE + body_bytes <= data.len());
                }
                Err(_) => break,
            }
        }
    }
);
