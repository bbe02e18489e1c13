//! Arbitrary event sequences into the relay's sans-IO core (`RelayCore`), driven like the
//! mio driver drives it but with a fake clock: clients connect (RTMP and HTTP, from three
//! addresses) and send fragments of real sessions or raw bytes, read some or all of what
//! the relay queued, or hang up; origins behind the relay's upstream connections (edge
//! mode) connect, resolve, answer and send media; time moves by fuzzer-chosen amounts;
//! the configuration is reloaded; the relay shuts down.
//!
//! After every call into the core, every action is drained and checked:
//! - nothing panics (the core, the library, or the checks below);
//! - an action names a live connection when it is handed out (`Close` names one that was
//!   live before and is not any more), and every connection that goes away gets exactly
//!   one `Close`;
//! - no queue passes `queue_hard_limit_bytes` or `queue_hard_limit_entries`;
//! - accepted connections stay within `max_connections` and `max_connections_per_ip`, and
//!   every accept or refusal matches the counts;
//! - the counters (open connections, players, publishers, pulls) agree with the state;
//! - the deadline `poll_timeout` gives is later than the time just handled (a driver
//!   would spin otherwise);
//! - what the relay sends an RTMP client is a handshake and then chunks that decode into
//!   messages that decode, and what it sends an origin parses in the library's server
//!   session.
#![no_main]

#[path = "relay_core/peers.rs"]
mod peers;
#[path = "common/recorded.rs"]
mod recorded;
#[path = "relay_core/seeds.rs"]
mod seeds;
#[path = "relay_core/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtmp_edge::relay::access::{AccessConfig, HookOutcome};
use rtmp_edge::relay::{Action, CloseReason, Config, ConnId, HookId, ListenerKind, Refusal, RelayCore};
use rtmp_edge::url::RtmpUrl;

use peers::{Origin, OriginOp, OutputCheck};
use wire::{ClientWire, Fragment, HttpRequest, RECORDINGS};

const MAX_CONNECTIONS: usize = 8;
const MAX_CONNECTIONS_PER_IP: usize = 3;
const QUEUE_HARD_LIMIT_BYTES: usize = 64 * 1024;
const QUEUE_HARD_LIMIT_ENTRIES: usize = 48;
/// Slots the fuzzer picks connections from; a new one replaces the oldest.
const SLOTS: usize = 6;
/// Steps run per input, so one input never runs for long.
const MAX_STEPS: usize = 256;

#[derive(Arbitrary, Debug)]
struct Scenario {
    variant: u8,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone)]
enum Step {
    Accept { ip: u8, http: bool },
    /// Fragments sent in one read, `repeat % 64 + 1` times over (floods of frames).
    Send { slot: u8, fragments: Vec<Fragment>, repeat: u8 },
    Http { slot: u8, request: HttpRequest },
    /// The next `len` bytes of a recorded client session.
    Replay { slot: u8, recording: u8, len: u16 },
    /// The client reads up to `max` bytes (0: all) of what is queued for it.
    Read { slot: u8, max: u16 },
    Hangup { slot: u8 },
    Upstream { slot: u8, op: OriginOp },
    UpstreamLost { slot: u8 },
    Advance { ms: u16 },
    Reload { variant: u8 },
    ReloadAnswer { ok: bool, variant: u8 },
    Shutdown,
}

/// Settings that differ between runs and reloads. The limits the checks rely on stay fixed.
fn config(variant: u8) -> Config {
    let edge = variant & 1 != 0;
    let push = variant & 8 != 0;
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        chunk_size: 256,
        gop_cache: variant & 2 == 0,
        max_connections: MAX_CONNECTIONS,
        max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
        max_message_size: 64 * 1024,
        queue_soft_limit_ms: 300,
        queue_hard_limit_ms: 1000,
        queue_hard_limit_bytes: QUEUE_HARD_LIMIT_BYTES,
        queue_hard_limit_entries: QUEUE_HARD_LIMIT_ENTRIES,
        write_batch: if variant & 4 != 0 { Duration::from_millis(20) } else { Duration::ZERO },
        gop_cache_max_bytes: 16 * 1024,
        gop_cache_max_frames: 24,
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        dump_dir: None,
        // A literal address (Connect) and a host name (Resolve first).
        origins: if edge { vec!["127.0.0.1:1935".to_string(), "origin.invalid:1935".to_string()] } else { Vec::new() },
        pull_linger: Duration::from_secs(2),
        upstream_timeout: Duration::from_secs(4),
        upstream_connect_timeout: Duration::from_millis(1500),
        upstream_handshake_timeout: Duration::from_millis(1500),
        upstream_reply_timeout: Duration::from_millis(1500),
        push: if push { RtmpUrl::parse("rtmp://127.0.0.1:1936/push/out").into_iter().collect() } else { Vec::new() },
        max_upstream_connects: 3,
        http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        http_token: None,
        http_max_connections: 2,
        http_header_timeout: Duration::from_secs(3),
        http_idle_timeout: Duration::from_secs(10),
        // Every connect, publish and play waits for a hook, answered by `answer_hook`.
        access: if variant & 16 != 0 {
            AccessConfig {
                hook_url: "http://127.0.0.1:9/hook".parse().ok(),
                hook_timeout: Duration::from_secs(1),
                ..AccessConfig::default()
            }
        } else {
            AccessConfig::default()
        },
        ..Config::default()
    }
}

