//! The audit trail: one row per API request (who, role, endpoint, parameters or SQL text,
//! rows returned, duration, outcome) in the warehouse's `audit` Delta table.
//!
//! Requests hand their record to a channel and go on; a background writer appends what has
//! accumulated every second (or every [`BATCH_ROWS`] records) in one commit, and drains the
//! channel on shutdown ([`AuditLog::close`]), so a clean stop loses nothing and a slow store
//! never holds an answer back for long (only a full channel, [`QUEUE`] records behind, makes
//! a request wait).
//!
//! The `audit` table is not among the tables `/api/sql` sees: operators read it through
//! `/api/audit` and `vaxlake audit`. Parameters and SQL text have every run of 9 or more
//! digits replaced by `<digits>`, so that an identity typed into a query (a national
//! number) is not written in clear.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::SchemaRef;
use datafusion::functions::string::expr_fn::concat;
use datafusion::functions::unicode::expr_fn::{character_length, left};
use datafusion::prelude::{col, lit, when, SessionContext};
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use tokio::sync::mpsc;
use url::Url;
use vaxlake_query::{QueryAnswer, QueryError};

/// Name of the table under the warehouse root (the warehouse's name for it).
pub use vaxlake_query::AUDIT_TABLE;
/// Records per commit at most.
pub const BATCH_ROWS: usize = 5_000;
/// Records waiting at most before requests wait for the writer.
pub const QUEUE: usize = 50_000;
/// Rows one `/api/audit` answer holds at most.
pub const MAX_API_ROWS: usize = 10_000;
/// Characters of one row's parameters or SQL text that an `/api/audit` answer shows (the rest
/// is cut, with `…`; `vaxlake audit` shows the whole text). With [`MAX_API_ROWS`] it bounds
/// one answer to about 25 MB, whatever was stored.
pub const MAX_API_TEXT: usize = 2_000;
/// How often pending records are committed.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Commits after which the writer reads the table afresh (from its newest checkpoint)
/// instead of carrying its state on. A `DeltaTable` updated by its own writes keeps every
/// commit's log batch: measured 35 KB per commit, at one commit a second 126 MB an hour, so a
/// server under steady use grew without bound (docs/reliability.md, the soak).
pub const RELOAD_EVERY: u64 = 100;

/// One request, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Microseconds since the Unix epoch, UTC.
    pub at_micros: i64,
    pub user: Option<String>,
    pub role: String,
    pub method: String,
    pub endpoint: String,
    /// The query string, or the SQL text of `/api/sql` (digits redacted, see module doc).
    pub parameters: String,
    pub status: u16,
    pub outcome: String,
    pub rows: Option<i64>,
    pub duration_ms: f64,
}

/// The outcome word for an HTTP status.
pub fn outcome(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 => "unauthenticated",
        403 => "forbidden",
        429 => "throttled",
        400..=499 => "refused",
        _ => "error",
    }
}

/// `text` with every run of 9 or more ASCII digits replaced by `<digits>`.
pub fn redact_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 9 {
            out.push_str("<digits>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The `audit` table's columns, as the catalogue describes them.
pub fn schema() -> SchemaRef {
    vaxlake_catalog::AUDIT.schema().clone()
}

fn batch(records: &[AuditRecord]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let strings = |f: &dyn Fn(&AuditRecord) -> Option<&str>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<StringArray>())
    };
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(
                    records.iter().map(|r| r.at_micros).collect::<Vec<i64>>(),
                )
                .with_timezone("UTC"),
            ),
            strings(&|r| r.user.as_deref()),
            strings(&|r| Some(&r.role)),
            strings(&|r| Some(&r.method)),
            strings(&|r| Some(&r.endpoint)),
            strings(&|r| Some(&r.parameters)),
            Arc::new(
                records
                    .iter()
                    .map(|r| i32::from(r.status))
                    .collect::<Int32Array>(),
            ),
            strings(&|r| Some(&r.outcome)),
            Arc::new(records.iter().map(|r| r.rows).collect::<Int64Array>()),
            Arc::new(
                records
                    .iter()
                    .map(|r| r.duration_ms)
                    .collect::<Float64Array>(),
            ),
        ],
    )
}

