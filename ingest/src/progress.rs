//! How far a long run has come, told to whoever shows it.
//!
//! The library only counts (bytes read by an ingest, rows re-keyed by a rotation); drawing is
//! the caller's business. The `vaxlake` binary turns these calls into terminal progress bars,
//! a server could log them, and tests simply ignore them.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

/// Receives the progress of an ingest or re-key run. Called from parser threads as well as
/// the run's task, so it must be cheap and thread-safe: `advance` arrives once per chunk read.
pub trait ProgressObserver: Send + Sync {
    /// A run of `total` units begins: bytes of input for an ingest, rows for a re-key.
    fn start(&self, total: u64);
    /// What is being worked on now (`Patients`, a table name).
    fn set_message(&self, message: &str);
    /// `amount` more units are done.
    fn advance(&self, amount: u64);
    /// The run is over; whatever was shown can go.
    fn finish(&self);
}

/// A cloneable handle on an optional [`ProgressObserver`]; without one (the default)
/// progress goes nowhere.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn ProgressObserver>>);

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(observed)"
        } else {
            "Progress(hidden)"
        })
    }
}

impl Progress {
    /// Progress reported to `observer`.
    pub fn new(observer: Arc<dyn ProgressObserver>) -> Self {
        Progress(Some(observer))
    }

    /// Progress that goes nowhere.
    pub fn hidden() -> Self {
        Progress(None)
    }

    pub(crate) fn start(&self, total: u64) {
        if let Some(observer) = &self.0 {
            observer.start(total);
        }
    }

    pub(crate) fn set_message(&self, message: &str) {
        if let Some(observer) = &self.0 {
            observer.set_message(message);
        }
    }

    pub(crate) fn advance(&self, amount: u64) {
        if let Some(observer) = &self.0 {
            observer.advance(amount);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(observer) = &self.0 {
            observer.finish();
        }
    }

    /// `reader`, counting every byte read from it as progress.
    pub(crate) fn wrap_read<R: Read>(&self, reader: R) -> CountingReader<R> {
        CountingReader {
            inner: reader,
            progress: self.clone(),
        }
    }
}

/// A reader that reports the bytes read through it (see [`Progress::wrap_read`]).
pub(crate) struct CountingReader<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.progress.advance(read as u64);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ProgressObserver for Recorder {
        fn start(&self, total: u64) {
            self.0.lock().unwrap().push(format!("start {total}"));
        }
        fn set_message(&self, message: &str) {
            self.0.lock().unwrap().push(format!("message {message}"));
        }
        fn advance(&self, amount: u64) {
            self.0.lock().unwrap().push(format!("advance {amount}"));
        }
        fn finish(&self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    #[test]
    fn a_wrapped_reader_reports_every_byte_read() {
        let recorder = Arc::new(Recorder::default());
        let progress = Progress::new(recorder.clone());
        progress.start(11);
        let mut text = String::new();
        progress
            .wrap_read("hello world".as_bytes())
            .read_to_string(&mut text)
            .unwrap();
        progress.finish();
        assert_eq!(text, "hello world");
        let calls = recorder.0.lock().unwrap().clone();
        assert_eq!(calls.first().map(String::as_str), Some("start 11"));
        assert_eq!(calls.last().map(String::as_str), Some("finish"));
        let advanced: u64 = calls
            .iter()
            .filter_map(|call| call.strip_prefix("advance "))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert_eq!(advanced, 11);
    }
}
