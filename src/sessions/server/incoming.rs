//! The client's messages, by type: media and data for a publishing stream, protocol
//! control, and commands (handed to [`commands`](super::commands)).

use bytes::Bytes;

use super::{ServerSession, MAX_DEFERRED_BYTES, MAX_DEFERRED_MESSAGES};
use crate::chunk_io::MessagePayload;
use crate::messages::{split_aggregate, type_id, RtmpMessage};
use crate::sessions::connection::ControlOutcome;
use crate::sessions::events::{MediaKind, ServerSessionEvent};
use crate::sessions::status::{codes, looks_like_metadata, read_metadata, status_object};
use crate::sessions::SessionError;
use crate::Amf0Value;

impl ServerSession {
    pub(super) fn handle_payload(&mut self, payload: MessagePayload) -> Result<(), SessionError> {
        if self.connect_requested && self.app.is_none() && payload.type_id >= type_id::AUDIO {
            return self.defer_until_connected(payload);
        }
        match payload.type_id {
            // Media skips RtmpMessage entirely: it is the hot path and needs no parsing here.
            type_id::AUDIO => self.media_received(payload, MediaKind::Audio),
            type_id::VIDEO => self.media_received(payload, MediaKind::Video),
            type_id::AGGREGATE => {
                for sub_message in split_aggregate(&payload) {
                    match sub_message {
                        Ok(sub_message) => self.handle_payload(sub_message)?,
                        Err(error) => {
                            self.ignore(type_id::AGGREGATE, format!("bad aggregate message: {error}"));
                            break;
                        }
                    }
                }
                Ok(())
            }
            _ => match RtmpMessage::decode(&payload) {
                Ok(message) => self.handle_message(payload, message),
                Err(error) => {
                    if payload.type_id == type_id::AMF0_COMMAND || payload.type_id == type_id::AMF3_COMMAND {
                        let status = status_object("error", codes::CALL_FAILED, "Malformed command.");
                        self.connection.send_command(0, "_error", 0.0, Amf0Value::Null, vec![status])?;
                    }
                    if payload.type_id == type_id::AMF0_DATA && looks_like_metadata(&payload.data) {
                        return self.data_received(&payload, &payload.data, &[]);
                    }
                    self.ignore(payload.type_id, error.to_string());
                    Ok(())
                }
            },
        }
    }

    /// Holds a message that arrived while `connect` awaits the application's answer.
    /// Only commands are held: media and data need a publishing stream, and no stream can
    /// publish before the connect is accepted, so they would be ignored when replayed. A
    /// peer that sends them anyway must not make the session hold megabytes for them.
    fn defer_until_connected(&mut self, payload: MessagePayload) -> Result<(), SessionError> {
        if !matches!(payload.type_id, type_id::AMF0_COMMAND | type_id::AMF3_COMMAND) {
            self.ignore(payload.type_id, "sent before connect was answered".to_string());
            return Ok(());
        }
        if self.deferred.len() >= MAX_DEFERRED_MESSAGES {
            return Err(SessionError::TooManyMessagesBeforeConnect { max: MAX_DEFERRED_MESSAGES });
        }
        let held: usize = self.deferred.iter().map(|deferred| deferred.data.len()).sum();
        if held.saturating_add(payload.data.len()) > MAX_DEFERRED_BYTES {
            return Err(SessionError::TooManyBytesBeforeConnect { max: MAX_DEFERRED_BYTES });
        }
        self.deferred.push_back(payload);
        Ok(())
    }

    fn handle_message(&mut self, payload: MessagePayload, message: RtmpMessage) -> Result<(), SessionError> {
        match self.connection.handle_control(message)? {
            ControlOutcome::Handled | ControlOutcome::UserControl(_) => Ok(()),
            ControlOutcome::Acknowledgement(sequence_number) => {
                self.events.push_back(ServerSessionEvent::AcknowledgementReceived { sequence_number });
                Ok(())
            }
            ControlOutcome::PingResponse(timestamp) => {
                self.events.push_back(ServerSessionEvent::PingResponseReceived { timestamp });
                Ok(())
            }
            ControlOutcome::NotControl(message) => match message {
                RtmpMessage::Amf0Command { name, transaction_id, command_object, arguments }
                | RtmpMessage::Amf3Command { name, transaction_id, command_object, arguments } => {
                    self.handle_command(payload.message_stream_id, name, transaction_id, command_object, arguments)
                }
                RtmpMessage::Amf0Data { values } => self.data_received(&payload, &payload.data, &values),
                RtmpMessage::Amf3Data { data } => match crate::messages::decode_amf0(&data) {
                    Ok(values) => self.data_received(&payload, &data, &values),
                    Err(error) => {
                        self.ignore(payload.type_id, error.to_string());
                        Ok(())
                    }
                },
                other => {
                    self.ignore(other.type_id(), "message type not handled by the server".to_string());
                    Ok(())
                }
            },
        }
    }

    fn media_received(&mut self, payload: MessagePayload, kind: MediaKind) -> Result<(), SessionError> {
        if !self.is_publishing(payload.message_stream_id) {
            self.ignore(payload.type_id, format!("media on stream {} which is not publishing", payload.message_stream_id));
            return Ok(());
        }
        self.events.push_back(ServerSessionEvent::MediaReceived {
            stream_id: payload.message_stream_id,
            kind,
            timestamp: payload.timestamp,
            data: payload.data,
        });
        Ok(())
    }

    fn data_received(&mut self, payload: &MessagePayload, body: &Bytes, values: &[Amf0Value]) -> Result<(), SessionError> {
        let stream_id = payload.message_stream_id;
        if !self.is_publishing(stream_id) {
            self.ignore(payload.type_id, format!("data on stream {stream_id} which is not publishing"));
            return Ok(());
        }
        if let Some(metadata) = read_metadata(body, values) {
            self.events.push_back(ServerSessionEvent::MetadataReceived { stream_id, timestamp: payload.timestamp, metadata });
            return Ok(());
        }
        if matches!(values.first(), Some(Amf0Value::Utf8String(name)) if name == "@clearDataFrame" || name == "|RtmpSampleAccess") {
            return Ok(());
        }
        self.events.push_back(ServerSessionEvent::MediaReceived {
            stream_id,
            kind: MediaKind::Data,
            timestamp: payload.timestamp,
            data: body.clone(),
        });
        Ok(())
    }
}
