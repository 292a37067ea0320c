//! Who is calling and what their role may do (CONTRACTS.md, Access).
//!
//! Tokens are never stored: the auth file holds the BLAKE3 hash of each bearer token, and a
//! presented token is hashed and compared with every user's hash in constant time
//! (`blake3::Hash` equality), so neither the file nor the timing of a refusal gives a token
//! away. Browsers sign in once at `/login` with their token and get a random session cookie;
//! the server keeps only the cookie's hash, for 8 hours or until `/logout`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, ApiState};

/// How long a browser session lasts (CONTRACTS.md).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vaxlake_session";

/// What a user may do; the permission table is [`allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Analyst,
    Ministry,
    Researcher,
    Operator,
}

impl Role {
    /// The role's name as in the auth file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Ministry => "ministry",
            Role::Researcher => "researcher",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;
    fn from_str(text: &str) -> Result<Self, AuthError> {
        match text {
            "analyst" => Ok(Role::Analyst),
            "ministry" => Ok(Role::Ministry),
            "researcher" => Ok(Role::Researcher),
            "operator" => Ok(Role::Operator),
            other => Err(AuthError::Invalid(format!(
                "unknown role {other:?}: analyst, ministry, researcher or operator"
            ))),
        }
    }
}

/// One line of the auth file.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The one project whose extracts a researcher may fetch.
    pub project: Option<String>,
    token: blake3::Hash,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// Why the auth file or a token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the auth file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("auth file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    role: Role,
    token_blake3: String,
    project: Option<String>,
}

/// The users of `serve --auth FILE`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    users: Vec<User>,
}

impl AuthConfig {
    /// Reads and checks the auth file: unique names, 64-hex hashes, a project for every
    /// researcher (and only for researchers).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| AuthError::File {
            path: shown,
            reason,
        })
    }

    /// Parses the auth file's text; the error says which entry is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        // The TOML error quotes the offending line, which holds at most a token *hash*.
        let file: AuthFile = toml::from_str(text).map_err(|error| error.to_string())?;
        let mut users = Vec::with_capacity(file.user.len());
        for entry in file.user {
            let token = blake3::Hash::from_hex(entry.token_blake3.trim()).map_err(|_| {
                format!(
                    "user {:?}: token_blake3 must be 64 hex characters (the BLAKE3 hash of the token, as `vaxlake token new` prints it)",
                    entry.name
                )
            })?;
            if users.iter().any(|u: &User| u.name == entry.name) {
                return Err(format!("user {:?} appears twice", entry.name));
            }
            if users.iter().any(|u: &User| u.token == token) {
                return Err(format!(
                    "user {:?} has the same token as another user",
                    entry.name
                ));
            }
            match (entry.role, &entry.project) {
                (Role::Researcher, None) => {
                    return Err(format!(
                        "researcher {:?} needs project = \"...\"",
                        entry.name
                    ))
                }
                (Role::Researcher, Some(_)) | (_, None) => {}
                (role, Some(_)) => {
                    return Err(format!(
                        "user {:?}: only researchers have a project (role is {})",
                        entry.name,
                        role.as_str()
                    ))
                }
            }
            users.push(User {
                name: entry.name,
                role: entry.role,
                project: entry.project,
                token,
            });
        }
        if users.is_empty() {
            return Err("no [[user]] entries: nobody could sign in".into());
        }
        Ok(AuthConfig { users })
    }

    /// The user holding `token`. Every user's hash is compared (constant time each), so the
    /// time taken does not depend on which user, if any, matched.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        let presented = blake3::hash(token.as_bytes());
        let mut found = None;
        for user in &self.users {
            if user.token == presented {
                found = Some(user);
            }
        }
        found
    }

    /// The configured users (names, roles, projects; never tokens).
    pub fn users(&self) -> &[User] {
        &self.users
    }
}

