//! What an upstream's client session reports, and publishing to forwards and pushes.

use std::time::Instant;

use super::close::CloseReason;
use super::frame::SharedFrame;
use super::links::{LinkPurpose, UpstreamConn, UpstreamStage};
use super::publish::count_ignored_media;
use super::stream::StreamKey;
use super::{ConnId, RelayCore};
use crate::sessions::{codes, ClientSession, ClientSessionEvent, MediaKind, RejectedRequestKind, SessionError};

impl RelayCore {
    /// Feeds an upstream connection's bytes to its client session and acts on its events.
    pub(super) fn client_input(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        let mut events = std::mem::take(&mut self.client_events);
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Some(upstream) = conn.upstream.clone() else { return };
        if let Some(client) = conn.client() {
            let result = client.handle_input(bytes);
            while let Some(event) = client.poll_event() {
                events.push(event);
            }
            if let Err(error) = result {
                Self::mark_close(&mut self.to_close, id, conn, CloseReason::UpstreamProtocolError(error.to_string()));
            }
        }
        // An origin that accepts a play for a stream with no publisher yet answers
        // Play.Start without StreamBegin; the session then raises WaitingForPublisher right
        // after PlaybackStarted, from the same input.
        let origin_waits = events.iter().any(|event| matches!(event, ClientSessionEvent::WaitingForPublisher { .. }));
        for event in events.drain(..) {
            self.client_event(id, &upstream, event, origin_waits, now);
        }
        self.client_events = events;
        self.sync_output(id, now);
    }

    /// Whether `key`'s pull is live; media from a playing origin that never said
    /// StreamBegin makes it live (not every server sends it).
    fn pull_live_or_media_says_so(&mut self, key: &StreamKey, now: Instant) -> bool {
        let Some(stream) = self.streams.get(key) else { return false };
        if stream.pull_live {
            return true;
        }
        if !stream.pull.as_ref().is_some_and(|link| link.ready) {
            return false;
        }
        self.pull_went_live(key, now);
        true
    }

    fn set_stage_ready(&mut self, id: ConnId) {
        if let Some(upstream) = self.conns.get_mut(id).and_then(|conn| conn.upstream.as_mut()) {
            upstream.stage = UpstreamStage::Ready;
        }
    }

