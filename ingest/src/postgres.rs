//! `postgres:CONNSTRING`: new and changed rows of the operational registry's
//! `vaccination_events` (CONTRACTS.md), pulled above the committed watermark in `change_seq`
//! order, in bounded batches, through the registry CSV's own row validation
//! (`registry_csv::parse_row`: one code path for both).
//!
//! **Exactly once.** The watermark is not kept anywhere but in the Delta log: every commit of
//! a batch into `vaccinations` carries a Delta application transaction (`txn`) whose app id
//! names the registry relation and whose version is the batch's highest `change_seq`. A crash
//! before that commit loses nothing (the rows are read again), a crash after it repeats
//! nothing (the next run starts above it). Two ingests of the same registry that read the same
//! watermark cannot both commit: Delta's conflict check refuses the second commit carrying a
//! transaction for an app id the winner also wrote (`ConcurrentTransaction`), and that run
//! stops with an error, committing nothing of its batch.
//!
//! Quarantined rows of a batch are committed to `quarantine` just before the batch itself;
//! they are keyed by source, position and a keyed hash of the row, so a batch read again after
//! a crash between the two commits stores them once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::Transaction;
use deltalake::protocol::{DeltaOperation, SaveMode};

use crate::csv_rows::Fields;
use crate::error::{IngestError, Result};
use crate::registry_csv;
use crate::row::{Parsed, Rejected, Vaccination};

/// A gap in `change_seq` may be a registry transaction still open: the number comes from a
/// sequence when a row is written, not when it commits, so a transaction holding 10 can commit
/// after 11 was read (updates leave gaps too: a row's old number disappears). The batch's
/// own statement also reads its snapshot's `xmax`: every transaction that took a number below
/// the batch's last one started before the statement, so its id is below that horizon. When a
/// batch has gaps, they are all final once the database's oldest running transaction id is
/// at or above the horizon; the rows are then read again, so a late commit is taken and a
/// rollback skipped. Until then (at most [`GAP_WAIT`]) the batch stops before its first gap
/// and the next poll tries again. No wall clock and no `recorded_at` is trusted for this
/// (backdated rows are normal in the registry).
pub const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The pause before a gap's holders are checked: the microseconds in which a registry
/// transaction has taken its number but not yet its transaction id.
const GAP_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Default relation (CONTRACTS.md).
pub const DEFAULT_TABLE: &str = "vaccination_events";
/// Environment variable holding the connection string when the source is `postgres:` alone
/// (or `postgres:env`), so that passwords stay out of process lists and shell histories.
pub const CONNSTRING_ENV: &str = "VAXLAKE_POSTGRES";

/// Where to pull from.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresSource {
    /// A libpq-style connection string (`host=... user=... dbname=... sslmode=require`) or a
    /// `postgresql://` URL. Never logged: it may hold a password.
    pub connection: String,
    /// The table or view, optionally schema-qualified.
    pub table: String,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("connection", &"<redacted>")
            .field("table", &self.table)
            .finish()
    }
}

impl PostgresSource {
    /// `rest` is what follows `postgres:`; empty or `env` reads [`CONNSTRING_ENV`].
    pub fn new(rest: &str, table: Option<&str>) -> Result<PostgresSource> {
        let connection = match rest.trim() {
            "" | "env" => std::env::var(CONNSTRING_ENV).map_err(|_| {
                IngestError::Source(format!(
                    "postgres: without a connection string reads it from {CONNSTRING_ENV}, which is not set"
                ))
            })?,
            given => given.to_string(),
        };
        let table = table.unwrap_or(DEFAULT_TABLE).to_string();
        let valid = !table.is_empty()
            && table.split('.').count() <= 2
            && table.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !valid {
            return Err(IngestError::Source(format!(
                "--table {table:?} is not a table name (letters, digits, _ and one optional schema.)"
            )));
        }
        Ok(PostgresSource { connection, table })
    }

    fn config(&self) -> Result<tokio_postgres::Config> {
        // The parser's own message may quote the string (and its password): keep it out.
        self.connection.parse().map_err(|_| {
            IngestError::Source(
                "the PostgreSQL connection string does not parse (expected `host=... dbname=...` or a postgresql:// URL)".into(),
            )
        })
    }

