//! Shared helpers for the relay tests: a blocking RTMP client built on the library's sans-IO
//! handshake and ClientSession, FLV fixture loading, and helpers for driving real programs
//! (ffmpeg, ffprobe, rtmpdump, gst-launch-1.0, nginx) that never hang and never silently pass.
//!
//! Every socket read has a short timeout and every wait has an overall deadline, so a relay
//! that stops answering fails a test instead of hanging the suite.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtmp_edge::flv::{FlvReader, FlvTagType};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::relay::{self, Config, RelayHandle};
use rtmp_edge::sessions::{
    codes, ClientSession, ClientSessionConfig, ClientSessionEvent, MediaKind, PublishMode, StatusInfo,
};
use rtmp_edge::time::RtmpTimestamp;

pub mod flv_http;
pub mod hooks;
pub mod http;
pub mod interop;
pub mod library;
pub mod ports;
pub mod proxy;
pub mod runs;

pub use ports::*;
pub mod tls;

/// How long one socket read waits before the caller re-checks its deadline.
pub const READ_STEP: Duration = Duration::from_millis(50);
/// Deadline for a handshake plus connect, and for single request/answer exchanges.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Relay
// ---------------------------------------------------------------------------------------

/// A relay config for tests: loopback, ephemeral port, generous queues (so that a reader
/// thread on a loaded machine is never mistaken for a slow player).
pub fn test_config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        queue_soft_limit_ms: 60_000,
        queue_hard_limit_ms: 120_000,
        queue_hard_limit_bytes: 256 * 1024 * 1024,
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        ..Config::default()
    }
}

/// Starts a relay, failing the test with the error if it cannot.
pub fn start_relay(config: Config) -> RelayHandle {
    relay::spawn(config).unwrap_or_else(|error| panic!("relay::spawn failed: {error}"))
}

/// An edge of `origins`: short linger and upstream timeout so that faults show in seconds.
pub fn edge_config(origins: &[SocketAddr]) -> Config {
    Config {
        origins: origins.iter().map(SocketAddr::to_string).collect(),
        pull_linger: Duration::from_millis(500),
        upstream_timeout: Duration::from_secs(2),
        ..test_config()
    }
}

/// Polls `condition` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn eventually(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    eventually_every(Duration::from_millis(10), timeout, condition)
}

/// Polls `condition` every `interval` until it holds (true) or `timeout` passes (false).
pub fn eventually_every(interval: Duration, timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures and published items
// ---------------------------------------------------------------------------------------

/// Path of a file in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// One message as the publisher sent it and as a player should see it.
#[derive(Clone, PartialEq, Eq)]
pub enum Item {
    /// `onMetaData` body (without `@setDataFrame`).
    Metadata {
        /// Timestamp in ms.
        timestamp: u32,
        /// AMF0 body starting with the string "onMetaData".
        raw: Bytes,
    },
    /// Audio, video or other data message.
    Media {
        /// Which kind.
        kind: MediaKind,
        /// Timestamp in ms.
        timestamp: u32,
        /// Message body.
        data: Bytes,
    },
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Metadata { timestamp, raw } => write!(f, "Metadata(ts={timestamp}, {} bytes)", raw.len()),
            Item::Media { kind, timestamp, data } => {
                let head: Vec<String> = data.iter().take(2).map(|b| format!("{b:02x}")).collect();
                write!(
                    f,
                    "{kind:?}(ts={timestamp}, {} bytes, head {})",
                    data.len(),
                    head.join(" ")
                )
            }
        }
    }
}

impl Item {
    /// The timestamp in ms.
    pub fn timestamp(&self) -> u32 {
        match self {
            Item::Metadata { timestamp, .. } | Item::Media { timestamp, .. } => *timestamp,
        }
    }

    /// The same item with another timestamp.
    pub fn with_timestamp(&self, timestamp: u32) -> Item {
        match self.clone() {
            Item::Metadata { raw, .. } => Item::Metadata { timestamp, raw },
            Item::Media { kind, data, .. } => Item::Media { kind, timestamp, data },
        }
    }

    /// Video tag whose frame type is 1 (keyframe) and that is not a sequence header.
    pub fn is_video_keyframe(&self) -> bool {
        matches!(self, Item::Media { kind: MediaKind::Video, data, .. }
            if data.len() >= 2 && data[0] >> 4 == 1 && !is_sequence_header(MediaKind::Video, data))
    }

    /// AVC/AAC sequence header (decoder configuration), legacy FLV codecs only.
    pub fn is_sequence_header(&self) -> bool {
        matches!(self, Item::Media { kind, data, .. } if is_sequence_header(*kind, data))
    }

