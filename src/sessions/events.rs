//! What sessions tell the application.

use std::collections::HashMap;

use bytes::Bytes;

use crate::flv::{FlvTag, FlvTagType};
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// Everything a client said in its `connect` command.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectRequest {
    /// Application name, without any query string.
    pub app: String,
    /// Query string that followed the app name (`live?token=x` gives `token=x`), if any.
    pub query: Option<String>,
    /// `tcUrl`, the URL the client connected to.
    pub tc_url: Option<String>,
    /// `flashVer`, the client's self-description (e.g. `FMLE/3.0`, `LNX 9,0,124,2`).
    pub flash_ver: Option<String>,
    /// Enhanced RTMP `fourCcList`, when the client announced one.
    pub fourcc_list: Vec<String>,
    /// The whole command object, for anything not lifted out above
    /// (`videoFourCcInfoMap`, `capsEx`, `swfUrl`, `pageUrl`...).
    pub properties: HashMap<String, Amf0Value>,
    /// Optional arguments after the command object (some clients pass auth here).
    pub arguments: Vec<Amf0Value>,
}

/// How a publisher asked to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishMode {
    /// `live`: nothing is recorded.
    Live,
    /// `record`: record, replacing earlier data.
    Record,
    /// `append`: record, appending to earlier data.
    Append,
}

impl PublishMode {
    /// The word sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Live => "live",
            PublishMode::Record => "record",
            PublishMode::Append => "append",
        }
    }

    /// Reads a publish type in any letter case; anything unknown is treated as live,
    /// as real servers do.
    pub fn parse(text: &str) -> PublishMode {
        if text.eq_ignore_ascii_case("record") {
            PublishMode::Record
        } else if text.eq_ignore_ascii_case("append") {
            PublishMode::Append
        } else {
            PublishMode::Live
        }
    }
}

/// Which kind of media a message carries: the three RTMP message types that are also the
/// three FLV tag types, so it converts to and from [`FlvTagType`] both ways
/// (`Data` is [`FlvTagType::Script`]).
///
/// ```
/// use rtmp_edge::flv::FlvTagType;
/// use rtmp_edge::sessions::MediaKind;
///
/// assert_eq!(FlvTagType::from(MediaKind::Data), FlvTagType::Script);
/// assert_eq!(MediaKind::from(FlvTagType::Video), MediaKind::Video);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Message type 8.
    Audio,
    /// Message type 9.
    Video,
    /// Message type 18 (AMF0 data other than metadata, e.g. `onTextData`, `onCuePoint`).
    Data,
}

impl From<MediaKind> for FlvTagType {
    fn from(kind: MediaKind) -> FlvTagType {
        match kind {
            MediaKind::Audio => FlvTagType::Audio,
            MediaKind::Video => FlvTagType::Video,
            MediaKind::Data => FlvTagType::Script,
        }
    }
}

impl From<FlvTagType> for MediaKind {
    fn from(tag_type: FlvTagType) -> MediaKind {
        match tag_type {
            FlvTagType::Audio => MediaKind::Audio,
            FlvTagType::Video => MediaKind::Video,
            FlvTagType::Script => MediaKind::Data,
        }
    }
}

/// The FLV tag of a media or metadata event: media keeps its body, metadata becomes the
/// `onMetaData` script tag FLV files carry (its [`StreamMetadata::raw`] bytes). The data is
/// shared, not copied.
fn flv_tag(kind: MediaKind, timestamp: RtmpTimestamp, data: &Bytes) -> FlvTag {
    FlvTag { tag_type: kind.into(), timestamp, data: data.clone() }
}

/// Stream metadata (`onMetaData`), kept as the original bytes for pass-through plus a
/// parsed view.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamMetadata {
    /// The AMF0 body to send to players: `"onMetaData"` followed by its properties, with
    /// any `@setDataFrame` prefix the publisher used removed.
    pub raw: Bytes,
    /// The metadata properties, parsed. Empty when the publisher's AMF could not be parsed
    /// (the raw bytes still pass through).
    pub properties: HashMap<String, Amf0Value>,
}

/// An onStatus (or _error / _result status object) as received.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusInfo {
    /// `level`: `status`, `warning` or `error`.
    pub level: String,
    /// `code`, e.g. `NetStream.Play.Start`.
    pub code: String,
    /// `description`, free text.
    pub description: String,
}

