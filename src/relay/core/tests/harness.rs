//! A fake driver for core tests: in-memory peers, a fake clock, no sockets.
//!
//! Client peers speak to the core through the library's Handshake and ClientSession; origin
//! peers (what an upstream connection reaches) through a ServerSession. A peer that is not
//! `reading` leaves its bytes queued in the core, like a player that stopped reading.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use crate::relay::access::HookCall;
use crate::relay::core::{Action, CloseReason, ConnId, HookId, RelayCore, SiblingMessage, WorkerPlace};
use crate::relay::{Config, StatsSnapshot};
use crate::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, MediaKind, PublishMode, ServerSession, ServerSessionConfig,
    ServerSessionEvent,
};
use crate::time::RtmpTimestamp;

/// What a peer runs once its handshake is done.
pub enum PeerSession {
    Client(Box<ClientSession>),
    /// An origin: accepts connect and play/publish when `answering`.
    Origin(Box<ServerSession>),
}

pub struct Peer {
    pub id: ConnId,
    handshake: Option<Handshake>,
    pending_session: Option<PeerSession>,
    pub session: Option<PeerSession>,
    pub client_events: Vec<ClientSessionEvent>,
    pub origin_events: Vec<ServerSessionEvent>,
    /// Whether bytes the core queues for this peer are taken.
    pub reading: bool,
    /// An origin peer that takes bytes but never answers (a silent origin).
    pub answering: bool,
    /// An origin peer whose streams have no publisher yet: it answers play with Play.Start
    /// and holds StreamBegin back, as nginx-rtmp does.
    pub play_waiting: bool,
    pub closed: Option<CloseReason>,
    /// Bytes taken from the core for this peer.
    pub bytes_received: usize,
}

impl Peer {
    pub fn client(&mut self) -> &mut ClientSession {
        match &mut self.session {
            Some(PeerSession::Client(session)) => session,
            _ => panic!("peer {} has no client session", self.id),
        }
    }

