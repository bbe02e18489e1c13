//! Edge mode: pulls from origins on demand, forwards of local publishes, `--push` targets.
//!
//! Every upstream connection is a [`Conn`] with a `ClientSession`, inside the same loop.
//! A link ([`UpstreamLink`]) outlives its connections: when one fails, the link backs off
//! and retries, moving through the origin list, while players stay connected.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::conn::{Conn, UpstreamConn};
use super::event_loop::Relay;
use super::stream::SharedFrame;
use super::upstream::{parse_host_port, LinkPurpose, UpstreamLink};
use crate::handshake::{Handshake, HandshakeRole};
use crate::sessions::{
    codes, ClientSession, ClientSessionConfig, ClientSessionEvent, MediaKind, PublishMode, RejectedRequestKind,
    SessionError,
};
use crate::Amf0Value;

/// Connect property carrying the ids of the relays a request passed through.
pub const VIA_PROPERTY: &str = "rtmpEdgeVia";

/// The client session an upstream connection runs once its handshake is done.
pub fn start_client_session(upstream: &UpstreamConn, chunk_size: u32) -> Result<ClientSession, SessionError> {
    let mut client = ClientSession::new(ClientSessionConfig {
        chunk_size,
        extra_connect_properties: vec![(VIA_PROPERTY.to_string(), Amf0Value::Utf8String(upstream.via.clone()))],
        ..ClientSessionConfig::default()
    });
    client.connect(&upstream.app, &upstream.tc_url)?;
    match upstream.purpose {
        LinkPurpose::Pull => client.request_playback(&upstream.stream_name)?,
        LinkPurpose::Forward | LinkPurpose::Push(_) => client.request_publishing(&upstream.stream_name, PublishMode::Live)?,
    }
    Ok(client)
}

