//! What one hostile publisher or player can make the core hold or do.

use std::time::Duration;

use bytes::Bytes;

use super::harness::{avc_header, inter_frame, keyframe, test_config, Harness};
use crate::relay::core::{CloseReason, ENTRY_OVERHEAD};
use crate::relay::Config;
use crate::sessions::MediaKind;

// Defect 1: every empty message became a queued frame for each player and a GOP entry.
#[test]
fn a_flood_of_empty_video_messages_is_not_relayed_or_cached() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let players: Vec<_> = (0..3).map(|_| h.player("live", "s")).collect();
    h.send_media(publisher, MediaKind::Video, 0, avc_header());
    h.send_media(publisher, MediaKind::Video, 0, keyframe(100));
    h.pump();
    for players_before_flood in &players {
        h.peer(*players_before_flood).reading = false;
    }
    super::log_capture::start();
    for i in 0..20_000u32 {
        h.send_media(publisher, MediaKind::Video, i / 10, Bytes::new());
    }
    h.pump();
    assert_eq!(h.stats().media_ignored, 20_000);
    let lines = super::log_capture::containing("not relayed (too small to be media)");
    assert_eq!(lines.len(), 1, "one line per connection, naming the peer: {lines:?}");
    assert!(lines[0].1.starts_with(&format!("{}: live/s: Video message of 0 bytes", h.core.peer_addr(publisher).unwrap())), "{lines:?}");
    assert_eq!(h.stats().slow_players_disconnected, 0);
    let key = crate::relay::StreamKey::new("live", "s");
    assert_eq!(h.core.streams[&key].gop_held().0, 1, "only the keyframe is cached");
    for player in &players {
        let queue = &h.core.conns.get(*player).unwrap().out;
        assert!(queue.entries() < 10, "no entry per empty message: {}", queue.entries());
    }
    for player in players {
        h.peer(player).reading = true;
    }
    h.send_media(publisher, MediaKind::Video, 2000, inter_frame(50));
    h.pump();
    for (_, peer) in h.peers.iter().filter(|(id, _)| **id != publisher) {
        let media = peer.media();
        assert!(media.iter().all(|(_, _, body)| body.len() >= 2), "no empty message reached a player");
        assert_eq!(media.len(), 3, "header, keyframe, then the later frame: {media:?}");
        assert!(peer.closed.is_none());
    }
}

// Each queued entry costs its overhead, and the entry count is capped: tiny real frames to a
// player that never reads end in a disconnect, not in unbounded memory.
#[test]
fn tiny_frames_to_a_player_that_never_reads_hit_the_entry_limit() {
    let config = Config { queue_hard_limit_entries: 500, ..test_config() };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let reader = h.player("live", "s");
    let stalled = h.player("live", "s");
    h.peer(stalled).reading = false;
    h.send_media(publisher, MediaKind::Video, 0, keyframe(10));
    for i in 1..=600u32 {
        // Two-byte video command frames: the smallest plausible message.
        h.send_media(publisher, MediaKind::Video, i, Bytes::from_static(&[0x27, 0x01]));
        h.pump();
    }
    assert!(matches!(h.close_reason(stalled), Some(CloseReason::TooSlow { queued_entries: 501, .. })), "{:?}", h.close_reason(stalled));
    assert_eq!(h.stats().slow_players_disconnected, 1);
    assert!(h.peer(reader).closed.is_none());
    assert_eq!(h.peer(reader).media().len(), 601);
}

#[test]
fn queue_bytes_count_each_entrys_overhead() {
    let config = Config { queue_hard_limit_bytes: 100 * (12 + 2 + ENTRY_OVERHEAD), ..test_config() };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let stalled = h.player("live", "s");
    h.send_media(publisher, MediaKind::Video, 0, keyframe(10));
    h.pump();
    h.peer(stalled).reading = false;
    for i in 1..=99u32 {
        h.send_media(publisher, MediaKind::Video, i, Bytes::from_static(&[0x27, 0x01]));
    }
    h.pump();
    assert!(h.peer(stalled).closed.is_none(), "99 entries fit");
    for i in 100..=102u32 {
        h.send_media(publisher, MediaKind::Video, i, Bytes::from_static(&[0x27, 0x01]));
    }
    h.pump();
    assert!(matches!(h.close_reason(stalled), Some(CloseReason::TooSlow { .. })));
}

