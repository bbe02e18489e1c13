//! The server side of an RTMP connection: answers a publisher's or player's commands.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::capabilities::EnhancedCapabilities;
use super::connection::{ChunkConnection, ControlOutcome};
use super::events::{ConnectRequest, MediaKind, PublishMode, ServerSessionEvent};
use super::status::{as_bool, as_number, as_string, codes, read_metadata, looks_like_metadata, status_object, string_property};
use super::SessionError;
use crate::chunk_io::{csid, ChunkDecoderLimits, MessagePayload};
use crate::messages::{split_aggregate, type_id, PeerBandwidthLimitType, RtmpMessage};
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// How a [`ServerSession`] presents itself and what it accepts.
#[derive(Clone, Debug)]
pub struct ServerSessionConfig {
    /// Chunk size for everything the server sends (announced on connect).
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to the client.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth announced to the client.
    pub peer_bandwidth: u32,
    /// Limits on what the client may make the decoder hold.
    pub limits: ChunkDecoderLimits,
    /// Most message streams (createStream) one connection may open.
    pub max_streams: u32,
    /// `fmsVer` reported in the connect result.
    pub fms_version: String,
    /// Enhanced RTMP support stated in the connect result, to clients that announced any
    /// (legacy clients get the legacy result, byte for byte). `None` states nothing.
    pub enhanced_rtmp: Option<EnhancedCapabilities>,
}

impl Default for ServerSessionConfig {
    fn default() -> Self {
        ServerSessionConfig {
            chunk_size: 4096,
            window_ack_size: 5_000_000,
            peer_bandwidth: 5_000_000,
            limits: ChunkDecoderLimits::default(),
            max_streams: 16,
            fms_version: "FMS/3,5,7,7009".to_string(),
            enhanced_rtmp: Some(EnhancedCapabilities::forwarder()),
        }
    }
}

#[derive(Debug)]
enum PendingRequest {
    Connect { transaction_id: f64, object_encoding: f64, app: String },
    Publish { stream_id: u32, stream_name: String },
    Play { stream_id: u32, stream_name: String, reset: bool },
}

#[derive(Clone, Debug, PartialEq)]
enum StreamRole {
    Idle,
    Publishing(String),
    Playing(String),
}

#[derive(Debug)]
struct MessageStream {
    id: u32,
    role: StreamRole,
}

/// The server half of an RTMP session (after the handshake).
///
/// Feed the client's bytes to [`handle_input`](Self::handle_input), then drain
/// [`poll_event`](Self::poll_event) and [`take_outbound`](Self::take_outbound). Connect,
/// publish and play requests wait for [`accept_request`](Self::accept_request) or
/// [`reject_request`](Self::reject_request). See the [module docs](super) for a full example.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerSessionConfig,
    connection: ChunkConnection,
    events: VecDeque<ServerSessionEvent>,
    app: Option<String>,
    peer_capabilities: Option<EnhancedCapabilities>,
    connect_requested: bool,
    pending: Vec<(u32, PendingRequest)>,
    next_request_id: u32,
    streams: Vec<MessageStream>,
    next_stream_id: u32,
    /// Messages that arrived while `connect` awaited the application's answer: clients may
    /// send createStream/publish without waiting, and those must run after the accept.
    deferred: VecDeque<MessagePayload>,
}

/// Most messages held while a connect request is undecided.
const MAX_DEFERRED_MESSAGES: usize = 64;

impl ServerSession {
    /// A session that has not yet seen `connect`.
    pub fn new(config: ServerSessionConfig) -> Self {
        let connection = ChunkConnection::new(config.limits.clone(), config.window_ack_size);
        ServerSession {
            config,
            connection,
            events: VecDeque::new(),
            app: None,
            peer_capabilities: None,
            connect_requested: false,
            pending: Vec::new(),
            next_request_id: 1,
            streams: Vec::new(),
            next_stream_id: 1,
            deferred: VecDeque::new(),
        }
    }

