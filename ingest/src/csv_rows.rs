//! Reading a CSV file with a known header on a thread of its own, in chunks of parsed rows.
//!
//! Shared by the registry CSV, case notifications and population sources: each supplies the
//! column names it needs and a function from one row to a staged value or a reason.

use crate::chunks::{LineTooLong, MAX_LINE_BYTES};
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

/// A reader that turns every CRLF (and every lone CR, as old Mac tools end lines) into LF,
/// drops blank lines, and hands records on whole, each no longer than a limit. The CSV reader
/// dates a record by the line where it starts reading it: in a CRLF file that is before the
/// `\n` of the previous line's ending, and after blank lines it is the first blank line.
/// Without this every record of a Windows export would be quarantined one line too early
/// (the first one on the header's line), and every record after a blank line too. The lines
/// dropped are noted in [`Dropped`] for the rows' reader to number rows by the file's lines.
///
/// The CSV reader holds a whole record in memory, and a record is as long as its file when
/// it has no newline (or opens a quote it never closes). So a record is held here until it
/// ends, up to [`MAX_LINE_BYTES`]; a longer one is dropped, the rest of it discarded up to
/// the next newline, and a one-byte line stands in its place, noted in [`Dropped`] for the
/// rows' reader to quarantine. The CSV reader therefore never sees an open quote across a
/// dropped record, and reading goes on at the next line.
struct LfLines<R> {
    inner: R,
    /// A `\r` ended the last buffer: dropped if a `\n` follows, else a line end.
    cr_pending: bool,
    records: Records,
    at_end: bool,
}

/// Where a record stands in CSV quoting (RFC 4180, as the `csv` crate reads it by default).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field: a `"` opens a quoted field.
    FieldStart,
    /// In an unquoted field (or after a quoted field's end): a `"` is data.
    Field,
    /// In a quoted field: a `\n` is data.
    Quoted,
    /// A `"` in a quoted field: either the field's end or, doubled, a quote.
    QuoteInQuoted,
}

/// Records cut from the LF text: whole ones ready to hand on, and the one being read.
struct Records {
    ready: Vec<u8>,
    /// How much of `ready` is handed on.
    handed: usize,
    /// Bytes put in `ready` so far, whole text: the offset of the next record.
    emitted: u64,
    record: Vec<u8>,
    quoting: Quoting,
    max: usize,
    /// Discarding the rest of a record too long to keep: the line breaks it had.
    skipping: Option<u64>,
    dropped: Dropped,
}

/// What stands for a record too long to keep: a line of one field.
const STAND_IN: &[u8] = b"-\n";

impl Records {
    fn new(max: usize, dropped: Dropped) -> Self {
        Records {
            ready: Vec::new(),
            handed: 0,
            emitted: 0,
            record: Vec::new(),
            quoting: Quoting::FieldStart,
            max,
            skipping: None,
            dropped,
        }
    }

    /// Takes the next byte of the LF text.
    fn push(&mut self, byte: u8) {
        if let Some(lines) = self.skipping {
            if byte == b'\n' {
                self.skipping = None;
                self.stand_in(lines);
            }
            return;
        }
        if byte == b'\n' && self.quoting != Quoting::Quoted {
            if self.record.is_empty() {
                // A blank line: no record (the CSV reader would skip it), one line dropped.
                self.dropped.push(self.emitted, DroppedLine::Blank);
                return;
            }
            self.record.push(byte);
            self.end_record();
            return;
        }
        if self.record.len() >= self.max {
            let lines = self.record.iter().filter(|b| **b == b'\n').count() as u64;
            self.record.clear();
            self.quoting = Quoting::FieldStart;
            if byte == b'\n' {
                self.stand_in(lines);
            } else {
                self.skipping = Some(lines);
            }
            return;
        }
        self.record.push(byte);
        self.quoting = match (self.quoting, byte) {
            (Quoting::FieldStart, b'"') => Quoting::Quoted,
            (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => Quoting::Quoted,
            (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
            (_, b',') => Quoting::FieldStart,
            _ => Quoting::Field,
        };
    }

    /// The text has ended: a last record without a line end goes out as it is.
    fn finish(&mut self) {
        match self.skipping.take() {
            Some(lines) => self.stand_in(lines),
            None => self.end_record(),
        }
    }

    fn end_record(&mut self) {
        self.ready.extend_from_slice(&self.record);
        self.emitted += self.record.len() as u64;
        self.record.clear();
        self.quoting = Quoting::FieldStart;
    }

    /// Hands on a stand-in for a record dropped with the line breaks it had (one of them is
    /// the stand-in's own).
    fn stand_in(&mut self, lines: u64) {
        self.dropped.push(self.emitted, DroppedLine::StandIn(lines));
        self.ready.extend_from_slice(STAND_IN);
        self.emitted += STAND_IN.len() as u64;
    }
}

/// A line of the file the CSV reader does not see as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DroppedLine {
    /// A blank line, left out of the text.
    Blank,
    /// A record too long to keep, in the text as [`STAND_IN`]: the line breaks dropped with
    /// it beyond the stand-in's own.
    StandIn(u64),
}

/// The lines the CSV reader does not see as they are, each at the offset (in the text it
/// reads) of the record that follows: rows are numbered by the file's lines, not the text's.
#[derive(Clone, Default)]
struct Dropped(Arc<std::sync::Mutex<std::collections::VecDeque<(u64, DroppedLine)>>>);

impl Dropped {
    fn push(&self, offset: u64, drop: DroppedLine) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.push_back((offset, drop));
    }

