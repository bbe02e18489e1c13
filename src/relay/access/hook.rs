//! HTTP hooks: what the relay POSTs (`HookPayload`, JSON), where (`HookUrl`, `http://`
//! only), and what an answer means (`HookOutcome` -> `HookVerdict`). Sending is the
//! driver's (a bounded pool of worker threads); this module only builds and reads.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

pub use super::MAX_FIELD_BYTES;

/// What a hook request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookAction {
    /// A client's `connect`.
    Connect,
    /// A `publish`.
    Publish,
    /// A `play`.
    Play,
    /// An allowed publish ended (fire-and-forget).
    PublishDone,
    /// An allowed play ended (fire-and-forget).
    PlayDone,
}

impl HookAction {
    /// The `action` field, and the metrics label.
    pub fn label(self) -> &'static str {
        match self {
            HookAction::Connect => "connect",
            HookAction::Publish => "publish",
            HookAction::Play => "play",
            HookAction::PublishDone => "publish_done",
            HookAction::PlayDone => "play_done",
        }
    }

    /// Whether the relay waits for the answer (connect, publish, play) or only tells.
    pub fn is_decision(self) -> bool {
        matches!(self, HookAction::Connect | HookAction::Publish | HookAction::Play)
    }
}

/// Where hooks go: `http://HOST[:PORT][/PATH][?QUERY]`.
///
/// ```
/// use rtmp_edge::relay::access::HookUrl;
///
/// let url: HookUrl = "http://127.0.0.1:8080/rtmp/auth?site=a".parse().unwrap();
/// assert_eq!((url.host(), url.port(), url.target()), ("127.0.0.1", 8080, "/rtmp/auth?site=a"));
/// assert!("https://auth.example/".parse::<HookUrl>().is_err());
/// assert!("http://auth.example/a\r\nX-Injected: 1".parse::<HookUrl>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUrl {
    text: String,
    host: String,
    port: u16,
    host_header: String,
    target: String,
}

impl HookUrl {
    /// The host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 unless the URL names one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: the path and query, `/` at least.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `Host` header's value, as the URL wrote the authority.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }
}

impl fmt::Display for HookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for HookUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<HookUrl, String> {
        // Everything here ends up in the request head: no spaces, no control characters,
        // nothing outside ASCII, so nothing can split or add a header line.
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("hook URL {text:?} must be printable ASCII without spaces"));
        }
        let Some(rest) = text.strip_prefix("http://").or_else(|| {
            text.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("http://")).and_then(|_| text.get(7..))
        }) else {
            return Err(format!(
                "hook URL {text:?} must start with http:// (TLS is not supported: reach the hook server over a private network or a local proxy)"
            ));
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(format!("hook URL {text:?}: user names and passwords in the URL are not supported"));
        }
        let (host, port) =
            crate::url::parse_host_port(authority, 80).map_err(|error| format!("hook URL {text:?}: {error}"))?;
        if host.is_empty() {
            return Err(format!("hook URL {text:?} names no host"));
        }
        let target = target.split('#').next().unwrap_or_default();
        let target = if target.is_empty() {
            "/".to_string()
        } else if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        Ok(HookUrl { text: text.to_string(), host, port, host_header: authority.to_string(), target })
    }
}

/// The JSON object POSTed for every event. Field order is the order on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookPayload {
    /// `connect`, `publish`, `play`, `publish_done` or `play_done`.
    pub action: &'static str,
    /// How the client came: `rtmp`, `rtmps`, `http-flv` or `ws-flv`.
    pub protocol: &'static str,
    /// The connection's id, as the API's `client_id`.
    pub client_id: u64,
    /// The client's address.
    pub ip: String,
    /// The application the client connected to.
    pub app: String,
    /// The stream name without its query (empty for `connect`).
    pub stream: String,
    /// The query string, `?` included, or empty (for `connect`: the app's query).
    pub param: String,
    /// The `tcUrl` of the client's connect (empty when it sent none).
    pub tc_url: String,
    /// The `pageUrl` of the client's connect, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// This relay's id (the node id of the API's summary).
    pub server_id: String,
    /// For `*_done`: how long the publish or play lasted, and the connection's byte counts.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub done: Option<DoneFields>,
}

