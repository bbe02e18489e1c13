//! The JSON API's documents. The core fills these views from its own state; this module
//! only says how they look on the wire.

use std::time::Duration;

use serde::Serialize;

/// One stream in `GET /api/v1/streams`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamView {
    /// Application.
    pub app: String,
    /// Stream name (without query).
    pub name: String,
    /// Whether a source (publisher or pull) is live.
    pub live: bool,
    /// The local publisher, if any.
    pub publisher: Option<PublisherView>,
    /// Play subscriptions (viewers; a sibling worker's pull is not one).
    pub players: usize,
    /// Sibling workers pulling the stream from this one (0 with one worker). In the API's
    /// answers, the sum over the workers; `players` counts viewers on every worker.
    pub sibling_pulls: usize,
    /// Media bytes received for the stream (from its publishers or pulls).
    pub bytes_in: u64,
    /// Media bytes queued for its players.
    pub bytes_out: u64,
    /// Audio, video and data messages received.
    pub frames_in: u64,
    /// Bitrate received, averaged over the last 5 s.
    pub kbps_in: u64,
    /// Bitrate queued for all players together, averaged over the last 5 s.
    pub kbps_out: u64,
    /// Video codec of the current source, once seen.
    pub video_codec: Option<String>,
    /// Audio codec of the current source, once seen.
    pub audio_codec: Option<String>,
    /// Picture width from the source's metadata.
    pub width: Option<u32>,
    /// Picture height from the source's metadata.
    pub height: Option<u32>,
    /// Media time the GOP cache spans.
    pub gop_cache_ms: u32,
    /// Frames in the GOP cache.
    pub gop_cache_frames: usize,
    /// The pull feeding the stream, else its first forward or push; null when none.
    pub upstream: Option<UpstreamView>,
    /// Every upstream link of the stream (pull, forward, pushes).
    pub upstreams: Vec<UpstreamView>,
}

/// A stream's local publisher.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublisherView {
    /// Its client id (as in `/api/v1/clients`).
    pub client_id: u64,
    /// Its address.
    pub ip: String,
    /// When it connected (RFC 3339, UTC).
    pub since: String,
    /// Video codec, once seen.
    pub video_codec: Option<String>,
    /// Audio codec, once seen.
    pub audio_codec: Option<String>,
    /// Picture width, when the metadata says.
    pub width: Option<u32>,
    /// Picture height, when the metadata says.
    pub height: Option<u32>,
    /// Bytes read from its connection.
    pub bytes_in: u64,
    /// Bitrate received from it, averaged over the last 5 s.
    pub kbps_in: u64,
}

/// An upstream link of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpstreamView {
    /// `pull`, `forward` or `push`.
    pub kind: &'static str,
    /// `host:port` the link uses now (or next).
    pub target: String,
    /// `connecting`, `handshake`, `replies`, `playing`, `publishing` or `backoff`.
    pub state: &'static str,
    /// Connections the link made that failed or ended.
    pub reconnects: u64,
}

/// One connection in `GET /api/v1/clients`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientView {
    /// The id `DELETE /api/v1/clients/{id}` takes.
    pub client_id: u64,
    /// Peer address.
    pub ip: String,
    /// Peer port.
    pub port: u16,
    /// `publisher`, `player`, `connecting`, `idle`, `pull`, `forward`, `push` or `http`; with
    /// several workers also `sibling` (serves a sibling worker's pull) and `sibling_pull`.
    pub role: &'static str,
    /// Application of the stream it publishes or plays.
    pub app: Option<String>,
    /// Name of that stream (the first, for a connection playing several).
    pub name: Option<String>,
    /// When it connected (RFC 3339, UTC).
    pub since: String,
    /// Bytes read from it.
    pub bytes_in: u64,
    /// Bytes written to it.
    pub bytes_out: u64,
    /// How long its oldest unsent byte has waited, in ms.
    pub queue_ms: u64,
    /// Bytes waiting to be written to it.
    pub queue_bytes: usize,
    /// Frames not sent to it (slow-player soft limit).
    pub frames_dropped: u64,
    /// `rtmp`, `rtmps`, `http`, or `sibling` for a worker's private listener.
    pub protocol: &'static str,
    /// The worker serving it (0 with one worker).
    pub worker: usize,
    /// The balancer's address (`ADDR:PORT`) when `ip` and `port` came from a PROXY
    /// protocol header; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxied_by: Option<String>,
}

