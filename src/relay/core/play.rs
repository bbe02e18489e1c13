//! Players: joining a stream, pause and receiveAudio/receiveVideo, and leaving.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::access::{Gated, StreamRequest};
use super::close::CloseReason;
use super::conn::Role;
use super::fanout::queue_frame;
use super::flv_egress::{queue_start, FlvProtocol, FlvSubscriber};
use super::stream::{Player, PlayerState, StreamKey};
use super::{ConnId, RelayCore};
use crate::sessions::{MediaKind, SessionError};

impl RelayCore {
    /// A play request: refused at once on a publishing connection, else it goes through
    /// access control (`core/access.rs`), which calls [`start_play`](Self::start_play) once
    /// it is allowed. Nothing is joined and no pull opens before that. A sibling worker's
    /// pull skips access control: its players were checked where they connected.
    pub(super) fn on_play_requested(&mut self, id: ConnId, request: StreamRequest, now: Instant) {
        if self.refused_as_publisher(id, &request) {
            return;
        }
        if self.is_sibling(id) {
            self.start_play(id, &request, now);
            self.sync_output(id, now);
        } else {
            self.gate(id, Gated::Play(request), now);
        }
    }

    /// Refuses a play on a connection that publishes (checked before and after access
    /// control: the publish may have been allowed meanwhile).
    fn refused_as_publisher(&mut self, id: ConnId, request: &StreamRequest) -> bool {
        let Some(conn) = self.conns.get(id) else { return true };
        if !matches!(conn.role, Role::Publisher { .. }) {
            return false;
        }
        self.reject_pending(id, request.request_id, None, "A publishing connection cannot play.");
        true
    }

    /// An allowed play joins its stream (and, on an edge, may open the pull).
    pub(super) fn start_play(&mut self, id: ConnId, request: &StreamRequest, now: Instant) {
        if self.refused_as_publisher(id, request) {
            return;
        }
        if self.is_stream_request(id) {
            return self.start_flv_play(id, request, now);
        }
        let (key, stream_id, request_id) = (request.key(), request.stream_id, request.request_id);
        let stream_name = request.stream_name.as_str();
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Some(session) = conn.session() else { return };
        // A stream that is not live yet gets Play.Start without StreamBegin, as nginx-rtmp
        // answers: clients can tell the play waits for its publisher. StreamBegin follows
        // when a source starts.
        let live = self.streams.get(&key).is_some_and(|stream| stream.is_live());
        let accepted = if live { session.accept_request(request_id) } else { session.accept_play_waiting(request_id) };
        match accepted {
            Ok(()) => {}
            // The client withdrew the play while it was decided.
            Err(SessionError::UnknownRequest(_)) => return,
            Err(error) => {
                Self::mark_close(&mut self.to_close, id, conn, CloseReason::EncodeFailed(error.to_string()));
                return;
            }
        }
        let announced_codecs = session.peer_capabilities().is_some();
        match &mut conn.role {
            Role::Player { subscriptions } => subscriptions.push((key.clone(), stream_id)),
            role => *role = Role::Player { subscriptions: vec![(key.clone(), stream_id)] },
        }
        conn.summary = conn.role.describe();
        if conn.requested_name(&key).is_none() {
            conn.requested_names.push((key.clone(), stream_name.to_string()));
        }
        log::info!("{}: playing {key}", conn.peer);
        if !announced_codecs {
            log::debug!("{}: announced no E-RTMP codecs: {key} passes through as published", conn.peer);
        }
        let sibling = conn.protocol == super::ListenerKind::Sibling;
        if !sibling {
            self.stats.players.fetch_add(1, Relaxed);
        }
        self.sync_output(id, now);
        self.join(id, &key, stream_id, None, sibling, now);
    }