    /// Processes bytes from the client. Events and output accumulate until drained.
    ///
    /// An error means the client broke the protocol in a way the session cannot recover
    /// from (the chunk stream is out of sync, or a limit was passed): close the connection.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.connection.push_input(bytes);
        while let Some(payload) = self.connection.next_payload()? {
            self.handle_payload(payload)?;
        }
        self.connection.acknowledge_if_due()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerSessionEvent> {
        self.events.pop_front()
    }

    /// Bytes to send to the client (empty when there are none).
    pub fn take_outbound(&mut self) -> Bytes {
        self.connection.take_outbound()
    }

    /// Whether [`take_outbound`](Self::take_outbound) has bytes to give.
    pub fn has_outbound(&self) -> bool {
        self.connection.has_outbound()
    }

    /// The chunk size the server sends with. Frames encoded elsewhere with
    /// [`ChunkEncoder::encode_standalone`](crate::chunk_io::ChunkEncoder::encode_standalone)
    /// at this size and on the [`csid`] media ids can be written to this client directly.
    pub fn outgoing_chunk_size(&self) -> u32 {
        self.connection.outgoing_chunk_size()
    }

    /// Bytes received from the client so far.
    pub fn bytes_received(&self) -> u64 {
        self.connection.bytes_received()
    }

    /// The application the client connected to, once accepted.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// What the client announced about Enhanced RTMP in `connect` (`fourCcList`,
    /// `videoFourCcInfoMap`, `audioFourCcInfoMap`, `capsEx`); `None` for a client that
    /// announced none of them, which gets every stream passed through as it is.
    pub fn peer_capabilities(&self) -> Option<&EnhancedCapabilities> {
        self.peer_capabilities.as_ref()
    }

    /// Accepts a pending connect, publish or play request.
    pub fn accept_request(&mut self, request_id: u32) -> Result<(), SessionError> {
        match self.take_pending(request_id)? {
            PendingRequest::Connect { transaction_id, object_encoding, app } => {
                self.app = Some(app);
                let window = RtmpMessage::window_acknowledgement_size(self.config.window_ack_size);
                self.connection.send(csid::PROTOCOL_CONTROL, window, 0)?;
                let bandwidth =
                    RtmpMessage::set_peer_bandwidth(self.config.peer_bandwidth, PeerBandwidthLimitType::Dynamic);
                self.connection.send(csid::PROTOCOL_CONTROL, bandwidth, 0)?;
                self.connection.set_outgoing_chunk_size(self.config.chunk_size)?;
                let mut properties = HashMap::new();
                properties.insert("fmsVer".to_string(), Amf0Value::Utf8String(self.config.fms_version.clone()));
                properties.insert("capabilities".to_string(), Amf0Value::Number(31.0));
                properties.insert("mode".to_string(), Amf0Value::Number(1.0));
                if let (Some(_), Some(own)) = (&self.peer_capabilities, &self.config.enhanced_rtmp) {
                    own.write_into(&mut properties);
                }
                let mut status = status_object("status", codes::CONNECT_SUCCESS, "Connection succeeded.");
                if let Amf0Value::Object(fields) = &mut status {
                    fields.insert("objectEncoding".to_string(), Amf0Value::Number(object_encoding));
                }
                self.connection.send_command(0, "_result", transaction_id, Amf0Value::Object(properties), vec![status])?;
                while let Some(payload) = self.deferred.pop_front() {
                    self.handle_payload(payload)?;
                }
                Ok(())
            }
            PendingRequest::Publish { stream_id, stream_name } => {
                let description = format!("{stream_name} is now published.");
                self.set_role(stream_id, StreamRole::Publishing(stream_name));
                self.send_status(stream_id, "status", codes::PUBLISH_START, &description)
            }
            PendingRequest::Play { stream_id, stream_name, reset } => self.start_play(stream_id, stream_name, reset, true),
        }
    }

