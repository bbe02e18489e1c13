//! Players: wall-clock queue limits, timestamp jumps, pause, receiveAudio/Video, restarts.

use std::time::Duration;

use bytes::Bytes;

use super::harness::{avc_header, inter_frame, keyframe, test_config, Harness};
use crate::relay::core::CloseReason;
use crate::relay::Config;
use crate::sessions::{ClientSessionEvent, MediaKind};

// Defect 2: an 11 s forward jump, with frames on both sides of it in one read, cut every
// player as "too slow" although all of them read at full speed.
#[test]
fn a_timestamp_jump_in_one_read_neither_cuts_nor_skips_players() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let players: Vec<_> = (0..3).map(|_| h.player("live", "s")).collect();
    // Everything below reaches the core in a single input.
    let client = h.peer(publisher).client();
    let mut sent = Vec::new();
    for (timestamp, body) in [(0, avc_header()), (0, keyframe(200)), (40, inter_frame(100)), (11_040, inter_frame(100)), (11_080, keyframe(200)), (11_120, inter_frame(100))] {
        client.publish_media(MediaKind::Video, crate::time::RtmpTimestamp::new(timestamp), body.clone()).unwrap();
        sent.push((MediaKind::Video, timestamp, body));
    }
    h.send_outbound(publisher);
    h.pump();
    assert_eq!(h.stats().frames_dropped, 0);
    assert_eq!(h.stats().slow_players_disconnected, 0);
    for player in players {
        assert!(h.peer(player).closed.is_none());
        assert_eq!(h.peer(player).media(), sent);
    }
}

// The slow-player state machine on the wall clock: a player that stops reading gets a
// prefix, drops whole frames while behind, and resumes at a keyframe once it catches up.
#[test]
fn a_slow_player_gets_a_prefix_a_gap_then_a_run_from_a_keyframe() {
    let config = Config { queue_soft_limit_ms: 1000, queue_hard_limit_ms: 10_000, ..test_config() };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let slow = h.player("live", "s");
    let mut timestamp = 0;
    let mut send = |h: &mut Harness, key: bool| {
        let body = if key { keyframe(300) } else { inter_frame(100) };
        h.send_media(publisher, MediaKind::Video, timestamp, body);
        timestamp += 40;
        h.advance(Duration::from_millis(40));
    };
    for i in 0..10 {
        send(&mut h, i == 0);
    }
    h.peer(slow).reading = false;
    // 2 s without reading, a keyframe every 25 frames.
    for i in 10..60 {
        send(&mut h, i % 25 == 0);
    }
    h.peer(slow).reading = true;
    for i in 60..120 {
        send(&mut h, i % 25 == 0);
    }
    let got: Vec<u32> = h.peer(slow).media().iter().map(|(_, ts, _)| *ts).collect();
    assert!(h.stats().frames_dropped > 0);
    assert!(h.peer(slow).closed.is_none());
    // Prefix: everything sent before it stalled, and what was queued while the wait grew.
    let gap_at = got.windows(2).position(|pair| pair[1] - pair[0] > 40).expect("a gap");
    assert_eq!(&got[..10], &(0..10).map(|i| i * 40).collect::<Vec<_>>()[..]);
    let resumed = got[gap_at + 1];
    assert_eq!(resumed % (25 * 40), 0, "resumes at a keyframe: {resumed} in {got:?}");
    let expected_run: Vec<u32> = (resumed / 40..120).map(|i| i * 40).collect();
    assert_eq!(&got[gap_at + 1..], &expected_run[..], "then everything from that keyframe on");
}

#[test]
fn a_paused_player_is_not_cut_and_resumes_at_a_keyframe() {
    let config = Config { queue_soft_limit_ms: 500, queue_hard_limit_ms: 2000, ..test_config() };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let player = h.player("live", "s");
    let stream_id = 1;
    h.send_media(publisher, MediaKind::Video, 0, keyframe(100));
    h.pump();
    send_pause(&mut h, player, stream_id, true);
    for i in 1..=125u32 {
        let body = if i % 50 == 0 { keyframe(100) } else { inter_frame(50) };
        h.send_media(publisher, MediaKind::Video, i * 40, body);
        h.advance(Duration::from_millis(40));
    }
    assert!(h.peer(player).closed.is_none(), "paused 5 s past a 2 s hard limit: {:?}", h.close_reason(player));
    assert_eq!(h.peer(player).media().len(), 1, "nothing delivered while paused");
    send_pause(&mut h, player, stream_id, false);
    for i in 126..=160u32 {
        let body = if i % 50 == 0 { keyframe(100) } else { inter_frame(50) };
        h.send_media(publisher, MediaKind::Video, i * 40, body);
    }
    h.pump();
    let after: Vec<u32> = h.peer(player).media().iter().skip(1).map(|(_, ts, _)| *ts).collect();
    assert_eq!(after, (150..=160).map(|i| i * 40).collect::<Vec<_>>(), "resumed at the keyframe at 150");
    assert_eq!(h.stats().frames_dropped, 0);
}