    /// Video frame that is not a sequence header.
    pub fn is_video_frame(&self) -> bool {
        matches!(
            self,
            Item::Media {
                kind: MediaKind::Video,
                ..
            }
        ) && !self.is_sequence_header()
    }

    /// Audio or video frame that is not a sequence header.
    pub fn is_frame(&self) -> bool {
        matches!(
            self,
            Item::Media {
                kind: MediaKind::Audio | MediaKind::Video,
                ..
            }
        ) && !self.is_sequence_header()
    }
}

/// Whether an audio/video body is an AVC (codec 7) or AAC (format 10) sequence header.
pub fn is_sequence_header(kind: MediaKind, data: &[u8]) -> bool {
    match kind {
        MediaKind::Video => data.len() >= 2 && data[0] & 0x0f == 7 && data[1] == 0,
        MediaKind::Audio => data.len() >= 2 && data[0] >> 4 == 10 && data[1] == 0,
        MediaKind::Data => false,
    }
}

/// Frames only (no metadata, no sequence headers).
pub fn frames_of(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .filter(|i| !i.is_sequence_header() && !matches!(i, Item::Metadata { .. }))
        .cloned()
        .collect()
}

/// Index (among frames: no metadata, no sequence headers) of the first video keyframe, or 0
/// for streams without video.
pub fn first_keyframe_frame_index(published: &[Item]) -> usize {
    frames_of(published)
        .iter()
        .position(Item::is_video_keyframe)
        .unwrap_or(0)
}

/// The tags of a fixture as items, timestamps shifted by `offset_ms`.
pub fn fixture_items(name: &str, offset_ms: u32) -> Vec<Item> {
    let items = flv_file_items(&fixture(name), offset_ms);
    assert!(!items.is_empty(), "fixture {name} has no tags");
    items
}

/// The tags of an FLV file as items, read directly (no demuxer repairs anything), with
/// timestamps shifted by `offset_ms`. A file that does not parse to its end fails the test:
/// players here end at the relay's Play.Stop and finish their files.
pub fn flv_file_items(path: &Path, offset_ms: u32) -> Vec<Item> {
    let what = path.display();
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {what}: {e}"));
    let reader = FlvReader::new(Bytes::from(file)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut items = Vec::new();
    for tag in reader {
        let tag = tag.unwrap_or_else(|e| panic!("{what}: {e}"));
        let timestamp = tag.timestamp.value().wrapping_add(offset_ms);
        items.push(match tag.tag_type {
            FlvTagType::Script => Item::Metadata {
                timestamp,
                raw: tag.data,
            },
            FlvTagType::Audio => Item::Media {
                kind: MediaKind::Audio,
                timestamp,
                data: tag.data,
            },
            FlvTagType::Video => Item::Media {
                kind: MediaKind::Video,
                timestamp,
                data: tag.data,
            },
        });
    }
    items
}

// ---------------------------------------------------------------------------------------
// Blocking RTMP client
// ---------------------------------------------------------------------------------------

/// What one read from the socket gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes arrived and were fed to the session.
    Data(usize),
    /// Nothing arrived within the read step.
    Nothing,
    /// The peer closed the connection (EOF or reset).
    Closed,
}

/// A blocking RTMP client over a TcpStream, driving the library's ClientSession.
pub struct RtmpTestClient {
    stream: TcpStream,
    session: ClientSession,
    events: VecDeque<ClientSessionEvent>,
    closed: bool,
    /// Stream id we publish or play on, once known.
    pub stream_id: Option<u32>,
}

impl RtmpTestClient {
    /// Connects, handshakes and sends `connect` for `app`, then waits for it to be accepted.
    pub fn connect(addr: SocketAddr, app: &str) -> Result<Self, String> {
        let stream = open_socket(addr)?;
        Self::connect_on(stream, app)
    }

    /// [`connect`](Self::connect) on a socket already open (after a PROXY header, say).
    pub fn connect_on(stream: TcpStream, app: &str) -> Result<Self, String> {
        let addr = stream.peer_addr().map_err(|e| e.to_string())?;
        let mut client = Self::handshake_on(stream)?;
        client
            .session
            .connect(app, &format!("rtmp://{addr}/{app}"))
            .map_err(|e| format!("ClientSession::connect: {e}"))?;
        client.flush()?;
        match client.wait_for(EXCHANGE_TIMEOUT, |e| {
            matches!(
                e,
                ClientSessionEvent::ConnectionAccepted { .. } | ClientSessionEvent::RequestRejected { .. }
            )
        })? {
            ClientSessionEvent::ConnectionAccepted { .. } => Ok(client),
            other => Err(format!("connect to {addr}/{app} refused: {other:?}")),
        }
    }

