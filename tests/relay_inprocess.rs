//! The relay in-process on an ephemeral port, driven by the library's own ClientSession:
//! fan-out, late join, publisher restart, slow players, hostile clients and limits.
//! Every check compares what players received with what was published, message by message
//! (kind, timestamp, body bytes).

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http;
use common::*;
use rtmp_edge::relay::Config;
use rtmp_edge::sessions::{codes, ClientSessionEvent, MediaKind};

const APP: &str = "live";

fn until_unpublish(count: usize) -> PlayerStop {
    PlayerStop {
        after_unpublish: count,
        deadline: Duration::from_secs(40),
    }
}

fn spawn_ready_players(addr: std::net::SocketAddr, name: &str, count: usize, label: &str) -> Vec<PlayerThread> {
    let players: Vec<PlayerThread> = (0..count)
        .map(|i| PlayerThread::spawn(addr, APP, name, until_unpublish(1), &format!("{label}-{i}")))
        .collect();
    for player in &players {
        player.wait_ready(EXCHANGE_TIMEOUT);
    }
    players
}

/// Players waiting before the publisher starts get everything from the first keyframe on,
/// exactly, after a StreamBegin; the publisher's leaving is a StreamDry (the onStatus
/// UnpublishNotify would end ffmpeg and librtmp players, StreamEOF GStreamer's rtmp2src).
fn check_waiting_player(published: &[Item], log: &[Received], label: &str) {
    let begin = log.iter().position(|r| *r == Received::StreamBegin);
    let eof = log.iter().position(|r| *r == Received::StreamDry);
    assert!(
        matches!((begin, eof), (Some(a), Some(b)) if a < b),
        "{label}: expected StreamBegin then StreamDry: {}",
        summarize(log)
    );
    let statuses = statuses_of(log);
    assert!(
        !statuses.iter().any(|s| s == codes::PLAY_UNPUBLISH_NOTIFY || s == codes::PLAY_PUBLISH_NOTIFY),
        "{label}: publish notifications end ffmpeg and librtmp players: {statuses:?}"
    );
    let first_item = log.iter().position(|r| matches!(r, Received::Item(_)));
    assert!(first_item > begin, "{label}: media before StreamBegin: {}", summarize(log));
    let start = assert_late_join(published, &items_of(log), label);
    let keyframe = first_keyframe_frame_index(published);
    assert!(
        start <= keyframe,
        "{label}: a player waiting from the start should get everything from the first keyframe (frame #{keyframe}), started at frame #{start}"
    );
}

/// Publishes `items` on `name` (full speed) to `players` players that wait before it starts.
fn fan_out(fixture_name: &str, offset_ms: u32, player_count: usize) {
    fan_out_with(test_config(), fixture_name, offset_ms, player_count);
}

fn fan_out_with(config: Config, fixture_name: &str, offset_ms: u32, player_count: usize) {
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let published = fixture_items(fixture_name, offset_ms);
    let players = spawn_ready_players(addr, "s", player_count, fixture_name);

    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s?token=secret").unwrap();
    publisher.send_items(&published, None).unwrap();
    publisher.stop().unwrap();

    for player in players {
        let label = player.label.clone();
        let log = player.join();
        check_waiting_player(&published, &log, &label);
    }
    let stats = relay.stats();
    assert_eq!(
        stats.frames_dropped, 0,
        "no frame should be dropped with generous queues: {stats:?}"
    );
    assert_eq!(stats.protocol_errors, 0, "{stats:?}");
    relay.shutdown().unwrap();
}

#[test]
fn five_players_receive_exactly_what_was_published() {
    fan_out("h264_aac.flv", 0, 5);
}

#[test]
fn batched_writes_deliver_exactly_what_was_published() {
    let config = Config { write_batch: Duration::from_millis(30), ..test_config() };
    fan_out_with(config, "h264_aac.flv", 0, 3);
}

