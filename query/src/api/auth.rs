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

/// The `[[user]]` entry of the auth file for a user whose token hashes to `token_blake3`,
/// written by the TOML serializer (so that any name or project reads back as given).
/// Refuses what the file could not hold or a person could not read: an empty name or
/// project, control characters (line breaks, tabs, escapes), a project for a role other
/// than researcher, a researcher without one.
pub fn user_entry(
    name: &str,
    role: Role,
    project: Option<&str>,
    token_blake3: &str,
) -> Result<String, AuthError> {
    let printable = |what: &str, text: &str| {
        if text.trim().is_empty() {
            Err(AuthError::Invalid(format!("{what} must not be empty")))
        } else if text.chars().any(char::is_control) {
            Err(AuthError::Invalid(format!(
                "{what} must not hold control characters (line breaks, tabs, escapes)"
            )))
        } else {
            Ok(())
        }
    };
    printable("the name (--name)", name)?;
    match (role, project) {
        (Role::Researcher, None) => {
            return Err(AuthError::Invalid(
                "a researcher needs a project (--project)".into(),
            ))
        }
        (Role::Researcher, Some(project)) => printable("the project (--project)", project)?,
        (_, None) => {}
        (_, Some(_)) => {
            return Err(AuthError::Invalid(
                "only researchers have a project (--project)".into(),
            ))
        }
    }
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        name: &'a str,
        role: &'a str,
        token_blake3: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        project: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        user: [Entry<'a>; 1],
    }
    toml::to_string(&File {
        user: [Entry {
            name,
            role: role.as_str(),
            token_blake3,
            project,
        }],
    })
    .map_err(|error| AuthError::Invalid(format!("cannot write the auth entry: {error}")))
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

/// Who may use a route (CONTRACTS.md, Access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (health, sign-in).
    Open,
    /// Signed-in users of these roles only.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether a user of `role` may use the route.
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Open => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// Coverage, effectiveness and the dashboards.
const ANALYSIS: Access = Access::Roles(&[Role::Analyst, Role::Ministry, Role::Operator]);
const OPERATORS: Access = Access::Roles(&[Role::Operator]);
const EXTRACTS: Access = Access::Roles(&[Role::Researcher, Role::Operator]);

/// Every route of the API with who may use it: [`super::router`] registers exactly these
/// (a route is added here, never with `Router::route` alone), so none can go without a
/// rule. `{name}` matches one path segment, as in axum.
pub const ROUTES: &[(&str, Access)] = &[
    ("/api/health", Access::Open),
    ("/api/sql", Access::Roles(&[Role::Analyst])),
    ("/api/coverage", ANALYSIS),
    ("/api/coverage/indicators", ANALYSIS),
    ("/api/coverage/curve", ANALYSIS),
    ("/api/coverage/dropout", ANALYSIS),
    ("/api/coverage/timeliness", ANALYSIS),
    ("/api/coverage/flags", ANALYSIS),
    ("/api/effectiveness", ANALYSIS),
    ("/api/effectiveness/rates", ANALYSIS),
    ("/api/freshness", ANALYSIS),
    ("/api/geography", ANALYSIS),
    ("/api/audit", OPERATORS),
    ("/api/status", OPERATORS),
    ("/api/status/quarantine", OPERATORS),
    ("/api/status/ingests", OPERATORS),
    ("/api/extracts", EXTRACTS),
    ("/api/extracts/{project}/{id}/{file}", EXTRACTS),
    ("/login", Access::Open),
    ("/logout", Access::Open),
];

/// The dashboards' files, which the router's fallback serves from the files built into the
/// binary (`scripts/build-dashboards` writes exactly these into `dashboards/dist/`).
pub const PAGES: &[(&str, Access)] = &[
    ("/", ANALYSIS),
    ("/index.html", ANALYSIS),
    ("/app.js", ANALYSIS),
    ("/app.css", ANALYSIS),
    ("/favicon.svg", ANALYSIS),
    ("/licenses.txt", ANALYSIS),
    ("/dashboards/{file}", ANALYSIS),
];

/// Whether `path` is matched by the route `pattern` (`{name}` is one non-empty segment).
fn matches(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Who may use `path`: the rule of [`ROUTES`] or [`PAGES`] that matches it, `None` for a
/// path no rule lists, which nobody signed in may use (403; 401 without a valid token).
pub fn access(path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .chain(PAGES)
        .find(|(pattern, _)| matches(pattern, path))
        .map(|(_, access)| *access)
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
        if let Some(slot) = request.extensions().get::<super::CallerSlot>() {
            slot.set(Caller::Unauthenticated);
        }
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
    // The audit learns the caller now, in case the answer never comes (a timeout, a client
    // that goes away, a panic).
    if let Some(slot) = request.extensions().get::<super::CallerSlot>() {
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
        Some(error) if error.status == StatusCode::UNAUTHORIZED && is_page_navigation(&request) => {
            redirect_to_login()
        }
        Some(error) => error.into_response(),
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
    fn entries_read_back_as_written_whatever_the_name() {
        let odd = [
            "o\"brien",
            "back\\slash",
            "it's",
            "'''triple'''",
            "\"\"\"",
            "[[user]]",
            "a = \"b\"",
            "Zoë Ångström 名前",
            "#hash",
            " spaced ",
        ];
        for (i, name) in odd.iter().enumerate() {
            let mut text = String::new();
            let mut hashes = Vec::new();
            for (role, project) in [
                (Role::Analyst, None),
                (Role::Researcher, Some(odd[(i + 1) % odd.len()])),
            ] {
                let (_, hash) = new_token();
                let name = format!("{name}{}", role.as_str());
                text.push_str(&user_entry(&name, role, project, &hash).unwrap());
                hashes.push((name, role, project, hash));
            }
            let config = AuthConfig::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(config.users().len(), 2, "{text}");
            for (user, (name, role, project, hash)) in config.users().iter().zip(&hashes) {
                assert_eq!(&user.name, name, "{text}");
                assert_eq!(user.role, *role);
                assert_eq!(user.project.as_deref(), *project, "{text}");
                assert_eq!(user.token.to_hex().as_str(), hash);
            }
        }
    }

    #[test]
    fn entries_refuse_control_characters_and_misplaced_projects() {
        let (_, hash) = new_token();
        for (name, role, project) in [
            ("a\nb", Role::Analyst, None),
            ("a\rb", Role::Analyst, None),
            ("a\tb", Role::Analyst, None),
            ("a\u{1b}[31mb", Role::Analyst, None),
            ("a\u{7f}", Role::Analyst, None),
            ("a\u{85}", Role::Analyst, None),
            ("", Role::Analyst, None),
            ("r", Role::Researcher, Some("P\n[[user]]")),
            ("r", Role::Researcher, Some(" ")),
            ("r", Role::Researcher, None),
            ("a", Role::Operator, Some("P-1")),
        ] {
            assert!(
                user_entry(name, role, project, &hash).is_err(),
                "{name:?} {project:?}"
            );
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
        let may = |path: &str, role| access(path).is_some_and(|access| access.admits(role));
        assert!(may("/api/sql", Analyst));
        for role in [Ministry, Researcher, Operator] {
            assert!(!may("/api/sql", role));
        }
        for path in [
            "/api/coverage",
            "/api/coverage/curve",
            "/api/coverage/flags",
            "/api/effectiveness",
            "/api/freshness",
            "/",
            "/app.js",
            "/dashboards/index.json",
        ] {
            assert!(may(path, Analyst) && may(path, Ministry) && may(path, Operator));
            assert!(!may(path, Researcher), "{path}");
        }
        for path in ["/api/audit", "/api/status", "/api/status/ingests"] {
            assert!(may(path, Operator));
            for role in [Analyst, Ministry, Researcher] {
                assert!(!may(path, role), "{path}");
            }
        }
        for path in ["/api/extracts", "/api/extracts/P-1/e1/part-0.parquet"] {
            assert!(may(path, Researcher) && may(path, Operator));
            assert!(!may(path, Analyst) && !may(path, Ministry), "{path}");
        }
        for role in [Analyst, Ministry, Researcher, Operator] {
            assert!(may("/api/health", role));
            assert!(may("/login", role));
        }
        assert_eq!(access("/api/health"), Some(Access::Open));
    }

    #[test]
    fn paths_no_rule_lists_are_refused_to_every_role() {
        for path in [
            "/api/nope",
            "/api/coverage/",
            "/api/coverage/flags/x",
            "/api/status/secret",
            "/api/extracts/P-1",
            "/api/extracts/P-1//f",
            "/api/extracts/P-1/e1/f/more",
            "/api",
            "/favicon.ico",
            "/dashboards/",
            "/dashboards/a/b.json",
            "/index.html/x",
            "",
        ] {
            assert_eq!(access(path), None, "{path}");
        }
    }

    #[test]
    fn every_dashboard_file_has_a_rule() {
        // The files built into this binary (none before `scripts/build-dashboards`).
        for file in super::super::pages::asset_paths() {
            assert!(access(&format!("/{file}")).is_some(), "/{file} has no rule");
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
