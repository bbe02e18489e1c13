//! Seed scenarios that reach deep states at once (a publisher with players, an edge pull, a
//! forward and a push, the HTTP API, a player that stops reading), so that a short run in CI
//! starts from there instead of from an empty relay.
//!
//! They are written as values and encoded the way `arbitrary` decodes them. Every seed is
//! decoded again and compared with its value before it is written, so a change to the
//! scenario types that would silently turn the seeds into noise fails loudly instead: update
//! the variant numbers below.

use arbitrary::{Arbitrary, Unstructured};

use crate::peers::OriginOp;
use crate::wire::{Fragment, Frame, HttpRequest, Timestamp};
use crate::{Scenario, Step};

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    /// An enum variant: `arbitrary` maps a u32 `v` to variant `(v * count) >> 32`.
    fn variant(&mut self, index: u32, count: u32) {
        let value = if index == 0 { 0 } else { ((u64::from(index) << 32) / u64::from(count) + 1) as u32 };
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }
    /// A `Vec`: a "more" flag before each element, then a final "no more".
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Writer, &T)) {
        for value in items {
            self.bool(true);
            item(self, value);
        }
        self.bool(false);
    }
}

fn frame(w: &mut Writer, frame: &Frame) {
    let index = match frame {
        Frame::AvcHeader => 0,
        Frame::Keyframe => 1,
        Frame::InterFrame => 2,
        Frame::HevcHeader => 3,
        Frame::HevcKeyframe => 4,
        Frame::AacHeader => 5,
        Frame::AacFrame => 6,
        Frame::Empty => 7,
        Frame::OneByte => 8,
        Frame::Other(..) => 9,
    };
    w.variant(index, 10);
    if let Frame::Other(first, second) = frame {
        w.u8(*first);
        w.u8(*second);
    }
}

fn timestamp(w: &mut Writer, at: &Timestamp) {
    match at {
        Timestamp::After(step) => {
            w.variant(0, 2);
            w.u8(*step);
        }
        Timestamp::At(value) => {
            w.variant(1, 2);
            w.u32(*value);
        }
    }
}

/// A media message's fields, the same for a client's and an origin's.
fn media_fields(w: &mut Writer, which: &Frame, at: &Timestamp, size: u8) {
    frame(w, which);
    timestamp(w, at);
    w.u8(size);
}

const FRAGMENTS: u32 = 23;

fn fragment(w: &mut Writer, fragment: &Fragment) {
    match fragment {
        Fragment::Open { app, name, publish } => {
            w.variant(2, FRAGMENTS);
            w.u8(*app);
            w.u8(*name);
            w.bool(*publish);
        }
        Fragment::Media { stream, frame: which, at, size } => {
            w.variant(7, FRAGMENTS);
            w.u8(*stream);
            media_fields(w, which, at, *size);
        }
        Fragment::Metadata { stream, size } => {
            w.variant(9, FRAGMENTS);
            w.u8(*stream);
            w.u16(*size);
        }
        Fragment::Pause { stream, paused } => {
            w.variant(10, FRAGMENTS);
            w.u8(*stream);
            w.bool(*paused);
        }
        other => unimplemented!("no seed encoding for {other:?}"),
    }
}

fn http(w: &mut Writer, request: &HttpRequest) {
    match request {
        HttpRequest::Get { path, close } => {
            w.variant(0, 8);
            w.u8(*path);
            w.bool(*close);
        }
        HttpRequest::Kick { slot } => {
            w.variant(2, 8);
            w.u8(*slot);
        }
        HttpRequest::Reload => w.variant(3, 8),
        HttpRequest::Upgrade { path, good_key } => {
            w.variant(6, 8);
            w.u8(*path);
            w.bool(*good_key);
        }
        HttpRequest::WsFrame { opcode, masked, length, claimed } => {
            w.variant(7, 8);
            w.u8(*opcode);
            w.bool(*masked);
            w.u8(*length);
            w.u16(*claimed);
        }
        other => unimplemented!("no seed encoding for {other:?}"),
    }
}

