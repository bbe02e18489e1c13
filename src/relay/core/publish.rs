//! Publishers: taking a stream, its media and metadata, and leaving it.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;

use super::super::stats::Stats;
use super::close::CloseReason;
use super::conn::Role;
use super::frame::is_implausibly_small;
use super::access::{Gated, StreamRequest};
use super::stream::{LiveStream, StreamKey};
use super::{ConnId, RelayCore};
use crate::sessions::{MediaKind, ServerSession, SessionError, StreamMetadata};
use crate::time::RtmpTimestamp;

impl RelayCore {
    /// A publish request goes through access control (`core/access.rs`) first, which calls
    /// [`start_publish`](Self::start_publish) once it is allowed. Only then is a taken name
    /// refused: a client that may not publish learns nothing of which streams are live.
    pub(super) fn on_publish_requested(&mut self, id: ConnId, request: StreamRequest, now: Instant) {
        if self.is_sibling(id) {
            // A sibling worker only ever pulls.
            self.reject_pending(id, request.request_id, None, "A sibling worker's connection cannot publish.");
            self.fail(id, CloseReason::ProtocolError("a sibling worker's connection asked to publish".to_string()));
            return;
        }
        self.gate(id, Gated::Publish(request), now);
    }

    /// Refuses an allowed publish when the stream has a publisher (here, or on another
    /// worker) or the connection a role (another may have taken the name while the hook
    /// was asked). With `claim`, a publish that is not refused takes the stream in the
    /// workers' directory.
    fn refused_as_busy(&mut self, id: ConnId, request: &StreamRequest, claim: bool) -> bool {
        let key = request.key();
        let Some(conn) = self.conns.get(id) else { return true };
        let peer = conn.peer;
        // One role per connection: a player that also published would leave its
        // subscriptions behind when the role changed.
        let has_role = !matches!(conn.role, Role::Undecided);
        let busy_here = self.streams.get(&key).is_some_and(|stream| stream.publisher.is_some());
        let busy = busy_here
            || match claim && !has_role {
                true => self.claim_stream(&key).is_err(),
                false => self.sibling_holding(&key).is_some(),
            };
        if !busy && !has_role {
            return false;
        }
        let why = if busy { "Stream is already being published." } else { "This connection already plays or publishes." };
        log::warn!("{peer}: publish {key} refused: {why}");
        self.reject_pending(id, request.request_id, None, why);
        true
    }

    /// An allowed publish takes the stream: Publish.Start, then its media flows.
    pub(super) fn start_publish(&mut self, id: ConnId, request: &StreamRequest, now: Instant) {
        if self.refused_as_busy(id, request, true) {
            return;
        }
        let key = request.key();
        let stream_id = request.stream_id;
        let stream_name = request.stream_name.as_str();
        // The stream is claimed: every way out but the publish starting gives it back.
        let accepted = match self.conns.get_mut(id).and_then(|conn| conn.session()) {
            Some(session) => session.accept_request(request.request_id),
            None => Err(SessionError::UnknownRequest(request.request_id)),
        };
        if accepted.is_err() {
            self.release_stream(&key);
        }
        let Some(conn) = self.conns.get_mut(id) else { return };
        let peer = conn.peer;
        match accepted {
            Ok(()) => {}
            // The client withdrew the publish while it was decided.
            Err(SessionError::UnknownRequest(_)) => return,
            Err(error) => {
                Self::mark_close(&mut self.to_close, id, conn, CloseReason::EncodeFailed(error.to_string()));
                return;
            }
        }
        conn.role = Role::Publisher { key: key.clone(), stream_id };
        conn.publish_started = Some(now);
        conn.requested_names.push((key.clone(), stream_name.to_string()));
        conn.summary = format!("publisher of {key}");
        log::info!("{peer}: publishing {key}");
        self.stats.publishers.fetch_add(1, Relaxed);
        let stream = self.streams.entry(key.clone()).or_default();
        stream.publisher = Some((id, stream_id));
        stream.restart_source();
        // A local publisher takes over from a pull of the same stream.
        if stream.pull.is_some() {
            self.drop_pull(&key, CloseReason::LocalPublisherTookOver);
        }
        self.tell_players_source_started(&key, now);
        self.start_pushes(&key, now);
        self.announce_publish(&key);
    }