impl Relay {
    /// Starts pulling `key` from the origins unless a pull already exists.
    pub(super) fn ensure_pull(&mut self, key: &str, via: String) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        if stream.pull.is_some() {
            return;
        }
        stream.pull = Some(UpstreamLink::new(LinkPurpose::Pull));
        stream.via = via;
        self.connect_link(key, LinkPurpose::Pull);
    }

    /// Starts the forward to the origin (edge mode) and the `--push` targets for a new
    /// local publish.
    pub(super) fn start_pushes(&mut self, key: &str) {
        let mut purposes = Vec::new();
        if !self.config.origins.is_empty() {
            purposes.push(LinkPurpose::Forward);
        }
        let name = key.split_once('/').map_or(key, |(_, name)| name);
        for (index, target) in self.config.push.iter().enumerate() {
            if target.name.as_deref().is_none_or(|wanted| wanted.split('?').next() == Some(name)) {
                purposes.push(LinkPurpose::Push(index));
            }
        }
        let Some(stream) = self.streams.get_mut(key) else { return };
        for purpose in &purposes {
            stream.pushes.push(UpstreamLink::new(*purpose));
        }
        for purpose in purposes {
            self.connect_link(key, purpose);
        }
    }

    /// Closes the forwards and pushes of a publish that ended.
    pub(super) fn stop_pushes(&mut self, key: &str) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let links = std::mem::take(&mut stream.pushes);
        for link in links {
            let Some(token) = link.token else { continue };
            let Some(conn) = self.conns.get_mut(token.0) else { continue };
            conn.upstream = None;
            if let Some(client) = conn.client() {
                let _ = client.stop();
            }
            conn.close_after_flush = Some("the local publisher stopped");
            self.sync_session_output(token);
            if let Some(conn) = self.conns.get_mut(token.0) {
                if conn.out.is_empty() {
                    conn.fail("the local publisher stopped");
                    self.close_list.push(token);
                }
            }
        }
    }

    /// What to connect to for a link, and with which names.
    fn link_target(&self, key: &str, purpose: LinkPurpose, origin_index: usize) -> Option<UpstreamConn> {
        let (app, name_from_key) = key.split_once('/')?;
        let stream = self.streams.get(key)?;
        // The query string (auth token) of the request travels upstream too.
        let stream_name = self.full_stream_name(key).unwrap_or_else(|| name_from_key.to_string());
        let mut via = stream.via.clone();
        if !via.is_empty() {
            via.push(',');
        }
        via.push_str(&self.node_id);
        let (host, port, app, stream_name) = match purpose {
            LinkPurpose::Pull | LinkPurpose::Forward => {
                let origin = self.config.origins.get(origin_index % self.config.origins.len().max(1))?;
                let (host, port) = parse_host_port(origin, 1935).ok()?;
                (host, port, app.to_string(), stream_name)
            }
            LinkPurpose::Push(index) => {
                let target = self.config.push.get(index)?;
                let name = target.name.clone().unwrap_or(stream_name);
                (target.host.clone(), target.port, target.app.clone(), name)
            }
        };
        let tc_url = format!("rtmp://{host}:{port}/{app}");
        Some(UpstreamConn { key: key.to_string(), purpose, target: format!("{host}:{port}"), app, stream_name, tc_url, via, connecting: true })
    }

    /// The stream name with the query string the first player or the publisher used.
    fn full_stream_name(&self, key: &str) -> Option<String> {
        let stream = self.streams.get(key)?;
        let token = stream.publisher.map(|(token, _)| token).or_else(|| stream.players.first().map(|p| p.token))?;
        let conn = self.conns.get(token.0)?;
        conn.requested_names.iter().find(|(k, _)| k == key).map(|(_, name)| name.clone())
    }

    fn link_mut(&mut self, key: &str, purpose: LinkPurpose) -> Option<&mut UpstreamLink> {
        let stream = self.streams.get_mut(key)?;
        match purpose {
            LinkPurpose::Pull => stream.pull.as_mut(),
            _ => stream.pushes.iter_mut().find(|link| link.purpose == purpose),
        }
    }

    /// Opens a connection for a link, or schedules a retry when that is not possible now.
    fn connect_link(&mut self, key: &str, purpose: LinkPurpose) {
        let connecting = self.conns.iter().filter(|(_, conn)| conn.upstream.as_ref().is_some_and(|u| !u.connecting_done())).count();
        let Some(origin_index) = self.link_mut(key, purpose).map(|link| link.origin_index) else { return };
        if connecting >= self.config.max_upstream_connects {
            log::warn!("{key}: {purpose} waits: {connecting} upstream connections already being set up");
            self.link_failed(key, purpose);
            return;
        }
        let Some(target) = self.link_target(key, purpose, origin_index) else {
            log::warn!("{key}: {purpose}: no usable upstream target");
            self.link_failed(key, purpose);
            return;
        };
        log::info!("{key}: {purpose}: connecting to {} (app {}, stream {})", target.target, target.app, target.stream_name);
        match self.open_upstream(target.clone()) {
            Ok(token) => {
                if let Some(link) = self.link_mut(key, purpose) {
                    link.token = Some(token);
                    link.retry_at = None;
                    link.ready = false;
                }
            }
            Err(error) => {
                log::warn!("{key}: {purpose}: connect to {} failed: {error}", target.target);
                self.link_failed(key, purpose);
            }
        }
    }

    fn open_upstream(&mut self, upstream: UpstreamConn) -> std::io::Result<Token> {
        // Hostnames are resolved here, at connect time, so DNS changes are picked up.
        let address: SocketAddr = upstream
            .target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{} resolves to no address", upstream.target)))?;
        let mut socket = TcpStream::connect(address)?;
        socket.set_nodelay(true)?;
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        self.poll.registry().register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)?;
        let epoch = self.started.elapsed().as_millis() as u32;
        let mut handshake = Handshake::new(HandshakeRole::Client, epoch);
        let hello = handshake.start();
        let mut conn = Conn::new(socket, address, handshake, Instant::now());
        conn.out.push(hello);
        conn.summary = format!("{} of {} to {}", upstream.purpose, upstream.key, upstream.target);
        conn.upstream = Some(upstream);
        entry.insert(conn);
        self.stats.connections_open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(token)
    }

    /// Called on writable/error events: finishes a non-blocking connect.
    pub(super) fn check_upstream_connected(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let Some(target) = conn.upstream.as_ref().filter(|u| u.connecting).map(|u| u.target.clone()) else { return };
        let failure = match conn.socket.take_error() {
            Ok(Some(error)) | Err(error) => Some(error),
            Ok(None) => match conn.socket.peer_addr() {
                Ok(_) => None,
                Err(error) if error.kind() == std::io::ErrorKind::NotConnected => return,
                Err(error) => Some(error),
            },
        };
        match failure {
            Some(error) => {
                conn.fail(format!("connect to {target} failed: {error}"));
                self.close_list.push(token);
            }
            None => {
                if let Some(upstream) = &mut conn.upstream {
                    upstream.connecting = false;
                    log::info!("{}: {}: TCP connected to {target}", upstream.key, upstream.purpose);
                }
            }
        }
    }

    /// Feeds an upstream connection's bytes to its client session and acts on its events.
    pub(super) fn client_input(&mut self, token: Token, input: &[u8]) {
        let mut events = std::mem::take(&mut self.client_events);
        let Some(conn) = self.conns.get_mut(token.0) else { return };
        let Some(upstream) = conn.upstream.clone() else { return };
        if let Some(client) = conn.client() {
            let result = client.handle_input(input);
            while let Some(event) = client.poll_event() {
                events.push(event);
            }
            if let Err(error) = result {
                conn.fail(format!("upstream protocol error: {error}"));
                self.close_list.push(token);
            }
        }
        for event in events.drain(..) {
            self.client_event(token, &upstream, event);
        }
        self.client_events = events;
        self.sync_session_output(token);
    }

    fn client_event(&mut self, token: Token, upstream: &UpstreamConn, event: ClientSessionEvent) {
        let key = upstream.key.as_str();
        let purpose = upstream.purpose;
        match event {
            ClientSessionEvent::MediaReceived { kind, timestamp, data, .. } if purpose == LinkPurpose::Pull => {
                let Some(stream) = self.streams.get_mut(key) else { return };
                if !stream.pull_live {
                    return;
                }
                if let Some(link) = stream.pull.as_mut() {
                    if !link.media_flowing {
                        // Success is media arriving, not just Play.Start: an upstream that
                        // accepts and then fails must keep backing off.
                        link.media_flowing = true;
                        link.backoff.reset();
                    }
                }
                self.fan_out(key, kind, timestamp, data);
            }
            ClientSessionEvent::MetadataReceived { metadata, .. } if purpose == LinkPurpose::Pull => {
                self.fan_out_metadata(key, metadata);
            }
            ClientSessionEvent::ConnectionAccepted { .. } => {
                log::info!("{key}: {purpose}: connected to {}", upstream.target);
            }
            ClientSessionEvent::PlaybackStarted { .. } => {
                log::info!("{key}: {purpose}: playing from {}", upstream.target);
                self.pull_went_live(key);
            }
            ClientSessionEvent::PublishStarted { .. } => {
                log::info!("{key}: {purpose}: publishing to {}", upstream.target);
                self.push_went_live(token, key, purpose);
            }
            ClientSessionEvent::StatusReceived { status, .. } if purpose == LinkPurpose::Pull => {
                match status.code.as_str() {
                    codes::PLAY_UNPUBLISH_NOTIFY => {
                        log::info!("{key}: pull: origin says {}", status.code);
                        self.pull_lost(key, true);
                    }
                    // Play.Stop ends this play for good: reconnect (with backoff) to wait
                    // for the stream again, instead of holding a connection that says nothing.
                    codes::PLAY_STOP => {
                        log::info!("{key}: pull: origin says {}; reconnecting", status.code);
                        self.pull_lost(key, true);
                        if let Some(conn) = self.conns.get_mut(token.0) {
                            conn.fail("origin stopped the play");
                            self.close_list.push(token);
                        }
                    }
                    codes::PLAY_PUBLISH_NOTIFY => self.pull_went_live(key),
                    // An edge upstream that had already started playing reports refusals
                    // (StreamNotFound, Connect.Rejected) as an error status: end the pull
                    // and pass the code on, rather than retrying forever.
                    _ if status.level.eq_ignore_ascii_case("error") => {
                        log::warn!("{key}: pull: {} says {} {}", upstream.target, status.code, status.description);
                        self.link_rejected(token, key, purpose, RejectedRequestKind::Play, &status.code, &status.description);
                    }
                    _ => {}
                }
            }
            ClientSessionEvent::RequestRejected { kind, status } => {
                log::warn!("{key}: {purpose}: {} refused by {}: {} {}", kind_name(kind), upstream.target, status.code, status.description);
                self.link_rejected(token, key, purpose, kind, &status.code, &status.description);
            }
            other => log::trace!("{key}: {purpose}: {other:?}"),
        }
    }

    fn pull_went_live(&mut self, key: &str) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        if let Some(link) = stream.pull.as_mut() {
            link.ready = true;
            link.media_flowing = false;
        }
        stream.pull_live = true;
        stream.restart_source();
    }

    /// The pull stopped delivering (origin unpublished, or the connection dropped).
    fn pull_lost(&mut self, key: &str, tell_players: bool) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let was_live = stream.pull_live;
        stream.pull_live = false;
        if let Some(link) = stream.pull.as_mut() {
            link.media_flowing = false;
        }
        stream.source_lost();
        if !(tell_players && was_live) {
            return;
        }
        let name = key.split_once('/').map_or(key, |(_, name)| name).to_string();
        let players: Vec<(Token, u32)> = stream.players.iter().map(|p| (p.token, p.stream_id)).collect();
        for (player, stream_id) in players {
            if let Some(session) = self.conns.get_mut(player.0).and_then(Conn::session) {
                let _ = session.notify_publish_stopped(stream_id, &name);
            }
            self.sync_session_output(player);
        }
    }

    /// A forward or push started publishing: send what a late joiner would get, then live frames.
    fn push_went_live(&mut self, token: Token, key: &str, purpose: LinkPurpose) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frames: Vec<SharedFrame> = stream.join_frames().cloned().collect();
        let starts_at_keyframe = stream.has_gop() || !stream.has_video;
        if let Some(link) = stream.pushes.iter_mut().find(|link| link.purpose == purpose) {
            link.ready = true;
            link.backoff.reset();
            link.waiting_for_keyframe = !starts_at_keyframe;
        }
        if let Some(client) = self.conns.get_mut(token.0).and_then(Conn::client) {
            for frame in frames {
                if let Err(error) = send_frame(client, &frame) {
                    log::warn!("{key}: {purpose}: {error}");
                    break;
                }
            }
        }
        self.sync_session_output(token);
    }

    /// Sends a frame a local publisher produced to every ready forward and push of `key`.
    pub(super) fn forward_frame(&mut self, key: &str, frame: &SharedFrame) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        if stream.pushes.is_empty() {
            return;
        }
        let mut targets = Vec::new();
        for link in &mut stream.pushes {
            let Some(token) = link.token else { continue };
            if !link.ready {
                continue;
            }
            if link.waiting_for_keyframe {
                let audio_only_start = frame.kind == MediaKind::Audio && !stream.has_video;
                if frame.droppable && !frame.is_keyframe && !audio_only_start {
                    continue;
                }
                if frame.droppable {
                    link.waiting_for_keyframe = false;
                }
            }
            targets.push(token);
        }
        let hard_limit = self.config.queue_hard_limit_bytes;
        for token in targets {
            // An upstream that stops reading must not make us queue without bound: drop the
            // connection and let the link reconnect (and resume at a keyframe).
            if let Some(conn) = self.conns.get_mut(token.0) {
                if conn.out.len_bytes() > hard_limit {
                    conn.fail(format!("upstream too slow: {} bytes queued (limit {hard_limit})", conn.out.len_bytes()));
                    self.close_list.push(token);
                    continue;
                }
            }
            if let Some(client) = self.conns.get_mut(token.0).and_then(Conn::client) {
                if let Err(error) = send_frame(client, frame) {
                    if let Some(conn) = self.conns.get_mut(token.0) {
                        conn.fail(format!("upstream publish failed: {error}"));
                        self.close_list.push(token);
                    }
                    continue;
                }
            }
            self.sync_session_output(token);
        }
    }

    fn link_rejected(&mut self, token: Token, key: &str, purpose: LinkPurpose, kind: RejectedRequestKind, code: &str, description: &str) {
        match purpose {
            LinkPurpose::Pull => {
                // The origin's answer reaches the players, instead of a hang.
                let player_code = if kind == RejectedRequestKind::Connect { codes::CONNECT_REJECTED } else { code };
                let player_code = if player_code.is_empty() { codes::PLAY_STREAM_NOT_FOUND } else { player_code };
                if let Some(stream) = self.streams.get_mut(key) {
                    stream.pull = None;
                    stream.pull_live = false;
                    stream.linger_until = None;
                    let players: Vec<(Token, u32)> = stream.players.iter().map(|p| (p.token, p.stream_id)).collect();
                    if stream.is_unused() {
                        self.streams.remove(key);
                    }
                    for (player, stream_id) in players {
                        if let Some(session) = self.conns.get_mut(player.0).and_then(Conn::session) {
                            let _ = session.send_status(stream_id, "error", player_code, description);
                        }
                        self.sync_session_output(player);
                    }
                }
            }
            LinkPurpose::Forward => {
                // The encoder gets the origin's refusal.
                let publisher = self.streams.get(key).and_then(|stream| stream.publisher);
                if let Some((publisher, stream_id)) = publisher {
                    if let Some(session) = self.conns.get_mut(publisher.0).and_then(Conn::session) {
                        let code = if code.is_empty() { codes::PUBLISH_DENIED } else { code };
                        let _ = session.send_status(stream_id, "error", code, description);
                    }
                    self.sync_session_output(publisher);
                }
                if let Some(stream) = self.streams.get_mut(key) {
                    stream.pushes.retain(|link| link.purpose != purpose);
                }
            }
            LinkPurpose::Push(_) => {}
        }
        if let Some(conn) = self.conns.get_mut(token.0) {
            // Pulls and forwards end with the refusal; a push target retries with backoff.
            if !matches!(purpose, LinkPurpose::Push(_)) {
                conn.upstream = None;
            }
            conn.fail(format!("upstream refused: {code}"));
            self.close_list.push(token);
        }
    }

    /// One of our upstream connections closed: back off and retry the link, if it is still wanted.
    pub(super) fn upstream_closed(&mut self, token: Token, upstream: &UpstreamConn, reason: &str) {
        let key = upstream.key.as_str();
        let purpose = upstream.purpose;
        let still_ours = self.link_mut(key, purpose).is_some_and(|link| link.token == Some(token));
        if !still_ours {
            return;
        }
        log::warn!("{key}: {purpose}: upstream {} failed: {reason}", upstream.target);
        if purpose == LinkPurpose::Pull {
            // Players stay; they resume at the next keyframe once a pull plays again.
            self.pull_lost(key, false);
        }
        self.link_failed(key, purpose);
    }

    /// Schedules the next attempt of a link, moving to the next origin.
    fn link_failed(&mut self, key: &str, purpose: LinkPurpose) {
        let origins = self.config.origins.len().max(1);
        let jitter: f64 = rand::random();
        let Some(link) = self.link_mut(key, purpose) else { return };
        link.token = None;
        link.ready = false;
        link.waiting_for_keyframe = true;
        link.origin_index = (link.origin_index + 1) % origins;
        let delay = link.backoff.next_delay(jitter);
        link.retry_at = Some(Instant::now() + delay);
        log::info!("{key}: {purpose}: backing off for {} ms", delay.as_millis());
    }

    /// Retries, upstream timeouts and pull linger; called from the loop's tick.
    pub(super) fn upstream_tick(&mut self, now: Instant) {
        let timeout = self.config.upstream_timeout;
        let mut stalled = Vec::new();
        for (key, conn) in self.conns.iter() {
            let Some(upstream) = &conn.upstream else { continue };
            if conn.close_reason.is_some() {
                continue;
            }
            let link = self.streams.get(&upstream.key).and_then(|stream| match upstream.purpose {
                LinkPurpose::Pull => stream.pull.as_ref(),
                purpose => stream.pushes.iter().find(|link| link.purpose == purpose),
            });
            let ready = link.is_some_and(|link| link.ready);
            // Silence only means trouble once media flowed: an origin holding a play for a
            // stream nobody publishes yet rightly sends nothing.
            let flowing = link.is_some_and(|link| link.media_flowing);
            if !ready && now.duration_since(conn.opened_at) > timeout {
                stalled.push((Token(key), format!("not playing/publishing within {} s", timeout.as_secs_f64())));
            } else if flowing && upstream.purpose == LinkPurpose::Pull && now.duration_since(conn.last_activity) > timeout {
                stalled.push((Token(key), format!("silent for {} s", timeout.as_secs_f64())));
            }
        }
        for (token, reason) in stalled {
            if let Some(conn) = self.conns.get_mut(token.0) {
                conn.fail(reason);
                self.close_list.push(token);
            }
        }

        let mut due = Vec::new();
        let mut lingering = Vec::new();
        for (key, stream) in &self.streams {
            if let Some(link) = &stream.pull {
                if link.token.is_none() && link.retry_at.is_some_and(|at| now >= at) {
                    due.push((key.clone(), LinkPurpose::Pull));
                }
            }
            for link in &stream.pushes {
                if link.token.is_none() && link.retry_at.is_some_and(|at| now >= at) {
                    due.push((key.clone(), link.purpose));
                }
            }
            if stream.linger_until.is_some_and(|at| now >= at) && stream.players.is_empty() {
                lingering.push(key.clone());
            }
        }
        for (key, purpose) in due {
            self.connect_link(&key, purpose);
        }
        for key in lingering {
            self.end_pull(&key);
        }
    }

    /// Closes an unwatched pull after its linger time.
    fn end_pull(&mut self, key: &str) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        stream.linger_until = None;
        let Some(link) = stream.pull.take() else { return };
        stream.pull_live = false;
        stream.source_lost();
        log::info!("{key}: pull: no players for {} s, closing", self.config.pull_linger.as_secs_f64());
        if let Some(token) = link.token {
            if let Some(conn) = self.conns.get_mut(token.0) {
                conn.upstream = None;
                conn.fail("pull no longer watched");
                self.close_list.push(token);
            }
        }
        if self.streams.get(key).is_some_and(super::stream::LiveStream::is_unused) {
            self.streams.remove(key);
        }
    }
}

impl UpstreamConn {
    fn connecting_done(&self) -> bool {
        !self.connecting
    }
}

fn kind_name(kind: RejectedRequestKind) -> &'static str {
    match kind {
        RejectedRequestKind::Connect => "connect",
        RejectedRequestKind::CreateStream => "createStream",
        RejectedRequestKind::Play => "play",
        RejectedRequestKind::Publish => "publish",
    }
}

fn send_frame(client: &mut ClientSession, frame: &SharedFrame) -> Result<(), SessionError> {
    if frame.kind == MediaKind::Data && !frame.droppable {
        // Metadata: the cached frame's body is the `onMetaData` AMF; publishers wrap it.
        return client.publish_metadata_raw(frame.timestamp, &frame.body);
    }
    client.publish_media(frame.kind, frame.timestamp, frame.body.clone())
}
