//! A publisher leaves and comes back, its timestamps from 0 again (as OBS does on every
//! reconnect), and players of every kind stay and resume at a keyframe with timestamps that
//! never go back: ffmpeg, rtmpdump, GStreamer's rtmp2src and the library's client, on the
//! relay as origin and through an edge (issue 9, defect 7).
//!
//! The relay tells a publisher's leaving with the StreamDry event alone, and its return with
//! StreamBegin. ffmpeg and librtmp end playback on `NetStream.Play.UnpublishNotify`, and
//! GStreamer's rtmp2src on StreamEOF, which is what nginx-rtmp sends, so rtmp2src players of
//! nginx-rtmp end at a publisher restart. At the end the relays shut down; their
//! `NetStream.Play.Stop` ends every player, which then finishes its file.
//!
//! Timestamps and keyframes are checked on raw output: rtmpdump's and GStreamer's FLV files
//! read tag by tag, and the client's log. ffmpeg's muxer would repair them, so its file is
//! checked by packet hashes only.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::interop::*;
use common::runs::{assert_runs, MetadataCheck};
use common::*;
use rtmp_edge::relay::RelayHandle;
use rtmp_edge::sessions::codes;

const FIXTURE: &str = "h264_aac.flv";
const APP: &str = "live";

/// The four players of one test, all on the same stream.
struct Players {
    ffmpeg: (ChildGuard, PathBuf, PathBuf),
    rtmpdump: (ChildGuard, PathBuf, PathBuf),
    gst: (ChildGuard, PathBuf, PathBuf),
    client: PlayerThread,
}

fn start_players(addr: SocketAddr, dir: &TempDir) -> Players {
    let source = live_url(addr, "s");
    let ffmpeg_out = dir.join("ffmpeg.flv");
    let (ffmpeg, ffmpeg_log) = ffmpeg_player(&require_program("ffmpeg"), &source, &ffmpeg_out, dir, "ffmpeg", &[]);
    let rtmpdump_out = dir.join("rtmpdump.flv");
    let (rtmpdump, rtmpdump_log) = rtmpdump_player(&source, &rtmpdump_out, dir, "rtmpdump");
    let gst_out = dir.join("gst.flv");
    let (gst, gst_log) = gst_player(&source, &gst_out, dir, "gst-rtmp2src");
    // Until the relay closes it: the relay's shutdown is what ends every player here.
    let until_closed = PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(60) };
    let client = PlayerThread::spawn(addr, APP, "s", until_closed, "client");
    Players {
        ffmpeg: (ffmpeg, ffmpeg_out, ffmpeg_log),
        rtmpdump: (rtmpdump, rtmpdump_out, rtmpdump_log),
        gst: (gst, gst_out, gst_log),
        client,
    }
}

/// Publishes the fixture on `origin`, leaves, publishes it again from timestamp 0, leaves.
/// Each leaving is waited for on the relays' state: the origin has no publisher, and an
/// `edge` no live pull.
fn publish_twice(origin: &RelayHandle, edge: Option<&RelayHandle>) -> Vec<Item> {
    let published = fixture_items(FIXTURE, 0);
    for _ in 0..2 {
        let mut publisher = RtmpTestClient::connect(origin.local_addr(), APP).unwrap();
        publisher.publish("s").unwrap();
        if let Some(edge) = edge {
            assert!(eventually(Duration::from_secs(5), || edge.stats().pulls_live == 1), "{:?}", edge.stats());
        }
        publisher.send_items(&published, None).unwrap();
        publisher.stop().unwrap();
        assert!(eventually(Duration::from_secs(5), || origin.stats().publishers == 0), "{:?}", origin.stats());
        if let Some(edge) = edge {
            assert!(eventually(Duration::from_secs(5), || edge.stats().pulls_live == 0), "{:?}", edge.stats());
        }
    }
    published
}

