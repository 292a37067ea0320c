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
/// after 11 was read (updates leave gaps too: a row's old number disappears). Every
/// transaction that took a number below the batch's last one did so before the batch was
/// read; but a transaction gets its id only when it first writes, which may be just after it
/// took its number. So when a batch has gaps, vaxlake pauses [`GAP_SETTLE`] (for those ids to
/// be assigned), then takes the horizon: a transaction id of its own, newly assigned
/// (`pg_current_xact_id()`), so above the id of every transaction that holds a number of the
/// batch. (A snapshot's `xmax` would not do: it is one past the highest *completed* id, and a
/// holder may have a higher one.) The gaps are all final once the database's oldest running
/// transaction id is at or above that horizon; the rows are then
/// read again, so a late commit is taken and a rollback skipped. Until then (at most
/// [`GAP_WAIT`]) the batch stops before its first gap and the next poll tries again. No wall
/// clock and no `recorded_at` is trusted for this (backdated rows are normal in the registry).
pub const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The pause between reading a batch with a gap and reading the horizon its holders are
/// checked against: it covers the microseconds in which a registry transaction has taken its
/// number but not yet its transaction id (the trigger's `nextval` comes before the row's
/// write, which assigns the id).
const GAP_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a connection attempt may take when the connection string sets no
/// `connect_timeout`.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The registry session's `statement_timeout` (unless the connection string's `options` set
/// one): a hung or overloaded server cannot hold a pull, or the SIGTERM waiting on it, for
/// ever. The client gives up a little later, in case the server cannot even answer.
pub const STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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
            IngestError::SourceRefused(
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
    ///
    /// The attempt is bounded by the string's `connect_timeout` ([`CONNECT_TIMEOUT`] when it
    /// sets none) and the session's statements by [`STATEMENT_TIMEOUT`].
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let mut config = self.config()?;
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT);
        config.connect_timeout(connect_timeout);
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
        // `connect_timeout` bounds each TCP connect; this bounds the whole handshake (TLS,
        // authentication) against a server that accepts and then says nothing.
        let handshake = connect_timeout.saturating_mul(2).max(CONNECT_TIMEOUT);
        let (client, connection) = tokio::time::timeout(handshake, config.connect(tls))
            .await
            .map_err(|_| {
                IngestError::Source(format!(
                    "cannot connect to the registry database: no answer within {} s",
                    handshake.as_secs()
                ))
            })?
            .map_err(|error| db_error("cannot connect to the registry database", &error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(error = %one_line(&error), "registry connection closed");
            }
        });
        let sets_own_timeout = config
            .get_options()
            .is_some_and(|options| options.contains("statement_timeout"));
        if !sets_own_timeout {
            run_query(
                client.batch_execute(&format!(
                    "SET statement_timeout = {}",
                    STATEMENT_TIMEOUT.as_millis()
                )),
                "setting up the registry session",
            )
            .await?;
        }
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
            // `change_seq` read as bigint whatever integer type the registry gave it; ordered
            // by the column itself so that its index serves the ORDER BY.
            "SELECT {}, change_seq::bigint AS seq FROM {} WHERE change_seq > $1 \
             ORDER BY change_seq LIMIT $2",
            columns.join(", "),
            self.table
        )
    }
}

/// Whether a database error is one retrying cannot fix: authentication refused (class 28),
/// no such database, a missing relation or column, no privilege or any other class 42 error
/// (syntax or access rule), or a connection string the client cannot use. Everything else
/// (I/O, a closed connection, a server starting up or shutting down, too many connections,
/// a cancelled or timed-out statement) may pass.
pub fn is_permanent(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if let Some(code) = error.code() {
        // Class 28 covers a wrong password, class 42 a missing relation, column or function
        // and a missing privilege.
        return *code == SqlState::INVALID_CATALOG_NAME
            || code.code().starts_with("28")
            || code.code().starts_with("42");
    }
    // The client's own refusals, which carry no SQLSTATE (their kinds are private, their
    // messages fixed): a password the server asks for and the string lacks, an
    // authentication exchange the server failed, a string that does not parse.
    let text = error.to_string();
    [
        "invalid configuration",
        "authentication error",
        "invalid connection string",
    ]
    .iter()
    .any(|prefix| text.starts_with(prefix))
}