    /// Accepts a pending play for a stream that has no publisher yet, and tells the player
    /// it waits: the same replies as [`accept_request`](Self::accept_request) (Play.Reset,
    /// Play.Start, `|RtmpSampleAccess`) without StreamBegin, as nginx-rtmp answers a play
    /// of an idle stream. Our [`ClientSession`](super::ClientSession) reports
    /// [`WaitingForPublisher`](super::ClientSessionEvent::WaitingForPublisher); ffmpeg,
    /// rtmpdump and GStreamer simply wait. Call
    /// [`notify_publish_started`](Self::notify_publish_started), which sends the
    /// StreamBegin, when the publisher arrives.
    ///
    /// A request that is not a play is left pending and refused with
    /// [`SessionError::WrongRequestKind`].
    pub fn accept_play_waiting(&mut self, request_id: u32) -> Result<(), SessionError> {
        match self.pending.iter().find(|(id, _)| *id == request_id) {
            Some((_, PendingRequest::Play { .. })) => {}
            Some(_) => return Err(SessionError::WrongRequestKind(request_id)),
            None => return Err(SessionError::UnknownRequest(request_id)),
        }
        match self.take_pending(request_id)? {
            PendingRequest::Play { stream_id, stream_name, reset } => self.start_play(stream_id, stream_name, reset, false),
            _ => Err(SessionError::WrongRequestKind(request_id)),
        }
    }

