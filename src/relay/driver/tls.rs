//! TLS settings for the driver: the RTMPS listener's certificate (re-read on reload), the
//! client side for `rtmps://` origins and pushes, and what a rustls error means as a
//! [`CloseReason`].
//!
//! TLS 1.2 and 1.3 only, with aws-lc-rs as the crypto provider (rustls's default, and at
//! least as fast as ring on AES-GCM where we measured; README, "RTMPS"). The provider is
//! named here rather than installed process-wide, so an embedder's own rustls default is
//! left alone.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
    SupportedProtocolVersion,
};

use super::super::core::CloseReason;
use super::super::Config;
use crate::url::{parse_origin, Scheme};

/// The protocol versions offered and accepted, both ways.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The TLS configurations in force. New connections take the current ones; a reload swaps
/// them, and live connections keep what they started with.
#[derive(Clone)]
pub struct TlsContext {
    /// For accepted RTMPS connections, when there is a TLS listener.
    server: Option<Arc<ServerConfig>>,
    /// For `rtmps://` upstreams; built when the configuration names one.
    client: Option<Arc<ClientConfig>>,
}

impl TlsContext {
    /// Loads what `config` asks for: the listener's certificate and key when `tls_listen`
    /// is set, the trusted roots when an origin or push is `rtmps://`. The error names the
    /// file and what is wrong with it.
    pub fn new(config: &Config) -> io::Result<TlsContext> {
        if config.tls_insecure_upstream {
            log::warn!(
                "--tls-insecure-upstream: certificates of rtmps:// origins and pushes are NOT verified; \
                 anyone on the path can read and change what goes upstream"
            );
        }
        let server = match config.tls_listen {
            Some(_) => Some(server_config(config).map_err(io::Error::other)?),
            None => None,
        };
        let client = match has_tls_upstream(config) {
            true => Some(client_config(config).map_err(io::Error::other)?),
            false => None,
        };
        Ok(TlsContext { server, client })
    }

    /// Whether the relay has a TLS listener whose certificate a reload re-reads.
    pub fn serves(&self) -> bool {
        self.server.is_some()
    }

    /// Re-reads the certificate and key (and the roots for upstreams) for `config`. On an
    /// error nothing changes and the error says why.
    pub fn reload(&mut self, config: &Config) -> Result<(), String> {
        let server = match (&self.server, &config.tls_cert) {
            (Some(_), Some(cert)) => {
                let loaded = server_config(config)?;
                log::info!("TLS certificate re-read from {}", cert.display());
                Some(loaded)
            }
            // tls-listen takes effect at the next start: keep serving what we serve.
            (server, _) => server.clone(),
        };
        let client = match has_tls_upstream(config) {
            true => Some(client_config(config)?),
            false => None,
        };
        self.server = server;
        self.client = client;
        Ok(())
    }

    /// A server connection for a newly accepted RTMPS peer.
    pub fn accept(&self) -> Result<ServerConnection, String> {
        let config = self.server.as_ref().ok_or("no TLS certificate loaded")?;
        ServerConnection::new(Arc::clone(config)).map_err(|error| error.to_string())
    }

    /// A client connection to the `rtmps://` upstream `server_name`.
    pub fn connect(&mut self, server_name: &str, config: &Config) -> Result<ClientConnection, String> {
        let client = match &self.client {
            Some(client) => Arc::clone(client),
            None => {
                let client = client_config(config)?;
                self.client = Some(Arc::clone(&client));
                client
            }
        };
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|error| format!("{server_name:?} is not a TLS server name: {error}"))?;
        ClientConnection::new(client, name).map_err(|error| error.to_string())
    }
}

fn has_tls_upstream(config: &Config) -> bool {
    let origin_tls = config.origins.iter().any(|origin| matches!(parse_origin(origin), Ok((Scheme::Rtmps, _, _))));
    origin_tls || config.push.iter().any(|url| url.scheme() == Scheme::Rtmps)
}

fn server_config(config: &Config) -> Result<Arc<ServerConfig>, String> {
    let (Some(cert_path), Some(key_path)) = (&config.tls_cert, &config.tls_key) else {
        return Err("tls-listen needs tls-cert and tls-key".to_string());
    };
    let chain = read_certificates(cert_path, "tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|error| format!("tls-key {}: no usable private key: {error}", key_path.display()))?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("tls-cert {} and tls-key {}: {error}", cert_path.display(), key_path.display()))?;
    // No TLS 1.3 session tickets after the handshake: librtmp (rtmpdump) over GnuTLS takes
    // the record they arrive in, which carries no data, for a failed read and gives up
    // during the RTMP handshake. RTMP connections are long-lived, so resumption is worth
    // little; TLS 1.2 session ids still resume.
    server.send_tls13_tickets = 0;
    Ok(Arc::new(server))
}

fn read_certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("{option} {}: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{option} {}: no PEM certificate in the file", path.display()));
    }
    Ok(certificates)
}

