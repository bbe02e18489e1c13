//! HTTP connections in the core: admission (bounded; an idle one makes room), reading
//! requests, answering them from the core's own state, and the header-read and keep-alive
//! timers. The HTTP/1.1 machinery itself is sans-IO in [`crate::relay::http`]; responses go
//! on the connection's queue like any other bytes, so a slow HTTP client costs its own
//! queue and nothing else.
//!
//! HTTP-FLV and WebSocket-FLV players start in [`RelayCore::answer`]: their route is not
//! answered here but turns the connection into a player (`core/http_play.rs`). Such a
//! connection no longer counts against `http_max_connections` (players are held to the
//! connection limits, like RTMP players) and is never evicted for a new one.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::close::CloseReason;
use super::conn::{Conn, Phase};
use super::{Action, ConnId, ListenerKind, Refusal, RelayCore};
use crate::relay::http::{
    has_bearer_token, render_metrics, route, Awaiting, HttpConn, HttpError, KickedView, Method, ReloadView, Request,
    RequestLimits, Response, Route, HTML, JAVASCRIPT, PLAYER_SCRIPT, PROMETHEUS_TEXT, STATUS_PAGE, TEXT,
};
use crate::relay::Config;

/// Answers a pipelining client may have queued before more requests wait to be read: the
/// first answer goes whatever its size, then requests are only answered while the client
/// reads.
const MAX_QUEUED_ANSWERS_BYTES: usize = 256 * 1024;

/// The status page may use its own inline script and style and talk to this relay, nothing
/// else.
/// The player script comes from this relay (`/mpegts.js`), and plays through Media Source
/// Extensions, whose media is a `blob:` URL.
const STATUS_PAGE_POLICY: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; \
connect-src 'self'; img-src data:; media-src blob:";