#[test]
fn audio_only_stream_reaches_players() {
    fan_out("audio_only.flv", 0, 2);
}

#[test]
fn video_only_stream_reaches_players() {
    fan_out("video_only.flv", 0, 2);
}

#[test]
fn timestamps_past_24_bits_arrive_unchanged() {
    // 16,775,000 + [23, 4023] ms crosses 0xFFFFFF = 16,777,215 about 2.2 s into the file,
    // so both the 24-bit and the extended timestamp encodings are exercised.
    let offset = 16_775_000;
    let published = fixture_items("h264_aac.flv", offset);
    assert!(published
        .iter()
        .any(|i| i.timestamp() < 0xFF_FFFF && i.timestamp() > 16_770_000));
    assert!(published.iter().any(|i| i.timestamp() > 0xFF_FFFF));
    fan_out("h264_aac.flv", offset, 2);
}

#[test]
fn timestamps_across_the_32_bit_wrap_arrive_unchanged() {
    // u32::MAX - 2000 + [0, 4023] ms wraps back through 0 about 2 s into the file.
    let offset = u32::MAX - 2000;
    let published = fixture_items("h264_aac.flv", offset);
    assert!(published.iter().any(|i| i.timestamp() > u32::MAX - 1000));
    assert!(published.iter().any(|i| i.timestamp() < 1000));
    fan_out("h264_aac.flv", offset, 2);
}

/// A relay with `config` whose publisher sent the fixture up to 1500 ms (past the keyframe
/// at 1023 ms) and a player that joined then. Returns the rest to publish.
fn join_late(config: Config) -> (rtmp_edge::relay::RelayHandle, RtmpTestClient, Vec<Item>, usize, PlayerThread) {
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let published = fixture_items("h264_aac.flv", 0);
    let split = published.iter().position(|i| i.timestamp() >= 1500).unwrap();
    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s").unwrap();
    publisher.send_items(&published[..split], None).unwrap();
    let late = PlayerThread::spawn(addr, APP, "s", until_unpublish(1), "late");
    late.wait_ready(EXCHANGE_TIMEOUT);
    (relay, publisher, published, split, late)
}

#[test]
fn late_joiner_gets_metadata_headers_then_gop_from_last_keyframe() {
    let (relay, mut publisher, published, split, late) = join_late(test_config());
    // Let the relay send the cache before more live media arrives (either order must
    // give the same result, but this is the case under test).
    assert!(late.wait_until(Duration::from_secs(5), |log| items_of(log)
        .iter()
        .any(Item::is_video_frame)));
    publisher.send_items(&published[split..], None).unwrap();
    publisher.stop().unwrap();

    let log = late.join();
    let items = items_of(&log);
    assert!(
        matches!(items.first(), Some(Item::Metadata { .. })),
        "late joiner: metadata first, got {:?}",
        items.first()
    );
    let start = assert_late_join(&published, &items, "late joiner");
    let frames: Vec<&Item> = published
        .iter()
        .filter(|i| !i.is_sequence_header() && !matches!(i, Item::Metadata { .. }))
        .collect();
    let first_video = items.iter().find(|i| i.is_video_frame()).unwrap();
    assert_eq!(
        first_video.timestamp(),
        1023,
        "late joiner should start at the cached GOP's keyframe (1023 ms)"
    );
    assert!(
        start > 0 && frames[start].timestamp() <= 1023,
        "GOP run starts at frame #{start}"
    );
    relay.shutdown().unwrap();
}