/// Events a [`ServerSession`](super::ServerSession) raises.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ServerSessionEvent {
    /// The client sent `connect`. Accept or reject `request_id`.
    ConnectionRequested {
        /// Id to pass to `accept_request`/`reject_request`.
        request_id: u32,
        /// What the client sent.
        request: ConnectRequest,
    },
    /// The client wants to publish. Accept or reject `request_id`.
    PublishRequested {
        /// Id to pass to `accept_request`/`reject_request`.
        request_id: u32,
        /// Application from `connect`.
        app: String,
        /// Stream name as sent, query string included.
        stream_name: String,
        /// Message stream id the client publishes on.
        stream_id: u32,
        /// Publish type.
        mode: PublishMode,
    },
    /// A publisher stopped (FCUnpublish, closeStream, deleteStream).
    PublishFinished {
        /// Application.
        app: String,
        /// Stream name as published.
        stream_name: String,
        /// Message stream id.
        stream_id: u32,
    },
    /// The client wants to play. Accept or reject `request_id`.
    PlayRequested {
        /// Id to pass to `accept_request`/`reject_request`.
        request_id: u32,
        /// Application from `connect`.
        app: String,
        /// Stream name as sent, query string included.
        stream_name: String,
        /// Message stream id to send the stream on.
        stream_id: u32,
        /// `start` argument (-2 live or recorded, -1 live only, >= 0 recorded from there).
        start: f64,
        /// `duration` argument (-1 to the end).
        duration: f64,
        /// `reset` argument.
        reset: bool,
    },
    /// A player stopped (closeStream, deleteStream, or a play on the same stream).
    PlayFinished {
        /// Application.
        app: String,
        /// Stream name that was playing.
        stream_name: String,
        /// Message stream id.
        stream_id: u32,
    },
    /// A player paused or resumed.
    PauseChanged {
        /// Message stream id.
        stream_id: u32,
        /// True when paused.
        paused: bool,
        /// Stream time the client gave, in milliseconds.
        position_ms: f64,
    },
    /// A player asked (not) to receive audio or video.
    ReceiveChanged {
        /// Message stream id.
        stream_id: u32,
        /// Audio or Video.
        kind: MediaKind,
        /// Whether it wants that kind.
        enabled: bool,
    },
    /// A publisher sent or changed metadata.
    MetadataReceived {
        /// Message stream id.
        stream_id: u32,
        /// Timestamp of the data message.
        timestamp: RtmpTimestamp,
        /// The metadata.
        metadata: StreamMetadata,
    },
    /// A publisher sent audio, video or a data message other than metadata (which is
    /// [`MetadataReceived`](Self::MetadataReceived)).
    MediaReceived {
        /// Message stream id.
        stream_id: u32,
        /// Audio, Video or Data.
        kind: MediaKind,
        /// Absolute timestamp.
        timestamp: RtmpTimestamp,
        /// Message body (an FLV tag body for audio/video).
        data: Bytes,
    },
    /// The client acknowledged bytes received.
    AcknowledgementReceived {
        /// Bytes received so far by the client, modulo 2^32.
        sequence_number: u32,
    },
    /// The client answered a ping request.
    PingResponseReceived {
        /// The timestamp from our request.
        timestamp: u32,
    },
    /// A command the session does not handle itself.
    UnhandledCommand {
        /// Message stream id.
        stream_id: u32,
        /// Command name.
        name: String,
        /// Transaction id.
        transaction_id: f64,
        /// Command object.
        command_object: Amf0Value,
        /// Remaining arguments.
        arguments: Vec<Amf0Value>,
    },
    /// A message the peer sent that could not be used; the session answered or ignored it
    /// and carries on. Worth a log line naming the peer.
    InvalidMessageIgnored {
        /// Message type id.
        type_id: u8,
        /// What was wrong.
        reason: String,
    },
}

/// Which client request a server refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectedRequestKind {
    /// `connect`.
    Connect,
    /// `createStream`.
    CreateStream,
    /// `play`.
    Play,
    /// `publish`.
    Publish,
}

