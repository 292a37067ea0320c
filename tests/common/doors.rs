//! Helpers of the tests of the SQL doors (PostgreSQL, Flight SQL): users, ports, a throwaway
//! certificate, and the audit rows the server recorded.

use std::path::{Path, PathBuf};

use super::{http, run};

/// A free loopback port (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh token for a user of `role`: (the token, the `[[user]]` entry for the auth file).
pub fn new_user(name: &str, role: &str) -> (String, String) {
    let out = run(&["token", "new", "--name", name, "--role", role]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr[stderr.find("[[user]]").expect("an auth entry")..].to_string(),
    )
}

/// A self-signed certificate for `localhost` and 127.0.0.1 under `dir`: (cert, key), PEM.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(made.status.success(), "{made:?}");
    (cert, key)
}

/// The audit rows of one endpoint, as `/api/audit` answers them to an operator.
pub struct Audit {
    pub body: String,
    columns: Vec<String>,
    rows: Vec<serde_json::Value>,
}

impl Audit {
    /// Reads up to 5 000 rows of `endpoint` (waiting out the audit's one-second batching).
    pub fn read(port: u16, operator_token: &str, endpoint: &str) -> Audit {
        std::thread::sleep(std::time::Duration::from_millis(1_500));
        let answer = http::request(
            port,
            "GET",
            &format!("/api/audit?endpoint={endpoint}&limit=5000"),
            &[("Authorization", &format!("Bearer {operator_token}"))],
            "",
        )
        .expect("an answer");
        let body = answer.text();
        assert_eq!(answer.status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        Audit {
            columns: json["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect(),
            rows: json["rows"].as_array().unwrap().clone(),
            body,
        }
    }

    /// A row's `column`.
    pub fn get<'a>(&self, row: &'a serde_json::Value, column: &str) -> &'a serde_json::Value {
        let at = self.columns.iter().position(|c| c == column).unwrap();
        &row[at]
    }

    pub fn rows(&self) -> &[serde_json::Value] {
        &self.rows
    }

    /// Whether a row has this user, method and outcome (and SQL text holding `sql`).
    pub fn has(&self, user: Option<&str>, method: &str, outcome: &str, sql: Option<&str>) -> bool {
        self.rows.iter().any(|row| {
            self.get(row, "user").as_str() == user
                && self.get(row, "method").as_str() == Some(method)
                && self.get(row, "outcome").as_str() == Some(outcome)
                && sql.is_none_or(|sql| {
                    self.get(row, "parameters")
                        .as_str()
                        .unwrap_or("")
                        .contains(sql)
                })
        })
    }
}

/// `vaxlake serve --warehouse WH --auth AUTH --tls-cert CERT --tls-key KEY` with `extra`
/// arguments, its HTTP side on a free port, killed when dropped. Not waited for: under TLS
/// the harness's plain health probe cannot tell it is up, so each test probes its own door.
pub fn serve_tls(
    wh: &Path,
    auth: &Path,
    (cert, key): (&Path, &Path),
    extra: &[&str],
) -> KillOnDrop {
    KillOnDrop(
        std::process::Command::new(super::bin())
            .args(["serve", "--warehouse", wh.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--auth", auth.to_str().unwrap()])
            .args(["--tls-cert", cert.to_str().unwrap()])
            .args(["--tls-key", key.to_str().unwrap()])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A child process killed when dropped, so a failing test leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
