//! Reading a CSV file with a known header on a thread of its own, in chunks of parsed rows.
//!
//! Shared by the registry CSV, case notifications and population sources: each supplies the
//! column names it needs and a function from one row to a staged value or a reason.

use crate::error::IngestError;
use crate::progress::Progress;
use crate::row::{Parsed, Rejected};
use std::path::Path;
use std::sync::Arc;

/// The fields of one row, by the position of each required column in the header.
pub struct Fields<'a> {
    values: Vec<&'a str>,
    index: &'a [usize],
}

impl<'a> Fields<'a> {
    /// Fields read from another source than a CSV file (a database row), by position.
    pub fn new(values: Vec<&'a str>, index: &'a [usize]) -> Self {
        Fields { values, index }
    }

    /// The `i`-th required column's value, trimmed.
    pub fn get(&self, i: usize) -> &'a str {
        self.values[self.index[i]].trim()
    }
    /// The value, or `None` when empty.
    pub fn opt(&self, i: usize) -> Option<&'a str> {
        Some(self.get(i)).filter(|v| !v.is_empty())
    }
}

const CHUNK_ROWS: usize = 50_000;

/// Opens `path`, checks that every column of `required` is in its header (a missing column
/// refuses the whole file before anything is read), then parses rows on a thread.
pub fn spawn<T, F>(
    path: &Path,
    source: Arc<str>,
    required: &'static [&'static str],
    progress: Progress,
    record_hash: impl Fn(&[u8]) -> [u8; 16] + Send + 'static,
    parse: F,
) -> Result<tokio::sync::mpsc::Receiver<Result<Parsed<T>, IngestError>>, IngestError>
where
    T: Send + 'static,
    F: Fn(&Fields, u64) -> Result<T, String> + Send + 'static,
{
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| IngestError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(progress.wrap_read(std::io::BufReader::with_capacity(1 << 20, file)));
    let header = reader.byte_headers().map_err(|e| IngestError::BadInput {
        path: shown.clone(),
        message: format!("cannot read the header line: {e}"),
    })?;
    let names: Vec<String> = header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let width = names.len();
    let index: Vec<usize> = required
        .iter()
        .map(|want| {
            names
                .iter()
                .position(|n| n == want)
                .ok_or_else(|| IngestError::BadInput {
                    path: shown.clone(),
                    message: format!(
                        "header has no column '{want}' (expected columns: {})",
                        required.join(",")
                    ),
                })
        })
        .collect::<Result<_, _>>()?;

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut part = Parsed::default();
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(IngestError::BadInput {
                        path: shown.clone(),
                        message: format!("unreadable CSV: {e}"),
                    }));
                    return;
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            part.read += 1;
            let result = if record.len() != width {
                Err(format!("expected {width} fields, found {}", record.len()))
            } else {
                match record
                    .iter()
                    .map(std::str::from_utf8)
                    .collect::<Result<Vec<_>, _>>()
                {
                    Err(_) => Err("row is not valid UTF-8".to_string()),
                    Ok(values) => parse(
                        &Fields {
                            values,
                            index: &index,
                        },
                        line,
                    ),
                }
            };
            match result {
                Ok(row) => part.rows.push(row),
                Err(reason) => part.rejected.push(Rejected {
                    source: source.clone(),
                    line,
                    reason,
                    record_hash: record_hash(record.as_slice()),
                }),
            }
            if part.read as usize >= CHUNK_ROWS
                && tx.blocking_send(Ok(std::mem::take(&mut part))).is_err()
            {
                return;
            }
        }
        let _ = tx.blocking_send(Ok(part));
    });
    Ok(rx)
}
