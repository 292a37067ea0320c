//! Requests a browser could be tricked into sending, refused before the auth looks at them.
//!
//! - **DNS rebinding** (without `--auth` only): a page on `evil.example` whose name is made to
//!   resolve to 127.0.0.1 would be same-origin with a loopback server that answers any `Host`,
//!   and could read row-level data. Without `--auth` the server therefore answers only requests
//!   addressed to an IP literal or `localhost`: a rebinding page always sends its own name.
//!   With `--auth` a rebinding page has no token and no cookie (cookies follow the name), so a
//!   proxy's names are left alone.
//! - **Cross-site writes**: a `POST` that a browser sends on its own authority (without
//!   `--auth`, or with a session cookie rather than a bearer token, which no page can attach)
//!   must come from the server's own origin when it says where it comes from (`Origin`), and
//!   `/api/sql` must be JSON: a form or a `text/plain` body is what a page can send across
//!   origins without asking first (a JSON body needs a CORS preflight, which the server refuses
//!   to other origins). The CORS origins of `--cors-origin` count as the server's own.
//!
//! Every answer also carries headers that keep it out of frames and from being sniffed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::auth::middleware::bearer;

/// What the guard checks against besides the state: the other origins allowed by
/// `--cors-origin`.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) cors_origins: Arc<Vec<String>>,
}

/// The middleware: refuses rebinding and cross-site writes, then adds the security headers.
pub(crate) async fn guard(
    State((state, guard)): State<(Arc<ApiState>, Guard)>,
    request: Request,
    next: Next,
) -> Response {
    let open = state.auth.is_none();
    let headers = request.headers();
    let refusal = if open && !addressed_to_loopback_or_ip(headers) {
        Some(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "without --auth this server answers only requests addressed to localhost or an IP \
             address (the Host header names something else: a DNS-rebinding page?)",
        ))
    } else if request.method() == Method::POST && (open || bearer(headers).is_none()) {
        cross_site_refusal(headers, request.uri().path(), &guard.cors_origins)
    } else {
        None
    };
    let mut response = match refusal {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    };
    secure_headers(response.headers_mut());
    response
}

/// The headers every answer carries, unless the handler set its own (the dashboards set a
/// fuller content security policy).
fn secure_headers(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with every POST, which the
        // cross-site check above would refuse, the sign-in form's own included.
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
}

/// Whether the `Host` header names localhost or an IP literal (or is missing: no browser
/// sends a request without one).
fn addressed_to_loopback_or_ip(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(name, _)| name)
}

/// The refusal of a write a browser may have sent for another site, if it is one.
fn cross_site_refusal(
    headers: &HeaderMap,
    path: &str,
    cors_origins: &[String],
) -> Option<ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin.to_str().ok().is_some_and(|origin| {
            cors_origins.iter().any(|allowed| allowed == origin)
                || headers
                    .get(header::HOST)
                    .and_then(|host| host.to_str().ok())
                    .is_some_and(|host| origin_authority(origin) == Some(host))
        });
        if !same {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                "a request from another site's page is refused (its Origin is not this server)",
            ));
        }
    }
    if path == "/api/sql" && !is_json(headers) {
        return Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the query as JSON: Content-Type: application/json",
        ));
    }
    None
}

/// `http://host:port` → `host:port` (an opaque origin such as `null` has none).
fn origin_authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    (scheme == "http" || scheme == "https").then_some(rest.trim_end_matches('/'))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_loopback_names_and_ip_literals_reach_an_open_server() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::1]",
            "10.1.2.3",
        ] {
            assert!(
                addressed_to_loopback_or_ip(&headers(&[("host", host)])),
                "{host}"
            );
        }
        for host in [
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "sub.localhost",
        ] {
            assert!(
                !addressed_to_loopback_or_ip(&headers(&[("host", host)])),
                "{host}"
            );
        }
        assert!(addressed_to_loopback_or_ip(&HeaderMap::new()));
    }

    #[test]
    fn writes_from_other_origins_and_non_json_sql_are_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert!(cross_site_refusal(&ok, "/api/sql", &[]).is_none());
        // Same host, another port: same site, another origin.
        let other_port = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:3000"),
            ("content-type", "application/json"),
        ]);
        let refused = cross_site_refusal(&other_port, "/api/sql", &[]).unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(cross_site_refusal(&other_port, "/login", &[]).is_some());
        // Unless it is a CORS origin of the server.
        assert!(
            cross_site_refusal(&other_port, "/api/sql", &["http://127.0.0.1:3000".into()])
                .is_none()
        );
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(cross_site_refusal(&null, "/login", &[]).is_some());
        // A form or text/plain body to /api/sql, even without an Origin.
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let mut form = headers(&[("host", "127.0.0.1:8080")]);
            form.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            let refused = cross_site_refusal(&form, "/api/sql", &[]).unwrap();
            assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let no_type = headers(&[("host", "127.0.0.1:8080")]);
        assert!(cross_site_refusal(&no_type, "/api/sql", &[]).is_some());
        // The sign-in form is a form.
        assert!(cross_site_refusal(&no_type, "/login", &[]).is_none());
    }

    #[test]
    fn a_bearer_token_is_recognised_in_any_case() {
        assert!(bearer(&headers(&[("authorization", "Bearer vxl_x")])).is_some());
        assert!(bearer(&headers(&[("authorization", "bearer vxl_x")])).is_some());
        assert!(bearer(&headers(&[("authorization", "Basic eDp5")])).is_none());
        assert!(bearer(&HeaderMap::new()).is_none());
    }
}
