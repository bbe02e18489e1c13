//! Bytes in: the handshake, then the server or client session, then their events.

use std::time::Instant;

use super::access::{Gated, StreamRequest};
use super::close::CloseReason;
use super::conn::{ClientInfo, Phase};
use super::links::UpstreamStage;
use super::siblings::WORKER_SECRET_PROPERTY;
use super::ListenerKind;
use super::peer_text::PeerText;
use super::{ConnId, RelayCore};
use crate::chunk_io::ChunkDecoderLimits;
use crate::relay::access::MAX_FIELD_BYTES;
use crate::handshake::HandshakeProgress;
use crate::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent};

/// Longest message a connection may send before it asks to publish: commands (a connect
/// with every Enhanced RTMP capability is a few KB) and nothing that needs more.
pub const MAX_MESSAGE_BEFORE_PUBLISH: u32 = 64 * 1024;

/// Connect property carrying the ids of the relays a request passed through.
pub const VIA_PROPERTY: &str = "rtmpEdgeVia";

impl RelayCore {
    pub(super) fn input(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.closing.is_some() {
            return;
        }
        if conn.proxy == super::proxy_header::ProxyState::Awaiting {
            // The driver takes the header off first; bytes before it are not the client's.
            let reason = CloseReason::ProxyHeaderFailed("bytes passed before the PROXY header was read".to_string());
            Self::mark_close(&mut self.to_close, id, conn, reason);
            return;
        }
        conn.bytes_in += bytes.len() as u64;
        // A denied client gets nothing more decided (no second publish, no second hook
        // call); its bytes are counted and dropped until the denial is written.
        if conn.is_denied() {
            return;
        }
        conn.last_activity = now;
        conn.last_input = now;
        conn.ping_outstanding = false;
        match &mut conn.phase {
            Phase::Handshake(handshake) => match handshake.process(bytes) {
                Ok(HandshakeProgress::InProgress { response }) => {
                    conn.out.push(response, now);
                    Self::request_write(&mut self.actions, &mut self.grown, id, conn);
                }
                Ok(HandshakeProgress::Completed { response, remaining }) => {
                    conn.out.push(response, now);
                    Self::request_write(&mut self.actions, &mut self.grown, id, conn);
                    if self.start_session(id, now) {
                        self.session_input(id, &remaining, now);
                    }
                }
                Err(error) => {
                    Self::mark_close(&mut self.to_close, id, conn, CloseReason::HandshakeFailed(error.to_string()));
                }
            },
            Phase::Server(_) | Phase::Client(_) => self.session_input(id, bytes, now),
            Phase::Http(_) => self.http_input(id, bytes, now),
            // Nothing can arrive before the connect completes; ignore what a driver might pass.
            Phase::Dialing => {}
        }
    }

    /// The handshake is done: a server session for accepted peers, a client session for
    /// upstream links. Returns whether the connection goes on.
    fn start_session(&mut self, id: ConnId, now: Instant) -> bool {
        let session_config = self.session_config();
        let chunk_size = self.config.chunk_size;
        let reply_timeout = self.config.upstream_reply_timeout;
        let Some(conn) = self.conns.get_mut(id) else { return false };
        match &mut conn.upstream {
            None => {
                conn.phase = Phase::Server(Box::new(ServerSession::new(session_config)));
                true
            }
            Some(upstream) => match super::edge::start_client_session(upstream, chunk_size) {
                Ok(client) => {
                    upstream.stage = UpstreamStage::Replies;
                    upstream.stage_deadline = now + reply_timeout;
                    conn.phase = Phase::Client(Box::new(client));
                    self.sync_output(id, now);
                    true
                }
                Err(error) => {
                    let reason = CloseReason::UpstreamProtocolError(format!("could not start the session: {error}"));
                    Self::mark_close(&mut self.to_close, id, conn, reason);
                    false
                }
            },
        }
    }

    /// A new connection's session: until it asks to publish, it may send commands only,
    /// so its messages are held to [`MAX_MESSAGE_BEFORE_PUBLISH`]; otherwise anyone could
    /// make the relay hold most of `max_message_size` per connection, for as long as it
    /// trickled the rest of an unfinished message.
    fn session_config(&self) -> ServerSessionConfig {
        let max = self.config.max_message_size.min(MAX_MESSAGE_BEFORE_PUBLISH);
        ServerSessionConfig {
            chunk_size: self.config.chunk_size,
            limits: ChunkDecoderLimits {
                max_message_length: max,
                max_partial_bytes: (max as usize).saturating_mul(4),
                ..ChunkDecoderLimits::default()
            },
            ..ServerSessionConfig::default()
        }
    }

