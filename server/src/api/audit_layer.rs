//! The audit of every request (see [`crate::audit`]): the middleware that records who asked
//! what and how it was answered, also when no answer comes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::audit::{AuditLog, AuditRecord};
use crate::auth::middleware::presents_credential;
use crate::auth::Caller;

/// Rows an answer carried, for the audit (set by handlers as a response extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditRows(pub i64);

/// The caller, as the auth found it, for the audit of a request whose answer never comes.
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(Arc<std::sync::Mutex<Option<Caller>>>);

impl CallerSlot {
    pub(crate) fn set(&self, caller: Caller) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(caller);
    }

    fn get(&self) -> Option<Caller> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The audit status of a request that got no answer: the client went away, or the server
/// dropped it (nginx's "client closed request").
pub const ABORTED_STATUS: u16 = 499;

/// A request being audited. Dropped before [`PendingAudit::finish`] (the client went away,
/// or the connection was dropped mid-request), it records the request as `aborted`.
struct PendingAudit {
    log: AuditLog,
    slot: CallerSlot,
    started: std::time::Instant,
    record: Option<AuditRecord>,
}

impl PendingAudit {
    /// The record, completed with the caller (from the answer, else as the auth found it).
    fn complete(
        &mut self,
        caller: Option<Caller>,
        status: u16,
        outcome: &str,
        rows: Option<i64>,
    ) -> Option<AuditRecord> {
        let mut record = self.record.take()?;
        let caller = caller.or_else(|| self.slot.get());
        record.user = caller.as_ref().and_then(|c| c.name()).map(str::to_string);
        record.role = caller
            .as_ref()
            .map_or("anonymous", |c| c.role())
            .to_string();
        // What a caller who was not admitted sent is not kept: only its size. Else anyone could
        // fill the audit table (and every operator's `/api/audit`) with 1 MiB texts.
        if !matches!(caller, Some(Caller::User { .. } | Caller::Unauthenticated)) {
            record.parameters = not_stored(&record.parameters);
        }
        record.status = status;
        record.outcome = outcome.to_string();
        record.rows = rows;
        record.duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
        Some(record)
    }

    /// The record of the answered request. Read before waiting on the audit queue: a
    /// response is not `Sync`, so a future holding `&Response` across an await is not `Send`.
    fn answered(&mut self, response: &Response) -> Option<AuditRecord> {
        let status = response.status().as_u16();
        let caller = response.extensions().get::<Caller>().cloned();
        let rows = response.extensions().get::<AuditRows>().map(|rows| rows.0);
        self.complete(caller, status, crate::audit::outcome(status), rows)
    }
}

impl Drop for PendingAudit {
    fn drop(&mut self) {
        if let Some(record) = self.complete(None, ABORTED_STATUS, "aborted", None) {
            self.log.record_now(record);
        }
    }
}

/// Records the request in the audit trail once it is answered, or as `aborted` when it is
/// dropped unanswered. A handler that panics is answered 500 (and recorded so). The SQL
/// text of `/api/sql` is read from the body here (bounded by the body limit); no other body
/// is recorded (the sign-in form holds a token).
pub(crate) async fn audit_request(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(log) = state.audit.clone() else {
        return next.run(request).await;
    };
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let at_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let endpoint = request.uri().path().to_string();
    let mut pending = PendingAudit {
        log,
        slot,
        started: std::time::Instant::now(),
        record: Some(AuditRecord {
            at_micros,
            user: None,
            role: "anonymous".into(),
            method: request.method().to_string(),
            endpoint: endpoint.clone(),
            parameters: recorded_query(&endpoint, request.uri().query().unwrap_or("")),
            status: ABORTED_STATUS,
            outcome: "aborted".into(),
            rows: None,
            duration_ms: 0.0,
        }),
    };
    let request = if request.method() == axum::http::Method::POST
        && endpoint == "/api/sql"
        && (state.auth.is_none() || presents_credential(request.headers()))
    {
        read_sql(&state, &mut pending, request).await
    } else {
        // No credential: the auth refuses it unread, and a stranger's text is not kept anyway,
        // so 1 MiB bodies of strangers are never held in memory.
        Ok(request)
    };
    let response = match request {
        Ok(request) => {
            use futures::FutureExt;
            match std::panic::AssertUnwindSafe(next.run(request))
                .catch_unwind()
                .await
            {
                Ok(response) => response,
                Err(_) => {
                    tracing::error!(%endpoint, "a handler panicked");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error: the request failed; it is recorded in the server log",
                    )
                    .into_response()
                }
            }
        }
        Err(refused) => refused,
    };
    if let Some(record) = pending.answered(&response) {
        pending.log.record(record).await;
    }
    response
}

