//! Enhanced RTMP codec and feature negotiation in `connect` (veovera E-RTMP v1 and v2,
//! "Enhancing NetConnection connect Command").
//!
//! The client lists what it supports in the connect command object; the server answers
//! with what it supports in the `_result` properties, under the same names:
//! - `fourCcList` (v1): a strict array of FourCC strings, `"*"` meaning any codec;
//! - `videoFourCcInfoMap`, `audioFourCcInfoMap` (v2): objects from FourCC (or `"*"`) to
//!   [`FourCcInfo`] flags;
//! - `capsEx` (v2): a number of [`CapsEx`] flags.
//!
//! A relay forwards media without decoding it, so what it supports is "forward any codec"
//! plus the multitrack and ModEx layouts it parses (see [`EnhancedCapabilities::forwarder`]).

use std::collections::HashMap;

use crate::Amf0Value;

/// Most entries read from one announced list or map. A real client names about a dozen
/// codecs; anything past this is ignored rather than copied.
pub const MAX_ANNOUNCED_CODECS: usize = 64;

/// `FourCcInfoMask` flags, the values of `videoFourCcInfoMap` / `audioFourCcInfoMap`.
#[derive(Clone, Copy, Debug)]
pub struct FourCcInfo;

impl FourCcInfo {
    /// The peer can decode this codec.
    pub const CAN_DECODE: u32 = 0x01;
    /// The peer can encode this codec.
    pub const CAN_ENCODE: u32 = 0x02;
    /// The peer can forward this codec without decoding it.
    pub const CAN_FORWARD: u32 = 0x04;
}

/// `CapsExMask` flags, the value of `capsEx`.
#[derive(Clone, Copy, Debug)]
pub struct CapsEx;

impl CapsEx {
    /// Understands `NetConnection.Connect.ReconnectRequest`.
    pub const RECONNECT: u32 = 0x01;
    /// Handles multitrack audio and video messages.
    pub const MULTITRACK: u32 = 0x02;
    /// Parses ModEx packet prefixes.
    pub const MODEX: u32 = 0x04;
    /// Handles the nanosecond timestamp offset carried in ModEx.
    pub const TIMESTAMP_NANO_OFFSET: u32 = 0x08;
}

/// Every FourCC the E-RTMP spec defines: video, then audio.
pub const KNOWN_FOURCCS: [&str; 11] = ["av01", "vp09", "vp08", "hvc1", "avc1", "ac-3", "ec-3", "Opus", ".mp3", "fLaC", "mp4a"];

/// What one side of a connection announced about Enhanced RTMP.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnhancedCapabilities {
    /// `fourCcList` entries (FourCCs or `"*"`), in the order sent.
    pub fourcc_list: Vec<String>,
    /// `videoFourCcInfoMap`: FourCC (or `"*"`) and its [`FourCcInfo`] flags.
    pub video_fourcc_info: Vec<(String, u32)>,
    /// `audioFourCcInfoMap`: FourCC (or `"*"`) and its [`FourCcInfo`] flags.
    pub audio_fourcc_info: Vec<(String, u32)>,
    /// `capsEx` [`CapsEx`] flags (0 when absent).
    pub caps_ex: u32,
}

impl EnhancedCapabilities {
    /// What a relay that forwards every codec unchanged supports: `fourCcList` with every
    /// known FourCC (for v1 peers that do not read the maps), both info maps with
    /// `"*": CanForward`, and multitrack, ModEx and nanosecond offsets in `capsEx`.
    /// Reconnect is not claimed: nothing here sends or follows a ReconnectRequest.
    pub fn forwarder() -> Self {
        let any = vec![("*".to_string(), FourCcInfo::CAN_FORWARD)];
        EnhancedCapabilities {
            fourcc_list: KNOWN_FOURCCS.iter().map(|code| code.to_string()).collect(),
            video_fourcc_info: any.clone(),
            audio_fourcc_info: any,
            caps_ex: CapsEx::MULTITRACK | CapsEx::MODEX | CapsEx::TIMESTAMP_NANO_OFFSET,
        }
    }

