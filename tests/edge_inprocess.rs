//! Edge mode in-process: an origin relay, one or more edge relays pulling from it or
//! forwarding to it, players and publishers driven by the library's ClientSession, all on
//! loopback with ephemeral ports. Every content check compares what a player received with
//! what was published, message by message (kind, body bytes, timestamps).
//!
//! Faults are made with real sockets: a port with nothing listening, a listener that accepts
//! and never answers, an origin shut down and started again on the same port, a scripted
//! origin (library ServerSession) that refuses connect, play or publish.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::runs::assert_kinds_monotonic;
use common::*;
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::relay::{Config, RelayHandle};
use rtmp_edge::url::RtmpUrl;
use rtmp_edge::sessions::{
    codes, ClientSessionEvent, ServerSession, ServerSessionConfig, ServerSessionEvent,
};

const APP: &str = "live";
const FIXTURE: &str = "h264_aac.flv";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn until_unpublish(count: usize) -> PlayerStop {
    PlayerStop {
        after_unpublish: count,
        deadline: Duration::from_secs(30),
    }
}

fn for_seconds(seconds: u64) -> PlayerStop {
    PlayerStop {
        after_unpublish: 0,
        deadline: Duration::from_secs(seconds),
    }
}

/// A player that waited before the publish: no error status, every frame from the first
/// keyframe on, exact bytes and timestamps.
fn check_full_stream(published: &[Item], log: &[Received], label: &str) {
    let statuses = statuses_of(log);
    assert!(
        !statuses.iter().any(|s| is_error_code(s)),
        "{label}: error status: {statuses:?}"
    );
    let start = assert_late_join(published, &items_of(log), label);
    let keyframe = first_keyframe_frame_index(published);
    assert!(
        start <= keyframe,
        "{label}: a player waiting from the start should get everything from the first keyframe (frame #{keyframe}), started at frame #{start}; {}",
        summarize(log)
    );
}

fn is_error_code(code: &str) -> bool {
    code.contains("NotFound") || code.contains("Rejected") || code.contains("Failed") || code.contains("Denied")
}

/// Publishes `items` on origin `addr` as `name` once the edge's pull is there.
fn publish_all(addr: SocketAddr, name: &str, items: &[Item], speed: Option<f64>) -> RtmpTestClient {
    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish(name).unwrap();
    publisher.send_items(items, speed).unwrap();
    publisher
}

/// Waits until `relay` has at least `count` connections open (e.g. an edge's pull arrived),
/// then a little more so that the play request behind it is registered.
fn wait_connections(relay: &RelayHandle, count: u64, timeout: Duration, what: &str) {
    assert!(
        eventually(timeout, || relay.stats().connections_open >= count),
        "{what}: expected {count} open connections within {timeout:?}, stats {:?}",
        relay.stats()
    );
    std::thread::sleep(Duration::from_millis(300));
}

// ---------------------------------------------------------------------------------------
// Scripted origins
// ---------------------------------------------------------------------------------------

/// What the scripted origin refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refuse {
    /// `connect` gets `_error` NetConnection.Connect.Rejected.
    Connect,
    /// `connect` accepted, `play` gets NetStream.Play.StreamNotFound.
    Play,
    /// `connect` accepted, `publish` gets NetStream.Publish.BadName.
    Publish,
    /// Everything accepted, then the origin stops reading after a publish starts.
    StallAfterPublish,
}

/// What the scripted origin saw.
#[derive(Default, Debug)]
struct Seen {
    tc_urls: Vec<String>,
    plays: Vec<String>,
    publishes: Vec<String>,
}