    fn start_play(&mut self, stream_id: u32, stream_name: String, reset: bool, begin: bool) -> Result<(), SessionError> {
        if begin {
            self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::stream_begin(stream_id), 0)?;
        }
        if reset {
            self.send_status(stream_id, "status", codes::PLAY_RESET, &format!("Playing and resetting {stream_name}."))?;
        }
        self.send_status(stream_id, "status", codes::PLAY_START, &format!("Started playing {stream_name}."))?;
        let access = RtmpMessage::data(vec![
            Amf0Value::Utf8String("|RtmpSampleAccess".to_string()),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ]);
        let payload = access.into_payload(RtmpTimestamp::ZERO, stream_id)?;
        self.connection.send_standalone(csid::DATA, &payload)?;
        self.set_role(stream_id, StreamRole::Playing(stream_name));
        Ok(())
    }

    /// Rejects a pending request with the usual code for its kind
    /// (Connect.Rejected, Publish.BadName, Play.StreamNotFound).
    pub fn reject_request(&mut self, request_id: u32, description: &str) -> Result<(), SessionError> {
        let code = match self.pending.iter().find(|(id, _)| *id == request_id) {
            Some((_, PendingRequest::Connect { .. })) => codes::CONNECT_REJECTED,
            Some((_, PendingRequest::Publish { .. })) => codes::PUBLISH_BAD_NAME,
            Some((_, PendingRequest::Play { .. })) => codes::PLAY_STREAM_NOT_FOUND,
            None => return Err(SessionError::UnknownRequest(request_id)),
        };
        self.reject_request_with_code(request_id, code, description)
    }

    /// Rejects a pending request with a specific status code.
    pub fn reject_request_with_code(&mut self, request_id: u32, code: &str, description: &str) -> Result<(), SessionError> {
        match self.take_pending(request_id)? {
            PendingRequest::Connect { transaction_id, .. } => {
                self.connect_requested = false;
                self.deferred.clear();
                let status = status_object("error", code, description);
                self.connection.send_command(0, "_error", transaction_id, Amf0Value::Null, vec![status])
            }
            PendingRequest::Publish { stream_id, .. } | PendingRequest::Play { stream_id, .. } => {
                self.send_status(stream_id, "error", code, description)
            }
        }
    }

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
    /// [`ServerSessionEvent::PingResponseReceived`].
    pub fn send_ping_request(&mut self, timestamp: u32) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::ping_request(timestamp), 0)
    }

    /// Sends a message body to a player, encoded standalone on the media chunk stream for
    /// its kind (the same bytes a relay would share). Metadata goes as [`MediaKind::Data`]
    /// with the `onMetaData` body from [`StreamMetadata::raw`](super::StreamMetadata).
    pub fn send_media(&mut self, stream_id: u32, kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes) -> Result<(), SessionError> {
        let (chunk_stream_id, type_id) = media_chunk_stream(kind);
        let payload = MessagePayload { timestamp, type_id, message_stream_id: stream_id, data };
        self.connection.send_standalone(chunk_stream_id, &payload)
    }

    fn take_pending(&mut self, request_id: u32) -> Result<PendingRequest, SessionError> {
        let index = self
            .pending
            .iter()
            .position(|(id, _)| *id == request_id)
            .ok_or(SessionError::UnknownRequest(request_id))?;
        Ok(self.pending.swap_remove(index).1)
    }

    fn add_pending(&mut self, request: PendingRequest) -> u32 {
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        self.pending.push((request_id, request));
        request_id
    }

    fn set_role(&mut self, stream_id: u32, role: StreamRole) {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.id == stream_id) {
            stream.role = role;
        }
    }

    fn handle_payload(&mut self, payload: MessagePayload) -> Result<(), SessionError> {
        if self.connect_requested && self.app.is_none() && payload.type_id >= type_id::AUDIO {
            if self.deferred.len() >= MAX_DEFERRED_MESSAGES {
                return Err(SessionError::TooManyMessagesBeforeConnect { max: MAX_DEFERRED_MESSAGES });
            }
            self.deferred.push_back(payload);
            return Ok(());
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

    fn handle_command(
        &mut self,
        stream_id: u32,
        name: String,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        if name != "connect" && self.app.is_none() && !matches!(name.as_str(), "_result" | "_error" | "onStatus") {
            return self.call_failed(transaction_id, "Not connected.");
        }
        match name.as_str() {
            "connect" => self.connect_command(transaction_id, command_object, arguments),
            "createStream" => self.create_stream(transaction_id),
            "releaseStream" | "getStreamLength" | "_checkbw" => {
                let result = if name == "getStreamLength" { Amf0Value::Number(0.0) } else { Amf0Value::Undefined };
                self.connection.send_command(0, "_result", transaction_id, Amf0Value::Null, vec![result])
            }
            "FCPublish" => {
                let stream_name = as_string(arguments.first()).unwrap_or_default().to_string();
                let status = status_object("status", codes::PUBLISH_START, &stream_name);
                self.connection.send_command(0, "onFCPublish", 0.0, Amf0Value::Null, vec![status])
            }
            "FCUnpublish" => {
                let stream_name = as_string(arguments.first()).unwrap_or_default().to_string();
                let publishing = self
                    .streams
                    .iter()
                    .find(|s| s.role == StreamRole::Publishing(stream_name.clone()))
                    .map(|s| s.id);
                if let Some(id) = publishing {
                    self.finish_stream(id);
                }
                let status = status_object("status", codes::UNPUBLISH_SUCCESS, &stream_name);
                self.connection.send_command(0, "onFCUnpublish", 0.0, Amf0Value::Null, vec![status])?;
                if transaction_id != 0.0 {
                    self.connection.send_command(0, "_result", transaction_id, Amf0Value::Null, vec![Amf0Value::Undefined])?;
                }
                Ok(())
            }
            "deleteStream" => {
                if let Some(id) = as_number(arguments.first()).and_then(stream_id_from_number) {
                    self.finish_stream(id);
                    self.streams.retain(|s| s.id != id);
                }
                Ok(())
            }
            "closeStream" => {
                self.finish_stream(stream_id);
                Ok(())
            }
            "publish" => self.publish_command(stream_id, arguments),
            "play" => self.play_command(stream_id, arguments),
            "pause" | "pauseRaw" => {
                let paused = as_bool(arguments.first()).unwrap_or(false);
                let position_ms = as_number(arguments.get(1)).unwrap_or(0.0);
                let (code, text) = if paused { (codes::PAUSE_NOTIFY, "Paused.") } else { (codes::UNPAUSE_NOTIFY, "Unpaused.") };
                self.send_status(stream_id, "status", code, text)?;
                self.events.push_back(ServerSessionEvent::PauseChanged { stream_id, paused, position_ms });
                Ok(())
            }
            "receiveAudio" | "receiveVideo" => {
                let kind = if name == "receiveAudio" { MediaKind::Audio } else { MediaKind::Video };
                let enabled = as_bool(arguments.first()).unwrap_or(true);
                self.events.push_back(ServerSessionEvent::ReceiveChanged { stream_id, kind, enabled });
                Ok(())
            }
            // Answers to our own calls (ping-like _result, onBWDone echoes): nothing to do.
            "_result" | "_error" | "onStatus" | "onBWDone" => Ok(()),
            _ => {
                self.events.push_back(ServerSessionEvent::UnhandledCommand {
                    stream_id,
                    name,
                    transaction_id,
                    command_object,
                    arguments,
                });
                Ok(())
            }
        }
    }

    fn call_failed(&mut self, transaction_id: f64, description: &str) -> Result<(), SessionError> {
        let status = status_object("error", codes::CALL_FAILED, description);
        self.connection.send_command(0, "_error", transaction_id, Amf0Value::Null, vec![status])
    }

    fn connect_command(&mut self, transaction_id: f64, command_object: Amf0Value, arguments: Vec<Amf0Value>) -> Result<(), SessionError> {
        if self.connect_requested || self.app.is_some() {
            return self.call_failed(transaction_id, "Already connected.");
        }
        let properties = match command_object {
            Amf0Value::Object(properties) => properties,
            _ => HashMap::new(),
        };
        let full_app = string_property(&properties, "app").unwrap_or_default();
        let (app, query) = match full_app.split_once('?') {
            Some((app, query)) => (app.to_string(), Some(query.to_string())),
            None => (full_app, None),
        };
        self.peer_capabilities = EnhancedCapabilities::from_properties(&properties);
        let fourcc_list = self.peer_capabilities.as_ref().map(|caps| caps.fourcc_list.clone()).unwrap_or_default();
        let object_encoding = as_number(properties.get("objectEncoding")).unwrap_or(0.0);
        let request = ConnectRequest {
            app: app.clone(),
            query,
            tc_url: string_property(&properties, "tcUrl"),
            flash_ver: string_property(&properties, "flashVer"),
            fourcc_list,
            properties,
            arguments,
        };
        self.connect_requested = true;
        let request_id = self.add_pending(PendingRequest::Connect { transaction_id, object_encoding, app });
        self.events.push_back(ServerSessionEvent::ConnectionRequested { request_id, request });
        Ok(())
    }

    fn create_stream(&mut self, transaction_id: f64) -> Result<(), SessionError> {
        if self.streams.len() >= self.config.max_streams as usize {
            return self.call_failed(transaction_id, "Too many streams.");
        }
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
        self.streams.push(MessageStream { id, role: StreamRole::Idle });
        self.connection.send_command(0, "_result", transaction_id, Amf0Value::Null, vec![Amf0Value::Number(f64::from(id))])
    }

    fn publish_command(&mut self, stream_id: u32, arguments: Vec<Amf0Value>) -> Result<(), SessionError> {
        // publish(false) is how Flash (and Wirecast) stop publishing.
        let Some(stream_name) = as_string(arguments.first()).map(str::to_string) else {
            self.finish_stream(stream_id);
            return Ok(());
        };
        let Some(role) = self.streams.iter().find(|s| s.id == stream_id).map(|s| s.role.clone()) else {
            return self.send_status(stream_id, "error", codes::PUBLISH_BAD_NAME, "No such stream; call createStream first.");
        };
        if role != StreamRole::Idle || self.has_pending_on(stream_id) {
            return self.send_status(stream_id, "error", codes::PUBLISH_BAD_NAME, "Stream is already in use.");
        }
        let mode = PublishMode::parse(as_string(arguments.get(1)).unwrap_or("live"));
        let app = self.app.clone().unwrap_or_default();
        let request_id = self.add_pending(PendingRequest::Publish { stream_id, stream_name: stream_name.clone() });
        self.events.push_back(ServerSessionEvent::PublishRequested { request_id, app, stream_name, stream_id, mode });
        Ok(())
    }

    fn play_command(&mut self, stream_id: u32, arguments: Vec<Amf0Value>) -> Result<(), SessionError> {
        let Some(stream_name) = as_string(arguments.first()).map(str::to_string) else {
            self.finish_stream(stream_id);
            return Ok(());
        };
        let Some(role) = self.streams.iter().find(|s| s.id == stream_id).map(|s| s.role.clone()) else {
            return self.send_status(stream_id, "error", codes::PLAY_FAILED, "No such stream; call createStream first.");
        };
        if matches!(role, StreamRole::Publishing(_)) || self.has_pending_on(stream_id) {
            return self.send_status(stream_id, "error", codes::PLAY_FAILED, "Stream is already in use.");
        }
        // A second play on the same stream replaces the first.
        if matches!(role, StreamRole::Playing(_)) {
            self.finish_stream(stream_id);
        }
        let start = as_number(arguments.get(1)).unwrap_or(-2.0);
        let duration = as_number(arguments.get(2)).unwrap_or(-1.0);
        let reset = as_bool(arguments.get(3)).unwrap_or(true);
        let app = self.app.clone().unwrap_or_default();
        let request_id = self.add_pending(PendingRequest::Play { stream_id, stream_name: stream_name.clone(), reset });
        self.events.push_back(ServerSessionEvent::PlayRequested { request_id, app, stream_name, stream_id, start, duration, reset });
        Ok(())
    }

    fn has_pending_on(&self, stream_id: u32) -> bool {
        self.pending.iter().any(|(_, request)| match request {
            PendingRequest::Publish { stream_id: id, .. } | PendingRequest::Play { stream_id: id, .. } => *id == stream_id,
            PendingRequest::Connect { .. } => false,
        })
    }

    fn is_publishing(&self, stream_id: u32) -> bool {
        self.streams.iter().any(|s| s.id == stream_id && matches!(s.role, StreamRole::Publishing(_)))
    }

    /// Ends whatever a stream was doing and reports it.
    fn finish_stream(&mut self, stream_id: u32) {
        self.pending.retain(|(_, request)| match request {
            PendingRequest::Publish { stream_id: id, .. } | PendingRequest::Play { stream_id: id, .. } => *id != stream_id,
            PendingRequest::Connect { .. } => true,
        });
        let Some(stream) = self.streams.iter_mut().find(|s| s.id == stream_id) else {
            return;
        };
        let app = self.app.clone().unwrap_or_default();
        match std::mem::replace(&mut stream.role, StreamRole::Idle) {
            StreamRole::Publishing(stream_name) => {
                self.events.push_back(ServerSessionEvent::PublishFinished { app, stream_name, stream_id })
            }
            StreamRole::Playing(stream_name) => {
                self.events.push_back(ServerSessionEvent::PlayFinished { app, stream_name, stream_id })
            }
            StreamRole::Idle => {}
        }
    }

    fn ignore(&mut self, type_id: u8, reason: String) {
        self.events.push_back(ServerSessionEvent::InvalidMessageIgnored { type_id, reason });
    }
}

/// The chunk stream and message type the library sends each kind of media on.
pub fn media_chunk_stream(kind: MediaKind) -> (u32, u8) {
    match kind {
        MediaKind::Audio => (csid::AUDIO, type_id::AUDIO),
        MediaKind::Video => (csid::VIDEO, type_id::VIDEO),
        MediaKind::Data => (csid::DATA, type_id::AMF0_DATA),
    }
}

fn stream_id_from_number(number: f64) -> Option<u32> {
    if number.is_finite() && number >= 0.0 && number <= f64::from(u32::MAX) {
        Some(number as u32)
    } else {
        None
    }
}
