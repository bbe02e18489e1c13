//! What the simulated peers say: RTMP fragments a client sends, encoded with a real chunk
//! encoder so they stay valid whatever came before, and the HTTP requests an API client sends.
//! Each fragment is small and named, so the fuzzer combines them into deep sessions
//! (handshake, connect, publish, media, play, pause...) instead of guessing bytes.

use std::collections::HashMap;

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use rtmp_edge::chunk_io::ChunkEncoder;
use rtmp_edge::messages::{RtmpMessage, UserControlEvent};
use rtmp_edge::sessions::{media_chunk_stream, MediaKind};
use rtmp_edge::time::RtmpTimestamp;
use rtmp_edge::Amf0Value;

/// Application names: `a/b` + `c` and `a` + `b/c` must stay different streams.
pub const APPS: [&str; 3] = ["live", "a", "a/b"];
/// Stream names, one with a query string that must not split the stream.
pub const NAMES: [&str; 4] = ["s", "s?token=1", "b/c", "c"];

/// A media message body.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Frame {
    AvcHeader,
    Keyframe,
    InterFrame,
    /// An Enhanced RTMP HEVC sequence start and coded keyframe.
    HevcHeader,
    HevcKeyframe,
    AacHeader,
    AacFrame,
    /// What the relay must not relay: an empty or one-byte message.
    Empty,
    OneByte,
    /// Any body: the first bytes the fuzzer picks.
    Other(u8, u8),
}

impl Frame {
    pub fn kind(self) -> MediaKind {
        match self {
            Frame::AacHeader | Frame::AacFrame => MediaKind::Audio,
            _ => MediaKind::Video,
        }
    }

    /// The body, padded to about `size` bytes.
    pub fn body(self, size: u8) -> Bytes {
        let mut body: Vec<u8> = match self {
            Frame::AvcHeader => vec![0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1],
            Frame::Keyframe => vec![0x17, 0x01, 0, 0, 0],
            Frame::InterFrame => vec![0x27, 0x01, 0, 0, 0],
            Frame::HevcHeader => vec![0x90, b'h', b'v', b'c', b'1', 0x01],
            Frame::HevcKeyframe => vec![0x91, b'h', b'v', b'c', b'1', 0, 0, 0],
            Frame::AacHeader => vec![0xAF, 0x00, 0x12, 0x10],
            Frame::AacFrame => vec![0xAF, 0x01],
            Frame::Empty => return Bytes::new(),
            Frame::OneByte => return Bytes::from_static(&[0x27]),
            Frame::Other(first, second) => vec![first, second],
        };
        let target = body.len().max(usize::from(size) * 4);
        body.resize(target, 0xAB);
        Bytes::from(body)
    }
}

/// A timestamp: a step from the previous one, or any value (jumps, wraps, going back).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Timestamp {
    After(u8),
    At(u32),
}

/// One RTMP message (or raw bytes) a client sends.
#[derive(Arbitrary, Debug, Clone)]
pub enum Fragment {
    /// C0 and C1: version 3, then 1536 bytes (with or without a digest, as recorded).
    C0C1 { recorded: bool },
    C2,
    /// A whole session start in one go: handshake, connect, createStream, publish or play.
    Open { app: u8, name: u8, publish: bool },
    Connect { app: u8 },
    CreateStream,
    Publish { stream: u8, name: u8 },
    Play { stream: u8, name: u8 },
    Media { stream: u8, frame: Frame, at: Timestamp, size: u8 },
    /// Several media messages in one aggregate message.
    Aggregate { stream: u8, frames: Vec<Frame>, at: Timestamp },
    Metadata { stream: u8, size: u16 },
    Pause { stream: u8, paused: bool },
    Receive { stream: u8, video: bool, enabled: bool },
    DeleteStream { stream: u8 },
    CloseStream { stream: u8 },
    FcUnpublish { name: u8 },
    SetChunkSize { size: u16 },
    Abort { chunk_stream: u8 },
    Acknowledgement { sequence: u32 },
    WindowAck { size: u32 },
    PingResponse { timestamp: u32 },
    SetBufferLength { stream: u8, ms: u16 },
    UnknownCommand { name: u8 },
    Raw(Vec<u8>),
}

