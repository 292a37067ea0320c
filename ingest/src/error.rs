//! Errors that stop an ingest run. Bad records never do: they are quarantined instead.

/// Why an ingest run could not complete. Messages name the input and the fix, never an
/// identity from the input.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source '{0}': expected fhir:DIR, csv:FILE, population:FILE, cases:FILE or postgres:CONNSTRING")]
    UnknownSource(String),
    /// The registry database could not be reached or read; worth retrying later.
    #[error("{0}")]
    Source(String),
    /// The registry database refused the pull for a reason retrying cannot fix (wrong
    /// password, no such relation or column, no privilege, a connection string that does not
    /// parse): `--follow` stops on it instead of retrying.
    #[error("{0}")]
    SourceRefused(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadInput { path: String, message: String },
    #[error("warehouse location '{0}' is not a path or URL")]
    BadWarehouse(String),
    /// A reference file compiled in (`sql/reference/`) does not parse.
    #[error(transparent)]
    Catalog(#[from] vaxlake_catalog::CatalogError),
    /// The key given is not the one every table was written with.
    #[error(transparent)]
    Key(#[from] vaxlake_catalog::KeyError),
    #[error(
        "table '{table}' has key id {stored}, which is neither the id of the key given \
         ({from}) nor that of the rotated key chain ({to}); rotate with the key file the \
         warehouse was written with"
    )]
    RotationKeyMismatch {
        table: String,
        stored: String,
        from: String,
        to: String,
    },
    #[error("table '{table}', column {column}: a stored value is not a pseudonym (32 hex characters); the table cannot be re-keyed")]
    NotAPseudonym { table: String, column: String },
    #[error("Delta table '{table}': {source}")]
    Delta {
        table: String,
        source: deltalake::DeltaTableError,
    },
    #[error("query over '{table}': {source}")]
    DataFusion {
        table: String,
        source: datafusion::error::DataFusionError,
    },
    #[error("building Arrow data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The warehouse's complement-order secret could not be read or created (the reason
    /// never quotes its bytes).
    #[error("complement-order secret of the warehouse {warehouse}: {reason}")]
    OrderSecret { warehouse: String, reason: String },
    /// A lock of a warehouse on object storage could not be read or taken (see `lease.rs`).
    #[error("{lock}: {reason}")]
    Lock { lock: String, reason: String },
    #[error("worker thread failed: {0}")]
    Worker(String),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
