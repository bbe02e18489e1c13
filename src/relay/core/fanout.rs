//! Fan-out: one encoding per frame, queued by reference for every player, under the
//! slow-player policy (soft limit: drop whole frames to the next keyframe; hard limit:
//! disconnect).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::close::CloseReason;
use super::conn::{Conn, Role};
use super::flv_egress::{queue_start, queue_tag};
use super::frame::{SharedFrame, SHARED_STREAM_ID};
use super::out_queue::OutQueue;
use super::stream::{CacheLimits, Player, PlayerState, StreamKey};
use super::{ConnId, RelayCore};
use crate::sessions::MediaKind;
use crate::time::RtmpTimestamp;

/// The queue limits a player is held to.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Past this wait, the player drops frames to the next keyframe.
    pub soft_wait: Duration,
    /// Past this wait, the player is disconnected.
    pub hard_wait: Duration,
    /// Past this cost (bytes plus per-entry overhead), the player is disconnected.
    pub hard_bytes: usize,
    /// Past this many entries, the player is disconnected.
    pub hard_entries: usize,
}

impl QueueLimits {
    /// The hard limit `queue` breaks, if any.
    pub fn broken_by(&self, queue: &OutQueue, now: Instant) -> Option<CloseReason> {
        let waited = queue.oldest_wait(now);
        if waited > self.hard_wait || queue.cost() > self.hard_bytes || queue.entries() > self.hard_entries {
            return Some(CloseReason::TooSlow {
                waited_ms: waited.as_millis() as u64,
                queued_bytes: queue.cost(),
                queued_entries: queue.entries(),
            });
        }
        None
    }
}

/// Most bytes of answers to its own commands (and status messages, pings, acks) a client
/// may leave unread. Real clients read them as they come; the limits for media (32 MiB by
/// default) are far above what a client that sends commands and never reads should cost.
pub const MAX_UNREAD_REPLY_BYTES: usize = 256 * 1024;

/// The hard limit `conn`'s queue breaks, if any, as the close reason its role gives:
/// a player is too slow, an upstream stopped reading what we publish, anyone else (or a
/// player past [`MAX_UNREAD_REPLY_BYTES`]) sends commands without reading the answers.
pub fn queue_overflow(conn: &Conn, limits: &QueueLimits, now: Instant) -> Option<CloseReason> {
    if conn.out.reply_bytes() > MAX_UNREAD_REPLY_BYTES {
        return Some(CloseReason::NotReading { queued_bytes: conn.out.cost() });
    }
    let reason = limits.broken_by(&conn.out, now)?;
    Some(match (&conn.role, &conn.upstream) {
        (Role::Player { .. }, _) => reason,
        (_, Some(_)) => CloseReason::UpstreamTooSlow { queued_bytes: conn.out.cost() },
        _ => CloseReason::NotReading { queued_bytes: conn.out.cost() },
    })
}

/// What to do with one frame for one player.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queue it.
    Send,
    /// Not for this player now (waiting for a keyframe, paused, that kind turned off).
    Skip,
    /// Dropped under the soft limit; counted.
    Drop,
    /// A hard limit is passed.
    Disconnect(CloseReason),
}

