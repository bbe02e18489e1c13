//! `rtmp_edge::blocking` against real servers: the relay in-process and nginx-rtmp, with
//! ffmpeg on the other end. Checked by content: the packets ffprobe reads from what one
//! side wrote hash the same as the fixture the other side sent.

mod common;

use std::thread::JoinHandle;
use std::time::Duration;

use common::interop::*;
use common::library::*;
use common::*;
use rtmp_edge::blocking::{self, Error, Player};
use rtmp_edge::flv::{FlvTag, FlvTagType};
use rtmp_edge::sessions::{
    codes, ClientSession, ClientSessionConfig, ClientSessionEvent, PublishMode, RejectedRequestKind, SessionError,
};
use rtmp_edge::url::RtmpUrl;

const FIXTURE: &str = "h264_aac.flv";

fn url(text: &str) -> RtmpUrl {
    RtmpUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Plays on a thread until the iterator ends; the handle gives every tag, in order.
fn record_on_thread(player: Player) -> JoinHandle<Vec<FlvTag>> {
    std::thread::spawn(move || player.map(|tag| tag.unwrap_or_else(|e| panic!("player: {e}"))).collect())
}

#[test]
fn ffmpeg_publishes_and_the_blocking_client_records() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("blocking-record");
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    // play() returns at NetStream.Play.Start: the relay has the player before ffmpeg starts.
    let player = blocking::connect(&url(&source)).unwrap().play().unwrap();
    let recorder = record_on_thread(player);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    // The relay sends StreamDry when ffmpeg leaves, which ends the iterator.
    let tags = recorder.join().unwrap();
    assert_eq!(tags.first().map(|t| t.tag_type), Some(FlvTagType::Script), "metadata comes first");
    assert!(tags[0].data.starts_with(b"\x02\x00\x0aonMetaData"), "the script tag is onMetaData");
    let out = dir.join("recorded.flv");
    write_flv(&tags, &out);
    assert_same_packets(&fixture_packets(FIXTURE), &probe_packets(&out), "blocking recorder");
    relay.shutdown().unwrap();
}

#[test]
fn the_blocking_client_publishes_and_ffmpeg_records() {
    let dir = TempDir::new("blocking-publish");
    let relay = start_relay(test_config());
    ffmpeg_records_what_is_published(relay, FIXTURE, &dir, |target| {
        // As fast as the relay takes it: the send path's acks and backpressure at full speed.
        let mut publisher = blocking::connect(&url(target)).unwrap().publish(PublishMode::Live).unwrap();
        for tag in fixture_tags(FIXTURE) {
            publisher.send_tag(&tag).unwrap();
        }
        publisher.finish().unwrap();
    });
}

#[test]
fn blocking_publisher_to_blocking_player_keeps_every_tag() {
    let relay = start_relay(test_config());
    let target = url(&live_url(relay.local_addr(), "exact"));
    let recorder = record_on_thread(blocking::connect(&target).unwrap().play().unwrap());
    let sent = fixture_tags(FIXTURE);
    let mut publisher = blocking::connect(&target).unwrap().publish(PublishMode::Live).unwrap();
    for tag in &sent {
        publisher.send_tag(tag).unwrap();
    }
    publisher.finish().unwrap();
    let received = recorder.join().unwrap();
    assert_eq!(received.len(), sent.len());
    for (index, (got, expected)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(got, expected, "tag #{index}");
    }
    relay.shutdown().unwrap();
}

#[test]
fn a_refused_publish_is_an_error() {
    let relay = start_relay(test_config());
    let target = url(&live_url(relay.local_addr(), "taken"));
    let first = blocking::connect(&target).unwrap().publish(PublishMode::Live).unwrap();
    match blocking::connect(&target).unwrap().publish(PublishMode::Live) {
        Err(Error::Rejected { kind: RejectedRequestKind::Publish, status }) => {
            assert_eq!(status.code, codes::PUBLISH_BAD_NAME)
        }
        other => panic!("second publisher: expected a refusal, got {other:?}"),
    }
    first.finish().unwrap();
    relay.shutdown().unwrap();
}

#[test]
fn urls_the_blocking_client_cannot_use_are_errors() {
    let relay = start_relay(test_config());
    let no_stream = url(&format!("rtmp://{}/live", relay.local_addr()));
    assert!(matches!(
        blocking::connect(&no_stream).unwrap().play(),
        Err(Error::Session(SessionError::NoStreamName))
    ));
    let secure = url(&format!("rtmps://{}/live/s", relay.local_addr()));
    assert!(matches!(blocking::connect(&secure), Err(Error::TlsNotSupported)));
    relay.shutdown().unwrap();
}

