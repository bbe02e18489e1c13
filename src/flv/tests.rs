use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::media::{AudioTagHeader, VideoTagHeader};

/// A hand-built file: header (audio + video), PreviousTagSize0, one video tag with an
/// extended timestamp, one script tag.
const SMALL_FILE: &[u8] = &[
    b'F', b'L', b'V', 0x01, 0x05, 0x00, 0x00, 0x00, 0x09, // header
    0x00, 0x00, 0x00, 0x00, // PreviousTagSize0
    0x09, 0x00, 0x00, 0x02, 0x34, 0x56, 0x78, 0x12, 0x00, 0x00, 0x00, // video, 2 bytes
    0x17, 0x02, // data
    0x00, 0x00, 0x00, 0x0D, // 11 + 2
    0x12, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // script, 1 byte
    0x05, // data (AMF0 null)
    0x00, 0x00, 0x00, 0x0C, // 11 + 1
];

fn small_file_tags() -> Vec<FlvTag> {
    vec![
        FlvTag {
            tag_type: FlvTagType::Video,
            timestamp: RtmpTimestamp::new(0x1234_5678),
            data: Bytes::from_static(&[0x17, 0x02]),
        },
        FlvTag {
            tag_type: FlvTagType::Script,
            timestamp: RtmpTimestamp::ZERO,
            data: Bytes::from_static(&[0x05]),
        },
    ]
}

fn read_all(file: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    FlvReader::new(Bytes::copy_from_slice(file))?.collect()
}

#[test]
fn reads_hand_built_file() {
    let reader = FlvReader::new(Bytes::from_static(SMALL_FILE)).unwrap();
    assert_eq!(
        *reader.header(),
        FlvHeader {
            version: 1,
            has_audio: true,
            has_video: true,
            data_offset: 9
        }
    );
    assert_eq!(reader.collect::<Result<Vec<_>, _>>(), Ok(small_file_tags()));
}

#[test]
fn writes_hand_built_file_exactly() {
    let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
    for tag in small_file_tags() {
        writer.write_tag(&tag).unwrap();
    }
    assert_eq!(writer.into_inner(), SMALL_FILE);
}

#[test]
fn writes_into_bytes_mut_and_header_flags() {
    let mut writer = FlvWriter::new(BytesMut::new().writer(), false, true).unwrap();
    writer.flush().unwrap();
    let buffer = writer.into_inner().into_inner();
    assert_eq!(&buffer[..], b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00");
    let audio_only = FlvWriter::new(Vec::new(), true, false)
        .unwrap()
        .into_inner();
    assert_eq!(audio_only[4], 0x04);
}

#[test]
fn writer_rejects_oversized_tag() {
    let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
    let tag = FlvTag {
        tag_type: FlvTagType::Video,
        timestamp: RtmpTimestamp::ZERO,
        data: Bytes::from(vec![0u8; MAX_TAG_DATA_SIZE + 1]),
    };
    let error = writer.write_tag(&tag).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(writer.into_inner().len(), FLV_HEADER_SIZE + 4);
}

#[test]
fn data_is_a_slice_of_the_file_not_a_copy() {
    let file = Bytes::from_static(SMALL_FILE);
    let tag = FlvReader::new(file.clone())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(tag.data.as_ptr(), file[24..].as_ptr());
}

/// A source that gives at most three bytes per read, and fails with `failure` at its end
/// instead of ending when that is set: a pipe or a socket, not a file.
struct Trickle {
    bytes: &'static [u8],
    failure: Option<std::io::ErrorKind>,
}

impl std::io::Read for Trickle {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.bytes.is_empty() {
            return match self.failure {
                Some(kind) => Err(std::io::Error::new(kind, "source failed")),
                None => Ok(0),
            };
        }
        let count = out.len().min(3).min(self.bytes.len());
        let (now, later) = self.bytes.split_at(count);
        out[..count].copy_from_slice(now);
        self.bytes = later;
        Ok(count)
    }
}

#[test]
fn from_reader_reads_the_source_to_its_end_in_any_pieces() {
    let reader = FlvReader::from_reader(Trickle { bytes: SMALL_FILE, failure: None }).unwrap();
    assert_eq!(reader.header().data_offset, 9);
    assert_eq!(reader.collect::<Result<Vec<_>, _>>(), Ok(small_file_tags()));
}

