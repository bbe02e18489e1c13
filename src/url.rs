//! RTMP URLs: `rtmp[s]://HOST[:PORT]/APP[/STREAM][?QUERY]`.
//!
//! An RTMP URL names a server, an application (the first path segment, sent in
//! `connect`), and usually a stream (the rest of the path, sent in `play` or `publish`).
//! [`RtmpUrl::parse`] splits it the way nginx-rtmp, ffmpeg and OBS do, and gives the
//! `tcUrl` a client sends in `connect`.
//!
//! **The query.** Everything after the first `?` is the query, kept apart from the path
//! ([`RtmpUrl::query`]). Clients send it with the stream name (`play("name?key=value")`,
//! which [`RtmpUrl::play_path`] gives), as ffmpeg and OBS do with
//! `rtmp://host/app/name?key=value`, so servers see it where they look for tokens. Neither
//! the app in `connect` nor the `tcUrl` carries it. A `?` inside the app part
//! (`rtmp://host/app?x=1/name`) therefore starts the query too: the app is `app`, and the
//! stream name is part of the query, not a name.
//!
//! ```
//! use rtmp_edge::url::{RtmpUrl, Scheme};
//!
//! let url = RtmpUrl::parse("rtmp://example.com/live/cam/1?token=abc")?;
//! assert_eq!(url.scheme(), Scheme::Rtmp);
//! assert_eq!((url.host(), url.port()), ("example.com", 1935));
//! assert_eq!(url.app(), "live");
//! assert_eq!(url.stream_name(), Some("cam/1"));
//! assert_eq!(url.query(), Some("token=abc"));
//! assert_eq!(url.play_path().as_deref(), Some("cam/1?token=abc"));
//! assert_eq!(url.tc_url(), "rtmp://example.com:1935/live");
//! assert_eq!(url.to_string(), "rtmp://example.com:1935/live/cam/1?token=abc");
//!
//! let secure = RtmpUrl::parse("rtmps://[::1]/app")?;
//! assert_eq!((secure.host(), secure.port(), secure.stream_name()), ("::1", 443, None));
//! assert_eq!(secure.tc_url(), "rtmps://[::1]:443/app");
//! # Ok::<(), rtmp_edge::url::UrlError>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// `rtmp` (plain TCP) or `rtmps` (RTMP over TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `rtmp://`, port 1935 by default.
    Rtmp,
    /// `rtmps://`, RTMP inside TLS, port 443 by default (what platform ingests use).
    Rtmps,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
        }
    }

    /// `"rtmp"` or `"rtmps"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not an RTMP URL this library can use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not `rtmp` or `rtmps` (`rtmpe`, `rtmpt`, `http`...), or is missing.
    /// Holds what came before `://`, empty when there was no `://`.
    UnsupportedScheme(String),
    /// Nothing between `://` and the path.
    MissingHost,
    /// The host part holds something a host cannot (`user@`, a space, an unclosed `[`).
    InvalidHost(String),
    /// The port is not a number from 1 to 65535.
    InvalidPort(String),
    /// No application: the URL has no path, or its first segment is empty.
    MissingApp,
    /// A path where only a server belongs (an origin names a server, not an app).
    UnexpectedPath(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::UnsupportedScheme(scheme) if scheme.is_empty() => {
                write!(f, "not an RTMP URL: it must start with rtmp:// or rtmps://")
            }
            UrlError::UnsupportedScheme(scheme) => {
                write!(f, "unsupported scheme {scheme:?}: only rtmp:// and rtmps:// are supported")
            }
            UrlError::MissingHost => write!(f, "no host in the URL"),
            UrlError::InvalidHost(host) => write!(f, "invalid host {host:?}"),
            UrlError::InvalidPort(port) => write!(f, "invalid port {port:?}: it must be 1 to 65535"),
            UrlError::MissingApp => write!(f, "no application in the URL (rtmp://HOST/APP/STREAM)"),
            UrlError::UnexpectedPath(path) => {
                write!(f, "unexpected path {path:?}: name the server only (HOST[:PORT] or rtmps://HOST[:PORT])")
            }
        }
    }
}

impl std::error::Error for UrlError {}

/// A parsed `rtmp[s]://HOST[:PORT]/APP[/STREAM][?QUERY]`. See the [module docs](self).
///
/// The app is never empty; the stream name and the query are `None` when absent (never
/// empty strings). IPv6 hosts are held without their brackets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RtmpUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    app: String,
    stream_name: Option<String>,
    query: Option<String>,
}