fn origin(w: &mut Writer, op: &OriginOp) {
    match op {
        OriginOp::Connected => w.variant(0, 7),
        OriginOp::Exchange { accept } => {
            w.variant(2, 7);
            w.bool(*accept);
        }
        OriginOp::Media { frame: which, at, size } => {
            w.variant(3, 7);
            media_fields(w, which, at, *size);
        }
        OriginOp::Status { code } => {
            w.variant(4, 7);
            w.u8(*code);
        }
        other => unimplemented!("no seed encoding for {other:?}"),
    }
}

const STEPS: u32 = 12;

fn step(w: &mut Writer, step: &Step) {
    match step {
        Step::Accept { ip, http: is_http } => {
            w.variant(0, STEPS);
            w.u8(*ip);
            w.bool(*is_http);
        }
        Step::Send { slot, fragments, repeat } => {
            w.variant(1, STEPS);
            w.u8(*slot);
            w.list(fragments, fragment);
            w.u8(*repeat);
        }
        Step::Http { slot, request } => {
            w.variant(2, STEPS);
            w.u8(*slot);
            http(w, request);
        }
        Step::Read { slot, max } => {
            w.variant(4, STEPS);
            w.u8(*slot);
            w.u16(*max);
        }
        Step::Upstream { slot, op } => {
            w.variant(6, STEPS);
            w.u8(*slot);
            origin(w, op);
        }
        Step::Advance { ms } => {
            w.variant(8, STEPS);
            w.u16(*ms);
        }
        Step::ReloadAnswer { ok, variant } => {
            w.variant(10, STEPS);
            w.bool(*ok);
            w.u8(*variant);
        }
        other => unimplemented!("no seed encoding for {other:?}"),
    }
}

fn encode(scenario: &Scenario) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(scenario.variant);
    w.list(&scenario.steps, step);
    w.0
}

fn media(frame: Frame, after: u8) -> Fragment {
    Fragment::Media { stream: 1, frame, at: Timestamp::After(after), size: 16 }
}

/// A publisher (slot 0) with the headers, metadata and a keyframe out, and a player (slot 1).
fn live_stream() -> Vec<Step> {
    let publish = vec![
        Fragment::Open { app: 0, name: 0, publish: true },
        Fragment::Metadata { stream: 1, size: 40 },
        media(Frame::AvcHeader, 0),
        media(Frame::AacHeader, 0),
        media(Frame::Keyframe, 0),
    ];
    vec![
        Step::Accept { ip: 0, http: false },
        Step::Send { slot: 0, fragments: publish, repeat: 0 },
        Step::Accept { ip: 1, http: false },
        Step::Send { slot: 1, fragments: vec![Fragment::Open { app: 0, name: 0, publish: false }], repeat: 0 },
        Step::Read { slot: 0, max: 0 },
        Step::Read { slot: 1, max: 0 },
    ]
}

fn frames(count: u8) -> Step {
    let fragments = vec![media(Frame::InterFrame, 5), media(Frame::AacFrame, 0)];
    Step::Send { slot: 0, fragments, repeat: count }
}

