//! The one panic the program expects and recovers from, kept out of the user's terminal.
//!
//! When a Parquet upload fails while it completes (a full disk, a lost connection),
//! deltalake aborts it with object_store's `BufWriter::abort`, which panics by design once
//! completion has begun; deltalake catches that panic (deltalake-core `datafile/writer.rs`,
//! `upload_parquet_file`) and the command fails with the upload's own error ("No space left
//! on device"). The default hook would still print each caught panic, with a backtrace when
//! `RUST_BACKTRACE` is set, above the real reason. Every other panic is printed as before.

use std::panic::PanicHookInfo;

/// Installs the hook; call once, before the runtime starts.
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_caught_upload_abort(info) {
            tracing::debug!(
                "a failed Parquet upload could not be aborted (its completion had begun); \
                 deltalake reports the upload's error"
            );
            return;
        }
        default(info);
    }));
}

/// `BufWriter::abort`'s "Already shut down" panic, raised in object_store's `buffered.rs`.
fn is_caught_upload_abort(info: &PanicHookInfo<'_>) -> bool {
    let in_buffered_writer = info.location().is_some_and(|location| {
        let file = location.file().replace('\\', "/");
        file.contains("/object_store-") && file.ends_with("/src/buffered.rs")
    });
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
    in_buffered_writer && message == Some("Already shut down")
}
