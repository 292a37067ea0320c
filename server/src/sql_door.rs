//! One policy for every door that takes SQL besides `/api/sql` (Arrow Flight SQL, and the
//! PostgreSQL wire protocol after it): the same users and roles as the HTTP API, the same
//! concurrency permits, the same sandbox (`Warehouse::sql_stream`) and one audit row per
//! statement. `/api/sql` gets the same policy from the auth and audit middleware.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use tokio::sync::OwnedSemaphorePermit;

use crate::api::{query_error_status, ApiState};
use crate::audit::{AuditLog, AuditRecord};
use crate::auth::rules::ANALYSTS;
use crate::auth::{Caller, User};

/// SQL texts longer than this are recorded cut, with their hash (the whole text's) beside
/// them: a door without a body limit must not let one statement flood the audit table.
pub(crate) const MAX_AUDITED_SQL_BYTES: usize = 64 << 10;

/// Why a door refused a caller or a statement, with the HTTP status the audit records.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub reason: String,
    /// The user, when they were known but their role may not run SQL (for the audit).
    pub caller: Option<Caller>,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            caller: None,
        }
    }
}

impl From<vaxlake_query::QueryError> for Refusal {
    fn from(error: vaxlake_query::QueryError) -> Self {
        Refusal::new(
            query_error_status(&error),
            crate::audit::redact_digits(&error.to_string()),
        )
    }
}

/// A door (`flight-sql`, `postgres`) onto the SQL sandbox.
#[derive(Clone)]
pub(crate) struct SqlDoor {
    state: Arc<ApiState>,
    /// What the audit's `endpoint` column says for statements through this door.
    endpoint: &'static str,
}

impl SqlDoor {
    pub(crate) fn new(state: Arc<ApiState>, endpoint: &'static str) -> Self {
        SqlDoor { state, endpoint }
    }

    pub(crate) fn state(&self) -> &ApiState {
        &self.state
    }

    /// The caller holding `token` (`None`: no token presented), admitted only if their
    /// role may run SQL (the analyst role, as for `/api/sql`). A server without `--auth`
    /// (loopback only) admits everyone.
    pub(crate) fn admit(&self, token: Option<&str>) -> Result<Caller, Refusal> {
        let Some(config) = &self.state.auth else {
            return Ok(Caller::Unauthenticated);
        };
        let user = token
            .filter(|token| !token.is_empty())
            .and_then(|token| config.authenticate(token));
        let Some(user) = user else {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                match token {
                    Some(_) => "the token is not valid",
                    None => "a bearer token is required",
                },
            ));
        };
        admit_user(user)
    }

    /// [`SqlDoor::admit`] for credentials that also name the user (Basic auth, the
    /// PostgreSQL user): the token must be that user's.
    pub(crate) fn admit_named(&self, name: &str, token: &str) -> Result<Caller, Refusal> {
        let caller = self.admit(Some(token))?;
        match caller.name() {
            Some(holder) if holder != name => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "the token is not valid",
            )),
            _ => Ok(caller),
        }
    }

    /// The user called `name`, who has already proved who they are (the PostgreSQL door's
    /// SCRAM exchange), admitted only if their role may run SQL.
    pub(crate) fn admit_signed_in(&self, name: &str) -> Result<Caller, Refusal> {
        let user = self
            .state
            .auth
            .as_ref()
            .and_then(|config| config.user(name))
            .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "unknown user"))?;
        admit_user(user)
    }

    /// One of the permits `/api/sql` also takes, or a refusal when all are in use.
    pub(crate) fn permit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.state.sql_permits().try_acquire_owned().map_err(|_| {
            Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many queries are running; retry in a moment",
            )
        })
    }

    /// The audit row of one call, recorded when it is finished, or as `aborted` when it is
    /// dropped unfinished (the client went away mid-stream). `sql` is `None` when the
    /// caller was not admitted: an anonymous caller's text is not stored.
    pub(crate) fn audit(&self, caller: &Caller, method: &str, sql: Option<&str>) -> StatementAudit {
        let at_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default();
        StatementAudit {
            log: self.state.audit().cloned(),
            started: Instant::now(),
            record: Some(AuditRecord {
                at_micros,
                user: caller.name().map(str::to_string),
                role: caller.role().to_string(),
                method: method.to_string(),
                endpoint: self.endpoint.to_string(),
                parameters: sql.map(audited_sql).unwrap_or_default(),
                status: crate::api::ABORTED_STATUS,
                outcome: "aborted".into(),
                rows: None,
                duration_ms: 0.0,
            }),
        }
    }
}

