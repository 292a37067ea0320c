//! Errors reading the catalogue's files.

/// A reference or view file that does not say what the catalogue expects. Every message
/// names the file and line, so whoever edited it can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}:{line}: {reason}")]
    Line {
        file: &'static str,
        line: u64,
        reason: String,
    },
    #[error("{file}: {reason}")]
    File { file: &'static str, reason: String },
}
