//! Who may drive the local API: the checks every request passes before a
//! handler runs, so a web page (DNS rebinding, cross-origin "simple"
//! requests) cannot read keys or change state, and a non-loopback API
//! needs a bearer token.
//!
//! - `Host` must be an IP literal, `localhost`, or a name given with
//!   `--api-host` (DNS rebinding sends the attacker's name).
//! - An `Origin` header, when present, must name an allowed host on this
//!   listener's own port (browsers send it on cross-origin requests).
//! - With a token configured, `Authorization: Bearer TOKEN` is required
//!   (compared in constant time), except for a `GET`/`HEAD` of the
//!   dashboard's static files under `/ui` ([`is_dashboard_asset`]): a
//!   browser cannot send that header when it opens a page, and the files
//!   hold nothing but the page itself (every request the page then makes
//!   carries the token).
//! - On the JSON API, every method but GET/HEAD needs
//!   `Content-Type: application/json`, except `PUT /v1/tables/...` which
//!   needs `application/octet-stream`: neither is a type a cross-origin
//!   form or fetch may send without a CORS preflight, which this API never
//!   grants.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_server::ApiCounters;

/// The access rules of one listener.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// Extra host names accepted in `Host`/`Origin` (lowercase, no trailing dot).
    hosts: Vec<String>,
    /// The bearer token every request must carry, if any.
    token: Option<String>,
    /// The listener's own port: the only port an allowed `Origin` may name.
    port: u16,
    /// The JSON API's method and content-type rules apply (not on the
    /// diagnostic listener, whose GETs change state as Docker's do).
    json_api: bool,
}

/// A refused request: the status and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub StatusCode, pub String);

impl AccessPolicy {
    /// Rules for the JSON API on `port`: extra allowed host names `hosts`
    /// (from `--api-host`) and an optional bearer token.
    pub fn api(hosts: &[String], token: Option<String>, port: u16) -> Self {
        AccessPolicy {
            hosts: hosts.iter().map(|h| normalize_name(h)).collect(),
            token,
            port,
            json_api: true,
        }
    }

    /// Rules for the diagnostic listener on `port`: Host and Origin only.
    pub fn diagnostic(hosts: &[String], port: u16) -> Self {
        AccessPolicy {
            json_api: false,
            ..AccessPolicy::api(hosts, None, port)
        }
    }

    /// True when `host` (no port) may appear in `Host` or `Origin`.
    pub fn host_allowed(&self, host: &str) -> bool {
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<Ipv6Addr>().is_ok();
        }
        if host.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = normalize_name(host);
        name == "localhost" || self.hosts.contains(&name)
    }

    /// Checks one request; `Ok` lets it through. Call before any handler.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        let forbidden = |m: String| Err(Refusal(StatusCode::FORBIDDEN, m));
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return forbidden("missing Host header".into());
        };
        match split_authority(host) {
            Some((h, _)) if self.host_allowed(h) => {}
            _ => return forbidden(format!(
                "Host {:?} is not allowed: use an IP address or localhost, or start the agent with --api-host NAME",
                crate::escape::esc(host).to_string()
            )),
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("");
            if !self.origin_allowed(text) {
                return forbidden(format!(
                    "cross-origin requests are refused (Origin {:?})",
                    crate::escape::esc(text).to_string()
                ));
            }
        }
        let public = self.json_api && is_dashboard_asset(method, path);
        if let Some(token) = self.token.as_ref().filter(|_| !public) {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer);
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                return Err(Refusal(
                    StatusCode::UNAUTHORIZED,
                    "this API needs Authorization: Bearer TOKEN (the CLI takes --token-file PATH or SWIMNET_API_TOKEN)".into(),
                ));
            }
        }
        if self.json_api && *method != Method::GET && *method != Method::HEAD {
            let wanted = if *method == Method::PUT && path.starts_with("/v1/tables/") {
                "application/octet-stream"
            } else {
                "application/json"
            };
            let given = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(media_type)
                .unwrap_or_default();
            if given != wanted {
                return Err(Refusal(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("{method} {path} needs Content-Type: {wanted}"),
                ));
            }
        }
        Ok(())
    }

    /// True for an `Origin` naming an allowed host on this listener's port.
    fn origin_allowed(&self, origin: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        match split_authority(authority) {
            Some((h, port)) => self.host_allowed(h) && port.unwrap_or(default_port) == self.port,
            None => false,
        }
    }
}

