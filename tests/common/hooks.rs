//! The access tests' helpers: a real HTTP hook server (`hook_server.py`, on Python's
//! http.server) whose answers depend on the stream name, the requests it received, and
//! the relay's access metrics.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rtmp_edge::relay::access::AccessConfig;
use rtmp_edge::relay::{Config, RelayHandle};

use super::http::{check_metrics_text, get, sample};
use super::{eventually, require_program, tail, test_config, ChildGuard, TempDir};

/// The hook server, killed on drop. See `tests/common/hook_server.py` for its answers.
pub struct HookServer {
    _child: ChildGuard,
    /// Where it listens.
    pub port: u16,
    log: PathBuf,
}

impl HookServer {
    /// Starts one, logging requests into `dir`.
    pub fn start(dir: &TempDir) -> HookServer {
        let python = require_program("python3");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/hook_server.py");
        let log = dir.join("hook-requests.jsonl");
        let mut command = Command::new(python);
        command.arg(&script).arg(&log).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = ChildGuard::spawn(command, "hook-server");
        let stdout = child.take_stdout().expect("hook server stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("hook server port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("hook server printed {line:?}, not its port"));
        HookServer { _child: child, port, log }
    }

    /// `http://127.0.0.1:PORT/rtmp-hook`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/rtmp-hook", self.port)
    }

    /// Every request body so far, in arrival order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.entries().into_iter().map(|entry| entry["body"].clone()).collect()
    }

    /// Every request so far as logged: `path`, `content_type`, `body`.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|line| !line.is_empty()).map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The first request body `matches` accepts, waiting up to 10 s for it.
    pub fn wait_for(&self, what: &str, mut matches: impl FnMut(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut found = None;
        let arrived = eventually(Duration::from_secs(10), || {
            found = self.requests().into_iter().find(|body| matches(body));
            found.is_some()
        });
        assert!(arrived, "the hook server never got {what}; it got:\n{:#?}", self.requests());
        found.unwrap_or_default()
    }

    /// The request with this action and stream name.
    pub fn wait_for_event(&self, action: &str, stream: &str) -> serde_json::Value {
        self.wait_for(&format!("{action} of {stream}"), |body| body["action"] == action && body["stream"] == stream)
    }
}

/// A relay config (with an HTTP listener for `/metrics`) whose access settings are `access`.
pub fn access_config(access: AccessConfig) -> Config {
    Config { access, http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() }
}

/// `access` with hooks to `url`, timing out after `timeout_ms`.
pub fn with_hook(url: &str, timeout_ms: u64, access: AccessConfig) -> AccessConfig {
    AccessConfig {
        hook_url: Some(url.parse().unwrap_or_else(|error| panic!("{url}: {error}"))),
        hook_timeout: Duration::from_millis(timeout_ms),
        ..access
    }
}

/// `/metrics`, checked by promtool and parsed; the relay must have an HTTP listener.
pub fn metrics(relay: &RelayHandle) -> Vec<(String, f64)> {
    let addr = relay.http_addr().expect("the relay has an HTTP listener");
    check_metrics_text(&get(addr, "/metrics", None).text())
}

/// One sample of `/metrics` with `labels` written as the parser prints them
/// (`action=publish,result=deny`), 0 when absent.
pub fn metric(samples: &[(String, f64)], name: &str, labels: &str) -> f64 {
    sample(samples, &format!("{name}{{{labels}}}")).unwrap_or(0.0)
}

/// Waits for `child` (an ffmpeg refused by the relay) to fail, and for its log to show the
/// relay's reason.
pub fn expect_refused(child: &mut ChildGuard, log: &Path, reason: &str) {
    match child.wait_timeout(Duration::from_secs(15)) {
        Some(status) => assert!(!status.success(), "{} was not refused:\n{}", child.label, tail(log)),
        None => panic!("{} was neither refused nor finished within 15 s:\n{}", child.label, tail(log)),
    }
    let text = tail(log);
    assert!(text.contains(&format!("Server error: {reason}")), "{}: expected {reason:?} in:\n{text}", child.label);
}

/// One client the relay must refuse: a label, the URL, whether it publishes (else it
/// plays), and the description the relay gives (`Access denied: ...`).
pub struct Refused {
    /// For the log file and messages.
    pub label: &'static str,
    /// Where it publishes or plays.
    pub url: String,
    /// Publishes (`true`) or plays.
    pub publish: bool,
    /// The description ffmpeg must report.
    pub reason: String,
}

/// Starts every `refused` client as an ffmpeg publisher (of `fixture_name`) or player, all at
/// once, and requires each to be refused with its reason.
pub fn expect_all_refused(ffmpeg: &Path, fixture_name: &str, dir: &TempDir, refused: Vec<Refused>) {
    let mut children = Vec::new();
    for client in refused {
        let (child, log) = if client.publish {
            super::interop::ffmpeg_publisher(ffmpeg, fixture_name, &client.url, dir, client.label, &[])
        } else {
            let out = dir.join(&format!("{}.flv", client.label));
            super::interop::ffmpeg_player(ffmpeg, &client.url, &out, dir, client.label, &[])
        };
        children.push((child, log, client.reason));
    }
    for (child, log, reason) in &mut children {
        expect_refused(child, log, reason);
    }
}

/// The keys of a hook request, sorted.
pub fn keys(body: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = body.as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}
