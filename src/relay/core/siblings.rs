//! A core as one of several workers (`--workers N`): the shared directory of who publishes
//! what, the messages workers send each other, and pulls from a sibling.
//!
//! Each worker is a whole relay core with its own connections and streams; nothing on the
//! media path is shared. What crosses between workers is control:
//! - the [`StreamDirectory`]: which worker holds each stream's publisher. A publish claims
//!   its key there (a claim held by another worker is refused like a second publisher
//!   within one core, `NetStream.Publish.BadName`); a play looks there for a source.
//! - [`SiblingMessage`]s, through the driver ([`Action::TellSiblings`], then
//!   [`RelayCore::handle_sibling_message`] on the receiving worker): a publish started, and
//!   the HTTP worker's questions for the API and their answers.
//!
//! Media between workers goes the way it goes between relays: a worker whose players want
//! a stream published on a sibling pulls it from that sibling's private loopback listener,
//! through the edge's pull, linger and loop-detection code. The publisher leaving reaches
//! the pulling worker as StreamDry over that connection, and its players as StreamDry from
//! it, as on an edge. The sibling side sees a connection of kind
//! [`ListenerKind::Sibling`](super::ListenerKind::Sibling), which proves itself with a
//! secret in its connect, skips access control (its players were checked where they
//! connected) and is not counted as a player.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::close::CloseReason;
use super::stream::StreamKey;
use super::{Action, RelayCore};
use crate::relay::http::{ClientView, KickedView, MetricsView, StreamView, SummaryView};

/// Connect property a sibling's pull carries the workers' shared secret in.
pub const WORKER_SECRET_PROPERTY: &str = "rtmpEdgeWorker";

/// Which worker holds each stream's publisher. Shared by the workers of one relay, and
/// touched only when a publish starts or ends and when a play looks for a source.
#[derive(Debug, Default)]
pub struct StreamDirectory {
    publishers: Mutex<HashMap<StreamKey, usize>>,
}

impl StreamDirectory {
    /// Records `worker` as `key`'s publisher, unless another worker is; then that worker
    /// is the error.
    pub fn claim(&self, key: &StreamKey, worker: usize) -> Result<(), usize> {
        let mut publishers = self.publishers.lock().unwrap_or_else(PoisonError::into_inner);
        match publishers.get(key) {
            Some(&holder) if holder != worker => Err(holder),
            _ => {
                publishers.insert(key.clone(), worker);
                Ok(())
            }
        }
    }

    /// Forgets `worker`'s claim on `key` (another worker's claim stays).
    pub fn release(&self, key: &StreamKey, worker: usize) {
        let mut publishers = self.publishers.lock().unwrap_or_else(PoisonError::into_inner);
        if publishers.get(key) == Some(&worker) {
            publishers.remove(key);
        }
    }

    /// The worker that holds `key`'s publisher now, if any.
    pub fn holder(&self, key: &StreamKey) -> Option<usize> {
        self.publishers.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied()
    }
}

/// A core's place among its relay's workers.
#[derive(Clone, Debug)]
pub struct WorkerPlace {
    /// This worker's index, from 0.
    pub index: usize,
    /// How many workers there are.
    pub count: usize,
    /// Who publishes what, shared by all the workers.
    pub directory: Arc<StreamDirectory>,
    /// Each worker's private loopback listener, by index.
    pub sibling_addrs: Vec<SocketAddr>,
    /// What a sibling's connect must carry in [`WORKER_SECRET_PROPERTY`]: the private
    /// listeners are on loopback, where other local programs could connect too.
    pub secret: String,
    /// Client connections open on all the workers together, held to `max_connections`:
    /// the kernel spreads RTMP connections over the workers, but HTTP ones all land on
    /// worker 0, so an even share per worker would cap HTTP-FLV players at a fraction.
    pub clients_open: Arc<AtomicUsize>,
}

/// What one worker tells or asks another (through the driver, never on the media path).
#[derive(Clone, Debug, PartialEq)]
pub enum SiblingMessage {
    /// A publish of this stream started on the sending worker, which now holds it in the
    /// directory: players waiting for it elsewhere pull it from there.
    PublishStarted(StreamKey),
    /// The worker with the HTTP listener asks for this worker's part of an answer.
    Ask {
        /// Names the answer.
        id: u64,
        /// What it asks.
        request: SiblingRequest,
    },
    /// The answer to an [`Ask`](SiblingMessage::Ask).
    Answer {
        /// The ask's id.
        id: u64,
        /// This worker's part.
        answer: SiblingAnswer,
    },
}