/// What requests and shutdown send the writer.
enum Message {
    Record(AuditRecord),
    /// Commit everything queued, then stop and say so.
    Close(tokio::sync::oneshot::Sender<()>),
}

/// The sending end of the audit trail, shared by every request.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
}

impl AuditLog {
    /// Starts the writer for the `audit` table under `root` (created by its first commit).
    pub fn start(root: &Url) -> Result<Self, QueryError> {
        let url = root
            .join(&format!("{AUDIT_TABLE}/"))
            .map_err(|error| QueryError::warehouse(root, error))?;
        if let Ok(dir) = url.to_file_path() {
            std::fs::create_dir_all(&dir).map_err(|error| QueryError::warehouse(&url, error))?;
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(url, receiver));
        Ok(AuditLog { sender })
    }

    /// A log whose writer is gone (for unit tests of what is recorded, not of the writing).
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        let (sender, _) = mpsc::channel(1);
        AuditLog { sender }
    }

    /// Queues one record; waits only while [`QUEUE`] records are already waiting.
    pub async fn record(&self, record: AuditRecord) {
        if self.sender.send(Message::Record(record)).await.is_err() {
            tracing::error!("audit writer stopped: a request went unrecorded");
        }
    }

    /// Queues one record without waiting (for drop guards, which cannot wait): when
    /// [`QUEUE`] records are already waiting, a task sends it as soon as there is room.
    pub fn record_now(&self, record: AuditRecord) {
        match self.sender.try_send(Message::Record(record)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                let sender = self.sender.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn(async move {
                            if sender.send(message).await.is_err() {
                                tracing::error!("audit writer stopped: a request went unrecorded");
                            }
                        });
                    }
                    Err(_) => tracing::error!(
                        "audit queue full outside the runtime: a request went unrecorded"
                    ),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit writer stopped: a request went unrecorded");
            }
        }
    }

    /// Waits until every record queued before this call is committed, then stops the
    /// writer (for a clean shutdown, after the server stopped answering).
    pub async fn close(&self) {
        let (done, closed) = tokio::sync::oneshot::channel();
        if self.sender.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

async fn write_loop(url: Url, mut receiver: mpsc::Receiver<Message>) {
    let mut table: Option<DeltaTable> = None;
    let mut commits: u64 = 0;
    let mut pending: Vec<AuditRecord> = Vec::new();
    let mut open = true;
    let mut closed: Option<tokio::sync::oneshot::Sender<()>> = None;
    while open {
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = receiver.recv() => match next {
                    Some(Message::Record(record)) => {
                        pending.push(record);
                        if pending.len() >= BATCH_ROWS {
                            break;
                        }
                    }
                    Some(Message::Close(done)) => {
                        closed = Some(done);
                        open = false;
                        break;
                    }
                    None => {
                        open = false;
                        break;
                    }
                },
                _ = &mut deadline => break,
            }
        }
        if pending.is_empty() {
            continue;
        }
        // A failed commit keeps its records for the next tick (retried until shutdown).
        let mut attempts = 0;
        loop {
            match commit(&url, &mut table, &pending).await {
                Ok(()) => {
                    pending.clear();
                    commits += 1;
                    if commits.is_multiple_of(RELOAD_EVERY) {
                        table = None;
                    }
                    break;
                }
                Err(error) => {
                    attempts += 1;
                    tracing::error!(%error, records = pending.len(), "audit commit failed");
                    if open || attempts >= 5 {
                        break;
                    }
                    tokio::time::sleep(FLUSH_EVERY).await;
                }
            }
        }
    }
    if !pending.is_empty() {
        tracing::error!(
            records = pending.len(),
            "audit records could not be committed at shutdown"
        );
    }
    if let Some(done) = closed {
        let _ = done.send(());
    }
}

