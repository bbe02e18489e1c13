//! Hostile clients of HTTP-FLV and WebSocket-FLV, on raw sockets, against the relay while a
//! well-behaved reader plays the same stream: a huge path, a request trickled a byte at a
//! time, garbage after a play request, WebSocket frames that are unmasked, oversized or a
//! ping flood, and a player that never reads. Each closes (or costs) only its own
//! connection; the reader gets every frame, and the relay counts each close by reason.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::flv_http::spawn_reader;
use common::http::{self, closes_by_reason};
use common::interop::wait_players;
use common::*;
use rtmp_edge::relay::{Config, RelayHandle};

const FIXTURE: &str = "h264_aac.flv";
const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn relay(config: Config) -> (RelayHandle, SocketAddr) {
    let relay = start_relay(Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..config });
    let api = relay.http_addr().unwrap();
    (relay, api)
}

/// Sends `request` and reads until the relay closes; everything it sent.
fn send_and_read_all(api: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = raw_socket(api);
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// A WebSocket-FLV client that has read the 101 (and whatever followed in the same read).
fn websocket_player(api: SocketAddr, name: &str) -> TcpStream {
    let mut stream = raw_socket(api);
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(format!("GET /live/{name}.flv HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the 101");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
    stream
}

/// Reads server frames until the close frame; its status code.
fn close_code(stream: &mut TcpStream) -> u16 {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let (length, start) = match rest[1] & 0x7F {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize, 10),
            short => (short as usize, 2),
        };
        if rest[0] & 0x0F == 8 {
            return u16::from_be_bytes([rest[start], rest[start + 1]]);
        }
        rest = &rest[start + length..];
    }
    panic!("no close frame in {} bytes", bytes.len())
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first, 0x80 | payload.len() as u8, 1, 2, 3, 4];
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));
    frame
}

/// Publishes the fixture `passes` times back to back, as fast as the relay reads.
fn publish_passes(relay: &RelayHandle, name: &str, passes: u32) -> Vec<Item> {
    let mut items = Vec::new();
    for pass in 0..passes {
        let fixture = fixture_items(FIXTURE, pass * 5000);
        items.extend(fixture.into_iter().filter(|item| pass == 0 || item.is_frame()));
    }
    let mut publisher = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    publisher.publish(name).unwrap();
    publisher.send_items(&items, None).unwrap();
    items
}

#[test]
fn hostile_requests_close_only_their_own_connection() {
    let config = Config { http_header_timeout: Duration::from_secs(1), ..test_config() };
    let (relay, api) = relay(config);
    let reader = spawn_reader(api, "/live/s.flv", false);
    wait_players(&relay, 1, "the reader");

    // A path far over the head limit: 431, closed.
    let huge = format!("GET /live/{}.flv HTTP/1.1\r\n\r\n", "a".repeat(100_000));
    let answer = send_and_read_all(api, huge.as_bytes());
    assert!(answer.starts_with(b"HTTP/1.1 431 "), "{}", String::from_utf8_lossy(&answer[..answer.len().min(200)]));
    // A play request trickled a byte at a time: the header timeout closes it.
    let mut slow = raw_socket(api);
    slow.write_all(b"GET /live/s.f").unwrap();
    assert!(socket_closed_within(&mut slow, Duration::from_secs(5)), "the slow request was not closed");
    // Garbage after a play request is dropped, and the play goes on.
    let mut chatty = raw_socket(api);
    chatty.write_all(b"GET /live/s.flv HTTP/1.1\r\n\r\n\x16\x03\x01garbage\r\n\r\nGET / HTTP/1.1\r\n\r\n").unwrap();
    wait_players(&relay, 2, "the chatty player");
    // Not a stream path: 400.
    assert!(send_and_read_all(api, b"GET /live/%ZZ.flv HTTP/1.1\r\nConnection: close\r\n\r\n").starts_with(b"HTTP/1.1 400 "));

    let published = publish_passes(&relay, "s", 2);
    assert!(read_until_contains(&mut chatty, b"FLV\x01", Duration::from_secs(10)), "the chatty player got no FLV");
    let closes = closes_by_reason(api);
    assert_eq!(closes.get("http_bad_request"), Some(&1), "the huge path: {closes:?}");
    assert_eq!(closes.get("http_header_timeout"), Some(&1), "{closes:?}");
    relay.shutdown().unwrap();
    let received = reader.join().unwrap().unwrap();
    let frames = received.items.iter().filter(|item| item.is_frame()).count();
    assert_eq!(frames, frames_from_first_keyframe(&published), "the reader got every frame");
}

