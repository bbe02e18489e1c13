//! Access decisions in the core. IP rules and signatures are checked at once; a hook is
//! asked through the driver ([`Action::Hook`]), and the request (connect, publish, play)
//! waits in its session, unanswered, until the answer ([`RelayCore::handle_hook_result`])
//! or the core's own timer decides. A publish waiting here has no Publish.Start and no
//! stream: its media is dropped by the session, never relayed, cached or forwarded. A play
//! waiting here has joined nothing and opened no pull.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::close::CloseReason;
use super::ops::LabelCounts;
use super::stream::StreamKey;
use super::{Action, ConnId, RelayCore};
use crate::relay::access::{
    canonical, signed_url, Denial, DoneFields, HookAction, HookCall, HookFailPolicy, HookOutcome, HookPayload, HookVerdict,
    RuleVerdict, DENIAL_LABELS, MAX_FIELD_BYTES,
};
use crate::sessions::{codes, SessionError};

/// Decisions one connection may have waiting at once (a publish or play while another is
/// decided is unusual; a flood of them is not).
pub const MAX_PENDING_PER_CONNECTION: u8 = 2;
/// Extra time a notification may take past the hook timeout before the core stops counting
/// it as in flight (the worker gives up at the timeout; this only covers a lost answer).
const NOTIFICATION_GRACE: Duration = Duration::from_secs(1);

/// Names one hook call from [`Action::Hook`] to [`RelayCore::handle_hook_result`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookId(u64);

impl HookId {
    /// The id as a number, for logs.
    pub fn to_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hook#{}", self.0)
    }
}

/// A publish or play as the session asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StreamRequest {
    /// The session's id for the request, to answer it.
    pub request_id: u32,
    /// The application the client connected to.
    pub app: String,
    /// The name as sent, query included.
    pub stream_name: String,
    /// The message stream it is on.
    pub stream_id: u32,
}

impl StreamRequest {
    pub fn key(&self) -> StreamKey {
        StreamKey::new(&self.app, &self.stream_name)
    }
}

/// A request held until it is decided: what the session needs to answer it, and what the
/// core needs to carry it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Gated {
    Connect { request_id: u32, app: String },
    Publish(StreamRequest),
    Play(StreamRequest),
}

impl Gated {
    fn action(&self) -> HookAction {
        match self {
            Gated::Connect { .. } => HookAction::Connect,
            Gated::Publish(_) => HookAction::Publish,
            Gated::Play(_) => HookAction::Play,
        }
    }

    fn request_id(&self) -> u32 {
        match self {
            Gated::Connect { request_id, .. } => *request_id,
            Gated::Publish(request) | Gated::Play(request) => request.request_id,
        }
    }

    /// `connect to live`, `publish live/cam1`: for log lines.
    fn describe(&self) -> String {
        match self {
            Gated::Connect { app, .. } => format!("connect to {app}"),
            Gated::Publish(request) => format!("publish {}", request.key()),
            Gated::Play(request) => format!("play {}", request.key()),
        }
    }
}

#[derive(Debug)]
enum InFlight {
    Decision { conn: ConnId, ip: IpAddr, gated: Gated, deadline: Instant },
    Notification { action: HookAction, deadline: Instant },
}

/// Hook calls in flight, their deadlines, and the access counters.
#[derive(Debug)]
pub(super) struct AccessState {
    in_flight: HashMap<HookId, InFlight>,
    deadlines: BTreeSet<(Instant, HookId)>,
    next_id: u64,
    decisions_pending: usize,
    notifications_in_flight: usize,
    pending_per_ip: HashMap<IpAddr, usize>,
    /// Hook decisions by (action, result).
    pub decisions: LabelCounts<(&'static str, &'static str)>,
    /// Notifications by (action, result).
    pub notifications: LabelCounts<(&'static str, &'static str)>,
    /// Denials by (action, reason).
    pub denials: LabelCounts<(&'static str, &'static str)>,
}

