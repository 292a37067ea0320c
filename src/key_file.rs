//! The master key file: read for `ingest` and `extract create`, written by `key new` and
//! `demo`.

use anyhow::{bail, Context, Result};
use std::path::Path;
use vaxlake_pseudonymize::MasterKey;

/// The key of `--key-file` (or `VAXLAKE_KEY_FILE`); without one, an error that says how to
/// make one.
pub fn load_key(path: Option<&Path>) -> Result<MasterKey> {
    let Some(path) = path else {
        bail!("no master key: pass --key-file FILE or set VAXLAKE_KEY_FILE (create one with `vaxlake key new --out FILE`)");
    };
    Ok(MasterKey::load(path)?)
}

/// Writes a fresh random key to `path` (mode 600), which must not exist yet: an existing key
/// is never overwritten.
pub fn write_new_key(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create key file {} (it must not exist yet)",
                path.display()
            )
        })?;
    writeln!(f, "{}", MasterKey::generate_hex())?;
    Ok(())
}
