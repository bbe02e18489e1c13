//! The `rtmp-edge` binary with RTMPS: its log names the peer and the reason when plain
//! RTMP reaches the TLS port or TLS the plain one, SIGHUP re-reads the certificate (new
//! connections get the new one, a connection made before goes on), and
//! `--tls-insecure-upstream` warns at start.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::*;
use common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_rtmp-edge");

/// The binary, running, with its log collected.
struct Edge {
    child: ChildGuard,
    log: Arc<Mutex<Vec<String>>>,
}

impl Edge {
    fn start(args: &[&str]) -> Edge {
        let mut command = Command::new(BINARY);
        command.args(["--log-level", "info"]).args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(command, "rtmp-edge");
        let log = child.collect_stderr_lines();
        Edge { child, log }
    }

    /// The address logged after `marker` (e.g. "listening on ").
    fn address(&self, marker: &str) -> SocketAddr {
        let mut found = None;
        let logged = eventually(Duration::from_secs(10), || {
            found = self.log.lock().unwrap().iter().find_map(|line| line.split(marker).nth(1)?.trim().parse().ok());
            found.is_some()
        });
        assert!(logged, "rtmp-edge logged no address after {marker:?}:\n{}", self.log_text());
        found.unwrap()
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for a log line holding every one of `needles`, and returns it.
    fn wait_line(&self, needles: &[&str]) -> String {
        let mut line = None;
        let found = eventually(Duration::from_secs(10), || {
            line = self.log.lock().unwrap().iter().find(|l| needles.iter().all(|n| l.contains(n))).cloned();
            line.is_some()
        });
        assert!(found, "no log line with {needles:?}:\n{}", self.log_text());
        line.unwrap()
    }
}

#[test]
fn the_log_names_the_peer_and_the_reason_and_sighup_swaps_the_certificate() {
    let dir = TempDir::new("tls-binary");
    let ca = TestCa::new(&dir, "test");
    let first = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
    let (cert, key) = (first.chain.to_str().unwrap(), first.key.to_str().unwrap());
    let edge = Edge::start(&[
        "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
        "--tls-insecure-upstream",
    ]);
    let plain = edge.address("listening on ");
    let tls = edge.address("listening for RTMPS (TLS) on ");
    edge.wait_line(&["WARN", "--tls-insecure-upstream", "NOT verified"]);

    // Plain RTMP on the TLS port.
    let mut socket = raw_socket(tls);
    let peer = socket.local_addr().unwrap().to_string();
    socket.write_all(&[3u8; 1537]).unwrap();
    assert!(socket_closed_within(&mut socket, Duration::from_secs(5)));
    edge.wait_line(&["WARN", &peer, "TLS failed", "plain RTMP sent to the TLS port"]);

    // A TLS ClientHello on the plain port.
    let mut socket = raw_socket(plain);
    let peer = socket.local_addr().unwrap().to_string();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(client_config(&ca.pem), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    socket.write_all(&hello).unwrap();
    assert!(socket_closed_within(&mut socket, Duration::from_secs(5)));
    edge.wait_line(&["WARN", &peer, "handshake failed", "looks like TLS"]);

    // A connection made before the reload keeps its session and plays afterwards.
    let mut before = tls_connect(tls, "localhost", &ca.pem).unwrap();
    assert_eq!(served_certificate(tls, &ca.pem).unwrap(), first.der);
    let second = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
    let status = Command::new("kill").args(["-HUP", &edge.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    edge.wait_line(&["TLS certificate re-read from", cert]);
    edge.wait_line(&["configuration reloaded"]);
    assert_eq!(served_certificate(tls, &ca.pem).unwrap(), second.der, "a connection after SIGHUP");
    assert_eq!(before.conn.peer_certificates().unwrap()[0].as_ref(), &first.der[..]);
    play_over_tls(&mut before, "s", write_whole).expect("the connection made before SIGHUP plays");
}
