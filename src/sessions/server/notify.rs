//! What a server tells a client without being asked: status messages, the user control
//! events that mark a stream's life (StreamBegin, StreamDry, StreamEOF), pings, and media.

use bytes::Bytes;

use super::{media_chunk_stream, ServerSession};
use crate::chunk_io::{csid, MessagePayload};
use crate::messages::RtmpMessage;
use crate::sessions::events::MediaKind;
use crate::sessions::status::{codes, status_object};
use crate::sessions::SessionError;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

impl ServerSession {
    /// Sends `onStatus` on a message stream.
    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) -> Result<(), SessionError> {
        let status = status_object(level, code, description);
        self.connection.send_command(stream_id, "onStatus", 0.0, Amf0Value::Null, vec![status])
    }

    /// Tells a player that the stream it waits for has started (PublishNotify + StreamBegin).
    pub fn notify_publish_started(&mut self, stream_id: u32, stream_name: &str) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::stream_begin(stream_id), 0)?;
        self.send_status(stream_id, "status", codes::PLAY_PUBLISH_NOTIFY, &format!("{stream_name} is now published."))
    }

    /// Tells a player that its stream's publisher left (UnpublishNotify). The player stays.
    pub fn notify_publish_stopped(&mut self, stream_id: u32, stream_name: &str) -> Result<(), SessionError> {
        self.send_status(stream_id, "status", codes::PLAY_UNPUBLISH_NOTIFY, &format!("{stream_name} is now unpublished."))
    }

    /// Sends the StreamBegin user control event alone: how nginx-rtmp tells players that a
    /// publisher (re)started, without an onStatus that some players take as a new stream.
    pub fn send_stream_begin(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::stream_begin(stream_id), 0)
    }

    /// Sends the StreamEOF user control event alone: the spec's "playback is over". GStreamer's
    /// rtmp2src ends on it; ffmpeg and librtmp do not.
    pub fn send_stream_eof(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::stream_eof(stream_id), 0)
    }

    /// Sends the StreamDry user control event alone: the spec's "no more data on the stream
    /// for now". A live publisher left and the player may stay for the next one: ffmpeg,
    /// librtmp and GStreamer's rtmp2src all carry on through it, where `UnpublishNotify`
    /// ends the first two and StreamEOF the third.
    pub fn send_stream_dry(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::stream_dry(stream_id), 0)
    }

    /// Tells a player the stream ended for good (Play.Stop + StreamEOF), e.g. at shutdown.
    pub fn send_stream_end(&mut self, stream_id: u32, stream_name: &str) -> Result<(), SessionError> {
        self.send_status(stream_id, "status", codes::PLAY_STOP, &format!("Stopped playing {stream_name}."))?;
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::stream_eof(stream_id), 0)
    }

    /// Sends a ping request; the answer arrives as
    /// [`ServerSessionEvent::PingResponseReceived`](crate::sessions::ServerSessionEvent::PingResponseReceived).
    pub fn send_ping_request(&mut self, timestamp: u32) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::ping_request(timestamp), 0)
    }

    /// Sends a message body to a player, encoded standalone on the media chunk stream for
    /// its kind (the same bytes a relay would share). Metadata goes as [`MediaKind::Data`]
    /// with the `onMetaData` body from [`StreamMetadata::raw`](crate::sessions::StreamMetadata).
    pub fn send_media(&mut self, stream_id: u32, kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes) -> Result<(), SessionError> {
        let (chunk_stream_id, type_id) = media_chunk_stream(kind);
        let payload = MessagePayload { timestamp, type_id, message_stream_id: stream_id, data };
        self.connection.send_standalone(chunk_stream_id, &payload)
    }
}