impl RelayCore {
    /// Room for one more HTTP connection: at the limit, the connection idle longest (or,
    /// when none is idle, the one whose request started longest ago) is closed for it.
    /// Connections waiting for an answer or writing one are never taken.
    pub(super) fn http_admission(&mut self, now: Instant) -> Option<Refusal> {
        let max = self.config.http_max_connections;
        let open = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.protocol == ListenerKind::Http && conn.closing.is_none() && !is_stream_conn(conn))
            .count();
        if open < max {
            return None;
        }
        let victim = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.closing.is_none() && conn.out.is_empty())
            .filter_map(|(id, conn)| match &conn.phase {
                Phase::Http(http) if http.awaiting.is_none() && http.stream.is_none() => {
                    let key = match http.request_started {
                        Some(started) if !http.reader.is_empty() => (1, started),
                        _ => (0, conn.last_activity),
                    };
                    Some((key, id))
                }
                _ => None,
            })
            .min()
            .map(|(_, id)| id);
        match victim {
            Some(victim) => {
                self.fail(victim, CloseReason::HttpEvicted);
                self.finish(now);
                None
            }
            None => Some(Refusal::TooManyHttpConnections { max }),
        }
    }

    /// A connection accepted on the HTTP listener.
    pub(super) fn new_http_conn(&self, peer: SocketAddr, now: Instant) -> Conn {
        let http = HttpConn::new(RequestLimits::default(), now);
        let mut conn = Conn::new(peer, Phase::Http(Box::new(http)), now);
        conn.protocol = ListenerKind::Http;
        conn.summary = "HTTP client".to_string();
        if self.shutdown_deadline.is_some() {
            // Answered (a 503 for health checks) and closed.
            conn.close_after_flush = Some(CloseReason::Shutdown);
        }
        conn
    }

    /// Bytes from an HTTP client: buffered up to the request limit, answered request by
    /// request, in order.
    pub(super) fn http_input(&mut self, id: ConnId, bytes: &[u8], now: Instant) {
        let mut rest = bytes;
        loop {
            let Some(conn) = self.conns.get_mut(id) else { return };
            // After an answer that ends the connection, nothing more is read.
            if conn.closing.is_some() || conn.close_after_flush.as_ref().is_some_and(|r| *r != CloseReason::Shutdown) {
                return;
            }
            let Phase::Http(http) = &mut conn.phase else { return };
            if http.stream.is_some() {
                return self.stream_input(id, rest, now);
            }
            if http.request_started.is_none() && http.awaiting.is_none() && !rest.is_empty() {
                http.request_started = Some(now);
            }
            let taken = http.reader.fill(rest);
            rest = rest.get(taken..).unwrap_or_default();
            let answered = self.serve_buffered(id, now);
            if rest.is_empty() {
                return;
            }
            if taken == 0 && !answered {
                // Only while an answer waits for the driver: the reader is full of requests
                // that must wait their turn.
                let error = HttpError::Malformed("too many requests sent ahead of an unanswered one".to_string());
                self.refuse_request(id, &error, now);
                return;
            }
        }
    }

    /// Answers the complete requests buffered for `id`; returns whether it answered any.
    pub(super) fn serve_buffered(&mut self, id: ConnId, now: Instant) -> bool {
        let mut answered = false;
        while let Some(conn) = self.conns.get_mut(id) {
            if conn.closing.is_some() || conn.close_after_flush.as_ref().is_some_and(|r| *r != CloseReason::Shutdown) {
                break;
            }
            let queued = conn.out.cost();
            let Phase::Http(http) = &mut conn.phase else { break };
            // A stream request is the connection's last: it plays (or is refused) from here.
            if http.awaiting.is_some() || http.stream.is_some() {
                break;
            }
            match http.reader.next_request() {
                Ok(None) => {
                    if http.reader.is_empty() {
                        http.request_started = None;
                    }
                    break;
                }
                Ok(Some(request)) => {
                    if queued > MAX_QUEUED_ANSWERS_BYTES {
                        Self::mark_close(&mut self.to_close, id, conn, CloseReason::NotReading { queued_bytes: queued });
                        break;
                    }
                    http.requests += 1;
                    http.request_started = if http.reader.is_empty() { None } else { Some(now) };
                    conn.summary = format!("HTTP client, {} requests", http.requests);
                    self.answer(id, &request, now);
                    answered = true;
                }
                Err(error) => {
                    self.refuse_request(id, &error, now);
                    break;
                }
            }
        }
        answered
    }

    /// Routes one request and queues its answer (or, for a reload, asks the driver first).
    fn answer(&mut self, id: ConnId, request: &Request, now: Instant) {
        let route = route(request);
        let head_only = request.method == Method::Head;
        let keep_alive = request.keep_alive && self.shutdown_deadline.is_none();
        let authorized = match &self.config.http_token {
            Some(token) if route.needs_token() => has_bearer_token(request, token),
            _ => true,
        };
        if authorized && self.ask_siblings_for(id, &route, Awaiting { keep_alive, head_only }, now) {
            self.log_request(id, request, None);
            return;
        }
        let response = if !authorized {
            Response::error(401, "this endpoint needs Authorization: Bearer TOKEN (http-token)")
                .with_header("WWW-Authenticate", "Bearer realm=\"rtmp-edge\"")
        } else {
            match route {
                Route::StatusPage => Response::new(200, HTML, Bytes::from_static(STATUS_PAGE.as_bytes()))
                    .with_header("Content-Security-Policy", STATUS_PAGE_POLICY)
                    .with_header("X-Content-Type-Options", "nosniff"),
                Route::Healthz if self.shutdown_deadline.is_some() => Response::new(503, TEXT, "shutting down\n"),
                Route::Healthz => Response::new(200, TEXT, "ok\n"),
                Route::Metrics => Response::new(200, PROMETHEUS_TEXT, render_metrics(&self.metrics_view())),
                Route::Summary => Response::json(200, &self.summary_view(now)),
                Route::Streams => Response::json(200, &self.stream_views()),
                Route::Clients => Response::json(200, &self.client_views(now)),
                Route::Kick(client) => self.kick(id, client),
                Route::Reload => {
                    self.await_reload(id, Awaiting { keep_alive, head_only });
                    self.log_request(id, request, None);
                    return;
                }
                Route::MethodNotAllowed { allow } => {
                    Response::error(405, &format!("{} takes {allow}", request.path)).with_header("Allow", allow)
                }
                Route::Stream { app, name } => {
                    self.log_request(id, request, None);
                    return self.on_stream_route(id, request, app, name, now);
                }
                Route::StreamPreflight => Response::new(204, TEXT, "")
                    .with_header("Access-Control-Allow-Origin", "*")
                    .with_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
                    .with_header("Access-Control-Allow-Headers", request.header("access-control-request-headers").unwrap_or("*"))
                    .with_header("Access-Control-Max-Age", "86400"),
                Route::PlayerScript => Response::new(200, JAVASCRIPT, Bytes::from_static(PLAYER_SCRIPT))
                    .with_cache_control("public, max-age=31536000, immutable")
                    .with_header("X-Content-Type-Options", "nosniff"),
                Route::BadStreamPath => Response::error(400, "a stream path is /APP/NAME.flv, percent-encoded UTF-8")
                    .with_header("Access-Control-Allow-Origin", "*"),
                Route::NotFound => Response::error(404, "no such endpoint"),
            }
        };
        self.log_request(id, request, Some(response.status));
        self.send_response(id, &response, keep_alive, head_only, now);
    }

    pub(super) fn log_request(&self, id: ConnId, request: &Request, status: Option<u16>) {
        if let Some(conn) = self.conns.get(id) {
            let status = status.map_or_else(|| "waits".to_string(), |status| status.to_string());
            log::debug!("{}: {} {} -> {status}", conn.peer, request.method.as_str(), request.path);
        }
    }

    /// Queues a response; without keep-alive the connection closes once it is written.
    pub(super) fn send_response(&mut self, id: ConnId, response: &Response, keep_alive: bool, head_only: bool, now: Instant) {
        self.ops.http_responses.add(response.status);
        let Some(conn) = self.conns.get_mut(id) else { return };
        let (head, body) = response.encode(keep_alive, head_only);
        conn.out.push(head, now);
        conn.out.push(body, now);
        Self::request_write(&mut self.actions, &mut self.grown, id, conn);
        if !keep_alive && conn.close_after_flush.is_none() {
            conn.close_after_flush = Some(CloseReason::HttpDone);
        }
    }

    /// Answers a request that could not be read with its error status, then closes.
    fn refuse_request(&mut self, id: ConnId, error: &HttpError, now: Instant) {
        let response = Response::error(error.status(), &error.to_string());
        self.send_response(id, &response, false, false, now);
        if let Some(conn) = self.conns.get_mut(id) {
            conn.close_after_flush = Some(CloseReason::HttpBadRequest(error.to_string()));
        }
    }

    /// `DELETE /api/v1/clients/{id}`: closes that connection through the one close path,
    /// so a kicked publisher's players stay and wait, as when it leaves by itself.
    fn kick(&mut self, requester: ConnId, client: u64) -> Response {
        let by = self.conns.get(requester).map_or_else(String::new, |conn| conn.peer.to_string());
        match self.kick_local(client, &by, Some(requester)) {
            Some(kicked) => Response::json(200, &kicked),
            None => Response::error(404, &format!("no open connection {client}")),
        }
    }

    /// Closes connection `client` of this core for an API request from `by`; `None` when it
    /// has no such open connection. The `requester`'s own connection writes its answer first.
    pub(super) fn kick_local(&mut self, client: u64, by: &str, requester: Option<ConnId>) -> Option<KickedView> {
        let target = ConnId::from_u64(client).filter(|target| self.conns.get(*target).is_some_and(|c| c.closing.is_none()))?;
        let role = self.conns.get(target).map_or("connecting", |conn| self.role_label(conn));
        let conn = self.conns.get_mut(target)?;
        log::info!("{}: connection {target} ({role}) closed through the API by {by}", conn.peer);
        if Some(target) == requester {
            // Its own answer goes out first.
            conn.close_after_flush = Some(CloseReason::Kicked);
        } else {
            Self::mark_close(&mut self.to_close, target, conn, CloseReason::Kicked);
        }
        Some(KickedView { closed: client, role })
    }

    /// `POST /api/v1/reload`: the driver re-reads the configuration; the answer waits for
    /// [`handle_reload`](Self::handle_reload). Requests arriving meanwhile join the same reload.
    fn await_reload(&mut self, id: ConnId, awaiting: Awaiting) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Phase::Http(http) = &mut conn.phase else { return };
        http.awaiting = Some(awaiting);
        http.request_started = None;
        if self.ops.reload_waiters.is_empty() {
            self.actions.push_back(Action::ReloadConfig);
        }
        self.ops.reload_waiters.push(id);
    }

    /// The driver re-read the configuration (for `POST /api/v1/reload` or SIGHUP). A good
    /// one is applied like [`reload`](Self::reload); one with errors is refused with a log
    /// line and the running one stays. Waiting API requests get the result.
    pub fn handle_reload(&mut self, result: Result<Config, String>, now: Instant) {
        let result = result.and_then(|config| config.validate().map(|()| config).map_err(|problems| problems.join("; ")));
        let answer = match result {
            Ok(mut config) => {
                self.keep_restart_only_settings(&mut config);
                self.reload(config);
                self.ops.reloads.add("applied");
                ReloadView { reloaded: true, error: None }
            }
            Err(error) => {
                log::error!("configuration reload refused, the running configuration stays: {error}");
                self.ops.reloads.add("refused");
                ReloadView { reloaded: false, error: Some(error) }
            }
        };
        let response = Response::json(if answer.reloaded { 200 } else { 422 }, &answer);
        for id in std::mem::take(&mut self.ops.reload_waiters) {
            let awaiting = match self.conns.get_mut(id).map(|conn| &mut conn.phase) {
                Some(Phase::Http(http)) => http.awaiting.take(),
                _ => None,
            };
            if let Some(awaiting) = awaiting {
                self.send_response(id, &response, awaiting.keep_alive, awaiting.head_only, now);
                self.serve_buffered(id, now);
            }
        }
        self.finish(now);
    }

    /// Keeps what a reload cannot change under live connections, with a warning when the
    /// new file changes it: the listeners and dump directory belong to the driver, and the
    /// chunk size was announced to every connected peer (frames chunked at another size
    /// would not decode).
    fn keep_restart_only_settings(&self, new: &mut Config) {
        let old = &self.config;
        let changed = [
            ("listen", old.listen != new.listen || old.rtmp_listener != new.rtmp_listener),
            ("tls-listen", old.tls_listen != new.tls_listen),
            ("http-listen", old.http_listen != new.http_listen),
            ("dump", old.dump_dir != new.dump_dir),
            ("chunk-size", old.chunk_size != new.chunk_size),
            ("workers", old.workers != new.workers),
            ("listen-backlog", old.listen_backlog != new.listen_backlog),
        ];
        for (name, _) in changed.iter().filter(|(_, changed)| *changed) {
            log::warn!("reload: {name} changed; it takes effect at the next restart");
        }
        new.listen = old.listen;
        new.rtmp_listener = old.rtmp_listener;
        new.tls_listen = old.tls_listen;
        new.http_listen = old.http_listen;
        new.dump_dir = old.dump_dir.clone();
        new.chunk_size = old.chunk_size;
        new.workers = old.workers;
        new.listen_backlog = old.listen_backlog;
    }

    /// Whether an HTTP connection's header-read or keep-alive timer has run out (stream
    /// connections have their own, `core/http_play.rs`).
    pub(super) fn http_expired(conn: &Conn, now: Instant, config: &Config) -> Option<CloseReason> {
        let Phase::Http(http) = &conn.phase else { return None };
        if http.stream.is_some() {
            return None;
        }
        if let Some(started) = http.request_started {
            let timeout = config.http_header_timeout;
            return (now.saturating_duration_since(started) > timeout).then_some(CloseReason::HttpHeaderTimeout(timeout));
        }
        let idle = now.saturating_duration_since(conn.last_activity);
        (http.awaiting.is_none() && conn.out.is_empty() && idle > config.http_idle_timeout).then_some(CloseReason::Idle(idle))
    }
}

/// Whether an HTTP connection asked for a stream (and is, or is about to be, a player).
fn is_stream_conn(conn: &Conn) -> bool {
    matches!(&conn.phase, Phase::Http(http) if http.stream.is_some())
}