    /// Reads the four properties from a connect command object or a `_result` properties
    /// object. `None` when none of them is there (a legacy peer). Entries that are not
    /// a 4-character FourCC or `"*"`, or not a number, are skipped; at most
    /// [`MAX_ANNOUNCED_CODECS`] are read per list.
    pub fn from_properties(properties: &HashMap<String, Amf0Value>) -> Option<Self> {
        let list = properties.get("fourCcList");
        let video = properties.get("videoFourCcInfoMap");
        let audio = properties.get("audioFourCcInfoMap");
        let caps_ex = properties.get("capsEx");
        if list.is_none() && video.is_none() && audio.is_none() && caps_ex.is_none() {
            return None;
        }
        let fourcc_list = match list {
            Some(Amf0Value::StrictArray(values)) => values
                .iter()
                .filter_map(|value| match value {
                    Amf0Value::Utf8String(code) if is_fourcc_key(code) => Some(code.clone()),
                    _ => None,
                })
                .take(MAX_ANNOUNCED_CODECS)
                .collect(),
            _ => Vec::new(),
        };
        Some(EnhancedCapabilities {
            fourcc_list,
            video_fourcc_info: read_info_map(video),
            audio_fourcc_info: read_info_map(audio),
            caps_ex: match caps_ex {
                Some(Amf0Value::Number(value)) => flags_from_number(*value),
                _ => 0,
            },
        })
    }

    /// Writes the four properties into a command object (connect) or `_result` properties.
    pub fn write_into(&self, properties: &mut HashMap<String, Amf0Value>) {
        let text = |code: &String| Amf0Value::Utf8String(code.clone());
        let map = |entries: &[(String, u32)]| {
            Amf0Value::Object(entries.iter().map(|(code, flags)| (code.clone(), Amf0Value::Number(f64::from(*flags)))).collect())
        };
        properties.insert("fourCcList".to_string(), Amf0Value::StrictArray(self.fourcc_list.iter().map(text).collect()));
        properties.insert("videoFourCcInfoMap".to_string(), map(&self.video_fourcc_info));
        properties.insert("audioFourCcInfoMap".to_string(), map(&self.audio_fourcc_info));
        properties.insert("capsEx".to_string(), Amf0Value::Number(f64::from(self.caps_ex)));
    }

    /// The [`FourCcInfo`] flags announced for a video FourCC: a `"*"` entry overrides
    /// the codec's own (as the spec says); a `fourCcList` entry counts as every flag.
    pub fn video_flags(&self, fourcc: &str) -> u32 {
        flags_for(&self.video_fourcc_info, &self.fourcc_list, fourcc)
    }

    /// The [`FourCcInfo`] flags announced for an audio FourCC (see
    /// [`video_flags`](Self::video_flags)).
    pub fn audio_flags(&self, fourcc: &str) -> u32 {
        flags_for(&self.audio_fourcc_info, &self.fourcc_list, fourcc)
    }
}

fn is_fourcc_key(code: &str) -> bool {
    code == "*" || code.len() == 4
}

fn flags_from_number(value: f64) -> u32 {
    if value.is_finite() && value >= 0.0 && value <= f64::from(u32::MAX) {
        value as u32
    } else {
        0
    }
}

fn read_info_map(value: Option<&Amf0Value>) -> Vec<(String, u32)> {
    let Some(Amf0Value::Object(entries)) = value else { return Vec::new() };
    let mut read: Vec<(String, u32)> = entries
        .iter()
        .filter(|(code, _)| is_fourcc_key(code))
        .filter_map(|(code, flags)| match flags {
            Amf0Value::Number(flags) => Some((code.clone(), flags_from_number(*flags))),
            _ => None,
        })
        .take(MAX_ANNOUNCED_CODECS)
        .collect();
    // AMF objects arrive as a hash map: sort so equal announcements compare equal.
    read.sort();
    read
}

