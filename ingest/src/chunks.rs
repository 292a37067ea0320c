//! Reading newline-delimited files in chunks parsed on every core.
//!
//! NDJSON splits cleanly at newlines, so a reader thread cuts the files into chunks of a few
//! MB at line boundaries and worker threads parse them independently. Parsed chunks are handed
//! on in file order, whatever order the workers finish them in: a record's later version
//! (a correction, an entered-in-error) follows its first version in the export, and the
//! batches committed must keep that order, or a deletion committed before the row it deletes
//! is lost. At most a few chunks per worker are read and not yet handed on, so memory stays
//! bounded whatever the input size: a line longer than [`MAX_LINE_BYTES`] (a file with no
//! newline at all, say) is not held but skipped to its end and reported as too long.

use crate::error::IngestError;
use crate::progress::Progress;
use crate::row::Rejected;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// The longest line (or CSV record) a reader keeps, newline excluded: 64 MiB. A longer one
/// is quarantined as such and skipped to its end without being held, so that a file with no
/// newline (hostile, or a binary file given by mistake) costs this much memory per chunk in
/// flight rather than its whole size.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Why a line is not handed on: it was longer than the readers' limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit it exceeded, in bytes.
    pub limit: usize,
}

impl LineTooLong {
    /// The quarantine row of line `line` of `source`, not kept: its hash is that of its
    /// position (distinct for each such line, and the same on a re-run).
    pub fn rejected(
        self,
        source: &Arc<str>,
        line: u64,
        record_hash: impl FnOnce(&[u8]) -> [u8; 16],
    ) -> Rejected {
        Rejected {
            source: source.clone(),
            line,
            reason: self.to_string(),
            record_hash: record_hash(format!("{source}:{line}: {self}").as_bytes()),
        }
    }
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => {
                write!(f, "a line longer than {} MiB", n >> 20)
            }
            n => write!(f, "a line longer than {n} bytes"),
        }
    }
}

/// A run of whole lines from one file.
pub struct Chunk {
    /// Index of the file in the list given to [`spawn`].
    pub file: usize,
    /// 1-based number of the chunk's first line in its file.
    pub first_line: u64,
    pub data: Vec<u8>,
    /// Numbers of the lines too long to keep, in order: each stands in `data` as an empty line.
    pub too_long: Vec<u64>,
    /// The limit those lines exceeded.
    pub max_line: usize,
}

impl Chunk {
    /// A chunk of `data` whose lines are all kept (tests build them by hand).
    #[cfg(test)]
    pub fn new(file: usize, first_line: u64, data: Vec<u8>) -> Self {
        Chunk {
            file,
            first_line,
            data,
            too_long: Vec::new(),
            max_line: MAX_LINE_BYTES,
        }
    }

    /// The chunk's lines with their 1-based line numbers (a final empty remainder excluded),
    /// or why a line was not kept. A byte order mark opening a file (as some Windows tools
    /// write) is not part of its first record.
    pub fn lines(&self) -> impl Iterator<Item = (u64, Result<&[u8], LineTooLong>)> {
        let data = match self.first_line {
            1 => self
                .data
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(&self.data),
            _ => &self.data,
        };
        let empty = data.is_empty();
        let data = data.strip_suffix(b"\n").unwrap_or(data);
        let mut too_long = self.too_long.iter().copied().peekable();
        let limit = LineTooLong {
            limit: self.max_line,
        };
        data.split(|b| *b == b'\n')
            .filter(move |_| !empty)
            .enumerate()
            .map(move |(i, line)| {
                let n = self.first_line + i as u64;
                if too_long.next_if_eq(&n).is_some() {
                    return (n, Err(limit));
                }
                (n, Ok(line.strip_suffix(b"\r").unwrap_or(line)))
            })
    }
}

const CHUNK_BYTES: usize = 4 << 20;

/// Starts the reader and `workers` parser threads over `files`; parsed chunks arrive on the
/// returned channel in file order. A read error arrives as the last item.
pub fn spawn<T, F>(
    files: Vec<PathBuf>,
    workers: usize,
    progress: Progress,
    parse: F,
) -> tokio::sync::mpsc::Receiver<Result<T, IngestError>>
where
    T: Send + 'static,
    F: Fn(&Chunk) -> T + Send + Sync + 'static,
{
    spawn_sized(files, workers, progress, parse, CHUNK_BYTES, MAX_LINE_BYTES)
}