    fn client_event(&mut self, id: ConnId, upstream: &UpstreamConn, event: ClientSessionEvent, origin_waits: bool, now: Instant) {
        let key = &upstream.key;
        let purpose = upstream.purpose;
        // A pull whose link was taken over or dropped must not feed the stream.
        let current = self.link(key, purpose).is_some_and(|link| link.conn == Some(id));
        if !current {
            return;
        }
        match event {
            ClientSessionEvent::MediaReceived { kind, timestamp, data, .. } if purpose == LinkPurpose::Pull => {
                if !self.pull_live_or_media_says_so(key, now) {
                    return;
                }
                let Some(link) = self.streams.get_mut(key).and_then(|stream| stream.pull.as_mut()) else { return };
                // Filtered before anything else: empty messages are no sign of a working
                // upstream, and must not reset its backoff.
                if super::frame::is_implausibly_small(kind, &data) {
                    // format_args: no allocation per message an origin can send at will.
                    let source = format_args!("{purpose} from {}", upstream.target);
                    count_ignored_media(&self.stats, &mut link.ignored_media_logged, &source, key, kind, data.len());
                    return;
                }
                if !link.media_flowing {
                    // Success is media arriving, not just Play.Start: an upstream that
                    // accepts and then fails must keep backing off.
                    link.media_flowing = true;
                    link.backoff.reset();
                }
                self.fan_out(key, kind, timestamp, data, now);
            }
            ClientSessionEvent::MetadataReceived { metadata, .. } if purpose == LinkPurpose::Pull => {
                if self.pull_live_or_media_says_so(key, now) {
                    self.fan_out_metadata(key, metadata.raw, now);
                }
            }
            ClientSessionEvent::ConnectionAccepted { .. } => {
                log::info!("{key}: {purpose}: connected to {}", upstream.target);
            }
            ClientSessionEvent::PlaybackStarted { .. } if origin_waits => {
                log::info!("{key}: {purpose}: playing from {}, which waits for a publisher", upstream.target);
                self.set_stage_ready(id);
                // Not live: players are told StreamBegin when the origin says so.
                if let Some(link) = self.streams.get_mut(key).and_then(|stream| stream.pull.as_mut()) {
                    link.ready = true;
                }
            }
            ClientSessionEvent::PlaybackStarted { .. } => {
                log::info!("{key}: {purpose}: playing from {}", upstream.target);
                self.set_stage_ready(id);
                self.pull_went_live(key, now);
            }
            ClientSessionEvent::PublishStarted { .. } => {
                log::info!("{key}: {purpose}: publishing to {}", upstream.target);
                self.set_stage_ready(id);
                self.push_went_live(id, key, purpose, now);
            }
            // nginx-rtmp (StreamEOF) and this relay (StreamDry) tell a publisher restart with
            // these events alone.
            ClientSessionEvent::StreamEof { .. } | ClientSessionEvent::StreamDry { .. } if purpose == LinkPurpose::Pull => {
                log::info!("{key}: pull: origin says the stream ended; waiting for it");
                self.pull_lost(key, true, now);
            }
            ClientSessionEvent::StreamBegin { .. } if purpose == LinkPurpose::Pull => {
                if self.link(key, purpose).is_some_and(|link| link.ready) {
                    self.pull_went_live(key, now);
                }
            }
            ClientSessionEvent::StatusReceived { status, .. } if purpose == LinkPurpose::Pull => {
                match status.code.as_str() {
                    codes::PLAY_UNPUBLISH_NOTIFY => {
                        log::info!("{key}: pull: origin says {}", status.code);
                        self.pull_lost(key, true, now);
                    }
                    // Play.Stop ends this play for good: reconnect (with backoff) to wait
                    // for the stream again, instead of holding a connection that says nothing.
                    codes::PLAY_STOP => {
                        log::info!("{key}: pull: origin says {}; reconnecting", status.code);
                        self.pull_lost(key, true, now);
                        self.fail(id, CloseReason::UpstreamStoppedPlay);
                    }
                    codes::PLAY_PUBLISH_NOTIFY => self.pull_went_live(key, now),
                    // An edge upstream that had already started playing reports refusals
                    // (StreamNotFound, Connect.Rejected) as an error status: end the pull
                    // and pass the code on, rather than retrying forever.
                    _ if status.level.eq_ignore_ascii_case("error") => {
                        log::warn!("{key}: pull: {} says {} {}", upstream.target, status.code, status.description);
                        self.link_rejected(id, key, purpose, RejectedRequestKind::Play, &status.code, &status.description, now);
                    }
                    _ => {}
                }
            }
            ClientSessionEvent::RequestRejected { kind, status } => {
                log::warn!(
                    "{key}: {purpose}: {} refused by {}: {} {}",
                    kind_name(kind),
                    upstream.target,
                    status.code,
                    status.description
                );
                self.link_rejected(id, key, purpose, kind, &status.code, &status.description, now);
            }
            other => log::trace!("{key}: {purpose}: {other:?}"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn link_rejected(
        &mut self,
        id: ConnId,
        key: &StreamKey,
        purpose: LinkPurpose,
        kind: RejectedRequestKind,
        code: &str,
        description: &str,
        now: Instant,
    ) {
        match purpose {
            LinkPurpose::Pull => {
                // The origin's answer reaches the players, instead of a hang.
                let player_code = if kind == RejectedRequestKind::Connect { codes::CONNECT_REJECTED } else { code };
                let player_code = if player_code.is_empty() { codes::PLAY_STREAM_NOT_FOUND } else { player_code };
                self.drop_pull(key, CloseReason::UpstreamRefused(code.to_string()));
                let players: Vec<(ConnId, u32)> =
                    self.streams.get(key).map(|s| s.players.iter().map(|p| (p.conn, p.stream_id)).collect()).unwrap_or_default();
                for (player, stream_id) in players {
                    if let Some(session) = self.conns.get_mut(player).and_then(|conn| conn.session()) {
                        let _ = session.send_status(stream_id, "error", player_code, description);
                    }
                    self.sync_output(player, now);
                }
                self.remove_if_unused(key);
            }
            LinkPurpose::Forward => {
                // The encoder gets the origin's refusal.
                let publisher = self.streams.get(key).and_then(|stream| stream.publisher);
                if let Some((publisher, stream_id)) = publisher {
                    if let Some(session) = self.conns.get_mut(publisher).and_then(|conn| conn.session()) {
                        let code = if code.is_empty() { codes::PUBLISH_DENIED } else { code };
                        let _ = session.send_status(stream_id, "error", code, description);
                    }
                    self.sync_output(publisher, now);
                }
                if let Some(stream) = self.streams.get_mut(key) {
                    stream.pushes.retain(|link| link.purpose != purpose);
                }
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.upstream = None;
                }
                self.fail(id, CloseReason::UpstreamRefused(code.to_string()));
            }
            // A push target retries with backoff (the close goes through upstream_closed).
            LinkPurpose::Push(_) => self.fail(id, CloseReason::UpstreamRefused(code.to_string())),
        }
    }

    /// A forward or push started publishing: send what a late joiner would get, then live frames.
    fn push_went_live(&mut self, id: ConnId, key: &StreamKey, purpose: LinkPurpose, now: Instant) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frames: Vec<SharedFrame> = stream.join_frames().cloned().collect();
        let starts_at_keyframe = stream.has_gop() || !stream.has_video;
        if let Some(link) = stream.pushes.iter_mut().find(|link| link.purpose == purpose) {
            link.ready = true;
            link.backoff.reset();
            link.waiting_for_keyframe = !starts_at_keyframe;
        }
        if let Some(client) = self.conns.get_mut(id).and_then(|conn| conn.client()) {
            for frame in frames {
                if let Err(error) = send_frame(client, &frame) {
                    log::warn!("{key}: {purpose}: {error}");
                    break;
                }
            }
        }
        self.sync_output(id, now);
    }

    /// Sends a frame of the local publisher to every ready forward and push of `key`.
    pub(super) fn forward_frame(&mut self, key: &StreamKey, frame: &SharedFrame, now: Instant) {
        let Some(stream) = self.streams.get_mut(key) else { return };
        if stream.pushes.is_empty() {
            return;
        }
        let mut targets = Vec::new();
        for link in &mut stream.pushes {
            let Some(id) = link.conn else { continue };
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
            targets.push(id);
        }
        let limits = self.queue_limits();
        for id in targets {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            if conn.closing.is_some() {
                continue;
            }
            // An upstream that stops reading must not make us queue without bound: drop the
            // connection and let the link reconnect (and resume at a keyframe).
            if let Some(reason) = super::fanout::queue_overflow(conn, &limits, now) {
                Self::mark_close(&mut self.to_close, id, conn, reason);
                continue;
            }
            if let Some(client) = conn.client() {
                if let Err(error) = send_frame(client, frame) {
                    Self::mark_close(&mut self.to_close, id, conn, CloseReason::UpstreamProtocolError(error.to_string()));
                    continue;
                }
            }
            self.sync_output(id, now);
        }
    }
}

fn kind_name(kind: RejectedRequestKind) -> &'static str {
    match kind {
        RejectedRequestKind::Connect => "connect",
        RejectedRequestKind::CreateStream => "createStream",
        RejectedRequestKind::Play => "play",
        RejectedRequestKind::Publish => "publish",
        #[allow(unreachable_patterns)]
        _ => "request",
    }
}

fn send_frame(client: &mut ClientSession, frame: &SharedFrame) -> Result<(), SessionError> {
    if frame.kind == MediaKind::Data && !frame.droppable {
        // Metadata: the cached frame's body is the `onMetaData` AMF; publishers wrap it.
        return client.publish_metadata_raw(frame.timestamp, &frame.body);
    }
    client.publish_media(frame.kind, frame.timestamp, frame.body.clone())
}