impl RtmpUrl {
    /// Parses an RTMP URL. The scheme is matched in any letter case.
    pub fn parse(text: &str) -> Result<RtmpUrl, UrlError> {
        let (scheme_text, rest) = text.split_once("://").ok_or_else(|| UrlError::UnsupportedScheme(String::new()))?;
        let scheme = if scheme_text.eq_ignore_ascii_case("rtmp") {
            Scheme::Rtmp
        } else if scheme_text.eq_ignore_ascii_case("rtmps") {
            Scheme::Rtmps
        } else {
            return Err(UrlError::UnsupportedScheme(scheme_text.to_string()));
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, non_empty(query)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (before_query, ""),
        };
        let (host, port) = parse_host_port(authority, scheme.default_port())?;
        let (app, stream_name) = match path.split_once('/') {
            Some((app, name)) => (app, non_empty(name)),
            None => (path, None),
        };
        if app.is_empty() {
            return Err(UrlError::MissingApp);
        }
        Ok(RtmpUrl { scheme, host, port, app: app.to_string(), stream_name, query })
    }

    /// `rtmp` or `rtmps`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or address, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the URL's, or the scheme's default (1935 for rtmp, 443 for rtmps).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application: the first path segment, sent as `app` in `connect`.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The stream name: the rest of the path after the app (it may contain `/`), without
    /// the query. `None` when the URL names only an app.
    pub fn stream_name(&self) -> Option<&str> {
        self.stream_name.as_deref()
    }

    /// What followed the first `?`, without the `?`. `None` when there was none (or it was
    /// empty).
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The stream name as `play` and `publish` send it: the name, then `?query` when the
    /// URL has one. `None` when the URL names no stream.
    pub fn play_path(&self) -> Option<String> {
        let name = self.stream_name.as_deref()?;
        Some(match &self.query {
            Some(query) => format!("{name}?{query}"),
            None => name.to_string(),
        })
    }

    /// The `tcUrl` to send in `connect`: `scheme://host:port/app`, with no stream name and
    /// no query.
    pub fn tc_url(&self) -> String {
        tc_url(self.scheme, &self.host, self.port, &self.app)
    }

