//! Status objects (`onStatus`, `_result`, `_error`) and AMF helpers shared by both roles.

use std::collections::HashMap;

use super::events::{StatusInfo, StreamMetadata};
use crate::Amf0Value;

/// Status codes players and encoders understand.
pub mod codes {
    /// connect accepted.
    pub const CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
    /// connect refused.
    pub const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
    /// A call failed.
    pub const CALL_FAILED: &str = "NetConnection.Call.Failed";
    /// publish accepted.
    pub const PUBLISH_START: &str = "NetStream.Publish.Start";
    /// publish refused: the name is in use or not allowed.
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    /// publish refused for another reason.
    pub const PUBLISH_DENIED: &str = "NetStream.Publish.Denied";
    /// A publisher stopped.
    pub const UNPUBLISH_SUCCESS: &str = "NetStream.Unpublish.Success";
    /// play: the playlist was reset.
    pub const PLAY_RESET: &str = "NetStream.Play.Reset";
    /// play accepted.
    pub const PLAY_START: &str = "NetStream.Play.Start";
    /// play: the stream ended.
    pub const PLAY_STOP: &str = "NetStream.Play.Stop";
    /// play refused: no such stream.
    pub const PLAY_STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
    /// play refused for another reason.
    pub const PLAY_FAILED: &str = "NetStream.Play.Failed";
    /// A stream being played started publishing.
    pub const PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
    /// A stream being played stopped publishing.
    pub const PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
    /// Pause accepted.
    pub const PAUSE_NOTIFY: &str = "NetStream.Pause.Notify";
    /// Unpause accepted.
    pub const UNPAUSE_NOTIFY: &str = "NetStream.Unpause.Notify";
    /// Data messages follow.
    pub const DATA_START: &str = "NetStream.Data.Start";
}

/// An AMF0 object `{level, code, description}` (plus extra properties).
pub(super) fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    let mut properties = HashMap::with_capacity(4);
    properties.insert("level".to_string(), Amf0Value::Utf8String(level.to_string()));
    properties.insert("code".to_string(), Amf0Value::Utf8String(code.to_string()));
    properties.insert("description".to_string(), Amf0Value::Utf8String(description.to_string()));
    Amf0Value::Object(properties)
}

/// Reads `{level, code, description}` from whatever value a peer sent; missing fields are
/// empty strings rather than errors, because peers leave them out.
pub(super) fn read_status(value: &Amf0Value) -> StatusInfo {
    let text = |key: &str| match value {
        Amf0Value::Object(properties) => match properties.get(key) {
            Some(Amf0Value::Utf8String(text)) => text.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    StatusInfo { level: text("level"), code: text("code"), description: text("description") }
}

pub(super) fn string_property(properties: &HashMap<String, Amf0Value>, key: &str) -> Option<String> {
    match properties.get(key) {
        Some(Amf0Value::Utf8String(text)) => Some(text.clone()),
        _ => None,
    }
}

pub(super) fn as_string(value: Option<&Amf0Value>) -> Option<&str> {
    match value {
        Some(Amf0Value::Utf8String(text)) => Some(text),
        _ => None,
    }
}

pub(super) fn as_number(value: Option<&Amf0Value>) -> Option<f64> {
    match value {
        Some(Amf0Value::Number(number)) => Some(*number),
        _ => None,
    }
}

pub(super) fn as_bool(value: Option<&Amf0Value>) -> Option<bool> {
    match value {
        Some(Amf0Value::Boolean(flag)) => Some(*flag),
        // Some encoders send 0/1 where the spec says boolean.
        Some(Amf0Value::Number(number)) => Some(*number != 0.0),
        _ => None,
    }
}

/// The AMF0 bytes of `@setDataFrame` as a string value: marker, length, text.
pub(super) const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
/// The AMF0 bytes of `onMetaData` as a string value.
const ON_META_DATA: &[u8] = b"\x02\x00\x0aonMetaData";

/// Recognises metadata in an AMF0 data body, with or without `@setDataFrame`, and keeps
/// the body players should get (starting at `onMetaData`) as a zero-copy slice.
pub(super) fn read_metadata(body: &bytes::Bytes, values: &[Amf0Value]) -> Option<StreamMetadata> {
    let (raw, rest) = if body.starts_with(SET_DATA_FRAME) {
        (body.slice(SET_DATA_FRAME.len()..), values.get(1..).unwrap_or_default())
    } else {
        (body.clone(), values)
    };
    if !raw.starts_with(ON_META_DATA) {
        return None;
    }
    let properties = match rest.get(1) {
        Some(Amf0Value::Object(properties)) => properties.clone(),
        _ => HashMap::new(),
    };
    Some(StreamMetadata { raw, properties })
}

/// Whether an AMF0 data body is metadata, by its leading bytes alone (for bodies whose
/// AMF could not be parsed: they still pass through).
pub(super) fn looks_like_metadata(body: &[u8]) -> bool {
    body.starts_with(ON_META_DATA) || body.strip_prefix(SET_DATA_FRAME).is_some_and(|rest| rest.starts_with(ON_META_DATA))
}

/// Whether an AMF0 data body starts with `@setDataFrame` (an encoder's metadata).
pub(super) fn is_set_data_frame(body: &[u8]) -> bool {
    body.starts_with(SET_DATA_FRAME)
}