/// Builds what one client sends, keeping the chunk encoder's state and the media clock.
pub struct ClientWire {
    encoder: ChunkEncoder,
    timestamp: u32,
    transaction: f64,
}

/// The start of the recorded ffmpeg publish: a C0+C1 with a digest.
pub fn recorded_c0c1() -> &'static [u8] {
    RECORDINGS[0].get(..1537).unwrap_or_default()
}

/// Client-side recordings (`tests/fixtures/wire`): real ffmpeg and rtmpdump sessions that a
/// client slot can replay in pieces.
pub const RECORDINGS: [&[u8]; 3] = [
    include_bytes!("../../../tests/fixtures/wire/ffmpeg_publish.c2s"),
    include_bytes!("../../../tests/fixtures/wire/ffmpeg_play.c2s"),
    include_bytes!("../../../tests/fixtures/wire/rtmpdump_play.c2s"),
];

fn pick<'a>(list: &[&'a str], index: u8) -> &'a str {
    list[usize::from(index) % list.len()]
}

fn stream_id(stream: u8) -> u32 {
    u32::from(stream % 4)
}

fn string(text: &str) -> Amf0Value {
    Amf0Value::Utf8String(text.to_string())
}

impl ClientWire {
    pub fn new() -> ClientWire {
        ClientWire { encoder: ChunkEncoder::new(), timestamp: 0, transaction: 1.0 }
    }

    fn next_timestamp(&mut self, at: Timestamp) -> RtmpTimestamp {
        self.timestamp = match at {
            Timestamp::After(step) => self.timestamp.wrapping_add(u32::from(step) * 8),
            Timestamp::At(value) => value,
        };
        RtmpTimestamp::new(self.timestamp)
    }

    fn message(&mut self, out: &mut BytesMut, chunk_stream: u32, stream: u32, timestamp: RtmpTimestamp, message: RtmpMessage) {
        let Ok(payload) = message.into_payload(timestamp, stream) else { return };
        let _ = self.encoder.encode(chunk_stream, &payload, out);
    }

    fn command(&mut self, out: &mut BytesMut, stream: u32, name: &str, object: Amf0Value, arguments: Vec<Amf0Value>) {
        self.transaction += 1.0;
        let message = RtmpMessage::command(name, self.transaction, object, arguments);
        self.message(out, if stream == 0 { 3 } else { 8 }, stream, RtmpTimestamp::ZERO, message);
    }

