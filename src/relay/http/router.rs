//! Which endpoint a request is for, and whether it needs the token.
//!
//! `GET /APP/NAME.flv` is a stream: the core turns the connection into an HTTP-FLV or
//! WebSocket-FLV player of it instead of answering (`core/http_play.rs`).

use super::request::{Method, Request};

/// An endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the status page.
    StatusPage,
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /api/v1/summary`: the relay as a whole.
    Summary,
    /// `GET /api/v1/streams`.
    Streams,
    /// `GET /api/v1/clients`.
    Clients,
    /// `DELETE /api/v1/clients/{id}`.
    Kick(u64),
    /// `POST /api/v1/reload`.
    Reload,
    /// `GET /APP/NAME.flv`: play a stream over HTTP-FLV, or WebSocket-FLV when the request
    /// is an upgrade. `HEAD` asks whether it is live; `OPTIONS` is a CORS preflight.
    Stream {
        /// The application (the first path segment, percent-decoded).
        app: String,
        /// The stream name (the rest, without `.flv`, percent-decoded).
        name: String,
    },
    /// `OPTIONS` on a stream: the CORS preflight answer.
    StreamPreflight,
    /// `GET /mpegts.js`: the player script the status page uses (vendored, compiled in).
    PlayerScript,
    /// A stream path that does not decode to a name (bad percent-encoding, control
    /// characters, an empty app or name).
    BadStreamPath,
    /// A known path asked with a method it does not take.
    MethodNotAllowed {
        /// The methods it takes, for the `Allow` header.
        allow: &'static str,
    },
    /// No such path.
    NotFound,
}

impl Route {
    /// Whether `--http-token`, when set, is required: everything but the page and the
    /// health check (the page asks for the token itself and sends it with its API calls).
    pub fn needs_token(&self) -> bool {
        !matches!(
            self,
            Route::StatusPage
                | Route::Healthz
                | Route::NotFound
                | Route::MethodNotAllowed { .. }
                | Route::Stream { .. }
                | Route::StreamPreflight
                | Route::PlayerScript
                | Route::BadStreamPath
        )
    }
}

const CLIENTS_PREFIX: &str = "/api/v1/clients/";

/// The route of a request. HEAD is taken wherever GET is.
pub fn route(request: &Request) -> Route {
    let read = matches!(request.method, Method::Get | Method::Head);
    let only_get = |route: Route| if read { route } else { Route::MethodNotAllowed { allow: "GET, HEAD" } };
    match request.path.as_str() {
        "/" | "/index.html" => only_get(Route::StatusPage),
        "/healthz" => only_get(Route::Healthz),
        "/mpegts.js" => only_get(Route::PlayerScript),
        "/metrics" => only_get(Route::Metrics),
        "/api/v1/summary" => only_get(Route::Summary),
        "/api/v1/streams" => only_get(Route::Streams),
        "/api/v1/clients" => only_get(Route::Clients),
        "/api/v1/reload" => match request.method {
            Method::Post => Route::Reload,
            _ => Route::MethodNotAllowed { allow: "POST" },
        },
        path if path.ends_with(STREAM_SUFFIX) && !path.starts_with("/api/") => match request.method {
            Method::Get | Method::Head => stream_route(path),
            Method::Other(ref other) if other == "OPTIONS" => Route::StreamPreflight,
            _ => Route::MethodNotAllowed { allow: "GET, HEAD, OPTIONS" },
        },
        path => match path.strip_prefix(CLIENTS_PREFIX).map(str::parse::<u64>) {
            Some(Ok(id)) if request.method == Method::Delete => Route::Kick(id),
            Some(Ok(_)) => Route::MethodNotAllowed { allow: "DELETE" },
            _ => Route::NotFound,
        },
    }
}

const STREAM_SUFFIX: &str = ".flv";

/// `/APP/NAME.flv` -> app and name: the app is the first segment, as in an RTMP URL, and the
/// name is the rest (it may hold slashes).
fn stream_route(path: &str) -> Route {
    let inner = path.strip_prefix('/').and_then(|p| p.strip_suffix(STREAM_SUFFIX)).unwrap_or_default();
    let Some((app, name)) = inner.split_once('/') else { return Route::BadStreamPath };
    match (percent_decode(app), percent_decode(name)) {
        (Some(app), Some(name)) if !app.is_empty() && !name.is_empty() => Route::Stream { app, name },
        _ => Route::BadStreamPath,
    }
}

/// Decodes `%XX` escapes; `None` for a broken escape, text that is not UTF-8, control
/// characters, or a `?` (which would be read as a query in the stream name).
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    let decoded = String::from_utf8(bytes).ok()?;
    (!decoded.chars().any(|c| c.is_control() || c == '?')).then_some(decoded)
}

/// Whether the request carries `Authorization: Bearer TOKEN`. The comparison takes the
/// same time wherever the first difference is, so the token cannot be guessed byte by byte.
pub fn has_bearer_token(request: &Request, token: &str) -> bool {
    let Some(value) = request.header("authorization") else { return false };
    let Some((scheme, presented)) = value.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    crate::relay::access::same_secret(token.as_bytes(), presented.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, authorization: Option<&str>) -> Request {
        Request {
            method,
            path: path.to_string(),
            query: String::new(),
            version_minor: 1,
            headers: authorization.map(|value| ("authorization".to_string(), value.to_string())).into_iter().collect(),
            keep_alive: true,
        }
    }

    #[test]
    fn paths_and_methods_map_to_routes() {
        assert_eq!(route(&request(Method::Get, "/", None)), Route::StatusPage);
        assert_eq!(route(&request(Method::Head, "/metrics", None)), Route::Metrics);
        assert_eq!(route(&request(Method::Get, "/api/v1/streams", None)), Route::Streams);
        assert_eq!(route(&request(Method::Delete, "/api/v1/clients/4294967297", None)), Route::Kick(4_294_967_297));
        assert_eq!(route(&request(Method::Get, "/api/v1/clients/7", None)), Route::MethodNotAllowed { allow: "DELETE" });
        assert_eq!(route(&request(Method::Delete, "/api/v1/clients/x", None)), Route::NotFound);
        assert_eq!(route(&request(Method::Get, "/api/v1/reload", None)), Route::MethodNotAllowed { allow: "POST" });
        assert_eq!(route(&request(Method::Post, "/metrics", None)), Route::MethodNotAllowed { allow: "GET, HEAD" });
        assert!(!Route::Healthz.needs_token() && Route::Metrics.needs_token() && Route::Kick(1).needs_token());
    }

    #[test]
    fn stream_paths_name_app_and_stream() {
        let stream = |app: &str, name: &str| Route::Stream { app: app.to_string(), name: name.to_string() };
        assert_eq!(route(&request(Method::Get, "/live/s.flv", None)), stream("live", "s"));
        assert_eq!(route(&request(Method::Head, "/live/cam/1.flv", None)), stream("live", "cam/1"));
        assert_eq!(route(&request(Method::Get, "/live/caf%C3%A9%20tv.flv", None)), stream("live", "café tv"));
        assert_eq!(route(&request(Method::Other("OPTIONS".into()), "/live/s.flv", None)), Route::StreamPreflight);
        assert_eq!(route(&request(Method::Post, "/live/s.flv", None)), Route::MethodNotAllowed { allow: "GET, HEAD, OPTIONS" });
        for bad in ["/s.flv", "/live/.flv", "//s.flv", "/live/%zz.flv", "/live/%0a.flv", "/live/a%3Fb.flv", "/live/%ff.flv", "/live/%4.flv"] {
            assert_eq!(route(&request(Method::Get, bad, None)), Route::BadStreamPath, "{bad}");
        }
        assert_eq!(route(&request(Method::Get, "/api/v1/x.flv", None)), Route::NotFound);
        assert_eq!(route(&request(Method::Get, "/mpegts.js", None)), Route::PlayerScript);
        assert!(!stream("a", "b").needs_token() && !Route::PlayerScript.needs_token());
    }

    #[test]
    fn the_bearer_token_must_match_exactly() {
        let with = |value| request(Method::Get, "/metrics", Some(value));
        assert!(has_bearer_token(&with("Bearer s3cret"), "s3cret"));
        assert!(has_bearer_token(&with("bearer s3cret"), "s3cret"));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "Bearer", "Bearer S3cret", "s3cret"] {
            assert!(!has_bearer_token(&with(wrong), "s3cret"), "{wrong}");
        }
        assert!(!has_bearer_token(&request(Method::Get, "/metrics", None), "s3cret"));
    }
}