    /// Opens the TCP connection and completes the handshake; no RTMP command sent yet.
    pub fn handshake_only(addr: SocketAddr) -> Result<Self, String> {
        Self::handshake_on(open_socket(addr)?)
    }

    /// [`handshake_only`](Self::handshake_only) on a socket already open.
    pub fn handshake_on(mut stream: TcpStream) -> Result<Self, String> {
        stream.set_read_timeout(Some(READ_STEP)).map_err(|e| e.to_string())?;
        let mut handshake = Handshake::new(HandshakeRole::Client, 0);
        stream
            .write_all(&handshake.start())
            .map_err(|e| format!("writing C0+C1: {e}"))?;
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        let mut buffer = vec![0u8; 8192];
        let remaining = loop {
            let n = read_step(&mut stream, &mut buffer, deadline, "handshake")?;
            if n == 0 {
                continue;
            }
            match handshake.process(&buffer[..n]).map_err(|e| format!("handshake: {e}"))? {
                HandshakeProgress::InProgress { response } => {
                    stream
                        .write_all(&response)
                        .map_err(|e| format!("handshake write: {e}"))?;
                }
                HandshakeProgress::Completed { response, remaining } => {
                    stream
                        .write_all(&response)
                        .map_err(|e| format!("handshake write: {e}"))?;
                    break remaining;
                }
            }
        };
        let mut client = RtmpTestClient {
            stream,
            session: ClientSession::new(ClientSessionConfig::default()),
            events: VecDeque::new(),
            closed: false,
            stream_id: None,
        };
        if !remaining.is_empty() {
            client.feed(&remaining)?;
        }
        Ok(client)
    }

    /// The raw socket (for tests that misbehave on purpose).
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes whatever the session has to send.
    pub fn flush(&mut self) -> Result<(), String> {
        let out = self.session.take_outbound();
        if !out.is_empty() {
            self.stream
                .write_all(&out)
                .map_err(|e| format!("write to relay: {e}"))?;
        }
        Ok(())
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.session
            .handle_input(bytes)
            .map_err(|e| format!("session error on relay's bytes: {e}"))?;
        while let Some(event) = self.session.poll_event() {
            self.events.push_back(event);
        }
        self.flush()
    }

    /// One read (up to READ_STEP), fed to the session.
    pub fn pump(&mut self) -> Result<ReadOutcome, String> {
        if self.closed {
            return Ok(ReadOutcome::Closed);
        }
        let mut buffer = vec![0u8; 64 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => {
                self.closed = true;
                Ok(ReadOutcome::Closed)
            }
            Ok(n) => {
                self.feed(&buffer[..n])?;
                Ok(ReadOutcome::Data(n))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(ReadOutcome::Nothing)
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                self.closed = true;
                Ok(ReadOutcome::Closed)
            }
            Err(e) => Err(format!("read from relay: {e}")),
        }
    }

    /// Reads whatever is already waiting without blocking (publishers call this between
    /// messages so that acknowledgements and pings are answered).
    pub fn drain_nonblocking(&mut self) -> Result<(), String> {
        self.stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let result = loop {
            match self.pump() {
                Ok(ReadOutcome::Data(_)) => continue,
                other => break other,
            }
        };
        self.stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        result.map(|_| ())
    }