fn send_pause(h: &mut Harness, player: crate::relay::ConnId, stream_id: u32, paused: bool) {
    let command = crate::messages::RtmpMessage::Amf0Command {
        name: "pause".to_string(),
        transaction_id: 0.0,
        command_object: crate::Amf0Value::Null,
        arguments: vec![crate::Amf0Value::Boolean(paused), crate::Amf0Value::Number(0.0)],
    };
    send_command(h, player, stream_id, command);
}

fn send_command(h: &mut Harness, player: crate::relay::ConnId, stream_id: u32, command: crate::messages::RtmpMessage) {
    let payload = command.into_payload(crate::time::RtmpTimestamp::ZERO, stream_id).unwrap();
    let mut encoder = crate::chunk_io::ChunkEncoder::new();
    let mut out = bytes::BytesMut::new();
    // The client session already set chunk size 4096 on this connection; a command this
    // small fits one chunk either way.
    encoder.encode(8, &payload, &mut out).unwrap();
    h.send_raw(player, &out);
    h.pump();
}

#[test]
fn receive_video_false_leaves_video_out_until_a_keyframe_after_true() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let player = h.player("live", "s");
    let audio = |n: u8| Bytes::from(vec![0xAF, 0x01, n]);
    h.send_media(publisher, MediaKind::Video, 0, keyframe(50));
    h.pump();
    let receive_video = |on: bool| crate::messages::RtmpMessage::Amf0Command {
        name: "receiveVideo".to_string(),
        transaction_id: 0.0,
        command_object: crate::Amf0Value::Null,
        arguments: vec![crate::Amf0Value::Boolean(on)],
    };
    send_command(&mut h, player, 1, receive_video(false));
    h.send_media(publisher, MediaKind::Audio, 20, audio(1));
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(50));
    send_command(&mut h, player, 1, receive_video(true));
    h.send_media(publisher, MediaKind::Video, 80, inter_frame(50));
    h.send_media(publisher, MediaKind::Video, 120, keyframe(50));
    h.send_media(publisher, MediaKind::Audio, 121, audio(2));
    h.pump();
    let got: Vec<(MediaKind, u32)> = h.peer(player).media().iter().map(|(kind, ts, _)| (*kind, *ts)).collect();
    assert_eq!(
        got,
        vec![(MediaKind::Video, 0), (MediaKind::Audio, 20), (MediaKind::Video, 120), (MediaKind::Audio, 121)]
    );
}

#[test]
fn receive_audio_false_leaves_audio_out_until_true_and_video_goes_on() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let player = h.player("live", "s");
    let audio = |n: u8| Bytes::from(vec![0xAF, 0x01, n]);
    h.send_media(publisher, MediaKind::Video, 0, keyframe(50));
    h.send_media(publisher, MediaKind::Audio, 10, audio(1));
    h.pump();
    let receive_audio = |on: bool| crate::messages::RtmpMessage::Amf0Command {
        name: "receiveAudio".to_string(),
        transaction_id: 0.0,
        command_object: crate::Amf0Value::Null,
        arguments: vec![crate::Amf0Value::Boolean(on)],
    };
    send_command(&mut h, player, 1, receive_audio(false));
    h.send_media(publisher, MediaKind::Audio, 20, audio(2));
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(50));
    h.send_media(publisher, MediaKind::Audio, 43, audio(3));
    send_command(&mut h, player, 1, receive_audio(true));
    // Audio comes back at once: every AAC frame decodes on its own.
    h.send_media(publisher, MediaKind::Audio, 66, audio(4));
    h.send_media(publisher, MediaKind::Video, 80, inter_frame(50));
    h.pump();
    let got: Vec<(MediaKind, u32)> = h.peer(player).media().iter().map(|(kind, ts, _)| (*kind, *ts)).collect();
    assert_eq!(
        got,
        vec![
            (MediaKind::Video, 0),
            (MediaKind::Audio, 10),
            (MediaKind::Video, 40),
            (MediaKind::Audio, 66),
            (MediaKind::Video, 80)
        ]
    );
    assert_eq!(h.stats().frames_dropped, 0, "left out on request, not dropped");
}

#[test]
fn app_and_name_never_alias() {
    let mut h = Harness::new(test_config());
    let first = h.publisher("a/b", "c");
    let second = h.publisher("a", "b/c");
    let player_first = h.player("a/b", "c");
    let player_second = h.player("a", "b/c");
    h.send_media(first, MediaKind::Video, 0, keyframe(11));
    h.send_media(second, MediaKind::Video, 0, keyframe(22));
    h.pump();
    assert_eq!(h.peer(player_first).media().iter().map(|m| m.2.len()).collect::<Vec<_>>(), vec![11]);
    assert_eq!(h.peer(player_second).media().iter().map(|m| m.2.len()).collect::<Vec<_>>(), vec![22]);
}