    /// The Delta application id of this relation: its host, port, database and table, hashed
    /// (no user or password), so two registries never share a watermark.
    pub fn app_id(&self) -> Result<String> {
        let config = self.config()?;
        let mut hasher = blake3::Hasher::new();
        for host in config.get_hosts() {
            hasher.update(format!("{host:?}").as_bytes());
        }
        for port in config.get_ports() {
            hasher.update(&port.to_le_bytes());
        }
        hasher.update(config.get_dbname().unwrap_or_default().as_bytes());
        hasher.update(b"\x1f");
        hasher.update(self.table.as_bytes());
        Ok(format!(
            "vaxlake:postgres:{}:{}",
            self.table,
            hex::encode(&hasher.finalize().as_bytes()[..8])
        ))
    }

    /// A position label for the quarantine: the relation, never the connection.
    pub fn label(&self) -> String {
        format!("postgres:{}", self.table)
    }

    /// Connects, with TLS when the connection string asks for it (`sslmode=require`), checking
    /// the server's certificate against the system's roots.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let config = self.config()?;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(certificate);
        }
        let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| IngestError::Source(format!("TLS setup: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
        let (client, connection) = config.connect(tls).await.map_err(|error| {
            IngestError::Source(format!("cannot connect to the registry database: {error}"))
        })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "registry connection closed");
            }
        });
        Ok(client)
    }

    /// The relation's rows above `watermark`, at most `limit`, in `change_seq` order, every
    /// column as text (as a CSV export would give it) plus `change_seq`.
    pub fn select_sql(&self) -> String {
        let columns: Vec<String> = registry_csv::COLUMNS
            .iter()
            .map(|column| match *column {
                "recorded_at" => {
                    "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                        .to_string()
                }
                other => format!("{other}::text"),
            })
            .collect();
        format!(
            "SELECT {}, change_seq,
                    pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS horizon
             FROM {} WHERE change_seq > $1 ORDER BY change_seq LIMIT $2",
            columns.join(", "),
            self.table
        )
    }
}

/// How far the registry is ahead of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Rows above the watermark.
    pub rows: i64,
    /// Seconds since the oldest row above the watermark was recorded (0 when caught up).
    pub seconds: i64,
    /// The registry's highest `change_seq`.
    pub head: i64,
}

/// The registry's rows not yet in the warehouse, for `status` and `/api/health`.
pub async fn lag(source: &PostgresSource, watermark: i64) -> Result<Lag> {
    let client = source.connect().await?;
    let sql = format!(
        "SELECT count(*)::bigint, coalesce(max(change_seq), $1),
                coalesce(extract(epoch FROM now() - min(recorded_at))::bigint, 0)
         FROM {} WHERE change_seq > $1",
        source.table
    );
    let row = client
        .query_one(&sql, &[&watermark])
        .await
        .map_err(|error| IngestError::Source(format!("reading the registry: {error}")))?;
    Ok(Lag {
        rows: row.get(0),
        head: row.get(1),
        seconds: row.get::<_, i64>(2).max(0),
    })
}

/// One batch read from the registry: its rows parsed, and the highest `change_seq` it covers.
pub struct Batch {
    pub parsed: Parsed<Vaccination>,
    pub last_change_seq: i64,
}

