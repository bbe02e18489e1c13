//! Classifying real Enhanced RTMP FLV files written by ffmpeg 9 (from the PyPI package
//! imageio-ffmpeg), committed under tests/fixtures/media/ (23 KB together). Made with:
//!
//! ```text
//! F=$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
//! $F -f lavfi -i testsrc=size=64x64:rate=5 -f lavfi -i sine=frequency=440:sample_rate=48000 \
//!    -t 0.6 -c:v libx265 -x265-params log-level=none:keyint=2 -g 2 -c:a libopus -b:a 16k \
//!    -f flv hevc_opus.flv
//! $F -f lavfi -i testsrc=size=64x64:rate=5 -t 0.6 -c:v libaom-av1 -cpu-used 8 -g 2 -f flv av1.flv
//! $F -f lavfi -i testsrc=size=64x64:rate=5 -f lavfi -i sine=frequency=440:sample_rate=48000 \
//!    -t 0.6 -c:v libvpx-vp9 -g 2 -c:a flac -f flv vp9_flac.flv
//! ```

use bytes::Bytes;

use super::*;
use crate::flv::{FlvReader, FlvTag, FlvTagType};

fn tags(file: &'static [u8]) -> Vec<FlvTag> {
    let reader = FlvReader::new(Bytes::from_static(file)).expect("fixture header");
    reader.collect::<Result<_, _>>().expect("fixture tags")
}

/// One line per video tag: timestamp, packet type, codec, frame kind, composition time.
fn describe_video(tags: &[FlvTag]) -> Vec<String> {
    tags.iter()
        .filter(|t| t.tag_type == FlvTagType::Video)
        .map(|t| {
            let h = VideoTagHeader::parse(&t.data).expect("fixture video header");
            let fourcc = match h.codec {
                Some(VideoCodec::FourCc(fourcc)) => fourcc,
                other => panic!("expected a FourCC, got {other:?}"),
            };
            let kind = if h.is_keyframe() {
                "key"
            } else if h.is_sequence_header() {
                "config"
            } else if h.is_metadata() {
                "metadata"
            } else {
                "inter"
            };
            format!(
                "{} {:?} {:?} {} {:?}",
                t.timestamp.value(),
                h.packet_type,
                fourcc,
                kind,
                h.composition_time
            )
        })
        .collect()
}

/// (packet type, codec) of every audio tag, in order.
fn audio(tags: &[FlvTag]) -> Vec<(AudioPacketType, Option<AudioCodec>)> {
    tags.iter()
        .filter(|t| t.tag_type == FlvTagType::Audio)
        .map(|t| {
            let h = AudioTagHeader::parse(&t.data).expect("fixture audio header");
            assert!(h.enhanced && h.multitrack.is_none() && h.payload_offset == 5);
            (h.packet_type, h.codec)
        })
        .collect()
}

#[test]
fn hevc_and_opus_from_ffmpeg() {
    let tags = tags(include_bytes!("../../tests/fixtures/media/hevc_opus.flv"));
    assert_eq!(
        describe_video(&tags),
        [
            "0 SequenceStart Hvc1 config None",
            "0 Metadata Hvc1 metadata None",
            "0 CodedFrames Hvc1 key Some(400)",
            "200 CodedFrames Hvc1 key Some(600)",
            "400 CodedFrames Hvc1 inter Some(200)",
        ]
    );
    let audio = audio(&tags);
    let opus = Some(AudioCodec::FourCc(AudioFourCc::Opus));
    assert_eq!(audio[0], (AudioPacketType::SequenceStart, opus));
    assert_eq!(audio[1], (AudioPacketType::MultichannelConfig, opus));
    assert_eq!(audio.len(), 33);
    assert!(audio[2..]
        .iter()
        .all(|a| *a == (AudioPacketType::CodedFrames, opus)));
}

#[test]
fn av1_from_ffmpeg() {
    let tags = tags(include_bytes!("../../tests/fixtures/media/av1.flv"));
    // ffmpeg writes an empty AV1 sequence start before the real configuration record.
    assert_eq!(
        describe_video(&tags),
        [
            "0 SequenceStart Av01 config None",
            "0 SequenceStart Av01 config None",
            "0 Metadata Av01 metadata None",
            "0 CodedFrames Av01 key None",
            "200 CodedFrames Av01 inter None",
            "400 CodedFrames Av01 key None",
        ]
    );
    assert_eq!(tags[1].data.len(), 5);
}

#[test]
fn vp9_and_flac_from_ffmpeg() {
    let tags = tags(include_bytes!("../../tests/fixtures/media/vp9_flac.flv"));
    assert_eq!(
        describe_video(&tags),
        [
            "0 SequenceStart Vp09 config None",
            "0 Metadata Vp09 metadata None",
            "0 CodedFrames Vp09 key None",
            "200 CodedFrames Vp09 inter None",
            "400 CodedFrames Vp09 key None",
        ]
    );
    let audio = audio(&tags);
    let flac = Some(AudioCodec::FourCc(AudioFourCc::Flac));
    assert_eq!(audio.len(), 34);
    assert!(audio.iter().all(|(_, codec)| *codec == flac));
    let configs: Vec<usize> = audio
        .iter()
        .enumerate()
        .filter(|(_, a)| a.0 != AudioPacketType::CodedFrames)
        .map(|(i, _)| i)
        .collect();
    // ffmpeg repeats the FLAC configuration (with the final stream info) at the end.
    assert_eq!(configs, [0, 1, 31, 32]);
    assert_eq!(audio[31].0, AudioPacketType::SequenceStart);
    assert_eq!(audio[32].0, AudioPacketType::MultichannelConfig);
}
