//! Enhanced RTMP end to end through the relay, with the current ffmpeg that the PyPI
//! package imageio-ffmpeg ships (Debian's ffmpeg 5.1 knows no E-RTMP).
//!
//! For each stream in tests/fixtures/ertmp/: that ffmpeg publishes the file in real time
//! (`-re -c copy -f flv`) to an in-process relay; once a bit more than a second has gone
//! out, a second ffmpeg plays the stream and writes `framemd5` (codec, extradata hash and
//! one MD5 per packet). The test then checks, per media type, against the `framemd5` of
//! the file as that ffmpeg remuxes it to FLV (what the publisher actually sends):
//! - the player decoded the same codec with the same extradata (so it got the sequence
//!   header although it joined late);
//! - its packets are a contiguous run of the file's packets, up to the end of the file;
//! - its video starts at a keyframe that is not the first one (it joined mid-stream).
//!
//! The keyframe flags come from the file's own FLV tags read with `rtmp_edge::flv` and
//! `rtmp_edge::media`, since `framemd5` does not print packet flags.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use rtmp_edge::flv::{FlvReader, FlvTagType};
use rtmp_edge::media::VideoTagHeader;
use rtmp_edge::relay::{spawn, Config};

/// How much of the stream the publisher sends before the player joins (µs of media).
const JOIN_AFTER_US: u64 = 1_400_000;
/// Longest any one ffmpeg may run.
const DEADLINE: Duration = Duration::from_secs(30);

/// Waits for the child to exit on its own; fails the test past the deadline.
fn wait_success(child: &mut ChildGuard) {
    match child.wait_timeout(DEADLINE) {
        Some(status) => assert!(status.success(), "{} exited with {status}", child.label),
        None => panic!("{} still running after {DEADLINE:?}", child.label),
    }
}

/// ffmpeg with `args`, its errors on the test's stderr.
fn spawn_ffmpeg(ffmpeg: &Path, args: &[&str], stdout: Stdio, label: &str) -> ChildGuard {
    let mut command = Command::new(ffmpeg);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::inherit());
    ChildGuard::spawn(command, label)
}

/// A stream in tests/fixtures/ertmp/.
fn ertmp_fixture(name: &str) -> PathBuf {
    fixture(&format!("ertmp/{name}"))
}

/// One stream of a `framemd5` listing.
#[derive(Debug, Default, Clone)]
struct HashedStream {
    media_type: String,
    codec: String,
    /// `size, md5` of the codec extradata, when there is any.
    extradata: Option<String>,
    /// `size, md5` of each packet, in order.
    packets: Vec<String>,
}

/// Parses `framemd5` (version 2) output into streams, by index.
fn parse_framemd5(text: &str) -> Vec<HashedStream> {
    let mut streams: Vec<HashedStream> = Vec::new();
    fn slot<'a>(streams: &'a mut Vec<HashedStream>, index: &str) -> &'a mut HashedStream {
        let index: usize = index.trim().parse().unwrap_or_else(|_| panic!("bad stream index {index:?}"));
        if streams.len() <= index {
            streams.resize(index + 1, HashedStream::default());
        }
        &mut streams[index]
    }
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#extradata ") {
            let (index, value) = rest.split_once(',').expect("extradata line");
            let value: Vec<&str> = value.split(',').map(str::trim).collect();
            slot(&mut streams, index).extradata = Some(value.join(", "));
        } else if let Some(rest) = line.strip_prefix("#media_type ") {
            let (index, value) = rest.split_once(':').expect("media_type line");
            slot(&mut streams, index).media_type = value.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("#codec_id ") {
            let (index, value) = rest.split_once(':').expect("codec_id line");
            slot(&mut streams, index).codec = value.trim().to_string();
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            assert_eq!(fields.len(), 6, "packet line {line:?}");
            slot(&mut streams, fields[0]).packets.push(format!("{}, {}", fields[4], fields[5]));
        }
    }
    streams
}

/// The streams of one media type, in stream-index order (one per track).
fn streams_of<'a>(streams: &'a [HashedStream], media_type: &str) -> Vec<&'a HashedStream> {
    streams.iter().filter(|s| s.media_type == media_type).collect()
}

/// Per video track (by track id), whether each coded frame of an FLV file is a keyframe.
/// Sequence headers, metadata and command frames are left out, as ffmpeg leaves them out
/// of its packets. Single-track messages are track 0.
fn video_keyframes(path: &Path) -> Vec<Vec<bool>> {
    let file = Bytes::from(std::fs::read(path).expect("read fixture"));
    let mut tracks: Vec<Vec<bool>> = Vec::new();
    for tag in FlvReader::new(file).expect("FLV header") {
        let tag = tag.expect("FLV tag");
        if tag.tag_type != FlvTagType::Video {
            continue;
        }
        let header = VideoTagHeader::parse(&tag.data).expect("video tag header");
        if header.is_sequence_header() || header.is_metadata() || header.is_command() || header.is_sequence_end() {
            continue;
        }
        let ids: Vec<u8> = if header.multitrack.is_some() {
            header.tracks(&tag.data).map(|track| track.expect("track").track_id).collect()
        } else {
            vec![0]
        };
        for id in ids {
            let id = usize::from(id);
            if tracks.len() <= id {
                tracks.resize(id + 1, Vec::new());
            }
            tracks[id].push(header.is_keyframe());
        }
    }
    tracks
}

