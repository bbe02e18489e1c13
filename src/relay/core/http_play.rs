//! HTTP-FLV and WebSocket-FLV players: a `GET /APP/NAME.flv` on the HTTP listener becomes
//! a player of `APP/NAME`, like an RTMP play.
//!
//! The request goes through the same access decision as an RTMP play (`play`, with the
//! query as `param` and `protocol` `http-flv` or `ws-flv`). Once allowed, the response head
//! goes out at once (`200` with a close-delimited FLV body, or `101` for WebSocket), and the
//! connection joins the stream as a player: same queue limits, slow-player policy, counters,
//! API entry, and the same edge pull when the stream is not here. Its media is FLV tags,
//! encoded once per frame for all such players (`core/flv_egress.rs`). A stream that is not
//! live yet is waited for, as an RTMP play waits; the FLV header goes out with the first
//! frame a decoder can start from, when the stream's audio and video are known.
//!
//! After its request, an HTTP-FLV client has nothing more to say: its bytes are dropped. A
//! WebSocket client's bytes are read as frames: pings are answered (up to
//! [`MAX_PINGS_PER_SECOND`]), a close is answered with a close, and a broken, unmasked or
//! oversized frame closes that one connection with a log line.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::access::{Gated, StreamRequest};
use super::close::CloseReason;
use super::conn::{ClientInfo, Conn, Phase, Role};
use super::flv_egress::HTTP_STREAM_ID;
use super::{ConnId, RelayCore};
use crate::relay::http::websocket::{self, check_upgrade, wants_upgrade, ClientFrame};
use crate::relay::http::{FlvProtocol, Method, Request, Response, StreamPlayback};

/// Client pings answered in one second; one more closes the connection.
pub const MAX_PINGS_PER_SECOND: u32 = 20;

/// What the tick does with a stream connection ([`RelayCore::stream_timer`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StreamTimer {
    /// Nothing due.
    Nothing,
    /// Send a WebSocket ping.
    Ping,
    /// Close it.
    Close(CloseReason),
}

/// What every answer on a stream path carries, so a page on another origin can play.
const ALLOW_ORIGIN: (&str, &str) = ("Access-Control-Allow-Origin", "*");

/// The head of an HTTP-FLV response: the body is the FLV file, until the connection closes
/// (no length, no chunked framing: each tag goes out as encoded for everyone).
const FLV_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache, no-store\r\n\
Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n";

impl RelayCore {
    /// Whether `id` is an HTTP connection that asked for a stream.
    pub(super) fn is_stream_request(&self, id: ConnId) -> bool {
        matches!(self.conns.get(id).map(|conn| &conn.phase), Some(Phase::Http(http)) if http.stream.is_some())
    }