fn flags_for(map: &[(String, u32)], list: &[String], fourcc: &str) -> u32 {
    let all = FourCcInfo::CAN_DECODE | FourCcInfo::CAN_ENCODE | FourCcInfo::CAN_FORWARD;
    if let Some((_, flags)) = map.iter().find(|(code, _)| code == "*") {
        return *flags;
    }
    if let Some((_, flags)) = map.iter().find(|(code, _)| code == fourcc) {
        return *flags;
    }
    if list.iter().any(|code| code == "*" || code == fourcc) {
        return all;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::{ClientSession, ClientSessionConfig, ServerSession, ServerSessionConfig, ServerSessionEvent};
    use proptest::prelude::*;

    fn text(value: &str) -> Amf0Value {
        Amf0Value::Utf8String(value.to_string())
    }

    #[test]
    fn a_legacy_connect_object_announces_nothing() {
        let mut properties = HashMap::new();
        properties.insert("app".to_string(), text("live"));
        properties.insert("videoCodecs".to_string(), Amf0Value::Number(252.0));
        assert_eq!(EnhancedCapabilities::from_properties(&properties), None);
    }

    #[test]
    fn reads_all_four_properties_and_skips_what_is_not_a_fourcc() {
        let mut properties = HashMap::new();
        properties.insert(
            "fourCcList".to_string(),
            Amf0Value::StrictArray(vec![text("hvc1"), text("toolong"), Amf0Value::Number(1.0), text("*"), text("Opus")]),
        );
        let mut video = HashMap::new();
        video.insert("vp09".to_string(), Amf0Value::Number(3.0));
        video.insert("av01".to_string(), Amf0Value::Number(1.0));
        video.insert("avc1".to_string(), text("not a number"));
        properties.insert("videoFourCcInfoMap".to_string(), Amf0Value::Object(video));
        let mut audio = HashMap::new();
        audio.insert("*".to_string(), Amf0Value::Number(4.0));
        audio.insert("Opus".to_string(), Amf0Value::Number(-1.0));
        properties.insert("audioFourCcInfoMap".to_string(), Amf0Value::Object(audio));
        properties.insert("capsEx".to_string(), Amf0Value::Number(3.0));
        let caps = EnhancedCapabilities::from_properties(&properties).unwrap();
        assert_eq!(caps.fourcc_list, vec!["hvc1", "*", "Opus"]);
        assert_eq!(caps.video_fourcc_info, vec![("av01".to_string(), 1), ("vp09".to_string(), 3)]);
        assert_eq!(caps.audio_fourcc_info, vec![("*".to_string(), 4), ("Opus".to_string(), 0)]);
        assert_eq!(caps.caps_ex, CapsEx::RECONNECT | CapsEx::MULTITRACK);
        // The video map names vp09 itself; "*" in fourCcList grants the rest everything.
        assert_eq!(caps.video_flags("vp09"), FourCcInfo::CAN_DECODE | FourCcInfo::CAN_ENCODE);
        assert_eq!(caps.video_flags("hvc1"), 7);
        // The audio map's "*" overrides the codec's own entry, as the spec says.
        assert_eq!(caps.audio_flags("Opus"), FourCcInfo::CAN_FORWARD);
    }

    #[test]
    fn only_caps_ex_is_enough_to_be_enhanced() {
        let mut properties = HashMap::new();
        properties.insert("capsEx".to_string(), Amf0Value::Number(f64::NAN));
        let caps = EnhancedCapabilities::from_properties(&properties).unwrap();
        assert_eq!(caps, EnhancedCapabilities::default());
        assert_eq!(caps.video_flags("hvc1"), 0);
    }

    #[test]
    fn forwarder_round_trips_through_a_properties_object() {
        let forwarder = EnhancedCapabilities::forwarder();
        assert_eq!(forwarder.caps_ex, 0x0E);
        assert_eq!(forwarder.video_flags("av01"), FourCcInfo::CAN_FORWARD);
        let mut properties = HashMap::new();
        forwarder.write_into(&mut properties);
        assert_eq!(properties.get("capsEx"), Some(&Amf0Value::Number(14.0)));
        assert_eq!(properties.get("fourCcList").map(|list| matches!(list, Amf0Value::StrictArray(v) if v.len() == 11)), Some(true));
        assert_eq!(EnhancedCapabilities::from_properties(&properties), Some(forwarder));
    }

    /// Shuttles bytes until neither side has anything to say; accepts every request.
    fn connect(client_config: ClientSessionConfig) -> (ServerSession, ClientSession, Vec<ServerSessionEvent>) {
        let mut server = ServerSession::new(ServerSessionConfig::default());
        let mut client = ClientSession::new(client_config);
        client.connect("live", "rtmp://127.0.0.1/live").unwrap();
        let mut events = Vec::new();
        for _ in 0..10 {
            server.handle_input(&client.take_outbound()).unwrap();
            while let Some(event) = server.poll_event() {
                if let ServerSessionEvent::ConnectionRequested { request_id, .. } = &event {
                    server.accept_request(*request_id).unwrap();
                }
                events.push(event);
            }
            client.handle_input(&server.take_outbound()).unwrap();
            while client.poll_event().is_some() {}
        }
        assert!(client.is_connected());
        (server, client, events)
    }

    #[test]
    fn default_client_and_server_negotiate_enhanced_rtmp() {
        let (server, client, events) = connect(ClientSessionConfig::default());
        assert_eq!(server.peer_capabilities(), Some(&EnhancedCapabilities::forwarder()));
        assert_eq!(client.server_capabilities(), Some(&EnhancedCapabilities::forwarder()));
        let Some(ServerSessionEvent::ConnectionRequested { request, .. }) = events.first() else { panic!("{events:?}") };
        assert_eq!(request.fourcc_list, KNOWN_FOURCCS.to_vec());
    }

    #[test]
    fn a_legacy_client_gets_a_legacy_connect_result() {
        let (server, client, _) = connect(ClientSessionConfig { enhanced_rtmp: None, ..Default::default() });
        assert_eq!(server.peer_capabilities(), None);
        assert_eq!(client.server_capabilities(), None);
    }

    fn amf_leaf() -> impl Strategy<Value = Amf0Value> {
        prop_oneof![
            any::<f64>().prop_map(Amf0Value::Number),
            ".{0,6}".prop_map(Amf0Value::Utf8String),
            Just(Amf0Value::Null),
            any::<bool>().prop_map(Amf0Value::Boolean),
        ]
    }

    fn amf_value() -> impl Strategy<Value = Amf0Value> {
        amf_leaf().prop_recursive(2, 300, 150, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..150).prop_map(Amf0Value::StrictArray),
                prop::collection::hash_map(".{0,5}", inner, 0..150).prop_map(Amf0Value::Object),
            ]
        })
    }

    proptest! {
        // Whatever a client puts under the four names: no panic, and at most
        // MAX_ANNOUNCED_CODECS entries kept per list.
        #[test]
        fn any_announcement_is_read_without_panic_and_bounded(
            list in amf_value(), video in amf_value(), audio in amf_value(), caps in amf_value()
        ) {
            let mut properties = HashMap::new();
            properties.insert("fourCcList".to_string(), list);
            properties.insert("videoFourCcInfoMap".to_string(), video);
            properties.insert("audioFourCcInfoMap".to_string(), audio);
            properties.insert("capsEx".to_string(), caps);
            let caps = EnhancedCapabilities::from_properties(&properties).unwrap();
            prop_assert!(caps.fourcc_list.len() <= MAX_ANNOUNCED_CODECS);
            prop_assert!(caps.video_fourcc_info.len() <= MAX_ANNOUNCED_CODECS);
            prop_assert!(caps.audio_fourcc_info.len() <= MAX_ANNOUNCED_CODECS);
            prop_assert!(caps.fourcc_list.iter().all(|code| code == "*" || code.len() == 4));
            let _ = caps.video_flags("hvc1") | caps.audio_flags("Opus");
        }
    }
}
