//! [`MessagePayload`] -> [`RtmpMessage`].

use bytes::Bytes;

use super::amf0::decode_amf0;
use super::error::MessageError;
use super::{type_id, PeerBandwidthLimitType, RtmpMessage, UserControlEvent};
use crate::chunk_io::{MessagePayload, MAX_CHUNK_SIZE};
use crate::Amf0Value;

impl RtmpMessage {
    /// Decodes a message by its type id.
    ///
    /// Media, shared object, aggregate, AMF3 data and unknown bodies are `Bytes` clones or
    /// slices of `payload.data`: nothing is copied. Protocol control bodies longer than their
    /// fields are accepted and the extra bytes ignored.
    pub fn decode(payload: &MessagePayload) -> Result<RtmpMessage, MessageError> {
        let body = &payload.data;
        let id = payload.type_id;
        Ok(match id {
            type_id::SET_CHUNK_SIZE => {
                let size = read_u32(id, body)?;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(MessageError::InvalidChunkSize { size });
                }
                RtmpMessage::SetChunkSize { size }
            }
            type_id::ABORT => RtmpMessage::Abort {
                chunk_stream_id: read_u32(id, body)?,
            },
            type_id::ACKNOWLEDGEMENT => RtmpMessage::Acknowledgement {
                sequence_number: read_u32(id, body)?,
            },
            type_id::USER_CONTROL => RtmpMessage::UserControl(UserControlEvent::decode(body)?),
            type_id::WINDOW_ACKNOWLEDGEMENT_SIZE => RtmpMessage::WindowAcknowledgementSize {
                size: read_u32(id, body)?,
            },
            type_id::SET_PEER_BANDWIDTH => {
                let size = read_u32(id, body)?;
                let limit_type = body.get(4).copied().ok_or(MessageError::BodyTooShort {
                    type_id: id,
                    needed: 5,
                    actual: body.len(),
                })?;
                RtmpMessage::SetPeerBandwidth {
                    size,
                    limit_type: limit_type.into(),
                }
            }
            type_id::AUDIO => RtmpMessage::Audio { data: body.clone() },
            type_id::VIDEO => RtmpMessage::Video { data: body.clone() },
            type_id::AMF3_DATA => RtmpMessage::Amf3Data {
                data: after_format_byte(id, body)?,
            },
            type_id::AMF3_SHARED_OBJECT => RtmpMessage::SharedObject {
                amf3: true,
                data: body.clone(),
            },
            type_id::AMF3_COMMAND => {
                let command = decode_command(&after_format_byte(id, body)?)?;
                RtmpMessage::Amf3Command {
                    name: command.name,
                    transaction_id: command.transaction_id,
                    command_object: command.command_object,
                    arguments: command.arguments,
                }
            }
            type_id::AMF0_DATA => RtmpMessage::Amf0Data {
                values: decode_amf0(body)?,
            },
            type_id::AMF0_SHARED_OBJECT => RtmpMessage::SharedObject {
                amf3: false,
                data: body.clone(),
            },
            type_id::AMF0_COMMAND => {
                let command = decode_command(body)?;
                RtmpMessage::Amf0Command {
                    name: command.name,
                    transaction_id: command.transaction_id,
                    command_object: command.command_object,
                    arguments: command.arguments,
                }
            }
            type_id::AGGREGATE => RtmpMessage::Aggregate { data: body.clone() },
            other => RtmpMessage::Unknown {
                type_id: other,
                data: body.clone(),
            },
        })
    }
}

impl From<u8> for PeerBandwidthLimitType {
    fn from(limit_type: u8) -> Self {
        match limit_type {
            0 => PeerBandwidthLimitType::Hard,
            1 => PeerBandwidthLimitType::Soft,
            2 => PeerBandwidthLimitType::Dynamic,
            other => PeerBandwidthLimitType::Other(other),
        }
    }
}

impl From<PeerBandwidthLimitType> for u8 {
    fn from(limit_type: PeerBandwidthLimitType) -> u8 {
        match limit_type {
            PeerBandwidthLimitType::Hard => 0,
            PeerBandwidthLimitType::Soft => 1,
            PeerBandwidthLimitType::Dynamic => 2,
            PeerBandwidthLimitType::Other(other) => other,
        }
    }
}

/// The first four bytes of a protocol control body, big-endian.
fn read_u32(id: u8, body: &[u8]) -> Result<u32, MessageError> {
    body.get(..4)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_be_bytes)
        .ok_or(MessageError::BodyTooShort {
            type_id: id,
            needed: 4,
            actual: body.len(),
        })
}

/// The body of a type 15 or 17 message after its 0x00 format byte, sliced without copying.
fn after_format_byte(id: u8, body: &Bytes) -> Result<Bytes, MessageError> {
    match body.first() {
        None => Err(MessageError::BodyTooShort {
            type_id: id,
            needed: 1,
            actual: 0,
        }),
        Some(0) => Ok(body.slice(1..)),
        Some(&format) => Err(MessageError::UnexpectedAmf3Format {
            type_id: id,
            format,
        }),
    }
}

struct Command {
    name: String,
    transaction_id: f64,
    command_object: Amf0Value,
    arguments: Vec<Amf0Value>,
}

/// Name, transaction id, command object (Null when absent), then the arguments.
fn decode_command(amf0: &[u8]) -> Result<Command, MessageError> {
    let mut values = decode_amf0(amf0)?.into_iter();
    let Some(Amf0Value::Utf8String(name)) = values.next() else {
        return Err(MessageError::MissingCommandName);
    };
    let Some(Amf0Value::Number(transaction_id)) = values.next() else {
        return Err(MessageError::MissingTransactionId { name });
    };
    let command_object = values.next().unwrap_or(Amf0Value::Null);
    Ok(Command {
        name,
        transaction_id,
        command_object,
        arguments: values.collect(),
    })
}

/// The AMF0 string `"@setDataFrame"` as it starts a data message body.
const SET_DATA_FRAME_PREFIX: &[u8] = b"\x02\x00\x0D@setDataFrame";

/// For a type 18 body that starts with `@setDataFrame`, the rest of the body (usually
/// `"onMetaData", ECMA array`), sliced without copying; `None` otherwise.
///
/// Publishers send `@setDataFrame("onMetaData", ...)`; players expect `onMetaData(...)`. Slicing
/// the original bytes keeps the ECMA array and its property order exactly as the publisher
/// wrote them, which decoding and re-encoding (through a `HashMap`, as an object) would not.
pub fn strip_set_data_frame(body: &Bytes) -> Option<Bytes> {
    body.starts_with(SET_DATA_FRAME_PREFIX)
        .then(|| body.slice(SET_DATA_FRAME_PREFIX.len()..))
}