const DECIDED: [&str; 3] = ["connect", "publish", "play"];
const DECISION_RESULTS: [&str; 5] = ["allow", "deny", "error", "overloaded", "timeout"];
const NOTIFIED: [&str; 2] = ["play_done", "publish_done"];
const NOTIFICATION_RESULTS: [&str; 3] = ["dropped", "failed", "sent"];

fn pairs(first: &[&'static str], second: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    first.iter().flat_map(|a| second.iter().map(move |b| (*a, *b))).collect()
}

impl AccessState {
    pub fn new() -> AccessState {
        AccessState {
            in_flight: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 1,
            decisions_pending: 0,
            notifications_in_flight: 0,
            pending_per_ip: HashMap::new(),
            decisions: LabelCounts::with_labels(&pairs(&DECIDED, &DECISION_RESULTS)),
            notifications: LabelCounts::with_labels(&pairs(&NOTIFIED, &NOTIFICATION_RESULTS)),
            denials: LabelCounts::with_labels(&pairs(&DECIDED, &DENIAL_LABELS)),
        }
    }

    /// When the first hook call in flight times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Decisions waiting for the hook now.
    pub fn decisions_pending(&self) -> usize {
        self.decisions_pending
    }

    fn new_id(&mut self) -> HookId {
        let id = HookId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Forgets a decision's place in the bounds.
    fn release(&mut self, ip: IpAddr) {
        self.decisions_pending = self.decisions_pending.saturating_sub(1);
        if let Some(count) = self.pending_per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.pending_per_ip.remove(&ip);
            }
        }
    }
}

impl RelayCore {
    /// A connect, publish or play asks for access: rules and signature now, then the hook
    /// if there is one, then [`admit`](Self::admit) or [`deny`](Self::deny).
    pub(super) fn gate(&mut self, id: ConnId, gated: Gated, now: Instant) {
        if let Err(denial) = self.check_locally(id, &gated, now) {
            return self.deny(id, &gated, &denial, now);
        }
        if self.config.access.hook_url.is_none() {
            return self.admit(id, gated, now);
        }
        self.ask_hook(id, gated, now);
    }

    pub(super) fn check_locally(&self, id: ConnId, gated: &Gated, now: Instant) -> Result<(), Denial> {
        let access = &self.config.access;
        let (rules, secret, request) = match gated {
            Gated::Connect { app, .. } => {
                let oversized = self.conns.get(id).is_some_and(|conn| conn.client.oversized);
                return if oversized || app.len() > MAX_FIELD_BYTES { Err(Denial::RequestTooLong) } else { Ok(()) };
            }
            Gated::Publish(request) => (&access.publish_rules, &access.publish_secret, request),
            Gated::Play(request) => (&access.play_rules, &access.play_secret, request),
        };
        // Before anything reads it: no signature is computed over megabytes.
        if request.stream_name.len() > MAX_FIELD_BYTES {
            return Err(Denial::RequestTooLong);
        }
        if let Some(conn) = self.conns.get(id) {
            if let RuleVerdict::Denied(rule) = rules.check(conn.peer.ip()) {
                return Err(Denial::IpRule(rule));
            }
        }
        if let Some(secret) = secret {
            let now_unix = self.unix_time(now).as_secs();
            signed_url::verify(secret.bytes(), &request.app, &request.stream_name, now_unix).map_err(Denial::Signature)?;
        }
        Ok(())
    }

