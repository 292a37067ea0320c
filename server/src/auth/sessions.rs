//! Signed-in browsers: a browser signs in once at `/login` with its token and gets a random
//! session cookie; the server keeps only the cookie's hash, for [`SESSION_LIFETIME`] or until
//! `/logout`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use super::users::hex;

/// How long a browser session lasts (CONTRACTS.md).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "vaxlake_session";

/// Signed-in browsers: the hash of each session cookie, its user and its expiry.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], (usize, Instant)>>,
}

impl Sessions {
    pub(super) fn start(&self, user: usize) -> String {
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

    pub(super) fn user(&self, cookie: &str) -> Option<usize> {
        let key = *blake3::hash(cookie.as_bytes()).as_bytes();
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(user, _)| *user)
    }

    pub(super) fn end(&self, cookie: &str) {
        let key = *blake3::hash(cookie.as_bytes()).as_bytes();
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}

/// The session cookie a request carries, if any.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie called `name` that a request carries, if any.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
