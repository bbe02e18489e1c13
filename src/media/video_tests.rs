//! Video header tests with bytes built by hand from the legacy FLV spec and E-RTMP v2.

use super::*;
use crate::media::MultitrackType;

fn parse(body: &[u8]) -> VideoTagHeader {
    match VideoTagHeader::parse(body) {
        Ok(header) => header,
        Err(error) => panic!("{body:02x?} should parse: {error}"),
    }
}

fn fourcc(header: &VideoTagHeader) -> Option<VideoFourCc> {
    match header.codec {
        Some(VideoCodec::FourCc(fourcc)) => Some(fourcc),
        _ => None,
    }
}

#[test]
fn legacy_avc_sequence_header() {
    let header = parse(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64]);
    assert_eq!(
        header,
        VideoTagHeader {
            enhanced: false,
            frame_type: VideoFrameType::Key,
            codec: Some(VideoCodec::Legacy(7)),
            packet_type: VideoPacketType::SequenceStart,
            composition_time: Some(0),
            command: None,
            timestamp_offset_nanos: None,
            multitrack: None,
            payload_offset: 5,
        }
    );
    assert!(header.is_sequence_header());
    assert!(!header.is_keyframe());
    assert_eq!(
        header.codec.and_then(VideoCodec::fourcc_equivalent),
        Some(VideoFourCc::Avc1)
    );
}

#[test]
fn legacy_avc_frames_and_end_of_sequence() {
    let key = parse(&[0x17, 0x01, 0x00, 0x00, 0x21, 0x00, 0x00]);
    assert!(key.is_keyframe());
    assert_eq!((key.composition_time, key.payload_offset), (Some(0x21), 5));

    let inter = parse(&[0x27, 0x01, 0xFF, 0xFF, 0xF6]);
    assert_eq!(inter.frame_type, VideoFrameType::Inter);
    assert_eq!(inter.composition_time, Some(-10));
    assert!(!inter.is_keyframe());

    let end = parse(&[0x17, 0x02, 0x00, 0x00, 0x00]);
    assert!(end.is_sequence_end());
    assert!(!end.is_keyframe() && !end.is_sequence_header());
}

#[test]
fn legacy_hevc_codec_id_twelve_uses_avc_layout() {
    let header = parse(&[0x1C, 0x00, 0x00, 0x00, 0x00, 0x01]);
    assert_eq!(header.codec, Some(VideoCodec::Legacy(12)));
    assert_eq!(
        header.codec.and_then(VideoCodec::fourcc_equivalent),
        Some(VideoFourCc::Hvc1)
    );
    assert!(header.is_sequence_header());
    assert_eq!(header.payload_offset, 5);
    assert!(parse(&[0x1C, 0x01, 0x00, 0x00, 0x00]).is_keyframe());
}

#[test]
fn legacy_non_avc_codecs_have_no_packet_type() {
    let h263 = parse(&[0x22, 0x00, 0x84]);
    assert_eq!(h263.codec, Some(VideoCodec::Legacy(2)));
    assert_eq!(h263.packet_type, VideoPacketType::CodedFrames);
    assert_eq!((h263.composition_time, h263.payload_offset), (None, 1));
    assert_eq!(parse(&[0x32]).frame_type, VideoFrameType::Disposable);
    assert!(parse(&[0x14, 0x00]).is_keyframe()); // VP6 key frame
    assert_eq!(
        parse(&[0x14]).codec.and_then(VideoCodec::fourcc_equivalent),
        None
    );
}

#[test]
fn legacy_command_frame() {
    let header = parse(&[0x57, 0x01]);
    assert_eq!(header.command, Some(VideoCommand::EndSeek));
    assert_eq!(header.frame_type, VideoFrameType::Command);
    assert!(header.is_command() && !header.is_keyframe() && !header.is_sequence_header());
    assert_eq!(header.payload_offset, 2);
    assert_eq!(parse(&[0x57, 0x00]).command, Some(VideoCommand::StartSeek));
    assert_eq!(parse(&[0x52, 0x09]).command, Some(VideoCommand::Other(9)));
}

