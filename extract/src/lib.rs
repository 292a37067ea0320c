//! Researcher extracts (CONTRACTS.md, Extracts): row-level data for one approved project,
//! with every key re-keyed to the project ([`vaxlake_pseudonymize::ProjectKey`]), k-anonymous
//! over the spec's quasi-identifiers ([`kanon`]), without the persons who objected (the
//! `optout` table), reproducible (the same spec on the same table versions gives the same
//! bytes) and verifiable (`manifest.json` holds the BLAKE3 of every file). An extract is
//! released only when a second operator approves it ([`approve`]).

pub mod create;
pub mod kanon;
pub mod release;
pub mod spec;

pub use create::{
    create, create_in, extracts_dir_for, open_pinned, CreateOptions, Created, OutputFormat,
};
pub use release::{approve, expire, list, verify, Listed, Verified};
pub use spec::Spec;

/// What can go wrong with an extract; messages name the spec field, file or rule at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("extract spec: {0}")]
    Spec(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Query(#[from] vaxlake_query::QueryError),
    #[error("extract {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("extract data: {0}")]
    Data(String),
    #[error("verification failed: {0}")]
    Verify(String),
}

impl ExtractError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExtractError + '_ {
        move |source| ExtractError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<arrow::error::ArrowError> for ExtractError {
    fn from(error: arrow::error::ArrowError) -> Self {
        ExtractError::Data(error.to_string())
    }
}

impl From<parquet::errors::ParquetError> for ExtractError {
    fn from(error: parquet::errors::ParquetError) -> Self {
        ExtractError::Data(error.to_string())
    }
}

/// Writes `bytes` to the new file `path` and flushes it to disk, so that a directory renamed
/// into place (an extract) or a file renamed over another (an approval) is whole after a
/// crash.
pub(crate) fn write_synced(path: &std::path::Path, bytes: &[u8]) -> Result<(), ExtractError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(ExtractError::io(path))?;
    file.write_all(bytes).map_err(ExtractError::io(path))?;
    file.sync_all().map_err(ExtractError::io(path))
}

/// Flushes a directory's entries (a file created or renamed in it) to disk.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), ExtractError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ExtractError::io(dir))
}

/// Microseconds since the Unix epoch, and the same as RFC 3339 UTC text.
pub(crate) fn now() -> (i64, String) {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    (micros, rfc3339(micros))
}

pub(crate) fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::rfc3339(1_700_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(super::rfc3339(951_782_400_000_000), "2000-02-29T00:00:00Z");
    }
}