/// Whether the file's first video tag uses the Enhanced RTMP header (IsExHeader bit).
fn first_video_tag_is_enhanced(path: &Path) -> bool {
    let file = Bytes::from(std::fs::read(path).expect("read fixture"));
    for tag in FlvReader::new(file).expect("FLV header") {
        let tag = tag.expect("FLV tag");
        if tag.tag_type == FlvTagType::Video {
            return VideoTagHeader::parse(&tag.data).expect("video tag header").enhanced;
        }
    }
    panic!("no video tag in {}", path.display());
}

/// Where `run` sits inside `all` as a contiguous slice, if it does.
fn find_run(all: &[String], run: &[String]) -> Option<usize> {
    if run.is_empty() || run.len() > all.len() {
        return None;
    }
    (0..=all.len() - run.len()).find(|&start| all[start..start + run.len()] == *run)
}

/// Starts the publisher with `-progress` on stdout and returns once it has sent
/// `JOIN_AFTER_US` of media.
fn publish_and_wait(ffmpeg: &Path, input: &Path, url: &str, rtmp_options: &[&str]) -> ChildGuard {
    let input = input.to_str().expect("utf-8 path");
    let mut args = vec!["-re", "-i", input, "-map", "0", "-c", "copy", "-progress", "pipe:1", "-stats_period", "0.1"];
    args.extend_from_slice(rtmp_options);
    args.extend_from_slice(&["-f", "flv", url]);
    let mut publisher = spawn_ffmpeg(ffmpeg, &args, Stdio::piped(), "publisher");
    let stdout = publisher.take_stdout().expect("publisher stdout");
    let (sender, receiver) = mpsc::channel();
    // A thread reads progress so the deadline below holds even if ffmpeg goes quiet; it
    // keeps draining stdout afterwards so ffmpeg never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(value) = line.strip_prefix("out_time_us=") {
                if value.trim().parse::<u64>().is_ok_and(|us| us >= JOIN_AFTER_US) {
                    let _ = sender.send(());
                }
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(15))
        .expect("the publisher did not get past the first keyframe within 15 s");
    publisher
}

/// Publishes `name` through a fresh relay, plays it from mid-stream, and checks codec,
/// extradata and packets against the file. Returns the index of the first video packet
/// the player got.
fn relay_round_trip(name: &str, video_codec: &str, audio_codec: &str, enhanced: bool, tracks: usize) -> usize {
    relay_round_trip_with(name, video_codec, audio_codec, enhanced, tracks, &[], false)
}