#[test]
fn publisher_restart_players_stay_and_resume_at_a_keyframe() {
    let relay = start_relay(test_config());
    let addr = relay.local_addr();
    let published = fixture_items("h264_aac.flv", 0);
    let players: Vec<PlayerThread> = (0..2)
        .map(|i| PlayerThread::spawn(addr, APP, "s", until_unpublish(2), &format!("restart-{i}")))
        .collect();
    for player in &players {
        player.wait_ready(EXCHANGE_TIMEOUT);
    }

    // First publisher leaves politely (FCUnpublish + deleteStream)...
    let mut first = RtmpTestClient::connect(addr, APP).unwrap();
    first.publish("s").unwrap();
    first.send_items(&published, None).unwrap();
    first.stop().unwrap();
    for player in &players {
        let saw_unpublish = player.wait_until(Duration::from_secs(10), |log| log.contains(&Received::StreamDry));
        assert!(
            saw_unpublish,
            "{}: no StreamDry: {}",
            player.label,
            summarize(&player.snapshot())
        );
    }
    drop(first);

    // ...the second one (same timestamps again, from 0) just drops the connection.
    let mut second = RtmpTestClient::connect(addr, APP).unwrap();
    second.publish("s").unwrap();
    second.send_items(&published, None).unwrap();
    // Dropping a socket with unread bytes (the relay's acknowledgements) resets it, which
    // may discard what the relay has not read yet: wait until the players have it all.
    for player in &players {
        player.wait_until(Duration::from_secs(10), |log| items_of(log).len() == 2 * published.len());
    }
    drop(second);

    for player in players {
        let label = player.label.clone();
        let log = player.join();
        assert!(
            !log.contains(&Received::Closed),
            "{label}: the relay closed the player: {}",
            summarize(&log)
        );
        let markers: Vec<&Received> = log
            .iter()
            .filter(|r| matches!(r, Received::StreamBegin | Received::StreamDry))
            .collect();
        assert_eq!(
            markers,
            [&Received::StreamBegin, &Received::StreamDry, &Received::StreamBegin, &Received::StreamDry],
            "{label}: stream events"
        );
        let second_notify = log
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Received::StreamBegin)
            .nth(1)
            .map(|(i, _)| i)
            .unwrap();
        let (before, after) = log.split_at(second_notify);
        check_waiting_player(&published, before, &format!("{label} (first publisher)"));

        // Timestamps never go backwards across the restart: everything from the second
        // publisher comes after everything from the first. (Within one publisher's run the
        // timestamps are the publisher's own; the fixture ends with an AVC end-of-sequence
        // tag stamped before the last audio frame.)
        let last_before = items_of(before)
            .iter()
            .filter(|i| i.is_frame())
            .map(Item::timestamp)
            .max()
            .unwrap();
        let first_after = items_of(after)
            .iter()
            .filter(|i| i.is_frame())
            .map(Item::timestamp)
            .min()
            .unwrap();
        assert!(
            first_after > last_before,
            "{label}: after the restart timestamps went back: last before {last_before}, first after {first_after}"
        );
        // After the restart: metadata/headers again, then the second run from a keyframe, with
        // the relay's constant shift.
        let second_items = items_of(after);
        let first_video = second_items
            .iter()
            .find(|i| i.is_video_frame())
            .expect("video after restart");
        assert!(
            first_video.is_video_keyframe(),
            "{label}: after restart, first video frame {first_video:?} is not a keyframe"
        );
        let first_frame = second_items
            .iter()
            .find(|i| i.is_frame())
            .expect("frames after restart");
        let source = published.iter().find(|p| match (p, first_frame) {
            (Item::Media { data: a, kind: k1, .. }, Item::Media { data: b, kind: k2, .. }) => a == b && k1 == k2,
            _ => false,
        });
        let shift = first_frame
            .timestamp()
            .wrapping_sub(source.expect("first frame after restart was published").timestamp());
        let shifted: Vec<Item> = published
            .iter()
            .map(|i| i.with_timestamp(i.timestamp().wrapping_add(shift)))
            .collect();
        assert_late_join(&shifted, &second_items, &format!("{label} (second publisher)"));
    }
    relay.shutdown().unwrap();
}

