//! Player connections on one mio loop.
//!
//! A player uses the library's `Handshake` and `ClientSession` for the handshake and the
//! connect/createStream/play exchange. Once the server confirms the play, the session is
//! dropped and only the [`ChunkScanner`] stays: it has seen every byte from the start, so
//! it already knows the chunk size and header state, and it skips payloads in place. The
//! player then answers pings and sends acknowledgements itself.
//!
//! An HTTP-FLV or WebSocket-FLV player (`--protocol`) sends its request and scans the FLV
//! tags of the answer the same way ([`FlvScanner`]); its timestamps start at 0 where it
//! joined, so they are put back on the publisher's clock (the publisher's latest keyframe
//! when the first tag arrived) before the same latency and progress accounting.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rtmp_edge::chunk_io::{csid, ChunkEncoder};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::media::classify_video;
use rtmp_edge::messages::RtmpMessage;
use rtmp_edge::sessions::{ClientSession, ClientSessionConfig, ClientSessionEvent};
use rtmp_edge::time::RtmpTimestamp;
use rustls::{ClientConfig, ClientConnection};
use slab::Slab;

use crate::flv_scan::FlvScanner;
use crate::scan::{read_u32, ChunkScanner, ScannedMessage};
use crate::shared::{Shared, NOT_STARTED};
use crate::stats::{Counters, Gauges};
use crate::tls;
use crate::url::RtmpUrl;

/// What the players of a loop do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayerMode {
    /// Play until the run ends.
    Play,
    /// Play to the first keyframe, disconnect, reconnect.
    Churn,
    /// Play to the first keyframe and disconnect, once per connection (a burst of new
    /// players: `--rate` of them per second until `-n` were opened).
    Once,
}

/// Settings for one player loop.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// Where to play from.
    pub url: RtmpUrl,
    /// Play or churn.
    pub mode: PlayerMode,
    /// New connections per second for this loop (0: as fast as possible).
    pub rate: f64,
    /// Time a connection has to get its connect accepted.
    pub setup_timeout: Duration,
    /// TLS settings for an `rtmps://` URL.
    pub tls: Option<Arc<ClientConfig>>,
    /// HTTP-FLV or WebSocket-FLV instead of RTMP: the request to send, and whether it is a
    /// WebSocket upgrade.
    pub flv: Option<(Vec<u8>, bool)>,
}

/// A player more than this far behind real time is "behind".
const BEHIND_MS: i64 = 1000;

enum Phase {
    Connecting,
    Handshaking(Box<Handshake>),
    Session(Box<ClientSession>),
    Playing,
    /// HTTP-FLV or WebSocket-FLV: the request is sent; tags are scanned.
    Flv(Box<FlvScanner>),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Handshaking(_) => "handshake",
            Phase::Session(_) => "connect/play setup",
            Phase::Playing => "playing",
            Phase::Flv(scanner) if scanner.answered() => "playing",
            Phase::Flv(_) => "HTTP request",
        }
    }
}

/// What a player learned from the messages it scanned.
#[derive(Default)]
struct Progress {
    messages: u64,
    /// When the server accepted connect, microseconds after `Shared::base`.
    joined_us: Option<u64>,
    first_media: Option<(u64, u32)>,
    last_timestamp: Option<u32>,
    keyframe: bool,
    /// HTTP-FLV / WebSocket-FLV: what to add to a tag's timestamp to put it on the
    /// publisher's clock, set when the first tag arrives.
    flv_offset: Option<u32>,
    window: u32,
    acknowledged: u64,
    received: u64,
    pings: Vec<u32>,
    /// Sequence stamps seen so far (`sequence.rs`).
    sequence: crate::sequence::SequenceCheck,
}

struct Player {
    socket: TcpStream,
    /// `rtmps://`: TLS between the socket and the RTMP bytes.
    tls: Option<Box<ClientConnection>>,
    phase: Phase,
    scanner: ChunkScanner,
    progress: Progress,
    out: Vec<u8>,
    started: Instant,
}

/// How the loop sees a finished player.
enum Outcome {
    Continue,
    Failed(String),
    /// Churn: reached the first keyframe.
    Done,
}

