//! Edge mode: pulls from origins on demand, forwards of local publishes, `--push` targets.
//!
//! Every upstream connection is a [`Conn`](super::conn::Conn) with a `ClientSession`. Its
//! link ([`UpstreamLink`]) outlives it: when it fails, the link backs off and retries,
//! moving through the origin list, while players stay connected.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::close::CloseReason;
use super::conn::{Conn, Phase};
use super::input::VIA_PROPERTY;
use super::links::{LinkPurpose, UpstreamConn, UpstreamLink, UpstreamStage};
use super::siblings::WORKER_SECRET_PROPERTY;
use super::stream::{LiveStream, StreamKey};
use super::{Action, ConnId, RelayCore};
use crate::handshake::{Handshake, HandshakeRole};
use crate::url::{join_host_port, parse_origin, tc_url, Scheme};
use crate::sessions::{ClientSession, ClientSessionConfig, PublishMode, SessionError};
use crate::Amf0Value;

/// The client session an upstream connection runs once its handshake is done.
pub fn start_client_session(upstream: &UpstreamConn, chunk_size: u32) -> Result<ClientSession, SessionError> {
    let mut properties = vec![(VIA_PROPERTY.to_string(), Amf0Value::Utf8String(upstream.via.clone()))];
    if let Some(secret) = &upstream.worker_secret {
        properties.push((WORKER_SECRET_PROPERTY.to_string(), Amf0Value::Utf8String(secret.clone())));
    }
    let mut client = ClientSession::new(ClientSessionConfig {
        chunk_size,
        extra_connect_properties: properties,
        ..ClientSessionConfig::default()
    });
    client.connect(&upstream.app, &upstream.tc_url)?;
    match upstream.purpose {
        LinkPurpose::Pull => client.request_playback(&upstream.stream_name)?,
        LinkPurpose::Forward | LinkPurpose::Push(_) => client.request_publishing(&upstream.stream_name, PublishMode::Live)?,
    }
    Ok(client)
}

/// Where a link's next connection goes.
struct LinkTarget {
    host: String,
    port: u16,
    upstream: UpstreamConn,
}

impl RelayCore {
    /// Starts pulling `key` for the player `opener`, unless a pull already exists: from
    /// the origins on an edge, else (one of several workers) from the sibling that holds
    /// the stream's publisher. The pull keeps the opener's stream name (query included)
    /// for every reconnect, whoever is watching then.
    pub(super) fn ensure_pull(&mut self, key: &StreamKey, opener: ConnId, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        let sibling = if self.config.origins.is_empty() {
            let Some(holder) = self.sibling_holding(key) else { return };
            self.drop_misdirected_pull(key, holder, now);
            Some(holder)
        } else {
            None
        };
        let (stream_name, via) = match self.conns.get(opener) {
            Some(conn) => (conn.requested_name(key).unwrap_or(key.name()).to_string(), conn.via.clone()),
            None => (key.name().to_string(), String::new()),
        };
        let Some(stream) = self.streams.get_mut(key) else { return };
        if stream.pull.is_some() {
            return;
        }
        let mut link = UpstreamLink::new(LinkPurpose::Pull, stream_name);
        link.sibling = sibling;
        stream.pull = Some(link);
        stream.via = via;
        // `pulls` counts pulls from origins; pulls between workers are internal.
        if sibling.is_none() {
            self.stats.pulls.fetch_add(1, Relaxed);
        }
        self.connect_link(key, LinkPurpose::Pull, now);
    }

