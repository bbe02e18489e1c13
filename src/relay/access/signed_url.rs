//! Signed, expiring stream URLs: `NAME?exp=UNIX_SECONDS&sig=HEX`, where `HEX` is the
//! lowercase hex HMAC-SHA256, under a shared secret, of exactly `{app}/{name}:{exp}` (`name`
//! without its query, `exp` as written in the URL).
//!
//! ```
//! use rtmp_edge::relay::access::signed_url::{sign, verify, SignatureError};
//!
//! let sig = sign(b"s3cret", "live", "cam1", "1700000000");
//! let name = format!("cam1?exp=1700000000&sig={sig}");
//! assert_eq!(verify(b"s3cret", "live", &name, 1_699_999_999), Ok(()));
//! assert_eq!(verify(b"s3cret", "live", &name, 1_700_000_001), Err(SignatureError::Expired { exp: 1_700_000_000 }));
//! assert_eq!(verify(b"s3cret", "live", "cam1", 0), Err(SignatureError::Missing));
//! ```

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Hex digits in a signature: 32 bytes of HMAC-SHA256.
pub const SIGNATURE_HEX_LEN: usize = 64;
/// Most digits an `exp` may have (`u64::MAX` has 20).
const MAX_EXP_DIGITS: usize = 20;

/// Why a stream name's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The name carries no `exp` or no `sig`.
    Missing,
    /// `exp` or `sig` is there but unusable (not digits, not 64 lowercase hex digits, or
    /// given twice, so that two readers could disagree on which one counts).
    Malformed(&'static str),
    /// The signature does not match the app, name and `exp`.
    Mismatch,
    /// The signature matches, but `exp` has passed.
    Expired {
        /// The expiry the URL carries.
        exp: u64,
    },
}

impl SignatureError {
    /// A short, stable name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed(_) | SignatureError::Mismatch => "signature_invalid",
            SignatureError::Expired { .. } => "signature_expired",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Missing => write!(f, "the stream URL is not signed (it needs ?exp=...&sig=...)"),
            SignatureError::Malformed(what) => write!(f, "the stream URL's signature is malformed: {what}"),
            SignatureError::Mismatch => write!(f, "the stream URL's signature does not match"),
            SignatureError::Expired { exp } => write!(f, "the stream URL expired (exp={exp})"),
        }
    }
}

/// The lowercase hex HMAC-SHA256 of `{app}/{name}:{exp}` under `secret`.
pub fn sign(secret: &[u8], app: &str, name: &str, exp: &str) -> String {
    let digest = mac(secret, app, name, exp).map(|mac| mac.finalize().into_bytes()).unwrap_or_default();
    let mut hex = String::with_capacity(SIGNATURE_HEX_LEN);
    for byte in digest.iter() {
        hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The MAC over `{app}/{name}:{exp}`. HMAC takes keys of any length, so this is never
/// `None` in practice; callers treat `None` as a failed check rather than panicking.
fn mac(secret: &[u8], app: &str, name: &str, exp: &str) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(app.as_bytes());
    mac.update(b"/");
    mac.update(name.as_bytes());
    mac.update(b":");
    mac.update(exp.as_bytes());
    Some(mac)
}

/// Checks the signature a stream name (`name?query` as sent in publish or play) carries for
/// `app`, at `now_unix` seconds. The comparison runs in constant time. A URL is valid up to
/// and including the second `exp`.
pub fn verify(secret: &[u8], app: &str, stream_name: &str, now_unix: u64) -> Result<(), SignatureError> {
    // `{app}/{name}` cannot tell app `a` with name `b/c` from app `a/b` with name `c`, which
    // are different streams: a signature for one would admit the other. Apps are one path
    // segment (names may nest), so a signed app never contains a slash.
    if app.contains('/') {
        return Err(SignatureError::Malformed("a signed app must not contain '/'"));
    }
    let (name, query) = stream_name.split_once('?').unwrap_or((stream_name, ""));
    let (exp_text, sig_text) = signature_params(query)?;
    if exp_text.is_empty() || exp_text.len() > MAX_EXP_DIGITS || !exp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed("exp must be 1 to 20 decimal digits"));
    }
    let exp: u64 = exp_text.parse().map_err(|_| SignatureError::Malformed("exp is out of range"))?;
    let signature = decode_hex(sig_text).ok_or(SignatureError::Malformed("sig must be 64 lowercase hex digits"))?;
    let mac = mac(secret, app, name, exp_text).ok_or(SignatureError::Mismatch)?;
    mac.verify_slice(&signature).map_err(|_| SignatureError::Mismatch)?;
    if now_unix > exp {
        return Err(SignatureError::Expired { exp });
    }
    Ok(())
}

