//! Hostile HTTP clients against the relay's HTTP listener while real ffmpeg players watch
//! a real ffmpeg publisher: garbage, oversized heads, slowloris and a thousand idle
//! connections. The players must still get every packet (hashes equal in and out), and
//! the API must still answer.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::{self, parse_answer};
use common::interop::*;
use common::*;
use rtmp_edge::relay::Config;

const FIXTURE: &str = "h264_aac.flv";
const IDLE_CONNECTIONS: usize = 1000;

/// Sends `bytes` (ignoring a reset once the relay gave up on us) and reads until the relay
/// closes the connection. Returns the answer, if one came before the close.
fn send_and_read_to_close(addr: SocketAddr, bytes: &[u8]) -> Option<http::HttpAnswer> {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP listener");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the relay neither answered nor closed: {e}"),
        }
    }
    parse_answer(&answer)
}

/// Closes every player connection through the API.
fn kick_players(api: SocketAddr) {
    let clients = http::get(api, "/api/v1/clients", None).json();
    for client in clients.as_array().unwrap().iter().filter(|c| c["role"] == "player") {
        let id = client["client_id"].as_u64().unwrap();
        let answer = http::request(api, "DELETE", &format!("/api/v1/clients/{id}"), None).unwrap();
        assert_eq!(answer.status, 200, "kick {id}: {}", answer.text());
    }
}

/// Deterministic bytes that are no HTTP request.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A client that sends a request head one byte at a time and never finishes it. Returns
/// whether the relay closed the connection before `deadline`.
fn slowloris_closed(addr: SocketAddr, deadline: Duration) -> bool {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    let head = b"GET /metrics HTTP/1.1\r\nHost: relay\r\nX-Slow: ";
    let end = Instant::now() + deadline;
    let mut sent = 0usize;
    while Instant::now() < end {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).is_err() {
            return true;
        }
        sent += 1;
        let mut chunk = [0u8; 512];
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn garbage_huge_heads_slowloris_and_a_thousand_idle_connections_leave_rtmp_players_whole() {
    // This process holds the thousand idle connections itself.
    rlimit::increase_nofile_limit(8192).expect("raise this test's RLIMIT_NOFILE");
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ops-hostile");
    let config = Config {
        http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        http_header_timeout: Duration::from_secs(2),
        max_connections_per_ip: 5000,
        ..test_config()
    };
    let max_http = config.http_max_connections;
    let relay = start_relay(config);
    let api = relay.http_addr().unwrap();
    let source = live_url(relay.local_addr(), "hostile");
    let mut players = Vec::new();
    for index in 0..2 {
        let out = dir.join(&format!("player{index}.flv"));
        let (child, log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, &format!("player{index}"), &[]);
        players.push((child, log, out));
    }
    assert!(eventually(Duration::from_secs(10), || relay.stats().players == 2), "players did not start");
    // 16 s of media: everything below happens while it plays.
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "publisher", &["-stream_loop", "3"]);
    assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 1), "publisher did not start");

    // Garbage of every kind: answered 400 (or 431 when it looks like a long token) and closed.
    let mut rtmp_handshake = vec![3u8];
    rtmp_handshake.extend_from_slice(&[0u8; 1536]);
    let mut inputs: Vec<Vec<u8>> = (0..40).map(|seed| garbage(seed, 4096)).collect();
    inputs.push(rtmp_handshake);
    inputs.push(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec());
    inputs.push(b"GET / HTTP/9.9\r\n\r\n".to_vec());
    inputs.push(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec());
    for (index, input) in inputs.iter().enumerate() {
        let answer = send_and_read_to_close(api, input).unwrap_or_else(|| panic!("no answer to garbage #{index}"));
        assert!([400, 431, 501].contains(&answer.status), "garbage #{index}: {}", answer.status);
    }

    // A head past the limit: 431, closed. One of a megabyte may be cut short by a reset
    // once the relay stops reading, but never crashes or stalls anything.
    let mut long_head = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    long_head.resize(20 * 1024, b'a');
    assert_eq!(send_and_read_to_close(api, &long_head).map(|a| a.status), Some(431));
    let mut huge_head = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge_head.resize(1024 * 1024, b'a');
    if let Some(answer) = send_and_read_to_close(api, &huge_head) {
        assert_eq!(answer.status, 431);
    }

    // Slowloris: closed at the header timeout, though it never stops sending.
    let slow: Vec<_> = (0..3).map(|_| std::thread::spawn(move || slowloris_closed(api, Duration::from_secs(20)))).collect();
    for client in slow {
        assert!(client.join().unwrap(), "a slowloris client was never closed");
    }

    // A thousand idle connections: the relay holds at most http-max-connections of them;
    // each new one takes the place of the one idle longest, so the API still answers.
    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|index| TcpStream::connect(api).unwrap_or_else(|e| panic!("idle connection #{index}: {e}")))
        .collect();
    let summary = http::get(api, "/api/v1/summary", None).json();
    let open = summary["connections"].as_u64().unwrap() as usize;
    assert!(open <= max_http + 3, "{open} connections open: HTTP is not bounded");
    assert_eq!(http::get(api, "/healthz", None).status, 200);
    let metrics = http::get(api, "/metrics", None).text();
    let closed = |reason: &str| -> u64 {
        let prefix = format!("rtmp_edge_connections_closed_total{{reason=\"{reason}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(prefix.as_str())).map_or(0, |value| value.parse().unwrap())
    };
    // Made room for (or, on a slow machine, timed out before the rest arrived).
    let (evicted, timed_out) = (closed("http_evicted"), closed("http_header_timeout"));
    assert!(evicted > 0 && timed_out >= 3, "evicted {evicted}, timed out {timed_out}");
    assert!((evicted + timed_out) as usize >= IDLE_CONNECTIONS - max_http, "evicted {evicted}, timed out {timed_out}");
    assert!(metrics.contains("rtmp_edge_protocol_errors_total{reason=\"http_bad_request\"}"));
    drop(idle);

    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(60));
    // The players wait for the next publisher after StreamEOF. An ffmpeg stopped by a
    // signal loses what it still buffered; one whose connection ends writes it all, so they
    // are closed through the API once they have read everything.
    let drained = eventually(Duration::from_secs(10), || {
        let clients = http::get(api, "/api/v1/clients", None).json();
        let players: Vec<&serde_json::Value> = clients.as_array().unwrap().iter().filter(|c| c["role"] == "player").collect();
        players.len() == 2 && players.iter().all(|c| c["queue_bytes"] == 0)
    });
    assert!(drained, "the players did not read everything");
    kick_players(api);
    let input = repeated(&fixture_packets(FIXTURE), 4);
    for (index, (mut child, log, out)) in players.into_iter().enumerate() {
        let interrupted = stop_player(&mut child, Duration::from_secs(10));
        let output = check_output(&input, &out, &log, 0.9, interrupted, &format!("player{index}"));
        // Waiting from before the publish, each got the stream from its first keyframe.
        assert_eq!(assert_contiguous_run(&input, &output, "video", 1, "video"), 0, "player{index}");
    }
    let stats = relay.stats();
    assert_eq!((stats.frames_dropped, stats.slow_players_disconnected), (0, 0), "{stats:?}");
    relay.shutdown().unwrap();
}
