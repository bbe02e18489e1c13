//! The single-threaded mio loop: accept, read, act on session events, flush, time out.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::IpAddr;
use std::sync::Arc as SharedKey;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{Conn, Phase, Role};
use super::out_queue::FlushOutcome;
use super::stats::Stats;
use super::stream::{LiveStream, PlayerState, SharedFrame, SHARED_STREAM_ID};
use super::Config;
use crate::chunk_io::ChunkDecoderLimits;
use crate::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use crate::sessions::{MediaKind, ServerSession, ServerSessionConfig, ServerSessionEvent, StreamMetadata};
use crate::time::RtmpTimestamp;

pub const LISTENER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);
pub const SIGNALS: Token = Token(usize::MAX - 3);

const TICK: Duration = Duration::from_millis(500);
const READ_BUFFER_SIZE: usize = 64 * 1024;
/// Reads one connection gets before the loop moves on (1 MiB), so a fast peer cannot hold
/// up the others' flushes and timers.
const READS_PER_TURN: usize = 16;
/// How long a graceful shutdown waits for queues to drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The relay's whole state, owned by the loop thread.
pub struct Relay {
    pub(super) config: Config,
    pub(super) poll: Poll,
    pub(super) listener: Option<TcpListener>,
    pub(super) conns: Slab<Conn>,
    pub(super) streams: HashMap<String, LiveStream>,
    pub(super) per_ip: HashMap<IpAddr, usize>,
    pub(super) flush_list: Vec<Token>,
    /// Connections that still had bytes to read when their turn ended.
    pub(super) read_again: Vec<Token>,
    /// Players whose live frames wait for the next batch write (`Config::write_batch`).
    pub(super) batched: Vec<Token>,
    pub(super) batch_deadline: Option<Instant>,
    pub(super) close_list: Vec<Token>,
    pub(super) session_events: Vec<ServerSessionEvent>,
    pub(super) client_events: Vec<crate::sessions::ClientSessionEvent>,
    pub(super) read_buffer: Vec<u8>,
    pub(super) stats: Arc<Stats>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) shutdown_deadline: Option<Instant>,
    pub(super) next_tick: Instant,
    pub(super) started: Instant,
    /// This relay's id in `rtmpEdgeVia`, to refuse pulling a stream from itself.
    pub(super) node_id: String,
}

