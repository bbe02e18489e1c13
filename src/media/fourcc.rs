//! The FourCC codec identifiers of Enhanced RTMP.

/// A video codec named by FourCC in an enhanced video header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoFourCc {
    /// `avc1`: H.264 / AVC.
    Avc1,
    /// `hvc1`: H.265 / HEVC.
    Hvc1,
    /// `av01`: AV1.
    Av01,
    /// `vp09`: VP9.
    Vp09,
    /// `vp08`: VP8.
    Vp08,
    /// Any other FourCC, kept so a relay can forward codecs it does not know.
    Other([u8; 4]),
}

impl VideoFourCc {
    /// Names the codec from the four bytes on the wire.
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        match &bytes {
            b"avc1" => VideoFourCc::Avc1,
            b"hvc1" => VideoFourCc::Hvc1,
            b"av01" => VideoFourCc::Av01,
            b"vp09" => VideoFourCc::Vp09,
            b"vp08" => VideoFourCc::Vp08,
            _ => VideoFourCc::Other(bytes),
        }
    }

    /// The four bytes on the wire.
    pub const fn to_bytes(self) -> [u8; 4] {
        match self {
            VideoFourCc::Avc1 => *b"avc1",
            VideoFourCc::Hvc1 => *b"hvc1",
            VideoFourCc::Av01 => *b"av01",
            VideoFourCc::Vp09 => *b"vp09",
            VideoFourCc::Vp08 => *b"vp08",
            VideoFourCc::Other(bytes) => bytes,
        }
    }

    /// Whether coded frames of this codec carry a 24-bit composition time offset
    /// (the ISO BMFF based H.264/H.265 layouts do; AV1 and VP8/9 do not).
    pub const fn has_composition_time(self) -> bool {
        matches!(self, VideoFourCc::Avc1 | VideoFourCc::Hvc1)
    }
}

/// An audio codec named by FourCC in an enhanced audio header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioFourCc {
    /// `mp4a`: AAC.
    Mp4a,
    /// `Opus`.
    Opus,
    /// `fLaC`: FLAC.
    Flac,
    /// `ac-3`: Dolby AC-3.
    Ac3,
    /// `ec-3`: Dolby E-AC-3.
    Ec3,
    /// `.mp3`: MP3.
    Mp3,
    /// Any other FourCC, kept so a relay can forward codecs it does not know.
    Other([u8; 4]),
}

impl AudioFourCc {
    /// Names the codec from the four bytes on the wire.
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        match &bytes {
            b"mp4a" => AudioFourCc::Mp4a,
            b"Opus" => AudioFourCc::Opus,
            b"fLaC" => AudioFourCc::Flac,
            b"ac-3" => AudioFourCc::Ac3,
            b"ec-3" => AudioFourCc::Ec3,
            b".mp3" => AudioFourCc::Mp3,
            _ => AudioFourCc::Other(bytes),
        }
    }

    /// The four bytes on the wire.
    pub const fn to_bytes(self) -> [u8; 4] {
        match self {
            AudioFourCc::Mp4a => *b"mp4a",
            AudioFourCc::Opus => *b"Opus",
            AudioFourCc::Flac => *b"fLaC",
            AudioFourCc::Ac3 => *b"ac-3",
            AudioFourCc::Ec3 => *b"ec-3",
            AudioFourCc::Mp3 => *b".mp3",
            AudioFourCc::Other(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_fourcc_round_trips() {
        for (bytes, fourcc) in [
            (*b"avc1", VideoFourCc::Avc1),
            (*b"hvc1", VideoFourCc::Hvc1),
            (*b"av01", VideoFourCc::Av01),
            (*b"vp09", VideoFourCc::Vp09),
            (*b"vp08", VideoFourCc::Vp08),
            (*b"xyz0", VideoFourCc::Other(*b"xyz0")),
        ] {
            assert_eq!(VideoFourCc::from_bytes(bytes), fourcc);
            assert_eq!(fourcc.to_bytes(), bytes);
        }
        for (bytes, fourcc) in [
            (*b"mp4a", AudioFourCc::Mp4a),
            (*b"Opus", AudioFourCc::Opus),
            (*b"fLaC", AudioFourCc::Flac),
            (*b"ac-3", AudioFourCc::Ac3),
            (*b"ec-3", AudioFourCc::Ec3),
            (*b".mp3", AudioFourCc::Mp3),
            (*b"opus", AudioFourCc::Other(*b"opus")),
        ] {
            assert_eq!(AudioFourCc::from_bytes(bytes), fourcc);
            assert_eq!(fourcc.to_bytes(), bytes);
        }
    }
}
