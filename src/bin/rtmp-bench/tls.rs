//! `rtmps://` for the load generator: the relay's own TLS client settings (rustls with
//! aws-lc-rs), so a TLS run measures the server's encryption against the same client
//! stack on every player.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// The client settings for `rtmps://` URLs: verified against `ca` (PEM) or the system's
/// roots, or not at all with `insecure`.
pub fn client_config(ca: Option<&str>, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    rtmp_edge::relay::upstream_client_config(ca.map(Path::new), insecure)
}

/// A new client connection to `server_name`.
pub fn connect(config: &Arc<ClientConfig>, server_name: &str) -> Result<ClientConnection, String> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| format!("{server_name:?}: {e}"))?;
    ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())
}

/// Plain TCP, or TLS over it: reads and writes plaintext either way. With TLS, records
/// that did not fit into the socket stay in rustls until [`flush_pending`] sends them.
pub fn read<S: Read + Write>(tls: Option<&mut ClientConnection>, socket: &mut S, buffer: &mut [u8]) -> io::Result<usize> {
    match tls {
        Some(conn) => rustls::Stream::new(conn, socket).read(buffer),
        None => socket.read(buffer),
    }
}

/// See [`read`]: writes plaintext, encrypted when `tls` is given.
pub fn write<S: Read + Write>(tls: Option<&mut ClientConnection>, socket: &mut S, bytes: &[u8]) -> io::Result<usize> {
    match tls {
        Some(conn) => rustls::Stream::new(conn, socket).write(bytes),
        None => socket.write(bytes),
    }
}

/// Sends records rustls still holds; Ok(true) when none are left.
pub fn flush_pending<S: Write>(tls: Option<&mut ClientConnection>, socket: &mut S) -> io::Result<bool> {
    let Some(conn) = tls else { return Ok(true) };
    while conn.wants_write() {
        match conn.write_tls(socket) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}