async fn commit(
    url: &Url,
    table: &mut Option<DeltaTable>,
    records: &[AuditRecord],
) -> Result<(), String> {
    let current = match table.take() {
        Some(table) => table,
        None => DeltaTable::try_from_url(url.clone())
            .await
            .map_err(|e| e.to_string())?,
    };
    let batch = batch(records).map_err(|e| e.to_string())?;
    let written = current
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await
        .map_err(|e| e.to_string())?;
    *table = Some(written);
    Ok(())
}

/// Which audit rows to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub endpoint: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD`; rows at or after it.
    pub since: Option<String>,
    /// Newest rows first, at most this many (default 100, at most 10 000).
    pub limit: Option<usize>,
    /// Characters of `parameters` shown per row at most (longer texts end in `…`).
    pub max_text: Option<usize>,
}

/// The audit rows matching `filter`, newest first. An absent table reads as no rows.
pub async fn read(root: &Url, filter: &AuditFilter) -> Result<QueryAnswer, QueryError> {
    let url = root
        .join(&format!("{AUDIT_TABLE}/"))
        .map_err(|error| QueryError::warehouse(root, error))?;
    let exists = vaxlake_query::table_exists(&url).await?;
    let ctx = SessionContext::new();
    if exists {
        let table = deltalake::open_table(url.clone())
            .await
            .map_err(|error| QueryError::warehouse(&url, error))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|error| QueryError::warehouse(&url, error))?;
        ctx.register_table(AUDIT_TABLE, provider)?;
    } else {
        ctx.register_batch(AUDIT_TABLE, RecordBatch::new_empty(schema()))?;
    }
    let mut frame = ctx.table(AUDIT_TABLE).await?;
    if let Some(user) = &filter.user {
        frame = frame.filter(col("user").eq(lit(user.as_str())))?;
    }
    if let Some(endpoint) = &filter.endpoint {
        frame = frame.filter(col("endpoint").eq(lit(endpoint.as_str())))?;
    }
    if let Some(outcome) = &filter.outcome {
        frame = frame.filter(col("outcome").eq(lit(outcome.as_str())))?;
    }
    if let Some(since) = &filter.since {
        let micros = parse_since(since)?;
        frame = frame.filter(col("at").gt_eq(lit(
            datafusion::scalar::ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())),
        )))?;
    }
    if let Some(max_text) = filter.max_text {
        let long = character_length(col("parameters")).gt(lit(max_text as i64));
        let cut = concat(vec![
            left(col("parameters"), lit(max_text as i64)),
            lit("…"),
        ]);
        frame = frame.with_column("parameters", when(long, cut).otherwise(col("parameters"))?)?;
    }
    let limit = filter.limit.unwrap_or(100).max(1);
    // One row more than asked for says whether the limit cut the answer.
    let frame = frame
        .sort(vec![col("at").sort(false, false)])?
        .limit(0, Some(limit + 1))?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    let (batches, truncated) = first_rows(batches, limit);
    Ok(QueryAnswer {
        schema,
        batches,
        truncated,
    })
}

/// The first `limit` rows of `batches` (empty batches left out), and whether rows were cut.
fn first_rows(batches: Vec<RecordBatch>, limit: usize) -> (Vec<RecordBatch>, bool) {
    let mut kept = Vec::with_capacity(batches.len());
    let mut room = limit;
    let mut truncated = false;
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        if room == 0 {
            truncated = true;
            break;
        }
        if batch.num_rows() > room {
            kept.push(batch.slice(0, room));
            truncated = true;
            break;
        }
        room -= batch.num_rows();
        kept.push(batch);
    }
    (kept, truncated)
}

/// The value is not quoted back: a query string can carry anything.
fn parse_since(text: &str) -> Result<i64, QueryError> {
    let bad =
        || QueryError::Invalid("since must be an RFC 3339 time or a date YYYY-MM-DD".to_string());
    if let Ok(time) = chrono_free::rfc3339_micros(text) {
        return Ok(time);
    }
    chrono_free::date_micros(text).map_err(|_| bad())
}

/// Time parsing with arrow's own parsers (the query crate has no date library).
mod chrono_free {
    use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;