/// `GET /api/v1/summary`: the relay as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryView {
    /// `rtmp-edge`'s version.
    pub version: &'static str,
    /// This relay's id (as in loop detection).
    pub node_id: String,
    /// When the relay started (RFC 3339, UTC).
    pub started: String,
    /// Seconds since then.
    pub uptime_s: u64,
    /// Whether a graceful shutdown is under way.
    pub shutting_down: bool,
    /// Connections open.
    pub connections: usize,
    /// Streams known (live, pulled, or with players waiting).
    pub streams: usize,
    /// Play subscriptions.
    pub players: u64,
    /// Streams with a local publisher.
    pub publishers: u64,
    /// Bytes read from every connection since start.
    pub bytes_in: u64,
    /// Bytes written to every connection since start.
    pub bytes_out: u64,
    /// Worker threads (`--workers`).
    pub workers: usize,
}

/// Answer to `DELETE /api/v1/clients/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KickedView {
    /// The connection closed.
    pub closed: u64,
    /// What it was.
    pub role: &'static str,
}

/// Answer to `POST /api/v1/reload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReloadView {
    /// Whether the new configuration is in force.
    pub reloaded: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A point in time as RFC 3339 in UTC, to the millisecond: `2024-05-01T12:00:00.250Z`.
///
/// ```
/// use std::time::Duration;
/// use rtmp_edge::relay::http::rfc3339;
///
/// assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
/// assert_eq!(rfc3339(Duration::from_millis(951_782_400_123)), "2000-02-29T00:00:00.123Z");
/// ```
pub fn rfc3339(since_unix_epoch: Duration) -> String {
    let seconds = since_unix_epoch.as_secs();
    let days = seconds / 86_400;
    let in_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_unix_epoch.subsec_millis()
    )
}

/// Year, month and day of the `days`th day after 1970-01-01 (proleptic Gregorian). Counts
/// in 400-year eras of 146,097 days, with the year starting on March 1 so that the leap
/// day comes last.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_across_leap_years_and_centuries() {
        let day = |days: u64| rfc3339(Duration::from_secs(days * 86_400));
        assert_eq!(day(59), "1970-03-01T00:00:00.000Z");
        assert_eq!(day(365 * 30 + 7), "2000-01-01T00:00:00.000Z");
        assert_eq!(day(11_016), "2000-02-29T00:00:00.000Z");
        assert_eq!(day(11_017), "2000-03-01T00:00:00.000Z");
        assert_eq!(day(47_540), "2100-02-28T00:00:00.000Z");
        assert_eq!(day(47_541), "2100-03-01T00:00:00.000Z", "2100 is not a leap year");
        assert_eq!(rfc3339(Duration::from_secs(1_714_564_800 + 3661)), "2024-05-01T13:01:01.000Z");
    }

    #[test]
    fn a_stream_without_publisher_or_upstream_has_nulls() {
        let view = StreamView {
            app: "live".into(),
            name: "s".into(),
            live: false,
            publisher: None,
            players: 2,
            sibling_pulls: 0,
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            kbps_in: 0,
            kbps_out: 0,
            video_codec: None,
            audio_codec: None,
            width: None,
            height: None,
            gop_cache_ms: 0,
            gop_cache_frames: 0,
            upstream: None,
            upstreams: Vec::new(),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["publisher"], serde_json::Value::Null);
        assert_eq!(json["upstream"], serde_json::Value::Null);
        assert_eq!(json["players"], 2);
    }
}
