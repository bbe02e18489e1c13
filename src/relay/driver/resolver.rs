//! Host name lookups off the loop thread: a small pool of threads answering through a
//! `mio::Waker`, so a slow DNS server delays only the link that asked.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use mio::Waker;

use crate::relay::core::ConnId;

/// Lookups waiting for a thread; more are refused at once rather than queued without bound.
const MAX_PENDING: usize = 64;
/// Threads doing lookups.
const THREADS: usize = 2;

type Answer = (ConnId, Result<Vec<SocketAddr>, String>);

struct Request {
    id: ConnId,
    host: String,
    port: u16,
}

/// The resolver pool. Dropping it lets its threads finish their lookup and exit.
pub struct Resolver {
    requests: SyncSender<Request>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Resolver {
    /// Starts the threads; each answer is announced on `waker`.
    pub fn start(waker: Arc<Waker>) -> std::io::Result<Resolver> {
        let (requests, receiver) = sync_channel::<Request>(MAX_PENDING);
        let receiver = Arc::new(Mutex::new(receiver));
        let answers = Arc::new(Mutex::new(Vec::new()));
        for index in 0..THREADS {
            let receiver = Arc::clone(&receiver);
            let answers = Arc::clone(&answers);
            let waker = Arc::clone(&waker);
            thread::Builder::new()
                .name(format!("rtmp-edge-resolver-{index}"))
                .spawn(move || serve(&receiver, &answers, &waker))?;
        }
        Ok(Resolver { requests, answers })
    }

    /// Asks for `host`'s addresses. Refused (with the reason) when too many are pending.
    pub fn request(&self, id: ConnId, host: String, port: u16) -> Result<(), String> {
        match self.requests.try_send(Request { id, host, port }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(format!("{MAX_PENDING} lookups already pending")),
            Err(TrySendError::Disconnected(_)) => Err("resolver threads are gone".to_string()),
        }
    }

    /// Answers that arrived since the last call.
    pub fn take_answers(&self) -> Vec<Answer> {
        match self.answers.lock() {
            Ok(mut answers) => std::mem::take(&mut *answers),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

fn serve(receiver: &Mutex<Receiver<Request>>, answers: &Mutex<Vec<Answer>>, waker: &Waker) {
    loop {
        let request = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(request) = request else { return };
        let result = (request.host.as_str(), request.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|error| error.to_string());
        match answers.lock() {
            Ok(mut answers) => answers.push((request.id, result)),
            Err(_) => return,
        }
        if waker.wake().is_err() {
            return;
        }
    }
}
