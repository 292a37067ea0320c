//! The tests' HTTP client (ureq): every answer comes back as it is (no error for 4xx/5xx, no
//! redirect followed, no Accept or User-Agent of its own, one connection per request), so a
//! test sees what the server sent for what the test wrote.

use std::time::Duration;

/// A whole answer: status, headers in the order received, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text (lossy: bodies under test are UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Status and body, for assertion messages.
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text())
    }
}

/// One request to 127.0.0.1:`port`; an error when the server does not (yet) answer.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(60)))
        // GET and DELETE with a (possibly empty) body, as the tests send them.
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body.to_string())?;
    let mut response = agent.run(request)?;
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Answer {
        status: response.status().as_u16(),
        headers,
        body: response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()?,
    })
}

/// `GET path`: (status, body), `None` if the server is not (yet) answering.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let answer = request(port, "GET", path, &[], "").ok()?;
    Some((answer.status, answer.text()))
}