/// The fixture's AVC sequence header, for synthetic streams.
fn avc_sequence_header() -> Item {
    let fixture = fixture_items("video_only.flv", 0);
    fixture.iter().find(|i| i.is_sequence_header()).unwrap().clone().with_timestamp(0)
}

/// Frame `n` of a synthetic H.264 stream with big frames (40 ms apart, a keyframe every 25),
/// so that a player that does not read fills the kernel buffers and the relay's queue quickly.
fn big_frame(n: u32, frame_bytes: usize) -> Item {
    let key = n % 25 == 0;
    let mut data = vec![if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    let nalu_len = (frame_bytes - 9) as u32;
    data.extend_from_slice(&nalu_len.to_be_bytes());
    data.extend((0..frame_bytes - 9).map(|i| (i as u32).wrapping_mul(31).wrapping_add(n) as u8));
    Item::Media {
        kind: MediaKind::Video,
        timestamp: n * 40,
        data: Bytes::from(data),
    }
}

#[test]
fn slow_player_gets_a_prefix_a_gap_then_a_run_from_a_keyframe_and_holds_back_no_one() {
    // The soft limit is generous, so the fast players (threads reading at full speed) never
    // meet it; the hard limits are out of reach, so the slow one is never cut.
    let config = Config {
        queue_soft_limit_ms: 1_000,
        queue_hard_limit_ms: 60_000,
        ..test_config()
    };
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let slow = PlayerThread::spawn(addr, APP, "s", until_unpublish(1), "slow");
    slow.wait_ready(EXCHANGE_TIMEOUT);
    let fast = spawn_ready_players(addr, "s", 2, "fast");

    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s").unwrap();
    let mut published = vec![avc_sequence_header()];
    publisher.send_item(&published[0]).unwrap();
    // 64 KB frames at 3x real time. The slow player reads the first ten frames, then stops
    // reading until the relay starts dropping its frames, then reads again; two more GOPs
    // follow, so that it can resume at a keyframe.
    let started = Instant::now();
    let mut resumed_at: Option<u32> = None;
    let mut n = 0;
    while resumed_at.is_none_or(|at| n < at + 50) {
        assert!(n < 2_000, "no frame dropped for a player that stopped reading: {:?}", relay.stats());
        let due = started + Duration::from_millis(u64::from(n) * 40 / 3);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = big_frame(n, 64 * 1024);
        publisher.send_item(&frame).unwrap();
        publisher.drain_nonblocking().unwrap();
        published.push(frame);
        n += 1;
        if n == 10 {
            assert!(slow.wait_until(EXCHANGE_TIMEOUT, |log| items_of(log).len() == 11), "slow: {}", summarize(&slow.snapshot()));
            slow.hold_reading();
        }
        if resumed_at.is_none() && relay.stats().frames_dropped > 0 {
            slow.resume_reading();
            resumed_at = Some(n);
        }
    }
    publisher.stop().unwrap();

    for player in fast {
        let label = player.label.clone();
        check_waiting_player(&published, &player.join(), &label);
    }
    let log = slow.join();
    assert!(!log.contains(&Received::Closed), "slow: cut: {}", summarize(&log));
    let stats = relay.stats();
    assert_eq!(stats.slow_players_disconnected, 0, "{stats:?}");
    // Exactly: the header, frames 0..a, then frames b.. to the end, b a keyframe, and the
    // frames between are the ones the relay counted as dropped (for this player alone).
    let frames = &published[1..];
    let got = items_of(&log);
    assert_eq!(got.first(), Some(&published[0]), "slow: the sequence header first");
    let got = &got[1..];
    let prefix = got.iter().zip(frames).take_while(|(g, f)| g == f).count();
    assert!(prefix >= 10 && prefix < got.len(), "slow: {prefix} frames in order, then no gap ({} frames)", got.len());
    let resumed = frames.len() - (got.len() - prefix);
    assert_items_equal(&frames[resumed..], &got[prefix..], "slow: the run after the gap");
    assert!(frames[resumed].is_video_keyframe(), "slow: resumed at frame #{resumed}, not a keyframe");
    assert_eq!(
        stats.frames_dropped,
        (resumed - prefix) as u64,
        "slow: a gap of frames #{prefix}..#{resumed}, and no other frame dropped"
    );
    relay.shutdown().unwrap();
}

#[test]
fn without_the_gop_cache_a_late_joiner_starts_at_the_next_keyframe() {
    let (relay, mut publisher, published, split, late) = join_late(Config { gop_cache: false, ..test_config() });
    publisher.send_items(&published[split..], None).unwrap();
    publisher.stop().unwrap();
    let log = late.join();
    // Metadata and sequence headers (which are not the GOP) at once, then nothing until
    // the keyframe at 2023 ms: no audio, no inter frame before it.
    let start = assert_late_join(&published, &items_of(&log), "late joiner without a GOP cache");
    let frames = frames_of(&published);
    assert!(frames[start].is_video_keyframe(), "starts at {:?}", frames[start]);
    assert_eq!(frames[start].timestamp(), 2023, "the first keyframe after the join");
    relay.shutdown().unwrap();
}

#[test]
fn idle_timeout_keeps_a_waiting_player_that_answers_pings_and_closes_one_that_does_not() {
    // Players waiting for a stream send nothing of their own; the relay pings them at half
    // the idle timeout, and a ping answered counts as traffic.
    let relay = start_relay(Config { idle_timeout: Duration::from_secs(1), ..config_with_api() });
    let addr = relay.local_addr();
    let until_closed = PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(30) };
    let answering = PlayerThread::spawn(addr, APP, "s", until_closed, "answers pings");
    answering.wait_ready(EXCHANGE_TIMEOUT);
    let mut silent = RtmpTestClient::connect(addr, APP).unwrap();
    silent.request_play("s").unwrap();
    silent
        .wait_for(EXCHANGE_TIMEOUT, |e| matches!(e, ClientSessionEvent::PlaybackStarted { .. }))
        .unwrap();
    // From here on the silent player reads nothing, so it never answers a ping.
    assert!(
        eventually(Duration::from_secs(10), || relay.stats().players == 1),
        "the silent player was not closed: {:?}",
        relay.stats()
    );
    let closes = http::closes_by_reason(relay.http_addr().unwrap());
    assert_eq!(closes.get("idle"), Some(&1), "closed as idle: {closes:?}");
    // It was closed at least one idle timeout after its ping; the one that answers, which
    // joined first, is still there.
    assert!(silent.wait_closed(Duration::from_secs(5)).unwrap());
    let log = answering.snapshot();
    assert!(!log.contains(&Received::Closed), "the player that answers pings was closed: {}", summarize(&log));
    assert_eq!(relay.stats().players, 1);
    drop(answering);
    relay.shutdown().unwrap();
}

