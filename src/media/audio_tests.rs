//! Audio header tests with bytes built by hand from the legacy FLV spec and E-RTMP v2.

use super::*;

fn parse(body: &[u8]) -> AudioTagHeader {
    match AudioTagHeader::parse(body) {
        Ok(header) => header,
        Err(error) => panic!("{body:02x?} should parse: {error}"),
    }
}

#[test]
fn legacy_aac_sequence_header_and_raw() {
    let config = parse(&[0xAF, 0x00, 0x12, 0x10]);
    assert_eq!(
        config,
        AudioTagHeader {
            enhanced: false,
            codec: Some(AudioCodec::Legacy(10)),
            packet_type: AudioPacketType::SequenceStart,
            timestamp_offset_nanos: None,
            multitrack: None,
            payload_offset: 2,
        }
    );
    assert!(config.is_sequence_header() && config.is_config() && !config.is_silence());

    let raw = parse(&[0xAF, 0x01, 0x21]);
    assert_eq!(
        (raw.packet_type, raw.payload_offset),
        (AudioPacketType::CodedFrames, 2)
    );
    assert!(!raw.is_config());
}

#[test]
fn legacy_other_formats_have_no_packet_type() {
    let mp3 = parse(&[0x2F, 0xFF, 0xFB]);
    assert_eq!(mp3.codec, Some(AudioCodec::Legacy(2)));
    assert_eq!(
        (mp3.packet_type, mp3.payload_offset),
        (AudioPacketType::CodedFrames, 1)
    );
    assert_eq!(parse(&[0xB6]).codec, Some(AudioCodec::Legacy(11))); // Speex
}

#[test]
fn empty_body_is_silence() {
    let silence = parse(&[]);
    assert!(silence.is_silence());
    assert!(!silence.is_config());
    assert_eq!(silence.payload_offset, 0);
}

#[test]
fn legacy_errors() {
    assert_eq!(
        AudioTagHeader::parse(&[0xAF, 0x02]),
        Err(MediaError::ReservedAacPacketType(2))
    );
    assert_eq!(
        AudioTagHeader::parse(&[0xAF]),
        Err(MediaError::Truncated {
            field: "AAC packet type",
            offset: 1,
            needed: 1
        })
    );
}

#[test]
fn enhanced_every_fourcc_and_packet_type() {
    for (bytes, expected) in [
        (*b"mp4a", AudioFourCc::Mp4a),
        (*b"Opus", AudioFourCc::Opus),
        (*b"fLaC", AudioFourCc::Flac),
        (*b"ac-3", AudioFourCc::Ac3),
        (*b"ec-3", AudioFourCc::Ec3),
        (*b".mp3", AudioFourCc::Mp3),
        (*b"abcd", AudioFourCc::Other(*b"abcd")),
    ] {
        for (wire, packet_type) in [
            (0u8, AudioPacketType::SequenceStart),
            (1, AudioPacketType::CodedFrames),
            (2, AudioPacketType::SequenceEnd),
            (4, AudioPacketType::MultichannelConfig),
        ] {
            let mut body = vec![0x90 | wire];
            body.extend_from_slice(&bytes);
            body.push(0x55);
            let header = parse(&body);
            assert!(header.enhanced);
            assert_eq!(header.codec, Some(AudioCodec::FourCc(expected)));
            assert_eq!(
                (header.packet_type, header.payload_offset),
                (packet_type, 5)
            );
        }
    }
    assert!(parse(&[0x94, b'O', b'p', b'u', b's']).is_config());
    assert!(!parse(&[0x94, b'O', b'p', b'u', b's']).is_sequence_header());
    assert!(parse(&[0x92, b'f', b'L', b'a', b'C']).is_sequence_end());
}

#[test]
fn enhanced_errors() {
    for reserved in [3u8, 6, 8, 15] {
        assert_eq!(
            AudioTagHeader::parse(&[0x90 | reserved, b'O', b'p', b'u', b's']),
            Err(MediaError::ReservedAudioPacketType(reserved))
        );
    }
    assert_eq!(
        AudioTagHeader::parse(&[0x91, b'O']),
        Err(MediaError::Truncated {
            field: "audio FourCC",
            offset: 1,
            needed: 4
        })
    );
}

