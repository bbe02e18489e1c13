//! Upstream addresses as operators write them: `--push` URLs and `--origin host:port`.

use std::fmt;

/// Where an upstream connection goes: `rtmp://HOST[:PORT]/APP[/NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address, resolved at connect time.
    pub host: String,
    /// TCP port (1935 when the URL has none).
    pub port: u16,
    /// Application.
    pub app: String,
    /// Stream name, when the URL names one.
    pub name: Option<String>,
}

impl RtmpUrl {
    /// Parses `rtmp://HOST[:PORT]/APP[/NAME]`.
    pub fn parse(text: &str) -> Result<RtmpUrl, String> {
        let rest = text
            .strip_prefix("rtmp://")
            .ok_or_else(|| format!("{text:?}: only rtmp:// URLs are supported"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| format!("{text:?}: no application in the URL"))?;
        let (host, port) = parse_host_port(authority, 1935)?;
        let (app, name) = match path.split_once('/') {
            Some((app, name)) if !name.is_empty() => (app.to_string(), Some(name.to_string())),
            Some((app, _)) => (app.to_string(), None),
            None => (path.to_string(), None),
        };
        if app.is_empty() {
            return Err(format!("{text:?}: empty application name"));
        }
        Ok(RtmpUrl { host, port, app, name })
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtmp://{}:{}/{}", self.host, self.port, self.app)?;
        if let Some(name) = &self.name {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

/// Splits `host:port` (or `[v6]:port`), with a default port.
pub fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("{text:?}: unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| format!("{text:?}: bad port"))?,
            None => default_port,
        };
        return Ok((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_string(), port.parse().map_err(|_| format!("{text:?}: bad port"))?)),
        None if text.is_empty() => Err("empty host".to_string()),
        None => Ok((text.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_name() {
        assert_eq!(
            RtmpUrl::parse("rtmp://example.com/live").unwrap(),
            RtmpUrl { host: "example.com".into(), port: 1935, app: "live".into(), name: None }
        );
        assert_eq!(
            RtmpUrl::parse("rtmp://127.0.0.1:1940/app/key?x=1").unwrap(),
            RtmpUrl { host: "127.0.0.1".into(), port: 1940, app: "app".into(), name: Some("key?x=1".into()) }
        );
        assert!(RtmpUrl::parse("http://x/live").is_err());
        assert!(RtmpUrl::parse("rtmp://host").is_err());
        assert_eq!(parse_host_port("[::1]:99", 1935).unwrap(), ("::1".to_string(), 99));
    }
}
