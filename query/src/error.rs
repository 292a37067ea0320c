//! What can go wrong answering a query, worded for the person who sent it.

use std::time::Duration;

use datafusion::error::DataFusionError;

/// Errors a caller of [`crate::Warehouse`] can meet. Each message says what happened and,
/// where the user can do something about it, what to do next; none carries result rows.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is not a single read-only query (or reaches for a file or URL).
    #[error("refused: {0}")]
    Refused(String),

    /// The query ran past the configured time limit and was cancelled.
    #[error(
        "the query ran longer than {} s and was cancelled; filter on fewer rows, aggregate earlier, or ask an operator to raise the limit",
        .0.as_secs_f64()
    )]
    Timeout(Duration),

    /// The query needed more memory (or spill space) than the warehouse allows.
    #[error("the query needs more memory than this server allows ({0}); filter on fewer rows or aggregate earlier")]
    ResourcesExhausted(String),

    /// The SQL did not parse, named something unknown, or failed while running.
    #[error("{0}")]
    Sql(String),

    /// The warehouse or one of its tables could not be read.
    #[error("cannot read the warehouse at {root}: {reason}")]
    Warehouse { root: String, reason: String },

    /// A request named an unknown indicator or a parameter out of range.
    #[error("{0}")]
    Invalid(String),

    /// The warehouse does not hold what the answer needs yet (e.g. nothing ingested).
    #[error("{0}")]
    Unavailable(String),

    /// An answer could not be turned into the requested format.
    #[error("cannot format the answer: {0}")]
    Format(String),
}

impl QueryError {
    pub(crate) fn refused(reason: impl Into<String>) -> Self {
        QueryError::Refused(reason.into())
    }

    /// The warehouse (or the table) at `root` could not be read or written, for `reason`.
    /// Public for crates that keep tables of their own under the warehouse root (the
    /// server's audit trail), so their failures read like the warehouse's.
    pub fn warehouse(root: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        QueryError::Warehouse {
            root: root.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        match error.find_root() {
            DataFusionError::ResourcesExhausted(reason) => {
                QueryError::ResourcesExhausted(reason.clone())
            }
            _ => QueryError::Sql(error.strip_backtrace()),
        }
    }
}

impl From<arrow::error::ArrowError> for QueryError {
    fn from(error: arrow::error::ArrowError) -> Self {
        QueryError::Format(error.to_string())
    }
}

/// A reference file compiled in does not parse (the message names file and line); reported
/// as before the catalogue read them.
impl From<vaxlake_catalog::CatalogError> for QueryError {
    fn from(error: vaxlake_catalog::CatalogError) -> Self {
        QueryError::Format(error.to_string())
    }
}
