//! Upstream links: pulls from an origin, forwards of local publishes, and `--push` targets.
//! The connections themselves are ordinary [`Conn`](super::conn::Conn)s driven by a
//! `ClientSession`; this module holds what outlives one connection (target, backoff).

use std::fmt;
use std::time::{Duration, Instant};

use mio::Token;

/// Where an upstream connection goes: `rtmp://HOST[:PORT]/APP[/NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address, resolved at connect time.
    pub host: String,
    /// TCP port (1935 when the URL has none).
    pub port: u16,
    /// Application.
    pub app: String,
    /// Stream name, when the URL names one.
    pub name: Option<String>,
}

impl RtmpUrl {
    /// Parses `rtmp://HOST[:PORT]/APP[/NAME]`.
    pub fn parse(text: &str) -> Result<RtmpUrl, String> {
        let rest = text
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{text:?}: only rtmp:// URLs are supported"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| format!("{text:?}: no application in the URL"))?;
        let (host, port) = parse_host_port(authority, 1935)?;
        let (app, name) = match path.split_once('/') {
            Some((app, name)) if !name.is_empty() => (app.to_string(), Some(name.to_string())),
            Some((app, _)) => (app.to_string(), None),
            None => (path.to_string(), None),
        };
        if app.is_empty() {
            return Err(format!("{text:?}: empty application name"));
        }
        Ok(RtmpUrl { host, port, app, name })
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtmp://{}:{}/{}", self.host, self.port, self.app)?;
        if let Some(name) = &self.name {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

/// Splits `host:port` (or `[v6]:port`), with a default port.
pub fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("{text:?}: unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| format!("{text:?}: bad port"))?,
            None => default_port,
        };
        return Ok((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_string(), port.parse().map_err(|_| format!("{text:?}: bad port"))?)),
        None if text.is_empty() => Err("empty host".to_string()),
        None => Ok((text.to_string(), default_port)),
    }
}

/// What an upstream link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Plays the stream from an origin for local players.
    Pull,
    /// Publishes a local publisher's stream to an origin.
    Forward,
    /// Publishes a local publisher's stream to the `--push` target with this index.
    Push(usize),
}

impl fmt::Display for LinkPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkPurpose::Pull => write!(f, "pull"),
            LinkPurpose::Forward => write!(f, "forward"),
            LinkPurpose::Push(index) => write!(f, "push #{index}"),
        }
    }
}

/// Exponential backoff with a cap and jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    failures: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// A backoff that starts at `base` and doubles up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { failures: 0, base, cap }
    }

    /// The delay before the next attempt after one more failure. Jitter (up to a quarter of
    /// the delay) keeps many edges from reconnecting to a recovering origin in lockstep.
    pub fn next_delay(&mut self, jitter_fraction: f64) -> Duration {
        let exponent = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let delay = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        delay + delay.mul_f64(jitter_fraction.clamp(0.0, 1.0) / 4.0)
    }

    /// Forgets failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// One upstream link of a stream, across reconnects.
#[derive(Debug)]
pub struct UpstreamLink {
    /// What the link does.
    pub purpose: LinkPurpose,
    /// The connection now serving the link, if any.
    pub token: Option<Token>,
    /// When to try again after a failure.
    pub retry_at: Option<Instant>,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// Which origin (for pulls and forwards) the next attempt uses.
    pub origin_index: usize,
    /// Playing (pull) or publishing (forward/push) right now.
    pub ready: bool,
    /// For forwards and pushes: frames wait for a keyframe after (re)connecting.
    pub waiting_for_keyframe: bool,
    /// For pulls: media has arrived since the pull last started playing.
    pub media_flowing: bool,
}

impl UpstreamLink {
    /// A link that has not connected yet.
    pub fn new(purpose: LinkPurpose) -> Self {
        UpstreamLink {
            purpose,
            token: None,
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            origin_index: 0,
            ready: false,
            waiting_for_keyframe: true,
            media_flowing: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_name() {
        assert_eq!(
            RtmpUrl::parse("rtmp://example.com/live").unwrap(),
            RtmpUrl { host: "example.com".into(), port: 1935, app: "live".into(), name: None }
        );
        assert_eq!(
            RtmpUrl::parse("rtmp://127.0.0.1:1940/app/key?x=1").unwrap(),
            RtmpUrl { host: "127.0.0.1".into(), port: 1940, app: "app".into(), name: Some("key?x=1".into()) }
        );
        assert!(RtmpUrl::parse("http://x/live").is_err());
        assert!(RtmpUrl::parse("rtmp://host").is_err());
        assert_eq!(parse_host_port("[::1]:99", 1935).unwrap(), ("::1".to_string(), 99));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let delays: Vec<u128> = (0..6).map(|_| backoff.next_delay(0.0).as_millis()).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(1.0).as_millis(), 625);
    }
}
