//! `vaxlake ingest --follow`: a registry database kept up with until a signal.

use anyhow::{bail, Result};
use vaxlake_ingest::{IngestOptions, Source};
use vaxlake_pseudonymize::MasterKey;

use crate::signal::shutdown_signal;

/// `ingest --follow`: pulls until caught up, waits `every` seconds, and again, until SIGINT
/// or SIGTERM (which let the batch in hand commit, then exit 0). Database errors that may pass
/// (I/O, a lost connection, a timeout) are retried with exponential backoff (1 s to 60 s);
/// one retrying cannot fix (`SourceRefused`: authentication, a missing relation or column,
/// privileges, the connection string) and anything else stop the program with its reason.
pub async fn follow_registry(
    warehouse: &str,
    source: &Source,
    key: &MasterKey,
    options: &IngestOptions,
    every: u64,
    stop: vaxlake_ingest::StopFlag,
) -> Result<()> {
    if !matches!(source, Source::Postgres(_)) {
        bail!("--follow needs a postgres: source");
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.stop();
        });
    }
    let pause = |seconds: u64| {
        let stop = stop.clone();
        async move {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
            while std::time::Instant::now() < until && !stop.stopped() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let (mut read, mut accepted, mut quarantined) = (0u64, 0u64, 0u64);
    let mut backoff = 1u64;
    while !stop.stopped() {
        match vaxlake_ingest::ingest(warehouse, source, key, options).await {
            Ok(report) => {
                backoff = 1;
                read += report.read;
                accepted += report.accepted;
                quarantined += report.quarantined;
                if report.read > 0 {
                    tracing::info!(
                        read = report.read,
                        quarantined = report.quarantined,
                        watermark = ?report.watermark,
                        "pulled from the registry"
                    );
                }
                pause(every).await;
            }
            Err(vaxlake_ingest::IngestError::Source(reason)) => {
                tracing::warn!(%reason, retry_in_seconds = backoff, "registry database unavailable; retrying");
                pause(backoff).await;
                backoff = (backoff * 2).min(60);
            }
            Err(vaxlake_ingest::IngestError::SourceRefused(reason)) => {
                bail!("{reason} (not retried)");
            }
            Err(error) => return Err(error.into()),
        }
    }
    tracing::info!("stopped on signal");
    println!("read={read} accepted={accepted} quarantined={quarantined}");
    Ok(())
}