    fn set_pull_live(&mut self, key: &StreamKey, live: bool) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        if stream.pull_live != live {
            stream.pull_live = live;
            if stream.pull.as_ref().is_some_and(|link| link.sibling.is_some()) {
                return;
            }
            if live {
                self.stats.pulls_live.fetch_add(1, Relaxed);
            } else {
                self.stats.pulls_live.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Ends `key`'s pull and closes its connection for `reason`.
    pub(super) fn drop_pull(&mut self, key: &StreamKey, reason: CloseReason) {
        self.set_pull_live(key, false);
        let Some(stream) = self.streams.get_mut(key) else { return };
        stream.linger_until = None;
        let Some(link) = stream.pull.take() else { return };
        if link.sibling.is_none() {
            self.stats.pulls.fetch_sub(1, Relaxed);
        }
        if let Some(id) = link.conn {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.upstream = None;
                Self::mark_close(&mut self.to_close, id, conn, reason);
            }
        }
    }

    /// Starts the forward to the origin (edge mode) and the `--push` targets for a new
    /// local publish.
    pub(super) fn start_pushes(&mut self, key: &StreamKey, now: Instant) {
        let stream_name = self.publisher_requested_name(key).unwrap_or_else(|| key.name().to_string());
        let mut links = Vec::new();
        if !self.config.origins.is_empty() {
            links.push(UpstreamLink::new(LinkPurpose::Forward, stream_name.clone()));
        }
        for (index, target) in self.config.push.iter().enumerate() {
            let matches = target.stream_name().is_none_or(|wanted| wanted == key.name());
            if matches {
                let name = target.play_path().unwrap_or_else(|| stream_name.clone());
                links.push(UpstreamLink::new(LinkPurpose::Push(index), name));
            }
        }
        let purposes: Vec<LinkPurpose> = links.iter().map(|link| link.purpose).collect();
        let Some(stream) = self.streams.get_mut(key) else { return };
        stream.pushes.extend(links);
        for purpose in purposes {
            self.connect_link(key, purpose, now);
        }
    }

    fn publisher_requested_name(&self, key: &StreamKey) -> Option<String> {
        let (publisher, _) = self.streams.get(key)?.publisher?;
        self.conns.get(publisher)?.requested_name(key).map(str::to_string)
    }

    /// Closes the forwards and pushes of a publish that ended, after what they have queued.
    pub(super) fn stop_pushes(&mut self, key: &StreamKey, now: Instant) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let links = std::mem::take(&mut stream.pushes);
        for link in links {
            let Some(id) = link.conn else { continue };
            let Some(conn) = self.conns.get_mut(id) else { continue };
            conn.upstream = None;
            if let Some(client) = conn.client() {
                let _ = client.stop();
            }
            conn.close_after_flush = Some(CloseReason::PublisherStopped);
            self.sync_output(id, now);
            if let Some(conn) = self.conns.get_mut(id) {
                if conn.out.is_empty() {
                    Self::mark_close(&mut self.to_close, id, conn, CloseReason::PublisherStopped);
                }
            }
        }
    }

    fn link_target(&self, key: &StreamKey, link: &UpstreamLink, now: Instant) -> Option<LinkTarget> {
        let stream = self.streams.get(key)?;
        // A pull from a sibling goes to the worker that holds the publisher, which never
        // pulls further, so the chain cannot loop there; and the players' chain is theirs to
        // claim: a player naming the sibling's node id would make it refuse the pull as a
        // loop, and starve every player of the stream on this worker.
        let mut via = if link.sibling.is_some() { String::new() } else { stream.via.clone() };
        if !via.is_empty() {
            via.push(',');
        }
        via.push_str(&self.node_id);
        let (scheme, host, port, app) = match link.purpose {
            LinkPurpose::Pull if link.sibling.is_some() => {
                let addr = *self.siblings.as_ref()?.sibling_addrs.get(link.sibling?)?;
                (Scheme::Rtmp, addr.ip().to_string(), addr.port(), key.app().to_string())
            }
            LinkPurpose::Pull | LinkPurpose::Forward => {
                // Origins are host[:port] (plain RTMP) or rtmps://host[:port].
                let origin = self.config.origins.get(link.origin_index % self.config.origins.len().max(1))?;
                let (scheme, host, port) = parse_origin(origin).ok()?;
                (scheme, host, port, key.app().to_string())
            }
            LinkPurpose::Push(index) => {
                let target = self.config.push.get(index)?;
                (target.scheme(), target.host().to_string(), target.port(), target.app().to_string())
            }
        };
        let upstream = UpstreamConn {
            key: key.clone(),
            purpose: link.purpose,
            tc_url: tc_url(scheme, &host, port, &app),
            tls_server_name: (scheme == Scheme::Rtmps).then(|| host.clone()),
            target: join_host_port(&host, port),
            app,
            stream_name: link.stream_name.clone(),
            via,
            sibling: link.sibling,
            worker_secret: link.sibling.and(self.siblings.as_ref()).map(|place| place.secret.clone()),
            stage: UpstreamStage::Connecting,
            stage_deadline: now + self.config.upstream_connect_timeout,
        };
        Some(LinkTarget { host, port, upstream })
    }

