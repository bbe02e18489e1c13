//! A small blocking HTTP/1.1 client for the relay's API, metrics and status page, plus
//! hostile-client helpers. Every read has a timeout, so a relay that stops answering fails
//! the test instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One response.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Result<HttpAnswer, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let auth = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(raw.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).map_err(|e| format!("read {method} {path}: {e}"))?;
    parse_answer(&bytes).ok_or_else(|| format!("{method} {path}: not an HTTP answer: {:?}", String::from_utf8_lossy(&bytes)))
}

/// `GET path`, failing the test on any transport error.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> HttpAnswer {
    request(addr, "GET", path, token).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses one complete answer (head, then a body of `Content-Length` bytes).
pub fn parse_answer(bytes: &[u8]) -> Option<HttpAnswer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let body = bytes.get(end + 4..end + 4 + length)?.to_vec();
    Some(HttpAnswer { status, headers, body })
}

/// A keep-alive connection for several requests in a row.
pub struct KeepAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAlive {
    /// Connects.
    pub fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        KeepAlive { stream, buffer: Vec::new() }
    }

    /// Sends a request and waits (up to 10 s) for its answer.
    pub fn request(&mut self, method: &str, path: &str, token: Option<&str>) -> HttpAnswer {
        let auth = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
        let raw = format!("{method} {path} HTTP/1.1\r\nHost: relay\r\n{auth}Content-Length: 0\r\n\r\n");
        self.stream.write_all(raw.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(answer) = parse_answer(&self.buffer) {
                let used = answer_length(&self.buffer).unwrap();
                self.buffer.drain(..used);
                return answer;
            }
            assert!(Instant::now() < deadline, "no answer to {method} {path}: {:?}", String::from_utf8_lossy(&self.buffer));
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed before the answer to {method} {path}"),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn answer_length(bytes: &[u8]) -> Option<usize> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let answer = parse_answer(bytes)?;
    Some(end + 4 + answer.body.len())
}

/// Runs `program` with `args`, `input` on its stdin; its output, whatever its exit.
fn run_with_input(program: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// `/metrics` parsed with two independent readers of the Prometheus text format: Debian's
/// `promtool check metrics` (which also lints names and types) and the Python
/// `prometheus_client` parser. Returns the samples as (name with labels, value).
pub fn check_metrics_text(text: &str) -> Vec<(String, f64)> {
    let output = run_with_input(&super::require_program("promtool"), &["check", "metrics"], text);
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Debian's python3-prometheus-client lives with the system python, not a pyenv one.
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(f'{s.name}{{{labels}}}\t{s.value}')
"#;
    let output = run_with_input(std::path::Path::new("/usr/bin/python3"), &["-c", script], text);
    assert!(output.status.success(), "prometheus_client could not parse /metrics: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(name, value)| (name.to_string(), value.parse().unwrap()))
        .collect()
}

/// The value of one parsed sample, e.g. `rtmp_edge_stream_players{app=live,stream=s}`.
pub fn sample(samples: &[(String, f64)], name: &str) -> Option<f64> {
    samples.iter().find(|(key, _)| key == name).map(|(_, value)| *value)
}

/// Closed connections by reason (`rtmp_edge_connections_closed_total`), the non-zero ones,
/// read from the relay's `/metrics` at `api`.
pub fn closes_by_reason(api: SocketAddr) -> std::collections::BTreeMap<String, u64> {
    let text = get(api, "/metrics", None).text();
    text.lines()
        .filter_map(|line| line.strip_prefix("rtmp_edge_connections_closed_total{reason=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(reason, count)| {
            let count: u64 = count.trim().parse().unwrap_or_else(|e| panic!("closes by {reason}: {count:?}: {e}"));
            (reason.to_string(), count)
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// The `/api/v1/clients` entries whose role is `role`.
pub fn clients_with_role(api: SocketAddr, role: &str) -> Vec<serde_json::Value> {
    let clients = get(api, "/api/v1/clients", None).json();
    clients
        .as_array()
        .unwrap_or_else(|| panic!("/api/v1/clients is not a list: {clients}"))
        .iter()
        .filter(|client| client["role"] == role)
        .cloned()
        .collect()
}