    /// Next event, waiting up to `timeout`; None on timeout or close.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ClientSessionEvent>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if self.pump()? == ReadOutcome::Closed && self.events.is_empty() {
                return Ok(None);
            }
        }
    }

    /// Waits for an event matching `wanted`, dropping others; fails on timeout or close.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&ClientSessionEvent) -> bool,
    ) -> Result<ClientSessionEvent, String> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(event) if wanted(&event) => return Ok(event),
                Some(event) => skipped.push(format!("{event:?}").chars().take(200).collect::<String>()),
                None => {
                    return Err(format!(
                        "expected event did not come within {timeout:?} (closed: {}); other events: {skipped:?}",
                        self.closed
                    ))
                }
            }
        }
    }

    /// Asks to publish; Ok(Ok(stream id)) when started, Ok(Err(status)) when refused.
    pub fn try_publish(&mut self, name: &str) -> Result<Result<u32, StatusInfo>, String> {
        self.session
            .request_publishing(name, PublishMode::Live)
            .map_err(|e| format!("request_publishing: {e}"))?;
        self.flush()?;
        match self.wait_for(EXCHANGE_TIMEOUT, |e| {
            matches!(
                e,
                ClientSessionEvent::PublishStarted { .. } | ClientSessionEvent::RequestRejected { .. }
            )
        })? {
            ClientSessionEvent::PublishStarted { stream_id, .. } => {
                self.stream_id = Some(stream_id);
                Ok(Ok(stream_id))
            }
            ClientSessionEvent::RequestRejected { status, .. } => Ok(Err(status)),
            _ => unreachable!(),
        }
    }

    /// Asks to publish and fails unless the relay starts it.
    pub fn publish(&mut self, name: &str) -> Result<u32, String> {
        self.try_publish(name)?
            .map_err(|status| format!("publish of {name} refused: {status:?}"))
    }

    /// Sends one item on the publishing stream.
    pub fn send_item(&mut self, item: &Item) -> Result<(), String> {
        let result = match item {
            Item::Metadata { timestamp, raw } => self.session.publish_metadata_raw(RtmpTimestamp::new(*timestamp), raw),
            Item::Media { kind, timestamp, data } => {
                self.session
                    .publish_media(*kind, RtmpTimestamp::new(*timestamp), data.clone())
            }
        };
        result.map_err(|e| format!("publish {item:?}: {e}"))?;
        self.flush()
    }

    /// Sends items in order. With `speed` Some(x), paces them at x times real time
    /// (by timestamp); None sends as fast as the socket takes them.
    pub fn send_items(&mut self, items: &[Item], speed: Option<f64>) -> Result<(), String> {
        let start = Instant::now();
        let first = items.first().map(Item::timestamp).unwrap_or(0);
        for (index, item) in items.iter().enumerate() {
            if let Some(speed) = speed {
                let media_ms = item.timestamp().wrapping_sub(first) as f64;
                let due = start + Duration::from_secs_f64(media_ms / 1000.0 / speed);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            self.send_item(item)?;
            if index % 16 == 0 {
                self.drain_nonblocking()?;
            }
        }
        Ok(())
    }

    /// FCUnpublish/deleteStream for everything this client plays or publishes.
    pub fn stop(&mut self) -> Result<(), String> {
        self.session.stop().map_err(|e| format!("stop: {e}"))?;
        self.flush()
    }

    /// Sends createStream + play for `name`; does not wait for an answer.
    pub fn request_play(&mut self, name: &str) -> Result<(), String> {
        self.session
            .request_playback(name)
            .map_err(|e| format!("request_playback: {e}"))?;
        self.flush()
    }

    /// Whether the relay closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Waits until the relay closes the connection; true if it did within `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.pump()? == ReadOutcome::Closed {
                return Ok(true);
            }
            self.events.clear();
        }
        Ok(false)
    }
}

fn open_socket(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(READ_STEP)).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A raw socket with read timeouts set, for clients that misbehave on purpose.
pub fn raw_socket(addr: SocketAddr) -> TcpStream {
    open_socket(addr).unwrap_or_else(|e| panic!("{e}"))
}

