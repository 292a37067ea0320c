//! `vaxlake key rotate`: re-key the warehouse to the current key chain + one fresh key, then
//! write that chain to the new key file.

use anyhow::{Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use vaxlake_ingest::{RekeyOptions, RekeyOutcome};
use vaxlake_pseudonymize::{KeyRotation, MasterKey};

#[derive(Args)]
pub struct RotateArgs {
    /// Warehouse root: a local path or an object-store URL.
    #[arg(long)]
    warehouse: String,
    /// The key file the warehouse was written with (a key, or the chain of a past rotation).
    #[arg(long, env = "VAXLAKE_KEY_FILE")]
    key_file: PathBuf,
    /// A fresh key made by `vaxlake key new`; replaced by the rotated key chain, which is the
    /// key file to ingest with from then on.
    #[arg(long)]
    new_key_file: PathBuf,
}

pub async fn rotate(args: RotateArgs) -> Result<()> {
    let old = MasterKey::load(&args.key_file).context("the current key (--key-file)")?;
    let new = MasterKey::load(&args.new_key_file).context("the new key (--new-key-file)")?;
    let rotation = KeyRotation::new(&old, &new)?;
    let options = RekeyOptions::default().with_progress(std::io::stderr().is_terminal());
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
