//! What a stream carries, for the API: codec names from the first audio and video tag
//! headers, picture size from the metadata. Each is read once per source.

use std::fmt;

use crate::media::{AudioCodec, AudioFourCc, AudioTagHeader, VideoCodec, VideoFourCc, VideoTagHeader};
use crate::messages::decode_amf0;
use crate::sessions::MediaKind;
use crate::Amf0Value;

/// A codec as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecName {
    /// A codec this relay knows: `h264`, `hevc`, `aac`, `opus`...
    Known(&'static str),
    /// An E-RTMP FourCC this relay does not know, as sent.
    FourCc([u8; 4]),
    /// A legacy FLV codec id this relay does not know.
    LegacyId(u8),
}

impl fmt::Display for CodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecName::Known(name) => f.write_str(name),
            CodecName::FourCc(code) => {
                for byte in code {
                    let c = if byte.is_ascii_graphic() { char::from(*byte) } else { '?' };
                    write!(f, "{c}")?;
                }
                Ok(())
            }
            CodecName::LegacyId(id) => write!(f, "flv-codec-{id}"),
        }
    }
}

/// Codecs and picture size of a stream's current source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// Video codec, once a video message was seen.
    pub video: Option<CodecName>,
    /// Audio codec, once an audio message was seen.
    pub audio: Option<CodecName>,
    /// Width from `onMetaData`.
    pub width: Option<u32>,
    /// Height from `onMetaData`.
    pub height: Option<u32>,
}

impl MediaInfo {
    /// Notes the codec of a media message, if not known yet.
    pub fn observe(&mut self, kind: MediaKind, body: &[u8]) {
        match kind {
            MediaKind::Video if self.video.is_none() => self.video = video_codec(body),
            MediaKind::Audio if self.audio.is_none() => self.audio = audio_codec(body),
            _ => {}
        }
    }

    /// Notes width and height from an `onMetaData` body (`"onMetaData"`, then its object).
    pub fn observe_metadata(&mut self, raw: &[u8]) {
        let Ok(values) = decode_amf0(raw) else { return };
        let Some(Amf0Value::Object(properties)) = values.into_iter().find(|v| matches!(v, Amf0Value::Object(_))) else {
            return;
        };
        let dimension = |name: &str| match properties.get(name) {
            Some(Amf0Value::Number(value)) if value.is_finite() && *value >= 1.0 && *value <= 65_535.0 => Some(*value as u32),
            _ => None,
        };
        self.width = dimension("width");
        self.height = dimension("height");
    }
}

fn video_codec(body: &[u8]) -> Option<CodecName> {
    let header = VideoTagHeader::parse(body).ok()?;
    let codec = match header.codec {
        Some(codec) => codec,
        // Multitrack: name the first track's codec.
        None => VideoCodec::FourCc(header.tracks(body).next()?.ok()?.codec),
    };
    Some(match codec {
        VideoCodec::Legacy(2) => CodecName::Known("h263"),
        VideoCodec::Legacy(3) => CodecName::Known("screen"),
        VideoCodec::Legacy(4) => CodecName::Known("vp6"),
        VideoCodec::Legacy(5) => CodecName::Known("vp6a"),
        VideoCodec::Legacy(6) => CodecName::Known("screen2"),
        VideoCodec::Legacy(7) | VideoCodec::FourCc(VideoFourCc::Avc1) => CodecName::Known("h264"),
        VideoCodec::Legacy(12) | VideoCodec::FourCc(VideoFourCc::Hvc1) => CodecName::Known("hevc"),
        VideoCodec::Legacy(id) => CodecName::LegacyId(id),
        VideoCodec::FourCc(VideoFourCc::Av01) => CodecName::Known("av1"),
        VideoCodec::FourCc(VideoFourCc::Vp09) => CodecName::Known("vp9"),
        VideoCodec::FourCc(VideoFourCc::Vp08) => CodecName::Known("vp8"),
        VideoCodec::FourCc(VideoFourCc::Other(code)) => CodecName::FourCc(code),
    })
}

fn audio_codec(body: &[u8]) -> Option<CodecName> {
    let header = AudioTagHeader::parse(body).ok()?;
    let codec = match header.codec {
        Some(codec) => codec,
        None => AudioCodec::FourCc(header.tracks(body).next()?.ok()?.codec),
    };
    Some(match codec {
        AudioCodec::Legacy(0) | AudioCodec::Legacy(3) => CodecName::Known("pcm"),
        AudioCodec::Legacy(1) => CodecName::Known("adpcm"),
        AudioCodec::Legacy(2) | AudioCodec::Legacy(14) | AudioCodec::FourCc(AudioFourCc::Mp3) => CodecName::Known("mp3"),
        AudioCodec::Legacy(4..=6) => CodecName::Known("nellymoser"),
        AudioCodec::Legacy(7) => CodecName::Known("g711a"),
        AudioCodec::Legacy(8) => CodecName::Known("g711u"),
        AudioCodec::Legacy(10) | AudioCodec::FourCc(AudioFourCc::Mp4a) => CodecName::Known("aac"),
        AudioCodec::Legacy(11) => CodecName::Known("speex"),
        AudioCodec::Legacy(id) => CodecName::LegacyId(id),
        AudioCodec::FourCc(AudioFourCc::Opus) => CodecName::Known("opus"),
        AudioCodec::FourCc(AudioFourCc::Flac) => CodecName::Known("flac"),
        AudioCodec::FourCc(AudioFourCc::Ac3) => CodecName::Known("ac3"),
        AudioCodec::FourCc(AudioFourCc::Ec3) => CodecName::Known("eac3"),
        AudioCodec::FourCc(AudioFourCc::Other(code)) => CodecName::FourCc(code),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::messages::encode_amf0;

    #[test]
    fn legacy_and_enhanced_headers_name_their_codecs() {
        let mut info = MediaInfo::default();
        info.observe(MediaKind::Video, &[0x17, 0x00, 0, 0, 0, 0x01]);
        info.observe(MediaKind::Audio, &[0xAF, 0x00, 0x12, 0x10]);
        assert_eq!(info.video.map(|c| c.to_string()).as_deref(), Some("h264"));
        assert_eq!(info.audio.map(|c| c.to_string()).as_deref(), Some("aac"));
        // Known once: a later message of another codec does not change it.
        info.observe(MediaKind::Video, &[0x90, b'h', b'v', b'c', b'1']);
        assert_eq!(info.video, Some(CodecName::Known("h264")));
        let mut enhanced = MediaInfo::default();
        enhanced.observe(MediaKind::Video, &[0x90, b'h', b'v', b'c', b'1', 0, 0, 0]);
        assert_eq!(enhanced.video, Some(CodecName::Known("hevc")));
        enhanced.observe(MediaKind::Audio, &[]);
        assert_eq!(enhanced.audio, None, "an empty message names no codec");
    }

    #[test]
    fn width_and_height_come_from_on_metadata() {
        let mut properties = HashMap::new();
        properties.insert("width".to_string(), Amf0Value::Number(1280.0));
        properties.insert("height".to_string(), Amf0Value::Number(720.0));
        properties.insert("framerate".to_string(), Amf0Value::Number(25.0));
        let raw = encode_amf0(&[Amf0Value::Utf8String("onMetaData".into()), Amf0Value::Object(properties)]).unwrap();
        let mut info = MediaInfo::default();
        info.observe_metadata(&raw);
        assert_eq!((info.width, info.height), (Some(1280), Some(720)));
        info.observe_metadata(b"\x02garbage");
        assert_eq!((info.width, info.height), (Some(1280), Some(720)), "unreadable metadata changes nothing");
    }
}