/// The API's questions to the other workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiblingRequest {
    /// `GET /api/v1/streams`.
    Streams,
    /// `GET /api/v1/clients`.
    Clients,
    /// `GET /api/v1/summary`.
    Summary,
    /// `GET /metrics`.
    Metrics,
    /// `DELETE /api/v1/clients/{id}` for one of this worker's connections.
    Kick {
        /// The client id.
        client: u64,
        /// Who asked, for the log line.
        by: String,
    },
}

/// One worker's part of an API answer.
#[derive(Clone, Debug, PartialEq)]
pub enum SiblingAnswer {
    /// Its streams.
    Streams(Vec<StreamView>),
    /// Its connections.
    Clients(Vec<ClientView>),
    /// Its summary, and its streams' keys (a stream pulled between workers is one stream).
    Summary(Box<SummaryView>, Vec<StreamKey>),
    /// Its metrics.
    Metrics(Box<MetricsView>),
    /// The connection it closed, or `None` when it has no such connection.
    Kicked(Option<KickedView>),
    /// The worker has stopped (the driver answers for it).
    Gone,
}

impl RelayCore {
    /// This core's place among workers, when it is one of several.
    pub fn worker_place(&self) -> Option<&WorkerPlace> {
        self.siblings.as_ref()
    }

    /// The worker other than this one that holds `key`'s publisher.
    pub(super) fn sibling_holding(&self, key: &StreamKey) -> Option<usize> {
        let place = self.siblings.as_ref()?;
        place.directory.holder(key).filter(|&holder| holder != place.index)
    }

    /// Claims `key` in the directory for this worker; the worker that holds it otherwise.
    pub(super) fn claim_stream(&self, key: &StreamKey) -> Result<(), usize> {
        match &self.siblings {
            Some(place) => place.directory.claim(key, place.index),
            None => Ok(()),
        }
    }

    /// A local publish of `key` started: the directory has it, and the siblings hear of it.
    pub(super) fn announce_publish(&mut self, key: &StreamKey) {
        if self.siblings.is_some() {
            self.actions.push_back(Action::TellSiblings { to: None, message: SiblingMessage::PublishStarted(key.clone()) });
        }
    }

    /// A local publish of `key` ended: the directory forgets it. Pulling siblings hear of
    /// it over their pull (StreamDry), as an edge hears it from its origin.
    pub(super) fn release_stream(&self, key: &StreamKey) {
        if let Some(place) = &self.siblings {
            place.directory.release(key, place.index);
        }
    }

    /// A message from worker `from` (passed on by the driver).
    pub fn handle_sibling_message(&mut self, from: usize, message: SiblingMessage, now: Instant) {
        match message {
            SiblingMessage::PublishStarted(key) => self.sibling_published(from, &key, now),
            SiblingMessage::Ask { id, request } => {
                let answer = self.answer_sibling(request, now);
                let message = SiblingMessage::Answer { id, answer };
                self.actions.push_back(Action::TellSiblings { to: Some(from), message });
            }
            SiblingMessage::Answer { id, answer } => self.sibling_answered(id, from, answer, now),
        }
        self.finish(now);
    }

    /// Worker `from` has a publisher for `key` now. Players here that wait for it (with no
    /// source of their own) pull it from there; a pull from another sibling moves.
    fn sibling_published(&mut self, from: usize, key: &StreamKey, now: Instant) {
        // An edge's workers each pull from the origins.
        if !self.config.origins.is_empty() || self.shutdown_deadline.is_some() {
            return;
        }
        let Some(stream) = self.streams.get(key) else { return };
        if stream.publisher.is_some() || stream.pull.as_ref().is_some_and(|link| link.sibling == Some(from)) {
            return;
        }
        let Some(opener) = stream.audience().next().map(|player| player.conn) else { return };
        self.ensure_pull(key, opener, now);
    }

    /// An unfinished pull of `key` that goes to another worker than the one holding it
    /// now is ended: `ensure_pull` then opens one to the right worker.
    pub(super) fn drop_misdirected_pull(&mut self, key: &StreamKey, holder: usize, now: Instant) {
        let misdirected = self
            .streams
            .get(key)
            .and_then(|stream| stream.pull.as_ref())
            .is_some_and(|link| link.sibling.is_some_and(|worker| worker != holder));
        if misdirected {
            log::info!("{key}: its publisher is on worker {holder} now; pulling from there");
            self.pull_lost(key, true, now);
            self.drop_pull(key, CloseReason::SourceMoved);
        }
    }
}
