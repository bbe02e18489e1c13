//! Encrypts and decrypts `MIB` MiB of 4 KiB RTMP-chunk-sized writes through a rustls
//! server and client in memory, per TLS 1.3 cipher suite, and prints MB per second of
//! this thread's CPU time (from /proc/thread-self/schedstat, so other work on a shared
//! machine does not count) for each side. Built once per provider (`--features aws` or
//! `--features ring`).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

#[cfg(feature = "aws")]
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
#[cfg(feature = "ring")]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}


/// Time this thread has spent on a CPU.
fn cpu_time() -> std::time::Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let nanos: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    std::time::Duration::from_nanos(nanos)
}

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let cert_der: CertificateDer<'static> = cert.der().clone();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let all = provider();
    let name = if cfg!(feature = "aws") { "aws-lc-rs" } else { "ring" };
    for suite in all.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS13) {
        let mut only = provider();
        only.cipher_suites = vec![*suite];
        let only = Arc::new(only);
        let server_config = ServerConfig::builder_with_provider(only.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der.clone_key())
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert_der.clone()).unwrap();
        let client_config = ClientConfig::builder_with_provider(only)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut client =
            ClientConnection::new(Arc::new(client_config), ServerName::try_from("localhost").unwrap()).unwrap();
        let mut wire = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            wire.clear();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        let chunk = vec![0x5au8; 4096];
        let total = mib * 1024 * 1024;
        let mut encrypt = std::time::Duration::ZERO;
        let mut decrypt = std::time::Duration::ZERO;
        let mut plain = vec![0u8; 64 * 1024];
        let mut sent = 0;
        // Batches of 1 MiB (cache-sized), each encrypted whole and then decrypted whole, so the two
        // clock readings per phase cost nothing next to the work between them.
        while sent < total {
            let started = cpu_time();
            wire.clear();
            for _ in 0..32 {
                // 8 chunks (32 KiB) per flush: about what one writable event hands rustls.
                for _ in 0..8 {
                    server.writer().write_all(&chunk).unwrap();
                }
                server.write_tls(&mut wire).unwrap();
            }
            sent += 32 * 8 * chunk.len();
            encrypt += cpu_time() - started;
            let started = cpu_time();
            let mut input = wire.as_slice();
            while !input.is_empty() {
                client.read_tls(&mut input).unwrap();
                client.process_new_packets().unwrap();
                while let Ok(n) = client.reader().read(&mut plain) {
                    if n == 0 {
                        break;
                    }
                }
            }
            decrypt += cpu_time() - started;
        }
        let mb = total as f64 / 1e6;
        println!(
            "{name} {:?}: encrypt {:.0} MB/s, decrypt {:.0} MB/s (per CPU second)",
            suite.suite(),
            mb / encrypt.as_secs_f64(),
            mb / decrypt.as_secs_f64()
        );
    }
}