// Defect 7: UnpublishNotify ended ffmpeg and librtmp players, and StreamEOF ends GStreamer's
// rtmp2src. A restart is told with StreamDry and StreamBegin alone, and the player resumes
// at the new publisher's keyframe with timestamps still increasing.
#[test]
fn a_publisher_restart_is_told_with_stream_dry_and_stream_begin_only() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let player = h.player("live", "s");
    h.send_media(publisher, MediaKind::Video, 1000, keyframe(50));
    h.send_media(publisher, MediaKind::Video, 1040, inter_frame(50));
    h.pump();
    let statuses_before = h.peer(player).count_events(|e| matches!(e, ClientSessionEvent::StatusReceived { .. }));
    h.peer(publisher).client().stop().unwrap();
    h.send_outbound(publisher);
    h.pump();
    let next = h.publisher("live", "s");
    h.send_media(next, MediaKind::Video, 0, inter_frame(50));
    h.send_media(next, MediaKind::Video, 40, keyframe(50));
    h.pump();
    let player = h.peer(player);
    assert_eq!(player.count_events(|e| matches!(e, ClientSessionEvent::StatusReceived { .. })), statuses_before, "no onStatus for a restart");
    assert_eq!(player.count_events(|e| matches!(e, ClientSessionEvent::StreamDry { .. })), 1);
    assert_eq!(player.count_events(|e| matches!(e, ClientSessionEvent::StreamEof { .. })), 0, "StreamEOF ends rtmp2src");
    assert_eq!(player.count_events(|e| matches!(e, ClientSessionEvent::StreamBegin { .. })), 2, "one at play, one at the restart");
    let timestamps: Vec<u32> = player.media().iter().map(|m| m.1).collect();
    // The new source's first message (the inter frame at 0, not delivered: no keyframe yet)
    // lands a frame after the old stream's last; its keyframe 40 ms later.
    assert_eq!(timestamps, vec![1000, 1040, 1120]);
    assert!(player.closed.is_none());
}

#[test]
fn a_late_joiner_gets_metadata_headers_then_the_gop() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let mut properties = std::collections::HashMap::new();
    properties.insert("width".to_string(), crate::Amf0Value::Number(640.0));
    h.peer(publisher).client().publish_metadata(properties).unwrap();
    h.send_outbound(publisher);
    h.send_media(publisher, MediaKind::Video, 0, avc_header());
    h.send_media(publisher, MediaKind::Video, 0, keyframe(60));
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(30));
    h.pump();
    let late = h.player("live", "s");
    let peer = h.peer(late);
    let metadata_index = peer.client_events.iter().position(|e| matches!(e, ClientSessionEvent::MetadataReceived { .. }));
    let first_media = peer.client_events.iter().position(|e| matches!(e, ClientSessionEvent::MediaReceived { .. }));
    assert!(metadata_index.is_some() && metadata_index < first_media, "metadata first: {:?}", peer.client_events);
    let lengths: Vec<usize> = peer.media().iter().map(|m| m.2.len()).collect();
    assert_eq!(lengths, vec![9, 60, 30]);
    let summary = &h.core.stream_summaries()[0];
    assert_eq!((summary.players, summary.gop_frames, summary.gop_ms, summary.live), (1, 2, 40, true));
}

#[test]
fn a_handshake_that_stops_halfway_times_out() {
    let config = Config { handshake_timeout: Duration::from_secs(2), ..test_config() };
    let mut h = Harness::new(config);
    let id = h.core.accept("127.0.0.1:1000".parse().unwrap(), crate::relay::ListenerKind::Rtmp, h.now).unwrap();
    h.send_raw(id, &[3, 0, 0]);
    h.advance(Duration::from_millis(1900));
    assert!(h.close_reason(id).is_none());
    h.advance(Duration::from_millis(400));
    assert_eq!(h.close_reason(id), Some(&CloseReason::HandshakeTimeout(Duration::from_secs(2))));
    assert_eq!(h.stats().handshake_timeouts, 1);
}

// A shutdown's Play.Stop was followed by the StreamDry of the publisher's close, and could
// be followed by media still arriving: the plays now end with Play.Stop and StreamEOF.
#[test]
fn nothing_follows_play_stop_in_a_shutdown() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let player = h.player("live", "s");
    h.send_media(publisher, MediaKind::Video, 0, keyframe(50));
    h.pump();
    h.peer(player).reading = false;
    h.core.begin_shutdown(h.now);
    h.pump();
    // The publisher's last frame arrives after the shutdown began; then it is closed.
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(50));
    h.core.handle_closed(publisher, CloseReason::PeerClosed, h.now);
    h.peer(player).reading = true;
    h.pump();
    let peer = h.peer(player);
    let stop = peer.client_events.iter().position(|e| matches!(e, ClientSessionEvent::StatusReceived { status, .. } if status.code == crate::sessions::codes::PLAY_STOP));
    let after: Vec<&ClientSessionEvent> = peer.client_events.iter().skip(stop.expect("Play.Stop") + 1).collect();
    assert!(matches!(after[..], [ClientSessionEvent::StreamEof { .. }]), "after Play.Stop: {after:?}");
    assert_eq!(peer.media().len(), 1);
    assert_eq!(h.stats().players, 0);
    assert!(h.stopped);
}