/// The fields `publish_done` and `play_done` add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DoneFields {
    /// Since the publish or play was allowed.
    pub duration_ms: u64,
    /// Bytes read from the connection so far.
    pub bytes_in: u64,
    /// Bytes written to the connection so far.
    pub bytes_out: u64,
}

impl HookPayload {
    /// Whether every peer-controlled field fits [`MAX_FIELD_BYTES`].
    pub fn fits(&self) -> bool {
        let page_url = self.page_url.as_deref().unwrap_or_default();
        [&self.app, &self.stream, &self.param, &self.tc_url].iter().all(|field| field.len() <= MAX_FIELD_BYTES)
            && page_url.len() <= MAX_FIELD_BYTES
    }

    /// The request body.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail; an empty object would be denied.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// One HTTP call for the driver's hook workers to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    /// Where to POST.
    pub url: HookUrl,
    /// The JSON body.
    pub body: String,
    /// The whole call (connect, send, answer) must fit in this.
    pub timeout: Duration,
    /// What it is about; decisions go before notifications.
    pub action: HookAction,
}

/// What came of a hook call, as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// The hook server answered (status code and body, the body bounded in size).
    Answered {
        /// HTTP status code.
        status: u16,
        /// The body, de-chunked.
        body: Vec<u8>,
    },
    /// No complete answer within the timeout.
    TimedOut,
    /// The call failed: no connection, a broken or oversized answer.
    Failed(String),
}

/// What an outcome means for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookVerdict {
    /// 2xx with an empty body, `0` or `{"code":0}`.
    Allow,
    /// The hook said no; why, for logs and the client.
    Deny(String),
    /// No usable answer (down, slow, broken): `--hook-fail` decides.
    Unavailable {
        /// The call timed out (rather than failing otherwise).
        timed_out: bool,
        /// Why, for logs.
        why: String,
    },
}

impl HookOutcome {
    /// The verdict, as SRS and nginx-rtmp answers read: a 2xx with an empty body, `0`, or a
    /// JSON object whose `code` is 0 allows; a non-zero `code`, any other 2xx body, and any
    /// other status deny. But 502, 503 and 504 are a proxy or balancer saying the hook server
    /// behind it is down or slow, not the hook's answer: `--hook-fail` decides, as when the
    /// relay reaches no server itself.
    pub fn verdict(&self) -> HookVerdict {
        match self {
            HookOutcome::Answered { status, body } if (200..300).contains(status) => read_body(body),
            HookOutcome::Answered { status: status @ 502..=504, .. } => {
                HookVerdict::Unavailable { timed_out: *status == 504, why: format!("hook unavailable: HTTP {status}") }
            }
            HookOutcome::Answered { status, .. } => HookVerdict::Deny(format!("hook answered HTTP {status}")),
            HookOutcome::TimedOut => HookVerdict::Unavailable { timed_out: true, why: "hook did not answer in time".to_string() },
            HookOutcome::Failed(why) => HookVerdict::Unavailable { timed_out: false, why: format!("hook call failed: {why}") },
        }
    }
}

