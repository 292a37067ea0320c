//! `vaxlake generate`: the synthetic national registry export.

use anyhow::Result;
use std::path::Path;

/// Runs `vaxlake generate`: writes the export and prints its manifest as one JSON line.
pub fn run(out: &Path, persons: u64, seed: u64) -> Result<()> {
    let manifest = generate(out, persons, seed)?;
    println!("{}", serde_json::to_string(&manifest)?);
    Ok(())
}

/// Writes the export of `persons` residents under `out` (also `vaxlake demo`'s first step).
pub fn generate(out: &Path, persons: u64, seed: u64) -> Result<vaxlake_generate::Manifest> {
    let started = std::time::Instant::now();
    let options = vaxlake_generate::GenerateOptions { persons, seed };
    let manifest = vaxlake_generate::generate(&options, out)?;
    eprintln!(
        "generated {persons} persons in {:.1}s under {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(manifest)
}
