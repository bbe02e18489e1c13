//! The handshake against real peers nobody here wrote: ffmpeg and rtmpdump as clients of our
//! server side, ffmpeg (`-listen 1`) and nginx-rtmp as servers for our client side.
//!
//! Everything runs on loopback with blocking sockets, read timeouts and deadlines, so a
//! peer that misbehaves fails the test instead of hanging it. A missing program fails the
//! test with a message naming it: CI installs them, and a silent pass would hide a gap.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/ports.rs"]
mod ports;

use rtmp_edge::handshake::{DigestScheme, Handshake, HandshakeProgress, HandshakeRole};

const DEADLINE: Duration = Duration::from_secs(15);

/// Kills and reaps the child when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str]) -> ChildGuard {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => ChildGuard(child),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("`{program}` is not installed; this interop test needs it (scripts/test.sh installs it)")
        }
        Err(e) => panic!("cannot start `{program}`: {e}"),
    }
}

/// Accepts one connection, failing if the child exits or the deadline passes first.
fn accept(listener: &TcpListener, child: &mut ChildGuard) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("read timeout");
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept failed: {e}"),
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the peer exited ({status}) before connecting");
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the peer did not connect within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects to a server the child is starting, retrying until it listens.
fn connect(addr: SocketAddr, child: &mut ChildGuard) -> TcpStream {
    let start = Instant::now();
    loop {
        if let Ok(stream) = TcpStream::connect(addr) {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("read timeout");
            return stream;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the server exited ({status}) before listening");
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the server did not listen within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_some(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => panic!("the peer closed the connection while we waited for {what}"),
        Ok(n) => buf[..n].to_vec(),
        Err(e) => panic!("reading {what}: {e}"),
    }
}

/// Runs `handshake` over `stream` to completion; returns the bytes that followed it.
fn drive(handshake: &mut Handshake, stream: &mut TcpStream) -> Vec<u8> {
    let first = handshake.start();
    stream.write_all(&first).expect("send C0+C1");
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < DEADLINE,
            "handshake did not finish within {DEADLINE:?}"
        );
        let input = read_some(stream, "the handshake");
        match handshake.process(&input).expect("peer's handshake bytes") {
            HandshakeProgress::InProgress { response } => stream
                .write_all(&response)
                .expect("send handshake response"),
            HandshakeProgress::Completed {
                response,
                remaining,
            } => {
                stream
                    .write_all(&response)
                    .expect("send last handshake response");
                return remaining.to_vec();
            }
        }
    }
}

/// Reads on after the handshake until `needle` shows up in the chunk bytes.
fn read_until_contains(stream: &mut TcpStream, mut bytes: Vec<u8>, needle: &[u8]) -> Vec<u8> {
    let start = Instant::now();
    while !bytes.windows(needle.len()).any(|w| w == needle) {
        assert!(
            start.elapsed() < DEADLINE,
            "no {needle:?} within {DEADLINE:?}: {bytes:02x?}"
        );
        assert!(
            bytes.len() < 64 * 1024,
            "no {needle:?} in the first 64 KiB: {bytes:02x?}"
        );
        bytes.extend(read_some(stream, "the connect command"));
    }
    bytes
}

/// Our server side against a real client: the handshake completes and what follows is the
/// client's `connect`, on chunk stream 3 with a type 0 header (first byte 0x03).
fn server_meets_client(program: &str, args: &[&str], expected_scheme: Option<DigestScheme>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local address").port();
    let url = format!("rtmp://127.0.0.1:{port}/app/stream");
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "URL" { url.as_str() } else { a })
        .collect();
    let mut child = spawn(program, &args);
    let mut stream = accept(&listener, &mut child);

    let mut server = Handshake::new(HandshakeRole::Server, 0);
    let remaining = drive(&mut server, &mut stream);
    assert_eq!(
        server.peer_digest_scheme(),
        expected_scheme,
        "{program}'s C1 digest"
    );

    let chunks = read_until_contains(&mut stream, remaining, b"connect");
    assert_eq!(chunks[0], 0x03, "first chunk: fmt 0, csid 3: {chunks:02x?}");
    assert_eq!(
        chunks[7], 0x14,
        "first message is an AMF0 command: {chunks:02x?}"
    );
    assert_eq!(
        &chunks[12..22],
        b"\x02\x00\x07connect",
        "command name: {chunks:02x?}"
    );
}

#[test]
fn our_server_with_ffmpeg_client() {
    // ffmpeg signs C1 with a scheme 0 digest and, as a player, checks our S1 and S2
    // signatures: it would drop the connection instead of sending connect if they were wrong.
    server_meets_client(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-rw_timeout",
            "3000000",
            "-i",
            "URL",
            "-f",
            "null",
            "-",
        ],
        Some(DigestScheme::Scheme0),
    );
}