    /// A publisher's limits: keyframes up to `max_message_size`.
    fn publisher_limits(&self) -> ChunkDecoderLimits {
        ChunkDecoderLimits {
            max_message_length: self.config.max_message_size,
            // One message at the size limit plus room for audio interleaved with it.
            max_partial_bytes: (self.config.max_message_size as usize).saturating_add(1024 * 1024),
            ..ChunkDecoderLimits::default()
        }
    }

    fn session_input(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        match &mut conn.phase {
            Phase::Server(session) => {
                if let Err(error) = session.handle_input(bytes) {
                    Self::mark_close(&mut self.to_close, id, conn, CloseReason::ProtocolError(error.to_string()));
                }
                self.dispatch_server_events(id, now);
                self.sync_output(id, now);
            }
            Phase::Client(_) => self.client_input(id, bytes, now),
            Phase::Handshake(_) | Phase::Dialing | Phase::Http(_) => {}
        }
    }

    /// Acts on the server session's events until it has none: answering one request can
    /// release messages the session held back (a connect's accept runs the createStream and
    /// publish a client sent right behind it), and their events are acted on too.
    pub(super) fn dispatch_server_events(&mut self, id: ConnId, now: Instant) {
        loop {
            let mut events = std::mem::take(&mut self.server_events);
            if let Some(session) = self.conns.get_mut(id).and_then(|conn| conn.session()) {
                while let Some(event) = session.poll_event() {
                    events.push(event);
                }
            }
            let done = events.is_empty();
            for event in events.drain(..) {
                self.server_event(id, event, now);
            }
            self.server_events = events;
            // What a connection sent before its fault is acted on; nothing it released after.
            let closing = self.conns.get(id).is_none_or(|conn| conn.closing.is_some());
            if done || closing {
                return;
            }
        }
    }

    /// Moves whatever the session wrote into the connection's queue. (A client that sends
    /// commands and never reads the answers is held to the queue limits, and its answers to
    /// `MAX_UNREAD_REPLY_BYTES`, at the end of the input, like every queue.)
    pub(super) fn sync_output(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        match &mut conn.phase {
            Phase::Server(session) if session.has_outbound() => conn.out.push_reply(session.take_outbound(), now),
            // What an upstream link writes is ours (what it publishes, among it).
            Phase::Client(session) if session.has_outbound() => conn.out.push(session.take_outbound(), now),
            _ => return,
        }
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
    }

