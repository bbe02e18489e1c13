//! What the core shows operators: the API's views, the metrics, the once-a-minute summary
//! line, and the bookkeeping behind them (bitrate samples, closes by reason). Everything is
//! read from state the core keeps anyway, when asked or on the tick.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::conn::{Conn, Phase, Role};
use super::links::{LinkPurpose, UpstreamLink, UpstreamStage};
use super::ops::{LabelCounts, ProcessStats, RATE_SAMPLE_INTERVAL, SUMMARY_INTERVAL};
use super::stream::{LiveStream, StreamKey};
use super::{CloseReason, ListenerKind, RelayCore};
use crate::relay::http::{
    rfc3339, ClientView, MetricsView, PublisherView, StreamMetrics, StreamView, SummaryView, UpstreamView,
};

/// Roles `/metrics` always shows, at zero when no connection has them.
pub(super) const ROLES: [&str; 8] = ["connecting", "forward", "http", "idle", "player", "publisher", "pull", "push"];
/// With several workers, also the connections between them: `sibling` serves a sibling's
/// pull, `sibling_pull` pulls from a sibling.
pub(super) const ROLES_WITH_SIBLINGS: [&str; 10] =
    ["connecting", "forward", "http", "idle", "player", "publisher", "pull", "push", "sibling", "sibling_pull"];

impl RelayCore {
    /// The driver read the process's CPU time, memory and descriptors (the core never
    /// touches `/proc`); `/metrics` shows the latest.
    pub fn set_process_stats(&mut self, stats: ProcessStats) {
        self.ops.process = Some(stats);
    }

    /// Bytes read from and written to every connection since start.
    pub fn byte_totals(&self) -> (u64, u64) {
        self.conns.iter().fold((self.ops.closed_bytes_in, self.ops.closed_bytes_out), |(read, written), (_, conn)| {
            (read.saturating_add(conn.bytes_in), written.saturating_add(conn.bytes_out))
        })
    }

    /// Counts a close by reason, and keeps the connection's bytes in the totals.
    pub(super) fn count_close(&mut self, conn: &Conn, role: &'static str, reason: &CloseReason) {
        self.ops.ended_by_role.add(role);
        self.ops.closed_bytes_in = self.ops.closed_bytes_in.saturating_add(conn.bytes_in);
        self.ops.closed_bytes_out = self.ops.closed_bytes_out.saturating_add(conn.bytes_out);
        self.ops.closes.add(reason.label());
        if reason.is_protocol_error() {
            self.ops.protocol_errors.add(reason.label());
        }
    }

    /// Bitrate samples every second, the summary line every minute; called from the tick.
    pub(super) fn ops_tick(&mut self, now: Instant) {
        if now >= self.ops.next_rate_sample {
            self.ops.next_rate_sample = now + RATE_SAMPLE_INTERVAL;
            for stream in self.streams.values_mut() {
                stream.meter.sample(now);
            }
        }
        if now >= self.ops.next_summary {
            self.ops.next_summary = now + SUMMARY_INTERVAL;
            self.log_summary();
        }
    }

    fn log_summary(&mut self) {
        let (read, written) = self.byte_totals();
        let (last_read, last_written) = std::mem::replace(&mut self.ops.summary_totals, (read, written));
        let live = self.streams.values().filter(|stream| stream.is_live()).count();
        let seconds = SUMMARY_INTERVAL.as_secs().max(1);
        self.ops.last_summary = format!(
            "summary: {} streams ({live} live), {} publishers, {} players, {} connections; last {seconds} s: {} bytes in ({} kbit/s), {} bytes out ({} kbit/s)",
            self.streams.len(),
            self.stats.publishers.load(Relaxed),
            self.stats.players.load(Relaxed),
            self.conns.len(),
            read.saturating_sub(last_read),
            read.saturating_sub(last_read).saturating_mul(8) / 1000 / seconds,
            written.saturating_sub(last_written),
            written.saturating_sub(last_written).saturating_mul(8) / 1000 / seconds,
        );
        log::info!("{}", self.ops.last_summary);
    }