#[test]
fn a_player_waiting_on_nginx_is_told_and_records_what_follows() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("blocking-nginx");
    let nginx = Nginx::start("blocking-nginx");
    // nginx-rtmp answers a play of a stream nobody publishes with Play.Start and no
    // StreamBegin; the StreamBegin comes with the publisher.
    let player = blocking::connect(&url(&nginx.url("later"))).unwrap().play().unwrap();
    assert!(player.is_waiting(), "nginx's Play.Start without StreamBegin should read as waiting");
    let recorder = record_on_thread(player);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &nginx.url("later"), &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    // nginx sends StreamEOF when the publisher leaves, which ends the iterator.
    let tags = with_nginx_log_on_failure(&nginx, || recorder.join().unwrap());
    let out = dir.join("recorded.flv");
    write_flv(&tags, &out);
    let input = fixture_packets(FIXTURE);
    let output = probe_packets(&out);
    for codec_type in ["video", "audio"] {
        assert_eq!(assert_contiguous_run(&input, &output, codec_type, input[codec_type].len(), "nginx recording"), 0);
    }
}

/// A server that completes the handshake, then does `after` with the connection.
fn handshake_then(after: impl FnOnce(std::net::TcpStream) + Send + 'static) -> RtmpUrl {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        blocking::handshake(&mut socket, rtmp_edge::handshake::HandshakeRole::Server).unwrap();
        after(socket);
    });
    url(&format!("rtmp://{address}/live/s"))
}

#[test]
fn a_server_that_never_answers_is_a_timeout_and_one_that_hangs_up_is_closed() {
    let (keep, kept) = std::sync::mpsc::channel();
    let silent = handshake_then(move |socket| keep.send(socket).unwrap());
    let options = blocking::Options { reply_timeout: Some(Duration::from_millis(300)), ..blocking::Options::default() };
    let result = blocking::connect_with(&silent, options).unwrap().play();
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    drop(kept);

    let hangs_up = handshake_then(drop);
    let result = blocking::connect(&hangs_up).unwrap().publish(PublishMode::Live);
    assert!(matches!(result, Err(Error::Closed | Error::Io(_))), "{result:?}");
}

/// The library's `ClientSession` playing over a plain socket, keeping every event it
/// reports: what the blocking `Player` folds into `is_waiting()`, seen as it arrives.
struct SessionPlayer {
    socket: std::net::TcpStream,
    session: ClientSession,
    events: Vec<ClientSessionEvent>,
}

impl SessionPlayer {
    fn play(target: &RtmpUrl) -> SessionPlayer {
        let mut socket = std::net::TcpStream::connect(target.authority()).unwrap();
        // Not a timing assertion: a relay that stops answering fails the test, not hangs it.
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let leftover = blocking::handshake(&mut socket, rtmp_edge::handshake::HandshakeRole::Client).unwrap();
        let mut session = ClientSession::new(ClientSessionConfig::default());
        session.play(target).unwrap();
        session.handle_input(&leftover).unwrap();
        SessionPlayer { socket, session, events: Vec::new() }
    }

    /// Exchanges bytes with the relay until `done` holds for the events so far.
    fn read_until(&mut self, done: impl Fn(&[ClientSessionEvent]) -> bool) {
        use std::io::{Read, Write};
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            while let Some(event) = self.session.poll_event() {
                self.events.push(event);
            }
            self.socket.write_all(&self.session.take_outbound()).unwrap();
            if done(&self.events) {
                return;
            }
            let read = self.socket.read(&mut buffer).unwrap_or_else(|e| panic!("read: {e}; events so far {:?}", self.events));
            assert!(read > 0, "the relay closed the connection; events so far {:?}", self.events);
            self.session.handle_input(&buffer[..read]).unwrap();
        }
    }

    /// The events about the play's state, by name, in order.
    fn play_states(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|event| match event {
                ClientSessionEvent::ConnectionAccepted { .. } => Some("ConnectionAccepted".to_string()),
                ClientSessionEvent::PlaybackStarted { .. } => Some("PlaybackStarted".to_string()),
                ClientSessionEvent::WaitingForPublisher { stream_name, .. } => Some(format!("WaitingForPublisher {stream_name}")),
                ClientSessionEvent::StreamBegin { .. } => Some("StreamBegin".to_string()),
                ClientSessionEvent::StreamDry { .. } => Some("StreamDry".to_string()),
                ClientSessionEvent::StatusReceived { status, .. } => Some(status.code.clone()),
                ClientSessionEvent::MediaReceived { .. } | ClientSessionEvent::MetadataReceived { .. } => {
                    Some("media".to_string())
                }
                _ => None,
            })
            .fold(Vec::new(), |mut states: Vec<String>, state| {
                // A run of media is one entry: the test is about what surrounds it.
                if !(state == "media" && states.last().is_some_and(|last| last == "media")) {
                    states.push(state);
                }
                states
            })
    }
}

