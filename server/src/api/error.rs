//! The one shape of every refusal and failure the API answers: a status and
//! `{"error": "<reason>"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use vaxlake_query::QueryError;

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// Why, in words; never row values (runs of 9 or more digits are shown as `<digits>`).
    pub(crate) error: String,
}

/// An error answer: a status and `{"error": "<reason>"}`, nothing else.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The answer's status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

/// The status of an answer that failed with `error`, for every door (Flight SQL and the
/// PostgreSQL wire protocol record it in the audit too).
pub(crate) fn query_error_status(error: &QueryError) -> StatusCode {
    match error {
        QueryError::Refused(_) | QueryError::Sql(_) | QueryError::Invalid(_) => {
            StatusCode::BAD_REQUEST
        }
        QueryError::Unavailable(_) => StatusCode::NOT_FOUND,
        // 503, not 408: the client was not slow, the query was; retrying later with the
        // same query may succeed when the server is less busy.
        QueryError::Timeout(_) | QueryError::ResourcesExhausted(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        QueryError::Warehouse { .. } | QueryError::Format(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        ApiError::new(query_error_status(&error), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            // An identity typed into a request (a national number in SQL) is not echoed.
            Json(ErrorBody {
                error: crate::audit::redact_digits(&self.message),
            }),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