#[test]
fn from_reader_errors_say_whether_the_source_or_the_file_was_wrong() {
    let failing = Trickle { bytes: SMALL_FILE, failure: Some(std::io::ErrorKind::ConnectionReset) };
    let Err(error) = FlvReader::from_reader(failing) else { panic!("read a failing source") };
    assert_eq!((error.kind(), error.to_string()), (std::io::ErrorKind::ConnectionReset, "source failed".to_string()));

    let not_flv = Trickle { bytes: b"FLX\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", failure: None };
    let Err(error) = FlvReader::from_reader(not_flv) else { panic!("took FLX for FLV") };
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    let cause = error.get_ref().and_then(|inner| inner.downcast_ref::<FlvError>());
    assert_eq!(cause, Some(&FlvError::BadSignature(*b"FLX")));
}

#[test]
fn header_errors() {
    assert_eq!(read_all(b"FLV\x01\x05"), Err(FlvError::TruncatedHeader(5)));
    assert_eq!(
        read_all(b"FLX\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"),
        Err(FlvError::BadSignature(*b"FLX"))
    );
    assert_eq!(
        read_all(b"FLV\x02\x05\x00\x00\x00\x09\x00\x00\x00\x00"),
        Err(FlvError::UnsupportedVersion(2))
    );
    assert_eq!(
        read_all(b"FLV\x01\x05\x00\x00\x00\x08\x00"),
        Err(FlvError::BadDataOffset(8))
    );
    assert_eq!(
        read_all(b"FLV\x01\x05\xFF\xFF\xFF\xFF\x00\x00\x00\x00"),
        Err(FlvError::BadDataOffset(u32::MAX))
    );
}

#[test]
fn data_offset_past_nine_skips_extra_header_bytes() {
    let file = b"FLV\x01\x05\x00\x00\x00\x0B\xAA\xBB\x00\x00\x00\x00";
    let reader = FlvReader::new(Bytes::from_static(file)).unwrap();
    assert_eq!(reader.header().data_offset, 11);
    assert_eq!(reader.count(), 0);
}

#[test]
fn header_only_file_has_no_tags_and_final_size_is_optional() {
    assert_eq!(read_all(&SMALL_FILE[..13]), Ok(vec![]));
    // Cut right after the last tag's data, before its PreviousTagSize: nothing is lost.
    assert_eq!(
        read_all(&SMALL_FILE[..SMALL_FILE.len() - 4]),
        Ok(small_file_tags())
    );
}

#[test]
fn tag_stream_errors() {
    let mut first_tag = SMALL_FILE[..30].to_vec();
    assert_eq!(
        read_all(&first_tag[..20]),
        Err(FlvError::Truncated {
            field: "tag header",
            offset: 13,
            needed: 11
        })
    );
    assert_eq!(
        read_all(&first_tag[..25]),
        Err(FlvError::Truncated {
            field: "tag data",
            offset: 24,
            needed: 2
        })
    );
    assert_eq!(
        read_all(&first_tag[..28]),
        Err(FlvError::Truncated {
            field: "PreviousTagSize",
            offset: 26,
            needed: 4
        })
    );
    first_tag[29] = 0x0E;
    assert_eq!(
        read_all(&first_tag),
        Err(FlvError::PreviousTagSizeMismatch {
            offset: 26,
            expected: 13,
            found: 14
        })
    );
    let mut bad_type = SMALL_FILE.to_vec();
    bad_type[13] = 0x0A;
    assert_eq!(
        read_all(&bad_type),
        Err(FlvError::UnknownTagType {
            offset: 13,
            tag_type: 10
        })
    );
    let mut filtered = SMALL_FILE.to_vec();
    filtered[13] = 0x29;
    assert_eq!(
        read_all(&filtered),
        Err(FlvError::FilteredTag { offset: 13 })
    );
    let mut bad_first_size = SMALL_FILE.to_vec();
    bad_first_size[12] = 1;
    assert_eq!(
        read_all(&bad_first_size),
        Err(FlvError::PreviousTagSizeMismatch {
            offset: 9,
            expected: 0,
            found: 1
        })
    );
}

#[test]
fn iteration_stops_after_an_error() {
    let mut reader = FlvReader::new(Bytes::copy_from_slice(&SMALL_FILE[..20])).unwrap();
    assert!(matches!(
        reader.next(),
        Some(Err(FlvError::Truncated { .. }))
    ));
    assert_eq!(reader.next(), None);
}

#[test]
fn converts_to_and_from_messages() {
    let tag = small_file_tags().remove(0);
    let message = tag.to_message(7);
    assert_eq!(
        message,
        MessagePayload {
            timestamp: RtmpTimestamp::new(0x1234_5678),
            type_id: 9,
            message_stream_id: 7,
            data: Bytes::from_static(&[0x17, 0x02]),
        }
    );
    assert_eq!(FlvTag::from_message(&message), Ok(tag));
    let audio = MessagePayload {
        type_id: 8,
        ..message.clone()
    };
    assert_eq!(
        FlvTag::from_message(&audio).map(|t| t.tag_type),
        Ok(FlvTagType::Audio)
    );
    let data = MessagePayload {
        type_id: 18,
        ..message.clone()
    };
    assert_eq!(
        FlvTag::from_message(&data).map(|t| t.tag_type),
        Ok(FlvTagType::Script)
    );
    let command = MessagePayload {
        type_id: 20,
        ..message
    };
    assert_eq!(
        FlvTag::from_message(&command),
        Err(FlvError::NotAnFlvMessage(20))
    );
}

