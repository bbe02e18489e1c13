//! The chunk-level plumbing both session roles share: decoding input, encoding output,
//! acknowledgements and ping answers.

use bytes::{Bytes, BytesMut};

use super::SessionError;
use crate::chunk_io::{csid, ChunkDecoder, ChunkDecoderLimits, ChunkEncoder, MessagePayload};
use crate::messages::{PeerBandwidthLimitType, RtmpMessage, UserControlEvent};
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// What a protocol control message meant for the session above, when anything.
pub(super) enum ControlOutcome {
    /// Fully handled at this level (chunk size, window sizes, ping requests).
    Handled,
    /// The peer acknowledged this many bytes.
    Acknowledgement(u32),
    /// The peer answered our ping.
    PingResponse(u32),
    /// The peer sent a user control event the session may care about.
    UserControl(UserControlEvent),
    /// Not a protocol control message.
    NotControl(RtmpMessage),
}

/// Decoder, encoder and output buffer for one RTMP connection, plus the acknowledgement
/// bookkeeping both sides must do.
#[derive(Debug)]
pub(super) struct ChunkConnection {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    outbound: BytesMut,
    bytes_received: u64,
    bytes_acknowledged: u64,
    /// The window the peer asked for with Window Acknowledgement Size.
    peer_window: Option<u32>,
    /// The window we announce to the peer.
    own_window: u32,
    last_peer_bandwidth: Option<u32>,
}

impl ChunkConnection {
    pub fn new(limits: ChunkDecoderLimits, own_window: u32) -> Self {
        ChunkConnection {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            outbound: BytesMut::new(),
            bytes_received: 0,
            bytes_acknowledged: 0,
            peer_window: None,
            own_window,
            last_peer_bandwidth: None,
        }
    }

    pub fn set_decoder_limits(&mut self, limits: ChunkDecoderLimits) {
        self.decoder.set_limits(limits);
    }

    pub fn push_input(&mut self, bytes: &[u8]) {
        self.bytes_received = self.bytes_received.wrapping_add(bytes.len() as u64);
        self.decoder.push(bytes);
    }

    pub fn next_payload(&mut self) -> Result<Option<MessagePayload>, SessionError> {
        Ok(self.decoder.next_message()?)
    }

    pub fn outgoing_chunk_size(&self) -> u32 {
        self.encoder.chunk_size()
    }

    pub fn own_window(&self) -> u32 {
        self.own_window
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Sends an acknowledgement once a whole window has arrived since the last one.
    /// The sequence number is the byte count modulo 2^32, as the spec says.
    pub fn acknowledge_if_due(&mut self) -> Result<(), SessionError> {
        let Some(window) = self.peer_window else {
            return Ok(());
        };
        if window == 0 {
            return Ok(());
        }
        if self.bytes_received.wrapping_sub(self.bytes_acknowledged) >= u64::from(window) {
            self.bytes_acknowledged = self.bytes_received;
            let sequence_number = (self.bytes_received & 0xFFFF_FFFF) as u32;
            self.send(csid::PROTOCOL_CONTROL, RtmpMessage::acknowledgement(sequence_number), 0)?;
        }
        Ok(())
    }

    /// Handles what protocol control messages need at this level.
    pub fn handle_control(&mut self, message: RtmpMessage) -> Result<ControlOutcome, SessionError> {
        Ok(match message {
            // The decoder already applied SetChunkSize and Abort at the right byte.
            RtmpMessage::SetChunkSize { .. } | RtmpMessage::Abort { .. } => ControlOutcome::Handled,
            RtmpMessage::WindowAcknowledgementSize { size } => {
                self.peer_window = Some(size);
                ControlOutcome::Handled
            }
            RtmpMessage::SetPeerBandwidth { size, limit_type } => {
                // Answer a changed window with our Window Acknowledgement Size (RTMP 1.0 5.4.5).
                let changed = self.last_peer_bandwidth != Some(size);
                let applies = !matches!(limit_type, PeerBandwidthLimitType::Dynamic)
                    || self.last_peer_bandwidth.is_some();
                if changed && applies {
                    self.last_peer_bandwidth = Some(size);
                    let window = RtmpMessage::window_acknowledgement_size(self.own_window);
                    self.send(csid::PROTOCOL_CONTROL, window, 0)?;
                } else if self.last_peer_bandwidth.is_none() {
                    self.last_peer_bandwidth = Some(size);
                }
                ControlOutcome::Handled
            }
            RtmpMessage::Acknowledgement { sequence_number } => ControlOutcome::Acknowledgement(sequence_number),
            RtmpMessage::UserControl(UserControlEvent::PingRequest { timestamp }) => {
                self.send(csid::PROTOCOL_CONTROL, RtmpMessage::ping_response(timestamp), 0)?;
                ControlOutcome::Handled
            }
            RtmpMessage::UserControl(UserControlEvent::PingResponse { timestamp }) => {
                ControlOutcome::PingResponse(timestamp)
            }
            RtmpMessage::UserControl(event) => ControlOutcome::UserControl(event),
            other => ControlOutcome::NotControl(other),
        })
    }

    /// Encodes a message with header compression on `chunk_stream_id`.
    pub fn send(&mut self, chunk_stream_id: u32, message: RtmpMessage, message_stream_id: u32) -> Result<(), SessionError> {
        self.send_at(chunk_stream_id, message, RtmpTimestamp::ZERO, message_stream_id)
    }

    pub fn send_at(
        &mut self,
        chunk_stream_id: u32,
        message: RtmpMessage,
        timestamp: RtmpTimestamp,
        message_stream_id: u32,
    ) -> Result<(), SessionError> {
        let payload = message.into_payload(timestamp, message_stream_id)?;
        self.encoder.encode(chunk_stream_id, &payload, &mut self.outbound)?;
        Ok(())
    }

    /// Encodes an already-built payload with header compression.
    pub fn send_payload(&mut self, chunk_stream_id: u32, payload: &MessagePayload) -> Result<(), SessionError> {
        self.encoder.encode(chunk_stream_id, payload, &mut self.outbound)?;
        Ok(())
    }

    /// Encodes a payload standalone (fmt 0 first chunk), the same bytes a relay shares.
    pub fn send_standalone(&mut self, chunk_stream_id: u32, payload: &MessagePayload) -> Result<(), SessionError> {
        let chunk_size = self.encoder.chunk_size();
        ChunkEncoder::encode_standalone(chunk_stream_id, payload, chunk_size, &mut self.outbound)?;
        Ok(())
    }

    /// Sends an AMF0 command on the command chunk stream.
    pub fn send_command(
        &mut self,
        message_stream_id: u32,
        name: &str,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        let command = RtmpMessage::command(name, transaction_id, command_object, arguments);
        self.send(csid::COMMAND, command, message_stream_id)
    }

    /// Announces a new outgoing chunk size and switches to it.
    pub fn set_outgoing_chunk_size(&mut self, size: u32) -> Result<(), SessionError> {
        if size == self.encoder.chunk_size() {
            return Ok(());
        }
        self.send(csid::PROTOCOL_CONTROL, RtmpMessage::set_chunk_size(size), 0)?;
        self.encoder.set_chunk_size(size)?;
        Ok(())
    }

    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    pub fn take_outbound(&mut self) -> Bytes {
        self.outbound.split().freeze()
    }
}