fn read_step(stream: &mut TcpStream, buffer: &mut [u8], deadline: Instant, what: &str) -> Result<usize, String> {
    if Instant::now() >= deadline {
        return Err(format!("{what}: deadline passed"));
    }
    match stream.read(buffer) {
        Ok(0) => Err(format!("{what}: connection closed by relay")),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Reads from a raw socket until EOF/reset (true) or until `timeout` passes (false),
/// discarding what arrives.
pub fn socket_closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let _ = stream.set_read_timeout(Some(READ_STEP));
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// Players on threads
// ---------------------------------------------------------------------------------------

/// What a player saw, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// Metadata or media.
    Item(Item),
    /// An onStatus code (Play.Start, PublishNotify, UnpublishNotify...).
    Status(String),
    /// StreamBegin user control event.
    StreamBegin,
    /// StreamEOF user control event.
    StreamEof,
    /// StreamDry: the relay's sign that the publisher left (the player stays).
    StreamDry,
    /// The relay closed the connection.
    Closed,
}

impl Received {
    /// An onStatus code as a log entry.
    pub fn status(code: &str) -> Received {
        Received::Status(code.to_string())
    }
}

/// Everything in a log but media and metadata, in order.
pub fn events_of(log: &[Received]) -> Vec<Received> {
    log.iter().filter(|r| !matches!(r, Received::Item(_))).cloned().collect()
}

/// A player that waited for a stream got exactly `published`, then the shutdown's
/// `NetStream.Play.Stop` and StreamEOF, then the close, and nothing else: no media after
/// Play.Stop, no other event.
pub fn assert_flushed_then_stopped(published: &[Item], log: &[Received], label: &str) {
    assert_items_equal(published, &items_of(log), label);
    let status = Received::status;
    assert_eq!(
        events_of(log),
        [
            status(codes::PLAY_RESET),
            status(codes::PLAY_START),
            Received::StreamBegin,
            status(codes::PLAY_STOP),
            Received::StreamEof,
            Received::Closed
        ],
        "{label}: {}",
        summarize(log)
    );
    let stop_at = log.iter().position(|r| *r == status(codes::PLAY_STOP));
    let last_item = log.iter().rposition(|r| matches!(r, Received::Item(_)));
    assert!(last_item < stop_at, "{label}: media after Play.Stop: {}", summarize(log));
}

/// A player running on its own thread.
pub struct PlayerThread {
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// While set, the thread does not read: bytes pile up in the kernel, then in the relay.
    hold: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    /// Label for messages.
    pub label: String,
}

/// When a player thread stops by itself.
#[derive(Clone, Copy, Debug)]
pub struct PlayerStop {
    /// Stop after this many StreamDry events, the relay's sign that a publisher left (0: never on that account).
    pub after_unpublish: usize,
    /// Stop at the latest after this long.
    pub deadline: Duration,
}

impl PlayerThread {
    /// Connects to `app`, plays `name` and records what arrives until `stop` says so.
    pub fn spawn(addr: SocketAddr, app: &str, name: &str, stop: PlayerStop, label: &str) -> PlayerThread {
        let ready = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::new(AtomicBool::new(false));
        let hold = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (app, name) = (app.to_string(), name.to_string());
        let thread = {
            let flags = PlayerFlags { ready: ready.clone(), stop: stop_flag.clone(), hold: hold.clone() };
            let log = log.clone();
            std::thread::Builder::new()
                .name(label.to_string())
                .spawn(move || run_player(addr, &app, &name, stop, &flags, &log))
                .expect("spawn player thread")
        };
        PlayerThread {
            ready,
            stop: stop_flag,
            hold,
            log,
            thread: Some(thread),
            label: label.to_string(),
        }
    }

    /// Waits until the relay answered the play (Play.Start/Reset, StreamBegin or any status).
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.ready.load(Ordering::SeqCst) {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                panic!(
                    "{}: player thread ended before it was ready: {:?}",
                    self.label,
                    self.snapshot()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no answer to play within {timeout:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops reading (the connection stays open) until [`resume_reading`](Self::resume_reading).
    pub fn hold_reading(&self) {
        self.hold.store(true, Ordering::SeqCst);
    }

    /// Reads again after [`hold_reading`](Self::hold_reading).
    pub fn resume_reading(&self) {
        self.hold.store(false, Ordering::SeqCst);
    }

    /// A copy of what arrived so far.
    pub fn snapshot(&self) -> Vec<Received> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until `done` holds for what arrived so far (true), or `timeout` (false).
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[Received]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.snapshot()) {
                return true;
            }
            if Instant::now() >= deadline || self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return done(&self.snapshot());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the thread to stop by itself (its stop condition) and returns the log.
    /// Fails the test if the thread hit an error.
    pub fn join(mut self) -> Vec<Received> {
        let result = self.thread.take().expect("joined twice").join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!(
                "{}: player failed: {e}; received: {:?}",
                self.label,
                summarize(&self.snapshot())
            ),
            Err(_) => panic!("{}: player thread panicked", self.label),
        }
        self.snapshot()
    }

    /// Stops the thread now and returns the log.
    pub fn finish(self) -> Vec<Received> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }
}

impl Drop for PlayerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a player thread shares with the test.
struct PlayerFlags {
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
}

fn run_player(
    addr: SocketAddr,
    app: &str,
    name: &str,
    stop: PlayerStop,
    flags: &PlayerFlags,
    log: &Mutex<Vec<Received>>,
) -> Result<(), String> {
    let deadline = Instant::now() + stop.deadline;
    let mut client = RtmpTestClient::connect(addr, app)?;
    client.request_play(name)?;
    let mut unpublishes = 0;
    loop {
        if flags.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return Ok(());
        }
        if flags.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let outcome = client.pump()?;
        while let Some(event) = client.events.pop_front() {
            let received = match event {
                ClientSessionEvent::PlaybackStarted { stream_id, .. } => {
                    client.stream_id = Some(stream_id);
                    Some(Received::Status(codes::PLAY_START.to_string()))
                }
                ClientSessionEvent::StatusReceived { status, .. } => Some(Received::Status(status.code)),
                ClientSessionEvent::RequestRejected { status, .. } => Some(Received::Status(status.code)),
                ClientSessionEvent::StreamBegin { .. } => Some(Received::StreamBegin),
                ClientSessionEvent::StreamEof { .. } => Some(Received::StreamEof),
                ClientSessionEvent::StreamDry { .. } => Some(Received::StreamDry),
                ClientSessionEvent::MetadataReceived {
                    timestamp, metadata, ..
                } => Some(Received::Item(Item::Metadata {
                    timestamp: timestamp.value(),
                    raw: metadata.raw,
                })),
                ClientSessionEvent::MediaReceived {
                    kind,
                    timestamp,
                    data,
                    stream_id,
                } => {
                    if client.stream_id.is_some_and(|id| id != stream_id) {
                        return Err(format!(
                            "media on message stream {stream_id}, we play on {:?}",
                            client.stream_id
                        ));
                    }
                    Some(Received::Item(Item::Media {
                        kind,
                        timestamp: timestamp.value(),
                        data,
                    }))
                }
                _ => None,
            };
            if let Some(received) = received {
                if !matches!(received, Received::Item(_)) {
                    flags.ready.store(true, Ordering::SeqCst);
                }
                if received == Received::StreamDry {
                    unpublishes += 1;
                }
                log.lock().map_err(|_| "log poisoned")?.push(received);
            }
        }
        if stop.after_unpublish > 0 && unpublishes >= stop.after_unpublish {
            return Ok(());
        }
        if outcome == ReadOutcome::Closed {
            log.lock().map_err(|_| "log poisoned")?.push(Received::Closed);
            return Ok(());
        }
    }
}