#[test]
fn second_publisher_gets_bad_name_while_the_first_keeps_going() {
    let relay = start_relay(test_config());
    let addr = relay.local_addr();
    let published = fixture_items("h264_aac.flv", 0);
    let players = spawn_ready_players(addr, "s", 1, "badname");

    let mut first = RtmpTestClient::connect(addr, APP).unwrap();
    first.publish("s").unwrap();
    let half = published.len() / 2;
    first.send_items(&published[..half], None).unwrap();

    let mut second = RtmpTestClient::connect(addr, APP).unwrap();
    // The query string is not part of the stream key.
    let refusal = second
        .try_publish("s?other=1")
        .unwrap()
        .expect_err("second publisher must be refused");
    assert_eq!(refusal.code, codes::PUBLISH_BAD_NAME, "{refusal:?}");

    first.send_items(&published[half..], None).unwrap();
    first.stop().unwrap();
    for player in players {
        let label = player.label.clone();
        check_waiting_player(&published, &player.join(), &label);
    }
    relay.shutdown().unwrap();
}

/// A publisher on its own thread, paced at `speed` times real time, that stops politely.
fn paced_publisher(
    addr: std::net::SocketAddr,
    items: Vec<Item>,
    speed: f64,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut publisher = RtmpTestClient::connect(addr, APP)?;
        publisher.publish("s")?;
        publisher.send_items(&items, Some(speed))?;
        publisher.stop()
    })
}

