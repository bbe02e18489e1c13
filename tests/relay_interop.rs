//! The relay in-process, with real programs on loopback as publishers and players:
//! ffmpeg (the system one and a newer build), rtmpdump, GStreamer rtmp2src/rtmp2sink and
//! nginx-rtmp pulling from the relay. Every check is on content: the packets a player
//! wrote must be a contiguous run of the published file's packets (MD5 and size per packet,
//! per stream, via ffprobe), starting at a keyframe.
//!
//! A missing program fails the test with its name; nothing is skipped silently.

mod common;

use std::process::Command;
use std::time::Duration;

use common::interop::*;
use common::*;

const FIXTURE: &str = "h264_aac.flv";

#[test]
fn ffmpeg_publishes_and_ffmpeg_plays() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ff-ff");
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "ffmpeg-player", &[]);
    wait_players(&relay, 1, "ffmpeg player");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    let input = fixture_packets(FIXTURE);
    let output = check_output(&input, &out, &player_log, 1.0, false, "ffmpeg player");
    // Waiting from before the publish, the player should start at the very first keyframe.
    let start = assert_contiguous_run(&input, &output, "video", 1, "ffmpeg player video");
    assert_eq!(
        start, 0,
        "ffmpeg player waiting from the start should get the first keyframe"
    );
}

#[test]
fn ffmpeg_publishes_and_rtmpdump_plays() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ff-dump");
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    let out = dir.join("dump.flv");
    let (mut player, player_log) = rtmpdump_player(&source, &out, &dir, "rtmpdump");
    wait_players(&relay, 1, "rtmpdump");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "rtmpdump");
}

#[test]
fn ffmpeg_publishes_and_gstreamer_rtmp2src_plays() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ff-gst");
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    let out = dir.join("gst.flv");
    let (mut player, player_log) = gst_player(&source, &out, &dir, "gst-rtmp2src");
    wait_players(&relay, 1, "gstreamer rtmp2src");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "gstreamer rtmp2src");
}

#[test]
fn gstreamer_rtmp2sink_publishes_and_ffmpeg_plays() {
    let ffmpeg = require_program("ffmpeg");
    let gst = require_program("gst-launch-1.0");
    let dir = TempDir::new("gst-ff");
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "ffmpeg-player", &[]);
    wait_players(&relay, 1, "ffmpeg player");
    let (stderr, publisher_log) = log_file(&dir, "gst.log");
    let mut command = Command::new(gst);
    command
        .arg("filesrc")
        .arg(format!("location={}", fixture(FIXTURE).display()))
        .args(["!", "flvdemux", "name=d"])
        .args(["d.video", "!", "queue", "!", "h264parse", "!", "mux.video"])
        .args(["d.audio", "!", "queue", "!", "aacparse", "!", "mux.audio"])
        .args(["flvmux", "name=mux", "streamable=true", "!", "rtmp2sink"])
        .arg(format!("location={source}"))
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    let mut publisher = ChildGuard::spawn(command, "gst-rtmp2sink");
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "ffmpeg player of rtmp2sink");
}

#[test]
fn nginx_rtmp_pulls_from_the_relay() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("nginx");
    let relay = start_relay(test_config());
    let relay_addr = relay.local_addr();
    let nginx = Nginx::start_with("nginx-pull", own_loopback_addr(), &format!("pull rtmp://{relay_addr}/live;"));

    // Publish twice the file to the relay, so that the stream outlasts nginx's pull setup.
    let (mut publisher, publisher_log) = ffmpeg_publisher(
        &ffmpeg,
        FIXTURE,
        &live_url(relay_addr, "s"),
        &dir,
        "ffmpeg-publisher",
        &["-stream_loop", "1"],
    );
    wait_publishers(&relay, 1, "the publisher");
    let out = dir.join("from-nginx.flv");
    let (mut player, player_log) = ffmpeg_player(
        &ffmpeg,
        &nginx.url("s"),
        &out,
        &dir,
        "ffmpeg-player-via-nginx",
        &[],
    );
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(25));
    // nginx's player never learns that the stream ended (the relay tells nginx's pull with
    // StreamDry); nginx's fast shutdown closes its connection, and ffmpeg ends at the end of
    // its input, writing out everything.
    wait_players(&relay, 1, "nginx's pull");
    nginx.terminate();
    match player.wait_timeout(Duration::from_secs(10)) {
        Some(status) => assert!(status.success(), "ffmpeg via nginx failed ({status}):\n{}", tail(&player_log)),
        None => panic!("ffmpeg via nginx did not end when nginx stopped:\n{}", tail(&player_log)),
    }
    let input = repeated(&fixture_packets(FIXTURE), 2);
    // At least 3 s of the 8 s must have come through nginx.
    with_nginx_log_on_failure(&nginx, || {
        check_output(&input, &out, &player_log, 3.0 / 8.0, false, "ffmpeg via nginx pull")
    });
    drop(nginx);
    relay.shutdown().unwrap();
}

