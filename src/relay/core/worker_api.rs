//! The API with several workers. Only worker 0 has the HTTP listener; for the views that
//! span the relay (streams, clients, summary, metrics) it asks every other worker for its
//! part, and answers once all are in (`http/merge.rs` puts them together). A kick of a
//! connection on another worker goes to that worker. The HTTP connection waits meanwhile,
//! as it does for a reload, so pipelined answers keep their order; a worker that does not
//! answer within [`ASK_TIMEOUT`] makes it a 503, and a worker that has stopped counts as
//! having nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::conn::Phase;
use super::siblings::{SiblingAnswer, SiblingMessage, SiblingRequest};
use super::stream::StreamKey;
use super::{Action, ConnId, RelayCore};
use crate::relay::http::merge::{merge_metrics, merge_streams, merge_summary};
use crate::relay::http::{render_metrics, Awaiting, Response, Route, PROMETHEUS_TEXT};

/// How long an API request waits for the other workers' parts.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// API requests waiting for other workers.
#[derive(Debug, Default)]
pub(super) struct Asks {
    pending: BTreeMap<u64, PendingAsk>,
    next_id: u64,
}

#[derive(Debug)]
struct PendingAsk {
    conn: ConnId,
    request: SiblingRequest,
    awaiting: Awaiting,
    /// Parts received, by worker.
    answers: Vec<(usize, SiblingAnswer)>,
    expected: usize,
    deadline: Instant,
}

impl Asks {
    /// When the first waiting request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|ask| ask.deadline).min()
    }
}

impl RelayCore {
    /// Asks the other workers for their part of `route`'s answer, when it needs them; the
    /// HTTP connection `id` then waits. False when the route is answered here alone.
    pub(super) fn ask_siblings_for(&mut self, id: ConnId, route: &Route, awaiting: Awaiting, now: Instant) -> bool {
        let Some(place) = &self.siblings else { return false };
        let (request, to) = match route {
            Route::Streams => (SiblingRequest::Streams, None),
            Route::Clients => (SiblingRequest::Clients, None),
            Route::Summary => (SiblingRequest::Summary, None),
            Route::Metrics => (SiblingRequest::Metrics, None),
            Route::Kick(client) => match ConnId::from_u64(*client).map(ConnId::worker) {
                Some(worker) if worker != place.index && worker < place.count => {
                    let by = self.conns.get(id).map_or_else(String::new, |conn| conn.peer.to_string());
                    (SiblingRequest::Kick { client: *client, by }, Some(worker))
                }
                _ => return false,
            },
            _ => return false,
        };
        let expected = if to.is_some() { 1 } else { place.count.saturating_sub(1) };
        let Some(conn) = self.conns.get_mut(id) else { return true };
        let Phase::Http(http) = &mut conn.phase else { return false };
        http.awaiting = Some(awaiting);
        http.request_started = None;
        let ask = self.asks.next_id;
        self.asks.next_id = self.asks.next_id.wrapping_add(1);
        let pending = PendingAsk {
            conn: id,
            request: request.clone(),
            awaiting,
            answers: Vec::new(),
            expected,
            deadline: now + ASK_TIMEOUT,
        };
        self.asks.pending.insert(ask, pending);
        self.actions.push_back(Action::TellSiblings { to, message: SiblingMessage::Ask { id: ask, request } });
        true
    }

    /// This worker's part of an answer another worker asked for.
    pub(super) fn answer_sibling(&mut self, request: SiblingRequest, now: Instant) -> SiblingAnswer {
        match request {
            SiblingRequest::Streams => SiblingAnswer::Streams(self.stream_views()),
            SiblingRequest::Clients => SiblingAnswer::Clients(self.client_views(now)),
            SiblingRequest::Summary => {
                SiblingAnswer::Summary(Box::new(self.summary_view(now)), self.streams.keys().cloned().collect())
            }
            SiblingRequest::Metrics => SiblingAnswer::Metrics(Box::new(self.metrics_view())),
            SiblingRequest::Kick { client, by } => SiblingAnswer::Kicked(self.kick_local(client, &by, None)),
        }
    }