fn scenarios() -> Vec<(&'static str, Scenario)> {
    let mut playing = live_stream();
    playing.extend([
        frames(20),
        Step::Read { slot: 1, max: 300 },
        Step::Advance { ms: 400 },
        Step::Read { slot: 1, max: 0 },
        Step::Send { slot: 1, fragments: vec![Fragment::Pause { stream: 1, paused: true }], repeat: 0 },
        frames(10),
        Step::Send { slot: 1, fragments: vec![Fragment::Pause { stream: 1, paused: false }], repeat: 0 },
        Step::Send { slot: 0, fragments: vec![media(Frame::Keyframe, 40)], repeat: 0 },
        Step::Read { slot: 1, max: 0 },
    ]);

    // The player stops reading while the publisher goes on.
    let mut stalled = live_stream();
    stalled.extend([frames(63), Step::Advance { ms: 600 }, frames(63), Step::Advance { ms: 2000 }]);

    // Edge: a player's play makes a pull (upstream slot 0), which an origin answers and feeds.
    let exchange = Step::Upstream { slot: 0, op: OriginOp::Exchange { accept: true } };
    let origin_media =
        |frame| Step::Upstream { slot: 0, op: OriginOp::Media { frame, at: Timestamp::After(5), size: 16 } };
    let pull = vec![
        Step::Accept { ip: 0, http: false },
        Step::Send { slot: 0, fragments: vec![Fragment::Open { app: 0, name: 1, publish: false }], repeat: 0 },
        Step::Upstream { slot: 0, op: OriginOp::Connected },
        exchange.clone(),
        exchange.clone(),
        exchange.clone(),
        origin_media(Frame::AvcHeader),
        origin_media(Frame::Keyframe),
        origin_media(Frame::InterFrame),
        Step::Read { slot: 0, max: 0 },
        Step::Upstream { slot: 0, op: OriginOp::Status { code: 1 } },
        Step::Advance { ms: 3000 },
        exchange.clone(),
        Step::Read { slot: 0, max: 0 },
    ];

    // Edge with a push target: a publish makes a forward and a push.
    let mut forward = live_stream();
    forward.extend([
        Step::Upstream { slot: 0, op: OriginOp::Connected },
        Step::Upstream { slot: 1, op: OriginOp::Connected },
        exchange.clone(),
        Step::Upstream { slot: 1, op: OriginOp::Exchange { accept: true } },
        exchange.clone(),
        Step::Upstream { slot: 1, op: OriginOp::Exchange { accept: true } },
        frames(5),
        exchange.clone(),
        Step::Advance { ms: 1000 },
    ]);

    // The HTTP API next to a live stream: metrics, a kick, a reload.
    let mut api = live_stream();
    api.extend([
        Step::Accept { ip: 2, http: true },
        Step::Http { slot: 2, request: HttpRequest::Get { path: 2, close: false } },
        Step::Read { slot: 2, max: 0 },
        Step::Http { slot: 2, request: HttpRequest::Kick { slot: 1 } },
        Step::Http { slot: 2, request: HttpRequest::Reload },
        Step::ReloadAnswer { ok: true, variant: 2 },
        Step::Read { slot: 2, max: 0 },
    ]);

    // HTTP-FLV and WebSocket-FLV players of a live stream, one of them sending a ping, a
    // close, then an unmasked frame.
    let mut flv = live_stream();
    flv.extend([
        Step::Accept { ip: 2, http: true },
        Step::Http { slot: 2, request: HttpRequest::Get { path: 8, close: false } },
        Step::Accept { ip: 3, http: true },
        Step::Http { slot: 3, request: HttpRequest::Upgrade { path: 9, good_key: true } },
        Step::Read { slot: 2, max: 0 },
        Step::Read { slot: 3, max: 0 },
        frames(5),
        Step::Http { slot: 3, request: HttpRequest::WsFrame { opcode: 9, masked: true, length: 4, claimed: 4 } },
        Step::Read { slot: 3, max: 0 },
        Step::Http { slot: 3, request: HttpRequest::WsFrame { opcode: 2, masked: false, length: 1, claimed: 1 } },
        Step::Read { slot: 2, max: 0 },
        Step::Advance { ms: 1000 },
    ]);

    vec![
        ("http_flv_players", Scenario { variant: 0, steps: flv }),
        ("playing", Scenario { variant: 0, steps: playing }),
        ("stalled_player", Scenario { variant: 0, steps: stalled }),
        ("edge_pull", Scenario { variant: 1, steps: pull }),
        ("edge_forward_and_push", Scenario { variant: 9, steps: forward }),
        ("http_api", Scenario { variant: 4, steps: api }),
    ]
}

/// The seeds, each checked to decode to its scenario.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    scenarios()
        .into_iter()
        .map(|(name, scenario)| {
            let bytes = encode(&scenario);
            let decoded = Scenario::arbitrary_take_rest(Unstructured::new(&bytes)).expect("seed decodes");
            assert_eq!(
                format!("{decoded:?}"),
                format!("{scenario:?}"),
                "seed {name} no longer decodes to itself: update the variant numbers in seeds.rs"
            );
            (name.to_string(), bytes)
        })
        .collect()
}