/// A short, stable label for an I/O error, so errors group by cause in the report.
pub fn reason_for(error: &io::Error) -> String {
    match (error.kind(), error.raw_os_error()) {
        (io::ErrorKind::ConnectionRefused, _) => "connection refused".to_string(),
        (io::ErrorKind::ConnectionReset, _) => "connection reset by server".to_string(),
        (io::ErrorKind::ConnectionAborted, _) => "connection aborted".to_string(),
        (io::ErrorKind::BrokenPipe, _) => "broken pipe (server closed)".to_string(),
        (io::ErrorKind::TimedOut, _) => "timed out".to_string(),
        (io::ErrorKind::AddrNotAvailable, _) => "no local port available (EADDRNOTAVAIL)".to_string(),
        (io::ErrorKind::UnexpectedEof, _) => "server closed the connection".to_string(),
        // rustls reports TLS failures (a certificate that does not verify...) this way.
        (io::ErrorKind::InvalidData, _) => format!("TLS: {error}"),
        (_, Some(24)) => "too many open files (raise ulimit -n)".to_string(),
        (_, Some(code)) => format!("os error {code}"),
        _ => format!("{:?}", error.kind()),
    }
}

/// Runs one player loop until `shared.stop`.
pub fn run_loop(index: usize, config: LoopConfig, shared: Arc<Shared>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut players: Slab<Player> = Slab::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut counters = Counters::default();
    let mut opened: u64 = 0;
    let mut tokens = 1.0f64;
    let mut last_tick = Instant::now();
    let mut last_flush = Instant::now();
    let mut finished: Vec<usize> = Vec::new();
    let Some(slot) = shared.workers.get(index) else { return Ok(()) };

    while !shared.stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(5)))?;
        let now = Instant::now();
        let now_us = shared.micros_since_base(now);
        let publish_start = shared.publish_start_us.load(Ordering::Relaxed);
        for event in events.iter() {
            let key = event.token().0;
            let Some(player) = players.get_mut(key) else { continue };
            let outcome = player.on_ready(&config, &mut buffer, now, now_us, publish_start, &mut counters, &shared);
            match outcome {
                Outcome::Continue => {}
                Outcome::Failed(reason) => {
                    counters.fail(reason);
                    finished.push(key);
                }
                Outcome::Done => {
                    counters.churn_cycles += 1;
                    finished.push(key);
                }
            }
        }
        for key in finished.drain(..) {
            if players.contains(key) {
                let mut player = players.remove(key);
                let _ = poll.registry().deregister(&mut player.socket);
            }
        }

        // Open new connections within the rate.
        let elapsed = now.saturating_duration_since(last_tick).as_secs_f64();
        last_tick = now;
        let target = slot.target.load(Ordering::Relaxed);
        let wanted = match config.mode {
            PlayerMode::Play | PlayerMode::Once => target.saturating_sub(opened),
            PlayerMode::Churn => target.saturating_sub(players.len() as u64),
        };
        let mut allowed = if config.rate > 0.0 {
            tokens = (tokens + elapsed * config.rate).min(config.rate.max(1.0));
            tokens.floor() as u64
        } else {
            256
        };
        allowed = allowed.min(wanted).min(256);
        for _ in 0..allowed {
            opened += 1;
            counters.attempts += 1;
            if config.rate > 0.0 {
                tokens -= 1.0;
            }
            match open(&poll, &mut players, &config) {
                Ok(()) => {}
                Err(error) => counters.fail(error),
            }
        }

        // Timeouts and gauges, ten times a second.
        if now.saturating_duration_since(last_flush) >= Duration::from_millis(100) {
            last_flush = now;
            let mut expired = Vec::new();
            for (key, player) in players.iter() {
                let waiting = matches!(player.phase, Phase::Connecting | Phase::Handshaking(_))
                    || (matches!(player.phase, Phase::Session(_) | Phase::Flv(_)) && player.progress.joined_us.is_none());
                if waiting && now.saturating_duration_since(player.started) > config.setup_timeout {
                    expired.push((key, player.phase.name()));
                }
            }
            for (key, phase) in expired {
                counters.fail(format!("timed out during {phase}"));
                let mut player = players.remove(key);
                let _ = poll.registry().deregister(&mut player.socket);
            }
            flush(slot, &mut counters, gauges(&players, &shared, now_us));
        }
    }
    let gauges = gauges(&players, &shared, shared.micros_since_base(Instant::now()));
    flush(slot, &mut counters, gauges);
    Ok(())
}

fn flush(slot: &crate::shared::WorkerSlot, counters: &mut Counters, gauges: Gauges) {
    if let Ok(mut shared) = slot.counters.lock() {
        shared.merge(counters);
        *counters = Counters::default();
    }
    if let Ok(mut shared) = slot.gauges.lock() {
        *shared = gauges;
    }
}