/// [`spawn`] with chunks of about `chunk_bytes` and lines of at most `max_line` bytes (tests
/// cut small ones). Chunks are no larger than a line may be, so that only a line begun in an
/// earlier read can pass the limit.
fn spawn_sized<T, F>(
    files: Vec<PathBuf>,
    workers: usize,
    progress: Progress,
    parse: F,
    chunk_bytes: usize,
    max_line: usize,
) -> tokio::sync::mpsc::Receiver<Result<T, IngestError>>
where
    T: Send + 'static,
    F: Fn(&Chunk) -> T + Send + Sync + 'static,
{
    let workers = workers.max(1);
    let chunk_bytes = chunk_bytes.clamp(1, max_line.max(1));
    // Chunks read and not yet handed on: the reader takes a ticket per chunk, the orderer gives
    // it back once the chunk has gone out in order. A slow chunk therefore holds up reading,
    // not memory.
    let in_flight = workers * 3;
    let (ticket_tx, ticket_rx) = crossbeam_channel::bounded::<()>(in_flight);
    for _ in 0..in_flight {
        ticket_tx.send(()).expect("room for every ticket");
    }
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<(u64, Chunk)>(workers * 2);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(u64, Result<T, IngestError>)>();
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(workers * 2);
    let parse = Arc::new(parse);

    let reader_done = done_tx.clone();
    std::thread::spawn(move || {
        let mut sequence = 0u64;
        let result = read_chunks(&files, &progress, chunk_bytes, max_line, |chunk| {
            if ticket_rx.recv().is_err() {
                return false;
            }
            let sent = chunk_tx.send((sequence, chunk)).is_ok();
            sequence += 1;
            sent
        });
        if let Err(e) = result {
            let _ = reader_done.send((sequence, Err(e)));
        }
    });
    for _ in 0..workers {
        let rx = chunk_rx.clone();
        let tx = done_tx.clone();
        let parse = parse.clone();
        std::thread::spawn(move || {
            for (sequence, chunk) in rx {
                if tx.send((sequence, Ok(parse(&chunk)))).is_err() {
                    break;
                }
            }
        });
    }
    drop(done_tx);
    // The orderer: hands parsed chunks on by sequence number.
    std::thread::spawn(move || {
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0u64;
        for (sequence, parsed) in done_rx {
            waiting.insert(sequence, parsed);
            while let Some(parsed) = waiting.remove(&next) {
                let failed = parsed.is_err();
                if out_tx.blocking_send(parsed).is_err() || failed {
                    return;
                }
                next += 1;
                // The reader may be gone (all read); a lost ticket is no loss then.
                let _ = ticket_tx.send(());
            }
        }
    });
    out_rx
}