/// True for a `GET`/`HEAD` of the dashboard's page or one of its static
/// files (`/ui`, `/ui/...`): the only requests a configured token does not
/// cover. Host and Origin rules still apply to them.
pub fn is_dashboard_asset(method: &Method, path: &str) -> bool {
    (*method == Method::GET || *method == Method::HEAD)
        && (path == "/ui" || path.starts_with("/ui/"))
}

/// Lowercase, without a trailing dot.
fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when malformed.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (h, rest) = authority.split_at(end + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// The token of `Bearer TOKEN` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `type/subtype` of a Content-Type, lowercase, parameters dropped.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Compares without an early exit, so the time taken does not tell how
/// much of a guessed token was right (only whether the lengths match).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What the middleware needs: the rules, the counters, the request timeout.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The access rules.
    pub policy: Arc<AccessPolicy>,
    /// Where refusals and timeouts are counted.
    pub counters: Arc<ApiCounters>,
    /// Longest a request may take until its response starts (the body of a
    /// `watch` stream is not limited).
    pub request_timeout: Duration,
}

fn refusal_response(r: Refusal) -> Response {
    (r.0, axum::Json(serde_json::json!({ "error": r.1 }))).into_response()
}

/// Axum middleware: refuses what [`AccessPolicy::check`] refuses (counted
/// in `requests_refused`) and answers 408 for a request still unanswered
/// after the timeout (counted in `requests_timed_out`).
pub async fn enforce(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if let Err(r) = guard
        .policy
        .check(req.method(), req.uri().path(), req.headers())
    {
        guard
            .counters
            .requests_refused
            .fetch_add(1, Ordering::Relaxed);
        return refusal_response(r);
    }
    match tokio::time::timeout(guard.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            guard
                .counters
                .requests_timed_out
                .fetch_add(1, Ordering::Relaxed);
            refusal_response(Refusal(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request took over {} s",
                    guard.request_timeout.as_secs_f64()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn status(p: &AccessPolicy, m: Method, path: &str, h: &[(&str, &str)]) -> StatusCode {
        match p.check(&m, path, &headers(h)) {
            Ok(()) => StatusCode::OK,
            Err(Refusal(s, msg)) => {
                assert!(!msg.contains('\n'), "one line: {msg}");
                s
            }
        }
    }

    #[test]
    fn host_must_be_an_ip_localhost_or_configured() {
        let p = AccessPolicy::api(&["Agent.Example.".into()], None, 7380);
        for ok in [
            "127.0.0.1:7380",
            "127.0.0.1",
            "[::1]:7380",
            "localhost:7380",
            "LOCALHOST",
            "agent.example:7380",
            "10.1.2.3:80",
        ] {
            assert_eq!(
                status(&p, Method::GET, "/v1/keys", &[("host", ok)]),
                StatusCode::OK,
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "evil.example:7380",
            "localhost.evil.example",
            "127.0.0.1.nip.io:7380",
            "127.1:7380",
            "[evil]:7380",
            "",
            "a@127.0.0.1",
        ] {
            assert_eq!(
                status(&p, Method::GET, "/v1/keys", &[("host", bad)]),
                StatusCode::FORBIDDEN,
                "{bad}"
            );
        }
        assert_eq!(
            status(&p, Method::GET, "/v1/keys", &[]),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn foreign_origins_are_refused() {
        let p = AccessPolicy::api(&[], None, 7380);
        let h = ("host", "127.0.0.1:7380");
        let json = ("content-type", "application/json");
        for ok in ["http://127.0.0.1:7380", "http://localhost:7380"] {
            assert_eq!(
                status(&p, Method::POST, "/v1/leave", &[h, json, ("origin", ok)]),
                StatusCode::OK
            );
        }
        for bad in [
            "http://evil.example",
            "https://evil.example:7380",
            "null",
            "http://127.0.0.1:8080",
            "http://localhost",
            "file://",
            "ftp://127.0.0.1:7380",
        ] {
            assert_eq!(
                status(&p, Method::POST, "/v1/leave", &[h, json, ("origin", bad)]),
                StatusCode::FORBIDDEN,
                "{bad}"
            );
        }
    }

    #[test]
    fn state_changes_need_a_non_simple_content_type() {
        let p = AccessPolicy::api(&[], None, 7380);
        let h = ("host", "127.0.0.1:7380");
        let post = |ct: Option<&str>, m: Method, path: &str| {
            let mut hs = vec![h];
            if let Some(ct) = ct {
                hs.push(("content-type", ct));
            }
            status(&p, m, path, &hs)
        };
        let u = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        assert_eq!(post(Some("text/plain"), Method::POST, "/v1/leave"), u);
        assert_eq!(
            post(
                Some("application/x-www-form-urlencoded"),
                Method::POST,
                "/v1/leave"
            ),
            u
        );
        assert_eq!(
            post(
                Some("multipart/form-data; boundary=x"),
                Method::POST,
                "/v1/join"
            ),
            u
        );
        assert_eq!(post(None, Method::POST, "/v1/leave"), u);
        assert_eq!(post(None, Method::DELETE, "/v1/tables/n/t/k"), u);
        assert_eq!(
            post(
                Some("Application/JSON; charset=utf-8"),
                Method::POST,
                "/v1/leave"
            ),
            StatusCode::OK
        );
        assert_eq!(
            post(Some("application/json"), Method::DELETE, "/v1/tables/n/t/k"),
            StatusCode::OK
        );
        assert_eq!(
            post(Some("application/json"), Method::PUT, "/v1/tables/n/t/k"),
            u
        );
        assert_eq!(post(Some("text/plain"), Method::PUT, "/v1/tables/n/t/k"), u);
        assert_eq!(
            post(
                Some("application/octet-stream"),
                Method::PUT,
                "/v1/tables/n/t/k"
            ),
            StatusCode::OK
        );
        assert_eq!(post(None, Method::GET, "/v1/members"), StatusCode::OK);
        // The diagnostic listener keeps Docker's GETs and takes any body type.
        let d = AccessPolicy::diagnostic(&[], 8000);
        assert_eq!(
            status(&d, Method::POST, "/join", &[("host", "127.0.0.1:8000")]),
            StatusCode::OK
        );
        assert_eq!(
            status(&d, Method::GET, "/join", &[("host", "evil.example:8000")]),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn a_configured_token_is_required() {
        let p = AccessPolicy::api(&[], Some("s3cret-token".into()), 7380);
        let h = ("host", "127.0.0.1:7380");
        assert_eq!(
            status(&p, Method::GET, "/v1/members", &[h]),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(
                &p,
                Method::GET,
                "/v1/members",
                &[h, ("authorization", "Bearer s3cret-tokeN")]
            ),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(
                &p,
                Method::GET,
                "/v1/members",
                &[h, ("authorization", "Basic s3cret-token")]
            ),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(
                &p,
                Method::GET,
                "/v1/members",
                &[h, ("authorization", "bearer s3cret-token")]
            ),
            StatusCode::OK
        );
        // The dashboard's static files open without it (a browser cannot
        // send the header when it loads a page); nothing else does.
        assert_eq!(status(&p, Method::GET, "/ui", &[h]), StatusCode::OK);
        assert_eq!(status(&p, Method::GET, "/ui/app.js", &[h]), StatusCode::OK);
        for (m, path) in [
            (Method::POST, "/ui"),
            (Method::GET, "/uix"),
            (Method::GET, "/v1/events"),
            (Method::GET, "/v1/ui"),
        ] {
            assert_eq!(
                status(
                    &p,
                    m.clone(),
                    path,
                    &[h, ("content-type", "application/json")]
                ),
                StatusCode::UNAUTHORIZED,
                "{m} {path}"
            );
        }
        assert_eq!(
            status(&p, Method::GET, "/ui", &[("host", "evil.example:7380")]),
            StatusCode::FORBIDDEN
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
