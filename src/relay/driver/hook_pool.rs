//! Hook calls off the loop thread: worker threads make the blocking HTTP calls the core
//! asks for ([`Action::Hook`](crate::relay::Action::Hook)) and report back through the loop's
//! `mio::Waker`, so a slow or hung hook server delays only the request it is about.
//!
//! Every call has one deadline for connect, send and answer; each socket wait is cut to
//! what is left of it, so a server that accepts and never answers, or drips its answer a
//! byte at a time, holds a worker for the hook timeout and no longer. A host name's lookup
//! (std's blocking resolver) cannot be cut short: a slow resolver holds the worker longer,
//! though the core has decided at its own deadline meanwhile. An IP address needs none. The pool
//! grows a thread when a call finds none idle, up to the bound the caller gives (the core
//! bounds the calls in flight, so every call gets a thread at once and a hung call never
//! makes another wait); idle threads leave after a few seconds. Decisions are taken before
//! notifications.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::relay::access::http_client::{post_request, Progress, ResponseReader};
use crate::relay::access::{HookCall, HookOutcome};
use crate::relay::HookId;

/// Bytes read from a hook server per read call.
const READ_CHUNK: usize = 4096;
/// An idle worker leaves after this long.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// A worker's stack: the call needs little, but name resolution goes through libc's NSS.
const STACK_SIZE: usize = 512 * 1024;

struct Job {
    id: HookId,
    call: HookCall,
    deadline: Instant,
}

#[derive(Default)]
struct Queues {
    decisions: VecDeque<Job>,
    notifications: VecDeque<Job>,
    /// Worker threads alive, and how many of them wait for work.
    threads: usize,
    idle: usize,
    /// Calls being made now.
    busy: usize,
    stopping: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    /// Signalled when a job is queued, when one finishes, and when the pool stops.
    changed: Condvar,
    answers: Mutex<Vec<(HookId, HookOutcome)>>,
    waker: Arc<Waker>,
}