// The relay answers a play of a stream nobody publishes at once, with Play.Start and no
// StreamBegin (as nginx-rtmp does): the library's client reports WaitingForPublisher and
// the blocking Player reads as waiting, until the publisher's StreamBegin.
#[test]
fn a_play_before_any_publisher_waits_on_the_relay_until_one_starts() {
    let relay = start_relay(test_config());
    let target = url(&live_url(relay.local_addr(), "later"));
    let mut watcher = SessionPlayer::play(&target);
    watcher.read_until(|events| events.iter().any(|e| matches!(e, ClientSessionEvent::WaitingForPublisher { .. })));
    let player = blocking::connect(&target).unwrap().play().unwrap();
    assert!(player.is_waiting(), "Play.Start without StreamBegin reads as waiting");
    wait_players(&relay, 2, "both players");

    let mut player = player;
    let recorder = std::thread::spawn(move || {
        let first = player.next().expect("a first tag").expect("a first tag, not an error");
        let waiting_after_first = player.is_waiting();
        let rest: Vec<FlvTag> = player.map(|tag| tag.unwrap_or_else(|e| panic!("player: {e}"))).collect();
        (waiting_after_first, std::iter::once(first).chain(rest).collect::<Vec<_>>())
    });
    let watching = std::thread::spawn(move || {
        watcher.read_until(|events| events.iter().any(|e| matches!(e, ClientSessionEvent::StreamDry { .. })));
        watcher.play_states()
    });
    let sent = fixture_tags(FIXTURE);
    let mut publisher = blocking::connect(&target).unwrap().publish(PublishMode::Live).unwrap();
    for tag in &sent {
        publisher.send_tag(tag).unwrap();
    }
    publisher.finish().unwrap();

    let (waiting_after_first, received) = recorder.join().unwrap();
    assert!(!waiting_after_first, "StreamBegin came before the first tag and ended the wait");
    assert_eq!(received, sent, "every tag, from the first");
    assert_eq!(
        watching.join().unwrap(),
        [
            "ConnectionAccepted",
            codes::PLAY_RESET,
            "PlaybackStarted",
            "WaitingForPublisher later",
            "StreamBegin",
            "media",
            "StreamDry",
        ]
    );
    relay.shutdown().unwrap();
}

/// What a server saw of a blocking publisher's answers to its pings and window.
#[derive(Debug, Default)]
struct Answers {
    bytes_out: usize,
    acknowledged: Vec<u32>,
    pongs: Vec<u32>,
}

/// Ping requests the server sends: with their chunk headers, more than its window.
const PINGS: u32 = 300;

/// A server made of the library's `ServerSession` with a 4 KiB acknowledgement window:
/// it accepts the connect and publish, sends `PINGS` ping requests (about 6.6 KB), and
/// reports what came back once every ping is answered.
/// Small enough that the pings alone (about 2.8 KB) cross it twice.
const WINDOW: u32 = 1024;