fn gauges(players: &Slab<Player>, shared: &Shared, now_us: u64) -> Gauges {
    let live = shared.publisher_live.load(Ordering::Relaxed);
    let publisher_timestamp = shared.publisher_timestamp.load(Ordering::Relaxed);
    let publish_start = shared.publish_start_us.load(Ordering::Relaxed);
    let mut gauges = Gauges { min_player_messages: u64::MAX, ..Gauges::default() };
    for (_, player) in players.iter() {
        gauges.open += 1;
        let progress = &player.progress;
        if matches!(player.phase, Phase::Playing) || matches!(&player.phase, Phase::Flv(scanner) if scanner.answered()) {
            gauges.playing += 1;
        }
        gauges.min_player_messages = gauges.min_player_messages.min(progress.messages);
        gauges.max_player_messages = gauges.max_player_messages.max(progress.messages);
        let behind = if publish_start != NOT_STARTED && !live {
            // The in-process publisher has stopped: nobody can be behind a finished stream.
            false
        } else if live && publish_start != NOT_STARTED {
            // Against the in-process publisher: how far the last timestamp received trails
            // the last one sent. A player that has had nothing for 3 s of live stream is behind.
            match progress.last_timestamp {
                Some(last) => i64::from(publisher_timestamp.wrapping_sub(last) as i32) > BEHIND_MS,
                None => {
                    let since = progress.joined_us.unwrap_or(now_us).max(publish_start);
                    now_us.saturating_sub(since) > 3_000_000
                }
            }
        } else {
            // Without one: wall time since the first message against media time since then.
            match (progress.first_media, progress.last_timestamp) {
                (Some((first_us, first_ts)), Some(last)) => {
                    let wall_ms = (now_us.saturating_sub(first_us) / 1000) as i64;
                    let media_ms = i64::from(last.wrapping_sub(first_ts) as i32);
                    wall_ms - media_ms > BEHIND_MS
                }
                _ => false,
            }
        };
        gauges.behind += u64::from(behind);
    }
    if gauges.min_player_messages == u64::MAX {
        gauges.min_player_messages = 0;
    }
    gauges
}

fn open(poll: &Poll, players: &mut Slab<Player>, config: &LoopConfig) -> Result<(), String> {
    let tls = match (&config.url.tls_server_name, &config.tls) {
        (Some(name), Some(settings)) => Some(Box::new(tls::connect(settings, name)?)),
        _ => None,
    };
    let mut socket = TcpStream::connect(config.url.addr).map_err(|e| reason_for(&e))?;
    let entry = players.vacant_entry();
    poll.registry().register(&mut socket, Token(entry.key()), Interest::READABLE | Interest::WRITABLE).map_err(|e| reason_for(&e))?;
    entry.insert(Player {
        socket,
        tls,
        phase: Phase::Connecting,
        scanner: ChunkScanner::default(),
        progress: Progress::default(),
        out: Vec::new(),
        started: Instant::now(),
    });
    Ok(())
}

impl Player {
    #[allow(clippy::too_many_arguments)]
    fn on_ready(
        &mut self,
        config: &LoopConfig,
        buffer: &mut [u8],
        now: Instant,
        now_us: u64,
        publish_start: u64,
        counters: &mut Counters,
        shared: &Shared,
    ) -> Outcome {
        if let Phase::Connecting = self.phase {
            match self.socket.take_error() {
                Ok(Some(error)) | Err(error) => return Outcome::Failed(reason_for(&error)),
                Ok(None) => {}
            }
            match self.socket.peer_addr() {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::NotConnected => return Outcome::Continue,
                Err(error) => return Outcome::Failed(reason_for(&error)),
            }
            let _ = self.socket.set_nodelay(true);
            if let Some((request, websocket)) = &config.flv {
                self.out.extend_from_slice(request);
                self.phase = Phase::Flv(Box::new(FlvScanner::new(*websocket)));
            } else {
                let mut handshake = Box::new(Handshake::new(HandshakeRole::Client, 0));
                self.out.extend_from_slice(&handshake.start());
                self.phase = Phase::Handshaking(handshake);
            }
        }
        loop {
            let n = match tls::read(self.tls.as_deref_mut(), &mut self.socket, buffer) {
                Ok(0) => return Outcome::Failed(format!("server closed the connection during {}", self.phase.name())),
                Ok(n) => n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Outcome::Failed(format!("{} during {}", reason_for(&error), self.phase.name())),
            };
            let input = buffer.get(..n).unwrap_or_default();
            let outcome = self.on_input(config, input, now, now_us, publish_start, counters, shared);
            if !matches!(outcome, Outcome::Continue) {
                return outcome;
            }
        }
        self.write_pending()
    }