/// An origin built from the library's ServerSession that answers by a script, one thread per
/// connection. Counts connections.
struct ScriptedOrigin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedOrigin {
    fn start(script: Refuse) -> ScriptedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, seen, stop) = (accepted.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            let (seen, stop) = (seen.clone(), stop.clone());
                            workers.push(std::thread::spawn(move || serve_scripted(socket, script, &seen, &stop)));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                        Err(_) => break,
                    }
                }
                for worker in workers {
                    let _ = worker.join();
                }
            })
        };
        ScriptedOrigin {
            addr,
            accepted,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_scripted(mut socket: TcpStream, script: Refuse, seen: &Mutex<Seen>, stop: &AtomicBool) {
    let _ = socket.set_nonblocking(false);
    let _ = socket.set_read_timeout(Some(READ_STEP));
    let mut handshake = Handshake::new(HandshakeRole::Server, 0);
    let mut session: Option<ServerSession> = None;
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let n = match socket.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        let mut input = &buffer[..n];
        let remaining;
        if session.is_none() {
            match handshake.process(input) {
                Ok(HandshakeProgress::InProgress { response }) => {
                    let _ = socket.write_all(&response);
                    continue;
                }
                Ok(HandshakeProgress::Completed {
                    response,
                    remaining: rest,
                }) => {
                    let _ = socket.write_all(&response);
                    session = Some(ServerSession::new(ServerSessionConfig::default()));
                    remaining = rest;
                    input = &remaining;
                }
                Err(_) => return,
            }
        }
        let Some(server) = session.as_mut() else {
            return;
        };
        if server.handle_input(input).is_err() {
            return;
        }
        while let Some(event) = server.poll_event() {
            let result = match event {
                ServerSessionEvent::ConnectionRequested { request_id, request } => {
                    if let Ok(mut seen) = seen.lock() {
                        seen.tc_urls.push(request.tc_url.clone().unwrap_or_default());
                    }
                    if script == Refuse::Connect {
                        server.reject_request(request_id, "scripted origin refuses every connect")
                    } else {
                        server.accept_request(request_id)
                    }
                }
                ServerSessionEvent::PlayRequested {
                    request_id,
                    stream_name,
                    ..
                } => {
                    if let Ok(mut seen) = seen.lock() {
                        seen.plays.push(stream_name);
                    }
                    if script == Refuse::Play {
                        server.reject_request(request_id, "scripted origin has no streams")
                    } else {
                        server.accept_request(request_id)
                    }
                }
                ServerSessionEvent::PublishRequested {
                    request_id,
                    stream_name,
                    ..
                } => {
                    if let Ok(mut seen) = seen.lock() {
                        seen.publishes.push(stream_name);
                    }
                    if script == Refuse::Publish {
                        server.reject_request(request_id, "scripted origin refuses every publish")
                    } else {
                        server.accept_request(request_id)
                    }
                }
                _ => Ok(()),
            };
            if result.is_err() {
                return;
            }
        }
        let out = server.take_outbound();
        if !out.is_empty() && socket.write_all(&out).is_err() {
            return;
        }
        let publishing = seen.lock().map(|seen| !seen.publishes.is_empty()).unwrap_or(false);
        if script == Refuse::StallAfterPublish && publishing {
            // Hold the socket open without reading until the test ends.
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(READ_STEP);
            }
            return;
        }
    }
}