/// What the fake hook server says to call `id`: allow, deny, or nothing (the core's own
/// timeout decides), in turn.
fn answer_hook(id: HookId) -> Option<HookOutcome> {
    match id.to_u64() % 3 {
        0 => Some(HookOutcome::Answered { status: 200, body: b"{\"code\":0}".to_vec() }),
        1 => Some(HookOutcome::Answered { status: 403, body: Vec::new() }),
        _ => None,
    }
}

struct Client {
    id: ConnId,
    http: bool,
    wire: ClientWire,
    check: OutputCheck,
    /// (recording, bytes of it sent so far)
    replay: (usize, usize),
}

struct Upstream {
    id: ConnId,
    origin: Option<Origin>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opened {
    Accepted(IpAddr),
    Upstream,
}

struct World {
    core: RelayCore,
    now: Instant,
    clients: Vec<Client>,
    upstreams: Vec<Upstream>,
    /// Every connection the core told us about and has not closed.
    open: HashMap<ConnId, Opened>,
    next_port: u16,
    stopped: bool,
}

fn slot<T>(list: &mut [T], index: u8) -> Option<&mut T> {
    let len = list.len();
    if len == 0 {
        return None;
    }
    list.get_mut(usize::from(index) % len)
}

fn remember<T>(list: &mut Vec<T>, item: T, counter: usize) {
    if list.len() < SLOTS {
        list.push(item);
    } else if let Some(old) = list.get_mut(counter % SLOTS) {
        *old = item;
    }
}

impl World {
    fn new(variant: u8) -> World {
        let now = Instant::now();
        World {
            core: RelayCore::new(config(variant), 7, now),
            now,
            clients: Vec::new(),
            upstreams: Vec::new(),
            open: HashMap::new(),
            next_port: 40000,
            stopped: false,
        }
    }

    /// Drains and checks the core's actions, then checks its state.
    fn settle(&mut self) {
        let mut answers = Vec::new();
        loop {
            for (id, outcome) in answers.drain(..) {
                self.core.handle_hook_result(id, outcome, self.now);
            }
            self.drain_actions(&mut answers);
            if answers.is_empty() {
                break;
            }
        }
        self.check_state();
    }