    fn ask_hook(&mut self, id: ConnId, gated: Gated, now: Instant) {
        let Some(url) = self.config.access.hook_url.clone() else { return };
        let action = gated.action();
        let Some(conn) = self.conns.get(id) else { return };
        let ip = canonical(conn.peer.ip());
        let max = self.config.access.hook_max_pending.max(1);
        let per_ip_max = (max / 4).max(1);
        let from_ip = self.access.pending_per_ip.get(&ip).copied().unwrap_or(0);
        let overloaded = if self.access.decisions_pending >= max {
            Some(format!("{max} decisions already wait for the hook (hook-max-pending)"))
        } else if from_ip >= per_ip_max {
            Some(format!("{from_ip} decisions from {ip} already wait for the hook (a quarter of hook-max-pending)"))
        } else if conn.pending_decisions >= MAX_PENDING_PER_CONNECTION {
            Some(format!("{MAX_PENDING_PER_CONNECTION} decisions of this connection already wait for the hook"))
        } else {
            None
        };
        if let Some(bound) = overloaded {
            self.access.decisions.add((action.label(), "overloaded"));
            return self.deny(id, &gated, &Denial::HookOverloaded(bound), now);
        }
        let Some(payload) = self.hook_payload(id, &gated, None) else { return };
        if !payload.fits() || conn.client.oversized {
            return self.deny(id, &gated, &Denial::RequestTooLong, now);
        }
        let timeout = self.config.access.hook_timeout;
        let hook = self.access.new_id();
        let deadline = now + timeout;
        log::debug!("{}: {}: asking the hook ({hook})", conn.peer, gated.describe());
        self.access.in_flight.insert(hook, InFlight::Decision { conn: id, ip, gated, deadline });
        self.access.deadlines.insert((deadline, hook));
        self.access.decisions_pending += 1;
        *self.access.pending_per_ip.entry(ip).or_insert(0) += 1;
        if let Some(conn) = self.conns.get_mut(id) {
            conn.pending_decisions += 1;
        }
        let call = HookCall { url, body: payload.to_json(), timeout, action };
        self.actions.push_back(Action::Hook { id: hook, call });
    }

    /// The JSON object for a request of `id` (`done` for notifications).
    fn hook_payload(&self, id: ConnId, gated: &Gated, done: Option<DoneFields>) -> Option<HookPayload> {
        let conn = self.conns.get(id)?;
        let (action, app, name) = match gated {
            Gated::Connect { app, .. } => (gated.action(), app.as_str(), None),
            Gated::Publish(request) | Gated::Play(request) => {
                (gated.action(), request.app.as_str(), Some(request.stream_name.as_str()))
            }
        };
        let (stream, param) = match name {
            None => (String::new(), conn.client.app_param.clone()),
            Some(name) => match name.split_once('?') {
                Some((stream, query)) => (stream.to_string(), format!("?{query}")),
                None => (name.to_string(), String::new()),
            },
        };
        let action = match (action, done) {
            (HookAction::Publish, Some(_)) => HookAction::PublishDone,
            (HookAction::Play, Some(_)) => HookAction::PlayDone,
            (action, _) => action,
        };
        Some(HookPayload {
            action: action.label(),
            protocol: Self::protocol_label(conn),
            client_id: id.to_u64(),
            ip: canonical(conn.peer.ip()).to_string(),
            app: app.to_string(),
            stream,
            param,
            tc_url: conn.client.tc_url.clone().unwrap_or_default(),
            page_url: conn.client.page_url.clone(),
            server_id: self.node_id.clone(),
            done,
        })
    }

    /// A hook call asked for with [`Action::Hook`] finished (or the driver gave up on it).
    /// Answers that come after the core's own timeout, or for a connection that closed,
    /// are ignored.
    pub fn handle_hook_result(&mut self, id: HookId, outcome: HookOutcome, now: Instant) {
        match self.access.in_flight.remove(&id) {
            Some(InFlight::Decision { conn, ip, gated, deadline }) => {
                self.access.deadlines.remove(&(deadline, id));
                self.settle(conn, ip, gated, outcome.verdict(), now);
            }
            Some(InFlight::Notification { action, deadline }) => {
                self.access.deadlines.remove(&(deadline, id));
                self.access.notifications_in_flight = self.access.notifications_in_flight.saturating_sub(1);
                let result = match outcome.verdict() {
                    HookVerdict::Allow => "sent",
                    HookVerdict::Deny(why) | HookVerdict::Unavailable { why, .. } => {
                        log::debug!("{}: hook not told ({id}): {why}", action.label());
                        "failed"
                    }
                };
                self.access.notifications.add((action.label(), result));
            }
            None => log::debug!("{id}: answer ignored: already decided, or its connection closed"),
        }
        self.finish(now);
    }