#[test]
fn legacy_errors() {
    assert_eq!(VideoTagHeader::parse(&[]), Err(MediaError::EmptyVideoBody));
    assert_eq!(
        VideoTagHeader::parse(&[0x07]),
        Err(MediaError::ReservedVideoFrameType(0))
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x67]),
        Err(MediaError::ReservedVideoFrameType(6))
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x17, 0x03, 0, 0, 0]),
        Err(MediaError::ReservedAvcPacketType(3))
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x17, 0x01, 0x00]),
        Err(MediaError::Truncated {
            field: "composition time",
            offset: 2,
            needed: 3
        })
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x17]),
        Err(MediaError::Truncated {
            field: "AVC packet type",
            offset: 1,
            needed: 1
        })
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x57]),
        Err(MediaError::Truncated {
            field: "video command",
            offset: 1,
            needed: 1
        })
    );
}

#[test]
fn enhanced_sequence_start_for_every_fourcc() {
    for (bytes, expected) in [
        (*b"avc1", VideoFourCc::Avc1),
        (*b"hvc1", VideoFourCc::Hvc1),
        (*b"av01", VideoFourCc::Av01),
        (*b"vp09", VideoFourCc::Vp09),
        (*b"vp08", VideoFourCc::Vp08),
        (*b"xyzw", VideoFourCc::Other(*b"xyzw")),
    ] {
        let mut body = vec![0x90];
        body.extend_from_slice(&bytes);
        body.push(0x01);
        let header = parse(&body);
        assert!(header.enhanced);
        assert_eq!(fourcc(&header), Some(expected));
        assert_eq!(header.packet_type, VideoPacketType::SequenceStart);
        assert_eq!((header.composition_time, header.payload_offset), (None, 5));
        assert!(header.is_sequence_header() && !header.is_keyframe());
    }
}

#[test]
fn enhanced_coded_frames_composition_time_only_for_avc_and_hevc() {
    let hevc = parse(&[0x91, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x28, 0xAB]);
    assert_eq!((hevc.composition_time, hevc.payload_offset), (Some(40), 8));
    assert!(hevc.is_keyframe());

    let avc = parse(&[0xA1, b'a', b'v', b'c', b'1', 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        (avc.frame_type, avc.composition_time),
        (VideoFrameType::Inter, Some(-1))
    );

    let av1 = parse(&[0x91, b'a', b'v', b'0', b'1', 0x12, 0x00]);
    assert_eq!((av1.composition_time, av1.payload_offset), (None, 5));
    assert!(av1.is_keyframe());

    assert_eq!(
        VideoTagHeader::parse(&[0x91, b'h', b'v', b'c', b'1', 0x00]),
        Err(MediaError::Truncated {
            field: "composition time",
            offset: 5,
            needed: 3
        })
    );
}

#[test]
fn enhanced_coded_frames_x_has_implicit_zero_composition_time() {
    let header = parse(&[0xA3, b'a', b'v', b'c', b'1', 0x00, 0x00, 0x00, 0x02]);
    assert_eq!(header.packet_type, VideoPacketType::CodedFramesX);
    assert_eq!(
        (header.composition_time, header.payload_offset),
        (Some(0), 5)
    );
    let key = parse(&[0x93, b'v', b'p', b'0', b'9']);
    assert!(key.is_keyframe());
    assert_eq!(key.composition_time, None);
}

#[test]
fn enhanced_other_packet_and_frame_types() {
    let end = parse(&[0x92, b'v', b'p', b'0', b'9']);
    assert!(end.is_sequence_end() && !end.is_sequence_header());

    let ts = parse(&[0x95, b'a', b'v', b'0', b'1', 0x81]);
    assert_eq!(ts.packet_type, VideoPacketType::Mpeg2TsSequenceStart);
    assert!(ts.is_sequence_header());

    let generated = parse(&[0xC1, b'v', b'p', b'0', b'8']);
    assert_eq!(generated.frame_type, VideoFrameType::GeneratedKey);
    assert!(generated.is_keyframe());

    assert_eq!(
        parse(&[0xB1, b'v', b'p', b'0', b'8']).frame_type,
        VideoFrameType::Disposable
    );
}

#[test]
fn enhanced_metadata_ignores_frame_type() {
    // ffmpeg writes metadata with frame type 5 (command); that is not a command frame.
    let header = parse(&[0xD4, b'h', b'v', b'c', b'1', 0x02, 0x00, 0x09]);
    assert!(header.is_metadata() && !header.is_command() && !header.is_keyframe());
    assert_eq!(fourcc(&header), Some(VideoFourCc::Hvc1));
    assert_eq!(header.payload_offset, 5);
    // Frame type 0 is reserved, but ignored for metadata.
    assert!(parse(&[0x84, b'a', b'v', b'0', b'1']).is_metadata());
}

#[test]
fn enhanced_command_frame_has_no_fourcc() {
    let header = parse(&[0xD1, 0x00]);
    assert_eq!(header.command, Some(VideoCommand::StartSeek));
    assert_eq!((header.codec, header.payload_offset), (None, 2));
    assert!(header.is_command() && !header.is_keyframe());
    // A command frame whose packet type is SequenceStart is still a command, not config.
    assert!(!parse(&[0xD0, 0x01]).is_sequence_header());
}

#[test]
fn enhanced_errors() {
    assert_eq!(
        VideoTagHeader::parse(&[0x98, b'a', b'v', b'c', b'1']),
        Err(MediaError::ReservedVideoPacketType(8))
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x81, b'a', b'v', b'c', b'1']),
        Err(MediaError::ReservedVideoFrameType(0))
    );
    assert_eq!(
        VideoTagHeader::parse(&[0xF1, b'a', b'v', b'c', b'1']),
        Err(MediaError::ReservedVideoFrameType(7))
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x91, b'a', b'v']),
        Err(MediaError::Truncated {
            field: "video FourCC",
            offset: 1,
            needed: 4
        })
    );
}