/// `exp` and `sig` from a query string, each exactly once.
fn signature_params(query: &str) -> Result<(&str, &str), SignatureError> {
    let mut exp = None;
    let mut sig = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "exp" => &mut exp,
            "sig" => &mut sig,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(SignatureError::Malformed("exp or sig is given more than once"));
        }
    }
    match (exp, sig) {
        (Some(exp), Some(sig)) => Ok((exp, sig)),
        _ => Err(SignatureError::Missing),
    }
}

/// 32 bytes from exactly 64 lowercase hex digits.
fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != SIGNATURE_HEX_LEN {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let (high, low) = match pair {
            [high, low] => (digit(*high)?, digit(*low)?),
            _ => return None,
        };
        *byte = (high << 4) | low;
    }
    Some(bytes)
}

/// `exp` and `sig` to append to a URL or stream name: `exp=EXP&sig=HEX`.
pub fn signed_query(secret: &[u8], app: &str, name: &str, exp: u64) -> String {
    let exp = exp.to_string();
    let sig = sign(secret, app, name, &exp);
    format!("exp={exp}&sig={sig}")
}

/// `url` (`rtmp[s]://HOST[:PORT]/APP/NAME[?QUERY]`) with `exp` and `sig` appended to its
/// query: what `rtmp-edge sign` prints. The URL is kept as written; the app and name are
/// read from it as a player would send them.
///
/// ```
/// use rtmp_edge::relay::access::signed_url::sign_url;
///
/// let signed = sign_url(b"s3cret", "rtmp://edge.example/live/cam1?x=1", 1_700_000_000).unwrap();
/// assert_eq!(
///     signed,
///     "rtmp://edge.example/live/cam1?x=1&exp=1700000000&sig=e127aab1b503e8c3b01f704a45db0fb7c8ffeb7835053cf77685ea88a7d06fc9"
/// );
/// ```
pub fn sign_url(secret: &[u8], url: &str, exp: u64) -> Result<String, String> {
    let parsed = crate::url::RtmpUrl::parse(url).map_err(|error| format!("{url}: {error}"))?;
    let name = parsed.stream_name().ok_or_else(|| format!("{url}: the URL names no stream (rtmp://HOST/APP/NAME)"))?;
    let already_signed = parsed.query().is_some_and(|query| {
        query.split('&').any(|pair| matches!(pair.split_once('=').map_or(pair, |(key, _)| key), "exp" | "sig"))
    });
    if already_signed {
        return Err(format!("{url}: the URL already carries exp or sig"));
    }
    let separator = if url.contains('?') {
        if url.ends_with('?') || url.ends_with('&') { "" } else { "&" }
    } else {
        "?"
    };
    Ok(format!("{url}{separator}{}", signed_query(secret, parsed.app(), name, exp)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently with Python:
    //   hmac.new(b"s3cret", b"live/cam1:1700000000", hashlib.sha256).hexdigest()
    const CAM1: &str = "e127aab1b503e8c3b01f704a45db0fb7c8ffeb7835053cf77685ea88a7d06fc9";
    //   hmac.new(b"k", b"app/sub/name:4102444800", hashlib.sha256).hexdigest()
    const NESTED: &str = "6b16185a5ce1332a19fc9ae404c3e06176b8d091359f99ab17c502e976ff1faa";
    //   hmac.new(b"s3cret", b"live/cam1:0001700000000", hashlib.sha256).hexdigest()
    const LEADING_ZEROS: &str = "d06c0017e1e572cc5e7a4d552743f1c377d05eb24e6f662788f25fefc0a7c40e";

    #[test]
    fn a_signature_for_a_nested_name_does_not_admit_a_nested_app() {
        let query = format!("name?exp=4102444800&sig={NESTED}");
        assert_eq!(verify(b"k", "app", &format!("sub/{query}"), 0), Ok(()));
        // The same bytes under the MAC, another stream: app "app/sub", name "name".
        assert_eq!(
            verify(b"k", "app/sub", &query, 0),
            Err(SignatureError::Malformed("a signed app must not contain '/'"))
        );
    }

    #[test]
    fn signatures_match_known_vectors() {
        assert_eq!(sign(b"s3cret", "live", "cam1", "1700000000"), CAM1);
        assert_eq!(sign(b"k", "app", "sub/name", "4102444800"), NESTED);
        assert_eq!(sign(b"s3cret", "live", "cam1", "0001700000000"), LEADING_ZEROS);
        assert_eq!(signed_query(b"s3cret", "live", "cam1", 1_700_000_000), format!("exp=1700000000&sig={CAM1}"));
    }

    #[test]
    fn a_valid_signature_passes_until_exp_inclusive() {
        let name = format!("cam1?exp=1700000000&sig={CAM1}");
        assert_eq!(verify(b"s3cret", "live", &name, 0), Ok(()));
        assert_eq!(verify(b"s3cret", "live", &name, 1_700_000_000), Ok(()));
        assert_eq!(verify(b"s3cret", "live", &name, 1_700_000_001), Err(SignatureError::Expired { exp: 1_700_000_000 }));
        // Other parameters, before or after, are not part of what is signed.
        let with_more = format!("cam1?token=x&sig={CAM1}&a=b&exp=1700000000&c");
        assert_eq!(verify(b"s3cret", "live", &with_more, 0), Ok(()));
        // Leading zeros are signed as written: they are another exp text, not the same one.
        let zeros = format!("cam1?exp=0001700000000&sig={LEADING_ZEROS}");
        assert_eq!(verify(b"s3cret", "live", &zeros, 0), Ok(()));
        let zeros_with_plain_sig = format!("cam1?exp=0001700000000&sig={CAM1}");
        assert_eq!(verify(b"s3cret", "live", &zeros_with_plain_sig, 0), Err(SignatureError::Mismatch));
    }

    #[test]
    fn tampering_with_app_name_exp_or_secret_is_a_mismatch() {
        let signed = format!("?exp=1700000000&sig={CAM1}");
        assert_eq!(verify(b"s3cret", "live", &format!("cam2{signed}"), 0), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"s3cret", "other", &format!("cam1{signed}"), 0), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"S3cret", "live", &format!("cam1{signed}"), 0), Err(SignatureError::Mismatch));
        let later = format!("cam1?exp=1800000000&sig={CAM1}");
        assert_eq!(verify(b"s3cret", "live", &later, 0), Err(SignatureError::Mismatch));
        // The app/name boundary: app "live/cam1" with name "" is refused before any MAC.
        assert!(matches!(verify(b"s3cret", "live/cam1", &signed, 0), Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn signed_urls_verify_as_the_relay_reads_them() {
        let signed = sign_url(b"s3cret", "rtmp://[::1]:1940/live/cam1", 1_700_000_000).unwrap();
        assert_eq!(signed, format!("rtmp://[::1]:1940/live/cam1?exp=1700000000&sig={CAM1}"));
        let name = signed.rsplit('/').next().unwrap();
        assert_eq!(verify(b"s3cret", "live", name, 0), Ok(()));
        let nested = sign_url(b"k", "rtmp://h/app/sub/name?", 4_102_444_800).unwrap();
        assert_eq!(nested, format!("rtmp://h/app/sub/name?exp=4102444800&sig={NESTED}"));
        for bad in ["rtmp://h/live", "http://h/live/x", "rtmp://h/live/x?sig=1", "rtmp://h/live/x?a=1&exp=2"] {
            assert!(sign_url(b"k", bad, 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_and_odd_encodings_are_refused() {
        assert_eq!(verify(b"s", "live", "cam1", 0), Err(SignatureError::Missing));
        assert_eq!(verify(b"s", "live", "cam1?exp=1", 0), Err(SignatureError::Missing));
        assert_eq!(verify(b"s", "live", &format!("cam1?sig={CAM1}"), 0), Err(SignatureError::Missing));
        let upper = CAM1.to_uppercase();
        let refused = [
            format!("cam1?exp=1700000000&sig={upper}"),
            format!("cam1?exp=1700000000&sig={}", &CAM1[..62]),
            format!("cam1?exp=1700000000&sig={CAM1}00"),
            format!("cam1?exp=1700000000&sig=%65{}", &CAM1[1..]),
            format!("cam1?exp=+1700000000&sig={CAM1}"),
            format!("cam1?exp=-1&sig={CAM1}"),
            format!("cam1?exp=&sig={CAM1}"),
            format!("cam1?exp=1700000000%00&sig={CAM1}"),
            format!("cam1?exp=99999999999999999999&sig={CAM1}"),
            format!("cam1?exp=123456789012345678901&sig={CAM1}"),
            format!("cam1?exp=1700000000&exp=1&sig={CAM1}"),
            format!("cam1?exp=1700000000&sig={CAM1}&sig={CAM1}"),
            format!("cam1?exp=1700000000&sig=é{}", &CAM1[2..]),
        ];
        for name in refused {
            assert!(
                matches!(verify(b"s3cret", "live", &name, 0), Err(SignatureError::Malformed(_))),
                "{name} must be refused as malformed"
            );
        }
    }
}