/// `output`'s packets of each kind are `input`'s twice over: all of them, then a run to the
/// end that starts at a keyframe (for video).
fn assert_packets_twice(input: &HashMap<String, Vec<Packet>>, output: &HashMap<String, Vec<Packet>>, label: &str) {
    let same = |a: &Packet, b: &Packet| a.hash == b.hash && a.size == b.size;
    for codec_type in ["video", "audio"] {
        let source = &input[codec_type];
        let got = output.get(codec_type).cloned().unwrap_or_default();
        assert!(
            got.len() > source.len() && got.len() <= 2 * source.len(),
            "{label} {codec_type}: {} packets, expected the input's {} and a second run",
            got.len(),
            source.len()
        );
        let (first, second) = got.split_at(source.len());
        for (index, (g, s)) in first.iter().zip(source).enumerate() {
            assert!(same(g, s), "{label} {codec_type}: packet {index} of the first run differs: {g:?} vs {s:?}");
        }
        let start = source.len() - second.len();
        for (index, (g, s)) in second.iter().zip(&source[start..]).enumerate() {
            assert!(same(g, s), "{label} {codec_type}: packet {index} of the second run (from #{start}) differs: {g:?} vs {s:?}");
        }
        if codec_type == "video" {
            assert!(source[start].key, "{label}: the second run starts at video packet #{start}, not a keyframe");
        }
    }
}

/// Lets rtmp2src write both runs before the shutdown's StreamEOF can cut its last message
/// (see [`wait_for_flv_tags`]); if it never does, the checks say what is missing.
fn wait_for_gst(players: &Players, published: &[Item]) {
    let whole_runs = 1 + 2 * kept_by_librtmp_and_rtmp2src(published).len();
    wait_for_flv_tags(&players.gst.1, whole_runs);
}

fn wait_ended(player: &mut (ChildGuard, PathBuf, PathBuf)) {
    let (child, _, log) = player;
    match child.wait_timeout(Duration::from_secs(10)) {
        Some(status) => assert!(status.success(), "{} failed ({status}):\n{}", child.label, tail(log)),
        None => panic!("{} did not end at the relay's Play.Stop:\n{}", child.label, tail(log)),
    }
}

/// Every player got both runs; each ended at the relay's shutdown.
fn check_players(mut players: Players, published: &[Item]) {
    for player in [&mut players.ffmpeg, &mut players.rtmpdump, &mut players.gst] {
        wait_ended(player);
    }
    let kept = kept_by_librtmp_and_rtmp2src(published);
    let twice = [&kept[..], &kept[..]];
    assert_runs(&twice, &flv_file_items(&players.rtmpdump.1, 0), MetadataCheck::Exact, "rtmpdump");
    let gst = without_sample_access(flv_file_items(&players.gst.1, 0), "rtmp2src");
    assert_runs(&twice, &gst, MetadataCheck::Exact, "rtmp2src");
    let (_, ffmpeg_out, ffmpeg_log) = &players.ffmpeg;
    assert!(Path::new(ffmpeg_out).is_file(), "ffmpeg wrote nothing:\n{}", tail(ffmpeg_log));
    assert_packets_twice(&fixture_packets(FIXTURE), &probe_packets(ffmpeg_out), "ffmpeg");
    let log = players.client.join();
    // Everything but media, exactly: the two restarts are told with StreamDry and
    // StreamBegin alone, and only the shutdown ends the play.
    let status = Received::status;
    assert_eq!(
        events_of(&log),
        [
            status(codes::PLAY_RESET),
            status(codes::PLAY_START),
            Received::StreamBegin,
            Received::StreamDry,
            Received::StreamBegin,
            Received::StreamDry,
            status(codes::PLAY_STOP),
            Received::StreamEof,
            Received::Closed
        ],
        "client: {}",
        summarize(&log)
    );
    assert_runs(&[published, published], &items_of(&log), MetadataCheck::Exact, "client");
}

#[test]
fn every_player_stays_across_a_publisher_restart_on_the_origin() {
    let dir = TempDir::new("restart-origin");
    let relay = start_relay(test_config());
    let players = start_players(relay.local_addr(), &dir);
    wait_players(&relay, 4, "ffmpeg, rtmpdump, rtmp2src and the client");
    players.client.wait_ready(EXCHANGE_TIMEOUT);
    let published = publish_twice(&relay, None);
    wait_for_gst(&players, &published);
    relay.shutdown().unwrap();
    check_players(players, &published);
}

#[test]
fn every_player_stays_across_a_publisher_restart_through_an_edge() {
    let dir = TempDir::new("restart-edge");
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let players = start_players(edge.local_addr(), &dir);
    wait_players(&edge, 4, "ffmpeg, rtmpdump, rtmp2src and the client on the edge");
    wait_players(&origin, 1, "the edge's pull");
    players.client.wait_ready(EXCHANGE_TIMEOUT);
    let published = publish_twice(&origin, Some(&edge));
    wait_for_gst(&players, &published);
    edge.shutdown().unwrap();
    check_players(players, &published);
    origin.shutdown().unwrap();
}

