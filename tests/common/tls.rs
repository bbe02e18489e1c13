//! TLS helpers for the RTMPS tests: a test CA and certificates made with rcgen at test time
//! (nothing secret is committed), relay configurations with a TLS listener, and a blocking
//! rustls client for checking which certificate a relay serves and for hostile peers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rtmp_edge::relay::{Config, RelayHandle};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
use rtmp_edge::sessions::{ClientSession, ClientSessionConfig, ClientSessionEvent};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{http, test_config, TempDir, EXCHANGE_TIMEOUT};

/// A blocking TLS client connection.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, PEM (what `--tls-ca` names).
    pub pem: PathBuf,
}

/// A certificate a [`TestCa`] issued, with its key, as PEM files.
pub struct TestCert {
    /// Leaf then CA certificate (what `--tls-cert` names).
    pub chain: PathBuf,
    /// Its private key, PKCS#8 (what `--tls-key` names).
    pub key: PathBuf,
    /// The leaf certificate, DER: what a client sees first.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/NAME-ca.pem`.
    pub fn new(dir: &TempDir, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("rtmp-edge test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(&format!("{name}-ca.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        TestCa { issuer, pem }
    }

    /// A certificate for `names` (host names or IP addresses), written to `dir/STEM.pem`
    /// and `dir/STEM.key`.
    pub fn issue(&self, dir: &TempDir, stem: &str, names: &[&str]) -> TestCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("rtmp-edge test"));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = dir.join(&format!("{stem}.pem"));
        std::fs::write(&chain, format!("{}{}", cert.pem(), self.issuer.pem())).unwrap();
        let key_path = dir.join(&format!("{stem}.key"));
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        TestCert { chain, key: key_path, der: cert.der().to_vec() }
    }
}

/// [`test_config`] with a TLS listener on an ephemeral loopback port serving `cert`, beside
/// the plain one.
pub fn tls_config(cert: &TestCert) -> Config {
    Config {
        tls_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        tls_cert: Some(cert.chain.clone()),
        tls_key: Some(cert.key.clone()),
        ..test_config()
    }
}

/// `rtmps://ADDR/live/NAME`.
pub fn rtmps_url(addr: SocketAddr, name: &str) -> String {
    format!("rtmps://{addr}/live/{name}")
}

/// A rustls client configuration trusting only the CA certificate in `ca_pem`.
pub fn client_config(ca_pem: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A blocking TLS connection to `addr` for `server_name`, trusting `ca_pem`, handshake
/// done; the socket reads with a 10 s timeout.
pub fn tls_connect(addr: SocketAddr, server_name: &str, ca_pem: &Path) -> Result<TlsStream, String> {
    let mut socket = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut conn = ClientConnection::new(client_config(ca_pem), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    }
    Ok(StreamOwned::new(conn, socket))
}

/// The leaf certificate (DER) the relay at `addr` serves now.
pub fn served_certificate(addr: SocketAddr, ca_pem: &Path) -> Result<Vec<u8>, String> {
    let stream = tls_connect(addr, "localhost", ca_pem)?;
    let chain = stream.conn.peer_certificates().ok_or("no certificate")?;
    Ok(chain.first().ok_or("empty chain")?.to_vec())
}

/// Reads until the peer closes (EOF, reset, or a TLS alert); false if it is still open
/// after `timeout`. Whatever arrives meanwhile is discarded.
pub fn tls_closed_within(stream: &mut TlsStream, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    stream.sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buffer = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// `rtmp_edge_connections_closed_total{reason="REASON"}` from the relay's `/metrics` (it
/// needs `http_listen`): how many connections closed for that reason.
pub fn closes_counted(relay: &RelayHandle, reason: &str) -> u64 {
    let addr = relay.http_addr().expect("closes_counted needs http_listen");
    let metrics = http::get(addr, "/metrics", None).text();
    let prefix = format!("rtmp_edge_connections_closed_total{{reason=\"{reason}\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&prefix)).map_or(0, |count| count.trim().parse().unwrap())
}

/// Writes `bytes` as TLS application data, in as few records as rustls makes.
pub fn write_whole(stream: &mut TlsStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap();
    stream.flush().unwrap();
}

/// One TLS record per byte.
pub fn write_in_tiny_records(stream: &mut TlsStream, bytes: &[u8]) {
    for byte in bytes {
        stream.conn.writer().write_all(&[*byte]).unwrap();
        while stream.conn.wants_write() {
            stream.conn.write_tls(&mut stream.sock).unwrap();
        }
    }
}

/// The RTMP handshake, connect and play of `name` over TLS, each write made by `send`;
/// returns the session once the relay started the play.
pub fn play_over_tls(stream: &mut TlsStream, name: &str, send: fn(&mut TlsStream, &[u8])) -> Result<ClientSession, String> {
    let deadline = std::time::Instant::now() + EXCHANGE_TIMEOUT;
    let mut handshake = Handshake::new(HandshakeRole::Client, 0);
    send(stream, &handshake.start());
    let mut buffer = vec![0u8; 64 * 1024];
    let remaining = loop {
        let read = read_some(stream, &mut buffer, deadline)?;
        match handshake.process(&buffer[..read]).map_err(|e| e.to_string())? {
            HandshakeProgress::InProgress { response } => send(stream, &response),
            HandshakeProgress::Completed { response, remaining } => {
                send(stream, &response);
                break remaining;
            }
        }
    };
    let mut session = ClientSession::new(ClientSessionConfig::default());
    session.connect("live", "rtmps://localhost/live").map_err(|e| e.to_string())?;
    session.request_playback(name).map_err(|e| e.to_string())?;
    session.handle_input(&remaining).map_err(|e| e.to_string())?;
    loop {
        send(stream, &session.take_outbound());
        while let Some(event) = session.poll_event() {
            match event {
                ClientSessionEvent::PlaybackStarted { .. } => return Ok(session),
                ClientSessionEvent::RequestRejected { status, .. } => return Err(format!("rejected: {}", status.code)),
                _ => {}
            }
        }
        let read = read_some(stream, &mut buffer, deadline)?;
        session.handle_input(&buffer[..read]).map_err(|e| e.to_string())?;
    }
}

fn read_some(stream: &mut TlsStream, buffer: &mut [u8], deadline: std::time::Instant) -> Result<usize, String> {
    loop {
        if std::time::Instant::now() >= deadline {
            return Err("no answer in time".to_string());
        }
        match stream.read(buffer) {
            Ok(0) => return Err("closed by the relay".to_string()),
            Ok(read) => return Ok(read),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
