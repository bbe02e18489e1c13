//! Public enums that will grow are `#[non_exhaustive]`, so that adding a variant is not a
//! breaking change: a `match` outside the crate needs a `_` arm.
//!
//! For each enum listed below, a doctest matches every variant with no `_` arm and must
//! fail to compile (E0004): it would compile if the enum lost the attribute. Inside the
//! crate the attribute does not apply, so the same match, compiled with the unit tests,
//! fails to build when an enum gains a variant this list lacks: add it here.

macro_rules! non_exhaustive_enums {
    ($($module:ident::$name:ident { $($variant:ident),+ $(,)? })+) => {
        $(
            #[doc = concat!(
                "`", stringify!($module), "::", stringify!($name), "` is `#[non_exhaustive]`.\n\n",
                "```compile_fail,E0004\n",
                "fn exhaustive(value: rtmp_edge::", stringify!($module), "::", stringify!($name), ") {\n",
                "    use rtmp_edge::", stringify!($module), "::", stringify!($name), ";\n",
                "    match value {\n",
                $("        ", stringify!($name), "::", stringify!($variant), " { .. } => {}\n",)+
                "    }\n",
                "}\n",
                "```",
            )]
            #[cfg(doctest)]
            pub struct $name;
        )+

        #[cfg(test)]
        #[allow(dead_code, non_snake_case)]
        mod every_variant_is_listed {
            $(
                fn $name(value: crate::$module::$name) {
                    match value {
                        $(crate::$module::$name::$variant { .. } => {})+
                    }
                }
            )+
        }
    };
}

non_exhaustive_enums! {
    chunk_io::ChunkError {
        MessageTooLong, InvalidChunkSize, ChunkSizeBelowMinimum, NoPreviousHeader,
        TooManyChunkStreams, PartialMessagesTooLarge, HeaderChangedMidMessage,
        MalformedControlMessage, InvalidChunkStreamId, PayloadTooLong
    }
    handshake::HandshakeError { UnsupportedVersion, NotStarted, AlreadyCompleted }
    proxy_protocol::ProxyError { Missing, TooLong, BadV1, BadV2 }
    messages::MessageError {
        BodyTooShort, InvalidChunkSize, UserControlTooShort, Amf0, Amf0Encode,
        MissingCommandName, MissingTransactionId, UnexpectedAmf3Format, Aggregate
    }
    messages::Amf0Problem {
        Truncated, StringPastEnd, InvalidUtf8, TooDeep, TooManyValues, UnsupportedMarker,
        UnexpectedObjectEnd, EmptyPropertyName, Rejected
    }
    messages::Amf0EncodeProblem { StringTooLong, InvalidPropertyName, TooDeep, Rejected }
    messages::AggregateProblem { TruncatedHeader, SubMessagePastEnd, UnexpectedType }
    messages::UserControlEvent {
        StreamBegin, StreamEof, StreamDry, SetBufferLength, StreamIsRecorded, PingRequest,
        PingResponse, Unknown
    }
    messages::RtmpMessage {
        SetChunkSize, Abort, Acknowledgement, UserControl, WindowAcknowledgementSize,
        SetPeerBandwidth, Audio, Video, Amf0Data, Amf0Command, Amf3Data, Amf3Command,
        SharedObject, Aggregate, Unknown
    }
    media::MediaError {
        EmptyVideoBody, Truncated, ReservedVideoFrameType, ReservedVideoPacketType,
        ReservedAudioPacketType, ReservedAvcPacketType, ReservedAacPacketType, NestedPacketType,
        ReservedMultitrackType, NoTracks, TrackOverrun
    }
    media::VideoFourCc { Avc1, Hvc1, Av01, Vp09, Vp08, Other }
    media::AudioFourCc { Mp4a, Opus, Flac, Ac3, Ec3, Mp3, Other }
    media::VideoPacketType {
        SequenceStart, CodedFrames, SequenceEnd, CodedFramesX, Metadata, Mpeg2TsSequenceStart,
        Multitrack, ModEx
    }
    media::VideoCommand { StartSeek, EndSeek, Other }
    media::AudioPacketType {
        SequenceStart, CodedFrames, SequenceEnd, MultichannelConfig, Multitrack, ModEx
    }
    media::MultitrackType { OneTrack, ManyTracks, ManyTracksManyCodecs }
    flv::FlvError {
        TruncatedHeader, BadSignature, UnsupportedVersion, BadDataOffset, Truncated,
        PreviousTagSizeMismatch, UnknownTagType, FilteredTag, NotAnFlvMessage, TagTooLarge
    }
    url::Scheme { Rtmp, Rtmps }
    url::UrlError { UnsupportedScheme, MissingHost, InvalidHost, InvalidPort, MissingApp, UnexpectedPath }
    sessions::SessionError {
        Chunk, Message, UnknownRequest, WrongRequestKind, AlreadyConnected, NotConnected,
        ConnectRejected, NotPublishing, NoStreamName, TooManyMessagesBeforeConnect,
        TooManyBytesBeforeConnect, TooManyStreams
    }
    sessions::ServerSessionEvent {
        ConnectionRequested, PublishRequested, PublishFinished, PlayRequested, PlayFinished,
        PauseChanged, ReceiveChanged, MetadataReceived, MediaReceived, AcknowledgementReceived,
        PingResponseReceived, UnhandledCommand, InvalidMessageIgnored
    }
    sessions::ClientSessionEvent {
        ConnectionAccepted, RequestRejected, PlaybackStarted, WaitingForPublisher,
        PublishStarted, StatusReceived, MetadataReceived, MediaReceived, StreamBegin, StreamEof,
        StreamDry, AcknowledgementReceived, UnhandledCommand, InvalidMessageIgnored
    }
    sessions::RejectedRequestKind { Connect, CreateStream, Play, Publish }
}

/// The blocking client's enums, with the feature that builds them.
#[cfg(feature = "blocking")]
mod blocking_client {
    non_exhaustive_enums! {
        blocking::Error { Io, Handshake, Session, Rejected, Closed, TimedOut, TlsNotSupported, NoAddress }
    }
}