    /// Appends the bytes of `fragment` to `out`.
    pub fn encode(&mut self, fragment: &Fragment, out: &mut BytesMut) {
        match fragment {
            Fragment::C0C1 { recorded: true } => out.extend_from_slice(recorded_c0c1()),
            Fragment::C0C1 { recorded: false } => {
                out.extend_from_slice(&[3]);
                out.extend_from_slice(&[0; 1536]);
            }
            Fragment::C2 => out.extend_from_slice(&[0; 1536]),
            Fragment::Open { app, name, publish } => {
                self.encode(&Fragment::C0C1 { recorded: false }, out);
                self.encode(&Fragment::C2, out);
                self.encode(&Fragment::Connect { app: *app }, out);
                self.encode(&Fragment::CreateStream, out);
                let (stream, name) = (1, *name);
                let next = if *publish { Fragment::Publish { stream, name } } else { Fragment::Play { stream, name } };
                self.encode(&next, out);
            }
            Fragment::Connect { app } => {
                let app = pick(&APPS, *app);
                let mut object = HashMap::new();
                object.insert("app".to_string(), string(app));
                object.insert("tcUrl".to_string(), string(&format!("rtmp://127.0.0.1/{app}")));
                object.insert("flashVer".to_string(), string("FMLE/3.0"));
                object.insert("objectEncoding".to_string(), Amf0Value::Number(0.0));
                self.transaction = 0.0;
                self.command(out, 0, "connect", Amf0Value::Object(object), Vec::new());
            }
            Fragment::CreateStream => self.command(out, 0, "createStream", Amf0Value::Null, Vec::new()),
            Fragment::Publish { stream, name } => {
                let arguments = vec![string(pick(&NAMES, *name)), string("live")];
                self.command(out, stream_id(*stream), "publish", Amf0Value::Null, arguments);
            }
            Fragment::Play { stream, name } => {
                let arguments = vec![string(pick(&NAMES, *name)), Amf0Value::Number(-1000.0)];
                self.command(out, stream_id(*stream), "play", Amf0Value::Null, arguments);
            }
            Fragment::Media { stream, frame, at, size } => {
                let timestamp = self.next_timestamp(*at);
                let (chunk_stream, _) = media_chunk_stream(frame.kind());
                let data = frame.body(*size);
                let message = match frame.kind() {
                    MediaKind::Audio => RtmpMessage::Audio { data },
                    _ => RtmpMessage::Video { data },
                };
                self.message(out, chunk_stream, stream_id(*stream), timestamp, message);
            }
            Fragment::Aggregate { stream, frames, at } => {
                let first = self.next_timestamp(*at);
                let mut body = Vec::new();
                for (index, frame) in frames.iter().take(8).enumerate() {
                    let data = frame.body(8);
                    let tag_type: u8 = if frame.kind() == MediaKind::Audio { 8 } else { 9 };
                    let timestamp = first.value().wrapping_add(index as u32 * 20);
                    let size = data.len() as u32;
                    body.push(tag_type);
                    body.extend_from_slice(&size.to_be_bytes()[1..]);
                    body.extend_from_slice(&timestamp.to_be_bytes()[1..]);
                    body.push((timestamp >> 24) as u8);
                    body.extend_from_slice(&[0, 0, 0]);
                    body.extend_from_slice(&data);
                    body.extend_from_slice(&(size + 11).to_be_bytes());
                }
                let message = RtmpMessage::Aggregate { data: Bytes::from(body) };
                self.message(out, 6, stream_id(*stream), first, message);
            }
            Fragment::Metadata { stream, size } => {
                let mut properties = HashMap::new();
                properties.insert("width".to_string(), Amf0Value::Number(320.0));
                properties.insert("videocodecid".to_string(), Amf0Value::Number(7.0));
                properties.insert("padding".to_string(), string(&"x".repeat(usize::from(*size) % 4096)));
                let values = vec![string("@setDataFrame"), string("onMetaData"), Amf0Value::Object(properties)];
                self.message(out, 5, stream_id(*stream), RtmpTimestamp::ZERO, RtmpMessage::data(values));
            }
            Fragment::Pause { stream, paused } => {
                let arguments = vec![Amf0Value::Boolean(*paused), Amf0Value::Number(0.0)];
                self.command(out, stream_id(*stream), "pause", Amf0Value::Null, arguments);
            }
            Fragment::Receive { stream, video, enabled } => {
                let name = if *video { "receiveVideo" } else { "receiveAudio" };
                self.command(out, stream_id(*stream), name, Amf0Value::Null, vec![Amf0Value::Boolean(*enabled)]);
            }
            Fragment::DeleteStream { stream } => {
                let arguments = vec![Amf0Value::Number(f64::from(stream_id(*stream)))];
                self.command(out, 0, "deleteStream", Amf0Value::Null, arguments);
            }
            Fragment::CloseStream { stream } => self.command(out, stream_id(*stream), "closeStream", Amf0Value::Null, Vec::new()),
            Fragment::FcUnpublish { name } => {
                self.command(out, 0, "FCUnpublish", Amf0Value::Null, vec![string(pick(&NAMES, *name))])
            }
            Fragment::SetChunkSize { size } => {
                // Valid sizes (128 and up) most of the time, invalid ones too.
                let size = u32::from(*size) * 4;
                self.message(out, 2, 0, RtmpTimestamp::ZERO, RtmpMessage::set_chunk_size(size));
                let _ = self.encoder.set_chunk_size(size);
            }
            Fragment::Abort { chunk_stream } => {
                let message = RtmpMessage::Abort { chunk_stream_id: u32::from(*chunk_stream) };
                self.message(out, 2, 0, RtmpTimestamp::ZERO, message);
            }
            Fragment::Acknowledgement { sequence } => {
                self.message(out, 2, 0, RtmpTimestamp::ZERO, RtmpMessage::acknowledgement(*sequence))
            }
            Fragment::WindowAck { size } => {
                self.message(out, 2, 0, RtmpTimestamp::ZERO, RtmpMessage::window_acknowledgement_size(*size))
            }
            Fragment::PingResponse { timestamp } => {
                let message = RtmpMessage::UserControl(UserControlEvent::PingResponse { timestamp: *timestamp });
                self.message(out, 2, 0, RtmpTimestamp::ZERO, message);
            }
            Fragment::SetBufferLength { stream, ms } => {
                let event = UserControlEvent::SetBufferLength { stream_id: stream_id(*stream), buffer_length_ms: u32::from(*ms) };
                self.message(out, 2, 0, RtmpTimestamp::ZERO, RtmpMessage::UserControl(event));
            }
            Fragment::UnknownCommand { name } => {
                let name = ["releaseStream", "FCPublish", "getStreamLength", "call", "onBWDone"][usize::from(*name) % 5];
                self.command(out, 0, name, Amf0Value::Null, vec![string("s")]);
            }
            Fragment::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// One HTTP request (or a piece of one) an API client sends.
#[derive(Arbitrary, Debug, Clone)]
pub enum HttpRequest {
    Get { path: u8, close: bool },
    Head { path: u8 },
    /// `DELETE /api/v1/clients/ID` for the connection in a client slot.
    Kick { slot: u8 },
    Reload,
    /// A head cut short: the rest never comes (or comes as raw bytes later).
    Partial { path: u8 },
    Raw(Vec<u8>),
    /// A WebSocket-FLV upgrade of a stream path (a good key, or a bad one).
    Upgrade { path: u8, good_key: bool },
    /// A WebSocket frame from the client: masked or not, with the opcode and a payload of
    /// this length (and the length field it claims).
    WsFrame { opcode: u8, masked: bool, length: u8, claimed: u16 },
}

const PATHS: [&str; 11] = [
    "/",
    "/healthz",
    "/metrics",
    "/api/v1/summary",
    "/api/v1/streams",
    "/api/v1/clients",
    "/nope",
    "/api/v1/clients/1",
    "/live/s.flv",
    "/live/s.flv?token=a",
    "/live/%zz.flv",
];

impl HttpRequest {
    /// The request's bytes; `kick_id` is the client id a `Kick` names.
    pub fn encode(&self, kick_id: Option<u64>, out: &mut BytesMut) {
        let head = |method: &str, path: &str, close: bool| {
            let connection = if close { "Connection: close\r\n" } else { "" };
            format!("{method} {path} HTTP/1.1\r\nHost: relay\r\n{connection}\r\n")
        };
        let text = match self {
            HttpRequest::Get { path, close } => head("GET", pick(&PATHS, *path), *close),
            HttpRequest::Head { path } => head("HEAD", pick(&PATHS, *path), false),
            HttpRequest::Kick { .. } => head("DELETE", &format!("/api/v1/clients/{}", kick_id.unwrap_or(0)), false),
            HttpRequest::Reload => head("POST", "/api/v1/reload", false),
            HttpRequest::Partial { path } => format!("GET {} HTTP/1.1\r\nHost: re", pick(&PATHS, *path)),
            HttpRequest::Raw(bytes) => {
                out.extend_from_slice(bytes);
                return;
            }
            HttpRequest::Upgrade { path, good_key } => {
                let key = if *good_key { "dGhlIHNhbXBsZSBub25jZQ==" } else { "c2hvcnQ=" };
                format!(
                    "GET {} HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    pick(&PATHS, *path)
                )
            }
            HttpRequest::WsFrame { opcode, masked, length, claimed } => {
                let length = usize::from(*length);
                out.extend_from_slice(&[0x80 | (opcode & 0x0F)]);
                let mask_bit = if *masked { 0x80 } else { 0 };
                if *claimed >= 126 {
                    out.extend_from_slice(&[mask_bit | 126]);
                    out.extend_from_slice(&claimed.to_be_bytes());
                } else {
                    out.extend_from_slice(&[mask_bit | (*claimed as u8)]);
                }
                if *masked {
                    out.extend_from_slice(&[1, 2, 3, 4]);
                }
                out.extend(std::iter::repeat_n(0x5A, length));
                return;
            }
        };
        out.extend_from_slice(text.as_bytes());
    }
}