/// Reads the next batch above `watermark`; `None` when the registry has nothing newer.
pub async fn next_batch(
    client: &tokio_postgres::Client,
    source: &PostgresSource,
    watermark: i64,
    limit: usize,
    parse: &(dyn Fn(&Fields, u64) -> std::result::Result<Vaccination, String> + Sync),
    record_hash: &(dyn Fn(&[u8]) -> [u8; 16] + Sync),
) -> Result<Option<Batch>> {
    let seq_column = registry_csv::COLUMNS.len();
    let read = || async {
        client
            .query(&source.select_sql(), &[&watermark, &(limit as i64)])
            .await
            .map_err(|error| IngestError::Source(format!("reading the registry: {error}")))
    };
    let mut rows = read().await?;
    // Gaps at or below this number are known final.
    let mut settled_up_to = watermark;
    let seqs = |rows: &[tokio_postgres::Row]| -> Vec<i64> {
        rows.iter()
            .map(|row| row.get::<_, i64>(seq_column))
            .collect()
    };
    let first_read = seqs(&rows);
    let has_gap = first_read
        .iter()
        .zip(watermark..)
        .any(|(&seq, before)| seq != before + 1);
    if has_gap {
        // Every number below the batch's last one was taken before it, so by a transaction
        // that started before this read and has an id below its snapshot's xmax (the
        // horizon): once they have all ended, every gap up to the last number is final.
        let horizon: i64 = rows[0].get(seq_column + 1);
        if holders_ended(client, horizon).await? {
            rows = read().await?;
            settled_up_to = *first_read.last().unwrap_or(&watermark);
        } else {
            tracing::info!(
                after = watermark,
                "gap in change_seq held by an open registry transaction: the batch stops before it"
            );
        }
    }
    // Keep the rows up to the first gap not known final.
    let mut expected = watermark + 1;
    let mut usable = 0;
    for row in &rows {
        let change_seq: i64 = row.get(seq_column);
        if change_seq != expected && change_seq > settled_up_to {
            tracing::debug!(
                after = expected - 1,
                next = change_seq,
                "gap in change_seq: the batch stops before it"
            );
            break;
        }
        expected = change_seq + 1;
        usable += 1;
    }
    let rows = &rows[..usable];
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let last_change_seq: i64 = last.get(seq_column);
    let label: Arc<str> = Arc::from(source.label());
    let index: Vec<usize> = (0..registry_csv::COLUMNS.len()).collect();
    let mut parsed = Parsed {
        rows: Vec::with_capacity(rows.len()),
        rejected: Vec::new(),
        read: rows.len() as u64,
    };
    let mut raw = Vec::new();
    for row in rows {
        let values: Vec<&str> = (0..registry_csv::COLUMNS.len())
            .map(|column| row.get::<_, Option<&str>>(column).unwrap_or(""))
            .collect();
        let change_seq: i64 = row.get(registry_csv::COLUMNS.len());
        let position = u64::try_from(change_seq).unwrap_or_default();
        match parse(&Fields::new(values.clone(), &index), position) {
            Ok(vaccination) => parsed.rows.push(vaccination),
            Err(reason) => {
                raw.clear();
                for value in &values {
                    raw.extend_from_slice(value.as_bytes());
                    raw.push(0x1f);
                }
                parsed.rejected.push(Rejected {
                    source: label.clone(),
                    line: position,
                    reason,
                    record_hash: record_hash(&raw),
                });
            }
        }
    }
    Ok(Some(Batch {
        parsed,
        last_change_seq,
    }))
}

/// Whether every registry transaction with an id below `horizon` has ended, waiting up to
/// [`GAP_WAIT`] (see there).
async fn holders_ended(client: &tokio_postgres::Client, horizon: i64) -> Result<bool> {
    tokio::time::sleep(GAP_SETTLE).await;
    let deadline = tokio::time::Instant::now() + GAP_WAIT;
    loop {
        let oldest: i64 = client
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                &[],
            )
            .await
            .map_err(|error| IngestError::Source(format!("reading the registry: {error}")))?
            .get(0);
        if oldest >= horizon {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The commit properties that carry the watermark of a batch.
pub fn with_watermark(commit: CommitProperties, app_id: &str, change_seq: i64) -> CommitProperties {
    commit.with_application_transaction(Transaction::new(app_id, change_seq))
}

/// Commits only the watermark (a batch whose rows were all quarantined or unchanged): an
/// empty Delta commit carrying the transaction, so the rows are not read again.
pub async fn commit_watermark_only(
    table: &mut deltalake::DeltaTable,
    commit: CommitProperties,
) -> std::result::Result<(), deltalake::DeltaTableError> {
    let snapshot = table.snapshot()?.clone();
    CommitBuilder::from(commit)
        .with_actions(Vec::new())
        .build(
            Some(&snapshot),
            table.log_store(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        )
        .await?;
    table.update_incremental(None).await?;
    Ok(())
}

/// Set by SIGINT/SIGTERM in `--follow`: the batch in hand is finished (committed whole) and
/// no new one is read.
#[derive(Debug, Default, Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
