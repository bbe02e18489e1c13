//! The client side of an RTMP connection: connect, then play or publish.

use std::collections::{HashMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

use super::capabilities::EnhancedCapabilities;
use super::connection::{ChunkConnection, ControlOutcome};
use super::events::{ClientSessionEvent, MediaKind, PublishMode, RejectedRequestKind, StatusInfo};
use super::server::media_chunk_stream;
use super::status::{as_number, codes, is_set_data_frame, looks_like_metadata, read_metadata, read_status, SET_DATA_FRAME};
use super::SessionError;
use crate::chunk_io::{csid, ChunkDecoderLimits, MessagePayload};
use crate::flv::{FlvTag, FlvTagType};
use crate::messages::{type_id, RtmpMessage, UserControlEvent};
use crate::time::RtmpTimestamp;
use crate::url::RtmpUrl;
use crate::Amf0Value;

/// How a [`ClientSession`] presents itself.
#[derive(Clone, Debug)]
pub struct ClientSessionConfig {
    /// Chunk size for everything the client sends.
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to the server.
    pub window_ack_size: u32,
    /// `flashVer` sent in connect.
    pub flash_ver: String,
    /// Buffer length (ms) announced for played streams.
    pub buffer_length_ms: u32,
    /// Limits on what the server may make the decoder hold.
    pub limits: ChunkDecoderLimits,
    /// Enhanced RTMP support announced in connect (`fourCcList`, `videoFourCcInfoMap`,
    /// `audioFourCcInfoMap`, `capsEx`), so that origins serve HEVC/AV1/VP9/Opus and
    /// multitrack streams. The default announces a forwarder of every codec; `None`
    /// connects as a legacy client.
    pub enhanced_rtmp: Option<EnhancedCapabilities>,
    /// Extra properties for the connect command object (e.g. `fourCcList` for Enhanced
    /// RTMP, `swfUrl`, `pageUrl`). They override the defaults of the same name.
    pub extra_connect_properties: Vec<(String, Amf0Value)>,
}

impl Default for ClientSessionConfig {
    fn default() -> Self {
        ClientSessionConfig {
            chunk_size: 4096,
            window_ack_size: 5_000_000,
            flash_ver: "FMLE/3.0 (compatible; rtmp-edge)".to_string(),
            buffer_length_ms: 3000,
            limits: ChunkDecoderLimits::default(),
            enhanced_rtmp: Some(EnhancedCapabilities::forwarder()),
            extra_connect_properties: Vec::new(),
        }
    }
}

/// What a transaction we started was for.
#[derive(Clone, Debug)]
enum Transaction {
    Connect,
    CreateStream(StreamIntent),
    Ignored,
}

/// What a stream was created for.
#[derive(Clone, Debug)]
enum StreamIntent {
    Play(String),
    Publish(String, PublishMode),
}

#[derive(Clone, Debug, PartialEq)]
enum ClientStreamRole {
    PlayRequested,
    Playing,
    PublishRequested,
    Publishing,
}

#[derive(Debug)]
struct ClientStream {
    id: u32,
    name: String,
    role: ClientStreamRole,
    /// The server sent StreamBegin for this stream (and no StreamEOF since).
    begun: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ConnectState {
    NotConnected,
    Connecting,
    Connected,
    Rejected,
}

/// The client half of an RTMP session (after the handshake).
///
/// Call [`play`](Self::play) or [`publish`](Self::publish) with a URL, or the two steps
/// they take: [`connect`](Self::connect), then [`request_playback`](Self::request_playback)
/// or [`request_publishing`](Self::request_publishing). Requests made before the connect
/// is accepted are queued and sent once it is. Feed the server's bytes to
/// [`handle_input`](Self::handle_input), then drain [`poll_event`](Self::poll_event) and
/// [`take_outbound`](Self::take_outbound).
///
/// A publisher must keep reading too, however little it expects: the server's
/// acknowledgement window and ping requests are answered from `handle_input`, and a
/// refusal or a status arrives there. Servers close publishers that never acknowledge.
///
/// ```
/// use rtmp_edge::sessions::{ClientSession, ClientSessionConfig, PublishMode};
/// use rtmp_edge::url::RtmpUrl;
///
/// let url = RtmpUrl::parse("rtmp://127.0.0.1/live/stream?key=k")?;
/// let mut client = ClientSession::new(ClientSessionConfig::default());
/// // connect(app "live", tcUrl "rtmp://127.0.0.1:1935/live"), then publish "stream?key=k"
/// // once the server accepts the connect.
/// client.publish(&url, PublishMode::Live)?;
/// let connect_bytes = client.take_outbound(); // write these after the handshake
/// assert!(!connect_bytes.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ClientSession {
    config: ClientSessionConfig,
    connection: ChunkConnection,
    events: VecDeque<ClientSessionEvent>,
    state: ConnectState,
    transactions: Vec<(f64, Transaction)>,
    next_transaction_id: f64,
    queued: VecDeque<StreamIntent>,
    streams: Vec<ClientStream>,
    server_capabilities: Option<EnhancedCapabilities>,
    rejection: Option<(RejectedRequestKind, StatusInfo)>,
}

impl ClientSession {
    /// A session that has not connected yet.
    pub fn new(config: ClientSessionConfig) -> Self {
        let connection = ChunkConnection::new(config.limits.clone(), config.window_ack_size);
        ClientSession {
            config,
            connection,
            events: VecDeque::new(),
            state: ConnectState::NotConnected,
            transactions: Vec::new(),
            next_transaction_id: 1.0,
            queued: VecDeque::new(),
            streams: Vec::new(),
            server_capabilities: None,
            rejection: None,
        }
    }

    /// Connects to `url`'s app (with its tcUrl) and asks to play its stream: the two steps
    /// of [`connect`](Self::connect) and [`request_playback`](Self::request_playback) in
    /// one call. The stream name goes with the URL's query
    /// ([`RtmpUrl::play_path`]). Fails, sending nothing, if the URL names no stream.
    pub fn play(&mut self, url: &RtmpUrl) -> Result<(), SessionError> {
        let play_path = url.play_path().ok_or(SessionError::NoStreamName)?;
        self.connect(url.app(), &url.tc_url())?;
        self.request_playback(&play_path)
    }

    /// Connects to `url`'s app (with its tcUrl) and asks to publish its stream: the two
    /// steps of [`connect`](Self::connect) and
    /// [`request_publishing`](Self::request_publishing) in one call. Fails, sending
    /// nothing, if the URL names no stream.
    pub fn publish(&mut self, url: &RtmpUrl, mode: PublishMode) -> Result<(), SessionError> {
        let play_path = url.play_path().ok_or(SessionError::NoStreamName)?;
        self.connect(url.app(), &url.tc_url())?;
        self.request_publishing(&play_path, mode)
    }

    /// Sends `connect` for `app` (which may carry a `?query`), naming `tc_url`.
    pub fn connect(&mut self, app: &str, tc_url: &str) -> Result<(), SessionError> {
        if self.state != ConnectState::NotConnected {
            return Err(SessionError::AlreadyConnected);
        }
        self.connection.set_outgoing_chunk_size(self.config.chunk_size)?;
        let mut properties = HashMap::new();
        let text = |value: &str| Amf0Value::Utf8String(value.to_string());
        properties.insert("app".to_string(), text(app));
        properties.insert("type".to_string(), text("nonprivate"));
        properties.insert("flashVer".to_string(), text(&self.config.flash_ver));
        properties.insert("tcUrl".to_string(), text(tc_url));
        properties.insert("fpad".to_string(), Amf0Value::Boolean(false));
        properties.insert("capabilities".to_string(), Amf0Value::Number(15.0));
        properties.insert("audioCodecs".to_string(), Amf0Value::Number(4071.0));
        properties.insert("videoCodecs".to_string(), Amf0Value::Number(252.0));
        properties.insert("videoFunction".to_string(), Amf0Value::Number(1.0));
        properties.insert("objectEncoding".to_string(), Amf0Value::Number(0.0));
        if let Some(capabilities) = &self.config.enhanced_rtmp {
            capabilities.write_into(&mut properties);
        }
        for (key, value) in &self.config.extra_connect_properties {
            properties.insert(key.clone(), value.clone());
        }
        let transaction_id = self.begin_transaction(Transaction::Connect);
        self.state = ConnectState::Connecting;
        self.connection.send_command(0, "connect", transaction_id, Amf0Value::Object(properties), Vec::new())
    }

    /// Asks to play `stream_name` (query string included): createStream, then play.
    pub fn request_playback(&mut self, stream_name: &str) -> Result<(), SessionError> {
        self.request(StreamIntent::Play(stream_name.to_string()))
    }

    /// Asks to publish `stream_name` the way OBS does: releaseStream, FCPublish,
    /// createStream, then publish.
    pub fn request_publishing(&mut self, stream_name: &str, mode: PublishMode) -> Result<(), SessionError> {
        self.request(StreamIntent::Publish(stream_name.to_string(), mode))
    }

    /// Sends stream metadata: `properties` as an `onMetaData` ECMA array, wrapped in
    /// `@setDataFrame` as encoders do.
    pub fn publish_metadata(&mut self, properties: HashMap<String, Amf0Value>) -> Result<(), SessionError> {
        let body = RtmpMessage::data(vec![
            Amf0Value::Utf8String("@setDataFrame".to_string()),
            Amf0Value::Utf8String("onMetaData".to_string()),
            Amf0Value::Object(properties),
        ])
        .encode_body()?;
        self.publish_media(MediaKind::Data, RtmpTimestamp::ZERO, body)
    }

    /// Sends metadata received elsewhere as raw `onMetaData` AMF bytes
    /// ([`StreamMetadata::raw`](super::StreamMetadata)), adding the `@setDataFrame` prefix.
    pub fn publish_metadata_raw(&mut self, timestamp: RtmpTimestamp, raw: &[u8]) -> Result<(), SessionError> {
        let mut body = BytesMut::with_capacity(SET_DATA_FRAME.len() + raw.len());
        body.put_slice(SET_DATA_FRAME);
        body.put_slice(raw);
        self.publish_media(MediaKind::Data, timestamp, body.freeze())
    }

    /// Sends one FLV tag on the publishing stream, as an encoder would: audio and video
    /// as they are; a script tag holding `onMetaData` as metadata (wrapped in
    /// `@setDataFrame`, as [`publish_metadata_raw`](Self::publish_metadata_raw) does, unless
    /// it already is); any other script tag (`onCuePoint`, `onTextData`...) as a data
    /// message. Tags read from an FLV file can be passed straight through.
    pub fn publish_tag(&mut self, tag: &FlvTag) -> Result<(), SessionError> {
        match tag.tag_type {
            FlvTagType::Script if looks_like_metadata(&tag.data) && !is_set_data_frame(&tag.data) => {
                self.publish_metadata_raw(tag.timestamp, &tag.data)
            }
            tag_type => self.publish_media(tag_type.into(), tag.timestamp, tag.data.clone()),
        }
    }

    /// Sends one audio, video or data message on the publishing stream, as it is.
    /// Metadata sent this way must carry its own `@setDataFrame` prefix; prefer
    /// [`publish_tag`](Self::publish_tag) or [`publish_metadata_raw`](Self::publish_metadata_raw).
    pub fn publish_media(&mut self, kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes) -> Result<(), SessionError> {
        let stream_id = self
            .streams
            .iter()
            .find(|s| s.role == ClientStreamRole::Publishing)
            .map(|s| s.id)
            .ok_or(SessionError::NotPublishing)?;
        let (chunk_stream_id, type_id) = media_chunk_stream(kind);
        let payload = MessagePayload { timestamp, type_id, message_stream_id: stream_id, data };
        self.connection.send_payload(chunk_stream_id, &payload)
    }

    /// Stops every stream this session plays or publishes (FCUnpublish/deleteStream).
    pub fn stop(&mut self) -> Result<(), SessionError> {
        let streams = std::mem::take(&mut self.streams);
        for stream in streams {
            if matches!(stream.role, ClientStreamRole::Publishing | ClientStreamRole::PublishRequested) {
                let name = Amf0Value::Utf8String(stream.name.clone());
                let transaction_id = self.begin_transaction(Transaction::Ignored);
                self.connection.send_command(0, "FCUnpublish", transaction_id, Amf0Value::Null, vec![name])?;
            }
            let transaction_id = self.begin_transaction(Transaction::Ignored);
            let id = Amf0Value::Number(f64::from(stream.id));
            self.connection.send_command(0, "deleteStream", transaction_id, Amf0Value::Null, vec![id])?;
        }
        self.queued.clear();
        Ok(())
    }

    /// Sends a ping request (the server should echo it).
    pub fn send_ping_request(&mut self, timestamp: u32) -> Result<(), SessionError> {
        self.connection.send(csid::PROTOCOL_CONTROL, RtmpMessage::ping_request(timestamp), 0)
    }

    /// Processes bytes from the server. Events and output accumulate until drained.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.connection.push_input(bytes);
        while let Some(payload) = self.connection.next_payload()? {
            self.handle_payload(payload)?;
        }
        self.connection.acknowledge_if_due()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientSessionEvent> {
        super::events::next_event(&mut self.events)
    }

    /// Bytes to send to the server (empty when there are none).
    pub fn take_outbound(&mut self) -> Bytes {
        self.connection.take_outbound()
    }

    /// Whether [`take_outbound`](Self::take_outbound) has bytes to give.
    pub fn has_outbound(&self) -> bool {
        self.connection.has_outbound()
    }

    /// What the server stated about Enhanced RTMP in its connect result; `None` before
    /// the result, or when it stated nothing (a legacy server, which may still relay
    /// enhanced streams untouched).
    pub fn server_capabilities(&self) -> Option<&EnhancedCapabilities> {
        self.server_capabilities.as_ref()
    }

    /// The last request the server refused, and its status: the same as the last
    /// [`ClientSessionEvent::RequestRejected`], kept for callers that only wait for a
    /// start event. `None` while nothing has been refused.
    pub fn rejection(&self) -> Option<(RejectedRequestKind, &StatusInfo)> {
        self.rejection.as_ref().map(|(kind, status)| (*kind, status))
    }

    /// Whether the server accepted `connect`.
    pub fn is_connected(&self) -> bool {
        self.state == ConnectState::Connected
    }

    /// Bytes received from the server so far.
    pub fn bytes_received(&self) -> u64 {
        self.connection.bytes_received()
    }

    fn request(&mut self, intent: StreamIntent) -> Result<(), SessionError> {
        match self.state {
            ConnectState::Connected => self.create_stream_for(intent),
            ConnectState::Connecting => {
                self.queued.push_back(intent);
                Ok(())
            }
            ConnectState::NotConnected => Err(SessionError::NotConnected),
            ConnectState::Rejected => Err(SessionError::ConnectRejected),
        }
    }

    fn create_stream_for(&mut self, intent: StreamIntent) -> Result<(), SessionError> {
        if let StreamIntent::Publish(name, _) = &intent {
            let name = Amf0Value::Utf8String(name.clone());
            let release = self.begin_transaction(Transaction::Ignored);
            self.connection.send_command(0, "releaseStream", release, Amf0Value::Null, vec![name.clone()])?;
            let fc_publish = self.begin_transaction(Transaction::Ignored);
            self.connection.send_command(0, "FCPublish", fc_publish, Amf0Value::Null, vec![name])?;
        }
        let transaction_id = self.begin_transaction(Transaction::CreateStream(intent));
        self.connection.send_command(0, "createStream", transaction_id, Amf0Value::Null, Vec::new())
    }

    fn begin_transaction(&mut self, transaction: Transaction) -> f64 {
        let transaction_id = self.next_transaction_id;
        self.next_transaction_id += 1.0;
        if !matches!(transaction, Transaction::Ignored) {
            self.transactions.push((transaction_id, transaction));
        } else {
            // Remember ignored ones too, briefly, so their answers are not "unhandled".
            self.transactions.push((transaction_id, Transaction::Ignored));
        }
        // A server that never answers must not grow this without bound.
        if self.transactions.len() > 64 {
            self.transactions.remove(0);
        }
        transaction_id
    }

    fn take_transaction(&mut self, transaction_id: f64) -> Option<Transaction> {
        let index = self.transactions.iter().position(|(id, _)| *id == transaction_id)?;
        Some(self.transactions.remove(index).1)
    }

    fn handle_payload(&mut self, payload: MessagePayload) -> Result<(), SessionError> {
        match payload.type_id {
            type_id::AUDIO => self.media_received(payload, MediaKind::Audio),
            type_id::VIDEO => self.media_received(payload, MediaKind::Video),
            type_id::AGGREGATE => {
                for sub_message in crate::messages::split_aggregate(&payload) {
                    match sub_message {
                        Ok(sub_message) => self.handle_payload(sub_message)?,
                        Err(error) => {
                            self.ignore(type_id::AGGREGATE, format!("bad aggregate message: {error}"));
                            break;
                        }
                    }
                }
            }
            _ => match RtmpMessage::decode(&payload) {
                Ok(message) => self.handle_message(&payload, message)?,
                Err(error) => self.ignore(payload.type_id, error.to_string()),
            },
        }
        Ok(())
    }

    fn media_received(&mut self, payload: MessagePayload, kind: MediaKind) {
        self.events.push_back(ClientSessionEvent::MediaReceived {
            stream_id: payload.message_stream_id,
            kind,
            timestamp: payload.timestamp,
            data: payload.data,
        });
    }

    fn handle_message(&mut self, payload: &MessagePayload, message: RtmpMessage) -> Result<(), SessionError> {
        match self.connection.handle_control(message)? {
            ControlOutcome::Handled => {}
            ControlOutcome::Acknowledgement(sequence_number) => {
                self.events.push_back(ClientSessionEvent::AcknowledgementReceived { sequence_number })
            }
            ControlOutcome::PingResponse(_) => {}
            ControlOutcome::UserControl(UserControlEvent::StreamBegin { stream_id }) => {
                self.set_begun(stream_id, true);
                self.events.push_back(ClientSessionEvent::StreamBegin { stream_id })
            }
            ControlOutcome::UserControl(UserControlEvent::StreamEof { stream_id }) => {
                self.set_begun(stream_id, false);
                self.events.push_back(ClientSessionEvent::StreamEof { stream_id })
            }
            ControlOutcome::UserControl(UserControlEvent::StreamDry { stream_id }) => {
                self.set_begun(stream_id, false);
                self.events.push_back(ClientSessionEvent::StreamDry { stream_id })
            }
            ControlOutcome::UserControl(_) => {}
            ControlOutcome::NotControl(message) => match message {
                RtmpMessage::Amf0Command { name, transaction_id, command_object, arguments }
                | RtmpMessage::Amf3Command { name, transaction_id, command_object, arguments } => {
                    self.handle_command(payload.message_stream_id, name, transaction_id, command_object, arguments)?
                }
                RtmpMessage::Amf0Data { values } => {
                    let stream_id = payload.message_stream_id;
                    if let Some(metadata) = read_metadata(&payload.data, &values) {
                        self.events.push_back(ClientSessionEvent::MetadataReceived {
                            stream_id,
                            timestamp: payload.timestamp,
                            metadata,
                        });
                    } else if !matches!(values.first(), Some(Amf0Value::Utf8String(name)) if name == "|RtmpSampleAccess") {
                        self.events.push_back(ClientSessionEvent::MediaReceived {
                            stream_id,
                            kind: MediaKind::Data,
                            timestamp: payload.timestamp,
                            data: payload.data.clone(),
                        });
                    }
                }
                other => self.ignore(other.type_id(), "message type not handled by the client".to_string()),
            },
        }
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
        match name.as_str() {
            "_result" => match self.take_transaction(transaction_id) {
                Some(Transaction::Connect) => {
                    let status = arguments.first().map(read_status).unwrap_or_else(empty_status);
                    let properties = match command_object {
                        Amf0Value::Object(properties) => properties,
                        _ => HashMap::new(),
                    };
                    self.state = ConnectState::Connected;
                    self.server_capabilities = EnhancedCapabilities::from_properties(&properties);
                    let window = RtmpMessage::window_acknowledgement_size(self.connection.own_window());
                    self.connection.send(csid::PROTOCOL_CONTROL, window, 0)?;
                    self.events.push_back(ClientSessionEvent::ConnectionAccepted { status, properties });
                    while let Some(intent) = self.queued.pop_front() {
                        self.create_stream_for(intent)?;
                    }
                    Ok(())
                }
                Some(Transaction::CreateStream(intent)) => {
                    let Some(id) = as_number(arguments.first()).filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX)) else {
                        self.ignore(type_id::AMF0_COMMAND, "createStream result without a stream id".to_string());
                        return Ok(());
                    };
                    self.stream_created(id as u32, intent)
                }
                Some(Transaction::Ignored) | None => Ok(()),
            },
            "_error" => {
                let status = arguments.first().map(read_status).unwrap_or_else(empty_status);
                let kind = match self.take_transaction(transaction_id) {
                    Some(Transaction::Connect) => {
                        self.state = ConnectState::Rejected;
                        self.queued.clear();
                        RejectedRequestKind::Connect
                    }
                    Some(Transaction::CreateStream(StreamIntent::Play(_))) => RejectedRequestKind::CreateStream,
                    Some(Transaction::CreateStream(StreamIntent::Publish(..))) => RejectedRequestKind::CreateStream,
                    Some(Transaction::Ignored) | None => return Ok(()),
                };
                self.reject(kind, status);
                Ok(())
            }
            "onStatus" => {
                let status = arguments.first().map(read_status).unwrap_or_else(empty_status);
                self.status_received(stream_id, status);
                Ok(())
            }
            "onBWDone" | "onFCPublish" | "onFCUnpublish" | "_checkbw" => Ok(()),
            _ => {
                self.events.push_back(ClientSessionEvent::UnhandledCommand {
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

    fn stream_created(&mut self, stream_id: u32, intent: StreamIntent) -> Result<(), SessionError> {
        match intent {
            StreamIntent::Play(name) => {
                let buffer = RtmpMessage::set_buffer_length(stream_id, self.config.buffer_length_ms);
                let arguments = vec![Amf0Value::Utf8String(name.clone()), Amf0Value::Number(-2000.0)];
                self.connection.send_command(stream_id, "play", 0.0, Amf0Value::Null, arguments)?;
                self.connection.send(csid::PROTOCOL_CONTROL, buffer, 0)?;
                self.streams.push(ClientStream { id: stream_id, name, role: ClientStreamRole::PlayRequested, begun: false });
            }
            StreamIntent::Publish(name, mode) => {
                let arguments = vec![Amf0Value::Utf8String(name.clone()), Amf0Value::Utf8String(mode.as_str().to_string())];
                self.connection.send_command(stream_id, "publish", 0.0, Amf0Value::Null, arguments)?;
                self.streams.push(ClientStream { id: stream_id, name, role: ClientStreamRole::PublishRequested, begun: false });
            }
        }
        Ok(())
    }

    fn status_received(&mut self, stream_id: u32, status: StatusInfo) {
        let Some(stream) = self.streams.iter_mut().find(|s| s.id == stream_id) else {
            self.events.push_back(ClientSessionEvent::StatusReceived { stream_id, status });
            return;
        };
        let is_error = status.level.eq_ignore_ascii_case("error");
        let stream_name = stream.name.clone();
        match (&stream.role, status.code.as_str()) {
            (ClientStreamRole::PlayRequested, codes::PLAY_START) => {
                stream.role = ClientStreamRole::Playing;
                let waiting = !stream.begun;
                self.events.push_back(ClientSessionEvent::PlaybackStarted { stream_id, stream_name: stream_name.clone() });
                if waiting {
                    self.events.push_back(ClientSessionEvent::WaitingForPublisher { stream_id, stream_name });
                }
            }
            (ClientStreamRole::PublishRequested, codes::PUBLISH_START) => {
                stream.role = ClientStreamRole::Publishing;
                self.events.push_back(ClientSessionEvent::PublishStarted { stream_id, stream_name });
            }
            (ClientStreamRole::PlayRequested, _) if is_error => self.reject(RejectedRequestKind::Play, status),
            (ClientStreamRole::PublishRequested | ClientStreamRole::Publishing, _) if is_error => {
                self.reject(RejectedRequestKind::Publish, status)
            }
            (ClientStreamRole::Playing, codes::PLAY_UNPUBLISH_NOTIFY) => {
                self.events.push_back(ClientSessionEvent::StatusReceived { stream_id, status });
                self.events.push_back(ClientSessionEvent::WaitingForPublisher { stream_id, stream_name });
            }
            _ => self.events.push_back(ClientSessionEvent::StatusReceived { stream_id, status }),
        }
    }

    fn reject(&mut self, kind: RejectedRequestKind, status: StatusInfo) {
        self.rejection = Some((kind, status.clone()));
        self.events.push_back(ClientSessionEvent::RequestRejected { kind, status });
    }

    fn set_begun(&mut self, stream_id: u32, begun: bool) {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.id == stream_id) {
            stream.begun = begun;
        }
    }

    fn ignore(&mut self, type_id: u8, reason: String) {
        self.events.push_back(ClientSessionEvent::InvalidMessageIgnored { type_id, reason });
    }
}

fn empty_status() -> StatusInfo {
    StatusInfo { level: String::new(), code: String::new(), description: String::new() }
}
