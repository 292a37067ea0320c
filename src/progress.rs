//! Terminal progress bars for the library's progress reports (indicatif), shown only when
//! stderr is a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use vaxlake_ingest::{Progress, ProgressObserver};

/// An ingest's bar: bytes of input read.
const INGEST_TEMPLATE: &str =
    "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
/// A key rotation's bar: rows re-keyed, `{msg}` naming the table.
const REKEY_TEMPLATE: &str =
    "{spinner} re-keying {msg} [{bar:40}] {human_pos}/{human_len} rows {per_sec} eta {eta}";

/// An ingest's progress: a bar when `enabled` and stderr is a terminal, else nothing.
pub fn ingest_progress(enabled: bool) -> Progress {
    bars(enabled, INGEST_TEMPLATE)
}

/// A key rotation's progress: a bar when stderr is a terminal, else nothing.
pub fn rekey_progress() -> Progress {
    bars(true, REKEY_TEMPLATE)
}

fn bars(enabled: bool, template: &'static str) -> Progress {
    if enabled && std::io::stderr().is_terminal() {
        Progress::new(Arc::new(Bars {
            template,
            bar: Mutex::new(ProgressBar::hidden()),
        }))
    } else {
        Progress::hidden()
    }
}

/// One bar per run, drawn with `template` (indicatif's syntax).
struct Bars {
    template: &'static str,
    bar: Mutex<ProgressBar>,
}

impl Bars {
    fn bar(&self) -> ProgressBar {
        // ProgressBar is a handle: a clone draws on the same bar.
        self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ProgressObserver for Bars {
    fn start(&self, total: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(self.template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = bar;
    }
    fn set_message(&self, message: &str) {
        self.bar().set_message(message.to_string());
    }
    fn advance(&self, amount: u64) {
        self.bar().inc(amount);
    }
    fn finish(&self) {
        self.bar().finish_and_clear();
    }
}
