//! `rtmp[s]://host[:port]/app/stream` as the load generator needs it: parsed by the
//! library's [`rtmp_edge::url::RtmpUrl`], resolved once up front.

use std::net::{SocketAddr, ToSocketAddrs};

use rtmp_edge::url::Scheme;

/// Where to connect and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Server address (resolved once, up front).
    pub addr: SocketAddr,
    /// Application: the first path segment, as nginx-rtmp and rtmp-edge read it.
    pub app: String,
    /// Stream name: the rest of the path, query string included.
    pub stream: String,
    /// `tcUrl`: the URL without the stream name.
    pub tc_url: String,
    /// For `rtmps://`: the host, as the TLS server name to send and verify.
    pub tls_server_name: Option<String>,
}

impl RtmpUrl {
    /// Parses and resolves `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<RtmpUrl, String> {
        let url = rtmp_edge::url::RtmpUrl::parse(text).map_err(|e| format!("{text}: {e}"))?;
        let stream = url.play_path().ok_or_else(|| format!("{text}: no stream name after the app"))?;
        let addr = (url.host(), url.port())
            .to_socket_addrs()
            .map_err(|e| format!("{text}: cannot resolve {}: {e}", url.authority()))?
            .next()
            .ok_or_else(|| format!("{text}: {} resolves to nothing", url.authority()))?;
        let tls_server_name = (url.scheme() == Scheme::Rtmps).then(|| url.host().to_string());
        Ok(RtmpUrl { addr, tc_url: url.tc_url(), app: url.app().to_string(), stream, tls_server_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_app_and_stream() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1:1940/live/cam/1?k=v").unwrap();
        assert_eq!(url.addr, "127.0.0.1:1940".parse().unwrap());
        assert_eq!(url.app, "live");
        assert_eq!(url.stream, "cam/1?k=v");
        assert_eq!(url.tc_url, "rtmp://127.0.0.1:1940/live");
        assert_eq!(RtmpUrl::parse("rtmp://127.0.0.1/live/x").unwrap().addr.port(), 1935);
        assert!(RtmpUrl::parse("http://127.0.0.1/live/x").is_err());
        assert!(RtmpUrl::parse("rtmp://127.0.0.1/live").is_err());
        assert_eq!(url.tls_server_name, None);
        let secure = RtmpUrl::parse("rtmps://localhost:1941/live/x").unwrap();
        assert_eq!(secure.tls_server_name.as_deref(), Some("localhost"));
        assert_eq!(secure.tc_url, "rtmps://localhost:1941/live");
        assert_eq!(RtmpUrl::parse("rtmps://127.0.0.1/live/x").unwrap().addr.port(), 443);
    }
}
