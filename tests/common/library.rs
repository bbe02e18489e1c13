//! Checks shared by the tests of the library's client side (tests/blocking_client.rs and
//! tests/examples.rs): FLV files in and out, and exact packet comparisons.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use rtmp_edge::flv::{FlvReader, FlvTag, FlvWriter};
use rtmp_edge::relay::RelayHandle;

use super::interop::{check_output, ffmpeg_player, live_url, stop_player};
use super::{assert_contiguous_run, eventually, fixture, fixture_packets, require_program, tail, Packet, TempDir};

/// Every packet equal: hash, size, keyframe flag and dts, in order.
pub fn assert_same_packets(expected: &HashMap<String, Vec<Packet>>, got: &HashMap<String, Vec<Packet>>, label: &str) {
    for codec_type in ["video", "audio"] {
        let (expected, got) = (&expected[codec_type], got.get(codec_type).cloned().unwrap_or_default());
        assert_eq!(got.len(), expected.len(), "{label}: {codec_type} packet count");
        for (index, (e, g)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(g, e, "{label}: {codec_type} packet #{index}");
        }
    }
}

/// Writes `tags` as an FLV file (audio and video flags set).
pub fn write_flv(tags: &[FlvTag], path: &Path) {
    let mut writer = FlvWriter::new(BufWriter::new(File::create(path).unwrap()), true, true).unwrap();
    for tag in tags {
        writer.write_tag(tag).unwrap();
    }
    writer.flush().unwrap();
}

/// The tags of a fixture FLV file.
pub fn fixture_tags(name: &str) -> Vec<FlvTag> {
    FlvReader::open(fixture(name)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// An ffmpeg player on `relay`'s `live/NAME`, playing before `publish` runs; `publish`
/// must publish fixture `name` there and return when done. The player's file must hold
/// every packet of the fixture, from its first keyframe.
///
/// Players stay connected when a publisher leaves, so the relay is then shut down: its
/// `NetStream.Play.Stop` ends ffmpeg by itself. A signal would not do: ffmpeg 5.1 blocked
/// in an RTMP read ignores the first one, and the second exits without writing out what
/// its muxer holds (all of it, when the publisher sent faster than real time).
pub fn ffmpeg_records_what_is_published(relay: RelayHandle, fixture_name: &str, dir: &TempDir, publish: impl FnOnce(&str)) {
    let ffmpeg = require_program("ffmpeg");
    let target = live_url(relay.local_addr(), "s");
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &target, &out, dir, "ffmpeg-player", &[]);
    assert!(
        eventually(Duration::from_secs(10), || relay.stats().players == 1),
        "ffmpeg never started playing:\n{}",
        tail(&player_log)
    );
    publish(&target);
    relay.shutdown().unwrap();
    let interrupted = stop_player(&mut player, Duration::from_secs(10));
    assert!(!interrupted, "ffmpeg did not end at NetStream.Play.Stop:\n{}", tail(&player_log));
    let input = fixture_packets(fixture_name);
    let output = check_output(&input, &out, &player_log, 1.0, interrupted, "ffmpeg player");
    assert_eq!(assert_contiguous_run(&input, &output, "video", 1, "ffmpeg player"), 0, "from the first keyframe");
}
