//! The relay core's fan-out, without sockets: one frame from a publisher, queued for N
//! players and written out to each, as the driver would (`poll_action`, `write_slices`,
//! `handle_written`). What this measures is the core's own work per frame, which the
//! whole-system benchmark (scripts/bench.sh) cannot separate from the kernel's loopback.
//!
//! `cargo bench --bench relay_fanout`

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::relay::{Action, Config, ConnId, ListenerKind, RelayCore};
use rtmp_edge::sessions::{ClientSession, ClientSessionConfig, MediaKind, PublishMode};
use rtmp_edge::time::RtmpTimestamp;

/// A client of the core: its handshake until done, then its session.
struct Peer {
    handshake: Option<Handshake>,
    session: ClientSession,
}

struct World {
    core: RelayCore,
    now: Instant,
    peers: HashMap<ConnId, Peer>,
}

impl World {
    fn new(players: usize) -> World {
        let now = Instant::now();
        let config = Config { max_connections: players + 10, max_connections_per_ip: players + 10, ..Config::default() };
        World { core: RelayCore::new(config, 1, now), now, peers: HashMap::new() }
    }

    fn connect(&mut self, port: u16, then: impl FnOnce(&mut ClientSession)) -> ConnId {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let id = self.core.accept(addr, ListenerKind::Rtmp, self.now).expect("accepted");
        let mut handshake = Handshake::new(HandshakeRole::Client, 0);
        let hello = handshake.start();
        let mut session = ClientSession::new(ClientSessionConfig::default());
        then(&mut session);
        self.peers.insert(id, Peer { handshake: Some(handshake), session });
        self.core.handle_input(id, &hello, self.now);
        self.settle();
        id
    }

    /// Delivers everything queued, both ways, until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(action) = self.core.poll_action() {
                if let Action::Write(id) = action {
                    moved |= self.deliver(id);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn deliver(&mut self, id: ConnId) -> bool {
        let bytes = take(&mut self.core, id, self.now);
        let Some(peer) = self.peers.get_mut(&id) else { return false };
        let mut input = Bytes::from(bytes);
        if let Some(handshake) = &mut peer.handshake {
            match handshake.process(&input).expect("handshake") {
                HandshakeProgress::InProgress { response } => {
                    self.core.handle_input(id, &response, self.now);
                    return true;
                }
                HandshakeProgress::Completed { response, remaining } => {
                    peer.handshake = None;
                    input = remaining;
                    self.core.handle_input(id, &response, self.now);
                }
            }
        }
        peer.session.handle_input(&input).expect("client input");
        while peer.session.poll_event().is_some() {}
        let out = peer.session.take_outbound();
        if out.is_empty() {
            return false;
        }
        self.core.handle_input(id, &out, self.now);
        true
    }
}

/// What the core queued for `id`, taken as a socket that takes everything would.
fn take(core: &mut RelayCore, id: ConnId, now: Instant) -> Vec<u8> {
    let mut bytes = Vec::new();
    while core.has_queued(id) {
        let mut slices = [IoSlice::new(&[]); 64];
        let count = core.write_slices(id, &mut slices);
        let written: usize = slices[..count].iter().map(|slice| slice.len()).sum();
        for slice in &slices[..count] {
            bytes.extend_from_slice(slice);
        }
        core.handle_written(id, written, now);
    }
    bytes
}

/// The driver's side of one frame: every write the core asks for, taken in full.
fn write_everything(core: &mut RelayCore, now: Instant) -> usize {
    let mut total = 0;
    while let Some(action) = core.poll_action() {
        if let Action::Write(id) = action {
            while core.has_queued(id) {
                let mut slices = [IoSlice::new(&[]); 64];
                let count = core.write_slices(id, &mut slices);
                let written: usize = slices[..count].iter().map(|slice| slice.len()).sum();
                total += written;
                core.handle_written(id, written, now);
            }
        }
    }
    total
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_fanout");
    for players in [10usize, 100, 1000] {
        let mut world = World::new(players);
        let publisher = world.connect(1, |session| {
            session.connect("live", "rtmp://127.0.0.1/live").unwrap();
            session.request_publishing("s", PublishMode::Live).unwrap();
        });
        for port in 0..players {
            world.connect(1000 + port as u16, |session| {
                session.connect("live", "rtmp://127.0.0.1/live").unwrap();
                session.request_playback("s").unwrap();
            });
        }
        let mut sender = world.peers.remove(&publisher).expect("publisher").session;
        let mut key = vec![0x17, 0x01, 0, 0, 0];
        key.resize(6000, 0xAB);
        sender.publish_media(MediaKind::Video, RtmpTimestamp::new(0), Bytes::from(key)).unwrap();
        world.core.handle_input(publisher, &sender.take_outbound(), world.now);
        write_everything(&mut world.core, world.now);
        let mut inter = vec![0x27, 0x01, 0, 0, 0];
        inter.resize(6000, 0xCD);
        let inter = Bytes::from(inter);
        let mut timestamp = 0u32;
        group.throughput(Throughput::Elements(players as u64));
        group.bench_with_input(BenchmarkId::new("frame_to_players", players), &players, |b, _| {
            b.iter(|| {
                timestamp = timestamp.wrapping_add(40);
                sender.publish_media(MediaKind::Video, RtmpTimestamp::new(timestamp), inter.clone()).unwrap();
                let bytes = sender.take_outbound();
                world.core.handle_input(publisher, &bytes, world.now);
                write_everything(&mut world.core, world.now)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