/// [`relay_round_trip`] with extra input options for both ffmpegs (e.g. to announce
/// E-RTMP codecs in connect).
fn relay_round_trip_with(
    name: &str,
    video_codec: &str,
    audio_codec: &str,
    enhanced: bool,
    tracks: usize,
    rtmp_options: &[&str],
    through_edge: bool,
) -> usize {
    let ffmpeg = new_ffmpeg();
    let input = ertmp_fixture(name);
    assert_eq!(first_video_tag_is_enhanced(&input), enhanced, "{name}: header kind in the fixture");

    // The reference is the file as the publisher sends it: ffmpeg's FLV muxer rewrites
    // some configuration records on remux (VP9's vpcC colour fields), so the same remux
    // (`-c copy -f flv`) to a file is what the relay must reproduce.
    // Tests run in parallel and may share a fixture: each gets its own directory.
    let dir = TempDir::new(&format!("ertmp-{name}"));
    let remuxed = dir.join("remux.flv");
    let status = Command::new(&ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(&input)
        .args(["-map", "0", "-c", "copy", "-f", "flv", "-y"])
        .arg(&remuxed)
        .status()
        .expect("remux the fixture");
    assert!(status.success(), "remux of {name} failed");
    let reference = Command::new(&ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(&remuxed)
        .args(["-map", "0", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("framemd5 of the fixture");
    assert!(reference.status.success(), "framemd5 of {name} failed");
    let reference = parse_framemd5(&String::from_utf8_lossy(&reference.stdout));
    let keyframes = video_keyframes(&remuxed);
    let reference_video = streams_of(&reference, "video");
    assert_eq!(reference_video.len(), keyframes.len(), "{name}: video tracks in FLV vs ffmpeg streams");
    for (stream, track_keyframes) in reference_video.iter().zip(&keyframes) {
        assert_eq!(track_keyframes.len(), stream.packets.len(), "{name}: FLV video frames vs ffmpeg packets");
    }

    let relay = spawn(Config { listen: "127.0.0.1:0".parse().expect("address"), ..Config::default() }).expect("relay");
    let url = format!("rtmp://{}/live/x", relay.local_addr());
    // Edge mode: the player plays from a second relay that pulls from the first.
    let edge = through_edge.then(|| {
        spawn(Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            origins: vec![relay.local_addr().to_string()],
            ..Config::default()
        })
        .expect("edge relay")
    });
    let play_url = match &edge {
        Some(edge) => format!("rtmp://{}/live/x", edge.local_addr()),
        None => url.clone(),
    };
    let mut publisher = publish_and_wait(&ffmpeg, &input, &url, rtmp_options);

    let output_path = dir.join("player.framemd5");
    let output_arg = output_path.to_str().expect("utf-8 path").to_string();
    let mut player_args = vec!["-rw_timeout", "10000000"];
    player_args.extend_from_slice(rtmp_options);
    player_args.extend_from_slice(&["-i", &play_url, "-map", "0", "-c", "copy", "-f", "framemd5", "-y", &output_arg]);
    let mut player = spawn_ffmpeg(&ffmpeg, &player_args, Stdio::null(), "player");
    wait_success(&mut publisher);
    wait_success(&mut player);
    let played = std::fs::read_to_string(&output_path).expect("player output");
    let played = parse_framemd5(&played);
    assert_eq!(relay.stats().protocol_errors, 0, "{name}: relay protocol errors");

    let mut first_video = 0;
    for (media_type, codec, tracks) in [("video", video_codec, tracks), ("audio", audio_codec, tracks)] {
        let want = streams_of(&reference, media_type);
        let got = streams_of(&played, media_type);
        assert_eq!(want.len(), tracks, "{name}: {media_type} tracks in the fixture");
        assert_eq!(got.len(), tracks, "{name}: {media_type} tracks through the relay");
        for (track, (want, got)) in want.iter().zip(&got).enumerate() {
            let what = format!("{name}: {media_type} track {track}");
            assert_eq!(want.codec, codec, "{what}: fixture codec");
            assert_eq!(got.codec, want.codec, "{what}: codec through the relay");
            assert!(want.extradata.is_some(), "{what}: fixture has no extradata");
            assert_eq!(got.extradata, want.extradata, "{what}: extradata through the relay");
            let start = find_run(&want.packets, &got.packets).unwrap_or_else(|| {
                panic!(
                    "{what}: the player's {} packets are not a contiguous run of the file's {} (first {:?})",
                    got.packets.len(),
                    want.packets.len(),
                    got.packets.first()
                )
            });
            assert_eq!(start + got.packets.len(), want.packets.len(), "{what}: run stops before the end");
            if media_type == "video" {
                assert!(keyframes[track][start], "{what}: starts at packet {start}, which is not a keyframe");
                assert!(start > 0, "{what}: the player did not join mid-stream (got the whole stream)");
                first_video = first_video.max(start);
            }
        }
    }
    if let Some(edge) = edge {
        assert_eq!(edge.stats().protocol_errors, 0, "{name}: edge protocol errors");
        edge.shutdown().expect("edge shutdown");
    }
    relay.shutdown().expect("relay shutdown");
    first_video
}

#[test]
fn hevc_aac_through_relay() {
    relay_round_trip("hevc_aac.flv", "hevc", "aac", true, 1);
}

#[test]
fn hevc_opus_through_relay() {
    relay_round_trip("hevc_opus.flv", "hevc", "opus", true, 1);
}

#[test]
fn av1_opus_through_relay() {
    relay_round_trip("av1_opus.flv", "av1", "opus", true, 1);
}

#[test]
fn vp9_opus_through_relay() {
    relay_round_trip("vp9_opus.flv", "vp9", "opus", true, 1);
}

#[test]
fn legacy_h264_aac_through_relay() {
    relay_round_trip("h264_aac_legacy.flv", "h264", "aac", false, 1);
}

/// ffmpeg 9 writes several video and audio streams as E-RTMP multitrack: track 0 with
/// plain ex headers, track 1 as Multitrack/OneTrack messages. A late joiner must get both
/// tracks' sequence headers (and Opus channel configs) before the GOP.
#[test]
fn hevc_opus_multitrack_through_relay() {
    relay_round_trip("hevc_opus_multitrack.flv", "hevc", "opus", true, 2);
}

/// Publisher and player announce their codecs (`fourCcList` in connect), so the relay
/// answers with its own E-RTMP capabilities in the connect result; ffmpeg must take that
/// result and the stream must come through the same.
#[test]
fn hevc_opus_with_enhanced_connect() {
    relay_round_trip_with("hevc_opus.flv", "hevc", "opus", true, 1, &["-rtmp_enhanced_codecs", "hvc1,Opus"], false);
}

/// Edge mode: the relay as origin, a second relay as edge pulling from it on the player's
/// demand (its ClientSession announces E-RTMP to the origin). The player joins the edge
/// mid-stream, so the edge's pull itself starts late and must get the origin's cached
/// headers and GOP, then pass them on.
#[test]
fn hevc_aac_through_edge() {
    relay_round_trip_with("hevc_aac.flv", "hevc", "aac", true, 1, &[], true);
}

#[test]
fn hevc_opus_through_edge() {
    relay_round_trip_with("hevc_opus.flv", "hevc", "opus", true, 1, &[], true);
}
