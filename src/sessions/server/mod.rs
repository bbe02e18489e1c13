//! The server side of an RTMP connection: answers a publisher's or player's commands.
//!
//! This file holds the session's state and the application's answers to requests;
//! [`incoming`] reads the client's messages, [`commands`] handles its commands, and
//! [`notify`] sends what the server tells the client unasked.

mod commands;
mod incoming;
mod notify;

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::capabilities::EnhancedCapabilities;
use super::connection::ChunkConnection;
use super::events::{MediaKind, ServerSessionEvent};
use super::status::{codes, status_object};
use super::SessionError;
use crate::chunk_io::{csid, ChunkDecoderLimits, MessagePayload};
use crate::messages::{type_id, PeerBandwidthLimitType, RtmpMessage};
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

/// Most commands held while a connect request is undecided.
const MAX_DEFERRED_MESSAGES: usize = 64;
/// Most command bytes held while a connect request is undecided. Clients pipeline a few
/// commands of well under a kilobyte each behind `connect` (createStream, publish or play).
pub const MAX_DEFERRED_BYTES: usize = 256 * 1024;

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

    /// Changes the chunk decoder's limits for messages that start from now on (see
    /// [`ChunkDecoder::set_limits`](crate::chunk_io::ChunkDecoder::set_limits)): for
    /// example small until the client asks to publish, then large enough for keyframes.
    pub fn set_decoder_limits(&mut self, limits: ChunkDecoderLimits) {
        self.connection.set_decoder_limits(limits);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ServerSessionEvent> {
        super::events::next_event(&mut self.events)
    }

    /// Room the event queue holds now (tests of [`super::events::EVENTS_KEPT`]).
    #[cfg(test)]
    pub(crate) fn event_capacity(&self) -> usize {
        self.events.capacity()
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