/// The slow-player state machine for one frame. `has_video`: whether the stream's source
/// sends video (audio-only streams never wait for a keyframe).
pub fn decide(player: &mut Player, queue: &OutQueue, frame: &SharedFrame, has_video: bool, limits: &QueueLimits, now: Instant) -> Delivery {
    // The hard limit comes first, whatever the player's state: a player that skips frames
    // but still never reads must not sit on its queue forever.
    if let Some(reason) = limits.broken_by(queue, now) {
        return Delivery::Disconnect(reason);
    }
    if !frame.droppable {
        return Delivery::Send;
    }
    let kind_wanted = match frame.kind {
        MediaKind::Audio => player.receive_audio,
        MediaKind::Video => player.receive_video,
        MediaKind::Data => true,
    };
    if player.paused || !kind_wanted {
        return Delivery::Skip;
    }
    let waited = queue.oldest_wait(now);
    let starts_here = frame.is_keyframe || (!has_video && frame.kind != MediaKind::Video);
    match player.state {
        PlayerState::WaitingForStart => {
            if frame.is_keyframe || (!has_video && frame.kind == MediaKind::Audio) {
                player.state = PlayerState::Live;
            } else {
                return Delivery::Skip;
            }
        }
        PlayerState::Skipping => {
            if !(starts_here && waited <= limits.soft_wait / 2) {
                return Delivery::Drop;
            }
            player.state = PlayerState::Live;
        }
        PlayerState::Live => {}
    }
    if frame.kind == MediaKind::Video && player.needs_keyframe {
        if !frame.is_keyframe {
            return Delivery::Skip;
        }
        player.needs_keyframe = false;
    }
    if waited > limits.soft_wait {
        player.state = PlayerState::Skipping;
        return Delivery::Drop;
    }
    Delivery::Send
}

/// Queues a shared frame for a player: by reference when the player uses the shared
/// encoding (stream id 1, the relay's chunk size), otherwise through its own session.
pub fn queue_frame(conn: &mut Conn, stream_id: u32, frame: &SharedFrame, now: Instant, to_close: &mut Vec<(ConnId, CloseReason)>, id: ConnId) {
    if stream_id == SHARED_STREAM_ID {
        conn.out.push(frame.bytes.clone(), now);
        return;
    }
    let Some(session) = conn.session() else { return };
    match session.send_media(stream_id, frame.kind, frame.timestamp, frame.body.clone()) {
        Ok(()) => {
            let bytes = session.take_outbound();
            conn.out.push(bytes, now);
        }
        Err(error) => RelayCore::mark_close(to_close, id, conn, CloseReason::EncodeFailed(error.to_string())),
    }
}