/// A test relay whose HTTP API and metrics are on too (for close reasons and queues).
fn config_with_api() -> Config {
    Config { http_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() }
}

#[test]
fn hostile_clients_are_closed_each_for_its_own_reason_and_a_good_player_keeps_receiving() {
    // The handshake timeout is long enough that only the peer that stalls can meet it: each
    // of the others must be closed for what it sent, at once.
    let config = Config {
        handshake_timeout: Duration::from_secs(3),
        max_message_size: 1024 * 1024,
        ..config_with_api()
    };
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let api = relay.http_addr().unwrap();
    let published = fixture_items("h264_aac.flv", 0);
    let good = spawn_ready_players(addr, "s", 1, "good");
    let publisher = paced_publisher(addr, published.clone(), 1.5);
    let hostile_reasons = |relay: &rtmp_edge::relay::RelayHandle| {
        // Peers that leave, and this test's own requests for /metrics, are not hostile.
        let mut closes = http::closes_by_reason(relay.http_addr().unwrap());
        closes.remove("peer_closed");
        closes.remove("http_done");
        closes
    };
    let expect = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(reason, count)| (reason.to_string(), *count)).collect()
    };

    // Garbage instead of a handshake (not even version 3).
    let mut garbage = raw_socket(addr);
    let noise: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x40)
        .collect();
    let _ = std::io::Write::write_all(&mut garbage, &noise);
    assert!(socket_closed_within(&mut garbage, Duration::from_secs(5)), "garbage connection was not closed");
    assert_eq!(hostile_reasons(&relay), expect(&[("handshake_failed", 1)]), "garbage: a failed handshake");

    // A good handshake, then a chunk header announcing a 16 MB message (limit is 1 MB).
    let mut huge = RtmpTestClient::handshake_only(addr).unwrap();
    let header = [0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0];
    std::io::Write::write_all(huge.socket(), &header).unwrap();
    let _ = std::io::Write::write_all(huge.socket(), &[0u8; 128]);
    assert!(huge.wait_closed(Duration::from_secs(5)).unwrap(), "connection announcing a 16 MB message was not closed");
    assert_eq!(
        hostile_reasons(&relay),
        expect(&[("handshake_failed", 1), ("protocol_error", 1)]),
        "a 16 MB message: a protocol error"
    );

    // A good handshake, then chunk-stream garbage.
    let mut chunk_garbage = RtmpTestClient::handshake_only(addr).unwrap();
    let _ = std::io::Write::write_all(chunk_garbage.socket(), &noise);
    assert!(chunk_garbage.wait_closed(Duration::from_secs(5)).unwrap(), "chunk garbage connection was not closed");
    assert_eq!(
        hostile_reasons(&relay),
        expect(&[("handshake_failed", 1), ("protocol_error", 2)]),
        "chunk garbage: a protocol error"
    );

    // A handshake that stops halfway through C1: only the timeout closes it.
    let mut half = raw_socket(addr);
    let mut c0c1_part = vec![3u8];
    c0c1_part.extend(std::iter::repeat_n(0x5a, 700));
    std::io::Write::write_all(&mut half, &c0c1_part).unwrap();
    assert!(socket_closed_within(&mut half, Duration::from_secs(10)), "half handshake was not closed");
    assert_eq!(
        hostile_reasons(&relay),
        expect(&[("handshake_failed", 1), ("handshake_timeout", 1), ("protocol_error", 2)]),
        "half a handshake: the timeout"
    );

    publisher.join().unwrap().unwrap();
    for player in good {
        let label = player.label.clone();
        check_waiting_player(&published, &player.join(), &label);
    }
    let stats = relay.stats();
    assert_eq!((stats.protocol_errors, stats.handshake_timeouts), (3, 1), "{stats:?}");
    assert_eq!(hostile_reasons(&relay).values().sum::<u64>(), 4, "no other close but peers leaving: {:?}", http::closes_by_reason(api));
    relay.shutdown().unwrap();
}