/// A fresh bearer token and the hash to put in the auth file: 32 bytes from the operating
/// system's generator, hex-encoded with a `vxl_` prefix so that secret scanners find it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = format!("vxl_{}", hex(&bytes));
    let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
    (token, hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signed-in browsers: the hash of each session cookie, its user and its expiry.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], (usize, Instant)>>,
}

impl Sessions {
    fn start(&self, user: usize) -> String {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let cookie = hex(&bytes);
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, (_, expires)| *expires > now);
        open.insert(
            *blake3::hash(cookie.as_bytes()).as_bytes(),
            (user, now + SESSION_LIFETIME),
        );
        cookie
    }

    fn user(&self, cookie: &str) -> Option<usize> {
        let key = *blake3::hash(cookie.as_bytes()).as_bytes();
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(user, _)| *user)
    }

    fn end(&self, cookie: &str) {
        let key = *blake3::hash(cookie.as_bytes()).as_bytes();
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}

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

/// Who may call what: `None` when anyone may (health, sign-in), else the roles allowed.
pub fn allowed(path: &str) -> Option<&'static [Role]> {
    use Role::*;
    const ANALYSIS: &[Role] = &[Analyst, Ministry, Operator];
    if path == "/api/health" || path == "/login" || path == "/logout" {
        return None;
    }
    if path == "/api/sql" {
        return Some(&[Analyst]);
    }
    if path == "/api/audit" || path == "/api/status" || path.starts_with("/api/status/") {
        return Some(&[Operator]);
    }
    if path == "/api/extracts" || path.starts_with("/api/extracts/") {
        return Some(&[Researcher, Operator]);
    }
    // Coverage, effectiveness and the dashboards (every other page and asset).
    Some(ANALYSIS)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The auth middleware: finds the caller, refuses with 401/403 and a JSON reason, and hands
/// the caller to handlers (and to the audit, through the response) as an extension.
pub(crate) async fn authorize(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(config) = &state.auth else {
        request.extensions_mut().insert(Caller::Unauthenticated);
        let mut response = next.run(request).await;
        response.extensions_mut().insert(Caller::Unauthenticated);
        return response;
    };
    let headers = request.headers();
    let mut presented = false;
    let user = if let Some(token) = bearer(headers) {
        presented = true;
        config.authenticate(token)
    } else if let Some(cookie) = session_cookie(headers) {
        presented = true;
        state
            .sessions
            .user(cookie)
            .and_then(|index| config.users.get(index))
    } else {
        None
    };
    let caller = match user {
        Some(user) => Caller::User {
            name: user.name.clone(),
            role: user.role,
            project: user.project.clone(),
        },
        None => Caller::Anonymous,
    };
    let path = request.uri().path().to_string();
    let refusal = match (allowed(&path), &caller) {
        (None, _) => None,
        (Some(roles), Caller::User { role, .. }) if roles.contains(role) => None,
        (Some(_), Caller::User { role, .. }) => Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the {} role may not use {path}", role.as_str()),
        )),
        (Some(_), _) if presented => Some(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown or expired token or session; sign in again",
        )),
        (Some(_), _) => Some(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: send Authorization: Bearer TOKEN (browsers: sign in at /login)",
        )),
    };
    let mut response = match refusal {
        Some(error) => {
            let browser_page = error.status == StatusCode::UNAUTHORIZED
                && !path.starts_with("/api/")
                && request.method() == axum::http::Method::GET;
            if browser_page {
                redirect_to_login()
            } else {
                error.into_response()
            }
        }
        None => {
            request.extensions_mut().insert(caller.clone());
            next.run(request).await
        }
    };
    response.extensions_mut().insert(caller);
    response
}

fn redirect_to_login() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response()
}