    /// `host:port`, with brackets around an IPv6 host: what `TcpStream::connect` takes.
    pub fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The same server, app and query, naming another stream (e.g. a relay forwarding a
    /// local stream to an origin URL that names only the app). An empty name names none.
    pub fn with_stream_name(&self, stream_name: &str) -> RtmpUrl {
        RtmpUrl { stream_name: non_empty(stream_name), ..self.clone() }
    }
}

impl fmt::Display for RtmpUrl {
    /// The URL in full, with the port always written: parsing the result gives an equal
    /// `RtmpUrl`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.scheme, self.authority(), self.app)?;
        if let Some(name) = &self.stream_name {
            write!(f, "/{name}")?;
        }
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

impl FromStr for RtmpUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<RtmpUrl, UrlError> {
        RtmpUrl::parse(text)
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// `host:port`, with brackets around an IPv6 host (one that contains `:`): the inverse
/// of [`parse_host_port`], and what `TcpStream::connect` takes.
///
/// ```
/// use rtmp_edge::url::join_host_port;
///
/// assert_eq!(join_host_port("origin.example", 1935), "origin.example:1935");
/// assert_eq!(join_host_port("::1", 1940), "[::1]:1940");
/// ```
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `tcUrl` a client sends in `connect` to reach `app` on a server it knows by parts
/// rather than by an [`RtmpUrl`] (a relay's origin given as `host:port`, say):
/// `scheme://host:port/app`, the host bracketed when it is IPv6. [`RtmpUrl::tc_url`] gives
/// the same for a parsed URL.
///
/// ```
/// use rtmp_edge::url::{tc_url, Scheme};
///
/// assert_eq!(tc_url(Scheme::Rtmp, "10.0.0.1", 1935, "live"), "rtmp://10.0.0.1:1935/live");
/// assert_eq!(tc_url(Scheme::Rtmps, "::1", 443, "live"), "rtmps://[::1]:443/live");
/// ```
pub fn tc_url(scheme: Scheme, host: &str, port: u16, app: &str) -> String {
    format!("{scheme}://{}/{app}", join_host_port(host, port))
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port` (the part of a URL between `://`
/// and the path, or an address given on its own, like an origin), with `default_port`
/// when none is given. The host comes back without brackets.
///
/// ```
/// use rtmp_edge::url::{parse_host_port, UrlError};
///
/// assert_eq!(parse_host_port("origin.example", 1935), Ok(("origin.example".to_string(), 1935)));
/// assert_eq!(parse_host_port("[::1]:1940", 1935), Ok(("::1".to_string(), 1940)));
/// assert_eq!(parse_host_port("h:99999", 1935), Err(UrlError::InvalidPort("99999".to_string())));
/// ```
pub fn parse_host_port(authority: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| UrlError::InvalidHost(authority.to_string()))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(UrlError::InvalidHost(authority.to_string())),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            // An IPv6 address needs its brackets, or its last group would read as a port.
            Some((host, _)) if host.contains(':') => return Err(UrlError::InvalidHost(authority.to_string())),
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if host.chars().any(|c| c.is_whitespace() || matches!(c, '@' | '[' | ']' | '/' | '\\')) {
        return Err(UrlError::InvalidHost(host.to_string()));
    }
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(UrlError::InvalidPort(text.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

/// Splits a server address as an origin is given: `host[:port]` (plain RTMP, port 1935),
/// or `rtmp://host[:port]` and `rtmps://host[:port]` (TLS, port 443), with no path (a
/// lone `/` is allowed). The host comes back without brackets.
///
/// ```
/// use rtmp_edge::url::{parse_origin, Scheme};
///
/// assert_eq!(parse_origin("origin.example"), Ok((Scheme::Rtmp, "origin.example".to_string(), 1935)));
/// assert_eq!(parse_origin("rtmps://origin.example"), Ok((Scheme::Rtmps, "origin.example".to_string(), 443)));
/// assert_eq!(parse_origin("rtmps://[::1]:8443/"), Ok((Scheme::Rtmps, "::1".to_string(), 8443)));
/// assert!(parse_origin("rtmp://origin.example/live").is_err());
/// ```
pub fn parse_origin(text: &str) -> Result<(Scheme, String, u16), UrlError> {
    let (scheme, rest) = match text.split_once("://") {
        None => (Scheme::Rtmp, text),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("rtmp") => (Scheme::Rtmp, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("rtmps") => (Scheme::Rtmps, rest),
        Some((scheme, _)) => return Err(UrlError::UnsupportedScheme(scheme.to_string())),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        return Err(UrlError::UnexpectedPath(path.to_string()));
    }
    let (host, port) = parse_host_port(authority, scheme.default_port())?;
    Ok((scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_with_and_without_a_scheme() {
        assert_eq!(parse_origin("h:1940"), Ok((Scheme::Rtmp, "h".into(), 1940)));
        assert_eq!(parse_origin("RTMP://h"), Ok((Scheme::Rtmp, "h".into(), 1935)));
        assert_eq!(parse_origin("rtmps://h:1941"), Ok((Scheme::Rtmps, "h".into(), 1941)));
        assert_eq!(parse_origin("rtmps://h/"), Ok((Scheme::Rtmps, "h".into(), 443)));
        assert_eq!(parse_origin("rtmps://h/live"), Err(UrlError::UnexpectedPath("live".into())));
        assert_eq!(parse_origin("http://h"), Err(UrlError::UnsupportedScheme("http".into())));
        assert_eq!(parse_origin("rtmps://"), Err(UrlError::MissingHost));
        assert_eq!(parse_origin("h:x"), Err(UrlError::InvalidPort("x".into())));
    }

    fn parts(url: &RtmpUrl) -> (Scheme, &str, u16, &str, Option<&str>, Option<&str>) {
        (url.scheme(), url.host(), url.port(), url.app(), url.stream_name(), url.query())
    }

    #[test]
    fn splits_every_part() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1:1940/app/key?x=1").unwrap();
        assert_eq!(parts(&url), (Scheme::Rtmp, "127.0.0.1", 1940, "app", Some("key"), Some("x=1")));
        assert_eq!(url.play_path().as_deref(), Some("key?x=1"));
        assert_eq!(url.tc_url(), "rtmp://127.0.0.1:1940/app");
        assert_eq!(url.authority(), "127.0.0.1:1940");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(RtmpUrl::parse("rtmp://h/live").unwrap().port(), 1935);
        assert_eq!(RtmpUrl::parse("rtmps://h/live").unwrap().port(), 443);
        assert_eq!(RtmpUrl::parse("RTMPS://h:8443/live").unwrap().port(), 8443);
        assert_eq!(RtmpUrl::parse("RTMP://h/live").unwrap().scheme(), Scheme::Rtmp);
    }

    #[test]
    fn app_only_urls_name_no_stream() {
        for text in ["rtmp://h/live", "rtmp://h/live/"] {
            let url = RtmpUrl::parse(text).unwrap();
            assert_eq!(parts(&url), (Scheme::Rtmp, "h", 1935, "live", None, None), "{text}");
            assert_eq!(url.play_path(), None);
        }
        let url = RtmpUrl::parse("rtmp://h/live?token=t").unwrap();
        assert_eq!((url.stream_name(), url.query()), (None, Some("token=t")));
        assert_eq!(url.with_stream_name("cam").play_path().as_deref(), Some("cam?token=t"));
        assert_eq!(url.with_stream_name("").stream_name(), None);
    }

    #[test]
    fn stream_names_keep_their_slashes() {
        let url = RtmpUrl::parse("rtmp://h/live/a/b/c").unwrap();
        assert_eq!(url.stream_name(), Some("a/b/c"));
    }

    #[test]
    fn the_first_question_mark_starts_the_query() {
        let url = RtmpUrl::parse("rtmp://h/live?x=1/name?y=2").unwrap();
        assert_eq!((url.app(), url.stream_name(), url.query()), ("live", None, Some("x=1/name?y=2")));
        let url = RtmpUrl::parse("rtmp://h/live/name?").unwrap();
        assert_eq!((url.stream_name(), url.query()), (Some("name"), None));
    }

    #[test]
    fn ipv6_hosts() {
        let url = RtmpUrl::parse("rtmp://[::1]:99/live/s").unwrap();
        assert_eq!((url.host(), url.port()), ("::1", 99));
        assert_eq!(url.authority(), "[::1]:99");
        assert_eq!(url.to_string(), "rtmp://[::1]:99/live/s");
        assert_eq!(RtmpUrl::parse("rtmp://[fe80::1]/live").unwrap().port(), 1935);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "rtmp://h/live",
            "rtmps://h/live/s?q=1",
            "rtmp://[::1]/a/b/c",
            "rtmp://host.example:1/app?only=query",
        ] {
            let url = RtmpUrl::parse(text).unwrap();
            assert_eq!(RtmpUrl::parse(&url.to_string()).unwrap(), url, "{text} -> {url}");
            assert_eq!(text.parse::<RtmpUrl>().unwrap(), url);
        }
    }

    #[test]
    fn typed_errors() {
        let cases: &[(&str, UrlError)] = &[
            ("http://h/live", UrlError::UnsupportedScheme("http".into())),
            ("rtmpe://h/live", UrlError::UnsupportedScheme("rtmpe".into())),
            ("h/live", UrlError::UnsupportedScheme(String::new())),
            ("rtmp:///live", UrlError::MissingHost),
            ("rtmp://:1935/live", UrlError::MissingHost),
            ("rtmp://h", UrlError::MissingApp),
            ("rtmp://h/", UrlError::MissingApp),
            ("rtmp://h//stream", UrlError::MissingApp),
            ("rtmp://h:0/live", UrlError::InvalidPort("0".into())),
            ("rtmp://h:65536/live", UrlError::InvalidPort("65536".into())),
            ("rtmp://h:+1/live", UrlError::InvalidPort("+1".into())),
            ("rtmp://h:/live", UrlError::InvalidPort(String::new())),
            ("rtmp://user@h/live", UrlError::InvalidHost("user@h".into())),
            ("rtmp://[::1/live", UrlError::InvalidHost("[::1".into())),
            ("rtmp://[::1]x/live", UrlError::InvalidHost("[::1]x".into())),
            ("rtmp://a b/live", UrlError::InvalidHost("a b".into())),
            ("rtmp://::1/live", UrlError::InvalidHost("::1".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(RtmpUrl::parse(text).as_ref(), Err(expected), "{text}");
            assert!(!expected.to_string().is_empty());
        }
    }
}