#[test]
fn mod_ex_timestamp_offset_is_skipped_to_the_real_packet_type() {
    // ModEx, size 3 (byte 2), 500_000 ns, then mod-ex type 0 | CodedFrames.
    let body = [
        0x97, 0x02, 0x07, 0xA1, 0x20, 0x01, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x10, 0xEE,
    ];
    let header = parse(&body);
    assert_eq!(header.packet_type, VideoPacketType::CodedFrames);
    assert_eq!(header.timestamp_offset_nanos, Some(500_000));
    assert_eq!(fourcc(&header), Some(VideoFourCc::Hvc1));
    assert_eq!(
        (header.composition_time, header.payload_offset),
        (Some(16), 13)
    );
    assert!(header.is_keyframe());
}

#[test]
fn mod_ex_chains_and_unknown_mod_ex_types() {
    // Two prefixes: an unknown type 5 (1 byte), then TimestampOffsetNano (3 bytes).
    let body = [
        0x97, 0x00, 0xAA, 0x57, 0x02, 0x00, 0x00, 0x07, 0x00, b'a', b'v', b'0', b'1',
    ];
    let header = parse(&body);
    assert_eq!(header.packet_type, VideoPacketType::SequenceStart);
    assert_eq!(header.timestamp_offset_nanos, Some(7));
    assert_eq!(header.payload_offset, 13);
    // An unknown mod-ex type does not set the offset.
    let header = parse(&[0x97, 0x02, 1, 2, 3, 0x31, b'a', b'v', b'0', b'1']);
    assert_eq!(header.timestamp_offset_nanos, None);
    assert_eq!(
        VideoTagHeader::parse(&[0x97, 0x05, 1, 2]),
        Err(MediaError::Truncated {
            field: "ModEx data",
            offset: 2,
            needed: 6
        })
    );
    assert_eq!(
        VideoTagHeader::parse(&[0x97, 0x00, 1]),
        Err(MediaError::Truncated {
            field: "ModEx type and packet type",
            offset: 3,
            needed: 1
        })
    );
}

#[test]
fn multitrack_one_track() {
    // Multitrack, OneTrack | CodedFrames, avc1, track 3, CTS 5, data.
    let body = [0x96, 0x01, b'a', b'v', b'c', b'1', 3, 0, 0, 5, 0xD0, 0xD1];
    let header = parse(&body);
    assert_eq!(fourcc(&header), Some(VideoFourCc::Avc1));
    assert_eq!(header.packet_type, VideoPacketType::CodedFrames);
    assert_eq!(
        header.multitrack,
        Some(Multitrack {
            multitrack_type: MultitrackType::OneTrack,
            track_count: 1,
            tracks_offset: 6
        })
    );
    assert!(header.is_keyframe());
    assert_eq!(header.composition_time, None);
    let tracks: Vec<_> = header.tracks(&body).collect();
    assert_eq!(
        tracks,
        vec![Ok(VideoTrack {
            track_id: 3,
            codec: VideoFourCc::Avc1,
            packet_type: VideoPacketType::CodedFrames,
            composition_time: Some(5),
            data: 10..12,
        })]
    );
}

