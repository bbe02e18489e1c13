//! WebSocket-FLV players in the core: the handshake, one tag per binary message, pings and
//! close answered, and abuse (unmasked, oversized and broken frames, ping floods, bad
//! upgrades) closing only that connection, with a close frame saying why.

use std::time::Duration;

use super::flv_client::{client_frame, http_request, parse_flv, parse_tags, read, split_head, ws_frames, ws_player};
use super::harness::{avc_header, inter_frame, keyframe, test_config, Harness};
use super::ops::{aac_frame, aac_header};
use crate::relay::core::{CloseReason, ConnId, MAX_PINGS_PER_SECOND};
use crate::relay::Config;
use crate::sessions::MediaKind;

const BINARY: u8 = 2;
const CLOSE: u8 = 8;
const PING: u8 = 9;
const PONG: u8 = 10;

fn publishing(h: &mut Harness) -> ConnId {
    let publisher = h.publisher("live", "s");
    h.send_media(publisher, MediaKind::Video, 0, avc_header());
    h.send_media(publisher, MediaKind::Audio, 0, aac_header());
    h.send_media(publisher, MediaKind::Video, 2000, keyframe(300));
    h.send_media(publisher, MediaKind::Audio, 2010, aac_frame(200));
    h.pump();
    publisher
}

/// A WebSocket player of live/s that has read its handshake answer and the stream so far.
fn playing(h: &mut Harness, port: u16) -> ConnId {
    let player = ws_player(h, port, "s");
    let bytes = read(h, player);
    let (head, _) = split_head(&bytes);
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    player
}

/// The status code of the close frame in `bytes` (after any other frames).
fn close_code(bytes: &[u8]) -> u16 {
    let frames = ws_frames(bytes);
    let (_, opcode, payload) = frames.last().expect("a close frame");
    assert_eq!(*opcode, CLOSE, "{frames:?}");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn the_upgrade_is_answered_and_each_tag_is_one_binary_message() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let player = ws_player(&mut h, 9001, "s");
    let bytes = read(&mut h, player);
    let (head, rest) = split_head(&bytes);
    assert_eq!(
        head,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
    let messages = ws_frames(&rest);
    assert!(messages.iter().all(|(fin, opcode, _)| *fin && *opcode == BINARY));
    assert_eq!(messages[0].2.len(), 13, "the file header alone");
    let stream: Vec<u8> = messages.iter().flat_map(|(_, _, payload)| payload.clone()).collect();
    let (flags, tags) = parse_flv(&stream);
    assert_eq!(flags, 5);
    assert_eq!(messages.len(), 1 + tags.len(), "one message per tag");
    assert_eq!(tags.iter().map(|t| t.timestamp).collect::<Vec<_>>(), [0, 0, 0, 10]);

    h.send_media(publisher, MediaKind::Video, 2040, inter_frame(70_000));
    h.pump();
    let live = ws_frames(&read(&mut h, player));
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].2.len(), 11 + 70_000 + 4, "a 16-bit length form message");
    assert_eq!(parse_tags(&live[0].2)[0].timestamp, 40);
    let view = super::flv_client::client_view(&mut h, player);
    assert_eq!((view["role"].as_str(), view["protocol"].as_str()), (Some("player"), Some("ws-flv")));
}

#[test]
fn pings_are_answered_and_a_close_is_answered_with_a_close() {
    let mut h = Harness::new(test_config());
    publishing(&mut h);
    let player = playing(&mut h, 9001);
    // A ping split across two reads.
    let ping = client_frame(0x80 | PING, b"are you there");
    h.core.handle_input(player, &ping[..5], h.now);
    h.core.handle_input(player, &ping[5..], h.now);
    h.pump();
    assert_eq!(ws_frames(&read(&mut h, player)), [(true, PONG, b"are you there".to_vec())]);
    h.core.handle_input(player, &client_frame(0x80 | BINARY, b"ignored"), h.now);
    h.core.handle_input(player, &client_frame(0x80 | CLOSE, &1000u16.to_be_bytes()), h.now);
    h.pump();
    assert_eq!(close_code(&read(&mut h, player)), 1000);
    assert_eq!(h.close_reason(player), Some(&CloseReason::PeerClosed));
    assert_eq!(h.stats().players, 0);
}