/// What a request's query string is recorded as: nothing for the sign-in pages (a token pasted
/// into `/login?token=` is a secret), secret-named parameters' values replaced, long digit
/// runs redacted.
fn recorded_query(endpoint: &str, query: &str) -> String {
    if endpoint == "/login" || endpoint == "/logout" {
        return if query.is_empty() {
            String::new()
        } else {
            "<not stored: sign-in page>".to_string()
        };
    }
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=<not stored>"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    crate::audit::redact_digits(&query)
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "password", "secret", "key", "session", "csrf"]
        .iter()
        .any(|secret| name.contains(secret))
}

/// The record of what a caller who was not admitted sent: its size only.
fn not_stored(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("<{} bytes not stored: caller not signed in>", text.len())
    }
}

/// Reads the SQL text of `/api/sql` into the audit record and hands the body on; or the
/// refusal: 413 at once when the declared length is over the limit (before any byte is
/// read), 408 when the body did not arrive within the body deadline, 413 past the limit,
/// 400 for a body that broke off.
async fn read_sql(
    state: &ApiState,
    pending: &mut PendingAudit,
    request: Request,
) -> Result<Request, Response> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes",
                state.max_body_bytes
            ),
        )
        .into_response()
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > state.max_body_bytes as u64) {
        set_parameters(pending, "<body larger than the limit>");
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => {
            let sql = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("sql").and_then(|s| s.as_str()).map(str::to_string))
                .unwrap_or_else(|| "<body is not {\"sql\": ...}>".to_string());
            set_parameters(pending, &sql);
            Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
        }
        Err(error) => {
            let timed_out = std::iter::successors(
                Some(&error as &(dyn std::error::Error + 'static)),
                |error| error.source(),
            )
            .find_map(|error| error.downcast_ref::<super::BodyTimeout>())
            .map(ToString::to_string);
            let over = std::iter::successors(
                Some(&error as &(dyn std::error::Error + 'static)),
                |error| error.source(),
            )
            .any(|error| error.is::<http_body_util::LengthLimitError>());
            let (status, reason, refusal) = match (timed_out, over) {
                (Some(reason), _) => (
                    StatusCode::REQUEST_TIMEOUT,
                    "<body not received in time>",
                    reason,
                ),
                (None, true) => {
                    set_parameters(pending, "<body larger than the limit>");
                    return Err(too_large());
                }
                (None, false) => (
                    StatusCode::BAD_REQUEST,
                    "<body broken off>",
                    "the request body broke off before its end".to_string(),
                ),
            };
            set_parameters(pending, reason);
            Err(ApiError::new(status, refusal).into_response())
        }
    }
}

fn set_parameters(pending: &mut PendingAudit, text: &str) {
    if let Some(record) = pending.record.as_mut() {
        record.parameters = crate::audit::redact_digits(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_query_strings_are_not_recorded() {
        assert_eq!(
            recorded_query("/login", "token=vxl_abc"),
            "<not stored: sign-in page>"
        );
        assert_eq!(recorded_query("/login", ""), "");
        assert_eq!(
            recorded_query(
                "/api/coverage",
                "antigen=MMR&access_token=vxl_abc&cohort=2020"
            ),
            "antigen=MMR&access_token=<not stored>&cohort=2020"
        );
        assert_eq!(
            recorded_query("/api/audit", "user=alice&since=2026-01-01"),
            "user=alice&since=2026-01-01"
        );
        assert_eq!(recorded_query("/api/coverage", "q=123456789"), "q=<digits>");
    }

    #[test]
    fn only_admitted_callers_have_their_text_kept() {
        let log = AuditLog::for_tests();
        let mut pending = PendingAudit {
            log,
            slot: CallerSlot::default(),
            started: std::time::Instant::now(),
            record: None,
        };
        let record = |parameters: &str| AuditRecord {
            at_micros: 0,
            user: None,
            role: "anonymous".into(),
            method: "POST".into(),
            endpoint: "/api/sql".into(),
            parameters: parameters.into(),
            status: ABORTED_STATUS,
            outcome: "aborted".into(),
            rows: None,
            duration_ms: 0.0,
        };
        let sql = "SELECT * FROM vaccinations WHERE 'x' = 'y'".repeat(1000);
        for caller in [None, Some(Caller::Anonymous)] {
            pending.record = Some(record(&sql));
            let kept = pending
                .complete(caller, 401, "unauthenticated", None)
                .unwrap();
            assert_eq!(
                kept.parameters,
                format!("<{} bytes not stored: caller not signed in>", sql.len())
            );
        }
        pending.record = Some(record(&sql));
        let kept = pending
            .complete(Some(Caller::Unauthenticated), 200, "ok", Some(1))
            .unwrap();
        assert_eq!(kept.parameters, sql);
        pending.record = None;
    }
}