    /// Players waiting on `key` learn that a source started: StreamBegin alone, as
    /// nginx-rtmp sends it, so players of every kind carry on as one stream.
    pub(super) fn tell_players_source_started(&mut self, key: &StreamKey, now: Instant) {
        self.tell_players(key, now, ServerSession::send_stream_begin);
    }

    /// Players of `key` learn that its source went away: StreamDry alone, which every player
    /// we know carries on through, resuming when the next source starts. ffmpeg and librtmp
    /// end playback on `NetStream.Play.UnpublishNotify`, GStreamer's rtmp2src on StreamEOF
    /// (nginx-rtmp's choice).
    pub(super) fn tell_players_source_stopped(&mut self, key: &StreamKey, now: Instant) {
        self.tell_players(key, now, ServerSession::send_stream_dry);
    }

    fn tell_players(&mut self, key: &StreamKey, now: Instant, send: fn(&mut ServerSession, u32) -> Result<(), SessionError>) {
        let Some(stream) = self.streams.get(key) else { return };
        let players: Vec<(ConnId, u32)> = stream.players.iter().map(|p| (p.conn, p.stream_id)).collect();
        for (player, stream_id) in players {
            if let Some(session) = self.conns.get_mut(player).and_then(|conn| conn.session()) {
                let _ = send(session, stream_id);
            }
            self.sync_output(player, now);
        }
    }

    pub(super) fn on_media(&mut self, id: ConnId, kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Role::Publisher { key, .. } = &conn.role else { return };
        if is_implausibly_small(kind, &data) {
            count_ignored_media(&self.stats, &mut conn.ignored_media_logged, &conn.peer, key, kind, data.len());
            return;
        }
        let key = key.clone();
        self.fan_out(&key, kind, timestamp, data, now);
    }

    pub(super) fn on_metadata(&mut self, id: ConnId, metadata: StreamMetadata, now: Instant) {
        let Some(conn) = self.conns.get(id) else { return };
        let Role::Publisher { key, .. } = &conn.role else { return };
        let key = key.clone();
        self.fan_out_metadata(&key, metadata.raw, now);
    }

    /// The publisher on `id` stopped (or its connection closed).
    pub(super) fn end_publish(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get(id) else { return };
        let Role::Publisher { key, .. } = &conn.role else { return };
        let key = key.clone();
        if let Some(started) = conn.publish_started {
            self.notify_done(id, true, &key, started, now);
        }
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.role = Role::Undecided;
        conn.publish_started = None;
        conn.requested_names.retain(|(k, _)| *k != key);
        log::info!("{}: stopped publishing {key}", conn.peer);
        self.stats.publishers.fetch_sub(1, Relaxed);
        self.release_stream(&key);
        self.stop_pushes(&key, now);
        let Some(stream) = self.streams.get_mut(&key) else { return };
        stream.publisher = None;
        stream.source_lost();
        self.tell_players_source_stopped(&key, now);
        // On an edge, players left waiting go back to the origin for the stream (a worker
        // of an origin has no other source yet: the next publish is announced).
        let first_player = self.streams.get(&key).and_then(|stream| stream.audience().next()).map(|p| p.conn);
        match first_player {
            Some(player) if !self.config.origins.is_empty() => self.ensure_pull(&key, player, now),
            _ => self.remove_if_unused(&key),
        }
    }

    pub(super) fn remove_if_unused(&mut self, key: &StreamKey) {
        if self.streams.get(key).is_some_and(LiveStream::is_unused) {
            self.streams.remove(key);
        }
    }
}

/// Counts a message too small to be media, which is not relayed, and logs the first one
/// from `source` (`logged` remembers that): a flood of them is one line, not one each.
pub(super) fn count_ignored_media(
    stats: &Stats,
    logged: &mut bool,
    source: &dyn std::fmt::Display,
    key: &StreamKey,
    kind: MediaKind,
    length: usize,
) {
    stats.media_ignored.fetch_add(1, Relaxed);
    if !*logged {
        *logged = true;
        log::warn!(
            "{source}: {key}: {kind:?} message of {length} bytes not relayed (too small to be media); further ones are counted, not logged"
        );
    }
}
