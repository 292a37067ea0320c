//! `vaxlake key new` writes a fresh master key; `vaxlake key rotate` re-keys the warehouse to
//! the current key chain + one fresh key, then writes that chain to the new key file.

use anyhow::{Context, Result};
use std::path::Path;
use vaxlake_ingest::{RekeyOptions, RekeyOutcome};
use vaxlake_pseudonymize::{KeyRotation, MasterKey};

use crate::cli::RotateArgs;
use crate::key_file::write_new_key;

/// Runs `vaxlake key new`.
pub fn new(out: &Path) -> Result<()> {
    write_new_key(out)?;
    println!(
        "wrote a new master key to {} (mode 600); keep it secret and backed up",
        out.display()
    );
    Ok(())
}

/// Runs `vaxlake key rotate`.
pub async fn rotate(args: RotateArgs) -> Result<()> {
    let old = MasterKey::load(&args.key_file).context("the current key (--key-file)")?;
    let new = MasterKey::load(&args.new_key_file).context("the new key (--new-key-file)")?;
    let rotation = KeyRotation::new(&old, &new)?;
    let options = RekeyOptions::default().with_progress(crate::progress::rekey_progress());
    let report = vaxlake_ingest::rekey(&args.warehouse, &rotation, &options).await?;
    for t in &report.tables {
        match t.outcome {
            RekeyOutcome::Rewritten => println!(
                "{}: version {} -> {}, {} rows re-keyed",
                t.table, t.version_before, t.version, t.rows
            ),
            RekeyOutcome::KeyIdOnly => println!(
                "{}: version {} -> {}, no pseudonyms (key id updated)",
                t.table, t.version_before, t.version
            ),
            RekeyOutcome::AlreadyRotated => println!(
                "{}: version {}, already at key id {} (skipped)",
                t.table, t.version, report.to_key_id
            ),
            RekeyOutcome::NotSelected => println!("{}: not selected", t.table),
        }
    }
    let new_file = args.new_key_file.display();
    rotation
        .rotated_key()
        .save(&args.new_key_file)
        .with_context(|| {
            format!(
                "the warehouse is rotated to key id {}, but the key chain could not be written to \
             {new_file}: run the same command again",
                report.to_key_id
            )
        })?;
    tracing::info!(
        from_key_id = %report.from_key_id,
        to_key_id = %report.to_key_id,
        "key file rewritten with the rotated chain"
    );
    let already = report
        .tables
        .iter()
        .all(|t| t.outcome == RekeyOutcome::AlreadyRotated);
    if already {
        println!(
            "{} was already rotated to key id {}: nothing re-keyed",
            args.warehouse, report.to_key_id
        );
    } else {
        println!(
            "rotated {} from key id {} to key id {}",
            args.warehouse, report.from_key_id, report.to_key_id
        );
    }
    println!(
        "{new_file} now holds the key chain ({} keys, mode 600): ingest with it from now on",
        rotation.rotated_key().generations()
    );
    println!(
        "destroy {} and every copy of it: it no longer opens this warehouse",
        args.key_file.display()
    );
    println!(
        "older table versions keep the old pseudonyms until `vaxlake maintain` vacuums them \
         (after its retention period)"
    );
    Ok(())
}
