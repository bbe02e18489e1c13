//! [`RtmpMessage`] -> [`MessagePayload`], and constructors for the messages sessions send.

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::encode_amf0_vec;
use super::error::MessageError;
use super::{type_id, PeerBandwidthLimitType, RtmpMessage, UserControlEvent};
use crate::chunk_io::{MessagePayload, MAX_CHUNK_SIZE};
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

impl RtmpMessage {
    /// The message type id this message is sent with.
    pub fn type_id(&self) -> u8 {
        match self {
            RtmpMessage::SetChunkSize { .. } => type_id::SET_CHUNK_SIZE,
            RtmpMessage::Abort { .. } => type_id::ABORT,
            RtmpMessage::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            RtmpMessage::UserControl(_) => type_id::USER_CONTROL,
            RtmpMessage::WindowAcknowledgementSize { .. } => type_id::WINDOW_ACKNOWLEDGEMENT_SIZE,
            RtmpMessage::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            RtmpMessage::Audio { .. } => type_id::AUDIO,
            RtmpMessage::Video { .. } => type_id::VIDEO,
            RtmpMessage::Amf0Data { .. } => type_id::AMF0_DATA,
            RtmpMessage::Amf0Command { .. } => type_id::AMF0_COMMAND,
            RtmpMessage::Amf3Data { .. } => type_id::AMF3_DATA,
            RtmpMessage::Amf3Command { .. } => type_id::AMF3_COMMAND,
            RtmpMessage::SharedObject { amf3: true, .. } => type_id::AMF3_SHARED_OBJECT,
            RtmpMessage::SharedObject { amf3: false, .. } => type_id::AMF0_SHARED_OBJECT,
            RtmpMessage::Aggregate { .. } => type_id::AGGREGATE,
            RtmpMessage::Unknown { type_id, .. } => *type_id,
        }
    }

    /// Encodes the message body. Opaque bodies (media, shared objects, aggregates, unknown)
    /// are returned as `Bytes` clones, without copying.
    pub fn encode_body(&self) -> Result<Bytes, MessageError> {
        Ok(match self {
            RtmpMessage::SetChunkSize { size } => {
                if *size == 0 || *size > MAX_CHUNK_SIZE {
                    return Err(MessageError::InvalidChunkSize { size: *size });
                }
                u32_body(*size)
            }
            RtmpMessage::Abort { chunk_stream_id } => u32_body(*chunk_stream_id),
            RtmpMessage::Acknowledgement { sequence_number } => u32_body(*sequence_number),
            RtmpMessage::UserControl(event) => event.encode(),
            RtmpMessage::WindowAcknowledgementSize { size } => u32_body(*size),
            RtmpMessage::SetPeerBandwidth { size, limit_type } => {
                let mut body = BytesMut::with_capacity(5);
                body.put_u32(*size);
                body.put_u8((*limit_type).into());
                body.freeze()
            }
            RtmpMessage::Audio { data }
            | RtmpMessage::Video { data }
            | RtmpMessage::SharedObject { data, .. }
            | RtmpMessage::Aggregate { data }
            | RtmpMessage::Unknown { data, .. } => data.clone(),
            RtmpMessage::Amf0Data { values } => Bytes::from(encode_amf0_vec(values)?),
            RtmpMessage::Amf0Command {
                name,
                transaction_id,
                command_object,
                arguments,
            } => Bytes::from(encode_command(
                name,
                *transaction_id,
                command_object,
                arguments,
            )?),
            RtmpMessage::Amf3Data { data } => {
                let mut body = BytesMut::with_capacity(1 + data.len());
                body.put_u8(0);
                body.extend_from_slice(data);
                body.freeze()
            }
            RtmpMessage::Amf3Command {
                name,
                transaction_id,
                command_object,
                arguments,
            } => {
                let mut body = vec![0u8];
                body.extend(encode_command(
                    name,
                    *transaction_id,
                    command_object,
                    arguments,
                )?);
                Bytes::from(body)
            }
        })
    }

    /// Encodes the message into a payload for the chunk layer.
    pub fn into_payload(
        self,
        timestamp: RtmpTimestamp,
        message_stream_id: u32,
    ) -> Result<MessagePayload, MessageError> {
        Ok(MessagePayload {
            timestamp,
            type_id: self.type_id(),
            message_stream_id,
            data: self.encode_body()?,
        })
    }

    /// An AMF0 command (type 20).
    pub fn command(
        name: impl Into<String>,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> RtmpMessage {
        RtmpMessage::Amf0Command {
            name: name.into(),
            transaction_id,
            command_object,
            arguments,
        }
    }

    /// An AMF0 data message (type 18), e.g. `onMetaData` or `|RtmpSampleAccess`.
    pub fn data(values: Vec<Amf0Value>) -> RtmpMessage {
        RtmpMessage::Amf0Data { values }
    }

    /// Set Chunk Size (checked when encoded: 1..=0x7FFFFFFF).
    pub fn set_chunk_size(size: u32) -> RtmpMessage {
        RtmpMessage::SetChunkSize { size }
    }

    /// Window Acknowledgement Size.
    pub fn window_acknowledgement_size(size: u32) -> RtmpMessage {
        RtmpMessage::WindowAcknowledgementSize { size }
    }

    /// Set Peer Bandwidth.
    pub fn set_peer_bandwidth(size: u32, limit_type: PeerBandwidthLimitType) -> RtmpMessage {
        RtmpMessage::SetPeerBandwidth { size, limit_type }
    }

    /// Acknowledgement of `sequence_number` bytes received (wrapping).
    pub fn acknowledgement(sequence_number: u32) -> RtmpMessage {
        RtmpMessage::Acknowledgement { sequence_number }
    }

    /// User Control Stream Begin.
    pub fn stream_begin(stream_id: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::StreamBegin { stream_id })
    }

    /// User Control Stream EOF.
    pub fn stream_eof(stream_id: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::StreamEof { stream_id })
    }

    /// User Control Stream Dry.
    pub fn stream_dry(stream_id: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::StreamDry { stream_id })
    }

    /// User Control Stream Is Recorded.
    pub fn stream_is_recorded(stream_id: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::StreamIsRecorded { stream_id })
    }

    /// User Control Set Buffer Length.
    pub fn set_buffer_length(stream_id: u32, buffer_length_ms: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::SetBufferLength {
            stream_id,
            buffer_length_ms,
        })
    }

    /// User Control Ping Request.
    pub fn ping_request(timestamp: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::PingRequest { timestamp })
    }

    /// User Control Ping Response: echo the request's timestamp.
    pub fn ping_response(timestamp: u32) -> RtmpMessage {
        RtmpMessage::UserControl(UserControlEvent::PingResponse { timestamp })
    }
}

fn u32_body(value: u32) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes())
}

fn encode_command(
    name: &str,
    transaction_id: f64,
    command_object: &Amf0Value,
    arguments: &[Amf0Value],
) -> Result<Vec<u8>, MessageError> {
    // rml_amf0 serializes from a Vec of owned values; commands are small and rare, so the
    // clones cost nothing that matters.
    let mut values = Vec::with_capacity(3 + arguments.len());
    values.push(Amf0Value::Utf8String(name.to_owned()));
    values.push(Amf0Value::Number(transaction_id));
    values.push(command_object.clone());
    values.extend_from_slice(arguments);
    encode_amf0_vec(&values)
}