    pub fn rfc3339_micros(text: &str) -> Result<i64, ()> {
        if text.len() <= 10 {
            return Err(());
        }
        string_to_timestamp_nanos(text)
            .map(|nanos| nanos / 1_000)
            .map_err(|_| ())
    }

    pub fn date_micros(text: &str) -> Result<i64, ()> {
        if text.len() != 10 {
            return Err(());
        }
        string_to_timestamp_nanos(&format!("{text}T00:00:00Z"))
            .map(|nanos| nanos / 1_000)
            .map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_digit_runs_are_redacted() {
        assert_eq!(
            redact_digits("SELECT * FROM v WHERE x = '1893120105732' AND y = 2024"),
            "SELECT * FROM v WHERE x = '<digits>' AND y = 2024"
        );
        assert_eq!(
            redact_digits("cohort=2023&age_months=24"),
            "cohort=2023&age_months=24"
        );
        assert_eq!(redact_digits("123456789"), "<digits>");
        assert_eq!(redact_digits("12345678"), "12345678");
        assert_eq!(redact_digits("é1234567890é"), "é<digits>é");
    }

    #[test]
    fn since_accepts_dates_and_times() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert!(parse_since("yesterday").is_err());
    }

    #[tokio::test]
    async fn records_are_committed_on_close_and_read_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = Url::from_directory_path(dir.path()).unwrap();
        let log = AuditLog::start(&root).unwrap();
        for i in 0..3 {
            log.record(AuditRecord {
                at_micros: 1_000_000 * i,
                user: Some(format!("u{i}")),
                role: "analyst".into(),
                method: "GET".into(),
                endpoint: "/api/coverage".into(),
                parameters: format!("cohort=202{i}"),
                status: 200,
                outcome: outcome(200).into(),
                rows: Some(i),
                duration_ms: 1.5,
            })
            .await;
        }
        log.close().await;
        let all = read(&root, &AuditFilter::default()).await.unwrap();
        let json = all.to_json().unwrap();
        assert_eq!(json["rows"].as_array().unwrap().len(), 3);
        assert_eq!(json["rows"][0][1], "u2");
        let one = read(
            &root,
            &AuditFilter {
                user: Some("u1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(one.num_rows(), 1);
        assert!(!one.truncated);
        assert!(!all.truncated, "3 rows, limit 100");
        let cut = read(
            &root,
            &AuditFilter {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(cut.num_rows(), 2);
        assert!(cut.truncated, "3 rows, limit 2");
        assert_eq!(cut.to_json().unwrap()["truncated"], true);
        let short = read(
            &root,
            &AuditFilter {
                max_text: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .to_json()
        .unwrap();
        // "cohort=2022" has 11 characters: cut at 7, marked; the other columns are as stored.
        assert_eq!(short["rows"][0][5], "cohort=…");
        assert_eq!(short["rows"][0][1], "u2");
        let exact = read(
            &root,
            &AuditFilter {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(exact.num_rows(), 3);
        assert!(!exact.truncated, "3 rows, limit 3");
    }

    #[test]
    fn first_rows_cuts_across_batches() {
        let one = |n: i64| {
            let records: Vec<AuditRecord> = (0..n)
                .map(|i| AuditRecord {
                    at_micros: i,
                    user: None,
                    role: "anonymous".into(),
                    method: "GET".into(),
                    endpoint: "/".into(),
                    parameters: String::new(),
                    status: 200,
                    outcome: "ok".into(),
                    rows: None,
                    duration_ms: 0.0,
                })
                .collect();
            batch(&records).unwrap()
        };
        let rows =
            |batches: &[RecordBatch]| batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        let (kept, cut) = first_rows(vec![one(2), one(0), one(3)], 4);
        assert_eq!((rows(&kept), cut), (4, true));
        let (kept, cut) = first_rows(vec![one(2), one(2)], 4);
        assert_eq!((rows(&kept), cut), (4, false));
        let (kept, cut) = first_rows(vec![one(2), one(2), one(1)], 4);
        assert_eq!((rows(&kept), cut), (4, true));
    }
}
