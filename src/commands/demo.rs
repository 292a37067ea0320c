//! `vaxlake demo`: a national-scale registry generated (or reused), ingested and served.

use anyhow::Result;
use std::path::Path;
use vaxlake_ingest::IngestOptions;
use vaxlake_pseudonymize::MasterKey;

use crate::cli::ServeArgs;
use crate::key_file::write_new_key;

/// Runs `vaxlake demo`: prints how to try it, then serves until a signal.
pub async fn run(dir: &Path, persons: u64, listen: std::net::SocketAddr) -> Result<()> {
    let export = dir.join("export");
    let warehouse = dir.join("warehouse");
    let key_path = dir.join("master.key");
    std::fs::create_dir_all(dir)?;
    let manifest_path = export.join("manifest.json");
    let reuse = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|m| m["persons"].as_u64() == Some(persons));
    if reuse {
        eprintln!("reusing the registry export in {}", export.display());
    } else {
        eprintln!(
            "generating a synthetic registry of {persons} persons in {} ...",
            export.display()
        );
        super::generate::generate(&export, persons, 1)?;
    }
    if !key_path.exists() {
        write_new_key(&key_path)?;
        eprintln!("created a master key at {} (mode 600)", key_path.display());
    }
    let key = MasterKey::load(&key_path)?;
    let wh = warehouse.to_string_lossy().into_owned();
    if warehouse.join("vaccinations").join("_delta_log").exists() && reuse {
        eprintln!("reusing the warehouse in {}", warehouse.display());
    } else {
        if warehouse.exists() {
            std::fs::remove_dir_all(&warehouse)?;
        }
        let options =
            IngestOptions::default().with_progress(crate::progress::ingest_progress(true));
        for source in [
            format!("fhir:{}", export.join("fhir").display()),
            format!("csv:{}", export.join("registry.csv").display()),
            format!("population:{}", export.join("population.csv").display()),
            format!("cases:{}", export.join("cases.csv").display()),
        ] {
            eprintln!("ingesting {source}");
            super::ingest::ingest(&wh, &source, &key, &options).await?;
        }
    }
    eprintln!();
    eprintln!("vaxlake demo is ready.");
    eprintln!("  API health:   curl http://{listen}/api/health");
    eprintln!(
        "  SQL over HTTP: curl -s http://{listen}/api/sql -H 'content-type: application/json' -d '{{\"sql\":\"SELECT antigen, count(*) FROM antigen_doses GROUP BY antigen ORDER BY 2 DESC\"}}'"
    );
    eprintln!(
        "  Coverage:     curl 'http://{listen}/api/coverage?indicator=DTP3&cohort=2023&by=canton'"
    );
    eprintln!(
        "  Effectiveness: curl 'http://{listen}/api/effectiveness?antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30&by=age_band'"
    );
    eprintln!(
        "  SQL here:     vaxlake sql --warehouse {} \"SELECT canton, count(*) AS doses FROM vaccinations GROUP BY canton ORDER BY doses DESC\"",
        warehouse.display()
    );
    eprintln!("Press Ctrl-C to stop.");
    super::serve::run(ServeArgs::new(wh, listen)).await
}
