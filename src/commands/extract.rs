//! `vaxlake extract create | approve | verify | list | expire` (CONTRACTS.md, Extracts).

use std::path::PathBuf;

use anyhow::{Context, Result};
use vaxlake_extract::{CreateOptions, OutputFormat, Spec};
use vaxlake_server::audit::{AuditLog, AuditRecord};

use crate::cli::{ExtractCommand, FormatArg};

fn extracts_dir(warehouse: &str) -> Result<PathBuf> {
    let root = vaxlake_ingest::warehouse_url(warehouse)?;
    Ok(vaxlake_extract::extracts_dir_for(&root)?)
}

/// Records an extract step in the warehouse's audit table, like an API request.
async fn audit(
    warehouse: &str,
    by: &str,
    step: &str,
    parameters: String,
    rows: Option<i64>,
    status: u16,
) -> Result<()> {
    let root = vaxlake_ingest::warehouse_url(warehouse)?;
    let log = AuditLog::start(&root)?;
    log.record(AuditRecord {
        at_micros: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default(),
        user: Some(by.to_string()),
        role: "operator".into(),
        method: "CLI".into(),
        endpoint: format!("vaxlake extract {step}"),
        parameters,
        status,
        outcome: vaxlake_server::audit::outcome(status).into(),
        rows,
        duration_ms: 0.0,
    })
    .await;
    log.close().await;
    Ok(())
}

/// Runs `vaxlake extract ...`.
pub async fn run(command: ExtractCommand) -> Result<()> {
    match command {
        ExtractCommand::Create {
            warehouse,
            spec,
            by,
            key,
            format,
            expires_days,
        } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("cannot read the spec {}", spec.display()))?;
            let parsed = Spec::parse(&text)?;
            let key = crate::key_file::load_key(key.key_file.as_deref())?;
            let options = CreateOptions {
                by: by.clone(),
                format: match format {
                    FormatArg::Parquet => OutputFormat::Parquet,
                    FormatArg::Csv => OutputFormat::Csv,
                },
                expires_after_days: expires_days,
            };
            let outcome =
                vaxlake_extract::create(&warehouse.warehouse, &parsed, &key, &options).await;
            let parameters = format!("project={} spec_blake3={}", parsed.project, parsed.hash);
            match outcome {
                Ok(created) => {
                    let rows = created.manifest["rows"]["written"].as_i64();
                    audit(
                        &warehouse.warehouse,
                        &by,
                        "create",
                        format!("{parameters} extract={}", created.id),
                        rows,
                        200,
                    )
                    .await?;
                    eprintln!(
                        "extract {} written to {} ({} rows, k achieved {}); pending approval by another operator",
                        created.id,
                        created.dir.display(),
                        created.manifest["rows"]["written"],
                        created.manifest["anonymisation"]["k_achieved"]
                    );
                    println!("{}", created.id);
                    Ok(())
                }
                Err(error) => {
                    audit(&warehouse.warehouse, &by, "create", parameters, None, 403).await?;
                    Err(error.into())
                }
            }
        }
        ExtractCommand::Approve { warehouse, id, by } => {
            let found = extracts_dir(&warehouse.warehouse)
                .and_then(|dir| Ok(vaxlake_extract::release::find(&dir, &id)?));
            let dir = match found {
                Ok(dir) => dir,
                Err(error) => {
                    // Attempts on unknown ids are audited too (the id as typed, digits
                    // redacted: it may be anything).
                    audit(
                        &warehouse.warehouse,
                        &by,
                        "approve",
                        format!("extract={}", vaxlake_server::audit::redact_digits(&id)),
                        None,
                        404,
                    )
                    .await?;
                    return Err(error);
                }
            };
            // The creator as the audit recorded the create step; the manifest's
            // created_by could have been edited since.
            let outcome = vaxlake_extract::release::audited_creator(&warehouse.warehouse, &id)
                .await
                .and_then(|creator| vaxlake_extract::approve(&dir, &by, creator.as_deref()));
            audit(
                &warehouse.warehouse,
                &by,
                "approve",
                format!("extract={id}"),
                None,
                if outcome.is_ok() { 200 } else { 403 },
            )
            .await?;
            outcome?;
            println!("extract {id} released by {}", by.trim());
            Ok(())
        }
        ExtractCommand::Verify { dir } => {
            let verified = vaxlake_extract::verify(&dir)?;
            println!(
                "extract {}: {} file(s) match the manifest; {}",
                verified.extract_id,
                verified.files,
                if verified.released {
                    "released"
                } else {
                    "not yet approved"
                }
            );
            Ok(())
        }
        ExtractCommand::List { warehouse, project } => {
            for listed in
                vaxlake_extract::list(&extracts_dir(&warehouse.warehouse)?, project.as_deref())?
            {
                println!("{}", serde_json::to_string(&listed)?);
            }
            Ok(())
        }
        ExtractCommand::Expire { warehouse } => {
            for id in vaxlake_extract::expire(&extracts_dir(&warehouse.warehouse)?)? {
                println!("deleted {id}");
            }
            Ok(())
        }
    }
}