fn read_body(body: &[u8]) -> HookVerdict {
    let text = body.trim_ascii();
    if text.is_empty() || text == b"0" {
        return HookVerdict::Allow;
    }
    let code = serde_json::from_slice::<serde_json::Value>(text)
        .ok()
        .and_then(|value| value.as_object().and_then(|object| object.get("code")).cloned());
    match code {
        Some(code) if code.as_i64() == Some(0) || code.as_u64() == Some(0) => HookVerdict::Allow,
        Some(code) if code.is_number() => HookVerdict::Deny(format!("hook answered code {code}")),
        _ => HookVerdict::Deny("hook answered 2xx with a body that is not empty, 0 or {\"code\":N}".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, body: &str) -> HookVerdict {
        HookOutcome::Answered { status, body: body.as_bytes().to_vec() }.verdict()
    }

    #[test]
    fn answers_read_as_srs_and_nginx_rtmp_do() {
        assert_eq!(answered(200, ""), HookVerdict::Allow);
        assert_eq!(answered(204, ""), HookVerdict::Allow);
        assert_eq!(answered(200, " 0\n"), HookVerdict::Allow);
        assert_eq!(answered(200, "{\"code\":0}"), HookVerdict::Allow);
        assert_eq!(answered(200, "{\"code\": 0, \"data\": {\"x\": 1}}"), HookVerdict::Allow);
        assert_eq!(answered(200, "{\"code\":1}"), HookVerdict::Deny("hook answered code 1".to_string()));
        assert_eq!(answered(200, "{\"code\":-3}"), HookVerdict::Deny("hook answered code -3".to_string()));
        assert_eq!(answered(200, "{\"code\":0.5}"), HookVerdict::Deny("hook answered code 0.5".to_string()));
        for body in ["{\"code\":\"0\"}", "{}", "[0]", "ok", "1", "{\"code\":0", "\u{0}"] {
            assert!(matches!(answered(200, body), HookVerdict::Deny(_)), "{body:?} must deny");
        }
        assert_eq!(answered(403, ""), HookVerdict::Deny("hook answered HTTP 403".to_string()));
        assert_eq!(answered(302, ""), HookVerdict::Deny("hook answered HTTP 302".to_string()));
        assert_eq!(answered(500, "{\"code\":0}"), HookVerdict::Deny("hook answered HTTP 500".to_string()));
        // A gateway saying the hook server is down or slow: --hook-fail decides.
        for status in [502u16, 503, 504] {
            assert!(
                matches!(answered(status, ""), HookVerdict::Unavailable { timed_out, .. } if timed_out == (status == 504)),
                "{status}"
            );
        }
        assert!(matches!(HookOutcome::TimedOut.verdict(), HookVerdict::Unavailable { timed_out: true, .. }));
        assert!(matches!(HookOutcome::Failed("refused".into()).verdict(), HookVerdict::Unavailable { timed_out: false, .. }));
    }

    #[test]
    fn the_payload_has_exactly_the_documented_fields_in_order() {
        let mut payload = HookPayload {
            action: "play",
            protocol: "rtmp",
            client_id: 4294967300,
            ip: "127.0.0.1".to_string(),
            app: "live".to_string(),
            stream: "cam\"1".to_string(),
            param: "?token=a&b=c".to_string(),
            tc_url: "rtmp://127.0.0.1:1935/live".to_string(),
            page_url: None,
            server_id: "00ff".to_string(),
            done: None,
        };
        assert_eq!(
            payload.to_json(),
            r#"{"action":"play","protocol":"rtmp","client_id":4294967300,"ip":"127.0.0.1","app":"live","stream":"cam\"1","param":"?token=a&b=c","tc_url":"rtmp://127.0.0.1:1935/live","server_id":"00ff"}"#
        );
        payload.action = "play_done";
        payload.page_url = Some("http://example/page".to_string());
        payload.done = Some(DoneFields { duration_ms: 1500, bytes_in: 3, bytes_out: 4 });
        assert_eq!(
            payload.to_json(),
            r#"{"action":"play_done","protocol":"rtmp","client_id":4294967300,"ip":"127.0.0.1","app":"live","stream":"cam\"1","param":"?token=a&b=c","tc_url":"rtmp://127.0.0.1:1935/live","page_url":"http://example/page","server_id":"00ff","duration_ms":1500,"bytes_in":3,"bytes_out":4}"#
        );
        assert!(payload.fits());
        payload.stream = "x".repeat(MAX_FIELD_BYTES + 1);
        assert!(!payload.fits());
    }

    #[test]
    fn hook_urls_are_http_with_a_clean_head() {
        let url: HookUrl = "http://[::1]:9000".parse().unwrap();
        assert_eq!((url.host(), url.port(), url.target(), url.host_header()), ("::1", 9000, "/", "[::1]:9000"));
        let url: HookUrl = "HTTP://auth.example?x=1#frag".parse().unwrap();
        assert_eq!((url.host(), url.port(), url.target()), ("auth.example", 80, "/?x=1"));
        for bad in ["", "auth.example/hook", "https://a/", "http://", "http:///x", "http://u:p@a/", "http://a:0/", "http://a b/", "http://a/\u{e9}", "http://a/x\ny"] {
            assert!(bad.parse::<HookUrl>().is_err(), "{bad:?} must be refused");
        }
    }
}