/// Events a [`ClientSession`](super::ClientSession) raises.
///
/// A recorder wants two of them: [`MetadataReceived`](Self::MetadataReceived) and
/// [`MediaReceived`](Self::MediaReceived); [`to_flv_tag`](Self::to_flv_tag) turns either
/// into the FLV tag to write.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientSessionEvent {
    /// The server accepted `connect`.
    ConnectionAccepted {
        /// The status object of the `_result`.
        status: StatusInfo,
        /// The server's properties object (fmsVer, capabilities, E-RTMP fourCcList...).
        properties: HashMap<String, Amf0Value>,
    },
    /// The server refused a request (`_error`, or an onStatus error for play/publish).
    /// Nothing fails on the client's side: this event is the only sign, and
    /// [`ClientSession::rejection`](super::ClientSession::rejection) keeps it.
    RequestRejected {
        /// What was refused.
        kind: RejectedRequestKind,
        /// The server's status.
        status: StatusInfo,
    },
    /// Playback started (NetStream.Play.Start).
    PlaybackStarted {
        /// Message stream id.
        stream_id: u32,
        /// Stream name as requested.
        stream_name: String,
    },
    /// The server accepted a play but the stream has no publisher yet, or its publisher
    /// left (NetStream.Play.UnpublishNotify); the connection stays, and media follows
    /// [`StreamBegin`](Self::StreamBegin) once a publisher starts.
    ///
    /// Servers tell this in different ways, and some not at all. Raised when:
    /// - NetStream.Play.Start arrives before any StreamBegin for the stream (nginx-rtmp,
    ///   and [`ServerSession::accept_play_waiting`](super::ServerSession::accept_play_waiting),
    ///   hold StreamBegin back until the stream has a publisher), right after
    ///   [`PlaybackStarted`](Self::PlaybackStarted);
    /// - NetStream.Play.UnpublishNotify arrives on a playing stream, right after its
    ///   [`StatusReceived`](Self::StatusReceived).
    WaitingForPublisher {
        /// Message stream id.
        stream_id: u32,
        /// Stream name as requested.
        stream_name: String,
    },
    /// Publishing started (NetStream.Publish.Start).
    PublishStarted {
        /// Message stream id.
        stream_id: u32,
        /// Stream name as requested.
        stream_name: String,
    },
    /// Any onStatus not covered above (PublishNotify, UnpublishNotify, Play.Stop...).
    StatusReceived {
        /// Message stream id.
        stream_id: u32,
        /// The status.
        status: StatusInfo,
    },
    /// The server sent stream metadata.
    MetadataReceived {
        /// Message stream id.
        stream_id: u32,
        /// Timestamp.
        timestamp: RtmpTimestamp,
        /// The metadata.
        metadata: StreamMetadata,
    },
    /// Audio, video or data from the server. Metadata (`onMetaData`) is not here but in
    /// [`MetadataReceived`](Self::MetadataReceived).
    MediaReceived {
        /// Message stream id.
        stream_id: u32,
        /// Audio, Video or Data.
        kind: MediaKind,
        /// Absolute timestamp.
        timestamp: RtmpTimestamp,
        /// Message body.
        data: Bytes,
    },
    /// StreamBegin from the server.
    StreamBegin {
        /// Message stream id.
        stream_id: u32,
    },
    /// StreamEOF from the server: playback on this stream is over.
    StreamEof {
        /// Message stream id.
        stream_id: u32,
    },
    /// StreamDry from the server: no data on this stream for now. rtmp-edge sends it when a
    /// live stream's publisher leaves; StreamBegin follows when the next one starts.
    StreamDry {
        /// Message stream id.
        stream_id: u32,
    },
    /// The server acknowledged bytes.
    AcknowledgementReceived {
        /// Sequence number.
        sequence_number: u32,
    },
    /// A command the session does not handle itself.
    UnhandledCommand {
        /// Message stream id.
        stream_id: u32,
        /// Command name.
        name: String,
        /// Transaction id.
        transaction_id: f64,
        /// Command object.
        command_object: Amf0Value,
        /// Remaining arguments.
        arguments: Vec<Amf0Value>,
    },
    /// A message that could not be used; the session carries on.
    InvalidMessageIgnored {
        /// Message type id.
        type_id: u8,
        /// What was wrong.
        reason: String,
    },
}

impl ServerSessionEvent {
    /// The FLV tag for a [`MediaReceived`](Self::MediaReceived) or
    /// [`MetadataReceived`](Self::MetadataReceived) event (metadata becomes an
    /// `onMetaData` script tag); `None` for every other event.
    pub fn to_flv_tag(&self) -> Option<FlvTag> {
        match self {
            ServerSessionEvent::MediaReceived { kind, timestamp, data, .. } => Some(flv_tag(*kind, *timestamp, data)),
            ServerSessionEvent::MetadataReceived { timestamp, metadata, .. } => {
                Some(flv_tag(MediaKind::Data, *timestamp, &metadata.raw))
            }
            _ => None,
        }
    }
}

impl ClientSessionEvent {
    /// The FLV tag for a [`MediaReceived`](Self::MediaReceived) or
    /// [`MetadataReceived`](Self::MetadataReceived) event (metadata becomes an
    /// `onMetaData` script tag); `None` for every other event. Writing every `Some` to an
    /// [`FlvWriter`](crate::flv::FlvWriter) records the stream.
    pub fn to_flv_tag(&self) -> Option<FlvTag> {
        match self {
            ClientSessionEvent::MediaReceived { kind, timestamp, data, .. } => Some(flv_tag(*kind, *timestamp, data)),
            ClientSessionEvent::MetadataReceived { timestamp, metadata, .. } => {
                Some(flv_tag(MediaKind::Data, *timestamp, &metadata.raw))
            }
            _ => None,
        }
    }
}

/// Events a session keeps room for once drained. One read of 64 KiB can carry 65,536
/// empty messages (a type-3 chunk header each), so an event queue can grow to megabytes
/// for a moment; kept at that size, a few such reads per idle connection would hold
/// gigabytes. Past this capacity, an emptied queue gives its memory back.
pub(crate) const EVENTS_KEPT: usize = 256;

/// The next event of a session's queue; an emptied queue gives back its spare room (see
/// [`EVENTS_KEPT`]).
pub(crate) fn next_event<T>(events: &mut std::collections::VecDeque<T>) -> Option<T> {
    let event = events.pop_front();
    if event.is_none() && events.capacity() > EVENTS_KEPT {
        events.shrink_to(EVENTS_KEPT);
    }
    event
}