#[test]
fn our_server_with_rtmpdump_client() {
    // librtmp sends a plain C1 (zero version field) unless encrypting or verifying a SWF.
    server_meets_client(
        "rtmpdump",
        &["-q", "-m", "5", "-r", "URL", "-o", "/dev/null"],
        None,
    );
}

/// One type 0 chunk (csid 3, stream 0) carrying an AMF0 `connect(1, {app, tcUrl})`.
fn connect_chunk(addr: SocketAddr) -> Vec<u8> {
    fn amf_string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut body = vec![0x02];
    amf_string(&mut body, "connect");
    body.push(0x00);
    body.extend_from_slice(&1.0f64.to_be_bytes());
    body.push(0x03);
    for (key, value) in [
        ("app", "app".to_string()),
        ("tcUrl", format!("rtmp://{addr}/app")),
    ] {
        amf_string(&mut body, key);
        body.push(0x02);
        amf_string(&mut body, &value);
    }
    body.extend_from_slice(&[0x00, 0x00, 0x09]);
    assert!(
        body.len() <= 128,
        "must fit one chunk at the default chunk size"
    );
    let mut chunk = vec![0x03, 0, 0, 0];
    chunk.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    chunk.push(0x14);
    chunk.extend_from_slice(&[0, 0, 0, 0]);
    chunk.extend_from_slice(&body);
    chunk
}

/// After our client's handshake and connect, the server's first message: a Window
/// Acknowledgement Size (type 5) on chunk stream 2. Getting it proves the server accepted C2
/// and parsed the chunk that followed.
fn assert_server_answers_connect(stream: &mut TcpStream, addr: SocketAddr, remaining: Vec<u8>) {
    stream
        .write_all(&connect_chunk(addr))
        .expect("send connect");
    let mut reply = remaining;
    let start = Instant::now();
    while reply.len() < 16 {
        assert!(
            start.elapsed() < DEADLINE,
            "no answer to connect: {reply:02x?}"
        );
        reply.extend(read_some(stream, "the answer to connect"));
    }
    assert_eq!(reply[0], 0x02, "fmt 0 on csid 2: {reply:02x?}");
    assert_eq!(
        &reply[4..8],
        &[0, 0, 4, 5],
        "4-byte Window Ack Size: {reply:02x?}"
    );
}

#[test]
fn our_client_with_ffmpeg_listen_server() {
    // ffmpeg binds the port itself: one on this process's own loopback address.
    let addr = ports::own_loopback_addr();
    let url = format!("rtmp://{addr}/app/stream");
    let mut child = spawn(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-listen",
            "1",
            "-i",
            &url,
            "-f",
            "null",
            "-",
        ],
    );
    let mut stream = connect(addr, &mut child);
    let mut client = Handshake::new(HandshakeRole::Client, 0);
    let remaining = drive(&mut client, &mut stream);
    // ffmpeg's server side speaks the plain handshake only: its S1 has no digest.
    assert_eq!(client.peer_digest_scheme(), None);
    assert_server_answers_connect(&mut stream, addr, remaining);
}

#[test]
fn our_client_with_nginx_rtmp_server() {
    // nginx binds the port itself: one on this process's own loopback address.
    let addr = ports::own_loopback_addr();
    let dir = std::env::temp_dir().join(format!(
        "rtmp-edge-handshake-nginx-{}-{}",
        std::process::id(),
        addr.port()
    ));
    std::fs::create_dir_all(&dir).expect("nginx prefix directory");
    let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    assert!(
        std::path::Path::new(module).exists(),
        "{module} is missing: install libnginx-mod-rtmp (scripts/test.sh does)"
    );
    let conf = format!(
        "load_module {module};\n\
         daemon off;\nmaster_process off;\nworker_processes 1;\n\
         pid {pid};\nerror_log stderr error;\n\
         events {{ worker_connections 64; }}\n\
         rtmp {{ server {{ listen {addr}; application app {{ live on; }} }} }}\n",
        pid = dir.join("nginx.pid").display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let prefix = format!("{}/", dir.display());
    let conf_arg = conf_path.display().to_string();
    let mut child = spawn("nginx", &["-e", "stderr", "-p", &prefix, "-c", &conf_arg]);

    let mut stream = connect(addr, &mut child);
    let mut client = Handshake::new(HandshakeRole::Client, 0);
    let remaining = drive(&mut client, &mut stream);
    // nginx-rtmp answers a digest C1 with a signed S1, in the scheme the client used.
    assert_eq!(client.peer_digest_scheme(), Some(DigestScheme::Scheme0));
    assert_server_answers_connect(&mut stream, addr, remaining);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
