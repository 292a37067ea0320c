//! `POST /api/sql`: one read-only query, answered as JSON, CSV or Arrow IPC by `Accept`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vaxlake_query::QueryAnswer;

use super::{ApiError, ApiState, AuditRows};

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
const CSV: &str = "text/csv";
const JSON: &str = "application/json";
/// Set on every answer, so CSV and Arrow clients also learn that rows were cut.
const TRUNCATED_HEADER: &str = "x-vaxlake-truncated";

/// `POST /api/sql`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct SqlRequest {
    /// One read-only query: SELECT, WITH, VALUES or EXPLAIN.
    sql: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    /// The first media type in `Accept` we can produce; JSON when none is.
    fn from_accept(headers: &HeaderMap) -> Format {
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|media| {
                media
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        for media in accept {
            match media.as_str() {
                CSV => return Format::Csv,
                ARROW_STREAM => return Format::Arrow,
                JSON | "application/*" | "*/*" => return Format::Json,
                _ => {}
            }
        }
        Format::Json
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Arrow => "arrow",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Arrow => ARROW_STREAM,
        }
    }

    fn encode(self, answer: &QueryAnswer) -> Result<Vec<u8>, vaxlake_query::QueryError> {
        match self {
            Format::Json => serde_json::to_vec(&answer.to_json()?)
                .map_err(|error| vaxlake_query::QueryError::Format(error.to_string())),
            Format::Csv => answer.to_csv(),
            Format::Arrow => answer.to_arrow_ipc(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/sql",
    tag = "sql",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "The rows; `Accept: text/csv` gives CSV and \
            `Accept: application/vnd.apache.arrow.stream` Arrow IPC. `x-vaxlake-truncated` says \
            whether the row cap cut them.",
            body = vaxlake_query::output::RowsBody),
        (status = 400, description = "Not one read-only query, or an error in it", body = super::ErrorBody),
        (status = 413, description = "Body over the limit", body = super::ErrorBody),
        (status = 429, description = "Too many queries running; retry", body = super::ErrorBody),
        (status = 503, description = "The query ran out of time or memory", body = super::ErrorBody),
    ),
)]
pub(crate) async fn sql(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if let Some(timeout) = super::serve::cause::<super::BodyTimeout>(&rejection) {
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, timeout.to_string());
        }
        let status = rejection.status();
        let reason = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                format!(
                    "the request body is larger than {} bytes",
                    state.max_body_bytes
                )
            }
            _ => rejection.body_text(),
        };
        ApiError::new(status, reason)
    })?;
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {{\"sql\": \"SELECT ...\"}}: {error}"),
        )
    })?;
    let format = Format::from_accept(&headers);

    let Ok(permit) = state.sql_permits.clone().try_acquire_owned() else {
        tracing::info!("sql query refused: too many running");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many queries are running; retry in a moment",
        ));
    };

    let started = Instant::now();
    let answer = match state.warehouse().sql(&request.sql).await {
        Ok(answer) => answer,
        Err(error) => {
            // The reason, never rows; the SQL only at debug level.
            let error_text = crate::audit::redact_digits(&error.to_string());
            tracing::info!(error = %error_text, elapsed_ms = started.elapsed().as_millis() as u64, "sql query failed");
            tracing::debug!(sql = %crate::audit::redact_digits(&request.sql), "failed sql");
            return Err(error.into());
        }
    };
    let rows = answer.num_rows();
    let truncated = answer.truncated;
    // Encoding 100 000 rows takes a while; keep it off the async workers.
    let bytes = tokio::task::spawn_blocking(move || format.encode(&answer))
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
        .map_err(ApiError::from)?;
    tracing::info!(
        rows,
        truncated,
        format = format.name(),
        bytes = bytes.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sql query answered"
    );

    let body = Body::new(AnswerBody {
        bytes: Bytes::from(bytes),
        permit: Some(permit),
        deadline: Box::pin(tokio::time::sleep(state.answer_timeout)),
    });
    let mut response = (StatusCode::OK, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response_headers.insert(
        TRUNCATED_HEADER,
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    response.extensions_mut().insert(AuditRows(rows as i64));
    Ok(response)
}

/// Bytes of an answer handed to the connection at a time: the connection buffers about one
/// piece, the rest waits here until the client reads.
const ANSWER_PIECE: usize = 64 * 1024;

/// A SQL answer handed over a piece at a time, keeping its query's place (the permit) until
/// the last piece is taken, and cut (the connection closed) when not taken by the deadline.
struct AnswerBody {
    bytes: Bytes,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl axum::body::HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use std::future::Future;
        if self.bytes.is_empty() {
            self.permit = None;
            return std::task::Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.permit = None;
            tracing::info!(
                left = self.bytes.len(),
                "sql answer cut: the client did not take it within the answer timeout"
            );
            return std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the answer was not taken in time",
            ))));
        }
        let piece = self.bytes.len().min(ANSWER_PIECE);
        let piece = self.bytes.split_to(piece);
        if self.bytes.is_empty() {
            self.permit = None;
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        Format::from_accept(&headers)
    }

    #[test]
    fn accept_picks_the_first_known_format() {
        assert_eq!(Format::from_accept(&HeaderMap::new()), Format::Json);
        assert_eq!(accept("text/csv"), Format::Csv);
        assert_eq!(accept("Text/CSV; charset=utf-8"), Format::Csv);
        assert_eq!(accept(ARROW_STREAM), Format::Arrow);
        assert_eq!(accept("text/html, text/csv;q=0.9"), Format::Csv);
        assert_eq!(accept("application/json, text/csv"), Format::Json);
        assert_eq!(accept("text/html"), Format::Json);
    }
}