    fn write_pending(&mut self) -> Outcome {
        match tls::flush_pending(self.tls.as_deref_mut(), &mut self.socket) {
            Ok(true) => {}
            Ok(false) => return Outcome::Continue,
            Err(error) => return Outcome::Failed(format!("{} during {}", reason_for(&error), self.phase.name())),
        }
        while !self.out.is_empty() {
            match tls::write(self.tls.as_deref_mut(), &mut self.socket, &self.out) {
                // rustls's record buffer is full until the socket drains (a writable event).
                Ok(0) if self.tls.is_some() => break,
                Ok(0) => return Outcome::Failed("server closed the connection".to_string()),
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Outcome::Failed(format!("{} during {}", reason_for(&error), self.phase.name())),
            }
        }
        Outcome::Continue
    }

    #[allow(clippy::too_many_arguments)]
    fn on_input(
        &mut self,
        config: &LoopConfig,
        input: &[u8],
        now: Instant,
        now_us: u64,
        publish_start: u64,
        counters: &mut Counters,
        shared: &Shared,
    ) -> Outcome {
        if let Phase::Flv(scanner) = &mut self.phase {
            counters.bytes += input.len() as u64;
            let was_answered = scanner.answered();
            let progress = &mut self.progress;
            let mut keyframe_now = false;
            let scanned = scanner.feed(input, &mut |message| {
                if progress.flv_offset.is_none() {
                    progress.flv_offset = Some(shared.last_keyframe_timestamp.load(Ordering::Relaxed));
                }
                let timestamp = message.timestamp.wrapping_add(progress.flv_offset.unwrap_or(0));
                keyframe_now |= account_media(progress, counters, shared, message.type_id, timestamp, message.head, now_us, publish_start);
            });
            if !was_answered && scanner.answered() {
                counters.connected += 1;
                counters.playing += 1;
                self.progress.joined_us = Some(now_us);
            }
            if let Err(error) = scanned {
                return Outcome::Failed(format!("HTTP-FLV: {error}"));
            }
            if keyframe_now && config.mode == PlayerMode::Churn {
                counters.first_keyframe.record(now.saturating_duration_since(self.started).as_micros() as u64);
                return Outcome::Done;
            }
            return Outcome::Continue;
        }
        let mut chunk_bytes = input;
        let remaining;
        if let Phase::Handshaking(handshake) = &mut self.phase {
            match handshake.process(input) {
                Ok(HandshakeProgress::InProgress { response }) => {
                    self.out.extend_from_slice(&response);
                    return Outcome::Continue;
                }
                Ok(HandshakeProgress::Completed { response, remaining: rest }) => {
                    counters.handshake.record(now.saturating_duration_since(self.started).as_micros() as u64);
                    self.out.extend_from_slice(&response);
                    let mut session = Box::new(ClientSession::new(ClientSessionConfig::default()));
                    let started = session
                        .connect(&config.url.app, &config.url.tc_url)
                        .and_then(|()| session.request_playback(&config.url.stream));
                    if let Err(error) = started {
                        return Outcome::Failed(format!("session error: {error}"));
                    }
                    self.out.extend_from_slice(&session.take_outbound());
                    self.phase = Phase::Session(session);
                    remaining = rest;
                    chunk_bytes = &remaining;
                }
                Err(error) => return Outcome::Failed(format!("handshake error: {error}")),
            }
        }
        if chunk_bytes.is_empty() {
            return Outcome::Continue;
        }
        counters.bytes += chunk_bytes.len() as u64;
        self.progress.received += chunk_bytes.len() as u64;

        // The session drives the command flow until the play starts.
        let mut play_started = false;
        if let Phase::Session(session) = &mut self.phase {
            if let Err(error) = session.handle_input(chunk_bytes) {
                return Outcome::Failed(format!("protocol error: {error}"));
            }
            while let Some(event) = session.poll_event() {
                match event {
                    ClientSessionEvent::ConnectionAccepted { .. } => {
                        counters.connected += 1;
                        self.progress.joined_us = Some(now_us);
                    }
                    ClientSessionEvent::PlaybackStarted { .. } => {
                        counters.playing += 1;
                        counters.play_start.record(now.saturating_duration_since(self.started).as_micros() as u64);
                        play_started = true;
                    }
                    ClientSessionEvent::RequestRejected { kind, status } => {
                        return Outcome::Failed(format!("{kind:?} rejected: {}", status.code).to_lowercase());
                    }
                    _ => {}
                }
            }
            self.out.extend_from_slice(&session.take_outbound());
        }

        let scanning_only = matches!(self.phase, Phase::Playing);
        let progress = &mut self.progress;
        let mut keyframe_now = false;
        let scanned = self.scanner.feed(chunk_bytes, &mut |message: ScannedMessage<'_>| match message.type_id {
            8 | 9 => {
                keyframe_now |=
                    account_media(progress, counters, shared, message.type_id, message.timestamp, message.head, now_us, publish_start);
                let keyframe = message.type_id == 9 && classify_video(message.head).is_ok_and(|h| h.is_keyframe());
                if let Some((generation, counter)) = crate::sequence::read_stamp(message.tail) {
                    counters.sequence.count(progress.sequence.check(generation, counter, keyframe));
                }
            }
            // User control PingRequest (event 6): answered with a PingResponse.
            4 if scanning_only && message.head.get(..2) == Some(&[0, 6]) => {
                progress.pings.push(message.head.get(2..).map_or(0, read_u32));
            }
            5 => progress.window = read_u32(message.head),
            _ => {}
        });
        if let Err(error) = scanned {
            return Outcome::Failed(format!("protocol error: {error}"));
        }
        if play_started {
            // The scanner has seen every byte: the session is no longer needed. Count the
            // bytes it has acknowledged as acknowledged, so acks continue from there.
            self.progress.acknowledged = self.progress.received;
            self.phase = Phase::Playing;
        }
        if scanning_only {
            self.answer_control();
        }
        if keyframe_now && matches!(config.mode, PlayerMode::Churn | PlayerMode::Once) {
            counters.first_keyframe.record(now.saturating_duration_since(self.started).as_micros() as u64);
            return Outcome::Done;
        }
        Outcome::Continue
    }

    /// Pings and acknowledgements, once the session is gone.
    fn answer_control(&mut self) {
        let mut control = BytesMut::new();
        let pings = std::mem::take(&mut self.progress.pings);
        let mut messages: Vec<RtmpMessage> = pings.into_iter().map(RtmpMessage::ping_response).collect();
        let progress = &mut self.progress;
        if progress.window > 0 && progress.received.saturating_sub(progress.acknowledged) >= u64::from(progress.window) {
            progress.acknowledged = progress.received;
            messages.push(RtmpMessage::acknowledgement((progress.received & 0xFFFF_FFFF) as u32));
        }
        for message in messages {
            if let Ok(payload) = message.into_payload(RtmpTimestamp::ZERO, 0) {
                // 4096 is the chunk size the session announced; these messages are shorter anyway.
                let _ = ChunkEncoder::encode_standalone(csid::PROTOCOL_CONTROL, &payload, 4096, &mut control);
            }
        }
        self.out.extend_from_slice(&control);
    }
}