/// Cuts `files` into chunks of whole lines and gives each to `send`, in order; stops early when
/// `send` returns false (nobody wants more).
///
/// Only the bytes just read are searched for newlines (a line of many reads is not scanned
/// again for each). A line longer than `max_line` is dropped as soon as it is known to be,
/// and the rest of it read and discarded up to its newline: it stands in its chunk as an
/// empty line listed in [`Chunk::too_long`]. A chunk therefore holds at most
/// `max_line + chunk_bytes` bytes (twice that allocated at worst, as a `Vec` grows).
fn read_chunks(
    files: &[PathBuf],
    progress: &Progress,
    chunk_bytes: usize,
    max_line: usize,
    mut send: impl FnMut(Chunk) -> bool,
) -> Result<(), IngestError> {
    let mut block = vec![0u8; chunk_bytes.max(1)];
    for (file, path) in files.iter().enumerate() {
        let read_err = |source| IngestError::Read {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::File::open(path).map_err(read_err)?;
        // Whole lines not yet sent, then the start of the line being read (from `line_start`).
        let mut data: Vec<u8> = Vec::new();
        let mut line_start = 0usize;
        let mut too_long: Vec<u64> = Vec::new();
        let mut first_line = 1u64;
        // The number of a line too long to keep while discarding it up to its newline.
        let mut skipping: Option<u64> = None;
        let line_number = |data: &[u8], line_start: usize, first_line: u64| {
            first_line + data[..line_start].iter().filter(|b| **b == b'\n').count() as u64
        };
        loop {
            let mut filled = 0;
            while filled < block.len() {
                let n = f.read(&mut block[filled..]).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let at_end = filled < block.len();
            progress.advance(filled as u64);
            let mut rest = &block[..filled];
            while !rest.is_empty() {
                let newline = rest.iter().position(|b| *b == b'\n');
                if let Some(n) = skipping {
                    match newline {
                        Some(i) => {
                            skipping = None;
                            too_long.push(n);
                            data.push(b'\n');
                            line_start = data.len();
                            rest = &rest[i + 1..];
                        }
                        None => rest = &[],
                    }
                    continue;
                }
                match newline {
                    Some(i) => {
                        // The line begun before ends here.
                        if data.len() - line_start + i > max_line {
                            too_long.push(line_number(&data, line_start, first_line));
                            data.truncate(line_start);
                            data.push(b'\n');
                        } else {
                            data.extend_from_slice(&rest[..=i]);
                        }
                        rest = &rest[i + 1..];
                        // Lines wholly in this read are no longer than it, nor than the limit.
                        if let Some(j) = rest.iter().rposition(|b| *b == b'\n') {
                            data.extend_from_slice(&rest[..=j]);
                            rest = &rest[j + 1..];
                        }
                        line_start = data.len();
                    }
                    None => {
                        if data.len() - line_start + rest.len() > max_line {
                            skipping = Some(line_number(&data, line_start, first_line));
                            data.truncate(line_start);
                        } else {
                            data.extend_from_slice(rest);
                        }
                        rest = &[];
                    }
                }
            }
            let cut = if at_end {
                // A too-long last line without a newline still stands as a line.
                if let Some(n) = skipping.take() {
                    too_long.push(n);
                    data.push(b'\n');
                }
                data.len()
            } else {
                line_start
            };
            if cut > 0 {
                let tail = data.split_off(cut);
                let chunk_data = std::mem::replace(&mut data, tail);
                line_start = 0;
                let lines = chunk_data.iter().filter(|b| **b == b'\n').count() as u64
                    + u64::from(!chunk_data.ends_with(b"\n"));
                let chunk = Chunk {
                    file,
                    first_line,
                    data: chunk_data,
                    too_long: std::mem::take(&mut too_long),
                    max_line,
                };
                first_line += lines;
                if !send(chunk) {
                    return Ok(());
                }
            }
            if at_end {
                break;
            }
        }
    }
    Ok(())
}

/// The files of one resource type in a FHIR Bulk Data export folder: `Type.ndjson`, then
/// `Type.001.ndjson`, `Type.002.ndjson`, ... in name order.
pub fn export_files(
    dir: &std::path::Path,
    resource_type: &str,
) -> Result<Vec<PathBuf>, IngestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| IngestError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("{resource_type}.")) && n.ends_with(".ndjson")
            })
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_across_chunks() {
        let c = Chunk::new(0, 7, b"a\r\nb\n\nc\n".to_vec());
        let got: Vec<_> = c.lines().map(|(n, l)| (n, l.unwrap().to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (7, b"a".to_vec()),
                (8, b"b".to_vec()),
                (9, vec![]),
                (10, b"c".to_vec())
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_opening_a_file_is_not_part_of_its_first_line() {
        let lines = |first_line| {
            let c = Chunk::new(0, first_line, b"\xEF\xBB\xBFa\r\nb".to_vec());
            c.lines()
                .map(|(_, l)| l.unwrap().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(1), vec![b"a".to_vec(), b"b".to_vec()]);
        // Further into the file it is data, and the record is refused as it stands.
        assert_eq!(lines(5)[0], b"\xEF\xBB\xBFa".to_vec());
    }

    /// A 10 MB line read in 64 KiB chunks (160 reads) arrives whole, between its neighbours,
    /// and in linear time: the reader looks for a newline only in the bytes it just read.
    #[tokio::test]
    async fn a_line_spanning_many_chunks_arrives_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        let long = "x".repeat(10 << 20);
        std::fs::write(&path, format!("a\n{long}\nb\n")).unwrap();
        let started = std::time::Instant::now();
        let mut rx = spawn_sized(
            vec![path],
            2,
            Progress::hidden(),
            |c: &Chunk| {
                c.lines()
                    .map(|(n, l)| (n, l.unwrap().len()))
                    .collect::<Vec<_>>()
            },
            64 << 10,
            MAX_LINE_BYTES,
        );
        let mut all = Vec::new();
        while let Some(part) = rx.recv().await {
            all.extend(part.unwrap());
        }
        assert_eq!(all, vec![(1, 1), (2, 10 << 20), (3, 1)]);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[tokio::test]
    async fn chunks_arrive_in_file_order_whatever_order_they_are_parsed_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        let text: String = (1..=3_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        std::fs::write(&path, text).unwrap();
        // Tiny chunks, and every third one parsed slowly, so the workers finish out of order.
        let mut rx = spawn_sized(
            vec![path],
            4,
            Progress::hidden(),
            |c: &Chunk| {
                if c.first_line % 3 == 1 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                c.lines().map(|(n, _)| n).collect::<Vec<_>>()
            },
            256,
            MAX_LINE_BYTES,
        );
        let mut all = Vec::new();
        let mut chunks = 0;
        while let Some(part) = rx.recv().await {
            all.extend(part.unwrap());
            chunks += 1;
        }
        assert!(chunks > 50, "{chunks} chunks");
        assert_eq!(all, (1..=3_000).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn every_line_arrives_once_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        let text: String = (1..=200_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let mut rx = spawn(vec![path], 2, Progress::hidden(), |c: &Chunk| {
            c.lines()
                .map(|(n, l)| (n, std::str::from_utf8(l.unwrap()).unwrap().to_string()))
                .collect::<Vec<_>>()
        });
        let mut all = Vec::new();
        while let Some(part) = rx.recv().await {
            all.extend(part.unwrap());
        }
        all.sort();
        assert_eq!(all.len(), 200_000);
        for (i, (n, l)) in all.iter().enumerate() {
            assert_eq!(*n, i as u64 + 1);
            assert_eq!(l, &format!("{{\"n\":{n}}}"));
        }
    }

    /// Lines as a test's parser sees them: the text, or the reason it was not kept.
    fn read_all(text: &[u8], chunk_bytes: usize, max_line: usize) -> Vec<(u64, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        std::fs::write(&path, text).unwrap();
        let mut rx = spawn_sized(
            vec![path],
            2,
            Progress::hidden(),
            |c: &Chunk| {
                c.lines()
                    .map(|(n, l)| match l {
                        Ok(l) => (n, String::from_utf8_lossy(l).into_owned()),
                        Err(e) => (n, e.to_string()),
                    })
                    .collect::<Vec<_>>()
            },
            chunk_bytes,
            max_line,
        );
        let mut all = Vec::new();
        while let Some(part) = rx.blocking_recv() {
            all.extend(part.unwrap());
        }
        all
    }

    fn owned(lines: &[(u64, &str)]) -> Vec<(u64, String)> {
        lines.iter().map(|(n, l)| (*n, l.to_string())).collect()
    }

    /// A line over the limit in the middle of a file, whatever the chunk size and wherever
    /// chunk edges fall: its neighbours arrive, it arrives as "too long" with its number, and
    /// so does a line just over the limit; a line exactly at the limit is kept.
    #[test]
    fn a_line_over_the_limit_is_reported_and_reading_goes_on() {
        let huge = "h".repeat(1000);
        let at_limit = "k".repeat(32);
        let over = "o".repeat(33);
        let text = format!("a\n{huge}\nb\n{at_limit}\n{over}\r\n\nc\n");
        let want = owned(&[
            (1, "a"),
            (2, "a line longer than 32 bytes"),
            (3, "b"),
            (4, &at_limit),
            (5, "a line longer than 32 bytes"),
            (6, ""),
            (7, "c"),
        ]);
        for chunk_bytes in [1, 2, 3, 5, 8, 31, 32, 64, 4096] {
            assert_eq!(
                read_all(text.as_bytes(), chunk_bytes, 32),
                want,
                "chunks of {chunk_bytes}"
            );
        }
    }

    /// A last line over the limit with no newline, and a file that is nothing but one: each
    /// arrives as one line, too long, and nothing else is lost; in CRLF files alike.
    #[test]
    fn a_last_line_over_the_limit_without_a_newline_is_reported() {
        let huge = "h".repeat(100);
        for ending in ["\n", "\r\n"] {
            for chunk_bytes in [1, 7, 16, 4096] {
                let text = format!("a{ending}b{ending}{huge}");
                assert_eq!(
                    read_all(text.as_bytes(), chunk_bytes, 16),
                    owned(&[(1, "a"), (2, "b"), (3, "a line longer than 16 bytes")]),
                    "{ending:?}, chunks of {chunk_bytes}"
                );
                assert_eq!(
                    read_all(huge.as_bytes(), chunk_bytes, 16),
                    owned(&[(1, "a line longer than 16 bytes")])
                );
                let text = format!("{huge}{ending}{huge}{ending}a{ending}");
                assert_eq!(
                    read_all(text.as_bytes(), chunk_bytes, 16),
                    owned(&[
                        (1, "a line longer than 16 bytes"),
                        (2, "a line longer than 16 bytes"),
                        (3, "a")
                    ])
                );
            }
        }
    }

    /// The reader does not hold a line over the limit while skipping it: every chunk it hands
    /// on stays within the limit plus one read, for a 4 MiB line with a 64 KiB limit.
    #[test]
    fn a_line_over_the_limit_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson");
        let mut text = b"a\n".to_vec();
        text.resize(4 << 20, b'x');
        text.extend_from_slice(b"\nb");
        std::fs::write(&path, &text).unwrap();
        let mut largest = 0;
        let mut lines = Vec::new();
        read_chunks(&[path], &Progress::hidden(), 16 << 10, 64 << 10, |c| {
            largest = largest.max(c.data.len());
            lines.extend(c.lines().map(|(n, l)| (n, l.is_ok())));
            true
        })
        .unwrap();
        assert_eq!(lines, [(1, true), (2, false), (3, true)]);
        assert!(largest <= (64 << 10) + (16 << 10), "{largest} bytes held");
        assert_eq!(
            LineTooLong {
                limit: MAX_LINE_BYTES
            }
            .to_string(),
            "a line longer than 64 MiB"
        );
    }
}
