//! What operators watch: table versions, the last ingest, quarantine counts by reason and,
//! for a `postgres:` source, the watermark and the lag behind the registry. One report for
//! `vaxlake status` (lines) and the operators' part of `/api/health`, `/api/status` and
//! `/api/freshness` (JSON, through [`OperatorStatus`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use vaxlake_ingest::postgres::PostgresSource;
use vaxlake_ingest::IngestError;
use vaxlake_query::{QueryError, Warehouse};

/// Why the report could not be read: the warehouse, or the registry database.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// What the API shows operators: the [`StatusReport`] of the served warehouse and, when
/// given, of the registry it pulls from, read afresh for each request.
#[derive(Default)]
pub struct OperatorStatus {
    registry: Option<PostgresSource>,
}

impl OperatorStatus {
    /// The report of the served warehouse, with the lag behind `registry` when given.
    pub fn new(registry: Option<PostgresSource>) -> Self {
        OperatorStatus { registry }
    }

    /// The report as JSON, or why it could not be read (the error with its causes).
    pub async fn report(&self, wh: &Warehouse) -> Result<Value, String> {
        StatusReport::read(wh, self.registry.as_ref())
            .await
            .map(|report| report.to_json())
            .map_err(|error| with_causes(&error))
    }
}

/// `error: cause: cause...`, as the command line prints errors.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

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

impl StatusReport {
    /// Reads the report from `wh` (refreshed first) and `registry`.
    pub async fn read(
        wh: &Warehouse,
        registry: Option<&PostgresSource>,
    ) -> Result<Self, StatusError> {
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