#[test]
fn timestamps_past_24_bits_reach_ffmpeg_and_rtmpdump() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("extts");
    let relay = start_relay(test_config());
    let addr = relay.local_addr();
    let source = live_url(addr, "s");
    let offset: u32 = 16_775_000; // crosses 0xFFFFFF about 2.2 s into the 4 s file
    let ff_out = dir.join("ffmpeg.flv");
    let dump_out = dir.join("rtmpdump.flv");
    let (mut ff_player, ff_log) = ffmpeg_player(&ffmpeg, &source, &ff_out, &dir, "ffmpeg-player", &["-copyts"]);
    let (mut dump_player, dump_log) = rtmpdump_player(&source, &dump_out, &dir, "rtmpdump");
    wait_players(&relay, 2, "ffmpeg and rtmpdump");

    let items = fixture_items(FIXTURE, offset);
    let mut publisher = RtmpTestClient::connect(addr, "live").unwrap();
    publisher.publish("s").unwrap();
    publisher.send_items(&items, Some(2.0)).unwrap();
    publisher.stop().unwrap();
    shut_down_and_let_players_end(relay, &mut [(&mut ff_player, &ff_log), (&mut dump_player, &dump_log)]);

    let input = fixture_packets(FIXTURE);
    for (out, log, label) in [(&ff_out, &ff_log, "ffmpeg"), (&dump_out, &dump_log, "rtmpdump")] {
        let output = check_output(&input, out, log, 1.0, false, label);
        for codec_type in ["video", "audio"] {
            let start = assert_contiguous_run(&input, &output, codec_type, 1, label);
            let source_packets = &input[codec_type][start..];
            for (got, sent) in output[codec_type].iter().zip(source_packets) {
                let expected = sent.dts.map(|d| d + i64::from(offset));
                assert_eq!(
                    got.dts, expected,
                    "{label} {codec_type}: dts of packet {got:?} (sent at {:?} + {offset})",
                    sent.dts
                );
            }
            let last = output[codec_type].last().and_then(|p| p.dts).unwrap_or(0);
            assert!(
                last > 0xFF_FFFF,
                "{label} {codec_type}: last dts {last} did not cross 24 bits"
            );
        }
    }
}

#[test]
fn newer_ffmpeg_publishes_and_both_ffmpegs_play() {
    let ffmpeg = require_program("ffmpeg");
    let new_ffmpeg = new_ffmpeg();
    let dir = TempDir::new("newff");
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    let old_out = dir.join("old.flv");
    let new_out = dir.join("new.flv");
    let (mut old_player, old_log) = ffmpeg_player(&ffmpeg, &source, &old_out, &dir, "old-ffmpeg-player", &[]);
    let (mut new_player, new_log) = ffmpeg_player(&new_ffmpeg, &source, &new_out, &dir, "new-ffmpeg-player", &[]);
    wait_players(&relay, 2, "both ffmpeg players");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&new_ffmpeg, FIXTURE, &source, &dir, "new-ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    shut_down_and_let_players_end(relay, &mut [(&mut old_player, &old_log), (&mut new_player, &new_log)]);
    let input = fixture_packets(FIXTURE);
    check_output(&input, &old_out, &old_log, 1.0, false, "system ffmpeg player");
    check_output(&input, &new_out, &new_log, 1.0, false, "newer ffmpeg player");
}