/// An error's message on one line: the server's message and SQLSTATE (its DETAIL and HINT
/// lines dropped), or the client's description. It never holds the connection string.
fn one_line(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => {
            let text = error.to_string();
            text.lines().collect::<Vec<_>>().join("; ")
        }
    }
}

/// `context: <the error on one line>`, permanent or worth retrying (see [`is_permanent`]).
fn db_error(context: &str, error: &tokio_postgres::Error) -> IngestError {
    let message = format!("{context}: {}", one_line(error));
    if is_permanent(error) {
        IngestError::SourceRefused(message)
    } else {
        IngestError::Source(message)
    }
}

/// Runs one registry statement, bounded on the client side too (a little beyond the session's
/// [`STATEMENT_TIMEOUT`], for a server that cannot even cancel).
async fn run_query<T>(
    query: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    context: &str,
) -> Result<T> {
    bounded(query, context)
        .await?
        .map_err(|error| db_error(context, &error))
}

/// [`run_query`], handing back the database's error as it is.
async fn bounded<T>(
    query: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    context: &str,
) -> Result<std::result::Result<T, tokio_postgres::Error>> {
    let limit = STATEMENT_TIMEOUT + std::time::Duration::from_secs(30);
    tokio::time::timeout(limit, query).await.map_err(|_| {
        IngestError::Source(format!(
            "{context}: no answer from the registry database within {} s",
            limit.as_secs()
        ))
    })
}

/// How far the registry is ahead of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Rows above the watermark.
    pub rows: i64,
    /// How long the oldest change above the watermark has been waiting, in seconds (0 when
    /// caught up). The relation holds no commit time, so this is estimated: the time since the
    /// warehouse's last commit (`last_commit`: pending changes were made after the last batch
    /// was read, give or take that batch's own write), or since the oldest unread
    /// `recorded_at` when that is more recent (a row is not changed before it is recorded; a
    /// backdated one therefore never inflates it). See README.md, `vaxlake status`.
    pub seconds: i64,
    /// The registry's highest `change_seq`.
    pub head: i64,
}

/// The registry's rows not yet in the warehouse, for `status` and `/api/health`;
/// `last_commit` is the time (microseconds since the epoch) of the `vaccinations` table's
/// last Delta commit, if it has one.
pub async fn lag(source: &PostgresSource, watermark: i64, last_commit: Option<i64>) -> Result<Lag> {
    let client = source.connect().await?;
    let sql = format!(
        "SELECT count(*)::bigint, coalesce(max(change_seq), $1),
                (extract(epoch FROM min(recorded_at)) * 1000000)::bigint,
                (extract(epoch FROM now()) * 1000000)::bigint
         FROM {} WHERE change_seq > $1",
        source.table
    );
    let row = run_query(
        client.query_one(&sql, &[&watermark]),
        "reading the registry",
    )
    .await?;
    let rows: i64 = row.get(0);
    let oldest_recorded: Option<i64> = row.get(2);
    let now: i64 = row.get(3);
    Ok(Lag {
        rows,
        head: row.get(1),
        seconds: waiting_seconds(rows, now, last_commit, oldest_recorded),
    })
}

/// [`Lag::seconds`]: 0 without pending rows; else the smaller of the times since the last
/// commit and since the oldest pending `recorded_at` (whichever are known), never negative.
fn waiting_seconds(
    pending: i64,
    now: i64,
    last_commit: Option<i64>,
    oldest_recorded: Option<i64>,
) -> i64 {
    if pending <= 0 {
        return 0;
    }
    let since = |instant: i64| (now - instant).max(0) / 1_000_000;
    match (last_commit.map(since), oldest_recorded.map(since)) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0,
    }
}