// Defect 3: metadata ignored the queue limits.
#[test]
fn looping_metadata_to_a_player_that_never_reads_ends_in_a_disconnect() {
    let config = Config { queue_hard_limit_bytes: 4 * 1024 * 1024, ..test_config() };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let reader = h.player("live", "s");
    let stalled = h.player("live", "s");
    h.peer(stalled).reading = false;
    let mut properties = std::collections::HashMap::new();
    properties.insert("padding".to_string(), crate::Amf0Value::Utf8String("x".repeat(60_000)));
    for _ in 0..100 {
        h.peer(publisher).client().publish_metadata(properties.clone()).unwrap();
        h.send_outbound(publisher);
        h.pump();
        if h.peer(stalled).closed.is_some() {
            break;
        }
    }
    assert!(matches!(h.close_reason(stalled), Some(CloseReason::TooSlow { .. })), "{:?}", h.close_reason(stalled));
    assert!(h.peer(reader).closed.is_none());
    let metadata = h.peer(reader).count_events(|e| matches!(e, crate::sessions::ClientSessionEvent::MetadataReceived { .. }));
    assert!(metadata >= 60, "the reading player got every metadata message sent so far: {metadata}");
}

#[test]
fn a_player_whose_queue_stops_draining_is_cut_at_the_hard_limit_even_without_new_frames() {
    let config = Config { queue_soft_limit_ms: 1000, queue_hard_limit_ms: 3000, ..test_config() };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let stalled = h.player("live", "s");
    h.send_media(publisher, MediaKind::Video, 0, keyframe(1000));
    h.pump();
    h.peer(stalled).reading = false;
    h.send_media(publisher, MediaKind::Video, 40, inter_frame(1000));
    h.pump();
    let queued_at = h.now;
    assert!(h.advance_until(Duration::from_secs(10), |h| h.close_reason(stalled).is_some()));
    let waited = h.now - queued_at;
    assert!(waited > Duration::from_millis(3000) && waited <= Duration::from_millis(3300), "cut after {waited:?}");
}

// Defect 4: a peer could set chunk size 1. The connection is closed as a protocol error
// naming the size, and the other connections carry on.
#[test]
fn a_peer_chunk_size_below_128_closes_that_connection_only() {
    let mut h = Harness::new(test_config());
    let publisher = h.publisher("live", "s");
    let player = h.player("live", "s");
    let hostile = h.publisher("live", "other");
    // SetChunkSize(1): fmt 0 on chunk stream 2, 4-byte body.
    h.send_raw(hostile, &[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.pump();
    let refused = crate::chunk_io::ChunkError::ChunkSizeBelowMinimum { size: 1, min: 128 };
    assert_eq!(
        h.close_reason(hostile),
        Some(&CloseReason::ProtocolError(crate::sessions::SessionError::Chunk(refused).to_string()))
    );
    assert_eq!(h.stats().protocol_errors, 1);
    h.send_media(publisher, MediaKind::Video, 0, keyframe(100));
    h.pump();
    assert_eq!(h.peer(player).media().len(), 1);
    assert!(h.peer(player).closed.is_none() && h.peer(publisher).closed.is_none());
}

// A connection flood past the limits is refused connection by connection, but logged at
// most 20 lines a second; the rest are summed up in one line, and counted in full.
#[test]
fn refusals_in_a_flood_are_logged_a_few_a_second_and_counted_in_full() {
    use crate::relay::core::{Refusal, RefusalLog};
    use crate::relay::ListenerKind;
    let mut h = Harness::new(Config { max_connections_per_ip: 1, ..test_config() });
    let from = |port: u16| std::net::SocketAddr::from(([192, 0, 2, 9], port));
    assert!(h.core.accept(from(1), ListenerKind::Rtmp, h.now).is_ok());
    super::log_capture::start();
    for port in 2..102 {
        assert!(matches!(h.core.accept(from(port), ListenerKind::Rtmp, h.now), Err(Refusal::TooManyFromAddress { .. })));
    }
    let lines = super::log_capture::take();
    assert_eq!(lines.len(), RefusalLog::LINES_PER_SECOND, "{lines:?}");
    assert!(lines.iter().all(|(_, line)| line.starts_with("192.0.2.9:") && line.contains("refused: 1 connections open from 192.0.2.9")), "{lines:?}");
    // The flood stopped: the core's tick sums up what was not logged.
    h.advance(Duration::from_secs(2));
    let summed: Vec<_> = super::log_capture::containing("more connections refused").into_iter().map(|(_, line)| line).collect();
    assert_eq!(summed, ["80 more connections refused in the last second, not logged one by one"]);
    // A new second logs again, one by one.
    let _ = h.core.accept(from(200), ListenerKind::Rtmp, h.now);
    let lines: Vec<_> = super::log_capture::take().into_iter().map(|(_, line)| line).collect();
    assert!(lines.first().is_some_and(|line| line.starts_with("192.0.2.9:200: refused")), "{lines:?}");
    assert_eq!(h.stats().connections_refused, 101);
}
