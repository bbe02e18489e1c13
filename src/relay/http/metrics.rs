//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! The core fills a [`MetricsView`] from counters it keeps anyway; [`render`] writes it.
//! Per-stream series exist only while their stream does, and only for streams that have
//! or had a source (or a pull or push), so label cardinality is bounded by what publishers
//! and origins provide, not by the names players ask for.

use std::fmt::Write as _;

use crate::relay::core::ProcessStats;
use crate::relay::StatsSnapshot;

/// One stream's series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMetrics {
    /// The `app` label.
    pub app: String,
    /// The `stream` label.
    pub name: String,
    /// Play subscriptions.
    pub players: usize,
    /// Whether a source is live.
    pub live: bool,
    /// Media bytes received.
    pub bytes_in: u64,
    /// Media bytes queued for players.
    pub bytes_out: u64,
    /// Messages received.
    pub frames_in: u64,
    /// Whether the stream comes from a sibling worker's publisher (its bytes in are that
    /// worker's bytes in again; not rendered).
    pub from_sibling: bool,
}

/// Everything `/metrics` shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsView {
    /// CPU, memory and file descriptors, as the driver last read them.
    pub process: Option<ProcessStats>,
    /// When the relay started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// The shared counters.
    pub stats: StatsSnapshot,
    /// Open connections by role.
    pub connections_by_role: Vec<(&'static str, u64)>,
    /// Closed connections by the role they had.
    pub ended_by_role: Vec<(&'static str, u64)>,
    /// Refused connections by reason.
    pub refused: Vec<(&'static str, u64)>,
    /// Closed connections by reason.
    pub closed: Vec<(&'static str, u64)>,
    /// Connections closed for breaking a protocol, by reason.
    pub protocol_errors: Vec<(&'static str, u64)>,
    /// Bytes read from every connection.
    pub bytes_received: u64,
    /// Bytes written to every connection.
    pub bytes_sent: u64,
    /// Upstream connections that failed or ended and were retried.
    pub upstream_reconnects: u64,
    /// HTTP responses by status code.
    pub http_responses: Vec<(u16, u64)>,
    /// Configuration reloads by result (`applied`, `refused`).
    pub reloads: Vec<(&'static str, u64)>,
    /// Hook decisions by (action, result).
    pub hook_decisions: Vec<((&'static str, &'static str), u64)>,
    /// Hook notifications (`*_done`) by (action, result).
    pub hook_notifications: Vec<((&'static str, &'static str), u64)>,
    /// Decisions waiting for the hook now.
    pub hook_pending: u64,
    /// Access denials by (action, reason).
    pub access_denials: Vec<((&'static str, &'static str), u64)>,
    /// Streams open now, including those only players wait for.
    pub streams_open: u64,
    /// The series of the streams that have or had a source, or a pull or push.
    pub streams: Vec<StreamMetrics>,
}

/// Writes the exposition text.
///
/// ```
/// use rtmp_edge::relay::http::{render_metrics, MetricsView};
///
/// let text = render_metrics(&MetricsView::default());
/// assert!(text.contains("# TYPE rtmp_edge_received_bytes_total counter\nrtmp_edge_received_bytes_total 0\n"));
/// ```
pub fn render(view: &MetricsView) -> String {
    let mut out = Exposition { text: String::with_capacity(4096 + view.streams.len() * 600) };
    if let Some(process) = &view.process {
        out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
        out.float("process_cpu_seconds_total", &[], process.cpu_seconds);
        out.family("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
        out.sample("process_resident_memory_bytes", &[], process.resident_memory_bytes);
        out.family("process_open_fds", "gauge", "Open file descriptors.");
        out.sample("process_open_fds", &[], process.open_fds);
        if let Some(max) = process.max_fds {
            out.family("process_max_fds", "gauge", "Most open file descriptors allowed (RLIMIT_NOFILE).");
            out.sample("process_max_fds", &[], max);
        }
    }
    out.family("process_start_time_seconds", "gauge", "When the relay started, in seconds since the Unix epoch.");
    out.float("process_start_time_seconds", &[], view.start_time_seconds);
    out.family("rtmp_edge_build_info", "gauge", "Always 1; the version is a label.");
    out.sample("rtmp_edge_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);

    let stats = &view.stats;
    out.family("rtmp_edge_connections", "gauge", "Open connections by role.");
    for (role, count) in &view.connections_by_role {
        out.sample("rtmp_edge_connections", &[("role", role)], *count);
    }
    out.counter("rtmp_edge_connections_accepted_total", "Connections accepted.", stats.connections_accepted);
    out.family("rtmp_edge_connections_ended_total", "counter", "Connections closed, by the role they had.");
    for (role, count) in &view.ended_by_role {
        out.sample("rtmp_edge_connections_ended_total", &[("role", role)], *count);
    }
    out.family("rtmp_edge_connections_refused_total", "counter", "Connections refused at accept, by reason.");
    for (reason, count) in &view.refused {
        out.sample("rtmp_edge_connections_refused_total", &[("reason", reason)], *count);
    }
    out.family("rtmp_edge_connections_closed_total", "counter", "Connections closed, by reason.");
    for (reason, count) in &view.closed {
        out.sample("rtmp_edge_connections_closed_total", &[("reason", reason)], *count);
    }
    out.counter("rtmp_edge_received_bytes_total", "Bytes read from all connections.", view.bytes_received);
    out.counter("rtmp_edge_sent_bytes_total", "Bytes written to all connections.", view.bytes_sent);
    out.counter("rtmp_edge_frames_dropped_total", "Frames not sent to slow players (soft queue limit).", stats.frames_dropped);
    out.counter(
        "rtmp_edge_slow_players_disconnected_total",
        "Players disconnected at a hard queue limit.",
        stats.slow_players_disconnected,
    );
    out.family("rtmp_edge_protocol_errors_total", "counter", "Connections closed for breaking a protocol, by reason.");
    for (reason, count) in &view.protocol_errors {
        out.sample("rtmp_edge_protocol_errors_total", &[("reason", reason)], *count);
    }
    out.counter(
        "rtmp_edge_handshake_timeouts_total",
        "Connections that did not finish handshake and connect in time.",
        stats.handshake_timeouts,
    );
    out.counter("rtmp_edge_upstream_reconnects_total", "Upstream connections that failed or ended and were retried.", view.upstream_reconnects);
    out.counter(
        "rtmp_edge_media_messages_ignored_total",
        "Media messages not relayed because they were too small to be media.",
        stats.media_ignored,
    );
    out.family("rtmp_edge_http_responses_total", "counter", "HTTP responses, by status code.");
    for (code, count) in &view.http_responses {
        out.sample("rtmp_edge_http_responses_total", &[("code", &code.to_string())], *count);
    }
    out.family("rtmp_edge_config_reloads_total", "counter", "Configuration reloads, by result.");
    for (result, count) in &view.reloads {
        out.sample("rtmp_edge_config_reloads_total", &[("result", result)], *count);
    }
    out.family(
        "rtmp_edge_hook_decisions_total",
        "counter",
        "Hook decisions by action and result (allow, deny, timeout, error, overloaded: not asked, the bound was full).",
    );
    for ((action, result), count) in &view.hook_decisions {
        out.sample("rtmp_edge_hook_decisions_total", &[("action", action), ("result", result)], *count);
    }
    out.family("rtmp_edge_hook_notifications_total", "counter", "publish_done and play_done hook calls by result.");
    for ((action, result), count) in &view.hook_notifications {
        out.sample("rtmp_edge_hook_notifications_total", &[("action", action), ("result", result)], *count);
    }
    out.gauge("rtmp_edge_hook_pending", "Decisions waiting for the hook.", view.hook_pending);
    out.family("rtmp_edge_access_denials_total", "counter", "Connects, publishes and plays denied, by action and reason.");
    for ((action, reason), count) in &view.access_denials {
        out.sample("rtmp_edge_access_denials_total", &[("action", action), ("reason", reason)], *count);
    }
    out.gauge("rtmp_edge_streams", "Streams open (live, pulled, or with players waiting).", view.streams_open);
    out.gauge("rtmp_edge_publishers", "Streams with a local publisher.", stats.publishers);
    out.gauge("rtmp_edge_players", "Play subscriptions.", stats.players);
    out.gauge("rtmp_edge_pulls", "Upstream pulls open (connected or retrying).", stats.pulls);
    out.gauge("rtmp_edge_pulls_live", "Upstream pulls playing.", stats.pulls_live);

    type Series = (&'static str, &'static str, &'static str, fn(&StreamMetrics) -> u64);
    let per_stream: [Series; 5] = [
        ("rtmp_edge_stream_players", "gauge", "Players of the stream.", |s| s.players as u64),
        ("rtmp_edge_stream_live", "gauge", "1 while a source is live on the stream.", |s| u64::from(s.live)),
        ("rtmp_edge_stream_received_bytes_total", "counter", "Media bytes received for the stream.", |s| s.bytes_in),
        ("rtmp_edge_stream_sent_bytes_total", "counter", "Media bytes queued for the stream's players.", |s| s.bytes_out),
        ("rtmp_edge_stream_frames_received_total", "counter", "Media messages received for the stream.", |s| s.frames_in),
    ];
    for (name, kind, help, value) in per_stream {
        out.family(name, kind, help);
        for stream in &view.streams {
            out.sample(name, &[("app", &stream.app), ("stream", &stream.name)], value(stream));
        }
    }
    out.text
}

struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.labels(name, labels);
        if value.is_finite() {
            let _ = writeln!(self.text, " {value}");
        } else {
            let _ = writeln!(self.text, " NaN");
        }
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.text.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.text.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                self.text.push(',');
            }
            self.text.push_str(label);
            self.text.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.text.push_str("\\\\"),
                    '"' => self.text.push_str("\\\""),
                    '\n' => self.text.push_str("\\n"),
                    c => self.text.push(c),
                }
            }
            self.text.push('"');
        }
        self.text.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_labels_are_escaped_and_series_follow_the_streams() {
        let view = MetricsView {
            streams: vec![StreamMetrics {
                app: "live".into(),
                name: "a\"b\\c\nd".into(),
                players: 3,
                live: true,
                bytes_in: 10,
                bytes_out: 30,
                frames_in: 2,
                from_sibling: false,
            }],
            process: Some(ProcessStats { cpu_seconds: 1.25, resident_memory_bytes: 4096, open_fds: 9, max_fds: Some(1024) }),
            ..MetricsView::default()
        };
        let text = render(&view);
        assert!(text.contains("rtmp_edge_stream_players{app=\"live\",stream=\"a\\\"b\\\\c\\nd\"} 3\n"), "{text}");
        assert!(text.contains("process_cpu_seconds_total 1.25\n"));
        assert!(text.contains("process_max_fds 1024\n"));
        assert!(!render(&MetricsView::default()).contains("rtmp_edge_stream_players{"), "no stream, no series");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} has a TYPE line");
        }
    }
}