/// One batch read from the registry: its rows parsed, and the highest `change_seq` it covers.
pub struct Batch {
    pub parsed: Parsed<Vaccination>,
    pub last_change_seq: i64,
}

/// One row per event: of a batch's rows of the same event (a relation that keeps every change
/// of an event, not just its current row), the one with the highest `change_seq` (their
/// `position`), which is the registry's current state of that event.
pub fn current_states(rows: Vec<Vaccination>) -> Vec<Vaccination> {
    crate::row::latest_by(rows, |row| row.position)
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
    let sql = source.select_sql();
    let limit = limit as i64;
    let read = || async {
        run_query(
            client.query(&sql, &[&watermark, &limit]),
            "reading the registry",
        )
        .await
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
        // Every number below the batch's last one was taken before this read, by a
        // transaction that has its id once GAP_SETTLE has passed (see there): once every
        // transaction below the horizon read then has ended, every gap up to the last number
        // is final.
        if holders_ended(client).await? {
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

/// Whether every registry transaction that may hold a number of a batch just read has
/// ended. The horizon is taken after [`GAP_SETTLE`], so that a transaction that took its
/// number before the read but its id after it is below it too: a transaction id assigned to
/// this session now (its statement commits at once), above every id assigned before. They
/// have all ended once the oldest running transaction id (a fresh snapshot's `xmin`, which
/// counts every running id below the snapshot's `xmax`, and ours is below that) reaches the
/// horizon. Waits up to [`GAP_WAIT`] (see there).
async fn holders_ended(client: &tokio_postgres::Client) -> Result<bool> {
    tokio::time::sleep(GAP_SETTLE).await;
    let horizon: i64 = match bounded(
        client.query_one("SELECT pg_current_xact_id()::text::bigint", &[]),
        "reading the registry",
    )
    .await?
    {
        Ok(row) => row.get(0),
        // A hot standby assigns no transaction ids: the next id not yet seen completed is the
        // best horizon it has (a holder with a higher id, still open, is not waited for).
        Err(error)
            if error.code()
                == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION) =>
        {
            run_query(
                client.query_one(
                    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
                    &[],
                ),
                "reading the registry",
            )
            .await?
            .get(0)
        }
        Err(error) => return Err(db_error("reading the registry", &error)),
    };
    let deadline = tokio::time::Instant::now() + GAP_WAIT;
    loop {
        let oldest: i64 = run_query(
            client.query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                &[],
            ),
            "reading the registry",
        )
        .await?
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn lag_seconds_is_how_long_the_oldest_change_has_waited() {
        let now = 1_800_000_000 * SECOND;
        let months_ago = now - 90 * 86_400 * SECOND;
        // Caught up: no lag, whatever the times.
        assert_eq!(
            waiting_seconds(0, now, Some(now - 50 * SECOND), Some(months_ago)),
            0
        );
        // A backdated row waits at most since the last commit, not since its recorded_at.
        assert_eq!(
            waiting_seconds(3, now, Some(now - 50 * SECOND), Some(months_ago)),
            50
        );
        // A quiet night, then a row recorded 20 s ago: 20 s, not the night.
        assert_eq!(
            waiting_seconds(
                1,
                now,
                Some(now - 8 * 3600 * SECOND),
                Some(now - 20 * SECOND)
            ),
            20
        );
        assert_eq!(waiting_seconds(1, now, None, Some(now - 20 * SECOND)), 20);
        assert_eq!(waiting_seconds(1, now, Some(now - 20 * SECOND), None), 20);
        assert_eq!(waiting_seconds(1, now, None, None), 0);
        // A row recorded "in the future" (a skewed clock) never makes it negative.
        assert_eq!(
            waiting_seconds(1, now, Some(now - 20 * SECOND), Some(now + 20 * SECOND)),
            0
        );
    }

    #[test]
    fn the_connection_string_stays_out_of_errors() {
        let source = PostgresSource::new("host=x password=hunter2 port=notaport", None).unwrap();
        let error = source.config().unwrap_err();
        assert!(matches!(error, IngestError::SourceRefused(_)), "{error:?}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