    /// For a record starting at `offset`: the lines dropped before it (since the last call),
    /// and whether it is a stand-in (with the line breaks dropped with it).
    fn at(&self, offset: u64) -> (u64, Option<u64>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut before = 0;
        while let Some((at, drop)) = list.front().copied().filter(|(at, _)| *at <= offset) {
            list.pop_front();
            match drop {
                DroppedLine::Blank => before += 1,
                DroppedLine::StandIn(lines) if at == offset => return (before, Some(lines)),
                DroppedLine::StandIn(lines) => before += lines,
            }
        }
        (before, None)
    }
}

impl<R: std::io::BufRead> LfLines<R> {
    fn new(inner: R, max_record: usize, dropped: Dropped) -> Self {
        LfLines {
            inner,
            cr_pending: false,
            records: Records::new(max_record, dropped),
            at_end: false,
        }
    }
}

impl<R: std::io::BufRead> std::io::Read for LfLines<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let records = &mut self.records;
            if records.handed < records.ready.len() {
                let ready = &records.ready[records.handed..];
                let n = ready.len().min(out.len());
                out[..n].copy_from_slice(&ready[..n]);
                records.handed += n;
                return Ok(n);
            }
            if self.at_end {
                return Ok(0);
            }
            records.ready.clear();
            records.handed = 0;
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                // The end: a last lone `\r` ends the last line.
                if std::mem::take(&mut self.cr_pending) {
                    records.push(b'\n');
                }
                records.finish();
                self.at_end = true;
                continue;
            }
            let mut used = 0;
            if std::mem::take(&mut self.cr_pending) {
                records.push(b'\n');
                used += usize::from(buf[0] == b'\n');
            }
            while used < buf.len() {
                let byte = buf[used];
                used += 1;
                if byte == b'\r' {
                    match buf.get(used) {
                        Some(b'\n') => used += 1,
                        None => {
                            self.cr_pending = true;
                            break;
                        }
                        Some(_) => {}
                    }
                    records.push(b'\n');
                } else {
                    records.push(byte);
                }
            }
            self.inner.consume(used);
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
    spawn_limited(
        path,
        source,
        required,
        progress,
        record_hash,
        parse,
        MAX_LINE_BYTES,
    )
}