/// Reads until `needle` has arrived (true) or `timeout` passed.
fn read_until_contains(stream: &mut TcpStream, needle: &[u8], timeout: Duration) -> bool {
    stream.set_read_timeout(Some(READ_STEP)).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(read) = stream.read(&mut buffer) {
            received.extend_from_slice(&buffer[..read]);
            if received.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
        }
    }
    false
}

/// The frames a player that waited gets: from the first frame a decoder can start from, a
/// video keyframe, or audio before any video frame was seen (the relay cannot know yet that
/// video will come).
fn frames_from_first_keyframe(published: &[Item]) -> usize {
    let frames: Vec<&Item> = published.iter().filter(|item| item.is_frame()).collect();
    let start = frames.iter().position(|item| item.is_video_keyframe() || !item.is_video_frame()).unwrap_or(0);
    frames.len() - start
}

#[test]
fn websocket_abuse_closes_only_that_connection_with_a_close_frame() {
    let (relay, api) = relay(test_config());
    let reader = spawn_reader(api, "/live/w.flv", true);
    wait_players(&relay, 1, "the WebSocket reader");

    let mut unmasked = websocket_player(api, "w");
    unmasked.write_all(&[0x89, 0x01, b'x']).unwrap();
    assert_eq!(close_code(&mut unmasked), 1002);

    let mut oversized = websocket_player(api, "w");
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
    oversized.write_all(&frame).unwrap();
    assert_eq!(close_code(&mut oversized), 1009);

    let mut flood = websocket_player(api, "w");
    // A few past the limit, all read at once: the close comes with a FIN, not a reset.
    let pings: Vec<u8> = (0..25).flat_map(|_| masked(0x89, b"ping")).collect();
    let _ = flood.write_all(&pings);
    assert_eq!(close_code(&mut flood), 1008);

    let mut polite = websocket_player(api, "w");
    polite.write_all(&masked(0x88, &1000u16.to_be_bytes())).unwrap();
    assert_eq!(close_code(&mut polite), 1000);

    let published = publish_passes(&relay, "w", 1);
    let closes = closes_by_reason(api);
    assert_eq!(closes.get("protocol_error"), Some(&3), "{closes:?}");
    let metrics = http::get(api, "/metrics", None).text();
    assert!(metrics.contains("rtmp_edge_players 1\n"), "only the reader still plays");
    relay.shutdown().unwrap();
    let received = reader.join().unwrap().unwrap();
    let frames = received.items.iter().filter(|item| item.is_frame()).count();
    assert_eq!(frames, frames_from_first_keyframe(&published), "the reader got every frame");
}

#[test]
fn an_http_flv_player_that_never_reads_is_disconnected_and_the_others_play_on() {
    // Judged by the entry count: exact, whatever the kernel buffers on either side hold.
    let config = Config { queue_hard_limit_entries: 4000, ..test_config() };
    let (relay, api) = relay(config);
    let reader = spawn_reader(api, "/live/n.flv", false);
    // A small receive buffer, so the kernel holds little of what the relay sends it.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&api.into()).unwrap();
    let mut stuck: TcpStream = socket.into();
    let stuck_port = stuck.local_addr().unwrap().port();
    stuck.write_all(b"GET /live/n.flv HTTP/1.1\r\n\r\n").unwrap();
    wait_players(&relay, 2, "the reader and the player that never reads");
    let mut publisher = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    publisher.publish("n").unwrap();
    let mut published = Vec::new();
    // Pass after pass of the fixture, each one (about 550 queue entries) sent once the
    // reader has drained the last: only the player that never reads piles them up.
    for pass in 0..60 {
        let items: Vec<Item> = fixture_items(FIXTURE, pass * 5000).into_iter().filter(|item| pass == 0 || item.is_frame()).collect();
        publisher.send_items(&items, None).unwrap();
        published.extend(items);
        let drained = || {
            let clients = http::get(api, "/api/v1/clients", None).json();
            clients.as_array().unwrap().iter().filter(|c| c["role"] == "player" && c["port"] != stuck_port).all(|c| c["queue_bytes"] == 0)
        };
        assert!(eventually(Duration::from_secs(10), drained), "the reader did not drain pass {pass}");
        if closes_by_reason(api).get("too_slow") == Some(&1) {
            break;
        }
    }
    assert_eq!(closes_by_reason(api).get("too_slow"), Some(&1), "the player that never reads is still connected");
    assert_eq!(relay.stats().slow_players_disconnected, 1);
    relay.shutdown().unwrap();
    let received = reader.join().unwrap().unwrap();
    let frames = received.items.iter().filter(|item| item.is_frame()).count();
    assert_eq!(frames, frames_from_first_keyframe(&published), "the reader got every frame");
    drop(stuck);
}