    /// `GET`/`HEAD /APP/NAME.flv`.
    pub(super) fn on_stream_route(&mut self, id: ConnId, request: &Request, app: String, name: String, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return self.refuse_stream(id, 503, "the relay is shutting down", now);
        }
        let stream_name = if request.query.is_empty() { name } else { format!("{name}?{}", request.query) };
        let play = StreamRequest { request_id: 0, app, stream_name, stream_id: HTTP_STREAM_ID };
        if request.method == Method::Head {
            return self.answer_stream_head(id, play, now);
        }
        let (protocol, accept) = if wants_upgrade(request) {
            match check_upgrade(request) {
                Ok(accept) => (FlvProtocol::WebSocket, Some(accept)),
                Err(error) => {
                    if let Some(conn) = self.conns.get(id) {
                        log::warn!("{}: WebSocket upgrade of {} refused: {error}", conn.peer, play.key());
                    }
                    let response = Response::error(error.status(), &error.to_string()).with_header("Sec-WebSocket-Version", "13");
                    return self.send_stream_response(id, &response, now);
                }
            }
        } else {
            (FlvProtocol::Http, None)
        };
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Phase::Http(http) = &mut conn.phase else { return };
        http.stream = Some(StreamPlayback::new(protocol, accept));
        http.request_started = None;
        let scheme = if protocol == FlvProtocol::WebSocket { "ws" } else { "http" };
        let tc_url = request.header("host").map(|host| format!("{scheme}://{host}/{}", play.app));
        let page_url = request.header("referer").or_else(|| request.header("origin"));
        conn.client = ClientInfo::new(tc_url.as_deref(), page_url, None);
        conn.summary = format!("{} request for {}", protocol.label(), play.key());
        log::debug!("{}: {} {} -> {} play", conn.peer, request.method.as_str(), request.path, protocol.label());
        self.gate(id, Gated::Play(play), now);
    }

    /// `HEAD` on a stream: whether it is live here now (`200` with the headers a `GET`
    /// gets, else `404`), after the IP rules and signature; it plays nothing, asks no hook
    /// and opens no pull.
    fn answer_stream_head(&mut self, id: ConnId, play: StreamRequest, now: Instant) {
        if let Err(denial) = self.check_locally(id, &Gated::Play(play.clone()), now) {
            return self.refuse_stream(id, 403, &denial.description(), now);
        }
        let live = self.streams.get(&play.key()).is_some_and(|stream| stream.is_live());
        if !live {
            return self.refuse_stream(id, 404, &format!("{} is not live here", play.key()), now);
        }
        self.ops.http_responses.add(200);
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.out.push(Bytes::from_static(FLV_HEAD), now);
        conn.close_after_flush = Some(CloseReason::HttpDone);
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
    }

    /// Answers a stream request with an error status, then closes.
    pub(super) fn refuse_stream(&mut self, id: ConnId, status: u16, message: &str, now: Instant) {
        let response = Response::error(status, message);
        self.send_stream_response(id, &response, now);
    }

    fn send_stream_response(&mut self, id: ConnId, response: &Response, now: Instant) {
        let response = response.clone().with_header(ALLOW_ORIGIN.0, ALLOW_ORIGIN.1);
        self.send_response(id, &response, false, false, now);
    }

    /// An allowed HTTP-FLV or WebSocket-FLV play: the response head, then the stream.
    pub(super) fn start_flv_play(&mut self, id: ConnId, request: &StreamRequest, now: Instant) {
        let key = request.key();
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Phase::Http(http) = &mut conn.phase else { return };
        let Some(stream) = &mut http.stream else { return };
        if stream.answered {
            return;
        }
        stream.answered = true;
        let protocol = stream.protocol;
        let (head, status) = match &stream.accept {
            Some(accept) => (websocket::switching_protocols(accept), 101),
            None => (Bytes::from_static(FLV_HEAD), 200),
        };
        conn.out.push(head, now);
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
        conn.role = Role::Player { subscriptions: vec![(key.clone(), HTTP_STREAM_ID)] };
        conn.summary = format!("{} player of {key}", protocol.label());
        conn.requested_names.push((key.clone(), request.stream_name.clone()));
        log::info!("{}: playing {key} over {}", conn.peer, protocol.label());
        self.ops.http_responses.add(status);
        self.stats.players.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.join(id, &key, HTTP_STREAM_ID, Some(protocol), false, now);
    }

    /// Bytes from a client that asked for a stream.
    pub(super) fn stream_input(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Phase::Http(http) = &mut conn.phase else { return };
        let Some(stream) = &mut http.stream else { return };
        // Before the 101 nothing the client sends can be a frame of ours to answer.
        if stream.protocol != FlvProtocol::WebSocket || !stream.answered {
            return;
        }
        let mut frames = Vec::new();
        let result = stream.frames.feed(bytes, |frame| frames.push(frame));
        for frame in frames {
            if !self.on_client_frame(id, frame, now) {
                return;
            }
        }
        if let Err(error) = result {
            self.fail_websocket(id, error.close_code(), &format!("WebSocket: {error}"), now);
        }
    }

    /// Acts on one client frame; false once the connection is closing.
    fn on_client_frame(&mut self, id: ConnId, frame: ClientFrame, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(id) else { return false };
        let Phase::Http(http) = &mut conn.phase else { return false };
        let Some(stream) = &mut http.stream else { return false };
        match frame {
            ClientFrame::Ping(payload) => {
                let (started, count) = match stream.ping_window {
                    Some((started, count)) if now.saturating_duration_since(started) < Duration::from_secs(1) => (started, count + 1),
                    _ => (now, 1),
                };
                stream.ping_window = Some((started, count));
                if count > MAX_PINGS_PER_SECOND {
                    let why = format!("WebSocket: ping flood (more than {MAX_PINGS_PER_SECOND} pings in a second)");
                    self.fail_websocket(id, websocket::status::POLICY_VIOLATION, &why, now);
                    return false;
                }
                conn.out.push(websocket::pong(&payload), now);
                Self::request_write(&mut self.actions, &mut self.grown, id, conn);
                true
            }
            ClientFrame::Pong | ClientFrame::Data(_) => true,
            ClientFrame::Close(code) => {
                log::debug!("{}: WebSocket close from the client ({code:?})", conn.peer);
                self.end_websocket(id, websocket::status::NORMAL, "", CloseReason::PeerClosed, now);
                false
            }
        }
    }

    /// The client broke the protocol or a limit: a close frame saying why, then the
    /// connection closes (the close line names the peer and the reason).
    fn fail_websocket(&mut self, id: ConnId, code: u16, why: &str, now: Instant) {
        self.end_websocket(id, code, why, CloseReason::ProtocolError(why.to_string()), now);
    }

    /// Leaves the stream (nothing may follow a close frame), queues the close frame, and
    /// closes once it is written.
    pub(super) fn end_websocket(&mut self, id: ConnId, code: u16, why: &str, reason: CloseReason, now: Instant) {
        self.leave_streams(id, now);
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.out.push(websocket::close(code, why), now);
        conn.close_after_flush = Some(reason);
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
    }

    /// Ends every play of `id`, keeping the connection.
    pub(super) fn leave_streams(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get(id) else { return };
        let Role::Player { subscriptions } = conn.role.clone() else { return };
        for (key, stream_id) in subscriptions {
            self.end_play(id, &key, stream_id, now);
        }
        if let Some(conn) = self.conns.get_mut(id) {
            conn.role = Role::Undecided;
        }
    }

    /// The protocol a connection speaks, as the API and hooks name it.
    pub(super) fn protocol_label(conn: &Conn) -> &'static str {
        match &conn.phase {
            Phase::Http(http) => http.stream.as_ref().map_or(conn.protocol.label(), |stream| stream.protocol.label()),
            _ => conn.protocol.label(),
        }
    }

    /// What the tick does with a stream connection: a WebSocket player that has been quiet
    /// for half the idle timeout gets a ping (so a waiting one that is still there answers
    /// and stays), and one quiet for all of it is closed. HTTP-FLV players are never idle:
    /// they have nothing to say, and the queue limits catch one that stopped reading.
    pub(super) fn stream_timer(conn: &Conn, now: Instant, idle_timeout: Duration) -> StreamTimer {
        let Phase::Http(http) = &conn.phase else { return StreamTimer::Nothing };
        let websocket = http.stream.as_ref().is_some_and(|stream| stream.protocol == FlvProtocol::WebSocket && stream.answered);
        let idle = now.saturating_duration_since(conn.last_activity);
        if !websocket {
            StreamTimer::Nothing
        } else if idle > idle_timeout {
            StreamTimer::Close(CloseReason::Idle(idle))
        } else if idle > idle_timeout / 2 && !conn.ping_outstanding {
            StreamTimer::Ping
        } else {
            StreamTimer::Nothing
        }
    }

    /// Sends the relay's ping to a quiet WebSocket player.
    pub(super) fn ping_websocket(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.ping_outstanding = true;
        conn.out.push(websocket::ping(b"rtmp-edge"), now);
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
    }

    /// At shutdown: a WebSocket player gets a close frame (1001) after what is queued.
    pub(super) fn close_websocket_for_shutdown(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Phase::Http(http) = &conn.phase else { return };
        if http.stream.as_ref().is_some_and(|stream| stream.protocol == FlvProtocol::WebSocket && stream.answered) {
            conn.out.push(websocket::close(websocket::status::GOING_AWAY, "relay shutting down"), now);
            Self::request_write(&mut self.actions, &mut self.grown, id, conn);
        }
    }
}