    /// Checks each action the core has; hook calls to answer go to `answers`.
    fn drain_actions(&mut self, answers: &mut Vec<(HookId, HookOutcome)>) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Write(id) => assert!(self.core.is_open(id), "Write for {id}, which is not open"),
                Action::Connect { id, .. } | Action::Resolve { id, .. } => {
                    assert!(self.core.is_open(id), "{id}: connect or resolve for a connection that is not open");
                    if self.open.insert(id, Opened::Upstream).is_none() {
                        let count = self.open.len();
                        remember(&mut self.upstreams, Upstream { id, origin: None }, count);
                    }
                }
                Action::Close { id, reason } => {
                    assert!(!self.core.is_open(id), "{id} closed ({reason}) but still open");
                    assert!(self.open.remove(&id).is_some(), "Close for {id} ({reason}), which was not open");
                }
                Action::Stopped => {
                    assert!(!self.stopped, "Stopped twice");
                    assert_eq!(self.core.connection_count(), 0, "Stopped with connections open");
                    self.stopped = true;
                }
                Action::ReloadConfig | Action::TellSiblings { .. } => {}
                Action::Hook { id, .. } => answers.extend(answer_hook(id).map(|outcome| (id, outcome))),
            }
        }
    }

    fn check_state(&self) {
        let core = &self.core;
        assert_eq!(self.open.len(), core.connection_count(), "a connection went away without a Close, or came without notice");
        let mut accepted = 0;
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        for (&id, &opened) in &self.open {
            assert!(core.is_open(id), "{id} closed without a Close action");
            if let Opened::Accepted(ip) = opened {
                accepted += 1;
                *per_ip.entry(ip).or_default() += 1;
            }
            let (bytes, entries) = core.queue_size(id).expect("open connection has a queue");
            assert!(
                bytes <= QUEUE_HARD_LIMIT_BYTES && entries <= QUEUE_HARD_LIMIT_ENTRIES,
                "{id}: queue of {bytes} bytes in {entries} entries passes the hard limits"
            );
        }
        assert!(accepted <= MAX_CONNECTIONS);
        assert!(per_ip.values().all(|&count| count <= MAX_CONNECTIONS_PER_IP), "per-address limit passed: {per_ip:?}");

        let stats = core.stats().snapshot();
        let streams = core.stream_summaries();
        assert_eq!(stats.connections_open, core.connection_count() as u64, "connections_open counter");
        let players: usize = streams.iter().map(|stream| stream.players).sum();
        assert_eq!(stats.players, players as u64, "players counter vs streams: {streams:?}");
        let publishers = streams.iter().filter(|stream| stream.publisher.is_some()).count();
        assert_eq!(stats.publishers, publishers as u64, "publishers counter vs streams: {streams:?}");
        let pulls = streams.iter().filter(|stream| stream.pull.is_some()).count();
        assert_eq!(stats.pulls, pulls as u64, "pulls counter vs streams: {streams:?}");
        assert!(stats.pulls_live <= stats.pulls, "more live pulls than pulls");
        for stream in &streams {
            if let Some(publisher) = stream.publisher {
                assert!(core.is_open(publisher), "{}: publisher {publisher} is closed", stream.key);
            }
        }
    }

    fn accept(&mut self, ip: u8, http: bool) {
        let address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + ip % 3));
        self.next_port = self.next_port.wrapping_add(1);
        // The relay's own connections (pulls) do not count against max_connections.
        let before_total = self.open.values().filter(|opened| matches!(opened, Opened::Accepted(_))).count();
        let before_ip = self.open.values().filter(|opened| **opened == Opened::Accepted(address)).count();
        let kind = if http { ListenerKind::Http } else { ListenerKind::Rtmp };
        let shutting_down = self.core.is_shutting_down();
        match self.core.accept(SocketAddr::new(address, self.next_port), kind, self.now) {
            Ok(id) => {
                assert!(before_total < MAX_CONNECTIONS, "accepted with {before_total} open");
                assert!(before_ip < MAX_CONNECTIONS_PER_IP, "accepted with {before_ip} open from {address}");
                assert!(http || !shutting_down, "RTMP accepted while shutting down");
                assert!(self.open.insert(id, Opened::Accepted(address)).is_none(), "{id} handed out twice");
                let client = Client { id, http, wire: ClientWire::new(), check: OutputCheck::new(), replay: (0, 0) };
                let count = self.open.len() + usize::from(self.next_port);
                remember(&mut self.clients, client, count);
            }
            Err(Refusal::TooManyConnections { .. }) => assert!(before_total >= MAX_CONNECTIONS),
            Err(Refusal::TooManyFromAddress { .. }) => assert!(before_ip >= MAX_CONNECTIONS_PER_IP, "refused with {before_ip} from {address}"),
            Err(Refusal::ShuttingDown) => assert!(shutting_down),
            Err(Refusal::TooManyHttpConnections { .. }) => assert!(http),
            Err(refusal @ Refusal::TooManyUnprovenSiblings { .. }) => panic!("{refusal} with no private listener"),
        }
        self.settle();
    }

    fn input(&mut self, id: ConnId, bytes: &[u8]) {
        self.core.handle_input(id, bytes, self.now);
        self.settle();
    }

    /// Takes up to `max` queued bytes (all for 0) for `id`, as a socket write would.
    fn take(&mut self, id: ConnId, max: usize) -> Bytes {
        let mut taken = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); 8];
            let count = self.core.write_slices(id, &mut slices);
            let before = taken.len();
            for slice in &slices[..count] {
                let room = if max == 0 { usize::MAX } else { max - taken.len() };
                taken.extend_from_slice(&slice[..slice.len().min(room)]);
            }
            let written = taken.len() - before;
            if written == 0 {
                break;
            }
            self.core.handle_written(id, written, self.now);
            self.settle();
            if max != 0 && taken.len() >= max {
                break;
            }
        }
        Bytes::from(taken)
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..100_000 {
            match self.core.poll_timeout() {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.timeout();
                }
                _ => break,
            }
        }
        self.now = end;
        self.timeout();
    }

    fn timeout(&mut self) {
        self.core.handle_timeout(self.now);
        self.settle();
        if let Some(next) = self.core.poll_timeout() {
            assert!(next > self.now, "poll_timeout {:?} after handling {:?}: a driver would spin", next - self.now, self.now);
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Accept { ip, http } => self.accept(*ip, *http),
            Step::Send { slot: index, fragments, repeat } => {
                let Some(client) = slot(&mut self.clients, *index) else { return };
                let mut bytes = BytesMut::new();
                for _ in 0..=repeat % 64 {
                    for fragment in fragments.iter().take(16) {
                        client.wire.encode(fragment, &mut bytes);
                    }
                }
                let id = client.id;
                self.input(id, &bytes);
            }
            Step::Http { slot: index, request } => {
                let kick_slot = match request {
                    HttpRequest::Kick { slot } => Some(*slot),
                    _ => None,
                };
                let kick_id = kick_slot.and_then(|kick| slot(&mut self.clients, kick)).map(|client| client.id.to_u64());
                let Some(client) = slot(&mut self.clients, *index) else { return };
                let mut bytes = BytesMut::new();
                request.encode(kick_id, &mut bytes);
                let id = client.id;
                self.input(id, &bytes);
            }
            Step::Replay { slot: index, recording, len } => {
                let Some(client) = slot(&mut self.clients, *index) else { return };
                let recording = usize::from(*recording) % RECORDINGS.len();
                if client.replay.0 != recording {
                    client.replay = (recording, 0);
                }
                let data = RECORDINGS[recording];
                let start = client.replay.1.min(data.len());
                let end = (start + usize::from(*len).max(1) * 4).min(data.len());
                client.replay.1 = end;
                let id = client.id;
                self.input(id, &data[start..end]);
            }
            Step::Read { slot: index, max } => {
                let Some(client) = slot(&mut self.clients, *index) else { return };
                let id = client.id;
                let bytes = self.take(id, usize::from(*max));
                if let Some(client) = self.clients.iter_mut().find(|client| client.id == id) {
                    if !client.http && !bytes.is_empty() {
                        client.check.read(bytes);
                    }
                }
            }
            Step::Hangup { slot: index } => {
                let Some(client) = slot(&mut self.clients, *index) else { return };
                let id = client.id;
                self.core.handle_closed(id, CloseReason::PeerClosed, self.now);
                self.settle();
            }
            Step::Upstream { slot: index, op } => self.upstream(*index, op),
            Step::UpstreamLost { slot: index } => {
                let Some(upstream) = slot(&mut self.upstreams, *index) else { return };
                let id = upstream.id;
                self.core.handle_closed(id, CloseReason::ConnectFailed("connection refused".to_string()), self.now);
                self.settle();
            }
            Step::Advance { ms } => self.advance(Duration::from_millis(u64::from(*ms))),
            Step::Reload { variant } => {
                self.core.reload(config(*variant));
                self.settle();
            }
            Step::ReloadAnswer { ok, variant } => {
                let result = if *ok { Ok(config(*variant)) } else { Err("line 3: unknown key".to_string()) };
                self.core.handle_reload(result, self.now);
                self.settle();
            }
            Step::Shutdown => {
                self.core.begin_shutdown(self.now);
                self.settle();
            }
        }
    }

    fn upstream(&mut self, index: u8, op: &OriginOp) {
        let Some(upstream) = slot(&mut self.upstreams, index) else { return };
        let id = upstream.id;
        match op {
            OriginOp::Connected => {
                upstream.origin.get_or_insert_with(Origin::new);
                self.core.handle_connected(id, self.now);
                self.settle();
            }
            OriginOp::Resolved { ok } => {
                let result =
                    if *ok { Ok(vec![SocketAddr::from(([127, 0, 0, 1], 1935))]) } else { Err("no such host".to_string()) };
                self.core.handle_resolved(id, result, self.now);
                self.settle();
            }
            OriginOp::Exchange { accept } => {
                if upstream.origin.is_none() {
                    return;
                }
                let written = self.take(id, 0);
                let Some(origin) = self.upstreams.iter_mut().find(|upstream| upstream.id == id).and_then(|u| u.origin.as_mut())
                else {
                    return;
                };
                let answer = origin.exchange(written, *accept);
                if !answer.is_empty() {
                    self.input(id, &answer);
                }
            }
            OriginOp::Raw(bytes) => {
                let bytes = bytes.clone();
                self.input(id, &bytes);
            }
            _ => {
                let Some(origin) = upstream.origin.as_mut() else { return };
                let bytes = origin.send(op);
                if !bytes.is_empty() {
                    self.input(id, &bytes);
                }
            }
        }
    }
}

fuzz_target!(
    init: {
        // Scenarios that start deep (the recordings come in through `Step::Replay`).
        recorded::write_if_asked(seeds::seeds);
    },
    |scenario: Scenario| {
    let mut world = World::new(scenario.variant);
    for step in scenario.steps.iter().take(MAX_STEPS) {
        world.step(step);
    }
    // The end of every run: a shutdown must finish (every connection closed, Stopped).
    world.core.begin_shutdown(world.now);
    world.settle();
    world.advance(rtmp_edge::relay::core::SHUTDOWN_GRACE + Duration::from_millis(300));
    assert!(world.stopped, "the shutdown did not finish: {} connections open", world.core.connection_count());
}
);