/// The items of a log, in order.
pub fn items_of(log: &[Received]) -> Vec<Item> {
    log.iter()
        .filter_map(|r| match r {
            Received::Item(item) => Some(item.clone()),
            _ => None,
        })
        .collect()
}

/// The status codes of a log, in order.
pub fn statuses_of(log: &[Received]) -> Vec<String> {
    log.iter()
        .filter_map(|r| match r {
            Received::Status(code) => Some(code.clone()),
            _ => None,
        })
        .collect()
}

/// A short readable account of a log (for failure messages).
pub fn summarize(log: &[Received]) -> String {
    let mut out = Vec::new();
    let mut items = 0;
    for r in log {
        match r {
            Received::Item(_) => items += 1,
            other => {
                if items > 0 {
                    out.push(format!("{items} items"));
                    items = 0;
                }
                out.push(format!("{other:?}"));
            }
        }
    }
    if items > 0 {
        out.push(format!("{items} items"));
    }
    out.join(", ")
}

/// Checks a late joiner's items against what was published: the published metadata first
/// (when something was published with metadata; none when nothing was), then the sequence
/// headers, then a contiguous run of `published` frames (same kind, timestamp and bytes,
/// same order) that starts at a video keyframe when the stream has video and runs to the
/// end of `published`. Returns the index in `published` where the run starts.
pub fn assert_late_join(published: &[Item], received: &[Item], label: &str) -> usize {
    let mut rest = received;
    match published.iter().find(|i| matches!(i, Item::Metadata { .. })) {
        Some(Item::Metadata { raw: expected, .. }) => match rest.first() {
            Some(Item::Metadata { raw, .. }) if raw == expected => rest = &rest[1..],
            other => panic!("{label}: expected the published metadata first, got {other:?}"),
        },
        _ => assert!(
            !matches!(rest.first(), Some(Item::Metadata { .. })),
            "{label}: metadata arrived that was never published: {:?}",
            rest.first()
        ),
    }
    let headers: Vec<&Item> = published.iter().filter(|i| i.is_sequence_header()).collect();
    let mut seen_headers = 0;
    while rest.first().is_some_and(Item::is_sequence_header) {
        let header = &rest[0];
        let known = headers.iter().any(|h| match (h, header) {
            (Item::Media { kind: k1, data: d1, .. }, Item::Media { kind: k2, data: d2, .. }) => k1 == k2 && d1 == d2,
            _ => false,
        });
        assert!(known, "{label}: sequence header {header:?} was never published");
        seen_headers += 1;
        rest = &rest[1..];
    }
    assert_eq!(
        seen_headers,
        headers.len(),
        "{label}: expected {} sequence headers before the frames",
        headers.len()
    );
    assert!(
        rest.iter()
            .all(|i| !i.is_sequence_header() && !matches!(i, Item::Metadata { .. })),
        "{label}: metadata or a sequence header arrived again among the frames"
    );
    let first = rest.first().unwrap_or_else(|| panic!("{label}: no frames received"));
    let has_video = published.iter().any(Item::is_video_frame);
    if has_video {
        let first_video = rest
            .iter()
            .find(|i| i.is_video_frame())
            .unwrap_or_else(|| panic!("{label}: no video frames"));
        assert!(
            first_video.is_video_keyframe(),
            "{label}: first video frame is not a keyframe: {first_video:?}"
        );
    }
    let frames: Vec<&Item> = published
        .iter()
        .filter(|i| !i.is_sequence_header() && !matches!(i, Item::Metadata { .. }))
        .collect();
    assert!(
        rest.len() <= frames.len(),
        "{label}: received {} frames, only {} were published",
        rest.len(),
        frames.len()
    );
    // The run must reach the end of what was published, so where it starts is fixed.
    let start = frames.len() - rest.len();
    assert!(
        frames[start] == first,
        "{label}: received frames are not the tail of the published ones: first received {first:?}, expected {:?} (published #{start})",
        frames[start]
    );
    let expected: Vec<Item> = frames[start..].iter().map(|i| (*i).clone()).collect();
    assert_items_equal(&expected, rest, label);
    start
}