#[test]
fn a_thousand_silent_connections_do_not_disturb_a_good_player() {
    let config = Config {
        max_connections: 2_000,
        max_connections_per_ip: 2_000,
        ..test_config()
    };
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let published = fixture_items("h264_aac.flv", 0);
    let good = spawn_ready_players(addr, "s", 1, "good");
    let before = relay.stats().connections_open;

    let silent: Vec<TcpStream> = (0..1000).map(|_| raw_socket(addr)).collect();
    assert!(
        eventually(Duration::from_secs(10), || relay.stats().connections_open == before + 1000),
        "relay did not accept 1000 connections: {:?}",
        relay.stats()
    );
    let publisher = paced_publisher(addr, published.clone(), 2.0);
    publisher.join().unwrap().unwrap();
    for player in good {
        let label = player.label.clone();
        check_waiting_player(&published, &player.join(), &label);
    }
    assert_eq!(relay.stats().connections_refused, 0);
    drop(silent);
    relay.shutdown().unwrap();
}

/// Opens connections until the relay has accepted `count` of them.
fn accepted_clients(addr: std::net::SocketAddr, count: usize) -> Vec<RtmpTestClient> {
    (0..count)
        .map(|_| RtmpTestClient::connect(addr, APP).unwrap())
        .collect()
}

#[test]
fn max_connections_refuses_extra_connections() {
    let config = Config {
        max_connections: 3,
        ..test_config()
    };
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let mut clients = accepted_clients(addr, 3);
    let mut extra = raw_socket(addr);
    let _ = std::io::Write::write_all(&mut extra, &[3u8; 1537]);
    assert!(
        socket_closed_within(&mut extra, Duration::from_secs(5)),
        "4th connection was not closed"
    );
    assert_eq!(relay.stats().connections_refused, 1, "{:?}", relay.stats());
    // The accepted ones still work.
    for (index, client) in clients.iter_mut().enumerate() {
        client.publish(&format!("s{index}")).unwrap();
    }
    // A freed slot can be used again.
    drop(clients.pop());
    assert!(
        eventually(Duration::from_secs(5), || relay.stats().connections_open == 2),
        "closed connection not noticed: {:?}",
        relay.stats()
    );
    RtmpTestClient::connect(addr, APP).unwrap();
    relay.shutdown().unwrap();
}

#[test]
fn max_connections_per_ip_refuses_extra_connections() {
    let config = Config {
        max_connections: 100,
        max_connections_per_ip: 2,
        ..test_config()
    };
    let relay = start_relay(config);
    let addr = relay.local_addr();
    let _clients = accepted_clients(addr, 2);
    let mut extra = raw_socket(addr);
    let _ = std::io::Write::write_all(&mut extra, &[3u8; 1537]);
    assert!(
        socket_closed_within(&mut extra, Duration::from_secs(5)),
        "3rd connection from 127.0.0.1 was not closed"
    );
    let stats = relay.stats();
    assert_eq!(stats.connections_refused, 1, "{stats:?}");
    assert_eq!(stats.connections_open, 2, "{stats:?}");
    relay.shutdown().unwrap();
}

