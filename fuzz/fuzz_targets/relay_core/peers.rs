//! The far ends of the relay's connections: an origin server for each upstream connection,
//! and a reader that checks every byte the relay sends a client is well-formed RTMP.

use arbitrary::Arbitrary;
use bytes::{Buf, Bytes};
use rtmp_edge::chunk_io::{ChunkDecoder, ChunkDecoderLimits};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole, PACKET_LEN};
use rtmp_edge::messages::{type_id, RtmpMessage};
use rtmp_edge::sessions::{codes, ServerSession, ServerSessionConfig, ServerSessionEvent};
use rtmp_edge::time::RtmpTimestamp;

use crate::wire::{Frame, Timestamp};

/// What the origin behind an upstream connection does next.
#[derive(Arbitrary, Debug, Clone)]
pub enum OriginOp {
    /// The TCP connect the relay asked for completed.
    Connected,
    /// The host name resolved (to 127.0.0.1), or failed to.
    Resolved { ok: bool },
    /// The origin reads what the relay sent and answers; it accepts requests if `accept`.
    Exchange { accept: bool },
    /// Media on the stream the origin serves.
    Media { frame: Frame, at: Timestamp, size: u8 },
    /// A status the origin sends on its play stream (Play.Stop, UnpublishNotify...).
    Status { code: u8 },
    /// StreamEOF / StreamDry / StreamBegin.
    StreamEvent { which: u8 },
    Raw(Vec<u8>),
}

const STATUS_CODES: [&str; 6] = [
    codes::PLAY_STOP,
    codes::PLAY_UNPUBLISH_NOTIFY,
    codes::PLAY_PUBLISH_NOTIFY,
    codes::PLAY_START,
    codes::PLAY_STREAM_NOT_FOUND,
    codes::PUBLISH_BAD_NAME,
];

/// An origin server run by the library's own handshake and server session.
pub struct Origin {
    handshake: Option<Handshake>,
    session: ServerSession,
    /// The message stream the relay plays (or publishes) on, once it asked.
    stream: Option<u32>,
    timestamp: u32,
}

impl Origin {
    pub fn new() -> Origin {
        Origin {
            handshake: Some(Handshake::with_random(HandshakeRole::Server, 0, [7; rtmp_edge::handshake::RANDOM_LEN])),
            session: ServerSession::new(ServerSessionConfig::default()),
            stream: None,
            timestamp: 0,
        }
    }

    /// Takes what the relay wrote; returns the origin's answer. The relay's own client
    /// session wrote those bytes, so anything the origin cannot parse is a relay bug.
    pub fn exchange(&mut self, mut input: Bytes, accept: bool) -> Bytes {
        let mut answer = Vec::new();
        if let Some(handshake) = &mut self.handshake {
            match handshake.process(&input) {
                Ok(HandshakeProgress::InProgress { response }) => return response,
                Ok(HandshakeProgress::Completed { response, remaining }) => {
                    answer.extend_from_slice(&response);
                    input = remaining;
                    self.handshake = None;
                }
                Err(error) => panic!("the relay's upstream handshake is not RTMP: {error}"),
            }
        }
        if let Err(error) = self.session.handle_input(&input) {
            panic!("the relay's upstream sent what a server cannot parse: {error}");
        }
        while let Some(event) = self.session.poll_event() {
            let request = match event {
                ServerSessionEvent::ConnectionRequested { request_id, .. } => Some(request_id),
                ServerSessionEvent::PlayRequested { request_id, stream_id, .. }
                | ServerSessionEvent::PublishRequested { request_id, stream_id, .. } => {
                    self.stream = Some(stream_id);
                    Some(request_id)
                }
                _ => None,
            };
            if let (Some(request_id), true) = (request, accept) {
                // Accepting can fail when the request went away meanwhile: an answer, not a bug.
                let _ = self.session.accept_request(request_id);
            }
        }
        answer.extend_from_slice(&self.session.take_outbound());
        Bytes::from(answer)
    }

    /// The origin's own messages (media, statuses): what it may send, whatever the relay did.
    pub fn send(&mut self, op: &OriginOp) -> Bytes {
        let stream = self.stream.unwrap_or(1);
        let _ = match op {
            OriginOp::Media { frame, at, size } => {
                self.timestamp = match at {
                    Timestamp::After(step) => self.timestamp.wrapping_add(u32::from(*step) * 8),
                    Timestamp::At(value) => *value,
                };
                let timestamp = RtmpTimestamp::new(self.timestamp);
                self.session.send_media(stream, frame.kind(), timestamp, frame.body(*size))
            }
            OriginOp::Status { code } => {
                let code = STATUS_CODES[usize::from(*code) % STATUS_CODES.len()];
                self.session.send_status(stream, "status", code, "origin says")
            }
            OriginOp::StreamEvent { which } => match which % 3 {
                0 => self.session.send_stream_eof(stream),
                1 => self.session.send_stream_dry(stream),
                _ => self.session.send_stream_begin(stream),
            },
            _ => Ok(()),
        };
        if self.handshake.is_some() {
            return Bytes::new();
        }
        self.session.take_outbound()
    }
}

/// Reads what the relay sends one RTMP client: S0+S1+S2, then chunks that must decode into
/// messages that decode, at the chunk sizes the relay announced.
pub struct OutputCheck {
    handshake_left: usize,
    decoder: ChunkDecoder,
}

impl OutputCheck {
    pub fn new() -> OutputCheck {
        let limits = ChunkDecoderLimits {
            max_message_length: 16 * 1024 * 1024,
            max_partial_bytes: 64 * 1024 * 1024,
            ..ChunkDecoderLimits::default()
        };
        OutputCheck { handshake_left: 1 + 2 * PACKET_LEN, decoder: ChunkDecoder::new(limits) }
    }

    pub fn read(&mut self, mut bytes: Bytes) {
        let skip = self.handshake_left.min(bytes.len());
        if skip > 0 && self.handshake_left == 1 + 2 * PACKET_LEN {
            assert_eq!(bytes[0], 3, "the relay's S0 is not version 3");
        }
        bytes.advance(skip);
        self.handshake_left -= skip;
        self.decoder.push(&bytes);
        loop {
            match self.decoder.next_message() {
                Ok(Some(payload)) => {
                    let message = RtmpMessage::decode(&payload)
                        .unwrap_or_else(|error| panic!("the relay sent a message that does not decode: {error}: {payload:?}"));
                    if payload.type_id == type_id::SET_CHUNK_SIZE {
                        if let RtmpMessage::SetChunkSize { size } = message {
                            self.decoder.set_chunk_size(size).expect("the relay announced a valid chunk size");
                        }
                    }
                }
                Ok(None) => break,
                Err(error) => panic!("the relay sent chunks that do not decode: {error}"),
            }
        }
    }
}
