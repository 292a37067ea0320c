//! The sign-in page: `GET /login` shows the form, `POST /login` opens a session for a valid
//! token, `/logout` ends it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::middleware::Caller;
use super::sessions::{session_cookie, SESSION_COOKIE, SESSION_LIFETIME};
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
<label for="token">Access token / Jeton d'accès</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<button type="submit">Sign in / Se connecter</button>
</form>{{message}}</main></body></html>"#;

/// `GET /login`: the sign-in form.
#[utoipa::path(
    get,
    path = "/login",
    tag = "sign-in",
    security(()),
    responses((status = 200, description = "The sign-in form", content_type = "text/html")),
)]
pub(crate) async fn login_page() -> Html<String> {
    Html(LOGIN_PAGE.replace("{{message}}", ""))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginForm {
    /// The bearer token.
    token: String,
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
    ),
)]
pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(config) = &state.auth else {
        return redirect_home();
    };
    let user = form.ok().and_then(|axum::Form(form)| {
        let matched = config.authenticate(form.token.trim())?;
        config.users().iter().position(|u| std::ptr::eq(u, matched))
    });
    let Some(index) = user else {
        let page = LOGIN_PAGE.replace(
            "{{message}}",
            "<p class=\"error\" role=\"alert\">Unknown token / Jeton inconnu.</p>",
        );
        let mut response = (StatusCode::UNAUTHORIZED, Html(page)).into_response();
        response.extensions_mut().insert(Caller::Anonymous);
        return response;
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