/// [`spawn`] with records of at most `max_record` bytes (tests set small ones).
fn spawn_limited<T, F>(
    path: &Path,
    source: Arc<str>,
    required: &'static [&'static str],
    progress: Progress,
    record_hash: impl Fn(&[u8]) -> [u8; 16] + Send + 'static,
    parse: F,
    max_record: usize,
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
    let dropped = Dropped::default();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(LfLines::new(
            std::io::BufReader::with_capacity(1 << 20, progress.wrap_read(file)),
            max_record,
            dropped.clone(),
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
        // Lines of the file the CSV reader did not see (blank lines, and the line breaks of
        // records too long to keep beyond the one of each stand-in).
        let mut dropped_lines = 0;
        let too_long = LineTooLong { limit: max_record };
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
            let (line, stand_in) = match record.position() {
                None => (0, None),
                Some(p) => {
                    let (before, stand_in) = dropped.at(p.byte());
                    dropped_lines += before;
                    (p.line() + dropped_lines, stand_in)
                }
            };
            part.read += 1;
            if let Some(lines) = stand_in {
                dropped_lines += lines;
                part.rejected
                    .push(too_long.rejected(&source, line, &record_hash));
            } else {
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

    /// Every way a CRLF can fall across the reader's buffers, and lone `\r`s, as line ends;
    /// blank lines (of either ending) are left out and noted.
    #[test]
    fn crlf_becomes_lf_across_buffer_edges() {
        let text = b"a,b\r\nc\r\r\nd\re\r\n\r\n\r";
        for capacity in 1..=text.len() + 1 {
            for out_len in [1, 2, 3, 64] {
                let dropped = Dropped::default();
                let mut reader = LfLines::new(
                    std::io::BufReader::with_capacity(capacity, &text[..]),
                    MAX_LINE_BYTES,
                    dropped.clone(),
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
                // The blank lines are left out, each noted at the offset of the text after it.
                assert_eq!(got, b"a,b\nc\nd\ne\n", "capacity {capacity}, out {out_len}");
                let blank = |at| (at, DroppedLine::Blank);
                assert_eq!(
                    Vec::from(dropped.0.lock().unwrap().clone()),
                    [blank(6), blank(10), blank(10)],
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

    /// The rows of `text` (one column `national_id`, every row refused with its value) with
    /// records of at most 16 bytes: (line, reason), and the rows read.
    fn refused_rows(text: &str) -> (Vec<(u64, String)>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text).unwrap();
        let mut rx = spawn_limited(
            &path,
            "optout:x.csv".into(),
            &["national_id"],
            Progress::hidden(),
            |_| [0; 16],
            |f: &Fields, _| Err::<(), _>(format!("refused {}", f.get(0).replace('\n', "|"))),
            16,
        )
        .unwrap();
        let mut rows = Vec::new();
        let mut read = 0;
        while let Some(part) = rx.blocking_recv() {
            let part = part.unwrap();
            read += part.read;
            assert!(part.rows.is_empty());
            rows.extend(part.rejected.iter().map(|r| (r.line, r.reason.clone())));
        }
        (rows, read)
    }

    fn owned(rows: &[(u64, &str)]) -> Vec<(u64, String)> {
        rows.iter().map(|(n, r)| (*n, r.to_string())).collect()
    }

    /// A row over the limit between others, in LF, CRLF and lone-CR files: it is quarantined
    /// with its line, every other row is read with its own, and read = rows reported.
    #[test]
    fn a_row_over_the_limit_is_quarantined_and_reading_goes_on() {
        let huge = "9".repeat(10_000);
        for ending in ["\n", "\r\n", "\r"] {
            let text = [
                "national_id",
                "1",
                &huge,
                "2",
                "",
                &"3".repeat(16),
                &"4".repeat(17),
                "5",
            ]
            .join(ending)
                + ending;
            let (rows, read) = refused_rows(&text);
            let long = "a line longer than 16 bytes";
            let at_limit = format!("refused {}", "3".repeat(16));
            assert_eq!(
                rows,
                owned(&[
                    (2, "refused 1"),
                    (3, long),
                    (4, "refused 2"),
                    (6, &at_limit),
                    (7, long),
                    (8, "refused 5"),
                ]),
                "{ending:?}"
            );
            assert_eq!(read, 6);
        }
        // Blank lines just before a row over the limit: both are counted.
        let text = format!("national_id\n\n\r\n{}\n1\n", "4".repeat(17));
        assert_eq!(
            refused_rows(&text),
            (
                owned(&[(4, "a line longer than 16 bytes"), (5, "refused 1")]),
                2
            )
        );
    }

    /// A last row over the limit with no line end is quarantined; so is a file of one line
    /// with no line end at all (its header: the file is refused, nothing is held).
    #[test]
    fn a_last_row_over_the_limit_without_a_line_end_is_quarantined() {
        let huge = "9".repeat(10_000);
        for ending in ["\n", "\r\n"] {
            let (rows, read) = refused_rows(&format!("national_id{ending}1{ending}{huge}"));
            assert_eq!(
                rows,
                owned(&[(2, "refused 1"), (3, "a line longer than 16 bytes")])
            );
            assert_eq!(read, 2);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, &huge).unwrap();
        let err = spawn_limited(
            &path,
            "optout:x.csv".into(),
            &["national_id"],
            Progress::hidden(),
            |_| [0; 16],
            |_: &Fields, _| Err::<(), _>(String::new()),
            16,
        )
        .expect_err("a header over the limit refuses the file");
        assert!(err.to_string().contains("no column 'national_id'"), "{err}");
    }

    /// A quoted field over several lines counts as one record: kept whole within the limit,
    /// dropped over it (also when its quote never closes), the rows after it numbered by the
    /// file's lines.
    #[test]
    fn a_quoted_record_over_several_lines_counts_whole() {
        let text = "national_id\n\"a\nb\"\n\"c\nd\ne\nf\ng\nh\ni\nj\nk\"\n1\n\"never closed, and long\n2\n3\n";
        let (rows, read) = refused_rows(text);
        let long = "a line longer than 16 bytes";
        assert_eq!(
            rows,
            owned(&[
                (2, "refused a|b"),
                (4, long),
                // Reading goes on at the line after the limit was passed.
                (12, "refused k\""),
                (13, "refused 1"),
                (14, long),
                (15, "refused 2"),
                (16, "refused 3"),
            ])
        );
        assert_eq!(read, 7);
    }
}
