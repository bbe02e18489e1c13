//! Arbitrary bytes as an FLV audio and a video tag body. Parsing must not panic, and every
//! offset and range it reports must lie inside the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_edge::media::{AudioTagHeader, VideoTagHeader};

fuzz_target!(|body: &[u8]| {
    if let Ok(header) = VideoTagHeader::parse(body) {
        assert!(header.payload_offset <= body.len());
        let _ = (header.is_keyframe(), header.is_sequence_header(), header.is_sequence_end());
        // Each track takes at least one byte, so a body holds at most len tracks.
        for track in header.tracks(body).take(body.len() + 1) {
            match track {
                Ok(track) => {
                    assert!(track.data.start <= track.data.end && track.data.end <= body.len())
                }
                Err(_) => break,
            }
        }
    }
    if let Ok(header) = AudioTagHeader::parse(body) {
        assert!(header.payload_offset <= body.len());
        let _ = (header.is_sequence_header(), header.is_config(), header.is_sequence_end());
        for track in header.tracks(body).take(body.len() + 1) {
            match track {
                Ok(track) => {
                    assert!(track.data.start <= track.data.end && track.data.end <= body.len())
                }
                Err(_) => break,
            }
        }
    }
});