    /// Adds the player to the stream; a live stream sends it what a joiner needs at once.
    /// An FLV player (`flv`) gets it as FLV tags, on a timeline that starts at the GOP's
    /// keyframe; without a GOP it starts at the frame a decoder can start from. A
    /// `sibling` worker's pull is not a viewer: its bytes are not counted as out.
    pub(super) fn join(
        &mut self,
        id: ConnId,
        key: &StreamKey,
        stream_id: u32,
        flv: Option<FlvProtocol>,
        sibling: bool,
        now: Instant,
    ) {
        let stream = self.streams.entry(key.clone()).or_default();
        let mut player = Player::new(id, stream_id, now);
        player.sibling = sibling;
        if flv.is_some() {
            stream.add_flv_subscriber();
        }
        player.flv = flv.map(FlvSubscriber::new);
        if stream.is_live() {
            let Some(conn) = self.conns.get_mut(id) else { return };
            let gop_start = stream.gop_frames().next().map(|first| first.timestamp);
            match (&mut player.flv, gop_start) {
                (None, _) => {
                    for frame in stream.join_frames() {
                        queue_frame(conn, stream_id, frame, now, &mut self.to_close, id);
                    }
                    if !sibling {
                        stream.meter.count_out(stream.join_frames().map(|frame| frame.bytes.len()).sum());
                    }
                }
                (Some(subscriber), Some(base)) if stream.has_gop() => {
                    subscriber.timeline = Some(stream.flv.assign(base));
                    let flags = stream.flv_flags();
                    let queued =
                        queue_start(&mut conn.out, subscriber.protocol, flags, stream.prelude().frames(), stream.gop_frames(), base, now);
                    stream.meter.count_out(queued);
                }
                // Started by the first frame a decoder can start from (`fanout.rs`).
                (Some(_), _) => {}
            }
            if stream.has_gop() || !stream.has_video {
                player.state = PlayerState::Live;
            }
            player.needs_keyframe = !stream.has_gop();
            Self::request_write(&mut self.actions, &mut self.grown, id, conn);
        }
        stream.players.push(player);
        stream.linger_until = None;
        // A sibling's pull never pulls in turn: the worker it came from moves to wherever
        // the publisher is.
        let has_sources = !self.config.origins.is_empty() || self.siblings.is_some();
        let wants_pull = !stream.is_live() && stream.publisher.is_none() && has_sources && !sibling;
        if wants_pull {
            self.ensure_pull(key, id, now);
        }
    }

    /// The play on (`id`, `stream_id`) of `key` ended (or its connection closed).
    pub(super) fn end_play(&mut self, id: ConnId, key: &StreamKey, stream_id: u32, now: Instant) {
        let joined_at = self
            .streams
            .get(key)
            .and_then(|stream| stream.players.iter().find(|p| p.conn == id && p.stream_id == stream_id && !p.sibling))
            .map(|player| player.joined_at);
        if let Some(joined_at) = joined_at {
            self.notify_done(id, false, key, joined_at, now);
        }
        if let Some(stream) = self.streams.get_mut(key) {
            while let Some(player) = stream.remove_player(id, stream_id) {
                if !player.sibling {
                    self.stats.players.fetch_sub(1, Relaxed);
                }
            }
            if stream.players.is_empty() && stream.pull.is_some() && stream.linger_until.is_none() {
                stream.linger_until = Some(now + self.config.pull_linger);
            }
        }
        self.remove_if_unused(key);
        if let Some(conn) = self.conns.get_mut(id) {
            if let Role::Player { subscriptions } = &mut conn.role {
                subscriptions.retain(|(k, sid)| !(k == key && *sid == stream_id));
                // A client that plays name after name must not grow this list.
                if !subscriptions.iter().any(|(k, _)| k == key) {
                    conn.requested_names.retain(|(k, _)| k != key);
                }
            }
        }
    }

    /// `pause(true)` stops delivery of media (headers still go, so nothing is missed);
    /// `pause(false)` resumes at the next keyframe.
    pub(super) fn on_pause(&mut self, id: ConnId, stream_id: u32, paused: bool) {
        for key in self.subscribed_keys(id, stream_id) {
            let Some(player) = self.streams.get_mut(&key).and_then(|stream| stream.player_mut(id, stream_id)) else {
                continue;
            };
            if player.paused && !paused {
                player.wait_for_start();
            }
            player.paused = paused;
        }
        if let Some(conn) = self.conns.get(id) {
            log::info!("{}: {} stream {stream_id}", conn.peer, if paused { "paused" } else { "unpaused" });
        }
    }

    /// `receiveAudio` / `receiveVideo`: that kind is left out until turned back on; video
    /// comes back at a keyframe.
    pub(super) fn on_receive_changed(&mut self, id: ConnId, stream_id: u32, kind: MediaKind, enabled: bool) {
        for key in self.subscribed_keys(id, stream_id) {
            let Some(player) = self.streams.get_mut(&key).and_then(|stream| stream.player_mut(id, stream_id)) else {
                continue;
            };
            match kind {
                MediaKind::Audio => player.receive_audio = enabled,
                MediaKind::Video => {
                    if enabled && !player.receive_video {
                        player.needs_keyframe = true;
                    }
                    player.receive_video = enabled;
                }
                MediaKind::Data => {}
            }
        }
    }

    fn subscribed_keys(&self, id: ConnId, stream_id: u32) -> Vec<StreamKey> {
        match self.conns.get(id).map(|conn| &conn.role) {
            Some(Role::Player { subscriptions }) => {
                subscriptions.iter().filter(|(_, sid)| *sid == stream_id).map(|(key, _)| key.clone()).collect()
            }
            _ => Vec::new(),
        }
    }
}