    pub(super) fn link_mut(&mut self, key: &StreamKey, purpose: LinkPurpose) -> Option<&mut UpstreamLink> {
        let stream = self.streams.get_mut(key)?;
        match purpose {
            LinkPurpose::Pull => stream.pull.as_mut(),
            _ => stream.pushes.iter_mut().find(|link| link.purpose == purpose),
        }
    }

    pub(super) fn link(&self, key: &StreamKey, purpose: LinkPurpose) -> Option<&UpstreamLink> {
        let stream = self.streams.get(key)?;
        match purpose {
            LinkPurpose::Pull => stream.pull.as_ref(),
            _ => stream.pushes.iter().find(|link| link.purpose == purpose),
        }
    }

    /// Opens a connection for a link, or schedules a retry when that is not possible now.
    fn connect_link(&mut self, key: &StreamKey, purpose: LinkPurpose, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        if !self.aim_sibling_pull(key, purpose) {
            return;
        }
        let setting_up = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.upstream.as_ref().is_some_and(|u| u.stage != UpstreamStage::Ready))
            .count();
        if setting_up >= self.config.max_upstream_connects {
            log::warn!("{key}: {purpose} waits: {setting_up} upstream connections already being set up");
            self.link_failed(key, purpose, now);
            return;
        }
        let Some(target) = self.link(key, purpose).and_then(|link| self.link_target(key, link, now)) else {
            log::warn!("{key}: {purpose}: no usable upstream target");
            self.link_failed(key, purpose, now);
            return;
        };
        log::info!(
            "{key}: {purpose}: connecting to {} (app {}, stream {})",
            target.upstream.target,
            target.upstream.app,
            target.upstream.stream_name
        );
        let literal = target.host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, target.port));
        let placeholder = literal.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], target.port)));
        let tls_server_name = target.upstream.tls_server_name.clone();
        let mut conn = Conn::new(placeholder, Phase::Dialing, now);
        if tls_server_name.is_some() {
            conn.protocol = super::ListenerKind::Rtmps;
        }
        conn.summary = format!("{purpose} of {key} to {}", target.upstream.target);
        conn.upstream = Some(target.upstream);
        let id = self.conns.insert(conn);
        self.stats.connections_open.fetch_add(1, Relaxed);
        match literal {
            Some(addr) => self.actions.push_back(Action::Connect { id, addr, tls: tls_server_name }),
            None => self.actions.push_back(Action::Resolve { id, host: target.host, port: target.port }),
        }
        if let Some(link) = self.link_mut(key, purpose) {
            link.conn = Some(id);
            link.retry_at = None;
            link.ready = false;
        }
    }

    /// A pull from a sibling goes to whichever worker holds the publisher now; with none,
    /// the pull ends and its players wait for the next publish announced. False when the
    /// link was dropped.
    fn aim_sibling_pull(&mut self, key: &StreamKey, purpose: LinkPurpose) -> bool {
        let Some(worker) = self.link(key, purpose).and_then(|link| link.sibling) else { return true };
        match self.sibling_holding(key) {
            Some(holder) => {
                if let Some(link) = self.link_mut(key, purpose) {
                    link.sibling = Some(holder);
                }
                if holder != worker {
                    log::info!("{key}: pull: the publisher moved from worker {worker} to worker {holder}");
                }
                true
            }
            None => {
                log::info!("{key}: pull: no worker publishes it now; players wait for a publisher");
                self.drop_pull(key, CloseReason::SourceMoved);
                false
            }
        }
    }

    /// A host name asked for with [`Action::Resolve`] resolved (or failed to).
    pub fn handle_resolved(&mut self, id: ConnId, result: Result<Vec<SocketAddr>, String>, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        if !matches!(conn.phase, Phase::Dialing) {
            return;
        }
        // Prefer IPv4, as most RTMP origins listen there first.
        let address = result.and_then(|addrs| {
            addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| "no addresses".to_string())
        });
        match address {
            Ok(addr) => {
                conn.peer = addr;
                let tls = conn.upstream.as_ref().and_then(|upstream| upstream.tls_server_name.clone());
                self.actions.push_back(Action::Connect { id, addr, tls });
            }
            Err(error) => {
                let target = conn.upstream.as_ref().map_or_else(String::new, |u| u.target.clone());
                Self::mark_close(&mut self.to_close, id, conn, CloseReason::ConnectFailed(format!("resolving {target}: {error}")));
            }
        }
        self.finish(now);
    }

    /// The TCP connect asked for with [`Action::Connect`] completed: the handshake starts.
    pub fn handle_connected(&mut self, id: ConnId, now: Instant) {
        let epoch = self.epoch_ms(now);
        let handshake_timeout = self.config.upstream_handshake_timeout;
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Some(upstream) = conn.upstream.as_mut() else { return };
        if !matches!(conn.phase, Phase::Dialing) {
            return;
        }
        log::info!("{}: {}: TCP connected to {}", upstream.key, upstream.purpose, upstream.target);
        upstream.stage = UpstreamStage::Handshake;
        upstream.stage_deadline = now + handshake_timeout;
        let mut handshake = Handshake::new(HandshakeRole::Client, epoch);
        let hello = handshake.start();
        conn.phase = Phase::Handshake(Box::new(handshake));
        conn.out.push(hello, now);
        conn.last_activity = now;
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
        self.finish(now);
    }

    /// One of our upstream connections closed: back off and retry the link, if still wanted.
    pub(super) fn upstream_closed(&mut self, id: ConnId, upstream: &UpstreamConn, reason: &CloseReason, now: Instant) {
        let key = &upstream.key;
        let purpose = upstream.purpose;
        let still_ours = self.link(key, purpose).is_some_and(|link| link.conn == Some(id));
        if !still_ours {
            return;
        }
        log::warn!("{key}: {purpose}: upstream {} failed: {reason}", upstream.target);
        if purpose == LinkPurpose::Pull {
            // Players stay; they resume at the next keyframe once a pull plays again.
            self.pull_lost(key, false, now);
        }
        self.link_failed(key, purpose, now);
    }

    /// Schedules the next attempt of a link, moving to the next origin.
    pub(super) fn link_failed(&mut self, key: &StreamKey, purpose: LinkPurpose, now: Instant) {
        let origins = self.config.origins.len().max(1);
        let jitter = self.jitter();
        let shutting_down = self.shutdown_deadline.is_some();
        let Some(link) = self.link_mut(key, purpose) else { return };
        if link.conn.take().is_some() {
            link.reconnects += 1;
        }
        link.ready = false;
        link.waiting_for_keyframe = true;
        link.origin_index = (link.origin_index + 1) % origins;
        if shutting_down {
            link.retry_at = None;
            return;
        }
        let delay = link.backoff.next_delay(jitter);
        link.retry_at = Some(now + delay);
        log::info!("{key}: {purpose}: backing off for {} ms", delay.as_millis());
    }

    /// Retries, stage deadlines, silent pulls and pull linger; called from the tick.
    pub(super) fn upstream_tick(&mut self, now: Instant) {
        let silence = self.config.upstream_timeout;
        let mut stalled = Vec::new();
        for (id, conn) in self.conns.iter() {
            let Some(upstream) = &conn.upstream else { continue };
            if conn.closing.is_some() {
                continue;
            }
            if upstream.stage != UpstreamStage::Ready {
                if now >= upstream.stage_deadline {
                    let after = match upstream.stage {
                        UpstreamStage::Connecting => self.config.upstream_connect_timeout,
                        UpstreamStage::Handshake => self.config.upstream_handshake_timeout,
                        _ => self.config.upstream_reply_timeout,
                    };
                    stalled.push((id, CloseReason::UpstreamStageTimeout { stage: upstream.stage.name(), after }));
                }
                continue;
            }
            // Silence only means trouble once media flowed: an origin holding a play for a
            // stream nobody publishes yet rightly sends nothing.
            let flowing = self.link(&upstream.key, upstream.purpose).is_some_and(|link| link.media_flowing);
            if flowing && upstream.purpose == LinkPurpose::Pull && now.saturating_duration_since(conn.last_input) > silence {
                stalled.push((id, CloseReason::UpstreamSilent(silence)));
            }
        }
        for (id, reason) in stalled {
            self.fail(id, reason);
        }
        let mut due = Vec::new();
        let mut lingering = Vec::new();
        for (key, stream) in &self.streams {
            for link in stream.pull.iter().chain(stream.pushes.iter()) {
                if link.conn.is_none() && link.retry_at.is_some_and(|at| now >= at) {
                    due.push((key.clone(), link.purpose));
                }
            }
            if stream.linger_until.is_some_and(|at| now >= at) && stream.players.is_empty() {
                lingering.push(key.clone());
            }
        }
        for (key, purpose) in due {
            self.connect_link(&key, purpose, now);
        }
        for key in lingering {
            self.end_pull(&key);
        }
    }

    /// Closes an unwatched pull after its linger time.
    fn end_pull(&mut self, key: &StreamKey) {
        log::info!("{key}: pull: no players for {} s, closing", self.config.pull_linger.as_secs_f64());
        self.drop_pull(key, CloseReason::PullUnwatched);
        if let Some(stream) = self.streams.get_mut(key) {
            stream.source_lost();
        }
        if self.streams.get(key).is_some_and(LiveStream::is_unused) {
            self.streams.remove(key);
        }
    }

    /// The pull started playing (again): players wait for a keyframe, timestamps go on.
    pub(super) fn pull_went_live(&mut self, key: &StreamKey, now: Instant) {
        let was_live = self.streams.get(key).is_some_and(|stream| stream.pull_live);
        let had_players_waiting = self.streams.get(key).is_some_and(|stream| !stream.players.is_empty());
        self.set_pull_live(key, true);
        let Some(stream) = self.streams.get_mut(key) else { return };
        if let Some(link) = stream.pull.as_mut() {
            link.ready = true;
            link.media_flowing = false;
        }
        if was_live {
            return;
        }
        stream.restart_source();
        if had_players_waiting {
            self.tell_players_source_started(key, now);
        }
    }

    /// The pull stopped delivering (origin unpublished, or the connection dropped).
    pub(super) fn pull_lost(&mut self, key: &StreamKey, tell_players: bool, now: Instant) {
        let was_live = self.streams.get(key).is_some_and(|stream| stream.pull_live);
        self.set_pull_live(key, false);
        let Some(stream) = self.streams.get_mut(key) else { return };
        if let Some(link) = stream.pull.as_mut() {
            link.media_flowing = false;
        }
        stream.source_lost();
        if tell_players && was_live {
            self.tell_players_source_stopped(key, now);
        }
    }
}