/// Counts an audio or video message (`timestamp` on the publisher's clock) and its latency;
/// true when it is the player's first video keyframe.
#[allow(clippy::too_many_arguments)]
fn account_media(
    progress: &mut Progress,
    counters: &mut Counters,
    shared: &Shared,
    type_id: u8,
    timestamp: u32,
    head: &[u8],
    now_us: u64,
    publish_start: u64,
) -> bool {
    if type_id != 8 && type_id != 9 {
        return false;
    }
    progress.messages += 1;
    counters.media_messages += 1;
    if progress.first_media.is_none() {
        progress.first_media = Some((now_us, timestamp));
    }
    progress.last_timestamp = Some(timestamp);
    if publish_start != NOT_STARTED {
        let scheduled = publish_start.saturating_add(u64::from(timestamp) * 1000);
        // Only messages sent after this player joined: older ones came from a GOP cache and
        // say nothing about the delay the server adds.
        if progress.joined_us.is_some_and(|joined| scheduled >= joined) {
            if now_us + 5_000 < scheduled {
                counters.early_messages += 1;
            } else {
                counters.latency.record(now_us.saturating_sub(scheduled));
            }
            if let Some(sent) = shared.sent_at(timestamp) {
                counters.latency_from_send.record(now_us.saturating_sub(sent));
            }
        }
    }
    if type_id == 9 && !progress.keyframe && classify_video(head).is_ok_and(|h| h.is_keyframe()) {
        progress.keyframe = true;
        return true;
    }
    false
}
