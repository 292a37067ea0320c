//! The sign-in page: `GET /login` shows the form, `POST /login` opens a session for a valid
//! token, `/logout` ends it.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use super::middleware::{credential_checked, locked_out, Caller, ClientAddress};
use super::sessions::{cookie, session_cookie, SESSION_COOKIE, SESSION_LIFETIME};
use super::throttle::Verdict;
use crate::api::ApiState;

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vaxlake: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;color:#111;background:#fff}
label{display:block;margin-bottom:.5rem}input{width:100%;padding:.5rem;font-size:1rem;border:1px solid #555}
button{margin-top:1rem;padding:.5rem 1.5rem;font-size:1rem;background:#0b4f8a;color:#fff;border:0}
p.error{color:#a00000}</style></head>
<body><main><h1>vaxlake</h1>
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="token">Access token / Jeton d'accès</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<button type="submit">Sign in / Se connecter</button>
</form>{{message}}</main></body></html>"#;

/// The cookie that pairs a sign-in form with the browser it was sent to (login CSRF: a page
/// elsewhere cannot read the form, so cannot post the value, and cannot set the cookie).
const FORM_COOKIE: &str = "vaxlake_login";

/// `GET /login`: the sign-in form.
#[utoipa::path(
    get,
    path = "/login",
    tag = "sign-in",
    security(()),
    responses((status = 200, description = "The sign-in form, paired with its browser by a cookie", content_type = "text/html")),
)]
pub(crate) async fn login_page(State(state): State<Arc<ApiState>>) -> Response {
    form(&state, StatusCode::OK, "")
}

/// The form with a fresh pairing value, in the page and in a cookie only `/login` sees.
fn form(state: &ApiState, status: StatusCode, message: &str) -> Response {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let pairing = super::users::hex(&bytes);
    let page = LOGIN_PAGE
        .replace("{{csrf}}", &pairing)
        .replace("{{message}}", message);
    let secure = if state.tls { "; Secure" } else { "" };
    let mut response = (status, Html(page)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{FORM_COOKIE}={pairing}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginForm {
    /// The bearer token.
    token: String,
    /// The pairing value of the form the browser was sent (`GET /login` sets it in the page
    /// and in a cookie; both must match).
    csrf: Option<String>,
}

/// `POST /login`: a valid token opens a session (cookie); a wrong one gets the form again
/// with 401.
#[utoipa::path(
    post,
    path = "/login",
    tag = "sign-in",
    security(()),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: the session cookie is set and the browser sent to `/`"),
        (status = 401, description = "Unknown token: the form again", content_type = "text/html"),
        (status = 403, description = "The form was not one this server sent this browser: the form again", content_type = "text/html"),
        (status = 429, description = "Too many wrong tokens from this address", body = crate::api::ErrorBody),
    ),
)]
pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    form_sent: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(config) = &state.auth else {
        return redirect_home();
    };
    let anonymous = |mut response: Response| {
        response.extensions_mut().insert(Caller::Anonymous);
        response
    };
    if let Verdict::LockedOut(left) = state.throttle.check(address, Instant::now()) {
        return anonymous(locked_out(left));
    }
    let Ok(axum::Form(sent)) = form_sent else {
        return anonymous(form(&state, StatusCode::BAD_REQUEST, MISSING));
    };
    let paired = sent
        .csrf
        .as_deref()
        .zip(cookie(&headers, FORM_COOKIE))
        .is_some_and(|(sent, kept)| !sent.is_empty() && sent == kept);
    if !paired {
        return anonymous(form(&state, StatusCode::FORBIDDEN, EXPIRED));
    }
    let matched = config.authenticate(sent.token.trim());
    credential_checked(&state, address, sent.token.trim(), matched.is_some());
    let Some(index) =
        matched.and_then(|matched| config.users().iter().position(|u| std::ptr::eq(u, matched)))
    else {
        return anonymous(form(&state, StatusCode::UNAUTHORIZED, UNKNOWN));
    };
    let cookie = state.sessions.start(index);
    let secure = if state.tls { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = redirect_home();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .extensions_mut()
        .insert(Caller::from(&config.users()[index]));
    response
}

const UNKNOWN: &str = "<p class=\"error\" role=\"alert\">Unknown token / Jeton inconnu.</p>";
const EXPIRED: &str = "<p class=\"error\" role=\"alert\">This form expired or was not sent by this server: sign in again / Formulaire expiré : reconnectez-vous.</p>";
const MISSING: &str =
    "<p class=\"error\" role=\"alert\">Paste your token / Collez votre jeton.</p>";

/// `GET|POST /logout`: ends the session and clears the cookie.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "sign-in",
    security(()),
    responses((status = 303, description = "Session ended, cookie cleared, browser sent to `/login`")),
)]
pub(crate) async fn logout(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(cookie) = session_cookie(&headers) {
        state.sessions.end(cookie);
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("vaxlake_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `GET /logout`, the sign-out link: the same as `POST /logout` (its own operation, because an
/// API description names each method's operation once).
#[utoipa::path(
    get,
    path = "/logout",
    tag = "sign-in",
    security(()),
    responses((status = 303, description = "Session ended, cookie cleared, browser sent to `/login`")),
)]
pub(crate) async fn logout_link(state: State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    logout(state, headers).await
}

fn redirect_home() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}