impl RelayCore {
    pub(super) fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            soft_wait: Duration::from_millis(u64::from(self.config.queue_soft_limit_ms)),
            hard_wait: Duration::from_millis(u64::from(self.config.queue_hard_limit_ms)),
            hard_bytes: self.config.queue_hard_limit_bytes,
            hard_entries: self.config.queue_hard_limit_entries,
        }
    }

    /// Holds every queue something was added to during this input to the hard limits: past
    /// one, the connection closes at the end of the input, before the driver writes to it
    /// again. Every addition notes its connection once (`note_growth`), so this looks at
    /// those and nothing else: a frame to N players costs N checks, not a scan of every
    /// pending write per written connection. A queue nothing is added to is caught by its
    /// wait, at the tick.
    pub(super) fn hold_queues_to_limits(&mut self, now: Instant) {
        if self.grown.is_empty() {
            return;
        }
        let limits = self.queue_limits();
        let mut grown = std::mem::take(&mut self.grown);
        for id in grown.drain(..) {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            conn.queue_grew = false;
            if conn.closing.is_some() {
                continue;
            }
            if let Some(reason) = queue_overflow(conn, &limits, now) {
                Self::mark_close(&mut self.to_close, id, conn, reason);
            }
        }
        // Keep the allocation for the next input.
        self.grown = grown;
    }

    pub(super) fn cache_limits(&self) -> CacheLimits {
        CacheLimits {
            gop_cache: self.config.gop_cache,
            gop_max_bytes: self.config.gop_cache_max_bytes,
            gop_max_frames: self.config.gop_cache_max_frames,
        }
    }

    /// Encodes a frame once and queues it for every player of `key` and every forward.
    pub(super) fn fan_out(&mut self, key: &StreamKey, kind: MediaKind, timestamp: RtmpTimestamp, data: Bytes, now: Instant) {
        let cache_limits = self.cache_limits();
        let chunk_size = self.config.chunk_size;
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frame = match stream.ingest(kind, timestamp, data, chunk_size, cache_limits) {
            Ok(frame) => frame,
            Err(error) => {
                log::warn!("{key}: frame not relayed: {error}");
                return;
            }
        };
        self.deliver(key, &frame, now);
        self.forward_frame(key, &frame, now);
    }

    /// Encodes and caches metadata, then delivers it like any frame (limits included).
    pub(super) fn fan_out_metadata(&mut self, key: &StreamKey, raw: Bytes, now: Instant) {
        let chunk_size = self.config.chunk_size;
        let Some(stream) = self.streams.get_mut(key) else { return };
        let frame = match stream.ingest_metadata(raw, chunk_size) {
            Ok(frame) => frame,
            Err(error) => {
                log::warn!("{key}: metadata not relayed: {error}");
                return;
            }
        };
        self.deliver(key, &frame, now);
        self.forward_frame(key, &frame, now);
    }

    fn deliver(&mut self, key: &StreamKey, frame: &SharedFrame, now: Instant) {
        let limits = self.queue_limits();
        let batch = self.config.write_batch;
        let Some(stream) = self.streams.get_mut(key) else { return };
        let has_video = stream.has_video;
        let flags = stream.flv_flags();
        let parts = stream.delivery_parts();
        parts.timelines.begin_frame();
        for player in parts.players.iter_mut() {
            let Some(conn) = self.conns.get_mut(player.conn) else { continue };
            if conn.closing.is_some() {
                continue;
            }
            // An FLV player that has not started is sent nothing before the frame it starts
            // at; the cached headers go with that frame.
            if player.flv.is_some_and(|flv| flv.timeline.is_none()) && !frame.droppable {
                continue;
            }
            let was_skipping = player.state == PlayerState::Skipping;
            match decide(player, &conn.out, frame, has_video, &limits, now) {
                Delivery::Send => {}
                Delivery::Skip => continue,
                Delivery::Drop => {
                    if !was_skipping {
                        log::info!(
                            "{}: {key}: oldest queued byte waited {} ms: dropping frames until the next keyframe",
                            conn.peer,
                            conn.out.oldest_wait(now).as_millis()
                        );
                    }
                    conn.frames_dropped += 1;
                    self.stats.frames_dropped.fetch_add(1, Relaxed);
                    continue;
                }
                Delivery::Disconnect(reason) => {
                    Self::mark_close(&mut self.to_close, player.conn, conn, reason);
                    continue;
                }
            }
            let queued = match &mut player.flv {
                None => {
                    queue_frame(conn, player.stream_id, frame, now, &mut self.to_close, player.conn);
                    frame.bytes.len()
                }
                Some(flv) => {
                    // A body too long for an FLV tag (over 16 MiB) is left out.
                    let Some(tail) = &frame.flv_tail else { continue };
                    let mut queued = 0;
                    let slot = match flv.timeline {
                        Some(slot) => slot,
                        None => {
                            let slot = parts.timelines.assign(frame.timestamp);
                            flv.timeline = Some(slot);
                            let prelude = parts.prelude.frames();
                            queued += queue_start(&mut conn.out, flv.protocol, flags, prelude, [].iter(), frame.timestamp, now);
                            slot
                        }
                    };
                    if let Some(head) = parts.timelines.head(slot, frame) {
                        queued += queue_tag(&mut conn.out, flv.protocol, head, tail, now);
                    }
                    queued
                }
            };
            if !player.sibling {
                parts.meter.count_out(queued);
            }
            if batch.is_zero() || !frame.droppable {
                Self::request_write(&mut self.actions, &mut self.grown, player.conn, conn);
            } else {
                Self::note_growth(&mut self.grown, player.conn, conn);
                if !conn.write_requested {
                    // Counted as requested so the player is batched once per batch.
                    conn.write_requested = true;
                    self.batched.push(player.conn);
                    if self.batch_deadline.is_none() {
                        self.batch_deadline = Some(now + batch);
                    }
                }
            }
        }
    }
}