    fn server_event(&mut self, id: ConnId, event: ServerSessionEvent, now: Instant) {
        match event {
            ServerSessionEvent::MediaReceived { kind, timestamp, data, .. } => self.on_media(id, kind, timestamp, data, now),
            ServerSessionEvent::MetadataReceived { metadata, .. } => self.on_metadata(id, metadata, now),
            ServerSessionEvent::ConnectionRequested { request_id, request } => {
                self.on_connect_requested(id, request_id, &request, now)
            }
            ServerSessionEvent::PublishRequested { request_id, app, stream_name, stream_id, .. } => {
                let limits = self.publisher_limits();
                if let Some(session) = self.conns.get_mut(id).and_then(|conn| conn.session()) {
                    session.set_decoder_limits(limits);
                }
                self.on_publish_requested(id, StreamRequest { request_id, app, stream_name, stream_id }, now)
            }
            ServerSessionEvent::PlayRequested { request_id, app, stream_name, stream_id, .. } => {
                self.on_play_requested(id, StreamRequest { request_id, app, stream_name, stream_id }, now)
            }
            ServerSessionEvent::PublishFinished { .. } => self.end_publish(id, now),
            ServerSessionEvent::PlayFinished { app, stream_name, stream_id } => {
                self.end_play(id, &super::StreamKey::new(&app, &stream_name), stream_id, now)
            }
            ServerSessionEvent::PauseChanged { stream_id, paused, .. } => self.on_pause(id, stream_id, paused),
            ServerSessionEvent::ReceiveChanged { stream_id, kind, enabled } => {
                self.on_receive_changed(id, stream_id, kind, enabled)
            }
            ServerSessionEvent::InvalidMessageIgnored { type_id, reason } => {
                if let Some(conn) = self.conns.get_mut(id) {
                    // Media sent before the connect is answered is lost: a client that does
                    // not wait for replies loses its sequence headers and gets a stream no
                    // player can decode, so it is worth a warning (once per connection).
                    let media = matches!(type_id, 8 | 9 | 18);
                    if media && !std::mem::replace(&mut conn.early_media_logged, true) {
                        log::warn!("{}: ignored message type {type_id}: {reason} (further ones are not logged)", conn.peer);
                    } else {
                        log::debug!("{}: ignored message type {type_id}: {reason}", conn.peer);
                    }
                }
            }
            ServerSessionEvent::UnhandledCommand { name, .. } => {
                if let Some(conn) = self.conns.get(id) {
                    log::debug!("{}: unhandled command {}", conn.peer, PeerText(&name));
                }
            }
            ServerSessionEvent::AcknowledgementReceived { .. } | ServerSessionEvent::PingResponseReceived { .. } => {}
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn on_connect_requested(&mut self, id: ConnId, request_id: u32, request: &crate::sessions::ConnectRequest, now: Instant) {
        let node_id = self.node_id.clone();
        let Some(conn) = self.conns.get_mut(id) else { return };
        log::info!(
            "{}: connect app={} tcUrl={} flashVer={}",
            conn.peer,
            PeerText(&request.app),
            PeerText(request.tc_url.as_deref().unwrap_or("-")),
            PeerText(request.flash_ver.as_deref().unwrap_or("-"))
        );
        let via = match request.properties.get(VIA_PROPERTY) {
            Some(crate::Amf0Value::Utf8String(via)) => via.as_str(),
            _ => "",
        };
        let looped = via.split(',').any(|hop| hop == node_id);
        let page_url = match request.properties.get("pageUrl") {
            Some(crate::Amf0Value::Utf8String(page_url)) => Some(page_url.as_str()),
            _ => None,
        };
        conn.client = ClientInfo::new(request.tc_url.as_deref(), page_url, request.query.as_deref());
        // Kept for the connection's life and passed upstream: only when it fits (access
        // control denies the connect otherwise).
        if via.len() <= MAX_FIELD_BYTES {
            conn.via = via.to_string();
        } else {
            conn.client.oversized = true;
        }
        let peer = conn.peer;
        if looped {
            log::warn!("{peer}: connect refused: this request already passed through this relay (loop)");
            if let Some(Err(error)) = conn.session().map(|session| session.reject_request(request_id, LOOP_REFUSAL)) {
                Self::mark_close(&mut self.to_close, id, conn, CloseReason::EncodeFailed(error.to_string()));
            }
            return;
        }
        let gated = Gated::Connect { request_id, app: request.app.clone() };
        if conn.protocol != ListenerKind::Sibling {
            return self.gate(id, gated, now);
        }
        // The private listener serves sibling workers only, which prove it with the secret
        // they share; they skip access control (their players were checked where they
        // connected).
        let secret = self.siblings.as_ref().map(|place| place.secret.as_str());
        let proven = match request.properties.get(WORKER_SECRET_PROPERTY) {
            Some(crate::Amf0Value::Utf8String(presented)) => secret.is_some_and(|secret| crate::relay::access::same_secret(secret.as_bytes(), presented.as_bytes())),
            _ => false,
        };
        if proven {
            if let Some(conn) = self.conns.get_mut(id) {
                if std::mem::take(&mut conn.sibling_unproven) {
                    self.unproven_siblings = self.unproven_siblings.saturating_sub(1);
                }
            }
            return self.admit(id, gated, now);
        }
        log::warn!("{peer}: connect refused: the private worker listener takes sibling workers only");
        self.reject_pending(id, request_id, None, "This port is for the relay's own workers.");
        self.sync_output(id, now);
        let reason = CloseReason::AccessDenied("connect denied: not a sibling worker".to_string());
        if let Some(conn) = self.conns.get_mut(id) {
            conn.close_after_flush = Some(reason.clone());
            if conn.out.is_empty() {
                Self::mark_close(&mut self.to_close, id, conn, reason);
            }
        }
    }
}

/// The description a looped connect is refused with.
pub const LOOP_REFUSAL: &str = "Relay loop detected: the stream would be pulled from itself.";

