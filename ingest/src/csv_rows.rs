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

/// A reader that turns every CRLF into LF and notes where blank lines are. The CSV reader
/// dates a record by the line where it starts reading it: in a CRLF file that is before the
/// `\n` of the previous line's ending, and after blank lines it is the first blank line.
/// Without this every record of a Windows export would be quarantined one line too early
/// (the first one on the header's line), and every record after a blank line too.
struct LfLines<R> {
    inner: R,
    /// A `\r` ended the last buffer: dropped if a `\n` follows, else handed on.
    cr_pending: bool,
    /// Bytes handed on so far, and whether the last one was a `\n`.
    offset: u64,
    after_newline: bool,
    blank: BlankLines,
}

/// Offsets (in the LF text) of the `\n` of each blank line not yet passed by the reader.
#[derive(Clone, Default)]
struct BlankLines(Arc<std::sync::Mutex<std::collections::VecDeque<u64>>>);

impl BlankLines {
    /// How many blank lines start at `offset`, where a record's reading began; forgets
    /// those before it.
    fn skipped_at(&self, offset: u64) -> u64 {
        let mut blank = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while blank.front().is_some_and(|b| *b < offset) {
            blank.pop_front();
        }
        let mut count = 0;
        while blank.front() == Some(&(offset + count)) {
            blank.pop_front();
            count += 1;
        }
        count
    }
}

impl<R: std::io::BufRead> LfLines<R> {
    fn new(inner: R, blank: BlankLines) -> Self {
        LfLines {
            inner,
            cr_pending: false,
            offset: 0,
            after_newline: false,
            blank,
        }
    }

    /// Notes the bytes just handed on.
    fn note(&mut self, out: &[u8]) {
        let mut blank = None;
        for (i, byte) in out.iter().enumerate() {
            let newline = *byte == b'\n';
            if newline && self.after_newline {
                blank
                    .get_or_insert_with(|| self.blank.0.lock().unwrap_or_else(|e| e.into_inner()))
                    .push_back(self.offset + i as u64);
            }
            self.after_newline = newline;
        }
        self.offset += out.len() as u64;
    }
}

impl<R: std::io::BufRead> std::io::Read for LfLines<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                // The end: a last lone `\r` is data.
                if std::mem::take(&mut self.cr_pending) {
                    out[0] = b'\r';
                    self.note(&out[..1]);
                    return Ok(1);
                }
                return Ok(0);
            }
            let mut written = 0;
            if std::mem::take(&mut self.cr_pending) && buf[0] != b'\n' {
                out[0] = b'\r';
                written = 1;
            }
            let mut used = 0;
            while used < buf.len() && written < out.len() {
                let byte = buf[used];
                used += 1;
                if byte == b'\r' {
                    match buf.get(used) {
                        Some(b'\n') => continue,
                        None => {
                            self.cr_pending = true;
                            break;
                        }
                        Some(_) => {}
                    }
                }
                out[written] = byte;
                written += 1;
            }
            self.inner.consume(used);
            // Nothing handed on yet (a buffer of a single `\r`): read on, since 0 means the end.
            if written > 0 {
                self.note(&out[..written]);
                return Ok(written);
            }
        }
    }
}

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
    let blank = BlankLines::default();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(LfLines::new(
            std::io::BufReader::with_capacity(1 << 20, progress.wrap_read(file)),
            blank.clone(),
        ));
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
            let line = record
                .position()
                .map_or(0, |p| p.line() + blank.skipped_at(p.byte()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Every way a CRLF can fall across the reader's buffers, and lone `\r`s, kept.
    #[test]
    fn crlf_becomes_lf_across_buffer_edges() {
        let text = b"a,b\r\nc\r\r\nd\re\r\n\r\n\r";
        for capacity in 1..=text.len() + 1 {
            for out_len in [1, 2, 3, 64] {
                let mut reader = LfLines::new(
                    std::io::BufReader::with_capacity(capacity, &text[..]),
                    BlankLines::default(),
                );
                let mut got = Vec::new();
                let mut out = vec![0; out_len];
                loop {
                    let n = reader.read(&mut out).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&out[..n]);
                }
                assert_eq!(
                    got, b"a,b\nc\r\nd\re\n\n\r",
                    "capacity {capacity}, out {out_len}"
                );
            }
        }
    }

    /// The position of a rejected row is the line where it starts, in a CRLF file as in an LF
    /// file, after blank lines and after a quoted field that holds a line break.
    #[test]
    fn rows_of_a_crlf_file_are_numbered_by_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        for ending in ["\n", "\r\n"] {
            let path = dir.path().join("x.csv");
            let text =
                ["national_id", "1", "2", "", "", "3", "\"4", "\"", "5"].join(ending) + ending;
            std::fs::write(&path, text).unwrap();
            let mut rx = spawn(
                &path,
                "optout:x.csv".into(),
                &["national_id"],
                Progress::hidden(),
                |_| [0; 16],
                |f: &Fields, _| Err::<(), _>(format!("refused {}", f.get(0))),
            )
            .unwrap();
            let part = rx.blocking_recv().unwrap().unwrap();
            let lines: Vec<(u64, &str)> = part
                .rejected
                .iter()
                .map(|r| (r.line, r.reason.as_str()))
                .collect();
            assert_eq!(
                lines,
                [
                    (2, "refused 1"),
                    (3, "refused 2"),
                    (6, "refused 3"),
                    (7, "refused 4"),
                    (9, "refused 5")
                ],
                "{ending:?}"
            );
        }
    }
}