#[test]
fn shutdown_flushes_a_players_queue_then_sends_play_stop_and_closes() {
    let relay = start_relay(config_with_api());
    let addr = relay.local_addr();
    let api = relay.http_addr().unwrap();
    let until_closed = PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(30) };
    let player = PlayerThread::spawn(addr, APP, "s", until_closed, "shutdown");
    player.wait_ready(EXCHANGE_TIMEOUT);
    player.hold_reading();
    // The player reads nothing until the shutdown has begun, and the relay holds part of
    // what was published in the player's queue.
    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s").unwrap();
    let mut published = vec![avc_sequence_header()];
    publisher.send_item(&published[0]).unwrap();
    let queued = |api| http::clients_with_role(api, "player")[0]["queue_bytes"].as_u64().unwrap();
    let mut n = 0;
    while queued(api) == 0 {
        assert!(n < 500, "the relay queued nothing for a player that does not read");
        for _ in 0..10 {
            let frame = big_frame(n, 64 * 1024);
            publisher.send_item(&frame).unwrap();
            published.push(frame);
            n += 1;
        }
        publisher.drain_nonblocking().unwrap();
    }
    let shutdown = std::thread::spawn(move || relay.shutdown());
    // A request in flight when the shutdown begins may be closed unanswered; ask again.
    let shutting_down = || {
        http::request(api, "GET", "/api/v1/summary", None).is_ok_and(|answer| answer.json()["shutting_down"] == true)
    };
    assert!(eventually(Duration::from_secs(5), shutting_down), "the shutdown did not begin");
    assert!(queued(api) > 0, "the player's queue must still hold data when the shutdown begins");
    player.resume_reading();
    shutdown.join().unwrap().unwrap();
    let log = player.join();
    assert_flushed_then_stopped(&published, &log, "the flushed player");
    assert!(publisher.wait_closed(Duration::from_secs(5)).unwrap(), "publisher not closed after shutdown");
}

#[test]
fn a_player_cannot_also_publish_on_the_same_connection() {
    let relay = start_relay(test_config());
    let mut client = RtmpTestClient::connect(relay.local_addr(), APP).unwrap();
    client.request_play("watched").unwrap();
    client
        .wait_for(Duration::from_secs(5), |e| matches!(e, rtmp_edge::sessions::ClientSessionEvent::PlaybackStarted { .. }))
        .unwrap();
    match client.try_publish("other").unwrap() {
        Err(status) => assert_eq!(status.code, codes::PUBLISH_BAD_NAME),
        Ok(stream_id) => panic!("a playing connection was allowed to publish on stream {stream_id}"),
    }
}

#[test]
fn a_client_that_sends_commands_and_never_reads_is_closed() {
    use rtmp_edge::chunk_io::ChunkEncoder;
    use rtmp_edge::messages::RtmpMessage;
    use rtmp_edge::time::RtmpTimestamp;
    use rtmp_edge::Amf0Value;
    use std::io::Write;

    let relay = start_relay(Config { queue_hard_limit_bytes: 256 * 1024, ..test_config() });
    let mut client = RtmpTestClient::connect(relay.local_addr(), APP).unwrap();
    let mut batch = bytes::BytesMut::new();
    for transaction in 0..2000u32 {
        let command = RtmpMessage::command(
            "getStreamLength",
            f64::from(transaction + 10),
            Amf0Value::Null,
            vec![Amf0Value::Utf8String("s".into())],
        );
        let payload = command.into_payload(RtmpTimestamp::ZERO, 0).unwrap();
        ChunkEncoder::encode_standalone(3, &payload, 128, &mut batch).unwrap();
    }
    // Far more answers than loopback buffers hold: the relay must give up on this client
    // instead of queueing them all.
    let socket = client.socket();
    let mut written = 0usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && relay.stats().connections_open > 0 {
        if socket.write_all(&batch).is_err() {
            break;
        }
        written += batch.len();
        if written > 200 * 1024 * 1024 {
            break;
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || relay.stats().connections_open == 0),
        "the relay kept a client that never reads after {written} bytes of commands: {:?}",
        relay.stats()
    );
}