impl Relay {
    pub fn new(config: Config, poll: Poll, listener: TcpListener, stats: Arc<Stats>, stop: Arc<AtomicBool>) -> Relay {
        let now = Instant::now();
        Relay {
            config,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            streams: HashMap::new(),
            per_ip: HashMap::new(),
            flush_list: Vec::new(),
            read_again: Vec::new(),
            batched: Vec::new(),
            batch_deadline: None,
            close_list: Vec::new(),
            session_events: Vec::new(),
            client_events: Vec::new(),
            read_buffer: vec![0; READ_BUFFER_SIZE],
            stats,
            stop,
            shutdown_deadline: None,
            next_tick: now + TICK,
            started: now,
            node_id: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// Runs until a shutdown completes. `on_signal` is polled when the SIGNALS token fires
    /// and returns how many signals arrived.
    pub fn run(&mut self, mut on_signal: impl FnMut() -> usize) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let wake_at = self.batch_deadline.map_or(self.next_tick, |batch| batch.min(self.next_tick));
            let timeout = if self.read_again.is_empty() { wake_at.saturating_duration_since(now) } else { Duration::ZERO };
            if let Err(error) = self.poll.poll(&mut events, Some(timeout)) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    SIGNALS => {
                        let count = on_signal();
                        if count > 0 && self.shutdown_deadline.is_some() {
                            log::warn!("second signal: exiting now");
                            return Ok(());
                        }
                        if count > 1 {
                            log::warn!("two signals at once: exiting now");
                            return Ok(());
                        }
                        if count > 0 {
                            self.stop.store(true, Ordering::SeqCst);
                        }
                    }
                    token => self.conn_event(token, event),
                }
            }
            let again = std::mem::take(&mut self.read_again);
            for token in again {
                self.read_from(token);
            }
            if self.stop.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            if self.batch_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                self.batch_deadline = None;
                self.flush_list.append(&mut self.batched);
            }
            self.flush_scheduled();
            self.close_marked();
            if Instant::now() >= self.next_tick {
                self.tick();
                self.close_marked();
            }
            self.publish_gauges();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || Instant::now() >= deadline {
                    let open = self.conns.len();
                    let tokens: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
                    for key in tokens {
                        self.close(Token(key), "relay shutting down");
                    }
                    log::info!("shutdown complete ({open} connections closed at the deadline)");
                    return Ok(());
                }
            }
        }
    }

    fn publish_gauges(&self) {
        let (mut players, mut publishers, mut pulls, mut pulls_live) = (0, 0, 0, 0);
        for stream in self.streams.values() {
            players += stream.players.len() as u64;
            publishers += u64::from(stream.publisher.is_some());
            pulls += u64::from(stream.pull.is_some());
            pulls_live += u64::from(stream.pull.is_some() && stream.pull_live);
        }
        self.stats.players.store(players, Ordering::Relaxed);
        self.stats.publishers.store(publishers, Ordering::Relaxed);
        self.stats.pulls.store(pulls, Ordering::Relaxed);
        self.stats.pulls_live.store(pulls_live, Ordering::Relaxed);
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // EMFILE and friends: keep serving the existing connections.
                    log::error!("accept failed: {error}");
                    return;
                }
            };
            let from_ip = self.per_ip.get(&peer.ip()).copied().unwrap_or(0);
            if self.conns.len() >= self.config.max_connections {
                self.stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                log::warn!("{peer}: refused: {} connections open (--max-connections)", self.conns.len());
                drop(socket);
                continue;
            }
            if from_ip >= self.config.max_connections_per_ip {
                self.stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                log::warn!("{peer}: refused: {from_ip} connections open from {} (--max-connections-per-ip)", peer.ip());
                drop(socket);
                continue;
            }
            if let Err(error) = self.register(socket, peer) {
                log::warn!("{peer}: could not register connection: {error}");
            }
        }
    }

    fn register(&mut self, mut socket: TcpStream, peer: std::net::SocketAddr) -> io::Result<()> {
        socket.set_nodelay(true)?;
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        self.poll.registry().register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
        let epoch = self.started.elapsed().as_millis() as u32;
        let mut conn = Conn::new(socket, peer, Handshake::new(HandshakeRole::Server, epoch), Instant::now());
        if let Some(dir) = &self.config.dump_dir {
            let path = dir.join(format!("{}-{}.rtmp", token.0, peer).replace(':', "_"));
            match File::create(&path) {
                Ok(file) => conn.dump = Some(BufWriter::new(file)),
                Err(error) => log::warn!("{peer}: cannot create dump file {}: {error}", path.display()),
            }
        }
        entry.insert(conn);
        *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
        self.stats.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.stats.connections_open.fetch_add(1, Ordering::Relaxed);
        log::info!("{peer}: connection opened");
        Ok(())
    }

    fn conn_event(&mut self, token: Token, event: &Event) {
        if event.is_writable() || event.is_error() {
            self.check_upstream_connected(token);
        }
        if event.is_writable() {
            if let Some(conn) = self.conns.get_mut(token.0) {
                conn.writable = true;
                if !conn.out.is_empty() {
                    schedule_flush(&mut self.flush_list, token, conn);
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read_from(token);
        }
    }

    /// Reads until WouldBlock (the socket is edge-triggered), handing each read to the
    /// connection's protocol phase.
    fn read_from(&mut self, token: Token) {
        let mut buffer = std::mem::take(&mut self.read_buffer);
        let mut reads_left = READS_PER_TURN;
        while let Some(conn) = self.conns.get_mut(token.0) {
            if conn.close_reason.is_some() {
                break;
            }
            if reads_left == 0 {
                // Edge-triggered: no new event will come for bytes already waiting, so the
                // connection is read again after everyone else had a turn.
                self.read_again.push(token);
                break;
            }
            reads_left -= 1;
            match conn.socket.read(&mut buffer) {
                Ok(0) => {
                    conn.fail("peer closed the connection");
                    break;
                }
                Ok(read) => {
                    conn.bytes_in += read as u64;
                    conn.last_activity = Instant::now();
                    conn.ping_outstanding = false;
                    if let Some(dump) = &mut conn.dump {
                        if let Err(error) = dump.write_all(&buffer[..read]) {
                            log::warn!("{}: dump write failed, dump stopped: {error}", conn.peer);
                            conn.dump = None;
                        }
                    }
                    self.process_input(token, &buffer[..read]);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    conn.fail(format!("read error: {error}"));
                    break;
                }
            }
        }
        self.read_buffer = buffer;
        if let Some(conn) = self.conns.get(token.0) {
            if conn.close_reason.is_some() {
                self.close_list.push(token);
            }
        }
    }

    fn process_input(&mut self, token: Token, input: &[u8]) {
        let session_config = self.session_config();
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let Phase::Handshake(handshake) = &mut conn.phase else {
            self.route_session_input(token, input);
            return;
        };
        match handshake.process(input) {
            Ok(HandshakeProgress::InProgress { response }) => {
                conn.out.push(response);
                schedule_flush(&mut self.flush_list, token, conn);
            }
            Ok(HandshakeProgress::Completed { response, remaining }) => {
                conn.out.push(response);
                schedule_flush(&mut self.flush_list, token, conn);
                match &conn.upstream {
                    None => conn.phase = Phase::Server(Box::new(ServerSession::new(session_config))),
                    Some(upstream) => match super::edge::start_client_session(upstream, self.config.chunk_size) {
                        Ok(client) => conn.phase = Phase::Client(Box::new(client)),
                        Err(error) => {
                            conn.fail(format!("could not start the upstream session: {error}"));
                            return;
                        }
                    },
                }
                self.route_session_input(token, &remaining);
            }
            Err(error) => {
                self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                conn.fail(format!("handshake failed: {error}"));
            }
        }
    }

    fn route_session_input(&mut self, token: Token, input: &[u8]) {
        let is_client = self.conns.get(token.0).is_some_and(|conn| matches!(conn.phase, Phase::Client(_)));
        if is_client {
            self.client_input(token, input);
        } else {
            self.session_input(token, input);
        }
    }

    fn session_config(&self) -> ServerSessionConfig {
        ServerSessionConfig {
            chunk_size: self.config.chunk_size,
            limits: ChunkDecoderLimits {
                max_message_length: self.config.max_message_size,
                // One message at the size limit plus room for audio interleaved with it.
                max_partial_bytes: (self.config.max_message_size as usize).saturating_add(1024 * 1024),
                ..ChunkDecoderLimits::default()
            },
            ..ServerSessionConfig::default()
        }
    }

    fn session_input(&mut self, token: Token, input: &[u8]) {
        let mut events = std::mem::take(&mut self.session_events);
        if let Some(conn) = self.conns.get_mut(token.0) {
            if let Some(session) = conn.session() {
                let result = session.handle_input(input);
                while let Some(event) = session.poll_event() {
                    events.push(event);
                }
                if let Err(error) = result {
                    self.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    conn.fail(format!("protocol error: {error}"));
                }
            }
        }
        for event in events.drain(..) {
            self.session_event(token, event);
        }
        self.session_events = events;
        self.sync_session_output(token);
    }

    /// Moves whatever the session wrote into the connection's queue.
    pub(super) fn sync_session_output(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let bytes = match &mut conn.phase {
            Phase::Server(session) if session.has_outbound() => session.take_outbound(),
            Phase::Client(session) if session.has_outbound() => session.take_outbound(),
            _ => return,
        };
        conn.out.push(bytes);
        schedule_flush(&mut self.flush_list, token, conn);
        // A client that sends commands and never reads the answers must not grow this.
        if conn.out.len_bytes() > self.config.queue_hard_limit_bytes && conn.close_reason.is_none() {
            conn.fail(format!(
                "not reading: {} bytes queued (limit {})",
                conn.out.len_bytes(),
                self.config.queue_hard_limit_bytes
            ));
            self.close_list.push(token);
        }
    }

    fn session_event(&mut self, token: Token, event: ServerSessionEvent) {
        match event {
            ServerSessionEvent::MediaReceived { stream_id, kind, timestamp, data } => {
                self.on_media(token, stream_id, kind, timestamp, data)
            }
            ServerSessionEvent::MetadataReceived { stream_id, metadata, .. } => self.on_metadata(token, stream_id, metadata),
            ServerSessionEvent::ConnectionRequested { request_id, request } => {
                let Some(conn) = self.conns.get_mut(token.0) else { return };
                log::info!(
                    "{}: connect app={} tcUrl={} flashVer={}",
                    conn.peer,
                    request.app,
                    request.tc_url.as_deref().unwrap_or("-"),
                    request.flash_ver.as_deref().unwrap_or("-")
                );
                let via = match request.properties.get(super::edge::VIA_PROPERTY) {
                    Some(crate::Amf0Value::Utf8String(via)) => via.clone(),
                    _ => String::new(),
                };
                let looped = via.split(',').any(|id| id == self.node_id);
                conn.via = via;
                let peer = conn.peer;
                if let Some(session) = conn.session() {
                    let result = if looped {
                        log::warn!("{peer}: connect refused: this request already passed through this relay (loop)");
                        session.reject_request(request_id, "Relay loop detected: the stream would be pulled from itself.")
                    } else {
                        session.accept_request(request_id)
                    };
                    if let Err(error) = result {
                        conn.fail(format!("connect answer failed: {error}"));
                    }
                }
            }
            ServerSessionEvent::PublishRequested { request_id, app, stream_name, stream_id, .. } => {
                self.on_publish_requested(token, request_id, &app, &stream_name, stream_id)
            }
            ServerSessionEvent::PlayRequested { request_id, app, stream_name, stream_id, .. } => {
                self.on_play_requested(token, request_id, &app, &stream_name, stream_id)
            }
            ServerSessionEvent::PublishFinished { .. } => self.end_publish(token),
            ServerSessionEvent::PlayFinished { app, stream_name, stream_id } => {
                self.end_play(token, &stream_key(&app, &stream_name), stream_id)
            }
            ServerSessionEvent::InvalidMessageIgnored { type_id, reason } => {
                if let Some(conn) = self.conns.get(token.0) {
                    log::debug!("{}: ignored message type {type_id}: {reason}", conn.peer);
                }
            }
            ServerSessionEvent::UnhandledCommand { name, .. } => {
                if let Some(conn) = self.conns.get(token.0) {
                    log::debug!("{}: unhandled command {name}", conn.peer);
                }
            }
            ServerSessionEvent::PauseChanged { .. }
            | ServerSessionEvent::ReceiveChanged { .. }
            | ServerSessionEvent::AcknowledgementReceived { .. }
            | ServerSessionEvent::PingResponseReceived { .. } => {}
        }
    }

    fn on_publish_requested(&mut self, token: Token, request_id: u32, app: &str, stream_name: &str, stream_id: u32) {
        let key = stream_key(app, stream_name);
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let peer = conn.peer;
        let busy = self.streams.get(&key).is_some_and(|stream| stream.publisher.is_some());
        // One role per connection: a player that also published would leave its
        // subscriptions behind when the role changed.
        let already_publishing = !matches!(conn.role, Role::Undecided);
        let Some(session) = conn.session() else { return };
        if busy || already_publishing {
            log::warn!("{peer}: publish {key} refused: already being published");
            if let Err(error) = session.reject_request(request_id, "Stream is already being published.") {
                conn.fail(format!("reject failed: {error}"));
            }
            return;
        }
        if let Err(error) = session.accept_request(request_id) {
            conn.fail(format!("publish accept failed: {error}"));
            return;
        }
        conn.role = Role::Publisher { key: SharedKey::from(key.as_str()), stream_id };
        conn.requested_names.push((key.clone(), stream_name.to_string()));
        conn.summary = format!("publisher of {key}");
        log::info!("{peer}: publishing {key}");
        let stream = self.streams.entry(key.clone()).or_insert_with(LiveStream::new);
        stream.start_publishing((token, stream_id));
        if let Some(pull) = stream.pull.take() {
            // A local publisher takes over from a pull of the same stream.
            stream.pull_live = false;
            if let Some(pull_token) = pull.token {
                if let Some(pull_conn) = self.conns.get_mut(pull_token.0) {
                    pull_conn.upstream = None;
                    pull_conn.fail("a local publisher took over the stream");
                    self.close_list.push(pull_token);
                }
            }
        }
        let Some(stream) = self.streams.get_mut(&key) else { return };
        let players: Vec<(Token, u32)> = stream.players.iter().map(|p| (p.token, p.stream_id)).collect();
        for (player, player_stream_id) in players {
            if let Some(session) = self.conns.get_mut(player.0).and_then(Conn::session) {
                let _ = session.notify_publish_started(player_stream_id, stream_name);
            }
            self.sync_session_output(player);
        }
        self.start_pushes(&key);
    }

    fn on_play_requested(&mut self, token: Token, request_id: u32, app: &str, stream_name: &str, stream_id: u32) {
        let key = stream_key(app, stream_name);
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        if matches!(conn.role, Role::Publisher { .. }) {
            if let Some(session) = conn.session() {
                let _ = session.reject_request(request_id, "A publishing connection cannot play.");
            }
            return;
        }
        let Some(session) = conn.session() else { return };
        if let Err(error) = session.accept_request(request_id) {
            conn.fail(format!("play accept failed: {error}"));
            return;
        }
        match &mut conn.role {
            Role::Player { subscriptions } => subscriptions.push((key.clone(), stream_id)),
            role => *role = Role::Player { subscriptions: vec![(key.clone(), stream_id)] },
        }
        conn.summary = conn.role.describe();
        if !conn.requested_names.iter().any(|(k, _)| *k == key) {
            conn.requested_names.push((key.clone(), stream_name.to_string()));
        }
        log::info!("{}: playing {key}", conn.peer);
        if conn.session().is_some_and(|session| session.peer_capabilities().is_none()) {
            log::info!("{}: announced no E-RTMP codecs: {key} passes through as published", conn.peer);
        }
        self.sync_session_output(token);

        let stream = self.streams.entry(key.clone()).or_insert_with(LiveStream::new);
        let mut state = PlayerState::WaitingForStart;
        if stream.is_live() {
            let Some(conn) = self.conns.get_mut(token.0) else { return };
            let starts_now = stream.has_gop() || !stream.has_video;
            for frame in stream.join_frames() {
                queue_frame(conn, stream_id, frame, false);
            }
            if starts_now {
                state = PlayerState::Live;
            }
            schedule_flush(&mut self.flush_list, token, conn);
        }
        let needs_keyframe = !(stream.is_live() && stream.has_gop());
        stream.players.push(super::stream::Player { token, stream_id, state, needs_keyframe });
        stream.linger_until = None;
        if !stream.is_live() && stream.publisher.is_none() && !self.config.origins.is_empty() {
            let via = self.conns.get(token.0).map(|conn| conn.via.clone()).unwrap_or_default();
            self.ensure_pull(&key, via);
        }
    }

    fn on_metadata(&mut self, token: Token, _stream_id: u32, metadata: StreamMetadata) {
        let Some(key) = self.publishing_key(token) else { return };
        self.fan_out_metadata(&key, metadata);
    }

    pub(super) fn fan_out_metadata(&mut self, key: &str, metadata: StreamMetadata) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frame = match stream.ingest_metadata(metadata.raw, self.config.chunk_size) {
            Ok(frame) => frame,
            Err(error) => {
                log::warn!("{key}: metadata not relayed: {error}");
                return;
            }
        };
        let players: Vec<(Token, u32)> = stream.players.iter().map(|p| (p.token, p.stream_id)).collect();
        for (player, stream_id) in players {
            if let Some(conn) = self.conns.get_mut(player.0) {
                queue_frame(conn, stream_id, &frame, true);
                schedule_flush(&mut self.flush_list, player, conn);
            }
        }
        self.forward_frame(key, &frame);
    }

    fn on_media(&mut self, token: Token, _stream_id: u32, kind: MediaKind, timestamp: RtmpTimestamp, data: bytes::Bytes) {
        let Some(key) = self.publishing_key(token) else { return };
        self.fan_out(&key, kind, timestamp, data);
    }

    /// Encodes a frame once and queues it for every player of `key` (and every upstream
    /// forward), applying the slow-player policy.
    pub(super) fn fan_out(&mut self, key: &str, kind: MediaKind, timestamp: RtmpTimestamp, data: bytes::Bytes) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frame = match stream.ingest(
            kind,
            timestamp,
            data,
            self.config.chunk_size,
            self.config.gop_cache,
            self.config.gop_cache_max_bytes,
        ) {
            Ok(frame) => frame,
            Err(error) => {
                log::warn!("{key}: frame not relayed: {error}");
                return;
            }
        };
        let has_video = stream.has_video;
        for player in &mut stream.players {
            let Some(conn) = self.conns.get_mut(player.token.0) else { continue };
            if conn.close_reason.is_some() {
                continue;
            }
            // The hard limit comes first, whatever the player's state: a player that skips
            // frames but still never reads must not sit on its queue forever.
            let span = conn.out.media_span_ms();
            if span > self.config.queue_hard_limit_ms || conn.out.len_bytes() > self.config.queue_hard_limit_bytes {
                self.stats.slow_players_disconnected.fetch_add(1, Ordering::Relaxed);
                conn.fail(format!(
                    "too slow: {span} ms / {} bytes queued (hard limit {} ms / {} bytes)",
                    conn.out.len_bytes(),
                    self.config.queue_hard_limit_ms,
                    self.config.queue_hard_limit_bytes
                ));
                self.close_list.push(player.token);
                continue;
            }
            let starts_here = frame.is_keyframe || (!has_video && kind != MediaKind::Video) || !frame.droppable;
            match player.state {
                PlayerState::WaitingForStart => {
                    if frame.is_keyframe || (!has_video && kind == MediaKind::Audio) {
                        player.state = PlayerState::Live;
                    } else if frame.droppable {
                        continue;
                    }
                }
                PlayerState::Skipping => {
                    let caught_up = span <= self.config.queue_soft_limit_ms / 2;
                    if frame.droppable && !(starts_here && caught_up) {
                        self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if frame.droppable {
                        player.state = PlayerState::Live;
                    }
                }
                PlayerState::Live => {}
            }
            if kind == MediaKind::Video && frame.droppable && player.needs_keyframe {
                if !frame.is_keyframe {
                    continue;
                }
                player.needs_keyframe = false;
            }
            if frame.droppable && player.state == PlayerState::Live && span > self.config.queue_soft_limit_ms {
                log::info!("{}: {span} ms queued on {key}: dropping frames until the next keyframe", conn.peer);
                player.state = PlayerState::Skipping;
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            queue_frame(conn, player.stream_id, &frame, true);
            if self.config.write_batch.is_zero() {
                schedule_flush(&mut self.flush_list, player.token, conn);
            } else {
                schedule_flush(&mut self.batched, player.token, conn);
                if self.batch_deadline.is_none() {
                    self.batch_deadline = Some(Instant::now() + self.config.write_batch);
                }
            }
        }
        self.forward_frame(key, &frame);
    }

    fn publishing_key(&self, token: Token) -> Option<SharedKey<str>> {
        match &self.conns.get(token.0)?.role {
            Role::Publisher { key, .. } => Some(key.clone()),
            _ => None,
        }
    }

    fn end_publish(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let Role::Publisher { key, .. } = std::mem::replace(&mut conn.role, Role::Undecided) else { return };
        let key: &str = &key;
        conn.requested_names.retain(|(k, _)| k != key);
        log::info!("{}: stopped publishing {key}", conn.peer);
        self.stop_pushes(key);
        let Some(stream) = self.streams.get_mut(key) else { return };
        stream.stop_publishing();
        let name = key.split_once('/').map_or(key, |(_, name)| name).to_string();
        let players: Vec<(Token, u32)> = stream.players.iter().map(|p| (p.token, p.stream_id)).collect();
        if stream.is_unused() {
            self.streams.remove(key);
        }
        for (player, stream_id) in &players {
            if let Some(session) = self.conns.get_mut(player.0).and_then(Conn::session) {
                let _ = session.notify_publish_stopped(*stream_id, &name);
            }
            self.sync_session_output(*player);
        }
        // On an edge, players left waiting go back to the origin for the stream.
        if let (false, Some((player, _))) = (self.config.origins.is_empty(), players.first()) {
            let via = self.conns.get(player.0).map(|conn| conn.via.clone()).unwrap_or_default();
            self.ensure_pull(key, via);
        }
    }

    fn end_play(&mut self, token: Token, key: &str, stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(key) {
            stream.players.retain(|p| !(p.token == token && p.stream_id == stream_id));
            if stream.players.is_empty() && stream.pull.is_some() && stream.linger_until.is_none() {
                stream.linger_until = Some(Instant::now() + self.config.pull_linger);
            }
            if stream.is_unused() {
                self.streams.remove(key);
            }
        }
        if let Some(conn) = self.conns.get_mut(token.0) {
            if let Role::Player { subscriptions } = &mut conn.role {
                subscriptions.retain(|(k, id)| !(k == key && *id == stream_id));
                // A client that plays name after name must not grow this list.
                if !subscriptions.iter().any(|(k, _)| k == key) {
                    conn.requested_names.retain(|(k, _)| k != key);
                }
            }
        }
    }

    fn flush_scheduled(&mut self) {
        let list = std::mem::take(&mut self.flush_list);
        for token in &list {
            let Some(conn) = self.conns.get_mut(token.0) else { continue };
            conn.flush_scheduled = false;
            if !conn.writable || conn.close_reason.is_some() {
                continue;
            }
            match conn.out.flush(&mut conn.socket) {
                Ok((outcome, written)) => {
                    conn.bytes_out += written as u64;
                    if written > 0 {
                        conn.last_activity = Instant::now();
                    }
                    if outcome == FlushOutcome::WouldBlock {
                        conn.writable = false;
                    } else if let Some(reason) = conn.close_after_flush {
                        conn.fail(reason);
                        self.close_list.push(*token);
                    }
                }
                Err(error) => {
                    conn.fail(format!("write error: {error}"));
                    self.close_list.push(*token);
                }
            }
        }
        let mut list = list;
        list.clear();
        if self.flush_list.is_empty() {
            self.flush_list = list;
        }
    }

    fn close_marked(&mut self) {
        while let Some(token) = self.close_list.pop() {
            let reason = match self.conns.get(token.0) {
                Some(conn) => conn.close_reason.clone().unwrap_or_else(|| "closed".to_string()),
                None => continue,
            };
            self.close(token, &reason);
        }
    }

    /// The one close path: leave streams, deregister, log.
    fn close(&mut self, token: Token, reason: &str) {
        let (role, upstream) = match self.conns.get(token.0) {
            Some(conn) => (conn.role.clone(), conn.upstream.clone()),
            None => return,
        };
        if let Some(upstream) = &upstream {
            self.upstream_closed(token, upstream, reason);
        }
        match &role {
            Role::Publisher { .. } => self.end_publish(token),
            Role::Player { subscriptions } => {
                for (key, stream_id) in subscriptions {
                    self.end_play(token, key, *stream_id);
                }
            }
            Role::Undecided => {}
        }
        let Some(mut conn) = self.conns.try_remove(token.0) else { return };
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Some(count) = self.per_ip.get_mut(&conn.peer.ip()) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&conn.peer.ip());
            }
        }
        if let Some(mut dump) = conn.dump.take() {
            let _ = dump.flush();
        }
        self.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        let duration = conn.opened_at.elapsed();
        log::info!(
            "{}: closed: {} after {:.1}s, {} bytes in, {} bytes out: {reason}",
            conn.peer,
            conn.summary,
            duration.as_secs_f64(),
            conn.bytes_in,
            conn.bytes_out
        );
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.next_tick = now + TICK;
        self.upstream_tick(now);
        let handshake_timeout = self.config.handshake_timeout;
        let idle_timeout = self.config.idle_timeout;
        let mut ping = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            if conn.close_reason.is_some() {
                continue;
            }
            if conn.upstream.is_some() {
                continue;
            }
            if !conn.is_connected() && now.duration_since(conn.opened_at) > handshake_timeout {
                self.stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                conn.fail(format!("did not finish handshake and connect within {} s", handshake_timeout.as_secs_f64()));
                self.close_list.push(Token(key));
                continue;
            }
            let idle = now.duration_since(conn.last_activity);
            if idle > idle_timeout {
                conn.fail(format!("idle for {} s", idle.as_secs()));
                self.close_list.push(Token(key));
            } else if idle > idle_timeout / 2 && !conn.ping_outstanding && conn.is_connected() {
                // Players waiting for a stream send nothing; a ping keeps the honest ones alive.
                conn.ping_outstanding = true;
                ping.push(Token(key));
            }
        }
        let timestamp = self.started.elapsed().as_millis() as u32;
        for token in ping {
            if let Some(session) = self.conns.get_mut(token.0).and_then(Conn::session) {
                let _ = session.send_ping_request(timestamp);
            }
            self.sync_session_output(token);
        }
    }

    fn begin_shutdown(&mut self) {
        log::info!("shutting down: no new connections, telling players the streams ended");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
        let tokens: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in tokens {
            let token = Token(key);
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if let Role::Player { subscriptions } = conn.role.clone() {
                if let Some(session) = conn.session() {
                    for (stream_key, stream_id) in subscriptions {
                        let name = stream_key.split_once('/').map_or(stream_key.as_str(), |(_, n)| n).to_string();
                        let _ = session.send_stream_end(stream_id, &name);
                    }
                }
            }
            self.sync_session_output(token);
            if let Some(conn) = self.conns.get_mut(key) {
                conn.close_after_flush = Some("relay shutting down");
                if conn.out.is_empty() {
                    conn.fail("relay shutting down");
                    self.close_list.push(token);
                } else {
                    schedule_flush(&mut self.flush_list, token, conn);
                }
            }
        }
    }
}