    /// Hook calls past their deadline: decisions are settled as timed out.
    pub(super) fn access_timeouts(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.access.deadlines.first() {
            if deadline > now {
                break;
            }
            self.access.deadlines.remove(&(deadline, id));
            match self.access.in_flight.remove(&id) {
                Some(InFlight::Decision { conn, ip, gated, .. }) => {
                    self.settle(conn, ip, gated, HookOutcome::TimedOut.verdict(), now);
                }
                Some(InFlight::Notification { action, .. }) => {
                    self.access.notifications_in_flight = self.access.notifications_in_flight.saturating_sub(1);
                    self.access.notifications.add((action.label(), "failed"));
                }
                None => {}
            }
        }
    }

    fn settle(&mut self, id: ConnId, ip: IpAddr, gated: Gated, verdict: HookVerdict, now: Instant) {
        self.access.release(ip);
        let action = gated.action().label();
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.pending_decisions = conn.pending_decisions.saturating_sub(1);
        if conn.closing.is_some() || conn.is_denied() {
            return;
        }
        let peer = conn.peer;
        match verdict {
            HookVerdict::Allow => {
                self.access.decisions.add((action, "allow"));
                log::debug!("{peer}: {}: allowed by the hook", gated.describe());
                self.admit(id, gated, now);
            }
            HookVerdict::Deny(why) => {
                self.access.decisions.add((action, "deny"));
                self.deny(id, &gated, &Denial::HookDenied(why), now);
            }
            HookVerdict::Unavailable { timed_out, why } => {
                self.access.decisions.add((action, if timed_out { "timeout" } else { "error" }));
                match self.config.access.hook_fail {
                    HookFailPolicy::Open => {
                        log::warn!("{peer}: {}: allowed without the hook (hook-fail open): {why}", gated.describe());
                        self.admit(id, gated, now);
                    }
                    HookFailPolicy::Closed if timed_out => self.deny(id, &gated, &Denial::HookTimeout, now),
                    HookFailPolicy::Closed => self.deny(id, &gated, &Denial::HookError(why), now),
                }
            }
        }
    }

    /// Carries out an allowed request, and queues what the session answered (a hook's
    /// answer arrives outside any input, so nothing else would).
    pub(super) fn admit(&mut self, id: ConnId, gated: Gated, now: Instant) {
        match gated {
            Gated::Connect { request_id, .. } => {
                let Some(conn) = self.conns.get_mut(id) else { return };
                let Some(session) = conn.session() else { return };
                // Accepting runs what the client sent behind its connect: an error there is
                // the client's.
                match session.accept_request(request_id) {
                    Ok(()) | Err(SessionError::UnknownRequest(_)) => {}
                    Err(error) => Self::mark_close(&mut self.to_close, id, conn, CloseReason::ProtocolError(error.to_string())),
                }
                // Messages held back behind the connect run now.
                self.dispatch_server_events(id, now);
            }
            Gated::Publish(request) => self.start_publish(id, &request, now),
            Gated::Play(request) => self.start_play(id, &request, now),
        }
        self.sync_output(id, now);
    }

