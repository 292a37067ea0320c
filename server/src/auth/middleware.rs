//! The auth middleware: who is calling (a bearer token or a session cookie), and the
//! refusal (401/403, or the sign-in form for a browser's page) when their role may not use
//! the path.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::rules::{access, Access};
use super::sessions::session_cookie;
use super::throttle::{self, Verdict};
use super::users::{Role, User};
use crate::api::audit_layer::CallerSlot;
use crate::api::{ApiError, ApiState};

/// Who made a request, as handlers and the audit see it.
#[derive(Debug, Clone)]
pub enum Caller {
    /// `serve` without `--auth` (loopback only): everything is allowed.
    Unauthenticated,
    /// A signed-in user.
    User {
        name: String,
        role: Role,
        project: Option<String>,
    },
    /// No valid token or session (only open endpoints answer).
    Anonymous,
}

impl From<&User> for Caller {
    /// The signed-in user, as every door records and checks them.
    fn from(user: &User) -> Self {
        Caller::User {
            name: user.name.clone(),
            role: user.role,
            project: user.project.clone(),
        }
    }
}

impl Caller {
    /// Whether operators' details may be shown (health, status).
    pub fn is_operator(&self) -> bool {
        matches!(
            self,
            Caller::Unauthenticated
                | Caller::User {
                    role: Role::Operator,
                    ..
                }
        )
    }

    /// The name recorded in the audit.
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::User { name, .. } => Some(name),
            Caller::Unauthenticated | Caller::Anonymous => None,
        }
    }

    /// The role recorded in the audit.
    pub fn role(&self) -> &'static str {
        match self {
            Caller::User { role, .. } => role.as_str(),
            Caller::Unauthenticated => "unauthenticated",
            Caller::Anonymous => "anonymous",
        }
    }
}

/// Whether the request is a browser's page navigation (a GET of a page, not of the API,
/// asking for HTML): only these are sent to the sign-in form instead of a 401.
fn is_page_navigation(request: &Request) -> bool {
    request.method() == axum::http::Method::GET
        && !request.uri().path().starts_with("/api/")
        && request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.to_ascii_lowercase().contains("text/html"))
}

/// The bearer token a request presents, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
/// The auth middleware: finds the caller, refuses with 401/403 and a JSON reason, and hands
/// the caller to handlers (and to the audit, through the response) as an extension.
pub(crate) async fn authorize(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = client_address(&request);
    request.extensions_mut().insert(ClientAddress(address));
    let Some(config) = &state.auth else {
        if let Some(slot) = request.extensions().get::<CallerSlot>() {
            slot.set(Caller::Unauthenticated);
        }
        request.extensions_mut().insert(Caller::Unauthenticated);
        let mut response = next.run(request).await;
        response.extensions_mut().insert(Caller::Unauthenticated);
        return response;
    };
    let headers = request.headers();
    let presented = presents_credential(headers);
    // Only tokens are throttled: a session cookie is 256 random bits, not worth guessing, and
    // a browser whose session expired sends its stale cookie with every request of a page.
    let token_presented = bearer(headers).is_some();
    if token_presented {
        if let Verdict::LockedOut(left) = state.throttle.check(address, Instant::now()) {
            if let Some(slot) = request.extensions().get::<CallerSlot>() {
                slot.set(Caller::Anonymous);
            }
            let mut response = locked_out(left);
            response.extensions_mut().insert(Caller::Anonymous);
            return response;
        }
    }
    let user = if let Some(token) = bearer(headers) {
        config.authenticate(token)
    } else if let Some(cookie) = session_cookie(headers) {
        state
            .sessions
            .user(cookie)
            .and_then(|index| config.users().get(index))
    } else {
        None
    };
    if let Some(token) = bearer(request.headers()) {
        credential_checked(&state, address, token, user.is_some());
    }
    let caller = user.map_or(Caller::Anonymous, Caller::from);
    // The audit learns the caller now, in case the answer never comes (a timeout, a client
    // that goes away, a panic).
    if let Some(slot) = request.extensions().get::<CallerSlot>() {
        slot.set(caller.clone());
    }
    let path = request.uri().path().to_string();
    let refusal = match (access(&path), &caller) {
        (Some(Access::Open), _) => None,
        (Some(access), Caller::User { role, .. }) if access.admits(*role) => None,
        (Some(_), Caller::User { role, .. }) => Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the {} role may not use {path}", role.as_str()),
        )),
        (None, Caller::User { .. }) => Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{path} is not an endpoint or page of this server"),
        )),
        (_, _) if presented => Some(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown or expired token or session; sign in again",
        )),
        (_, _) => Some(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: send Authorization: Bearer TOKEN (browsers: sign in at /login)",
        )),
    };
    let mut response = match refusal {
        // A browser opening a page without a session is sent to the sign-in form (an
        // extension of CONTRACTS.md's 401, for page navigations only: the API, scripts and
        // every request not asking for HTML get the 401 and its JSON reason).
        Some(error)
            if error.status() == StatusCode::UNAUTHORIZED && is_page_navigation(&request) =>
        {
            redirect_to_login()
        }
        Some(error) => error.into_response(),
        None => {
            request.extensions_mut().insert(caller.clone());
            next.run(request).await
        }
    };
    // A handler that learned better (the sign-in form, which opened a session) keeps its own.
    if response.extensions().get::<Caller>().is_none() {
        response.extensions_mut().insert(caller);
    }
    response
}

/// Whether a request presents a token or a session cookie, rightly or not.
pub(crate) fn presents_credential(headers: &HeaderMap) -> bool {
    bearer(headers).is_some() || session_cookie(headers).is_some()
}

/// The client's address, as handlers see it (the sign-in form's throttle).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddress(pub IpAddr);

/// The address the request came from (the unspecified address when the router runs without
/// a socket, as in unit tests). Behind a proxy this is the proxy's: put the throttle there.
pub(crate) fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Counts a credential checked for `address` in the wrong-token throttle, and logs a lockout
/// when this failure starts one.
pub(crate) fn credential_checked(state: &ApiState, address: IpAddr, token: &str, right: bool) {
    if right {
        state.throttle.succeeded(address);
    } else if let Some(lockout) = state.throttle.failed(address, token, Instant::now()) {
        tracing::warn!(
            client = %address,
            different_tokens = throttle::MAX_FAILURES,
            lockout_seconds = lockout.as_secs(),
            "too many wrong tokens from one address: locked out"
        );
    }
}

/// 429 with `Retry-After`: too many wrong tokens from this address.
pub(crate) fn locked_out(left: Duration) -> Response {
    let seconds = left.as_secs().max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many wrong tokens from your address: try again in {seconds} s"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn redirect_to_login() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response()
}
