//! Reading newline-delimited files in chunks parsed on every core.
//!
//! NDJSON splits cleanly at newlines, so a reader thread cuts the files into chunks of a few
//! MB at line boundaries and worker threads parse them independently. Parsed chunks are handed
//! on in file order, whatever order the workers finish them in: a record's later version
//! (a correction, an entered-in-error) follows its first version in the export, and the
//! batches committed must keep that order, or a deletion committed before the row it deletes
//! is lost. At most a few chunks per worker are read and not yet handed on, so memory stays
//! bounded whatever the input size.

use crate::error::IngestError;
use crate::progress::Progress;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// A run of whole lines from one file.
pub struct Chunk {
    /// Index of the file in the list given to [`spawn`].
    pub file: usize,
    /// 1-based number of the chunk's first line in its file.
    pub first_line: u64,
    pub data: Vec<u8>,
}

impl Chunk {
    /// The chunk's lines with their 1-based line numbers (a final empty remainder excluded).
    /// A byte order mark opening a file (as some Windows tools write) is not part of its
    /// first record.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let data = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
        let data = match self.first_line {
            1 => data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data),
            _ => data,
        };
        let empty = data.is_empty();
        data.split(|b| *b == b'\n')
            .filter(move |_| !empty)
            .enumerate()
            .map(|(i, line)| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (self.first_line + i as u64, line)
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
    spawn_sized(files, workers, progress, parse, CHUNK_BYTES)
}

/// [`spawn`] with chunks of about `chunk_bytes` (tests cut small ones).
fn spawn_sized<T, F>(
    files: Vec<PathBuf>,
    workers: usize,
    progress: Progress,
    parse: F,
    chunk_bytes: usize,
) -> tokio::sync::mpsc::Receiver<Result<T, IngestError>>
where
    T: Send + 'static,
    F: Fn(&Chunk) -> T + Send + Sync + 'static,
{
    let workers = workers.max(1);
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
        let result = read_chunks(&files, &progress, chunk_bytes, |chunk| {
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

/// Cuts `files` into chunks and gives each to `send`, in order; stops early when `send`
/// returns false (nobody wants more).
fn read_chunks(
    files: &[PathBuf],
    progress: &Progress,
    chunk_bytes: usize,
    mut send: impl FnMut(Chunk) -> bool,
) -> Result<(), IngestError> {
    for (file, path) in files.iter().enumerate() {
        let read_err = |source| IngestError::Read {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::File::open(path).map_err(read_err)?;
        let mut carry: Vec<u8> = Vec::new();
        let mut next_line = 1u64;
        loop {
            let mut buf = std::mem::take(&mut carry);
            let start = buf.len();
            buf.resize(start + chunk_bytes, 0);
            let mut filled = start;
            while filled < buf.len() {
                let n = f.read(&mut buf[filled..]).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            let at_end = filled < start + chunk_bytes;
            if buf.is_empty() {
                break;
            }
            let cut = if at_end {
                buf.len()
            } else {
                // The carried part holds no newline: look in what was just read only, or a
                // line of many chunks would be scanned again for every chunk it spans.
                match buf[start..].iter().rposition(|b| *b == b'\n') {
                    Some(i) => start + i + 1,
                    // A single line longer than a chunk: keep reading until it ends.
                    None => {
                        carry = buf;
                        continue;
                    }
                }
            };
            carry = buf.split_off(cut);
            progress.advance(buf.len() as u64);
            let lines = buf.iter().filter(|b| **b == b'\n').count() as u64
                + u64::from(!buf.ends_with(b"\n"));
            let chunk = Chunk {
                file,
                first_line: next_line,
                data: buf,
            };
            next_line += lines;
            if !send(chunk) {
                return Ok(());
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
        let c = Chunk {
            file: 0,
            first_line: 7,
            data: b"a\r\nb\n\nc\n".to_vec(),
        };
        let got: Vec<_> = c.lines().map(|(n, l)| (n, l.to_vec())).collect();
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
            let c = Chunk {
                file: 0,
                first_line,
                data: b"\xEF\xBB\xBFa\r\nb".to_vec(),
            };
            c.lines().map(|(_, l)| l.to_vec()).collect::<Vec<_>>()
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
            |c: &Chunk| c.lines().map(|(n, l)| (n, l.len())).collect::<Vec<_>>(),
            64 << 10,
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
                .map(|(n, l)| (n, std::str::from_utf8(l).unwrap().to_string()))
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
}
