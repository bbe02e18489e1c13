//! User Control Message bodies (type 4, RTMP 1.0 section 7.1.7): a 16-bit event type, then
//! event data whose layout depends on the type.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::MessageError;
use super::{type_id, UserControlEvent};

/// User Control event type numbers.
pub mod event_type {
    /// Stream Begin.
    pub const STREAM_BEGIN: u16 = 0;
    /// Stream EOF.
    pub const STREAM_EOF: u16 = 1;
    /// Stream Dry.
    pub const STREAM_DRY: u16 = 2;
    /// Set Buffer Length.
    pub const SET_BUFFER_LENGTH: u16 = 3;
    /// Stream Is Recorded.
    pub const STREAM_IS_RECORDED: u16 = 4;
    /// Ping Request.
    pub const PING_REQUEST: u16 = 6;
    /// Ping Response.
    pub const PING_RESPONSE: u16 = 7;
}

impl UserControlEvent {
    /// The event type number carried on the wire.
    pub fn event_type(&self) -> u16 {
        match self {
            UserControlEvent::StreamBegin { .. } => event_type::STREAM_BEGIN,
            UserControlEvent::StreamEof { .. } => event_type::STREAM_EOF,
            UserControlEvent::StreamDry { .. } => event_type::STREAM_DRY,
            UserControlEvent::SetBufferLength { .. } => event_type::SET_BUFFER_LENGTH,
            UserControlEvent::StreamIsRecorded { .. } => event_type::STREAM_IS_RECORDED,
            UserControlEvent::PingRequest { .. } => event_type::PING_REQUEST,
            UserControlEvent::PingResponse { .. } => event_type::PING_RESPONSE,
            UserControlEvent::Unknown { event_type, .. } => *event_type,
        }
    }

    /// Decodes a User Control message body. Unknown event types are kept as
    /// [`UserControlEvent::Unknown`], with their data sliced (not copied) from `body`.
    pub fn decode(body: &Bytes) -> Result<UserControlEvent, MessageError> {
        let Some((&high, &low)) = body.first().zip(body.get(1)) else {
            return Err(MessageError::BodyTooShort {
                type_id: type_id::USER_CONTROL,
                needed: 2,
                actual: body.len(),
            });
        };
        let event_type = u16::from_be_bytes([high, low]);
        let data = body.get(2..).unwrap_or_default();
        let word = |index: usize| -> Result<u32, MessageError> {
            let needed = (index + 1) * 4;
            data.get(index * 4..needed)
                .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                .map(u32::from_be_bytes)
                .ok_or(MessageError::UserControlTooShort {
                    event_type,
                    needed,
                    actual: data.len(),
                })
        };
        Ok(match event_type {
            event_type::STREAM_BEGIN => UserControlEvent::StreamBegin {
                stream_id: word(0)?,
            },
            event_type::STREAM_EOF => UserControlEvent::StreamEof {
                stream_id: word(0)?,
            },
            event_type::STREAM_DRY => UserControlEvent::StreamDry {
                stream_id: word(0)?,
            },
            event_type::SET_BUFFER_LENGTH => UserControlEvent::SetBufferLength {
                stream_id: word(0)?,
                buffer_length_ms: word(1)?,
            },
            event_type::STREAM_IS_RECORDED => UserControlEvent::StreamIsRecorded {
                stream_id: word(0)?,
            },
            event_type::PING_REQUEST => UserControlEvent::PingRequest {
                timestamp: word(0)?,
            },
            event_type::PING_RESPONSE => UserControlEvent::PingResponse {
                timestamp: word(0)?,
            },
            _ => UserControlEvent::Unknown {
                event_type,
                data: body.slice(2..),
            },
        })
    }

    /// Encodes the event as a User Control message body.
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::with_capacity(10);
        body.put_u16(self.event_type());
        match self {
            UserControlEvent::StreamBegin { stream_id }
            | UserControlEvent::StreamEof { stream_id }
            | UserControlEvent::StreamDry { stream_id }
            | UserControlEvent::StreamIsRecorded { stream_id } => body.put_u32(*stream_id),
            UserControlEvent::SetBufferLength {
                stream_id,
                buffer_length_ms,
            } => {
                body.put_u32(*stream_id);
                body.put_u32(*buffer_length_ms);
            }
            UserControlEvent::PingRequest { timestamp }
            | UserControlEvent::PingResponse { timestamp } => body.put_u32(*timestamp),
            UserControlEvent::Unknown { data, .. } => body.extend_from_slice(data),
        }
        body.freeze()
    }
}
