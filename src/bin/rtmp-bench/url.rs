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

/// `http://HOST[:PORT]/APP/NAME.flv` for an HTTP-FLV or WebSocket-FLV player: where to
/// connect (as an [`RtmpUrl`] whose `stream` is the path), and the request to send.
pub fn parse_flv(text: &str, websocket: bool) -> Result<(RtmpUrl, Vec<u8>), String> {
    let rest = text.strip_prefix("http://").ok_or_else(|| format!("{text}: an HTTP-FLV URL starts with http://"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if path.is_empty() {
        return Err(format!("{text}: no path (/APP/NAME.flv)"));
    }
    let (host, port) = rtmp_edge::url::parse_host_port(authority, 80).map_err(|e| format!("{text}: {e}"))?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{text}: cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text}: {authority} resolves to nothing"))?;
    let upgrade = if websocket {
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: cnRtcC1iZW5jaC1rZXkxNg==\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: rtmp-bench\r\n{upgrade}\r\n").into_bytes();
    let url = RtmpUrl { addr, app: String::new(), stream: path.to_string(), tc_url: text.to_string(), tls_server_name: None };
    Ok((url, request))
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

    #[test]
    fn flv_urls_give_the_address_and_the_request() {
        let (url, request) = parse_flv("http://127.0.0.1:8080/live/x.flv?k=v", false).unwrap();
        assert_eq!((url.addr.port(), url.stream.as_str()), (8080, "/live/x.flv?k=v"));
        assert_eq!(request, b"GET /live/x.flv?k=v HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: rtmp-bench\r\n\r\n");
        let (_, upgrade) = parse_flv("http://127.0.0.1/live/x.flv", true).unwrap();
        assert!(String::from_utf8(upgrade).unwrap().contains("Upgrade: websocket\r\n"));
        assert!(parse_flv("rtmp://127.0.0.1/live/x", false).is_err());
        assert!(parse_flv("http://127.0.0.1", false).is_err());
    }
}