/// The stream key: app and stream name, without the query string (kept for auth, not identity).
pub fn stream_key(app: &str, stream_name: &str) -> String {
    let name = stream_name.split_once('?').map_or(stream_name, |(name, _)| name);
    format!("{app}/{name}")
}

fn schedule_flush(flush_list: &mut Vec<Token>, token: Token, conn: &mut Conn) {
    if !conn.flush_scheduled {
        conn.flush_scheduled = true;
        flush_list.push(token);
    }
}

/// Queues a shared frame for a player: by reference when the player uses the shared
/// encoding (stream id 1, the relay's chunk size), otherwise through its own session.
///
/// Only live frames count toward the player's queued media time: headers carry the
/// timestamp of when the publisher started, and a late joiner's GOP burst is bounded by
/// the GOP cache size, so neither may make a player look slow.
fn queue_frame(conn: &mut Conn, stream_id: u32, frame: &SharedFrame, live: bool) {
    let counts_as_media = live && frame.droppable;
    if stream_id == SHARED_STREAM_ID {
        if counts_as_media {
            conn.out.push_media(frame.bytes.clone(), frame.timestamp);
        } else {
            conn.out.push(frame.bytes.clone());
        }
        return;
    }
    let Some(session) = conn.session() else { return };
    if let Err(error) = session.send_media(stream_id, frame.kind, frame.timestamp, frame.body.clone()) {
        conn.fail(format!("could not encode media: {error}"));
        return;
    }
    let bytes = session.take_outbound();
    if counts_as_media {
        conn.out.push_media(bytes, frame.timestamp);
    } else {
        conn.out.push(bytes);
    }
}