fn pinging_server() -> (RtmpUrl, std::sync::mpsc::Receiver<Answers>) {
    use rtmp_edge::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent};
    use std::io::{Read, Write};
    let (report, answers) = std::sync::mpsc::channel();
    let url = handshake_then(move |mut socket| {
        let config = ServerSessionConfig { window_ack_size: WINDOW, ..ServerSessionConfig::default() };
        let mut session = ServerSession::new(config);
        let mut seen = Answers::default();
        let mut buffer = vec![0u8; 64 * 1024];
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        while seen.pongs.len() < PINGS as usize {
            let read = match socket.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            session.handle_input(&buffer[..read]).unwrap();
            while let Some(event) = session.poll_event() {
                match event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. } => session.accept_request(request_id).unwrap(),
                    ServerSessionEvent::PublishRequested { request_id, .. } => {
                        session.accept_request(request_id).unwrap();
                        for timestamp in 0..PINGS {
                            session.send_ping_request(timestamp).unwrap();
                        }
                    }
                    ServerSessionEvent::AcknowledgementReceived { sequence_number } => seen.acknowledged.push(sequence_number),
                    ServerSessionEvent::PingResponseReceived { timestamp } => seen.pongs.push(timestamp),
                    _ => {}
                }
            }
            if session.has_outbound() {
                let bytes = session.take_outbound();
                seen.bytes_out += bytes.len();
                socket.write_all(&bytes).unwrap();
            }
        }
        let _ = report.send(seen);
        // Open until the client leaves: its sends after the report must not fail.
        while socket.read(&mut buffer).is_ok_and(|read| read > 0) {}
    });
    (url, answers)
}

// The module's promise: a publisher that only sends still answers the server's ping
// requests and acknowledges its window, because each send reads what is waiting.
#[test]
fn a_blocking_publisher_answers_pings_and_the_window_while_it_only_sends() {
    let (url, answers) = pinging_server();
    let mut publisher = blocking::connect(&url).unwrap().publish(PublishMode::Live).unwrap();
    let tags = fixture_tags(FIXTURE);
    // Sends until the server has every answer (the pings arrive while the sends go on).
    let seen = tags
        .iter()
        .cycle()
        .take(100 * tags.len())
        .find_map(|tag| {
            publisher.send_tag(tag).unwrap();
            answers.try_recv().ok()
        })
        .expect("the server got every answer within 100 passes over the file");
    assert_eq!(seen.pongs, (0..PINGS).collect::<Vec<_>>(), "every ping answered, in order");
    // The server sent more than its window, so the client acknowledged; each figure is
    // what the client had received, which the server had sent.
    assert!(!seen.acknowledged.is_empty(), "{seen:?}");
    assert!(seen.acknowledged.iter().all(|&total| total >= WINDOW && total as usize <= seen.bytes_out + 3073), "{seen:?}");
    drop(publisher);
}

/// Runs `work` on a thread and waits for it: a hang fails the test instead of holding it.
/// Not a timing assertion: the limit is far above any timeout the client has.
fn finishes<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    result.recv_timeout(Duration::from_secs(120)).expect("returned instead of hanging")
}

// A server that paces its handshake a byte at a time restarts a per-read timeout with each
// byte; the client still gives up after one reply_timeout in all.
#[test]
fn a_handshake_trickled_a_byte_at_a_time_times_out() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = url(&format!("rtmp://{}/live/s", listener.local_addr().unwrap()));
    std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut hello = [0u8; 1537];
        socket.read_exact(&mut hello).unwrap();
        // S0, then S1 at 5 bytes a second: 5 minutes for all of it.
        let mut s0s1 = vec![3u8];
        s0s1.extend([0u8; 1536]);
        for byte in s0s1 {
            if socket.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let options = blocking::Options { reply_timeout: Some(Duration::from_secs(1)), ..blocking::Options::default() };
    let result = finishes(move || blocking::connect_with(&target, options).map(|_| ()));
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
}

// close() half-closes and waits for the server's end, but not for ever: a server that keeps
// sending (a ping every half second here) cannot keep it.
#[test]
fn close_returns_while_the_server_keeps_sending() {
    use rtmp_edge::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent};
    use std::io::{Read, Write};
    let target = handshake_then(|mut socket| {
        let mut session = ServerSession::new(ServerSessionConfig::default());
        let mut buffer = vec![0u8; 64 * 1024];
        socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        for ping in 0..1000u32 {
            match socket.read(&mut buffer) {
                Ok(read) if read > 0 => session.handle_input(&buffer[..read]).unwrap(),
                Ok(_) => {}
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            while let Some(event) = session.poll_event() {
                if let ServerSessionEvent::ConnectionRequested { request_id, .. } | ServerSessionEvent::PlayRequested { request_id, .. } = event {
                    session.accept_request(request_id).unwrap();
                }
            }
            session.send_ping_request(ping).unwrap();
            if socket.write_all(&session.take_outbound()).is_err() {
                return;
            }
        }
    });
    let player = blocking::connect(&target).unwrap().play().unwrap();
    let result = finishes(move || player.close());
    assert!(result.is_ok(), "{result:?}");
}