    /// What a connection is, as the API and metrics name it.
    pub(super) fn role_label(&self, conn: &Conn) -> &'static str {
        if let Some(upstream) = &conn.upstream {
            return match upstream.purpose {
                LinkPurpose::Pull if upstream.sibling.is_some() => "sibling_pull",
                LinkPurpose::Pull => "pull",
                LinkPurpose::Forward => "forward",
                LinkPurpose::Push(_) => "push",
            };
        }
        if conn.protocol == ListenerKind::Sibling {
            return "sibling";
        }
        match (&conn.phase, &conn.role) {
            (Phase::Http(_), Role::Player { .. }) => "player",
            (Phase::Http(_), _) => "http",
            (_, Role::Publisher { .. }) => "publisher",
            (_, Role::Player { .. }) => "player",
            (_, Role::Undecided) if conn.is_connected() => "idle",
            (_, Role::Undecided) => "connecting",
        }
    }

    /// `GET /api/v1/streams`, sorted by app and name: the streams that have or had a source,
    /// or a pull or push: not those only players wait for, whose names are any client's choice.
    pub fn stream_views(&self) -> Vec<StreamView> {
        let mut views: Vec<StreamView> = self
            .streams
            .iter()
            .filter(|(_, stream)| stream.is_reported())
            .map(|(key, stream)| self.stream_view(key, stream))
            .collect();
        views.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        views
    }

    fn stream_view(&self, key: &StreamKey, stream: &LiveStream) -> StreamView {
        let (kbps_in, kbps_out) = stream.meter.rates.kbps();
        let media = stream.meter.media;
        let video_codec = media.video.map(|codec| codec.to_string());
        let audio_codec = media.audio.map(|codec| codec.to_string());
        let publisher = stream.publisher.and_then(|(id, _)| {
            let conn = self.conns.get(id)?;
            Some(PublisherView {
                client_id: id.to_u64(),
                ip: conn.peer.ip().to_string(),
                since: rfc3339(self.unix_time(conn.opened_at)),
                video_codec: video_codec.clone(),
                audio_codec: audio_codec.clone(),
                width: media.width,
                height: media.height,
                bytes_in: conn.bytes_in,
                kbps_in,
            })
        });
        let upstreams: Vec<UpstreamView> =
            stream.pull.iter().chain(stream.pushes.iter()).map(|link| self.upstream_view(link)).collect();
        let sibling_pulls = stream.players.len() - stream.audience().count();
        let (gop_cache_frames, _) = stream.gop_held();
        StreamView {
            app: key.app().to_string(),
            name: key.name().to_string(),
            live: stream.is_live(),
            publisher,
            players: stream.audience().count(),
            sibling_pulls,
            bytes_in: stream.meter.bytes_in,
            bytes_out: stream.meter.bytes_out,
            frames_in: stream.meter.frames_in,
            kbps_in,
            kbps_out,
            video_codec,
            audio_codec,
            width: media.width,
            height: media.height,
            gop_cache_ms: stream.gop_span_ms(),
            gop_cache_frames,
            upstream: upstreams.first().cloned(),
            upstreams,
        }
    }

    fn upstream_view(&self, link: &UpstreamLink) -> UpstreamView {
        let connection = link.conn.and_then(|id| self.conns.get(id)).and_then(|conn| conn.upstream.as_ref());
        let target = match connection {
            Some(upstream) if link.sibling.is_some() => format!("worker {} ({})", link.sibling.unwrap_or_default(), upstream.target),
            Some(upstream) => upstream.target.clone(),
            None if link.sibling.is_some() => format!("worker {}", link.sibling.unwrap_or_default()),
            None => match link.purpose {
                LinkPurpose::Pull | LinkPurpose::Forward => {
                    let origins = &self.config.origins;
                    origins.get(link.origin_index % origins.len().max(1)).cloned().unwrap_or_default()
                }
                LinkPurpose::Push(index) => {
                    self.config.push.get(index).map_or_else(String::new, |url| url.authority())
                }
            },
        };
        let state = match (link.ready, connection.map(|upstream| upstream.stage)) {
            (true, _) if link.purpose == LinkPurpose::Pull => "playing",
            (true, _) => "publishing",
            (false, Some(UpstreamStage::Connecting)) => "connecting",
            (false, Some(UpstreamStage::Handshake)) => "handshake",
            (false, Some(UpstreamStage::Replies | UpstreamStage::Ready)) => "replies",
            (false, None) if link.retry_at.is_some() => "backoff",
            (false, None) => "idle",
        };
        let kind = match link.purpose {
            LinkPurpose::Pull if link.sibling.is_some() => "sibling",
            LinkPurpose::Pull => "pull",
            LinkPurpose::Forward => "forward",
            LinkPurpose::Push(_) => "push",
        };
        UpstreamView { kind, target, state, reconnects: link.reconnects }
    }

    /// `GET /api/v1/clients`, by client id.
    pub fn client_views(&self, now: Instant) -> Vec<ClientView> {
        self.conns
            .iter()
            .map(|(id, conn)| {
                let key = match (&conn.upstream, &conn.role) {
                    (Some(upstream), _) => Some(&upstream.key),
                    (None, Role::Publisher { key, .. }) => Some(key),
                    (None, Role::Player { subscriptions }) => subscriptions.first().map(|(key, _)| key),
                    (None, Role::Undecided) => None,
                };
                ClientView {
                    client_id: id.to_u64(),
                    ip: conn.peer.ip().to_string(),
                    port: conn.peer.port(),
                    role: self.role_label(conn),
                    app: key.map(|key| key.app().to_string()),
                    name: key.map(|key| key.name().to_string()),
                    since: rfc3339(self.unix_time(conn.opened_at)),
                    bytes_in: conn.bytes_in,
                    bytes_out: conn.bytes_out,
                    queue_ms: conn.out.oldest_wait(now).as_millis() as u64,
                    queue_bytes: conn.out.cost(),
                    frames_dropped: conn.frames_dropped,
                    protocol: Self::protocol_label(conn),
                    worker: id.worker(),
                    proxied_by: match conn.proxy {
                        super::proxy_header::ProxyState::Proxied { balancer } => Some(balancer.to_string()),
                        _ => None,
                    },
                }
            })
            .collect()
    }

    /// `GET /api/v1/summary`.
    pub fn summary_view(&self, now: Instant) -> SummaryView {
        let (bytes_in, bytes_out) = self.byte_totals();
        SummaryView {
            version: env!("CARGO_PKG_VERSION"),
            node_id: self.node_id.clone(),
            started: rfc3339(self.unix_time(self.epoch)),
            uptime_s: now.saturating_duration_since(self.epoch).as_secs(),
            shutting_down: self.shutdown_deadline.is_some(),
            connections: self.conns.len(),
            streams: self.streams.len(),
            players: self.stats.players.load(Relaxed),
            publishers: self.stats.publishers.load(Relaxed),
            bytes_in,
            bytes_out,
            workers: self.siblings.as_ref().map_or(1, |place| place.count),
        }
    }

    /// Everything `GET /metrics` shows.
    pub fn metrics_view(&self) -> MetricsView {
        let mut roles = LabelCounts::with_labels(if self.siblings.is_some() { &ROLES_WITH_SIBLINGS } else { &ROLES });
        for (_, conn) in self.conns.iter() {
            roles.add(self.role_label(conn));
        }
        let (bytes_received, bytes_sent) = self.byte_totals();
        let mut streams: Vec<StreamMetrics> = self
            .streams
            .iter()
            .filter(|(_, stream)| stream.is_reported())
            .map(|(key, stream)| StreamMetrics {
                app: key.app().to_string(),
                name: key.name().to_string(),
                players: stream.audience().count(),
                live: stream.is_live(),
                bytes_in: stream.meter.bytes_in,
                bytes_out: stream.meter.bytes_out,
                frames_in: stream.meter.frames_in,
                from_sibling: stream.pull.as_ref().is_some_and(|link| link.sibling.is_some()),
            })
            .collect();
        streams.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        MetricsView {
            process: self.ops.process,
            start_time_seconds: self.unix_time(self.epoch).as_secs_f64(),
            stats: self.stats.snapshot(),
            connections_by_role: roles.to_vec(),
            ended_by_role: self.ops.ended_by_role.to_vec(),
            refused: self.ops.refusals.to_vec(),
            closed: self.ops.closes.to_vec(),
            protocol_errors: self.ops.protocol_errors.to_vec(),
            bytes_received,
            bytes_sent,
            upstream_reconnects: self.ops.upstream_reconnects,
            http_responses: self.ops.http_responses.to_vec(),
            reloads: self.ops.reloads.to_vec(),
            hook_decisions: self.access.decisions.to_vec(),
            hook_notifications: self.access.notifications.to_vec(),
            hook_pending: self.access.decisions_pending() as u64,
            access_denials: self.access.denials.to_vec(),
            streams_open: self.streams.len() as u64,
            streams,
        }
    }
}