/// The pool. A relay without hooks never starts a thread.
pub struct HookPool {
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked mid-call left nothing half-done that matters here.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HookPool {
    /// A pool answering on `waker`.
    pub fn new(waker: Arc<Waker>) -> HookPool {
        let shared = Shared {
            queues: Mutex::new(Queues::default()),
            changed: Condvar::new(),
            answers: Mutex::new(Vec::new()),
            waker,
        };
        HookPool { shared: Arc::new(shared) }
    }

    /// Queues a call (its deadline runs from now), starting a thread for it when none is
    /// idle and fewer than `max_threads` run. Fails only when no thread runs and none can
    /// be started.
    pub fn submit(&mut self, id: HookId, call: HookCall, now: Instant, max_threads: usize) -> Result<(), String> {
        let mut queues = lock(&self.shared.queues);
        let waiting = queues.decisions.len() + queues.notifications.len();
        if queues.idle <= waiting && queues.threads < max_threads.max(1) {
            let shared = Arc::clone(&self.shared);
            let spawned = thread::Builder::new()
                .name("rtmp-edge-hook".to_string())
                .stack_size(STACK_SIZE)
                .spawn(move || serve(&shared));
            match spawned {
                Ok(_) => queues.threads += 1,
                Err(error) if queues.threads == 0 => return Err(format!("cannot start a hook thread: {error}")),
                Err(error) => log::warn!("hook call {id} waits for a busy thread: cannot start another: {error}"),
            }
        }
        let job = Job { id, deadline: now + call.timeout, call };
        if job.call.action.is_decision() {
            queues.decisions.push_back(job);
        } else {
            queues.notifications.push_back(job);
        }
        drop(queues);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Answers that arrived since the last call.
    pub fn take_answers(&self) -> Vec<(HookId, HookOutcome)> {
        std::mem::take(&mut *lock(&self.shared.answers))
    }

    /// At shutdown: lets queued and running calls (the last `*_done` notifications) finish,
    /// waiting until `until` at most, then stops the threads.
    pub fn finish(&mut self, until: Instant) {
        let mut queues = lock(&self.shared.queues);
        while queues.threads > 0 && (queues.busy > 0 || !queues.decisions.is_empty() || !queues.notifications.is_empty()) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let unmade = queues.busy + queues.decisions.len() + queues.notifications.len();
                log::warn!("shutdown: {unmade} hook calls not finished");
                break;
            }
            queues = match self.shared.changed.wait_timeout(queues, left) {
                Ok((queues, _)) => queues,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        queues.stopping = true;
        drop(queues);
        self.shared.changed.notify_all();
    }
}

impl Drop for HookPool {
    fn drop(&mut self) {
        lock(&self.shared.queues).stopping = true;
        self.shared.changed.notify_all();
    }
}

/// The next job, or `None` when the thread should leave (stopping, or idle too long).
fn next_job(shared: &Shared) -> Option<Job> {
    let mut queues = lock(&shared.queues);
    loop {
        if queues.stopping {
            queues.threads = queues.threads.saturating_sub(1);
            return None;
        }
        if let Some(job) = queues.decisions.pop_front().or_else(|| queues.notifications.pop_front()) {
            queues.busy += 1;
            return Some(job);
        }
        queues.idle += 1;
        let (woken, waited) = match shared.changed.wait_timeout(queues, IDLE_EXIT) {
            Ok(woken) => woken,
            Err(poisoned) => poisoned.into_inner(),
        };
        queues = woken;
        queues.idle = queues.idle.saturating_sub(1);
        if waited.timed_out() && queues.decisions.is_empty() && queues.notifications.is_empty() {
            queues.threads = queues.threads.saturating_sub(1);
            return None;
        }
    }
}

fn serve(shared: &Shared) {
    while let Some(job) = next_job(shared) {
        // A call that waited out its deadline in the queue is not made: the core has
        // decided without it already.
        let outcome = if Instant::now() >= job.deadline { HookOutcome::TimedOut } else { call(&job.call, job.deadline) };
        lock(&shared.answers).push((job.id, outcome));
        {
            let mut queues = lock(&shared.queues);
            queues.busy = queues.busy.saturating_sub(1);
        }
        shared.changed.notify_all();
        if shared.waker.wake().is_err() {
            let mut queues = lock(&shared.queues);
            queues.threads = queues.threads.saturating_sub(1);
            return;
        }
    }
}

/// What is left until `deadline`, or `None` when it has passed.
fn time_left(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

/// One POST, start to finish, within `deadline`.
pub fn call(call: &HookCall, deadline: Instant) -> HookOutcome {
    let url = &call.url;
    let addresses: Vec<SocketAddr> = match (url.host(), url.port()).to_socket_addrs() {
        Ok(addresses) => addresses.collect(),
        Err(error) => return HookOutcome::Failed(format!("resolving {}: {error}", url.host())),
    };
    let mut failure = format!("{} has no address", url.host());
    let mut stream = None;
    for address in addresses {
        let Some(left) = time_left(deadline) else { return HookOutcome::TimedOut };
        match TcpStream::connect_timeout(&address, left) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(error) if error.kind() == io::ErrorKind::TimedOut => return HookOutcome::TimedOut,
            Err(error) => failure = format!("connecting to {address}: {error}"),
        }
    }
    let Some(mut stream) = stream else { return HookOutcome::Failed(failure) };
    let _ = stream.set_nodelay(true);
    let request = post_request(url, &call.body);
    let Some(left) = time_left(deadline) else { return HookOutcome::TimedOut };
    // The server may answer (and close) before reading the whole request: its answer
    // still counts, so a failed write only matters when no answer can be read.
    let written = stream.set_write_timeout(Some(left)).and_then(|()| stream.write_all(&request));
    let mut reader = ResponseReader::new();
    let mut buffer = [0u8; READ_CHUNK];
    loop {
        let Some(left) = time_left(deadline) else { return HookOutcome::TimedOut };
        if let Err(error) = stream.set_read_timeout(Some(left)) {
            return HookOutcome::Failed(format!("socket: {error}"));
        }
        let progress = match stream.read(&mut buffer) {
            Ok(0) => reader.finish(),
            Ok(read) => reader.feed(buffer.get(..read).unwrap_or_default()),
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return HookOutcome::TimedOut
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return HookOutcome::Failed(match written {
                    Err(write_error) => format!("sending the request: {write_error}"),
                    Ok(()) => format!("reading the answer: {error}"),
                })
            }
        };
        match progress {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done { status, body }) => return HookOutcome::Answered { status, body },
            Err(error) => return HookOutcome::Failed(format!("bad answer: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::relay::access::HookAction;

    /// A hook server on loopback that reads the request, then does `serve` with the socket.
    fn server(serve: impl FnOnce(std::net::TcpStream) + Send + 'static) -> HookCall {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            if let Ok((mut socket, _)) = listener.accept() {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request);
                serve(socket);
            }
        });
        HookCall {
            url: format!("http://127.0.0.1:{port}/hook").parse().unwrap(),
            body: "{}".to_string(),
            timeout: Duration::from_millis(300),
            action: HookAction::Publish,
        }
    }

    fn call_now(call: &HookCall) -> HookOutcome {
        super::call(call, Instant::now() + call.timeout)
    }

    #[test]
    fn an_answer_is_read_whole() {
        let call = server(|mut socket| {
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"code\":0}");
        });
        assert_eq!(call_now(&call), HookOutcome::Answered { status: 200, body: b"{\"code\":0}".to_vec() });
    }

    #[test]
    fn silence_and_dripping_end_at_the_deadline() {
        // Accepts, reads, never answers (the socket stays open for 5 s).
        let silent = server(|socket| {
            thread::sleep(Duration::from_secs(5));
            drop(socket);
        });
        assert_eq!(call_now(&silent), HookOutcome::TimedOut);
        // A byte every 20 ms: no single read waits long, the whole call still ends.
        let dripping = server(|mut socket| {
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n");
            for _ in 0..250 {
                thread::sleep(Duration::from_millis(20));
                if socket.write_all(b"X").is_err() {
                    return;
                }
            }
        });
        assert_eq!(call_now(&dripping), HookOutcome::TimedOut);
    }

    #[test]
    fn refused_closed_and_broken_answers_are_failures() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let refused = HookCall {
            url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
            body: "{}".to_string(),
            timeout: Duration::from_millis(300),
            action: HookAction::Play,
        };
        assert!(matches!(call_now(&refused), HookOutcome::Failed(why) if why.contains("connecting to 127.0.0.1")));
        let closed = server(drop);
        assert!(matches!(call_now(&closed), HookOutcome::Failed(why) if why.contains("before a complete response head")));
        let broken = server(|mut socket| {
            let _ = socket.write_all(b"SMTP ready\r\n\r\n");
        });
        assert!(matches!(call_now(&broken), HookOutcome::Failed(why) if why.contains("malformed response head")));
    }
}
