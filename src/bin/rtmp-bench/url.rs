//! `rtmp://host[:port]/app/stream` as the load generator needs it.

use std::net::{SocketAddr, ToSocketAddrs};

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
}

impl RtmpUrl {
    /// Parses (with the relay's own URL parser) and resolves `text`; the error says what
    /// is wrong with it.
    pub fn parse(text: &str) -> Result<RtmpUrl, String> {
        let url = rtmp_edge::relay::RtmpUrl::parse(text)?;
        let stream = url.name.filter(|name| !name.is_empty()).ok_or_else(|| format!("{text}: no stream name after the app"))?;
        let authority = format!("{}:{}", url.host, url.port);
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("{text}: cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{text}: {authority} resolves to nothing"))?;
        Ok(RtmpUrl { addr, tc_url: format!("rtmp://{authority}/{}", url.app), app: url.app, stream })
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
    }
}