/// Asserts two item lists are equal, naming the first difference.
pub fn assert_items_equal(expected: &[Item], got: &[Item], label: &str) {
    for (index, (e, g)) in expected.iter().zip(got).enumerate() {
        assert!(e == g, "{label}: item {index} differs: expected {e:?}, got {g:?}");
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{label}: expected {} items, got {} (first missing/extra: {:?})",
        expected.len(),
        got.len(),
        if got.len() < expected.len() {
            expected.get(got.len())
        } else {
            got.get(expected.len())
        }
    );
}

// ---------------------------------------------------------------------------------------
// External programs
// ---------------------------------------------------------------------------------------

/// The path of a program on PATH; fails the test if it is missing (never a silent pass).
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    for dir in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        let candidate = Path::new(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("required program `{name}` is not installed (not on PATH): this interop test cannot run without it")
}

/// The newer ffmpeg: $RTMP_EDGE_NEW_FFMPEG, else the one imageio_ffmpeg ships. Fails if neither.
pub fn new_ffmpeg() -> PathBuf {
    if let Some(path) = std::env::var_os("RTMP_EDGE_NEW_FFMPEG") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "RTMP_EDGE_NEW_FFMPEG={} is not a file", path.display());
        return path;
    }
    let output = Command::new("python3")
        .args(["-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"])
        .output()
        .unwrap_or_else(|e| panic!("newer ffmpeg: cannot run python3 ({e}); set RTMP_EDGE_NEW_FFMPEG"));
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let path = PathBuf::from(&text);
    assert!(
        output.status.success() && path.is_file(),
        "newer ffmpeg not found: set RTMP_EDGE_NEW_FFMPEG or install imageio_ffmpeg (python said {:?} / {})",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

/// A child process that is killed (and reaped) when dropped.
pub struct ChildGuard {
    child: Option<Child>,
    /// Label for messages.
    pub label: String,
}

impl ChildGuard {
    /// Spawns `command` with stdin closed; fails the test if it cannot start.
    pub fn spawn(mut command: Command, label: &str) -> ChildGuard {
        command.stdin(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot start {command:?}: {e}"));
        ChildGuard {
            child: Some(child),
            label: label.to_string(),
        }
    }

    /// The child's piped stdout, once.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|child| child.stdout.take())
    }

    /// The child's piped stderr, once.
    #[allow(dead_code)]
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.as_mut().and_then(|child| child.stderr.take())
    }

    /// Process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGINT (ffmpeg and gst-launch -e finish their output on it).
    pub fn interrupt(&self) {
        let _ = Command::new("kill").args(["-INT", &self.id().to_string()]).status();
    }

    /// Waits up to `timeout`; if still running, SIGINT and up to `grace` more, then SIGKILL.
    /// Returns the exit status if the process exited by itself or on SIGINT.
    pub fn stop_within(&mut self, timeout: Duration, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.wait_timeout(timeout) {
            return Some(status);
        }
        self.interrupt();
        if let Some(status) = self.wait_timeout(grace) {
            return Some(status);
        }
        self.kill();
        None
    }

    /// Reads the child's stdout to the end (the child must have been spawned with a piped
    /// stdout); a reader thread keeps it from blocking on a full pipe.
    pub fn take_stdout_reader(&mut self) -> JoinHandle<Vec<u8>> {
        let mut stdout = self.take_stdout().expect("stdout was not piped");
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        })
    }

    /// Collects the lines of the child's piped stderr, as they come, on a thread (a log to
    /// wait on while the program runs).
    pub fn collect_stderr_lines(&mut self) -> Arc<Mutex<Vec<String>>> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = std::io::BufRead::lines(std::io::BufReader::new(self.take_stderr().expect("stderr was not piped")));
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        log
    }

    /// Kills and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a directory under the system temp dir named after `label`.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("rtmp-edge-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir(path)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RTMP_EDGE_KEEP_TEMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One packet as ffprobe reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// "video" or "audio".
    pub codec_type: String,
    /// Decode timestamp in the stream's time base (ms for FLV), if known.
    pub dts: Option<i64>,
    /// Size in bytes.
    pub size: usize,
    /// Keyframe flag.
    pub key: bool,
    /// MD5 of the packet data.
    pub hash: String,
}

