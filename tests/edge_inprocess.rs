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
use std::time::Duration;

use common::interop::{wait_players, wait_publishers};
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

/// Waits until `relay` has no upstream link left (no pull, none retrying): after that it
/// makes no more upstream connections for what the test did.
fn wait_no_pulls(relay: &RelayHandle, what: &str) {
    assert!(eventually(Duration::from_secs(10), || relay.stats().pulls == 0), "{what}: {:?}", relay.stats());
}

/// An edge of `origins` with its HTTP API on (for close reasons and per-stream upstreams).
fn edge_config_with_api(origins: &[SocketAddr]) -> Config {
    Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..edge_config(origins) }
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
    /// Everything accepted (it records what it was asked).
    Nothing,
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
    wait_players(&origin, 1, "origin sees the edge's pull");
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
    wait_players(&origin, 1, "pull");
    let split = published.iter().position(|i| i.timestamp() >= 1500).unwrap();
    let mut publisher = publish_all(origin.local_addr(), "s", &published[..split], None);
    assert!(
        first.wait_until(Duration::from_secs(5), |log| items_of(log).len() >= split - 2),
        "first player did not get the first part: {}",
        summarize(&first.snapshot())
    );
    let late = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "late");
    late.wait_ready(EXCHANGE_TIMEOUT);
    // The cache reaches the late joiner before more live media (the case under test).
    assert!(late.wait_until(Duration::from_secs(5), |log| items_of(log).iter().any(Item::is_video_keyframe)));
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
    wait_players(&edge1, 1, "edge1 sees edge2's pull");
    wait_players(&origin, 1, "origin sees edge1's pull");
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
fn the_far_origin_gets_the_players_query_through_a_chain_of_edges() {
    // origin <- edge1 <- edge2 <- player asking for `s?token=x`: the query is what the
    // origin checks (signed URLs, tokens), so it must arrive there unchanged.
    let origin = ScriptedOrigin::start(Refuse::Nothing);
    let edge1 = start_relay(edge_config(&[origin.addr]));
    let edge2 = start_relay(edge_config(&[edge1.local_addr()]));
    let player = PlayerThread::spawn(edge2.local_addr(), APP, "s?token=x", for_seconds(10), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    assert!(
        eventually(Duration::from_secs(5), || origin.seen.lock().unwrap().plays.len() == 1),
        "the origin saw no play"
    );
    let seen = origin.seen.lock().unwrap();
    assert_eq!(seen.plays, vec!["s?token=x".to_string()]);
    assert_eq!(seen.tc_urls, vec![format!("rtmp://{}/{APP}", origin.addr)]);
}

#[test]
fn push_targets_get_the_publishers_query_or_their_own() {
    // A push URL naming only an app republishes under the publisher's name and query; one
    // naming a stream (and a query) publishes under exactly that.
    let target = ScriptedOrigin::start(Refuse::Nothing);
    let push = vec![
        RtmpUrl::parse(&format!("rtmp://{}/live", target.addr)).unwrap(),
        RtmpUrl::parse(&format!("rtmp://{}/restream/s?key=target", target.addr)).unwrap(),
    ];
    let relay = start_relay(Config { push, ..test_config() });
    let mut publisher = RtmpTestClient::connect(relay.local_addr(), APP).unwrap();
    publisher.publish("s?key=publisher").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || target.seen.lock().unwrap().publishes.len() == 2),
        "the push target did not see two publishes: {:?}",
        target.seen.lock().unwrap()
    );
    let seen = target.seen.lock().unwrap();
    let mut publishes = seen.publishes.clone();
    publishes.sort();
    assert_eq!(publishes, ["s?key=publisher", "s?key=target"]);
    let mut tc_urls = seen.tc_urls.clone();
    tc_urls.sort();
    assert_eq!(tc_urls, [format!("rtmp://{}/live", target.addr), format!("rtmp://{}/restream", target.addr)]);
}

/// The fixture published on the origin with `offset_ms` added to every timestamp reaches a
/// player on an edge unchanged, timestamps included.
fn timestamps_through_an_edge(offset_ms: u32) {
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config(&[origin.local_addr()]));
    let published = fixture_items(FIXTURE, offset_ms);
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_players(&origin, 1, "the edge's pull");
    let mut publisher = publish_all(origin.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    check_full_stream(&published, &player.join(), "player on the edge");
}