    /// Refuses a request with the status players understand and a description of why, logs
    /// and counts it, and closes the connection once the answer is written.
    fn deny(&mut self, id: ConnId, gated: &Gated, denial: &Denial, now: Instant) {
        let action = gated.action().label();
        self.access.denials.add((action, denial.label()));
        let Some(conn) = self.conns.get_mut(id) else { return };
        log::warn!("{}: {} denied: {denial}", conn.peer, gated.describe());
        let code = match gated {
            Gated::Connect { .. } => codes::CONNECT_REJECTED,
            Gated::Publish(_) => codes::PUBLISH_BAD_NAME,
            Gated::Play(_) => codes::PLAY_FAILED,
        };
        if self.is_stream_request(id) {
            self.refuse_stream(id, 403, &denial.description(), now);
        }
        // A request the client withdrew meanwhile has nobody to answer; it still closes.
        self.reject_pending(id, gated.request_id(), Some(code), &denial.description());
        self.sync_output(id, now);
        let Some(conn) = self.conns.get_mut(id) else { return };
        let reason = CloseReason::AccessDenied(format!("{action} denied: {}", denial.label()));
        // The grace to read the denial runs from now, not from the client's last traffic,
        // which a long hook wait left far behind.
        conn.last_activity = now;
        conn.close_after_flush = Some(reason.clone());
        if conn.out.is_empty() {
            Self::mark_close(&mut self.to_close, id, conn, reason);
        }
    }

    /// Answers a pending request of `id` with an error status (`code`, or the usual one for
    /// its kind). A request the client withdrew meanwhile needs no answer.
    pub(super) fn reject_pending(&mut self, id: ConnId, request_id: u32, code: Option<&str>, description: &str) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let Some(session) = conn.session() else { return };
        let result = match code {
            Some(code) => session.reject_request_with_code(request_id, code, description),
            None => session.reject_request(request_id, description),
        };
        match result {
            Ok(()) | Err(SessionError::UnknownRequest(_)) => {}
            Err(error) => Self::mark_close(&mut self.to_close, id, conn, CloseReason::EncodeFailed(error.to_string())),
        }
    }

    /// Tells the hook that an allowed publish or play of `key` on `id` ended. Dropped, and
    /// counted, when too many notifications are in flight.
    pub(super) fn notify_done(&mut self, id: ConnId, publish: bool, key: &StreamKey, started: Instant, now: Instant) {
        let Some(url) = self.config.access.hook_url.clone() else { return };
        let Some(conn) = self.conns.get(id) else { return };
        let stream_name = conn.requested_name(key).unwrap_or(key.name()).to_string();
        let done = DoneFields {
            duration_ms: now.saturating_duration_since(started).as_millis() as u64,
            bytes_in: conn.bytes_in,
            bytes_out: conn.bytes_out,
        };
        let request = StreamRequest { request_id: 0, app: key.app().to_string(), stream_name, stream_id: 0 };
        let (gated, action) =
            if publish { (Gated::Publish(request), HookAction::PublishDone) } else { (Gated::Play(request), HookAction::PlayDone) };
        let payload = self.hook_payload(id, &gated, Some(done)).filter(HookPayload::fits);
        let full = self.access.notifications_in_flight >= self.config.access.hook_max_pending.max(1);
        let Some(payload) = payload.filter(|_| !full) else {
            log::debug!("{key}: {} for {id} dropped: too many notifications in flight, or too long", action.label());
            self.access.notifications.add((action.label(), "dropped"));
            return;
        };
        let timeout = self.config.access.hook_timeout;
        let hook = self.access.new_id();
        let deadline = now + timeout + NOTIFICATION_GRACE;
        self.access.in_flight.insert(hook, InFlight::Notification { action, deadline });
        self.access.deadlines.insert((deadline, hook));
        self.access.notifications_in_flight += 1;
        let call = HookCall { url, body: payload.to_json(), timeout, action };
        self.actions.push_back(Action::Hook { id: hook, call });
    }

    /// A connection closed: its decisions waiting for the hook are dropped (a late answer
    /// finds nothing).
    pub(super) fn drop_decisions_of(&mut self, id: ConnId) {
        let mut dropped = Vec::new();
        for (hook, entry) in &self.access.in_flight {
            if let InFlight::Decision { conn, ip, deadline, .. } = entry {
                if *conn == id {
                    dropped.push((*hook, *ip, *deadline));
                }
            }
        }
        for (hook, ip, deadline) in dropped {
            self.access.in_flight.remove(&hook);
            self.access.deadlines.remove(&(deadline, hook));
            self.access.release(ip);
        }
    }
}