#[test]
fn multitrack_many_tracks_one_codec() {
    // ManyTracks | CodedFrames, hvc1; track 0: 5 bytes (CTS 1 + 2 data), track 1: 3 bytes.
    let body = [
        0xA6, 0x11, b'h', b'v', b'c', b'1', 0, 0, 0, 5, 0, 0, 1, 0xA0, 0xA1, 1, 0, 0, 3, 0xFF,
        0xFF, 0xFE,
    ];
    let header = parse(&body);
    assert_eq!(header.frame_type, VideoFrameType::Inter);
    assert_eq!(header.multitrack.map(|m| m.track_count), Some(2));
    let tracks: Vec<_> = header.tracks(&body).map(Result::unwrap).collect();
    assert_eq!(
        (tracks[0].track_id, tracks[0].composition_time),
        (0, Some(1))
    );
    assert_eq!(tracks[0].data, 13..15);
    assert_eq!(
        (tracks[1].track_id, tracks[1].composition_time),
        (1, Some(-2))
    );
    assert_eq!(tracks[1].data, 22..22);
}

#[test]
fn multitrack_many_tracks_many_codecs() {
    // ManyTracksManyCodecs | SequenceStart; av01 track 0 (2 bytes), hvc1 track 1 (1 byte).
    let body = [
        0x96, 0x20, b'a', b'v', b'0', b'1', 0, 0, 0, 2, 0xA0, 0xA1, b'h', b'v', b'c', b'1', 1, 0,
        0, 1, 0xB0,
    ];
    let header = parse(&body);
    assert_eq!(header.codec, None);
    assert!(header.is_sequence_header());
    assert_eq!(header.payload_offset, 2);
    let tracks: Vec<_> = header.tracks(&body).map(Result::unwrap).collect();
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (tracks[0].codec, tracks[0].data.clone()),
        (VideoFourCc::Av01, 10..12)
    );
    assert_eq!(
        (tracks[1].codec, tracks[1].data.clone()),
        (VideoFourCc::Hvc1, 20..21)
    );
    assert!(tracks
        .iter()
        .all(|t| t.packet_type == VideoPacketType::SequenceStart));
}

#[test]
fn single_track_messages_have_no_tracks() {
    let body = [0x91, b'a', b'v', b'0', b'1', 0x12];
    assert_eq!(parse(&body).tracks(&body).count(), 0);
}

#[test]
fn multitrack_errors() {
    let cases: [(&[u8], MediaError); 7] = [
        (&[0x96, 0x06], MediaError::NestedPacketType(6)),
        (&[0x96, 0x07], MediaError::NestedPacketType(7)),
        (
            &[0x96, 0x31, b'a', b'v', b'0', b'1', 0],
            MediaError::ReservedMultitrackType(3),
        ),
        (&[0x96, 0x10, b'a', b'v', b'0', b'1'], MediaError::NoTracks),
        (
            &[0x96, 0x11, b'a', b'v', b'c', b'1', 0, 0, 0, 9, 1, 2],
            MediaError::TrackOverrun {
                track_id: 0,
                size: 9,
                remaining: 2,
            },
        ),
        (
            // The track is 2 bytes; its 3-byte composition time must not read past it.
            &[
                0x96, 0x11, b'h', b'v', b'c', b'1', 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0,
            ],
            MediaError::Truncated {
                field: "composition time",
                offset: 10,
                needed: 3,
            },
        ),
        (
            &[0x96, 0x20, b'a', b'v'],
            MediaError::Truncated {
                field: "track FourCC",
                offset: 2,
                needed: 4,
            },
        ),
    ];
    for (body, error) in cases {
        assert_eq!(VideoTagHeader::parse(body), Err(error), "{body:02x?}");
    }
}