#[test]
fn timestamps_past_24_bits_cross_an_edge_unchanged() {
    // 16,775,000 + [0, 4023] ms crosses 0xFFFFFF about 2.2 s into the file: both the 24-bit
    // field and the extended timestamp, on the origin's wire to the edge and on the edge's.
    let offset = 16_775_000;
    let published = fixture_items(FIXTURE, offset);
    assert!(published.iter().any(|i| i.timestamp() < 0xFF_FFFF) && published.iter().any(|i| i.timestamp() > 0xFF_FFFF));
    timestamps_through_an_edge(offset);
}

#[test]
fn timestamps_across_the_32_bit_wrap_cross_an_edge_unchanged() {
    // u32::MAX - 2000 + [0, 4023] ms wraps through 0 about 2 s into the file.
    let offset = u32::MAX - 2000;
    let published = fixture_items(FIXTURE, offset);
    assert!(published.iter().any(|i| i.timestamp() > u32::MAX - 1000) && published.iter().any(|i| i.timestamp() < 1000));
    timestamps_through_an_edge(offset);
}

#[test]
fn origin_without_the_stream_gives_the_player_stream_not_found() {
    let origin = ScriptedOrigin::start(Refuse::Play);
    let edge = start_relay(edge_config(&[origin.addr]));
    let player = PlayerThread::spawn(edge.local_addr(), APP, "missing", for_seconds(10), "player");
    let got = player.wait_until(Duration::from_secs(5), |log| {
        statuses_of(log).iter().any(|s| s == codes::PLAY_STREAM_NOT_FOUND)
    });
    assert!(
        got,
        "player did not get StreamNotFound within 5 s: {}",
        summarize(&player.snapshot())
    );
    // Refused is final: the pull is dropped, so nothing is left to retry against the origin.
    wait_no_pulls(&edge, "the refused pull");
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
    wait_no_pulls(&edge, "the refused pull");
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
    // Restarted on the same address: one of this process's own, which no other test takes
    // while the origin is down.
    let origin_addr = own_loopback_addr();
    let origin = start_relay(Config { listen: origin_addr, ..test_config() });
    let edge = start_relay(edge_config(&[origin_addr]));
    let published = fixture_items(FIXTURE, 0);
    let split = published.iter().position(|i| i.timestamp() >= 2000).unwrap();
    let players: Vec<PlayerThread> = (0..2)
        .map(|i| PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(2), &format!("player-{i}")))
        .collect();
    for player in &players {
        player.wait_ready(EXCHANGE_TIMEOUT);
    }
    wait_players(&origin, 1, "first origin");
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
    wait_players(&origin, 1, "edge reconnects to the restarted origin");
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
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    // How soon failover happens is the core's to test, with a fake clock
    // (src/relay/core/tests/edge.rs); here it must happen, once, and lose nothing.
    wait_players(&good, 1, "failover to the second origin");
    let mut publisher = publish_all(good.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    check_full_stream(&published, &player.join(), "player after failover");
    assert_eq!(good.stats().connections_accepted, 2, "{:?}", good.stats());
}

#[test]
fn origin_that_never_answers_the_handshake_times_out_then_fails_over() {
    let silent = SilentOrigin::start();
    let good = start_relay(test_config());
    let edge = start_relay(edge_config_with_api(&[silent.addr, good.local_addr()]));
    let published = fixture_items(FIXTURE, 0);
    let player = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    wait_players(&good, 1, "failover to the good origin");
    let mut publisher = publish_all(good.local_addr(), "s", &published, None);
    publisher.stop().unwrap();
    check_full_stream(&published, &player.join(), "player after timeout failover");
    // Left for missing its stage deadline (the deadlines' lengths are the core tests').
    let closes = common::http::closes_by_reason(edge.http_addr().unwrap());
    assert_eq!(closes.get("upstream_stage_timeout"), Some(&1), "{closes:?}");
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
    wait_players(&origin, 1, "pull");
    let mut publisher = publish_all(origin.local_addr(), "s", &published[..split], None);
    // Silence from a publisher that stays connected (and answers the origin): after the
    // 2 s upstream timeout the edge drops the pull and, after its backoff, plays again.
    let retried = eventually(Duration::from_secs(10), || {
        publisher.drain_nonblocking().unwrap();
        origin.stats().connections_accepted >= 3 && edge.stats().pulls_live == 1 && origin.stats().players == 1
    });
    assert!(retried, "the silent pull was not retried: origin {:?}, edge {:?}", origin.stats(), edge.stats());
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
    wait_publishers(&origin, 1, "origin sees the forward");
    let at_edge = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "edge-player");
    at_edge.wait_ready(EXCHANGE_TIMEOUT);
    publisher.send_items(&published, None).unwrap();
    publisher.stop().unwrap();
    check_full_stream(&published, &at_edge.join(), "edge player");
    check_full_stream(&published, &at_origin.join(), "origin player");
    // The origin player, the forward, and one pull: when the encoder stops, the edge's
    // player is still there (it leaves only once it has the StreamDry), so the edge goes
    // back to the origin for the stream; the pull lingers, then closes.
    wait_no_pulls(&edge, "the pull after the encoder left");
    assert_eq!(origin.stats().connections_accepted, 3, "{:?}", origin.stats());
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
    wait_players(&origin, 2, "origin sees the edge's pull");
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    match publisher.try_publish("s?key=k").unwrap() {
        Ok(_) => {}
        Err(status) => panic!(
            "edge refused a publish because a player waits on it: {status:?} (edge stats {:?})",
            edge.stats()
        ),
    }
    // The edge closes its pull when the local publisher takes over, and forwards instead.
    wait_publishers(&origin, 1, "origin sees the forward");
    wait_players(&origin, 1, "the pull went away");
    assert_eq!(edge.stats().pulls, 0, "{:?}", edge.stats());
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
    wait_publishers(&good, 1, "push reaches the good target");
    // Paced, across several retries of the dead target.
    publisher.send_items(&published, Some(2.0)).unwrap();
    publisher.stop().unwrap();
    check_full_stream(&published, &at_target.join(), "player at the good push target");
    assert_eq!(good.stats().connections_accepted, 2, "{:?}", good.stats());
}

