//! Arbitrary bytes as an FLV audio and a video tag body. Parsing must not panic, and every
//! offset and range it reports must lie inside the body.
#![no_main]

#[path = "common/recorded.rs"]
mod recorded;

use libfuzzer_sys::fuzz_target;
use rtmp_edge::flv::{FlvReader, FlvTagType};
use rtmp_edge::media::{AudioTagHeader, VideoTagHeader};

fuzz_target!(
    init: {
        // The sequence headers and first frames of every FLV fixture (H.264, HEVC, AV1,
        // VP9, AAC, Opus, FLAC, multitrack).
        recorded::write_if_asked(|| {
            let mut seeds = Vec::new();
            for (name, bytes) in recorded::flv_files() {
                let Ok(reader) = FlvReader::new(bytes::Bytes::from(bytes)) else { continue };
                let (mut audio, mut video) = (0, 0);
                for (index, tag) in reader.enumerate() {
                    let Ok(tag) = tag else { break };
                    let count = match tag.tag_type {
                        FlvTagType::Audio => &mut audio,
                        FlvTagType::Video => &mut video,
                        FlvTagType::Script => continue,
                    };
                    *count += 1;
                    if *count <= 6 {
                        seeds.push((format!("{name}_{index}"), tag.data[..tag.data.len().min(2048)].to_vec()));
                    }
                }
            }
            seeds
        });
    },
    |body: &[u8]| {
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
    }
);