/// The rows of one statement on their way out through a door: counted for the audit row,
/// which is written when the last batch has gone (or at the first error, or as `aborted`
/// when the client goes away), and holding the statement's permit until then.
pub(crate) struct AuditedRows {
    rows: vaxlake_query::QueryStream,
    audit: Option<StatementAudit>,
    _permit: OwnedSemaphorePermit,
}

impl AuditedRows {
    pub(crate) fn new(
        rows: vaxlake_query::QueryStream,
        audit: StatementAudit,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        AuditedRows {
            rows,
            audit: Some(audit),
            _permit: permit,
        }
    }

    pub(crate) fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.rows.schema()
    }
}

impl futures::Stream for AuditedRows {
    type Item = Result<arrow::array::RecordBatch, vaxlake_query::QueryError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use futures::StreamExt;
        let item = futures::ready!(self.rows.poll_next_unpin(cx));
        let rows = self.rows.rows() as i64;
        let finished = match &item {
            Some(Ok(_)) => None,
            Some(Err(error)) => Some(query_error_status(error)),
            None => {
                if self.rows.truncated() {
                    tracing::info!(rows, "answer cut at the row cap");
                }
                Some(StatusCode::OK)
            }
        };
        if let Some(status) = finished {
            if let Some(audit) = self.audit.take() {
                audit.finish(status, Some(rows));
            }
        }
        std::task::Poll::Ready(item)
    }
}

/// `user` as the caller, if their role may run SQL (the analyst role, as for `/api/sql`).
fn admit_user(user: &User) -> Result<Caller, Refusal> {
    match ANALYSTS.admits(user.role) {
        true => Ok(Caller::from(user)),
        false => Err(Refusal {
            caller: Some(Caller::from(user)),
            ..Refusal::new(
                StatusCode::FORBIDDEN,
                format!("the {} role may not run SQL", user.role.as_str()),
            )
        }),
    }
}

/// What the audit keeps of a statement: the hash of its (digit-redacted) text, to group
/// repeats, and the text itself, cut at [`MAX_AUDITED_SQL_BYTES`].
pub(crate) fn audited_sql(sql: &str) -> String {
    let redacted = crate::audit::redact_digits(sql);
    let hash = blake3::hash(redacted.as_bytes()).to_hex();
    let mut end = redacted.len().min(MAX_AUDITED_SQL_BYTES);
    while !redacted.is_char_boundary(end) {
        end -= 1;
    }
    let cut = match end < redacted.len() {
        true => " [cut]",
        false => "",
    };
    format!("-- blake3:{}{cut}\n{}", &hash[..16], &redacted[..end])
}

/// The audit row of one call through a door (see [`SqlDoor::audit`]).
pub(crate) struct StatementAudit {
    log: Option<AuditLog>,
    started: Instant,
    record: Option<AuditRecord>,
}

impl StatementAudit {
    /// Records the call as answered with `status` and `rows`.
    pub(crate) fn finish(mut self, status: StatusCode, rows: Option<i64>) {
        self.complete(
            status.as_u16(),
            crate::audit::outcome(status.as_u16()),
            rows,
        );
    }

    fn complete(&mut self, status: u16, outcome: &str, rows: Option<i64>) {
        let (Some(log), Some(mut record)) = (self.log.as_ref(), self.record.take()) else {
            return;
        };
        record.status = status;
        record.outcome = outcome.to_string();
        record.rows = rows;
        record.duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
        log.record_now(record);
    }
}

impl Drop for StatementAudit {
    fn drop(&mut self) {
        self.complete(crate::api::ABORTED_STATUS, "aborted", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audited_sql_is_redacted_hashed_and_bounded() {
        let recorded = audited_sql("SELECT * FROM persons WHERE n = '1234567890123'");
        assert!(recorded.starts_with("-- blake3:"), "{recorded}");
        assert!(!recorded.contains("1234567890123"), "{recorded}");
        assert!(recorded.ends_with("n = '<digits>'"), "{recorded}");
        let long = format!("SELECT '{}'", "é".repeat(MAX_AUDITED_SQL_BYTES));
        let recorded = audited_sql(&long);
        assert!(
            recorded.len() < MAX_AUDITED_SQL_BYTES + 64,
            "{}",
            recorded.len()
        );
        assert!(recorded.contains("[cut]"));
    }
}