const LOGIN_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vaxlake: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
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
pub(crate) async fn login_page() -> Html<String> {
    Html(LOGIN_PAGE.replace("{{message}}", ""))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `POST /login`: a valid token opens a session (cookie); a wrong one gets the form again
/// with 401.
pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(config) = &state.auth else {
        return redirect_home();
    };
    let user = form.ok().and_then(|axum::Form(form)| {
        let matched = config.authenticate(form.token.trim())?;
        config.users.iter().position(|u| std::ptr::eq(u, matched))
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
    let user = &config.users[index];
    response.extensions_mut().insert(Caller::User {
        name: user.name.clone(),
        role: user.role,
        project: user.project.clone(),
    });
    response
}

/// `GET|POST /logout`: ends the session and clears the cookie.
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

fn redirect_home() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (AuthConfig, String) {
        let (token, hash) = new_token();
        let text = format!(
            "[[user]]\nname = \"ana\"\nrole = \"analyst\"\ntoken_blake3 = \"{hash}\"\n\
             [[user]]\nname = \"rex\"\nrole = \"researcher\"\nproject = \"P-1\"\ntoken_blake3 = \"{}\"\n",
            new_token().1
        );
        (AuthConfig::parse(&text).unwrap(), token)
    }

    #[test]
    fn a_token_finds_its_user_and_nothing_else_does() {
        let (config, token) = config();
        assert_eq!(config.authenticate(&token).unwrap().name, "ana");
        assert!(config.authenticate(&format!("{token}x")).is_none());
        assert!(config.authenticate("").is_none());
        let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
        assert!(
            config.authenticate(&hash).is_none(),
            "the hash is not a token"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_entry_named() {
        let (_, hash) = new_token();
        for (text, wanted) in [
            (format!("[[user]]\nname=\"a\"\nrole=\"boss\"\ntoken_blake3=\"{hash}\"\n"), "unknown variant"),
            ("[[user]]\nname=\"a\"\nrole=\"analyst\"\ntoken_blake3=\"abc\"\n".to_string(), "64 hex"),
            (format!("[[user]]\nname=\"r\"\nrole=\"researcher\"\ntoken_blake3=\"{hash}\"\n"), "needs project"),
            (format!("[[user]]\nname=\"a\"\nrole=\"analyst\"\nproject=\"P\"\ntoken_blake3=\"{hash}\"\n"), "only researchers"),
            (format!("[[user]]\nname=\"a\"\nrole=\"analyst\"\ntoken_blake3=\"{hash}\"\n[[user]]\nname=\"a\"\nrole=\"ministry\"\ntoken_blake3=\"{}\"\n", new_token().1), "twice"),
            (String::new(), "no [[user]]"),
        ] {
            let error = AuthConfig::parse(&text).unwrap_err();
            assert!(error.contains(wanted), "{error} (wanted {wanted})");
        }
    }

    #[test]
    fn debug_shows_no_token_hash() {
        let (config, _) = config();
        let shown = format!("{config:?}");
        for user in config.users() {
            assert!(!shown.contains(&user.token.to_hex().to_string()));
        }
    }

    #[test]
    fn the_permission_table() {
        use Role::*;
        let may = |path: &str, role| allowed(path).is_none_or(|roles| roles.contains(&role));
        assert!(may("/api/sql", Analyst));
        for role in [Ministry, Researcher, Operator] {
            assert!(!may("/api/sql", role));
        }
        for path in [
            "/api/coverage",
            "/api/coverage/curve",
            "/api/effectiveness",
            "/",
        ] {
            assert!(may(path, Analyst) && may(path, Ministry) && may(path, Operator));
            assert!(!may(path, Researcher));
        }
        assert!(may("/api/audit", Operator));
        for role in [Analyst, Ministry, Researcher] {
            assert!(!may("/api/audit", role));
        }
        for role in [Analyst, Ministry, Researcher, Operator] {
            assert!(may("/api/health", role));
        }
    }

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::default();
        let cookie = sessions.start(3);
        assert_eq!(sessions.user(&cookie), Some(3));
        assert_eq!(sessions.user("nope"), None);
        sessions.end(&cookie);
        assert_eq!(sessions.user(&cookie), None);
    }
}