    /// Media events received, as (kind, timestamp, body).
    pub fn media(&self) -> Vec<(MediaKind, u32, Bytes)> {
        self.client_events
            .iter()
            .filter_map(|event| match event {
                ClientSessionEvent::MediaReceived { kind, timestamp, data, .. } => Some((*kind, timestamp.value(), data.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn count_events(&self, mut matches: impl FnMut(&ClientSessionEvent) -> bool) -> usize {
        self.client_events.iter().filter(|event| matches(event)).count()
    }
}

pub struct Harness {
    pub core: RelayCore,
    pub now: Instant,
    pub peers: HashMap<ConnId, Peer>,
    /// Connect actions, in order, with the time they were asked for.
    pub connects: Vec<(ConnId, SocketAddr, Instant)>,
    pub resolves: Vec<(ConnId, String, u16)>,
    /// The TLS server name of each connect (`None`: plain TCP), in order.
    pub connect_tls: Vec<Option<String>>,
    pub closes: Vec<(ConnId, CloseReason, Instant)>,
    pub stopped: bool,
    /// `Action::ReloadConfig`s seen.
    pub reloads_asked: usize,
    /// Hook calls asked for, in order, with the time they were asked for.
    pub hooks: Vec<(HookId, HookCall, Instant)>,
    /// Messages for sibling workers, in order: (to whom, what).
    pub told: Vec<(Option<usize>, SiblingMessage)>,
    next_port: u16,
}

pub fn test_config() -> Config {
    Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Config::default() }
}

/// A video keyframe (AVC NALU) body of `len` bytes.
pub fn keyframe(len: usize) -> Bytes {
    let mut body = vec![0x17, 0x01, 0, 0, 0];
    body.resize(len.max(5), 0xAB);
    Bytes::from(body)
}

/// A video inter frame body of `len` bytes.
pub fn inter_frame(len: usize) -> Bytes {
    let mut body = vec![0x27, 0x01, 0, 0, 0];
    body.resize(len.max(5), 0xCD);
    Bytes::from(body)
}

/// The AVC sequence header.
pub fn avc_header() -> Bytes {
    Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1F])
}

/// Video messages on message stream 1 (where the publish waits), as raw chunks on a chunk
/// stream of their own.
pub fn raw_video(bodies: &[bytes::Bytes]) -> Vec<u8> {
    let mut encoder = crate::chunk_io::ChunkEncoder::new();
    // The chunk size our ClientSession announced.
    encoder.set_chunk_size(crate::sessions::ClientSessionConfig::default().chunk_size).unwrap();
    let mut raw = bytes::BytesMut::new();
    for body in bodies {
        let payload = crate::chunk_io::MessagePayload {
            timestamp: crate::time::RtmpTimestamp::ZERO,
            type_id: 9,
            message_stream_id: 1,
            data: body.clone(),
        };
        encoder.encode(20, &payload, &mut raw).unwrap();
    }
    raw.to_vec()
}

/// Commands as raw chunks on chunk stream 3: (name, transaction id, message stream id,
/// arguments).
pub fn raw_commands(commands: &[(&str, f64, u32, Vec<crate::Amf0Value>)]) -> Vec<u8> {
    let mut encoder = crate::chunk_io::ChunkEncoder::new();
    encoder.set_chunk_size(crate::sessions::ClientSessionConfig::default().chunk_size).unwrap();
    let mut raw = bytes::BytesMut::new();
    for (name, transaction_id, stream_id, arguments) in commands {
        let message = crate::messages::RtmpMessage::Amf0Command {
            name: name.to_string(),
            transaction_id: *transaction_id,
            command_object: crate::Amf0Value::Null,
            arguments: arguments.clone(),
        };
        let payload = message.into_payload(crate::time::RtmpTimestamp::ZERO, *stream_id).unwrap();
        encoder.encode(3, &payload, &mut raw).unwrap();
    }
    raw.to_vec()
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let now = Instant::now();
        Harness {
            core: RelayCore::new(config, 42, now),
            now,
            peers: HashMap::new(),
            connects: Vec::new(),
            resolves: Vec::new(),
            connect_tls: Vec::new(),
            closes: Vec::new(),
            stopped: false,
            reloads_asked: 0,
            hooks: Vec::new(),
            told: Vec::new(),
            next_port: 40000,
        }
    }

    /// A core that is worker `place.index` of `place.count`.
    pub fn for_worker(config: Config, place: WorkerPlace) -> Harness {
        let mut harness = Harness::new(config.clone());
        harness.core = RelayCore::for_worker(config, 0x9E37_79B9_7F4A_7C15 ^ (place.index as u64 + 1) << 20, harness.now, Default::default(), place);
        harness
    }

    /// A connection on the private listener of sibling workers, whose connect carries
    /// `secret` (when given) and which then plays `app/name`.
    pub fn sibling_player(&mut self, secret: Option<&str>, app: &str, name: &str) -> ConnId {
        self.next_port += 1;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.next_port));
        let id = self.core.accept(addr, crate::relay::ListenerKind::Sibling, self.now).expect("accepted");
        let mut handshake = Handshake::new(HandshakeRole::Client, 0);
        let hello = handshake.start();
        let properties = secret
            .map(|secret| (crate::relay::core::WORKER_SECRET_PROPERTY.to_string(), crate::Amf0Value::Utf8String(secret.to_string())))
            .into_iter()
            .collect();
        let config = ClientSessionConfig { extra_connect_properties: properties, ..ClientSessionConfig::default() };
        self.new_peer(id, handshake, PeerSession::Client(Box::new(ClientSession::new(config))));
        self.core.handle_input(id, &hello, self.now);
        self.pump();
        let client = self.peer(id).client();
        client.connect(app, &format!("rtmp://127.0.0.1/{app}")).unwrap();
        client.request_playback(name).unwrap();
        self.send_outbound(id);
        self.pump();
        id
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats().snapshot()
    }

    pub fn peer(&mut self, id: ConnId) -> &mut Peer {
        self.peers.get_mut(&id).unwrap_or_else(|| panic!("no peer {id}"))
    }

    fn new_peer(&mut self, id: ConnId, handshake: Handshake, session: PeerSession) {
        let peer = Peer {
            id,
            handshake: Some(handshake),
            pending_session: Some(session),
            session: None,
            client_events: Vec::new(),
            origin_events: Vec::new(),
            reading: true,
            answering: true,
            play_waiting: false,
            closed: None,
            bytes_received: 0,
        };
        self.peers.insert(id, peer);
    }

    /// A client connects from 127.0.0.1 (a new port each time) and sends C0+C1.
    pub fn connect_client(&mut self) -> ConnId {
        self.next_port += 1;
        let peer = SocketAddr::from(([127, 0, 0, 1], self.next_port));
        self.connect_client_from(peer)
    }

    pub fn connect_client_from(&mut self, addr: SocketAddr) -> ConnId {
        let id = self.core.accept(addr, crate::relay::ListenerKind::Rtmp, self.now).expect("accepted");
        self.start_client(id);
        id
    }

    /// A balancer at `balancer` connects to the RTMP listener and sends `header` (exact
    /// bytes, read by the library's parser as the driver reads them); when the core keeps
    /// the connection, the client behind it sends C0+C1.
    pub fn connect_client_through(&mut self, balancer: SocketAddr, header: &[u8]) -> ConnId {
        use crate::proxy_protocol::{parse, Parsed};
        let id = self.core.accept(balancer, crate::relay::ListenerKind::Rtmp, self.now).expect("accepted");
        assert!(self.core.awaits_proxy_header(id));
        let parsed = match parse(header) {
            Ok(Parsed::Done { header: parsed, consumed }) => {
                assert_eq!(consumed, header.len(), "the bytes are exactly one header");
                Ok(parsed)
            }
            Ok(Parsed::Incomplete) => panic!("an incomplete header"),
            Err(error) => Err(error),
        };
        self.core.handle_proxy_header(id, parsed, self.now);
        self.pump();
        if self.core.is_open(id) {
            self.start_client(id);
        }
        id
    }

    /// The client side of an accepted connection: its handshake starts (C0+C1 sent).
    fn start_client(&mut self, id: ConnId) {
        let mut handshake = Handshake::new(HandshakeRole::Client, 0);
        let hello = handshake.start();
        let session = PeerSession::Client(Box::new(ClientSession::new(ClientSessionConfig::default())));
        self.new_peer(id, handshake, session);
        self.core.handle_input(id, &hello, self.now);
        self.pump();
    }

    /// A client that connects to `app` and publishes `name`; pumps until it is publishing.
    pub fn publisher(&mut self, app: &str, name: &str) -> ConnId {
        let id = self.connect_client();
        let client = self.peer(id).client();
        client.connect(app, &format!("rtmp://127.0.0.1/{app}")).unwrap();
        client.request_publishing(name, PublishMode::Live).unwrap();
        self.send_outbound(id);
        self.pump();
        assert_eq!(
            self.peer(id).count_events(|e| matches!(e, ClientSessionEvent::PublishStarted { .. })),
            1,
            "publish of {app}/{name} started: {:?}",
            self.peer(id).client_events
        );
        id
    }

    /// A client that connects to `app` and plays `name`; pumps until the play is answered.
    pub fn player(&mut self, app: &str, name: &str) -> ConnId {
        let id = self.connect_client();
        let client = self.peer(id).client();
        client.connect(app, &format!("rtmp://127.0.0.1/{app}")).unwrap();
        client.request_playback(name).unwrap();
        self.send_outbound(id);
        self.pump();
        id
    }

    pub fn send_media(&mut self, id: ConnId, kind: MediaKind, timestamp: u32, body: Bytes) {
        self.peer(id).client().publish_media(kind, RtmpTimestamp::new(timestamp), body).unwrap();
        self.send_outbound(id);
    }

    /// Sends whatever the peer's session has queued to the core.
    pub fn send_outbound(&mut self, id: ConnId) {
        let bytes = match self.peers.get_mut(&id).and_then(|peer| peer.session.as_mut()) {
            Some(PeerSession::Client(session)) => session.take_outbound(),
            Some(PeerSession::Origin(session)) => session.take_outbound(),
            None => return,
        };
        if !bytes.is_empty() {
            self.core.handle_input(id, &bytes, self.now);
        }
    }

    /// Sends raw bytes from a peer.
    pub fn send_raw(&mut self, id: ConnId, bytes: &[u8]) {
        self.core.handle_input(id, bytes, self.now);
    }

    /// The relay's upstream connection `id` reaches an origin peer (TCP connected) that
    /// answers everything.
    pub fn accept_upstream(&mut self, id: ConnId) {
        self.accept_upstream_as(id, true, true);
    }

    /// Like [`accept_upstream`](Self::accept_upstream), for an origin that may not read
    /// at all, or read (and finish the handshake) but never answer a command.
    pub fn accept_upstream_as(&mut self, id: ConnId, reading: bool, answering: bool) {
        self.accept_upstream_with(id, reading, answering, false);
    }

    /// Like [`accept_upstream`](Self::accept_upstream), for an origin whose stream has no
    /// publisher yet: it answers play with Play.Start and holds StreamBegin back.
    pub fn accept_upstream_waiting(&mut self, id: ConnId) {
        self.accept_upstream_with(id, true, true, true);
    }

    fn accept_upstream_with(&mut self, id: ConnId, reading: bool, answering: bool, play_waiting: bool) {
        let handshake = Handshake::new(HandshakeRole::Server, 0);
        let session = PeerSession::Origin(Box::new(ServerSession::new(ServerSessionConfig::default())));
        self.new_peer(id, handshake, session);
        let peer = self.peer(id);
        peer.reading = reading;
        peer.answering = answering;
        peer.play_waiting = play_waiting;
        self.core.handle_connected(id, self.now);
        self.pump();
    }

    /// Runs the core's actions and the peers' answers until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(action) = self.core.poll_action() {
                moved = true;
                match action {
                    Action::Write(_) => {}
                    Action::Close { id, reason } => {
                        if let Some(peer) = self.peers.get_mut(&id) {
                            peer.closed = Some(reason.clone());
                        }
                        self.closes.push((id, reason, self.now));
                    }
                    Action::Connect { id, addr, tls } => {
                        self.connects.push((id, addr, self.now));
                        self.connect_tls.push(tls);
                    }
                    Action::Resolve { id, host, port } => self.resolves.push((id, host, port)),
                    Action::Stopped => self.stopped = true,
                    Action::ReloadConfig => self.reloads_asked += 1,
                    Action::Hook { id, call } => self.hooks.push((id, call, self.now)),
                    Action::TellSiblings { to, message } => self.told.push((to, message)),
                }
            }
            let ids: Vec<ConnId> = self.peers.keys().copied().collect();
            for id in ids {
                if self.deliver(id) {
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the harness did not settle");
    }

    /// Moves queued bytes from the core to a reading peer, and its answers back.
    fn deliver(&mut self, id: ConnId) -> bool {
        let reading = self.peers.get(&id).is_some_and(|peer| peer.reading && peer.closed.is_none());
        if !reading || !self.core.has_queued(id) {
            return false;
        }
        let mut bytes = Vec::new();
        while self.core.has_queued(id) {
            let mut slices = [IoSlice::new(&[]); 64];
            let count = self.core.write_slices(id, &mut slices);
            let before = bytes.len();
            for slice in &slices[..count] {
                bytes.extend_from_slice(slice);
            }
            let written = bytes.len() - before;
            self.core.handle_written(id, written, self.now);
        }
        let Some(peer) = self.peers.get_mut(&id) else { return true };
        peer.bytes_received += bytes.len();
        let mut input = Bytes::from(bytes);
        if let Some(handshake) = &mut peer.handshake {
            match handshake.process(&input).expect("relay handshake bytes") {
                HandshakeProgress::InProgress { response } => {
                    self.core.handle_input(id, &response, self.now);
                    return true;
                }
                HandshakeProgress::Completed { response, remaining } => {
                    peer.handshake = None;
                    peer.session = peer.pending_session.take();
                    input = remaining;
                    if !response.is_empty() {
                        self.core.handle_input(id, &response, self.now);
                    }
                }
            }
        }
        let Some(peer) = self.peers.get_mut(&id) else { return true };
        let (answering, play_waiting) = (peer.answering, peer.play_waiting);
        match &mut peer.session {
            Some(PeerSession::Client(session)) => {
                session.handle_input(&input).expect("client session input");
                while let Some(event) = session.poll_event() {
                    peer.client_events.push(event);
                }
            }
            Some(PeerSession::Origin(session)) => {
                session.handle_input(&input).expect("origin session input");
                while let Some(event) = session.poll_event() {
                    if answering && play_waiting {
                        if let ServerSessionEvent::PlayRequested { request_id, .. } = &event {
                            session.accept_play_waiting(*request_id).expect("origin accepts a play that waits");
                            peer.origin_events.push(event);
                            continue;
                        }
                    }
                    if answering {
                        if let ServerSessionEvent::ConnectionRequested { request_id, .. }
                        | ServerSessionEvent::PlayRequested { request_id, .. }
                        | ServerSessionEvent::PublishRequested { request_id, .. } = &event
                        {
                            session.accept_request(*request_id).expect("origin accepts");
                        }
                    }
                    peer.origin_events.push(event);
                }
            }
            None => {}
        }
        self.send_outbound(id);
        true
    }

    /// Moves the clock forward in steps, firing every timeout on time.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            self.pump();
            match self.core.poll_timeout() {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.core.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.core.handle_timeout(end);
        self.pump();
    }

    /// Moves the clock to `until` or until `condition` holds, whichever is first.
    pub fn advance_until(&mut self, limit: Duration, mut condition: impl FnMut(&Harness) -> bool) -> bool {
        let step = Duration::from_millis(10);
        let end = self.now + limit;
        while self.now < end {
            if condition(self) {
                return true;
            }
            self.advance(step);
        }
        condition(self)
    }

    pub fn close_reason(&self, id: ConnId) -> Option<&CloseReason> {
        self.closes.iter().find(|(closed, _, _)| *closed == id).map(|(_, reason, _)| reason)
    }
}