#[test]
fn mod_ex_timestamp_offset() {
    let body = [
        0x97, 0x02, 0x00, 0x01, 0x00, 0x01, b'O', b'p', b'u', b's', 0xFC,
    ];
    let header = parse(&body);
    assert_eq!(header.packet_type, AudioPacketType::CodedFrames);
    assert_eq!(header.timestamp_offset_nanos, Some(256));
    assert_eq!(header.codec, Some(AudioCodec::FourCc(AudioFourCc::Opus)));
    assert_eq!(header.payload_offset, 10);
}

#[test]
fn multitrack_layouts() {
    // OneTrack | CodedFrames, Opus, track 2, then data to the end.
    let one = [0x95, 0x01, b'O', b'p', b'u', b's', 2, 0xF0, 0xF1];
    let header = parse(&one);
    assert_eq!(header.codec, Some(AudioCodec::FourCc(AudioFourCc::Opus)));
    let tracks: Vec<_> = header.tracks(&one).collect();
    assert_eq!(
        tracks,
        vec![Ok(AudioTrack {
            track_id: 2,
            codec: AudioFourCc::Opus,
            packet_type: AudioPacketType::CodedFrames,
            data: 7..9,
        })]
    );

    // ManyTracks | SequenceStart, mp4a; track 0 (2 bytes), track 1 (0 bytes).
    let many = [
        0x95, 0x10, b'm', b'p', b'4', b'a', 0, 0, 0, 2, 0x12, 0x10, 1, 0, 0, 0,
    ];
    let header = parse(&many);
    assert!(header.is_sequence_header());
    assert_eq!(header.multitrack.map(|m| m.track_count), Some(2));
    let tracks: Vec<_> = header.tracks(&many).map(Result::unwrap).collect();
    assert_eq!((tracks[0].track_id, tracks[0].data.clone()), (0, 10..12));
    assert_eq!((tracks[1].track_id, tracks[1].data.clone()), (1, 16..16));

    // ManyTracksManyCodecs | CodedFrames; Opus track 0, .mp3 track 1.
    let mixed = [
        0x95, 0x21, b'O', b'p', b'u', b's', 0, 0, 0, 1, 0xAA, b'.', b'm', b'p', b'3', 1, 0, 0, 1,
        0xBB,
    ];
    let header = parse(&mixed);
    assert_eq!(header.codec, None);
    assert!(!header.is_silence());
    let codecs: Vec<_> = header
        .tracks(&mixed)
        .map(|t| t.map(|t| (t.track_id, t.codec, t.data)))
        .collect();
    assert_eq!(
        codecs,
        vec![
            Ok((0, AudioFourCc::Opus, 10..11)),
            Ok((1, AudioFourCc::Mp3, 19..20))
        ]
    );
}

#[test]
fn multitrack_errors() {
    assert_eq!(
        AudioTagHeader::parse(&[0x95, 0x05]),
        Err(MediaError::NestedPacketType(5))
    );
    assert_eq!(
        AudioTagHeader::parse(&[0x95, 0x07]),
        Err(MediaError::NestedPacketType(7))
    );
    assert_eq!(
        AudioTagHeader::parse(&[0x95, 0xF1, b'O', b'p', b'u', b's', 0]),
        Err(MediaError::ReservedMultitrackType(15))
    );
    assert_eq!(
        AudioTagHeader::parse(&[0x95, 0x11, b'O', b'p', b'u', b's']),
        Err(MediaError::NoTracks)
    );
    assert_eq!(
        AudioTagHeader::parse(&[0x95, 0x11, b'O', b'p', b'u', b's', 4, 0, 1, 0, 9]),
        Err(MediaError::TrackOverrun {
            track_id: 4,
            size: 256,
            remaining: 1
        })
    );
    assert_eq!(
        AudioTagHeader::parse(&[0x95, 0x11, b'O', b'p', b'u', b's', 4, 0]),
        Err(MediaError::Truncated {
            field: "track size",
            offset: 7,
            needed: 3
        })
    );
}
