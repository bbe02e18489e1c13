//! Randomised tests: any bytes, and mutations of valid headers, never panic, and every
//! offset and range a parse returns lies inside the body.

use proptest::prelude::*;

use super::*;

fn check_video(body: &[u8]) {
    if let Ok(header) = VideoTagHeader::parse(body) {
        assert!(header.payload_offset <= body.len());
        let mut count = 0;
        for track in header.tracks(body) {
            let track = track.expect("a parsed header's tracks are valid");
            assert!(track.data.start <= track.data.end && track.data.end <= body.len());
            count += 1;
        }
        assert_eq!(count, header.multitrack.map_or(0, |m| m.track_count));
    }
}

fn check_audio(body: &[u8]) {
    if let Ok(header) = AudioTagHeader::parse(body) {
        assert!(header.payload_offset <= body.len());
        let mut count = 0;
        for track in header.tracks(body) {
            let track = track.expect("a parsed header's tracks are valid");
            assert!(track.data.start <= track.data.end && track.data.end <= body.len());
            count += 1;
        }
        assert_eq!(count, header.multitrack.map_or(0, |m| m.track_count));
    }
}

const VALID_VIDEO: &[&[u8]] = &[
    &[0x17, 0x01, 0x00, 0x00, 0x21, 0xAA],
    &[0x91, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x28, 0xAB],
    &[
        0x97, 0x02, 0x07, 0xA1, 0x20, 0x01, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x10, 0xEE,
    ],
    &[
        0xA6, 0x11, b'h', b'v', b'c', b'1', 0, 0, 0, 5, 0, 0, 1, 0xA0, 0xA1, 1, 0, 0, 3, 0xFF,
        0xFF, 0xFE,
    ],
    &[
        0x96, 0x20, b'a', b'v', b'0', b'1', 0, 0, 0, 2, 0xA0, 0xA1, b'h', b'v', b'c', b'1', 1, 0,
        0, 1, 0xB0,
    ],
];

const VALID_AUDIO: &[&[u8]] = &[
    &[0xAF, 0x00, 0x12, 0x10],
    &[
        0x97, 0x02, 0x00, 0x01, 0x00, 0x01, b'O', b'p', b'u', b's', 0xFC,
    ],
    &[
        0x95, 0x10, b'm', b'p', b'4', b'a', 0, 0, 0, 2, 0x12, 0x10, 1, 0, 0, 0,
    ],
    &[
        0x95, 0x21, b'O', b'p', b'u', b's', 0, 0, 0, 1, 0xAA, b'.', b'm', b'p', b'3', 1, 0, 0, 1,
        0xBB,
    ],
];

fn mutate(base: &[u8], flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut body = base.to_vec();
    for &(index, value) in flips {
        let len = body.len();
        body[index % len] = value;
    }
    body.truncate(cut % (body.len() + 1));
    body
}

proptest! {
    #[test]
    fn arbitrary_video_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
        check_video(&body);
    }

    #[test]
    fn arbitrary_audio_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
        check_audio(&body);
    }

    #[test]
    fn enhanced_prefixes_never_panic(
        first in 0x80u8..=0xFF,
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut body = vec![first];
        body.extend(rest);
        check_video(&body);
        body[0] = 0x90 | (first & 0x0F);
        check_audio(&body);
    }

    #[test]
    fn mutated_valid_headers_never_panic(
        pick in any::<usize>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        check_video(&mutate(VALID_VIDEO[pick % VALID_VIDEO.len()], &flips, cut));
        check_audio(&mutate(VALID_AUDIO[pick % VALID_AUDIO.len()], &flips, cut));
    }
}

#[test]
fn valid_samples_parse() {
    for body in VALID_VIDEO {
        assert!(VideoTagHeader::parse(body).is_ok(), "{body:02x?}");
    }
    for body in VALID_AUDIO {
        assert!(AudioTagHeader::parse(body).is_ok(), "{body:02x?}");
    }
}
