//! PROXY protocol helpers: headers as balancers write them, sockets from a chosen loopback
//! address (so a balancer passes a client address of the test's choosing), and HAProxy run
//! on loopback ports with a configuration written by the test.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rtmp_edge::relay::proxy_protocol::V2_SIGNATURE;

use super::http::{parse_answer, HttpAnswer};
use super::{log_file, require_program, tail, ChildGuard, TempDir};

/// `PROXY TCP4 SOURCE DESTINATION SPORT DPORT\r\n` (what HAProxy's `send-proxy` writes).
pub fn v1_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {family} {} {} {} {}\r\n", source.ip(), destination.ip(), source.port(), destination.port())
        .into_bytes()
}

/// A v2 PROXY header for TCP over IPv4 (what `send-proxy-v2` writes, without TLVs).
pub fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("v2_header: IPv4 only")
    };
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&destination.ip().octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

/// A TCP connection to `to` from the loopback address `from` (any port).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket.connect_timeout(&to.into(), Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `GET path` with `Connection: close` on `stream` (already connected, header sent if any).
pub fn get_on(mut stream: TcpStream, path: &str) -> HttpAnswer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    parse_answer(&bytes).unwrap_or_else(|| panic!("GET {path}: not an HTTP answer: {:?}", String::from_utf8_lossy(&bytes)))
}

/// HAProxy (`haproxy -db`, in the foreground) with a configuration the test wrote; killed
/// when dropped. Its log (health checks going up and down) is shown when a test fails.
pub struct HaProxy {
    child: ChildGuard,
    log: PathBuf,
}

impl HaProxy {
    /// Writes `config` to `dir/haproxy.cfg`, checks it (`haproxy -c`) and starts HAProxy.
    pub fn start(dir: &TempDir, config: &str) -> HaProxy {
        let haproxy = require_program("haproxy");
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(&haproxy).arg("-c").arg("-q").arg("-f").arg(&path).output().unwrap();
        assert!(check.status.success(), "haproxy -c:\n{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
        let (stderr, log) = log_file(dir, "haproxy.log");
        let mut command = Command::new(haproxy);
        command.arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(stderr);
        HaProxy { child: ChildGuard::spawn(command, "haproxy"), log }
    }

    /// What HAProxy logged so far.
    pub fn log(&self) -> String {
        tail(&self.log)
    }

    /// Runs `check`; if it fails, prints HAProxy's log first.
    pub fn explain_failure<T>(&self, check: impl FnOnce() -> T) -> T {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
            Ok(value) => value,
            Err(panic) => {
                eprintln!("haproxy log:\n{}", self.log());
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}