// ---------------------------------------------------------------------------------------
// Loops and linger
// ---------------------------------------------------------------------------------------

/// A player on the first of `edges` is refused with the loop's own code and reason (not a
/// hang, nor any other error), and once the refused pulls are dropped, each edge has
/// accepted exactly `accepted` connections (the player, and the looped pulls once each) and
/// holds only the player's: no retries, no storm.
fn assert_loop_refused(edges: &[&RelayHandle], accepted: &[u64]) {
    let mut player = RtmpTestClient::connect(edges[0].local_addr(), APP).unwrap();
    player.request_play("s").unwrap();
    let refusal = player
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientSessionEvent::StatusReceived { status, .. } | ClientSessionEvent::RequestRejected { status, .. } => {
                status.level.eq_ignore_ascii_case("error")
            }
            _ => false,
        })
        .unwrap_or_else(|e| panic!("no error status for a player on a looped edge: {e}"));
    let status = match refusal {
        ClientSessionEvent::StatusReceived { status, .. } | ClientSessionEvent::RequestRejected { status, .. } => status,
        _ => unreachable!(),
    };
    assert_eq!(status.code, codes::CONNECT_REJECTED, "{status:?}");
    assert!(status.description.contains("Relay loop detected"), "{status:?}");
    for edge in edges {
        wait_no_pulls(edge, "a looped pull");
    }
    let got: Vec<u64> = edges.iter().map(|e| e.stats().connections_accepted).collect();
    assert_eq!(got, accepted, "connections accepted by each edge");
    let open: Vec<u64> = edges.iter().map(|e| e.stats().connections_open).collect();
    let mut only_the_player = vec![0; edges.len()];
    only_the_player[0] = 1;
    assert!(
        eventually(Duration::from_secs(5), || edges.iter().map(|e| e.stats().connections_open).collect::<Vec<_>>() == only_the_player),
        "connections open {open:?}"
    );
}

#[test]
fn edge_whose_origin_is_itself_refuses_the_loop() {
    let addr = own_loopback_addr();
    let edge = start_relay(Config {
        listen: addr,
        ..edge_config(&[addr])
    });
    // The player, and the edge's own pull arriving at itself.
    assert_loop_refused(&[&edge], &[2]);
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
    // a: the player, and b's pull; b: a's pull.
    assert_loop_refused(&[&edge_a, &edge_b], &[2, 1]);
}