/// The packets of a media file, per codec type ("video"/"audio"), via ffprobe.
pub fn probe_packets(path: &Path) -> HashMap<String, Vec<Packet>> {
    let ffprobe = require_program("ffprobe");
    let output = Command::new(&ffprobe)
        .args([
            "-v",
            "error",
            "-show_packets",
            "-show_data_hash",
            "MD5",
            "-show_entries",
        ])
        .arg("packet=codec_type,dts,size,flags,data_hash")
        .args(["-of", "compact=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffprobe: {e}"));
    assert!(
        output.status.success(),
        "ffprobe {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut packets: HashMap<String, Vec<Packet>> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: HashMap<&str, &str> = line.split('|').filter_map(|kv| kv.split_once('=')).collect();
        let Some(codec_type) = fields.get("codec_type") else {
            continue;
        };
        let packet = Packet {
            codec_type: codec_type.to_string(),
            dts: fields.get("dts").and_then(|d| d.parse().ok()),
            size: fields.get("size").and_then(|s| s.parse().ok()).unwrap_or(0),
            key: fields.get("flags").is_some_and(|f| f.starts_with('K')),
            hash: fields.get("data_hash").map(|h| h.to_string()).unwrap_or_default(),
        };
        packets.entry(packet.codec_type.clone()).or_default().push(packet);
    }
    packets
}

/// Asserts that `output`'s packets of `codec_type` are a contiguous run of `input`'s
/// (same hash and size, in order), starting at a keyframe for video, and at least
/// `min_packets` long. Returns the start index in the input.
pub fn assert_contiguous_run(
    input: &HashMap<String, Vec<Packet>>,
    output: &HashMap<String, Vec<Packet>>,
    codec_type: &str,
    min_packets: usize,
    label: &str,
) -> usize {
    let empty = Vec::new();
    let source = input.get(codec_type).unwrap_or(&empty);
    let got = output.get(codec_type).unwrap_or(&empty);
    assert!(!source.is_empty(), "{label}: input has no {codec_type} packets");
    assert!(
        got.len() >= min_packets,
        "{label}: player got {} {codec_type} packets, expected at least {min_packets} (input has {})",
        got.len(),
        source.len()
    );
    let same = |a: &Packet, b: &Packet| a.hash == b.hash && a.size == b.size;
    let start = (0..source.len())
        .find(|&s| s + got.len() <= source.len() && got.iter().zip(&source[s..]).all(|(g, i)| same(g, i)))
        .unwrap_or_else(|| {
            let first_mismatch = (0..source.len())
                .filter(|&s| same(&got[0], &source[s]))
                .map(|s| {
                    let n = got.iter().zip(&source[s..]).take_while(|(g, i)| same(g, i)).count();
                    format!("from input #{s}: {n} packets match, then got {:?} expected {:?}", got.get(n), source.get(s + n))
                })
                .collect::<Vec<_>>();
            panic!(
                "{label}: {codec_type} packets are not a contiguous run of the input ({} got, {} in input); first packet {:?}; {first_mismatch:?}",
                got.len(),
                source.len(),
                got[0]
            )
        });
    if codec_type == "video" {
        assert!(
            source[start].key,
            "{label}: first video packet (input #{start}) is not a keyframe"
        );
    }
    start
}

/// Input packet hashes of a fixture, computed once per call.
pub fn fixture_packets(name: &str) -> HashMap<String, Vec<Packet>> {
    probe_packets(&fixture(name))
}

/// The process's stderr captured to a file in `dir` (for failure messages).
pub fn log_file(dir: &TempDir, name: &str) -> (Stdio, PathBuf) {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    (Stdio::from(file), path)
}

/// The last lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