/// Accepts TCP connections and holds them without ever answering.
struct SilentOrigin {
    addr: SocketAddr,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentOrigin {
    fn start() -> SilentOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (sockets, stop) = (sockets.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            if let Ok(mut sockets) = sockets.lock() {
                                sockets.push(socket);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        SilentOrigin {
            addr,
            sockets,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.sockets.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether the peer closed every held socket (EOF or reset).
    fn all_closed_by_peer(&self) -> bool {
        let Ok(mut sockets) = self.sockets.lock() else {
            return false;
        };
        sockets.iter_mut().all(|socket| {
            let _ = socket.set_nonblocking(true);
            let mut buffer = [0u8; 4096];
            loop {
                match socket.read(&mut buffer) {
                    Ok(0) => return true,
                    Ok(_) => continue, // C0+C1 the edge sent
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                    Err(_) => return true,
                }
            }
        })
    }
}

impl Drop for SilentOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pulls
// ---------------------------------------------------------------------------------------

#[test]
fn three_players_share_one_pull_and_get_exactly_what_was_published() {
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let players: Vec<PlayerThread> = (0..3)
        .map(|i| {
            PlayerThread::spawn(
                edge.local_addr(),
                APP,
                "s",
                until_unpublish(1),
                &format!("edge-player-{i}"),
            )
        })
        .collect();
    for player in &players {
        player.wait_ready(EXCHANGE_TIMEOUT);
    }
    wait_connections(&origin, 1, Duration::from_secs(5), "origin sees the edge's pull");
    let mut publisher = publish_all(origin.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    for player in players {
        let label = player.label.clone();
        let log = player.join();
        check_full_stream(&published, &log, &label);
    }
    let stats = origin.stats();
    assert_eq!(
        stats.connections_accepted, 2,
        "origin should see exactly the publisher and one pull for three players: {stats:?}"
    );
    assert_eq!(edge.stats().protocol_errors, 0, "{:?}", edge.stats());
}

#[test]
fn late_joiner_on_edge_gets_the_gop_from_the_pull() {
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let first = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "first");
    first.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&origin, 1, Duration::from_secs(5), "pull");
    let split = published.iter().position(|i| i.timestamp() >= 1500).unwrap();
    let mut publisher = publish_all(origin.local_addr(), "s", &published[..split], None);
    assert!(
        first.wait_until(Duration::from_secs(5), |log| items_of(log).len() >= split - 2),
        "first player did not get the first part: {}",
        summarize(&first.snapshot())
    );
    let late = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "late");
    late.wait_ready(EXCHANGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(300));
    publisher.send_items(&published[split..], None).unwrap();
    publisher.stop().unwrap();
    check_full_stream(&published, &first.join(), "first");
    let late_log = late.join();
    let start = assert_late_join(&published, &items_of(&late_log), "late");
    let frames = frames_of(&published);
    let last_keyframe_before_split = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_video_keyframe() && f.timestamp() < 1500)
        .map(|(i, _)| i)
        .last()
        .unwrap();
    assert_eq!(
        start, last_keyframe_before_split,
        "late joiner on the edge should start at the cached GOP's keyframe"
    );
    assert_eq!(origin.stats().connections_accepted, 2, "{:?}", origin.stats());
}

#[test]
fn chain_origin_edge_edge_player() {
    let origin = start_relay(test_config());
    let edge1 = start_relay(edge_config(&[origin.local_addr()]));
    let edge2 = start_relay(edge_config(&[edge1.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let player = PlayerThread::spawn(
        edge2.local_addr(),
        APP,
        "s?token=t1",
        until_unpublish(1),
        "chain-player",
    );
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&edge1, 1, Duration::from_secs(5), "edge1 sees edge2's pull");
    wait_connections(&origin, 1, Duration::from_secs(5), "origin sees edge1's pull");
    let mut publisher = publish_all(origin.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    check_full_stream(&published, &player.join(), "player at the end of the chain");
    assert_eq!(origin.stats().connections_accepted, 2, "{:?}", origin.stats());
    assert_eq!(edge1.stats().connections_accepted, 1, "{:?}", edge1.stats());
}

#[test]
fn pull_carries_the_players_query_and_a_tc_url_naming_the_origin() {
    let origin = ScriptedOrigin::start(Refuse::Play);
    let edge = start_relay(edge_config(&[origin.addr]));
    let player = PlayerThread::spawn(edge.local_addr(), APP, "cam?token=secret", for_seconds(10), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    assert!(
        eventually(Duration::from_secs(5), || origin.seen.lock().unwrap().plays.len() == 1),
        "origin saw no play"
    );
    let seen = origin.seen.lock().unwrap();
    assert_eq!(seen.plays, vec!["cam?token=secret".to_string()]);
    assert_eq!(seen.tc_urls, vec![format!("rtmp://{}/{APP}", origin.addr)]);
}

#[test]
fn origin_without_the_stream_gives_the_player_stream_not_found() {
    let origin = ScriptedOrigin::start(Refuse::Play);
    let edge = start_relay(edge_config(&[origin.addr]));
    let started = Instant::now();
    let player = PlayerThread::spawn(edge.local_addr(), APP, "missing", for_seconds(10), "player");
    let got = player.wait_until(Duration::from_secs(5), |log| {
        statuses_of(log).iter().any(|s| s == codes::PLAY_STREAM_NOT_FOUND)
    });
    assert!(
        got,
        "player did not get StreamNotFound within 5 s: {}",
        summarize(&player.snapshot())
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Refused is final: no retry storm against the origin.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 1, "edge retried a refused pull");
}

#[test]
fn rejected_connect_gives_the_player_connect_rejected() {
    let origin = ScriptedOrigin::start(Refuse::Connect);
    let edge = start_relay(edge_config(&[origin.addr]));
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(10), "player");
    let got = player.wait_until(Duration::from_secs(5), |log| {
        statuses_of(log).iter().any(|s| s == codes::CONNECT_REJECTED)
    });
    assert!(
        got,
        "player did not get Connect.Rejected within 5 s: {}",
        summarize(&player.snapshot())
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(origin.accepted.load(Ordering::SeqCst), 1, "edge retried a refused pull");
}

#[test]
fn stream_not_found_travels_through_a_chain_of_edges() {
    let origin = ScriptedOrigin::start(Refuse::Play);
    let edge1 = start_relay(edge_config(&[origin.addr]));
    let edge2 = start_relay(edge_config(&[edge1.local_addr()]));
    let player = PlayerThread::spawn(edge2.local_addr(), APP, "missing", for_seconds(10), "player");
    let got = player.wait_until(Duration::from_secs(5), |log| {
        statuses_of(log).iter().any(|s| is_error_code(s))
    });
    assert!(
        got,
        "player two edges away got no error status within 5 s (a hang): {}; edge1 {:?}, edge2 {:?}",
        summarize(&player.snapshot()),
        edge1.stats(),
        edge2.stats()
    );
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

#[test]
fn origin_restart_keeps_players_connected_with_increasing_timestamps() {
    let origin = start_relay(test_config());
    let origin_addr = origin.local_addr();
    let edge = start_relay(edge_config(&[origin_addr]));
    let published = fixture_items(FIXTURE, 0);
    let split = published.iter().position(|i| i.timestamp() >= 2000).unwrap();
    let players: Vec<PlayerThread> = (0..2)
        .map(|i| PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(2), &format!("player-{i}")))
        .collect();
    for player in &players {
        player.wait_ready(EXCHANGE_TIMEOUT);
    }
    wait_connections(&origin, 1, Duration::from_secs(5), "first origin");
    let publisher = publish_all(origin_addr, "s", &published[..split], None);
    for player in &players {
        assert!(
            player.wait_until(Duration::from_secs(5), |log| items_of(log).len() >= split - 2),
            "{}: first part did not arrive: {}",
            player.label,
            summarize(&player.snapshot())
        );
    }
    // The origin goes away mid-stream (its publisher still connected) and comes back.
    origin.shutdown().unwrap();
    drop(publisher);
    let origin = start_relay(Config {
        listen: origin_addr,
        ..test_config()
    });
    wait_connections(
        &origin,
        1,
        Duration::from_secs(8),
        "edge reconnects to the restarted origin",
    );
    let mut publisher = publish_all(origin_addr, "s", &published, None);
    publisher.stop().unwrap();

    for player in players {
        let label = player.label.clone();
        let log = player.join();
        assert!(
            !log.contains(&Received::Closed),
            "{label}: edge closed the player: {}",
            summarize(&log)
        );
        let unpublish_at = log
            .iter()
            .position(|r| *r == Received::StreamDry)
            .unwrap_or_else(|| panic!("{label}: no StreamDry when the origin went: {}", summarize(&log)));
        let before = items_of(&log[..unpublish_at]);
        let after = items_of(&log[unpublish_at..]);
        check_full_stream(
            &published[..split],
            &log[..unpublish_at],
            &format!("{label} before restart"),
        );
        // After the restart: the whole republished stream from a keyframe, each timestamp
        // shifted by one constant so that time continues after what the player saw.
        let after_frames = frames_of(&after);
        let published_frames = frames_of(&published);
        assert!(
            !after_frames.is_empty() && after_frames.len() <= published_frames.len(),
            "{label}: {} frames after the restart: {}",
            after_frames.len(),
            summarize(&log)
        );
        let start = published_frames.len() - after_frames.len();
        let offset = after_frames[0]
            .timestamp()
            .wrapping_sub(published_frames[start].timestamp());
        let unshifted: Vec<Item> = after
            .iter()
            .map(|i| match i {
                Item::Media { .. } => i.with_timestamp(i.timestamp().wrapping_sub(offset)),
                Item::Metadata { .. } => i.clone(),
            })
            .collect();
        let run_start = assert_late_join(&published, &unshifted, &format!("{label} after restart"));
        assert!(
            run_start <= first_keyframe_frame_index(&published) + 40,
            "{label}: resumed late, at frame #{run_start}"
        );
        let last_before = frames_of(&before).iter().map(Item::timestamp).max().unwrap();
        assert!(
            after_frames[0].timestamp() > last_before,
            "{label}: timestamps restarted: first after {} <= last before {last_before}",
            after_frames[0].timestamp()
        );
        assert_kinds_monotonic(&items_of(&log), &label);
    }
}

#[test]
fn first_origin_down_fails_over_to_the_second() {
    let dead_port = RefusedPort::new();
    let dead = dead_port.addr();
    let good = start_relay(test_config());
    let edge = start_relay(edge_config(&[dead, good.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let started = Instant::now();
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&good, 1, Duration::from_secs(5), "failover to the second origin");
    let failover = started.elapsed();
    let mut publisher = publish_all(good.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    check_full_stream(&published, &player.join(), "player after failover");
    assert!(failover < Duration::from_secs(3), "failover took {failover:?}");
    assert_eq!(good.stats().connections_accepted, 2, "{:?}", good.stats());
}

#[test]
fn origin_that_never_answers_the_handshake_times_out_then_fails_over() {
    let silent = SilentOrigin::start();
    let good = start_relay(test_config());
    let edge = start_relay(edge_config(&[silent.addr, good.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let started = Instant::now();
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    assert!(
        eventually(Duration::from_secs(8), || good.stats().connections_open >= 1),
        "no failover to the good origin within 8 s; silent origin accepted {}",
        silent.accepted()
    );
    let failover = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let mut publisher = publish_all(good.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    check_full_stream(&published, &player.join(), "player after timeout failover");
    // upstream_timeout is 2 s, then a 0.5-0.625 s backoff.
    assert!(
        failover >= Duration::from_millis(1900) && failover < Duration::from_secs(5),
        "failover after {failover:?}, expected about 2.5 s"
    );
    assert_eq!(silent.accepted(), 1, "the silent origin should have been tried once");
    assert!(
        silent.all_closed_by_peer(),
        "edge left the stalled upstream socket open"
    );
}

#[test]
fn origin_gone_silent_mid_stream_is_retried() {
    // The stream stops flowing (the publisher stalls) without any close: after
    // upstream_timeout the pull reconnects; once media flows again, players resume.
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let split = published.iter().position(|i| i.timestamp() >= 2000).unwrap();
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(20), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&origin, 1, Duration::from_secs(5), "pull");
    let mut publisher = publish_all(origin.local_addr(), "s", &published[..split], None);
    // 4.5 s of silence from a publisher that stays connected: the 2 s timeout fires
    // (checked every 0.5 s), then the 0.5-0.625 s backoff passes.
    let quiet_until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < quiet_until {
        publisher.drain_nonblocking().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        origin.stats().connections_accepted >= 3,
        "the silent pull was not retried: origin stats {:?}",
        origin.stats()
    );
    let rest: Vec<Item> = published[split..]
        .iter()
        .map(|i| i.with_timestamp(i.timestamp() + 4500))
        .collect();
    publisher.send_items(&rest, None).unwrap();
    let last = rest.last().cloned().unwrap();
    let got_last = player.wait_until(Duration::from_secs(5), |log| {
        items_of(log).last().is_some_and(|i| match (i, &last) {
            (Item::Media { data: a, .. }, Item::Media { data: b, .. }) => a == b,
            _ => false,
        })
    });
    let log = player.finish();
    assert!(
        got_last,
        "player did not resume after the silent period: {}",
        summarize(&log)
    );
    assert!(!log.contains(&Received::Closed), "{}", summarize(&log));
    assert_kinds_monotonic(&items_of(&log), "player");
}

// ---------------------------------------------------------------------------------------
// Publishing through an edge
// ---------------------------------------------------------------------------------------

#[test]
fn publish_on_edge_is_served_locally_and_forwarded_to_the_origin() {
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let at_origin = PlayerThread::spawn(origin.local_addr(), APP, "s", until_unpublish(1), "origin-player");
    at_origin.wait_ready(EXCHANGE_TIMEOUT);
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    publisher.publish("s?key=k").unwrap();
    wait_connections(&origin, 2, Duration::from_secs(5), "origin sees the forward");
    let at_edge = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "edge-player");
    at_edge.wait_ready(EXCHANGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(200));
    publisher.send_items(&published, None).unwrap();
    publisher.stop().unwrap();
    check_full_stream(&published, &at_edge.join(), "edge player");
    check_full_stream(&published, &at_origin.join(), "origin player");
    // The origin player and the forward; when the encoder stops, the edge's player (until
    // it leaves on UnpublishNotify) may send the edge back to the origin with one pull.
    let accepted = origin.stats().connections_accepted;
    assert!((2..=3).contains(&accepted), "{:?}", origin.stats());
}

#[test]
fn publish_on_edge_takes_over_while_an_edge_player_waits() {
    // A player on the edge first (its pull plays the not-yet-published stream at the
    // origin), then the encoder publishes to the edge: the publish must be accepted,
    // forwarded, and served to that player.
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let at_origin = PlayerThread::spawn(origin.local_addr(), APP, "s", until_unpublish(1), "origin-player");
    let at_edge = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "edge-player");
    at_origin.wait_ready(EXCHANGE_TIMEOUT);
    at_edge.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&origin, 2, Duration::from_secs(5), "origin sees the edge's pull");
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    match publisher.try_publish("s?key=k").unwrap() {
        Ok(_) => {}
        Err(status) => panic!(
            "edge refused a publish because a player waits on it: {status:?} (edge stats {:?})",
            edge.stats()
        ),
    }
    // The edge closes its pull when the local publisher takes over, so the origin sees a
    // third connection (the forward) arrive while the pull goes away.
    assert!(
        eventually(Duration::from_secs(5), || origin.stats().connections_accepted >= 3),
        "origin sees the forward: {:?}",
        origin.stats()
    );
    std::thread::sleep(Duration::from_millis(300));
    publisher.send_items(&published, None).unwrap();
    publisher.stop().unwrap();
    check_full_stream(&published, &at_edge.join(), "edge player");
    check_full_stream(&published, &at_origin.join(), "origin player");
}

#[test]
fn origin_refusing_the_forward_reaches_the_encoder() {
    let origin = ScriptedOrigin::start(Refuse::Publish);
    let edge = start_relay(edge_config(&[origin.addr]));
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    publisher.publish("s?key=wrong").unwrap();
    let event = publisher.wait_for(Duration::from_secs(5), |e| {
        matches!(
            e,
            ClientSessionEvent::RequestRejected { .. } | ClientSessionEvent::StatusReceived { .. }
        )
    });
    match event {
        Ok(ClientSessionEvent::RequestRejected { status, .. }) => {
            assert_eq!(status.code, codes::PUBLISH_BAD_NAME, "{status:?}")
        }
        other => panic!("encoder did not get the origin's refusal: {other:?}"),
    }
    assert_eq!(origin.seen.lock().unwrap().publishes, vec!["s?key=wrong".to_string()]);
}

#[test]
fn push_to_two_targets_one_down_the_other_gets_everything() {
    let dead_port = RefusedPort::new();
    let dead = dead_port.addr();
    let good = start_relay(test_config());
    let push = vec![
        RtmpUrl::parse(&format!("rtmp://{dead}/live")).unwrap(),
        RtmpUrl::parse(&format!("rtmp://{}/restream", good.local_addr())).unwrap(),
    ];
    let edge = start_relay(Config { push, ..test_config() });
    let published = fixture_items(FIXTURE, 0);
    let at_target = PlayerThread::spawn(good.local_addr(), "restream", "s", until_unpublish(1), "target-player");
    at_target.wait_ready(EXCHANGE_TIMEOUT);
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    wait_connections(&good, 2, Duration::from_secs(5), "push reaches the good target");
    // Paced, across several retries of the dead target.
    publisher.send_items(&published, Some(2.0)).unwrap();
    publisher.stop().unwrap();
    check_full_stream(&published, &at_target.join(), "player at the good push target");
    assert_eq!(good.stats().connections_accepted, 2, "{:?}", good.stats());
}

// ---------------------------------------------------------------------------------------
// Loops and linger
// ---------------------------------------------------------------------------------------

/// A player on `edge` gets an error status (not a hang), and the relays do not storm.
fn assert_loop_refused(edges: &[&RelayHandle]) {
    let player = PlayerThread::spawn(edges[0].local_addr(), APP, "s", for_seconds(10), "player");
    let got = player.wait_until(Duration::from_secs(5), |log| {
        statuses_of(log).iter().any(|s| is_error_code(s))
    });
    let accepted_then: Vec<u64> = edges.iter().map(|e| e.stats().connections_accepted).collect();
    std::thread::sleep(Duration::from_secs(3));
    let accepted_later: Vec<u64> = edges.iter().map(|e| e.stats().connections_accepted).collect();
    let open: Vec<u64> = edges.iter().map(|e| e.stats().connections_open).collect();
    assert!(
        got,
        "player on a looped edge got no error status within 5 s: {}; accepted {accepted_then:?}",
        summarize(&player.snapshot())
    );
    assert!(
        accepted_later.iter().all(|&n| n <= 4) && accepted_then == accepted_later,
        "connection storm: accepted {accepted_then:?} then {accepted_later:?} 3 s later"
    );
    assert!(open.iter().all(|&n| n <= 2), "connections open {open:?}");
}

#[test]
fn edge_whose_origin_is_itself_refuses_the_loop() {
    let addr = own_loopback_addr();
    let edge = start_relay(Config {
        listen: addr,
        ..edge_config(&[addr])
    });
    assert_loop_refused(&[&edge]);
}

#[test]
fn two_edges_pulling_from_each_other_refuse_the_loop() {
    let a = own_loopback_addr();
    let b = own_loopback_addr();
    let edge_a = start_relay(Config {
        listen: a,
        ..edge_config(&[b])
    });
    let edge_b = start_relay(Config {
        listen: b,
        ..edge_config(&[a])
    });
    assert_loop_refused(&[&edge_a, &edge_b]);
}

#[test]
fn pull_lingers_after_the_last_player_then_closes() {
    let origin = start_relay(test_config());
    let linger = Duration::from_millis(1500);
    let edge = start_relay(Config {
        pull_linger: linger,
        upstream_timeout: Duration::from_secs(20),
        ..edge_config(&[origin.local_addr()])
    });
    let first = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(20), "first");
    first.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&origin, 1, Duration::from_secs(5), "pull");
    first.finish();
    // A player back within the linger reuses the pull.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(origin.stats().connections_open, 1, "pull closed before its linger");
    let second = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(20), "second");
    second.wait_ready(EXCHANGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        origin.stats().connections_accepted,
        1,
        "a player within the linger should reuse the pull: {:?}",
        origin.stats()
    );
    assert_eq!(origin.stats().connections_open, 1);
    let left = Instant::now();
    second.finish();
    assert!(
        eventually(Duration::from_secs(5), || origin.stats().connections_open == 0),
        "pull still open 5 s after the last player left: {:?}",
        origin.stats()
    );
    let closed_after = left.elapsed();
    assert!(
        closed_after >= linger - Duration::from_millis(100) && closed_after < linger + Duration::from_millis(1500),
        "pull closed {closed_after:?} after the last player left, linger is {linger:?}"
    );
}

#[test]
fn waiting_for_a_stream_not_yet_published_keeps_one_pull() {
    // Players often connect before the encoder. The origin accepts the play and sends
    // nothing until a publish starts: that silence is not an upstream failure, so the pull
    // should stay (not be torn down and redone every upstream_timeout, which loses the
    // start of a publish that begins during a reconnect).
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(20), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_connections(&origin, 1, Duration::from_secs(5), "pull");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        origin.stats().connections_accepted,
        1,
        "the waiting pull was redone while the origin stream was unpublished: {:?}",
        origin.stats()
    );
}

#[test]
fn forward_reconnects_after_the_origin_restarts_and_resumes_at_a_keyframe() {
    // The encoder publishes to the edge; the origin dies mid-stream and comes back. The
    // edge's own player never notices; the forward reconnects with backoff and the new
    // origin's player gets the stream from a keyframe on.
    let origin = start_relay(test_config());
    let origin_addr = origin.local_addr();
    let edge = start_relay(edge_config(&[origin_addr]));
    let published = fixture_items(FIXTURE, 0);
    let split = published.iter().position(|i| i.timestamp() >= 1500).unwrap();
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    wait_connections(&origin, 1, Duration::from_secs(5), "origin sees the forward");
    let at_edge = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "edge-player");
    at_edge.wait_ready(EXCHANGE_TIMEOUT);
    publisher.send_items(&published[..split], None).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    origin.shutdown().unwrap();
    let origin = start_relay(Config { listen: origin_addr, ..test_config() });
    let at_origin = PlayerThread::spawn(origin_addr, APP, "s", until_unpublish(1), "new-origin-player");
    at_origin.wait_ready(EXCHANGE_TIMEOUT);
    assert!(
        eventually(Duration::from_secs(10), || origin.stats().connections_accepted >= 2),
        "the forward did not come back: {:?}",
        origin.stats()
    );
    std::thread::sleep(Duration::from_millis(500));
    publisher.send_items(&published[split..], None).unwrap();
    publisher.stop().unwrap();

    check_full_stream(&published, &at_edge.join(), "edge player");
    let log = at_origin.join();
    let start = assert_late_join(&published, &items_of(&log), "new origin player");
    assert!(start > 0, "the new origin cannot have the frames sent before it started");
}

#[test]
fn an_upstream_that_stops_reading_is_dropped_not_buffered_forever() {
    let origin = ScriptedOrigin::start(Refuse::StallAfterPublish);
    let edge = start_relay(Config {
        queue_hard_limit_bytes: 512 * 1024,
        ..edge_config(&[origin.addr])
    });
    let one_pass = fixture_items(FIXTURE, 0);
    let pass_ms = one_pass.last().map(Item::timestamp).unwrap_or(0) + 40;
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || origin.accepted.load(Ordering::SeqCst) >= 1),
        "the forward never reached the origin"
    );
    std::thread::sleep(Duration::from_millis(300));
    // About 16 MB, far more than loopback socket buffers hold.
    for pass in 0..90u32 {
        let items: Vec<Item> = one_pass
            .iter()
            .filter(|item| pass == 0 || !matches!(item, Item::Metadata { .. }))
            .map(|item| item.with_timestamp(item.timestamp() + pass * pass_ms))
            .collect();
        publisher.send_items(&items, None).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || origin.accepted.load(Ordering::SeqCst) >= 2),
        "the stalled forward was never dropped and retried (origin accepted {})",
        origin.accepted.load(Ordering::SeqCst)
    );
    publisher.stop().unwrap();
}
