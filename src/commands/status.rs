//! What operators watch: table versions, the last ingest, quarantine counts by reason and,
//! for a `postgres:` source, the watermark and the lag behind the registry. One report for
//! `vaxlake status` (lines) and the operators' `/api/health` (JSON).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use vaxlake_ingest::postgres::PostgresSource;
use vaxlake_ingest::Source;
use vaxlake_query::Warehouse;

/// One look at the warehouse (and the registry, when one is named).
#[derive(Debug, Default)]
pub struct StatusReport {
    pub tables: BTreeMap<String, i64>,
    /// When the last ingest run finished (UTC, as stored in `ingest_runs`; a run killed before
    /// its end leaves no row).
    pub last_ingest: Option<String>,
    /// When the `vaccinations` table was last committed to (UTC, its last Delta commit: a
    /// registry batch, an empty commit carrying only a watermark, a file ingest).
    pub last_commit: Option<String>,
    /// Quarantined records by reason, most frequent first.
    pub quarantine: Vec<(String, u64)>,
    pub registry: Option<RegistryStatus>,
}

/// How far the warehouse is behind the registry database.
#[derive(Debug)]
pub struct RegistryStatus {
    /// Highest `change_seq` committed to the warehouse.
    pub watermark: i64,
    pub head: i64,
    pub lag_rows: i64,
    /// How long the oldest unread change has been waiting (`postgres::Lag::seconds`).
    pub lag_seconds: i64,
}

/// Parses `--source` (and `--table`) into the registry that `status` and `serve` watch.
pub fn registry_source(source: &str, table: Option<&str>) -> Result<PostgresSource> {
    let mut source = Source::parse(source)?;
    if let Some(table) = table {
        source = source.with_table(table)?;
    }
    let Source::Postgres(registry) = source else {
        bail!("--source must be a postgres: source");
    };
    Ok(registry)
}

impl StatusReport {
    /// Reads the report from `wh` (refreshed first) and `registry`.
    pub async fn read(wh: &Warehouse, registry: Option<&PostgresSource>) -> Result<Self> {
        wh.refresh().await?;
        let tables = wh.versions();
        let mut report = StatusReport::default();
        if tables.contains_key("ingest_runs") {
            let answer = wh
                .sql("SELECT CAST(max(finished_at) AS VARCHAR) AS t FROM ingest_runs")
                .await?
                .to_json()?;
            report.last_ingest = answer["rows"][0][0].as_str().map(str::to_string);
        }
        if tables.contains_key("quarantine") {
            let answer = wh
                .sql("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC, reason")
                .await?
                .to_json()?;
            for row in answer["rows"].as_array().into_iter().flatten() {
                let reason = row[0].as_str().unwrap_or_default().to_string();
                report
                    .quarantine
                    .push((reason, row[1].as_u64().unwrap_or(0)));
            }
        }
        let vaccinations = if tables.contains_key("vaccinations") {
            let root = vaxlake_ingest::warehouse_url(wh.root().as_str())?;
            vaxlake_ingest::table::Table::open(&root, &vaxlake_ingest::schema::VACCINATIONS, None)
                .await?
        } else {
            None
        };
        let last_commit_millis = match &vaccinations {
            Some(table) => table.last_commit_millis().await?,
            None => None,
        };
        report.last_commit = last_commit_millis
            .and_then(arrow::temporal_conversions::timestamp_ms_to_datetime)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        if let Some(registry) = registry {
            let watermark = match &vaccinations {
                Some(table) => table.app_version(&registry.app_id()?).await?.unwrap_or(0),
                None => 0,
            };
            let lag = vaxlake_ingest::postgres::lag(
                registry,
                watermark,
                last_commit_millis.map(|millis| millis * 1000),
            )
            .await?;
            report.registry = Some(RegistryStatus {
                watermark,
                head: lag.head,
                lag_rows: lag.rows,
                lag_seconds: lag.seconds,
            });
        }
        report.tables = tables;
        Ok(report)
    }

    /// `key value` lines, stable for scripts.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .iter()
            .map(|(name, version)| format!("table {name} version {version}"))
            .collect();
        if let Some(last) = &self.last_ingest {
            out.push(format!("last_ingest {last}"));
        }
        if let Some(last) = &self.last_commit {
            out.push(format!("last_commit {last}"));
        }
        for (reason, count) in &self.quarantine {
            out.push(format!("quarantined {count} {reason}"));
        }
        if let Some(r) = &self.registry {
            out.push(format!("watermark {}", r.watermark));
            out.push(format!("registry_head {}", r.head));
            out.push(format!("lag_rows {}", r.lag_rows));
            out.push(format!("lag_seconds {}", r.lag_seconds));
        }
        out
    }

    /// The operators' part of `/api/health`.
    pub fn to_json(&self) -> Value {
        let quarantined: u64 = self.quarantine.iter().map(|(_, n)| n).sum();
        json!({
            "last_ingest": self.last_ingest,
            "last_commit": self.last_commit,
            "quarantine": {
                "total": quarantined,
                "by_reason": self.quarantine.iter()
                    .map(|(reason, n)| json!({"reason": reason, "count": n}))
                    .collect::<Vec<_>>(),
            },
            "registry": self.registry.as_ref().map(|r| json!({
                "watermark": r.watermark,
                "head": r.head,
                "lag_rows": r.lag_rows,
                "lag_seconds": r.lag_seconds,
            })),
        })
    }
}

/// `vaxlake status`: one line per fact, for operators and scripts.
pub async fn run(warehouse: &str, source: Option<&str>, table: Option<&str>) -> Result<()> {
    let wh =
        vaxlake_query::Warehouse::open(warehouse, vaxlake_query::QueryOptions::default()).await?;
    let registry = source
        .map(|source| registry_source(source, table))
        .transpose()?;
    for line in StatusReport::read(&wh, registry.as_ref()).await?.lines() {
        println!("{line}");
    }
    Ok(())
}