    /// Worker `from`'s part of ask `id` arrived.
    pub(super) fn sibling_answered(&mut self, id: u64, from: usize, answer: SiblingAnswer, now: Instant) {
        let Some(ask) = self.asks.pending.get_mut(&id) else { return };
        if !ask.answers.iter().any(|(worker, _)| *worker == from) {
            ask.answers.push((from, answer));
        }
        if ask.answers.len() >= ask.expected {
            self.complete_ask(id, now);
        }
    }

    /// Asks past their deadline are answered with what arrived: a 503 naming how many
    /// workers did not answer.
    pub(super) fn asks_timed_out(&mut self, now: Instant) {
        let expired: Vec<u64> = self.asks.pending.iter().filter(|(_, ask)| now >= ask.deadline).map(|(id, _)| *id).collect();
        for id in expired {
            self.complete_ask(id, now);
        }
    }

    fn complete_ask(&mut self, id: u64, now: Instant) {
        let Some(mut ask) = self.asks.pending.remove(&id) else { return };
        let resumed = match self.conns.get_mut(ask.conn).map(|conn| &mut conn.phase) {
            Some(Phase::Http(http)) => http.awaiting.take().is_some(),
            _ => false,
        };
        if !resumed {
            return;
        }
        let missing = ask.expected.saturating_sub(ask.answers.len());
        ask.answers.sort_by_key(|(worker, _)| *worker);
        let parts: Vec<SiblingAnswer> = ask.answers.into_iter().map(|(_, answer)| answer).collect();
        let response = if missing > 0 {
            log::warn!("API: {missing} worker(s) did not answer within {} s", ASK_TIMEOUT.as_secs());
            Response::error(503, &format!("{missing} worker(s) did not answer within {} s", ASK_TIMEOUT.as_secs()))
        } else {
            self.gathered_response(&ask.request, parts, now)
        };
        self.send_response(ask.conn, &response, ask.awaiting.keep_alive, ask.awaiting.head_only, now);
        self.serve_buffered(ask.conn, now);
    }

    /// This worker's view and the others' parts, as one answer.
    fn gathered_response(&mut self, request: &SiblingRequest, parts: Vec<SiblingAnswer>, now: Instant) -> Response {
        match request {
            SiblingRequest::Streams => {
                let mut all = vec![self.stream_views()];
                all.extend(parts.into_iter().filter_map(|part| match part {
                    SiblingAnswer::Streams(views) => Some(views),
                    _ => None,
                }));
                Response::json(200, &merge_streams(all))
            }
            SiblingRequest::Clients => {
                let mut all = self.client_views(now);
                for part in parts {
                    if let SiblingAnswer::Clients(views) = part {
                        all.extend(views);
                    }
                }
                Response::json(200, &all)
            }
            SiblingRequest::Summary => {
                let mut keys: BTreeSet<StreamKey> = self.streams.keys().cloned().collect();
                let mut views = vec![self.summary_view(now)];
                for part in parts {
                    if let SiblingAnswer::Summary(view, their_keys) = part {
                        views.push(*view);
                        keys.extend(their_keys);
                    }
                }
                match merge_summary(views, keys.len()) {
                    Some(summary) => Response::json(200, &summary),
                    None => Response::error(500, "no summary"),
                }
            }
            SiblingRequest::Metrics => {
                let mut views = vec![self.metrics_view()];
                views.extend(parts.into_iter().filter_map(|part| match part {
                    SiblingAnswer::Metrics(view) => Some(*view),
                    _ => None,
                }));
                match merge_metrics(views) {
                    Some(metrics) => Response::new(200, PROMETHEUS_TEXT, render_metrics(&metrics)),
                    None => Response::error(500, "no metrics"),
                }
            }
            SiblingRequest::Kick { client, .. } => match parts.into_iter().next() {
                Some(SiblingAnswer::Kicked(Some(kicked))) => Response::json(200, &kicked),
                _ => Response::error(404, &format!("no open connection {client}")),
            },
        }
    }
}