#[test]
fn unmasked_oversized_and_broken_frames_close_only_that_player() {
    let mut h = Harness::new(test_config());
    let publisher = publishing(&mut h);
    let bystander = playing(&mut h, 9000);
    let rtmp = h.player("live", "s");
    let mut unmasked = client_frame(0x80 | PING, b"x");
    unmasked[1] &= 0x7F;
    let mut oversized = vec![0x80 | BINARY, 0x80 | 127];
    oversized.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let cases: [(&[u8], u16, &str); 4] = [
        (&unmasked, 1002, "unmasked client frame"),
        (&oversized, 1009, "client frame of 1099511627776 bytes"),
        (&client_frame(0x80 | 0x3, b"x"), 1002, "unknown opcode"),
        (&client_frame(PING, b"x"), 1002, "fragmented or oversized control frame"),
    ];
    for (index, (input, code, why)) in cases.iter().enumerate() {
        let player = playing(&mut h, 9001 + index as u16);
        h.core.handle_input(player, input, h.now);
        h.pump();
        h.core.handle_input(player, &client_frame(0x80 | PING, b"after"), h.now);
        h.pump();
        assert_eq!(close_code(&read(&mut h, player)), *code, "{why}: no pong after the close frame");
        match h.close_reason(player) {
            Some(CloseReason::ProtocolError(text)) => assert!(text.contains(why), "{text}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    h.send_media(publisher, MediaKind::Video, 2040, inter_frame(100));
    h.pump();
    assert_eq!(parse_tags(&ws_frames(&read(&mut h, bystander))[0].2)[0].timestamp, 40, "the bystander plays on");
    assert!(h.peer(rtmp).closed.is_none());
    assert_eq!(h.stats().players, 2);
}

#[test]
fn a_ping_flood_closes_the_connection_and_pings_at_the_limit_do_not() {
    let mut h = Harness::new(test_config());
    publishing(&mut h);
    let polite = playing(&mut h, 9001);
    let flood = playing(&mut h, 9002);
    for second in 0..3 {
        for _ in 0..MAX_PINGS_PER_SECOND {
            h.core.handle_input(polite, &client_frame(0x80 | PING, b"p"), h.now);
        }
        h.advance(Duration::from_millis(1001));
        assert_eq!(ws_frames(&read(&mut h, polite)).len(), MAX_PINGS_PER_SECOND as usize, "second {second}");
    }
    for _ in 0..=MAX_PINGS_PER_SECOND {
        h.core.handle_input(flood, &client_frame(0x80 | PING, b"p"), h.now);
    }
    h.pump();
    assert_eq!(close_code(&read(&mut h, flood)), 1008);
    assert!(matches!(h.close_reason(flood), Some(CloseReason::ProtocolError(text)) if text.contains("ping flood")));
    assert!(h.core.is_open(polite));
}

#[test]
fn bad_upgrades_are_refused_with_their_status() {
    let mut h = Harness::new(test_config());
    for (headers, status) in [
        ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "426 Upgrade Required"),
        ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short", "400 Bad Request"),
        ("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "400 Bad Request"),
    ] {
        let id = http_request(&mut h, 9001, &format!("GET /live/s.flv HTTP/1.1\r\n{headers}\r\n\r\n"));
        let (head, _) = split_head(&read(&mut h, id));
        assert!(head.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{head}");
        assert!(head.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(!h.core.is_open(id));
    }
    assert_eq!(h.stats().players, 0);
}

#[test]
fn a_waiting_player_is_pinged_and_closed_only_when_it_stays_silent() {
    let mut h = Harness::new(Config { idle_timeout: Duration::from_secs(10), ..test_config() });
    let answers = ws_player(&mut h, 9001, "s");
    let silent = ws_player(&mut h, 9002, "s");
    read(&mut h, answers);
    read(&mut h, silent);
    h.advance(Duration::from_secs(6));
    for id in [answers, silent] {
        assert_eq!(ws_frames(&read(&mut h, id)), [(true, PING, b"rtmp-edge".to_vec())]);
    }
    h.core.handle_input(answers, &client_frame(0x80 | PONG, b"rtmp-edge"), h.now);
    h.advance(Duration::from_secs(6));
    assert_eq!(ws_frames(&read(&mut h, answers)), [(true, PING, b"rtmp-edge".to_vec())], "pinged again");
    assert!(!h.core.has_queued(silent), "one ping outstanding at a time");
    h.core.handle_input(answers, &client_frame(0x80 | PONG, b"rtmp-edge"), h.now);
    h.advance(Duration::from_secs(6));
    assert!(matches!(h.close_reason(silent), Some(CloseReason::Idle(_))), "{:?}", h.close_reason(silent));
    assert!(h.core.is_open(answers));
}

#[test]
fn a_shutdown_sends_websocket_players_a_going_away_close() {
    let mut h = Harness::new(test_config());
    publishing(&mut h);
    let player = playing(&mut h, 9001);
    h.core.begin_shutdown(h.now);
    h.pump();
    assert_eq!(close_code(&read(&mut h, player)), 1001);
    assert_eq!(h.close_reason(player), Some(&CloseReason::Shutdown));
}
