//! Upstream links: pulls from an origin, forwards of local publishes, and `--push` targets.
//! A link outlives its connections: when one fails, the link backs off and retries, moving
//! through the origin list, while players stay connected.

use std::fmt;
use std::time::{Duration, Instant};

use super::ids::ConnId;
use super::stream::StreamKey;

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
    /// The stream name to play or publish upstream, query string included. For a pull it is
    /// the name the player that opened the pull asked for, kept for every reconnect.
    pub stream_name: String,
    /// The connection now serving the link, if any.
    pub conn: Option<ConnId>,
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
    /// Connections made for this link that failed or ended, for operators.
    pub reconnects: u64,
    /// Whether a message too small to be media was logged for this link (once per link).
    pub ignored_media_logged: bool,
    /// For a pull between workers: the sibling worker it pulls from (else the origins).
    pub sibling: Option<usize>,
}

impl UpstreamLink {
    /// A link that has not connected yet.
    pub fn new(purpose: LinkPurpose, stream_name: String) -> Self {
        UpstreamLink {
            purpose,
            stream_name,
            conn: None,
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            origin_index: 0,
            ready: false,
            waiting_for_keyframe: true,
            media_flowing: false,
            reconnects: 0,
            ignored_media_logged: false,
            sibling: None,
        }
    }
}

/// The stages of an upstream connection, each with its own deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamStage {
    /// Resolving the host name and opening TCP.
    Connecting,
    /// RTMP handshake.
    Handshake,
    /// connect, then play or publish, waiting for the answers.
    Replies,
    /// Playing or publishing.
    Ready,
}

impl UpstreamStage {
    /// Name for log lines.
    pub fn name(self) -> &'static str {
        match self {
            UpstreamStage::Connecting => "TCP connect",
            UpstreamStage::Handshake => "handshake",
            UpstreamStage::Replies => "connect and play/publish replies",
            UpstreamStage::Ready => "session",
        }
    }
}

/// What an upstream connection is for and where it goes.
#[derive(Clone, Debug)]
pub struct UpstreamConn {
    /// Local stream it serves.
    pub key: StreamKey,
    /// Pull, forward or push.
    pub purpose: LinkPurpose,
    /// Where it goes, for logs (`host:port`).
    pub target: String,
    /// Application to connect to.
    pub app: String,
    /// Stream name to play or publish, query string included.
    pub stream_name: String,
    /// tcUrl naming the target.
    pub tc_url: String,
    /// For an `rtmps://` target: the server name TLS sends and verifies.
    pub tls_server_name: Option<String>,
    /// Relay ids this request has passed through, ours last (loop detection).
    pub via: String,
    /// For a pull from a sibling worker: that worker.
    pub sibling: Option<usize>,
    /// For a pull from a sibling worker: the secret its connect carries.
    pub worker_secret: Option<String>,
    /// Where the connection stands.
    pub stage: UpstreamStage,
    /// When the current stage must be done.
    pub stage_deadline: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let delays: Vec<u128> = (0..6).map(|_| backoff.next_delay(0.0).as_millis()).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(1.0).as_millis(), 625);
    }
}