/// Reads a one-second H.264/AAC file made by the system ffmpeg, classifies every tag,
/// and checks that writing the tags back gives the same bytes.
#[test]
fn reads_real_ffmpeg_file() {
    let directory = std::env::temp_dir().join(format!("rtmp-edge-flv-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("one-second.flv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "1", "-c:v", "libx264", "-g", "5", "-c:a", "aac", "-f", "flv",
        ])
        .arg(&path)
        .status();
    let status = match status {
        Ok(status) => status,
        Err(error) => panic!(
            "this test needs `ffmpeg` (with libx264 and aac) on PATH to make a real FLV file: {error}"
        ),
    };
    assert!(
        status.success(),
        "ffmpeg failed to write {}",
        path.display()
    );
    let file = Bytes::from(std::fs::read(&path).unwrap());
    let _ = std::fs::remove_dir_all(&directory);

    let reader = FlvReader::new(file.clone()).unwrap();
    assert_eq!(
        *reader.header(),
        FlvHeader {
            version: 1,
            has_audio: true,
            has_video: true,
            data_offset: 9
        }
    );
    let tags: Vec<FlvTag> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(tags[0].tag_type, FlvTagType::Script);
    assert_eq!(&tags[0].data[..13], b"\x02\x00\x0AonMetaData");

    let video: Vec<VideoTagHeader> = tags
        .iter()
        .filter(|t| t.tag_type == FlvTagType::Video)
        .map(|t| VideoTagHeader::parse(&t.data).unwrap())
        .collect();
    assert!(video[0].is_sequence_header());
    assert_eq!(video.iter().filter(|v| v.is_sequence_header()).count(), 1);
    assert_eq!(
        video
            .iter()
            .filter(|v| !v.is_sequence_header() && !v.is_sequence_end())
            .count(),
        10
    );
    // -g 5 at 10 fps: key frames at 0 and 500 ms.
    let keyframe_count = video.iter().filter(|v| v.is_keyframe()).count();
    assert_eq!(keyframe_count, 2);
    assert!(video[1].is_keyframe());

    let audio: Vec<AudioTagHeader> = tags
        .iter()
        .filter(|t| t.tag_type == FlvTagType::Audio)
        .map(|t| AudioTagHeader::parse(&t.data).unwrap())
        .collect();
    assert!(audio[0].is_sequence_header());
    assert_eq!(audio.iter().filter(|a| a.is_sequence_header()).count(), 1);
    assert!(
        audio.len() > 40,
        "1 s of 44.1 kHz AAC is ~44 frames, got {}",
        audio.len()
    );

    let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
    for tag in &tags {
        writer.write_tag(tag).unwrap();
    }
    assert_eq!(writer.into_inner(), &file[..]);
}

fn arbitrary_tag() -> impl Strategy<Value = FlvTag> {
    (
        prop_oneof![
            Just(FlvTagType::Audio),
            Just(FlvTagType::Video),
            Just(FlvTagType::Script)
        ],
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(tag_type, timestamp, data)| FlvTag {
            tag_type,
            timestamp: RtmpTimestamp::new(timestamp),
            data: Bytes::from(data),
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(reader) = FlvReader::new(Bytes::from(bytes)) {
            // Every tag consumes at least 15 bytes, so this ends; bound it anyway.
            for tag in reader.take(100) {
                let _ = tag;
            }
        }
    }

    #[test]
    fn arbitrary_tags_round_trip(tags in proptest::collection::vec(arbitrary_tag(), 0..8)) {
        let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
        for tag in &tags {
            writer.write_tag(tag).unwrap();
        }
        let read = read_all(&writer.into_inner());
        prop_assert_eq!(read, Ok(tags));
    }

    #[test]
    fn mutated_files_never_panic(
        tags in proptest::collection::vec(arbitrary_tag(), 1..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
        for tag in &tags {
            writer.write_tag(tag).unwrap();
        }
        let mut file = writer.into_inner();
        for (index, value) in flips {
            let len = file.len();
            file[index % len] = value;
        }
        let cut_at = cut % (file.len() + 1);
        let _ = read_all(&file[..cut_at]);
    }
}
