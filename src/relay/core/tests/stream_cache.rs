//! What a stream caches for late joiners.

use bytes::Bytes;

use crate::relay::core::frame::SharedFrame;
use crate::relay::core::stream::{CacheLimits, LiveStream, MAX_HEADER_BYTES, MAX_HEADER_SLOTS};
use crate::relay::core::ids::IdTable;
use crate::sessions::MediaKind;
use crate::time::RtmpTimestamp;

const LIMITS: CacheLimits = CacheLimits { gop_cache: true, gop_max_bytes: 1 << 20, gop_max_frames: 100 };

fn ingest(stream: &mut LiveStream, kind: MediaKind, timestamp: u32, body: &[u8]) -> SharedFrame {
    stream.ingest(kind, RtmpTimestamp::from(timestamp), Bytes::copy_from_slice(body), 4096, LIMITS).expect("encode")
}

fn joined(stream: &LiveStream) -> Vec<Vec<u8>> {
    stream.join_frames().map(|frame| frame.body.to_vec()).collect()
}

// ffmpeg 9 sends Opus as SequenceStart (OpusHead) then MultichannelConfig; the second
// used to replace the first in the cache, so late joiners never got OpusHead and ffmpeg
// aborted ("Assertion par->extradata_size failed").
#[test]
fn opus_sequence_start_and_multichannel_config_are_both_kept() {
    let mut stream = LiveStream::new();
    let sequence_start = [0x90, b'O', b'p', b'u', b's', b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd'];
    let channel_config = [0x94, b'O', b'p', b'u', b's', 0x01, 0x02, 0x00, 0x00, 0x00, 0x03];
    let frame = [0x91, b'O', b'p', b'u', b's', 0xFC, 0x01];
    ingest(&mut stream, MediaKind::Audio, 0, &sequence_start);
    ingest(&mut stream, MediaKind::Audio, 0, &channel_config);
    ingest(&mut stream, MediaKind::Audio, 20, &frame);
    // (Audio frames are not keyframes, so no GOP is cached for audio alone.)
    assert_eq!(joined(&stream), vec![sequence_start.to_vec(), channel_config.to_vec()]);

    // A new sequence header replaces only the old sequence header, in place.
    let sequence_start_2 = [0x90, b'O', b'p', b'u', b's', 0x02];
    ingest(&mut stream, MediaKind::Audio, 40, &sequence_start_2);
    assert_eq!(joined(&stream)[..2], [sequence_start_2.to_vec(), channel_config.to_vec()]);
}

#[test]
fn video_metadata_is_kept_beside_the_sequence_header() {
    let mut stream = LiveStream::new();
    let sequence_start = [0x90, b'v', b'p', b'0', b'9', 0x01, 0x00, 0x00, 0x00];
    // Frame type 5 (info) | Metadata, "vp09", then an AMF0 string "colorInfo" and null.
    let metadata = [0xD4, b'v', b'p', b'0', b'9', 0x02, 0x00, 0x09, b'c', b'o', b'l', b'o', b'r', b'I', b'n', b'f', b'o', 0x05];
    let keyframe = [0x91, b'v', b'p', b'0', b'9', 0xAA];
    ingest(&mut stream, MediaKind::Video, 0, &sequence_start);
    ingest(&mut stream, MediaKind::Video, 0, &metadata);
    let frame = ingest(&mut stream, MediaKind::Video, 7, &keyframe);
    assert!(frame.is_keyframe);
    assert!(stream.has_gop());
    assert_eq!(joined(&stream), vec![sequence_start.to_vec(), metadata.to_vec(), keyframe.to_vec()]);
}

// OBS sends multitrack video as one OneTrack message per track; each track's
// sequence header is cached on its own, so a late joiner gets all of them.
#[test]
fn multitrack_sequence_headers_are_cached_per_track() {
    let mut stream = LiveStream::new();
    // IsExHeader | key | Multitrack, then OneTrack | SequenceStart, "hvc1", track id, record.
    let track0 = [0x96, 0x00, b'h', b'v', b'c', b'1', 0x00, 0x01, 0xA0];
    let track1 = [0x96, 0x00, b'h', b'v', b'c', b'1', 0x01, 0x01, 0xB0];
    // ManyTracksManyCodecs | SequenceStart: "av01" track 2 (2 bytes), "vp09" track 3 (1 byte).
    let many_codecs = [
        0x96, 0x20, b'a', b'v', b'0', b'1', 0x02, 0x00, 0x00, 0x02, 0xC0, 0xC1, b'v', b'p', b'0', b'9', 0x03, 0x00, 0x00,
        0x01, 0xD0,
    ];
    // Audio: Multitrack (9 << 4 | 5), OneTrack | SequenceStart, "Opus", track 1, OpusHead.
    let audio_track1 = [0x95, 0x00, b'O', b'p', b'u', b's', 0x01, 0x4F];
    let audio_track0 = [0x95, 0x00, b'O', b'p', b'u', b's', 0x00, 0x4E];
    // OneTrack | CodedFrames, "hvc1", track 0, composition time 0, NALU bytes.
    let keyframe0 = [0x96, 0x01, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x00, 0x00, 0xEE];
    for body in [&track0[..], &track1[..], &many_codecs[..]] {
        let frame = ingest(&mut stream, MediaKind::Video, 0, body);
        assert!(!frame.droppable && !frame.is_keyframe);
    }
    ingest(&mut stream, MediaKind::Audio, 0, &audio_track1);
    ingest(&mut stream, MediaKind::Audio, 0, &audio_track0);
    let frame = ingest(&mut stream, MediaKind::Video, 33, &keyframe0);
    assert!(frame.is_keyframe && frame.droppable);
    assert_eq!(
        joined(&stream),
        vec![
            track0.to_vec(),
            track1.to_vec(),
            many_codecs.to_vec(),
            audio_track1.to_vec(),
            audio_track0.to_vec(),
            keyframe0.to_vec()
        ]
    );

    // Track 1's header changes: it is replaced in place, the others stay.
    let track1_new = [0x96, 0x00, b'h', b'v', b'c', b'1', 0x01, 0x01, 0xB1];
    ingest(&mut stream, MediaKind::Video, 66, &track1_new);
    assert_eq!(joined(&stream)[1], track1_new.to_vec());
    assert_eq!(joined(&stream)[0], track0.to_vec());
    assert_eq!(joined(&stream).len(), 6);
}

#[test]
fn a_new_publisher_clears_every_cached_header() {
    let mut stream = LiveStream::new();
    let mut ids = IdTable::default();
    stream.publisher = Some((ids.insert(()), 1));
    stream.restart_source();
    ingest(&mut stream, MediaKind::Video, 0, &[0x96, 0x00, b'h', b'v', b'c', b'1', 0x00, 0x01]);
    ingest(&mut stream, MediaKind::Audio, 0, &[0x94, b'O', b'p', b'u', b's', 0x01, 0x02, 0, 0, 0, 3]);
    assert_eq!(joined(&stream).len(), 2);
    stream.publisher = None;
    stream.source_lost();
    assert!(joined(&stream).is_empty());
}

#[test]
fn a_publisher_cannot_grow_the_header_cache_without_bound() {
    let mut stream = LiveStream::new();
    for i in 0..100u8 {
        // Enhanced video SequenceStart with a made-up FourCC each time.
        ingest(&mut stream, MediaKind::Video, 0, &[0x90, b'z', b'z', b'z', i, 1, 2, 3]);
    }
    assert_eq!(stream.join_frames().count(), MAX_HEADER_SLOTS);
    let big = vec![0x90, b'b', b'i', b'g', b'!'].into_iter().chain(std::iter::repeat_n(0, MAX_HEADER_BYTES)).collect::<Vec<u8>>();
    let mut fresh = LiveStream::new();
    ingest(&mut fresh, MediaKind::Video, 0, &big);
    assert_eq!(fresh.join_frames().count(), 0, "a header over MAX_HEADER_BYTES is not cached");
}

#[test]
fn the_gop_is_bounded_in_frames_and_counts_what_it_holds() {
    let limits = CacheLimits { gop_cache: true, gop_max_bytes: 1 << 20, gop_max_frames: 3 };
    let mut stream = LiveStream::new();
    let frame = |stream: &mut LiveStream, ts: u32, body: &[u8]| {
        stream.ingest(MediaKind::Video, RtmpTimestamp::from(ts), Bytes::copy_from_slice(body), 4096, limits).unwrap()
    };
    frame(&mut stream, 0, &[0x17, 1, 0, 0, 0, 9]);
    frame(&mut stream, 40, &[0x27, 1, 0, 0, 0, 9]);
    frame(&mut stream, 80, &[0x27, 1, 0, 0, 0, 9]);
    // 12-byte header + 6-byte body, the body a slice of the same buffer.
    assert_eq!(stream.gop_held(), (3, 3 * 18));
    assert_eq!(stream.gop_span_ms(), 80);
    frame(&mut stream, 120, &[0x27, 1, 0, 0, 0, 9]);
    assert_eq!(stream.gop_held(), (0, 0), "a GOP over the frame limit is not cached");
    assert!(!stream.has_gop());
    frame(&mut stream, 160, &[0x17, 1, 0, 0, 0, 9]);
    assert_eq!(stream.gop_held(), (1, 18));
}
