//! Which endpoint a request is for, and whether it needs the token.
//!
//! HTTP-FLV and WebSocket-FLV players (a later issue) get their route here too, e.g.
//! `GET /APP/NAME.flv`: [`Route`] would name the stream, and the core would turn the
//! connection into a player of it instead of answering (see `core/http_conn.rs`).

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
        !matches!(self, Route::StatusPage | Route::Healthz | Route::NotFound | Route::MethodNotAllowed { .. })
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
        "/metrics" => only_get(Route::Metrics),
        "/api/v1/summary" => only_get(Route::Summary),
        "/api/v1/streams" => only_get(Route::Streams),
        "/api/v1/clients" => only_get(Route::Clients),
        "/api/v1/reload" => match request.method {
            Method::Post => Route::Reload,
            _ => Route::MethodNotAllowed { allow: "POST" },
        },
        path => match path.strip_prefix(CLIENTS_PREFIX).map(str::parse::<u64>) {
            Some(Ok(id)) if request.method == Method::Delete => Route::Kick(id),
            Some(Ok(_)) => Route::MethodNotAllowed { allow: "DELETE" },
            _ => Route::NotFound,
        },
    }
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
        assert_eq!(route(&request(Method::Get, "/live/s.flv", None)), Route::NotFound);
        assert!(!Route::Healthz.needs_token() && Route::Metrics.needs_token() && Route::Kick(1).needs_token());
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