#[test]
fn pull_lingers_after_the_last_player_then_closes() {
    // How long it lingers is the core's to test with a fake clock; here: a player back
    // within the linger reuses the pull, and an unwatched pull closes for that reason.
    let origin = start_relay(test_config());
    let edge = start_relay(Config {
        pull_linger: Duration::from_secs(2),
        upstream_timeout: Duration::from_secs(20),
        ..edge_config_with_api(&[origin.local_addr()])
    });
    let first = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(20), "first");
    first.wait_ready(EXCHANGE_TIMEOUT);
    wait_players(&origin, 1, "pull");
    first.finish();
    wait_players(&edge, 0, "the first player left");
    assert_eq!((edge.stats().pulls, origin.stats().players), (1, 1), "the pull lingers");
    let second = PlayerThread::spawn(edge.local_addr(), APP, "s", for_seconds(20), "second");
    second.wait_ready(EXCHANGE_TIMEOUT);
    wait_players(&edge, 1, "the second player");
    assert_eq!(
        (origin.stats().connections_accepted, origin.stats().connections_open),
        (1, 1),
        "a player within the linger reuses the pull"
    );
    second.finish();
    assert!(
        eventually(Duration::from_secs(10), || origin.stats().connections_open == 0),
        "pull still open 10 s after the last player left: {:?}",
        origin.stats()
    );
    let closes = common::http::closes_by_reason(edge.http_addr().unwrap());
    assert_eq!(closes.get("pull_unwatched"), Some(&1), "{closes:?}");
}

/// How often the edge at `api` reconnected the pull of stream `name` (its API's view).
fn pull_reconnects(api: SocketAddr, name: &str) -> Option<u64> {
    let streams = common::http::get(api, "/api/v1/streams", None).json();
    let stream = streams.as_array()?.iter().find(|s| s["name"] == name)?.clone();
    stream["upstream"]["reconnects"].as_u64()
}

#[test]
fn waiting_for_a_stream_not_yet_published_keeps_one_pull() {
    // Players often connect before the encoder. The origin accepts the play and sends
    // nothing until a publish starts: that silence is not an upstream failure, so the pull
    // should stay (not be torn down and redone every upstream_timeout, which loses the
    // start of a publish that begins during a reconnect). A second stream that delivered
    // media and then went silent shows when upstream_timeout has passed: its pull is redone.
    let origin = start_relay(test_config());
    let edge = start_relay(edge_config_with_api(&[origin.local_addr()]));
    let api = edge.http_addr().unwrap();
    let waiting = PlayerThread::spawn(edge.local_addr(), APP, "waiting", for_seconds(30), "waiting");
    let watching = PlayerThread::spawn(edge.local_addr(), APP, "silent", for_seconds(30), "watching");
    waiting.wait_ready(EXCHANGE_TIMEOUT);
    watching.wait_ready(EXCHANGE_TIMEOUT);
    wait_players(&origin, 2, "both pulls");
    let published = fixture_items(FIXTURE, 0);
    let second = published.iter().position(|i| i.timestamp() >= 1000).unwrap();
    let mut publisher = publish_all(origin.local_addr(), "silent", &published[..second], None);
    let silent_redone = eventually(Duration::from_secs(15), || {
        publisher.drain_nonblocking().unwrap();
        pull_reconnects(api, "silent").is_some_and(|n| n >= 1)
    });
    assert!(silent_redone, "the silent pull was never redone: {:?}", edge.stats());
    assert_eq!(
        pull_reconnects(api, "waiting"),
        Some(0),
        "the waiting pull was redone while the origin stream was unpublished"
    );
}

#[test]
fn forward_reconnects_after_the_origin_restarts_and_resumes_at_a_keyframe() {
    // The encoder publishes to the edge; the origin dies mid-stream and comes back. The
    // edge's own player never notices; the forward reconnects with backoff and the new
    // origin's player gets the stream from a keyframe on.
    // Restarted on the same address: one of this process's own, which no other test takes
    // while the origin is down.
    let origin_addr = own_loopback_addr();
    let origin = start_relay(Config { listen: origin_addr, ..test_config() });
    let edge = start_relay(edge_config(&[origin_addr]));
    let published = fixture_items(FIXTURE, 0);
    let split = published.iter().position(|i| i.timestamp() >= 1500).unwrap();
    let mut publisher = RtmpTestClient::connect(edge.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    wait_publishers(&origin, 1, "origin sees the forward");
    let at_edge = PlayerThread::spawn(edge.local_addr(), APP, "s", until_unpublish(1), "edge-player");
    at_edge.wait_ready(EXCHANGE_TIMEOUT);
    publisher.send_items(&published[..split], None).unwrap();

    origin.shutdown().unwrap();
    let origin = start_relay(Config { listen: origin_addr, ..test_config() });
    let at_origin = PlayerThread::spawn(origin_addr, APP, "s", until_unpublish(1), "new-origin-player");
    at_origin.wait_ready(EXCHANGE_TIMEOUT);
    wait_publishers(&origin, 1, "the forward comes back");
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
    assert!(
        eventually(Duration::from_secs(5), || !origin.seen.lock().unwrap().publishes.is_empty()),
        "the forward never published"
    );
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