fn client_config(config: &Config) -> Result<Arc<ClientConfig>, String> {
    upstream_client_config(config.tls_ca.as_deref(), config.tls_insecure_upstream)
}

/// The TLS client configuration the relay uses for `rtmps://` upstreams (and rtmp-bench
/// for `rtmps://` URLs): TLS 1.2 and 1.3 with aws-lc-rs, verifying the server against the
/// CA certificates in the PEM file `ca` when given, else the system's trusted roots; or,
/// with `insecure`, accepting any certificate (the handshake signature is still checked).
pub fn upstream_client_config(ca: Option<&Path>, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(VERSIONS)
        .map_err(|error| error.to_string())?;
    let client = if insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider))).with_no_client_auth()
    } else {
        builder.with_root_certificates(trusted_roots(ca)?).with_no_client_auth()
    };
    Ok(Arc::new(client))
}

/// `--tls-ca FILE` when given (and only it), else the system's roots.
fn trusted_roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca {
        for certificate in read_certificates(path, "tls-ca")? {
            roots.add(certificate).map_err(|error| format!("tls-ca {}: {error}", path.display()))?;
        }
        return Ok(roots);
    }
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        log::warn!("reading the system's trusted certificates: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found on this system ({ignored} unusable): install ca-certificates \
             or name a CA file with --tls-ca"
        ));
    }
    log::debug!("{added} trusted root certificates loaded for rtmps:// upstreams");
    Ok(roots)
}

/// `--tls-insecure-upstream`: any certificate is taken, but the handshake signatures are
/// still checked, so the connection is at least with the holder of the key it presented.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a TLS connection failed, as the close reason that logs and counts it: a
/// certificate an upstream presented that did not verify, or anything else TLS refused
/// (a fatal alert the peer sent, a corrupt or undecryptable record, a protocol violation).
pub fn close_reason(error: &rustls::Error) -> CloseReason {
    match error {
        rustls::Error::InvalidCertificate(reason) => CloseReason::UpstreamCertificateRejected(format!("{reason:?}")),
        rustls::Error::AlertReceived(alert) => CloseReason::TlsFailed(format!("peer sent the fatal alert {alert:?}")),
        other => CloseReason::TlsFailed(other.to_string()),
    }
}

/// The reason for a TLS port's connection whose first byte is not a TLS handshake record.
pub fn not_tls(first_byte: u8) -> CloseReason {
    CloseReason::TlsFailed(match first_byte {
        3 => "the first byte is 0x03, the RTMP version: plain RTMP sent to the TLS port".to_string(),
        other => format!("the first byte is 0x{other:02x}, not a TLS handshake record (0x16)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_become_close_reasons_that_name_the_alert() {
        let alert = close_reason(&rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA));
        assert_eq!(alert, CloseReason::TlsFailed("peer sent the fatal alert UnknownCA".to_string()));
        let certificate = close_reason(&rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        assert_eq!(certificate, CloseReason::UpstreamCertificateRejected("UnknownIssuer".to_string()));
        assert_eq!(certificate.label(), "upstream_certificate_rejected");
        assert!(not_tls(3).to_string().contains("plain RTMP sent to the TLS port"));
        assert_eq!(not_tls(0x47).label(), "tls_failed");
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("rtmp-edge-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let config = Config {
            tls_listen: Some("127.0.0.1:0".parse().unwrap()),
            tls_cert: Some(empty.clone()),
            tls_key: Some(dir.join("missing-key.pem")),
            ..Config::default()
        };
        let error = TlsContext::new(&config).err().unwrap().to_string();
        assert!(error.contains("tls-cert") && error.contains("empty.pem") && error.contains("no PEM certificate"), "{error}");
        let config = Config { tls_ca: Some(dir.join("missing-ca.pem")), origins: vec!["rtmps://h".into()], ..Config::default() };
        let error = TlsContext::new(&config).err().unwrap().to_string();
        assert!(error.contains("tls-ca") && error.contains("missing-ca.pem"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
