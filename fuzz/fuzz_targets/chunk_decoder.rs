//! Arbitrary bytes into a ChunkDecoder with small limits, fed in reads whose sizes the input
//! picks. Whatever the bytes, the decoder must not panic and must keep what it holds within
//! the limits: partial messages (what they hold and what they reserve) within
//! `max_partial_bytes`, unparsed input within one chunk.
#![no_main]

#[path = "common/recorded.rs"]
mod recorded;

use libfuzzer_sys::fuzz_target;
use rtmp_edge::chunk_io::{ChunkDecoder, ChunkDecoderLimits, DEFAULT_CHUNK_SIZE};

/// The longest chunk header: 3-byte basic header, 11-byte message header, 4-byte extended
/// timestamp.
const MAX_CHUNK_HEADER: usize = 3 + 11 + 4;

fuzz_target!(
    init: {
        // Every recorded chunk stream, read 64 bytes and 255 bytes at a time.
        recorded::write_if_asked(|| recorded::wire_with_read_sizes(&[64, 255], recorded::chunk_stream));
    },
    |data: &[u8]| {
        let Some((&read_size, stream)) = data.split_first() else {
            return;
        };
        let limits = ChunkDecoderLimits {
            max_message_length: 4096,
            max_chunk_size: 1024,
            max_chunk_streams: 4,
            max_partial_bytes: 8192,
        };
        let mut decoder = ChunkDecoder::new(limits.clone());
        let read_size = usize::from(read_size).max(1);
        for read in stream.chunks(read_size) {
            decoder.push(read);
            loop {
                match decoder.next_message() {
                    Ok(Some(message)) => {
                        assert!(message.data.len() <= limits.max_message_length as usize);
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
                assert!(decoder.partial_bytes() <= limits.max_partial_bytes);
            }
            assert!(decoder.partial_bytes() <= limits.max_partial_bytes);
            assert!(decoder.partial_capacity() <= limits.max_partial_bytes);
            // Drained to Ok(None): what is left is less than one whole chunk.
            let largest_chunk = (limits.max_chunk_size.max(DEFAULT_CHUNK_SIZE)) as usize;
            assert!(
                decoder.buffered_len() < MAX_CHUNK_HEADER + largest_chunk,
                "{} bytes buffered after draining",
                decoder.buffered_len()
            );
        }
    }
);
