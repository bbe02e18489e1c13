//! Arbitrary bytes as a client's handshake, fed to the server side in reads whose sizes the
//! input picks. It must not panic, never buffer more than MAX_BUFFERED_BYTES, and on
//! completion hand back exactly the bytes after C2.
#![no_main]

#[path = "common/recorded.rs"]
mod recorded;

use libfuzzer_sys::fuzz_target;
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole, MAX_BUFFERED_BYTES, RANDOM_LEN};

fuzz_target!(
    init: {
        // Every recorded handshake and the first bytes after it, read 16 and 1536 bytes at
        // a time (the prefix is the read size in 16-byte units).
        recorded::write_if_asked(|| {
            recorded::wire_with_read_sizes(&[1, 96], |bytes| &bytes[..bytes.len().min(recorded::HANDSHAKE_LEN + 64)])
        });
    },
    |data: &[u8]| {
        let Some((&read_size, input)) = data.split_first() else {
            return;
        };
        // A fixed random part keeps every run reproducible.
        let mut handshake = Handshake::with_random(HandshakeRole::Server, 0, [0x5A; RANDOM_LEN]);
        assert!(handshake.start().is_empty());
        let read_size = usize::from(read_size).max(1) * 16;
        let mut consumed = 0;
        for read in input.chunks(read_size) {
            match handshake.process(read) {
                Ok(HandshakeProgress::InProgress { .. }) => {
                    consumed += read.len();
                    assert!(handshake.buffered_len() <= MAX_BUFFERED_BYTES);
                }
                Ok(HandshakeProgress::Completed { remaining, .. }) => {
                    assert!(handshake.is_completed());
                    let used = 1 + 2 * rtmp_edge::handshake::PACKET_LEN - consumed;
                    assert_eq!(&remaining[..], &read[used..]);
                    assert!(handshake.process(&[0]).is_err());
                    return;
                }
                Err(_) => {
                    // A failed handshake stays failed.
                    assert!(handshake.process(&[3]).is_err());
                    return;
                }
            }
        }
    }
);
