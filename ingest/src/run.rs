//! One ingest run: read a source, quarantine what is bad, write the rest, log the run.

use crate::cases;
use crate::chunks::{self, Chunk};
use crate::csv_rows;
use crate::error::{IngestError, Result};
use crate::fhir::{self, ImmunizationContext, PatientIndex};
use crate::persons::{self, LatestPersons, PersonRow};
use crate::population;
use crate::postgres::{self, PostgresSource, StopFlag};
use crate::progress::Progress;
use crate::registry_csv;
use crate::row::{self, Parsed, Rejected, Staged};
use crate::schema::{
    self, TableSpec, CASES, INGEST_RUNS, OPTOUT, PERSONS, POPULATION, QUARANTINE, VACCINATIONS,
};
use crate::source::Source;
use crate::table::{warehouse_url, Precedence, Table, UpsertStats};
use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc::Receiver;
use url::Url;
use vaxlake_pseudonymize::{MasterKey, Pseudonymizer};

/// Options of an ingest run, with `with_*` builders.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Rows per Delta commit. Bounds memory: a batch is held whole while it is deduplicated
    /// and written.
    pub batch_rows: usize,
    /// Parser threads (default: available cores).
    pub workers: usize,
    /// Where progress (bytes of input read) is reported; nowhere by default. The binary
    /// draws it as a bar on terminals.
    pub progress: Progress,
    /// FHIR identifier system of the national number.
    pub national_id_system: String,
    /// Name of the originating system of `csv:` and `postgres:` sources (part of their
    /// event keys).
    pub csv_source_system: String,
    /// Raised by SIGINT/SIGTERM: an incremental source commits the batch in hand and stops.
    pub stop: StopFlag,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            batch_rows: 500_000,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            progress: Progress::hidden(),
            national_id_system: fhir::DEFAULT_NATIONAL_ID_SYSTEM.to_string(),
            csv_source_system: "covid19".to_string(),
            stop: StopFlag::default(),
        }
    }
}

impl IngestOptions {
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
    pub fn with_csv_source_system(mut self, name: impl Into<String>) -> Self {
        self.csv_source_system = name.into();
        self
    }
    pub fn with_stop(mut self, stop: StopFlag) -> Self {
        self.stop = stop;
        self
    }
}

/// What a run did. `read == accepted + quarantined` always holds.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub run_id: String,
    pub read: u64,
    pub accepted: u64,
    pub quarantined: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// `postgres:` sources: the committed watermark (`change_seq`) after the run.
    pub watermark: Option<i64>,
}

impl IngestReport {
    fn add(&mut self, s: UpsertStats) {
        self.inserted += s.inserted;
        self.updated += s.updated;
        self.deleted += s.deleted;
        self.unchanged += s.unchanged;
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Collects quarantined records and writes them in batches; the same bad line ingested twice
/// is stored once.
struct Quarantine {
    table: Table,
    pending: Vec<(Rejected, [u8; 16])>,
    run_id: String,
    received_at: i64,
}

impl Quarantine {
    fn push(&mut self, r: Rejected) {
        let key = row::quarantine_key(&r.source, r.line, &r.record_hash);
        tracing::debug!(source = %r.source, line = r.line, reason = %r.reason, "quarantined");
        self.pending.push((r, key));
    }

    async fn flush(&mut self, commit: CommitProperties) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = row::newest_versions(std::mem::take(&mut self.pending));
        let batch = row::quarantine_batch(&rows, self.received_at, &self.run_id)?;
        self.table
            .upsert(batch, &vec![false; rows.len()], commit)
            .await?;
        Ok(())
    }
}

struct Run {
    root: Url,
    pseudonymizer: Pseudonymizer,
    options: IngestOptions,
    report: IngestReport,
    started_at: i64,
    quarantine: Quarantine,
    progress: Progress,
    label: &'static str,
    /// The newest `persons` row of every person the run's records describe.
    persons: LatestPersons,
}

impl Run {
    /// Upserts the persons the run has seen (newest wins by `ranked_at`), keeping the months
    /// of death the table already knows.
    async fn write_persons(&mut self) -> Result<()> {
        if self.persons.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.persons).into_rows();
        let mut table =
            Table::open_or_create(&self.root, &PERSONS, self.pseudonymizer.key_id()).await?;
        let deaths = persons::known_deaths(&table).await?;
        for chunk in rows.chunks(self.options.batch_rows) {
            let batch = persons::persons_batch(chunk, &deaths, self.started_at)?;
            let stats = table
                .upsert(batch, &vec![false; chunk.len()], self.commit())
                .await?;
            tracing::info!(?stats, "persons committed");
        }
        Ok(())
    }

    fn commit(&self) -> CommitProperties {
        CommitProperties::default().with_metadata([
            (
                "vaxlake.runId".to_string(),
                serde_json::Value::from(self.report.run_id.clone()),
            ),
            (
                "vaxlake.source".to_string(),
                serde_json::Value::from(self.label),
            ),
        ])
    }

    fn count<T>(&mut self, part: &mut Parsed<T>) {
        self.report.read += part.read;
        self.report.quarantined += part.rejected.len() as u64;
        for r in part.rejected.drain(..) {
            self.quarantine.push(r);
        }
    }

    async fn flush_quarantine_if_large(&mut self) -> Result<()> {
        if self.quarantine.pending.len() >= 200_000 {
            let commit = self.commit();
            self.quarantine.flush(commit).await?;
        }
        Ok(())
    }

    /// Drains parsed chunks into `table`, one upsert per `batch_rows` rows. While one batch
    /// is being written, the next one is parsed: at most two batches are in memory.
    async fn drain<T: Staged + Send + 'static>(
        &mut self,
        mut rx: Receiver<Result<Parsed<T>>>,
        table: Table,
        to_batch: fn(&[T], i64) -> arrow::error::Result<RecordBatch>,
        person_of: Option<fn(&T) -> PersonRow>,
    ) -> Result<()> {
        let mut writer = Writer {
            table: Some(table),
            in_flight: None,
        };
        let mut pending: Vec<T> = Vec::new();
        while let Some(part) = rx.recv().await {
            let mut part = part?;
            self.count(&mut part);
            if let Some(person_of) = person_of {
                for row in &part.rows {
                    self.persons.add(person_of(row));
                }
            }
            pending.append(&mut part.rows);
            self.flush_quarantine_if_large().await?;
            while pending.len() >= self.options.batch_rows {
                let rest = pending.split_off(self.options.batch_rows);
                let rows = std::mem::replace(&mut pending, rest);
                writer.start(self, rows, to_batch).await?;
            }
        }
        writer.start(self, pending, to_batch).await?;
        writer.finish(self).await
    }
}

/// Writes one batch at a time in a task of its own, so parsing goes on meanwhile.
struct Writer {
    table: Option<Table>,
    in_flight: Option<tokio::task::JoinHandle<Result<(Table, UpsertStats)>>>,
}

impl Writer {
    async fn finish(&mut self, run: &mut Run) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            let (table, stats) = task
                .await
                .map_err(|e| IngestError::Worker(e.to_string()))??;
            tracing::info!(?stats, "batch committed");
            run.report.add(stats);
            self.table = Some(table);
        }
        Ok(())
    }

    async fn start<T: Staged + Send + 'static>(
        &mut self,
        run: &mut Run,
        rows: Vec<T>,
        to_batch: fn(&[T], i64) -> arrow::error::Result<RecordBatch>,
    ) -> Result<()> {
        self.finish(run).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut table = self.table.take().expect("the table is back after finish");
        let commit = run.commit();
        let ingested_at = run.started_at;
        self.in_flight = Some(tokio::spawn(async move {
            let rows = row::newest_versions(rows);
            let deletes: Vec<bool> = rows.iter().map(Staged::deletes).collect();
            let batch = to_batch(&rows, ingested_at)?;
            drop(rows);
            let stats = table.upsert(batch, &deletes, commit).await?;
            Ok((table, stats))
        }));
        Ok(())
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Refuses the run if any table of the warehouse was written with another key, saying to
/// finish the rotation when the tables disagree among themselves (an interrupted
/// `key rotate`), and which key to use when the warehouse was rotated away from this one.
pub async fn check_key_everywhere(root: &Url, key_id: &str) -> Result<()> {
    let mut stored = Vec::new();
    for spec in schema::warehouse_tables() {
        if let Some(table) = Table::open(root, spec, None).await? {
            stored.push(vaxlake_catalog::StoredKey {
                table: spec.name.to_string(),
                key_id: table.property(crate::table::KEY_ID_PROPERTY)?,
                rotated_from: table.property(crate::table::KEY_ROTATED_FROM_PROPERTY)?,
            });
        }
    }
    Ok(vaxlake_catalog::check_keys(&stored, key_id)?)
}

/// Ingests one source into the warehouse at `warehouse` (a path or URL).
pub async fn ingest(
    warehouse: &str,
    source: &Source,
    key: &MasterKey,
    options: &IngestOptions,
) -> Result<IngestReport> {
    // The reference data every record is checked against: a broken file stops the run here,
    // naming its line, before anything is read.
    vaxlake_catalog::builtin()?;
    let root = warehouse_url(warehouse)?;
    let _turn = crate::maintain::ingest_lock(&root).await?;
    let pseudonymizer = Pseudonymizer::new(key);
    let key_id = pseudonymizer.key_id().to_string();
    check_key_everywhere(&root, &key_id).await?;
    // Before the first commit: a reader that sees this run's tables sees the secret too, so
    // the complement order never changes under a table version already answered.
    crate::order_secret::ensure_order_secret(&root).await?;
    let started_at = now_micros();
    let run_id = {
        let mut h = blake3::Hasher::new();
        h.update(&started_at.to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        hex::encode(&h.finalize().as_bytes()[..8])
    };
    let quarantine = Quarantine {
        table: Table::open_or_create(&root, &QUARANTINE, &key_id).await?,
        pending: Vec::new(),
        run_id: run_id.clone(),
        received_at: started_at,
    };
    let mut run = Run {
        root: root.clone(),
        pseudonymizer,
        options: options.clone(),
        report: IngestReport {
            run_id,
            ..Default::default()
        },
        started_at,
        quarantine,
        progress: options.progress.clone(),
        label: source.label(),
        persons: LatestPersons::default(),
    };
    tracing::info!(run_id = %run.report.run_id, source = source.label(), key_id = %key_id, "ingest started");
    match source {
        Source::Fhir(dir) => ingest_fhir(&mut run, dir).await?,
        Source::RegistryCsv(path) => ingest_registry_csv(&mut run, path).await?,
        Source::Cases(path) => ingest_cases(&mut run, path).await?,
        Source::Population(path) => ingest_population(&mut run, path).await?,
        Source::OptOut(path) => ingest_optout(&mut run, path).await?,
        Source::Postgres(source) => ingest_postgres(&mut run, source).await?,
    }
    run.write_persons().await?;
    let commit = run.commit();
    run.quarantine.flush(commit).await?;
    run.report.accepted = run.report.read - run.report.quarantined;
    // The coverage facts of the persons this run changed (after the commits they derive
    // from; a run stopped before this line leaves them to the next run or `maintain`).
    let facts = crate::facts::refresh(&root, &key_id).await?;
    tracing::debug!(?facts, "coverage facts");
    run.progress.finish();
    // A `--follow` poll that found nothing new leaves no trace (it would commit every few
    // seconds); every run that read something is logged.
    if run.report.read > 0 || !matches!(source, Source::Postgres(_)) {
        log_run(&run, &key_id).await?;
    }
    tracing::info!(
        read = run.report.read,
        accepted = run.report.accepted,
        quarantined = run.report.quarantined,
        inserted = run.report.inserted,
        updated = run.report.updated,
        deleted = run.report.deleted,
        "ingest finished"
    );
    Ok(run.report)
}

async fn ingest_fhir(run: &mut Run, dir: &Path) -> Result<()> {
    let patient_files = chunks::export_files(dir, "Patient")?;
    let immunization_files = chunks::export_files(dir, "Immunization")?;
    if patient_files.is_empty() && immunization_files.is_empty() {
        return Err(IngestError::BadInput {
            path: dir.display().to_string(),
            message: "no Patient*.ndjson or Immunization*.ndjson here: is it a FHIR Bulk Data export folder?".into(),
        });
    }
    let total: u64 = patient_files
        .iter()
        .chain(&immunization_files)
        .map(|p| file_len(p))
        .sum();
    run.progress.start(total);
    run.progress.set_message("Patients");

    let today = crate::dates::today();
    let labels = |files: &[PathBuf]| -> Vec<Arc<str>> {
        files
            .iter()
            .map(|f| Arc::from(format!("fhir:{}", file_name(f))))
            .collect()
    };
    let patient_labels = labels(&patient_files);
    let p = run.pseudonymizer.clone();
    let system = run.options.national_id_system.clone();
    let mut rx = chunks::spawn(
        patient_files,
        run.options.workers,
        run.progress.clone(),
        move |c: &Chunk| fhir::parse_patients(c, &patient_labels[c.file], &p, &system, today),
    );
    let mut patients = PatientIndex::new();
    while let Some(part) = rx.recv().await {
        let mut part = part?;
        run.count(&mut part);
        fhir::index_patients(&mut patients, std::mem::take(&mut part.rows));
        run.flush_quarantine_if_large().await?;
    }
    tracing::info!(patients = patients.len(), "patient index built");
    for (position, person) in patients.values().flatten().enumerate() {
        run.persons.add(person.row(position as u64));
    }

    run.progress.set_message("Immunizations");
    let ctx = Arc::new(ImmunizationContext {
        pseudonymizer: run.pseudonymizer.clone(),
        patients,
        today,
        source: labels(&immunization_files),
    });
    let rx = chunks::spawn(
        immunization_files,
        run.options.workers,
        run.progress.clone(),
        move |c: &Chunk| fhir::parse_immunizations(c, &ctx),
    );
    let table = Table::open_or_create(&run.root, &VACCINATIONS, run.pseudonymizer.key_id()).await?;
    // The persons come from the Patients above, not from their Immunizations.
    run.drain(rx, table, row::vaccinations_batch, None).await
}

fn hasher(p: &Pseudonymizer) -> impl Fn(&[u8]) -> [u8; 16] + Send + 'static {
    let p = p.clone();
    move |raw| fhir::record_hash(&p, raw)
}

async fn ingest_registry_csv(run: &mut Run, path: &Path) -> Result<()> {
    run.progress.start(file_len(path));
    let p = run.pseudonymizer.clone();
    let system: Arc<str> = run.options.csv_source_system.as_str().into();
    let today = crate::dates::today();
    let rx = csv_rows::spawn(
        path,
        Arc::from(format!("csv:{}", file_name(path))),
        registry_csv::COLUMNS,
        run.progress.clone(),
        hasher(&p),
        move |f, line| registry_csv::parse_row(f, line, &p, &system, today),
    )?;
    let table = Table::open_or_create(&run.root, &VACCINATIONS, run.pseudonymizer.key_id()).await?;
    run.drain(
        rx,
        table,
        row::vaccinations_batch,
        Some(registry_csv::person_row),
    )
    .await
}

/// Pulls the registry database above the committed watermark until caught up (or told to
/// stop), one Delta commit per batch carrying its watermark (see `postgres.rs`).
async fn ingest_postgres(run: &mut Run, source: &PostgresSource) -> Result<()> {
    let client = source.connect().await?;
    let app_id = source.app_id()?;
    let mut table =
        Table::open_or_create(&run.root, &VACCINATIONS, run.pseudonymizer.key_id()).await?;
    let mut watermark = table.app_version(&app_id).await?.unwrap_or(0);
    tracing::info!(table = %source.table, watermark, "pulling the registry database");
    let p = run.pseudonymizer.clone();
    let system: Arc<str> = run.options.csv_source_system.as_str().into();
    let today = crate::dates::today();
    let parse =
        move |f: &csv_rows::Fields, line: u64| registry_csv::parse_row(f, line, &p, &system, today);
    let record_hash = hasher(&run.pseudonymizer);
    while !run.options.stop.stopped() {
        let next = postgres::next_batch(
            &client,
            source,
            watermark,
            run.options.batch_rows,
            &parse,
            &record_hash,
        )
        .await?;
        let Some(mut batch) = next else { break };
        run.count(&mut batch.parsed);
        // The quarantine commit carries the batch's transaction too: a second ingest racing
        // for the same batch is refused there (Delta's conflict check on the app id) before
        // it writes anything, instead of adding its copy of the bad rows.
        let commit = postgres::with_watermark(run.commit(), &app_id, batch.last_change_seq);
        run.quarantine.flush(commit).await?;
        // Each row is the registry's current state of its event (read in change_seq order
        // above the committed watermark): it supersedes what the table holds, whatever its
        // recorded_at says (an update need not move it forward).
        let rows = postgres::current_states(std::mem::take(&mut batch.parsed.rows));
        // The batch's persons first: were the run to stop between the two commits, the
        // batch is read again (its watermark is not committed) and its persons rewritten,
        // which changes nothing the second time.
        for row in &rows {
            run.persons.add(registry_csv::person_row(row));
        }
        run.write_persons().await?;
        let deletes: Vec<bool> = rows.iter().map(Staged::deletes).collect();
        let record_batch = row::vaccinations_batch(&rows, run.started_at)?;
        drop(rows);
        let commit = postgres::with_watermark(run.commit(), &app_id, batch.last_change_seq);
        let before = table.version();
        let stats = table
            .upsert_with(
                record_batch,
                &deletes,
                Precedence::Supersedes,
                commit.clone(),
            )
            .await?;
        if table.version() == before {
            table.commit_marker(commit).await?;
        }
        run.report.add(stats);
        watermark = batch.last_change_seq;
        tracing::info!(watermark, ?stats, "registry batch committed");
    }
    run.report.watermark = Some(watermark);
    Ok(())
}

async fn ingest_cases(run: &mut Run, path: &Path) -> Result<()> {
    run.progress.start(file_len(path));
    let p = run.pseudonymizer.clone();
    let today = crate::dates::today();
    let rx = csv_rows::spawn(
        path,
        Arc::from(format!("cases:{}", file_name(path))),
        cases::COLUMNS,
        run.progress.clone(),
        hasher(&p),
        move |f, line| cases::parse_row(f, line, &p, today),
    )?;
    let table = Table::open_or_create(&run.root, &CASES, run.pseudonymizer.key_id()).await?;
    run.drain(rx, table, row::cases_batch, Some(cases::person_row))
        .await
}

async fn ingest_population(run: &mut Run, path: &Path) -> Result<()> {
    run.progress.start(file_len(path));
    let mut rx = csv_rows::spawn(
        path,
        Arc::from(format!("population:{}", file_name(path))),
        population::COLUMNS,
        run.progress.clone(),
        hasher(&run.pseudonymizer),
        population::parse_row,
    )?;
    // Denominators are small (communes × sexes × birth years): held whole, then each
    // reference year in the file replaces the same year in the table, in one commit.
    let mut rows = Vec::new();
    while let Some(part) = rx.recv().await {
        let mut part = part?;
        run.count(&mut part);
        rows.append(&mut part.rows);
    }
    if rows.is_empty() {
        return Ok(());
    }
    let years: std::collections::BTreeSet<i32> = rows.iter().map(|r| r.reference_year).collect();
    let batch = population_batch(&rows, run.started_at)?;
    let mut table =
        Table::open_or_create(&run.root, &POPULATION, run.pseudonymizer.key_id()).await?;
    let list: Vec<String> = years.iter().map(i32::to_string).collect();
    table
        .replace_where(
            vec![batch],
            Some(format!("reference_year IN ({})", list.join(", "))),
            run.commit(),
        )
        .await?;
    run.report.inserted += rows.len() as u64;
    Ok(())
}

/// `optout:FILE`: one column `national_id`; each valid number becomes its person key, and
/// the file replaces the whole list (a withdrawn objection disappears with the next file).
async fn ingest_optout(run: &mut Run, path: &Path) -> Result<()> {
    run.progress.start(file_len(path));
    let p = run.pseudonymizer.clone();
    let mut rx = csv_rows::spawn(
        path,
        Arc::from(format!("optout:{}", file_name(path))),
        &["national_id"],
        run.progress.clone(),
        hasher(&run.pseudonymizer),
        move |f: &csv_rows::Fields, _line| optout_key(f, &p),
    )?;
    let mut keys = std::collections::BTreeSet::new();
    while let Some(part) = rx.recv().await {
        let mut part = part?;
        run.count(&mut part);
        keys.extend(part.rows.drain(..));
    }
    // A file without one valid number is a broken export, not "nobody objects": replacing
    // the list with it would silently hand every objecting person to researchers again.
    if keys.is_empty() {
        return Err(IngestError::BadInput {
            path: path.display().to_string(),
            message: "no valid national number in this opt-out file; the list in the \
                      warehouse is kept as it was (fix the file and ingest it again)"
                .into(),
        });
    }
    let batch = RecordBatch::try_new(
        OPTOUT.schema().clone(),
        vec![
            Arc::new(arrow::array::StringArray::from_iter_values(keys.iter())),
            Arc::new(
                arrow::array::TimestampMicrosecondArray::from(vec![run.started_at; keys.len()])
                    .with_timezone("UTC"),
            ),
        ],
    )?;
    let mut table = Table::open_or_create(&run.root, &OPTOUT, run.pseudonymizer.key_id()).await?;
    table.replace_where(vec![batch], None, run.commit()).await?;
    run.report.inserted += keys.len() as u64;
    Ok(())
}

/// One opt-out row's person key, or why not (the reason never quotes the number).
pub(crate) fn optout_key(f: &csv_rows::Fields, p: &Pseudonymizer) -> Result<String, String> {
    let digits = vaxlake_pseudonymize::national_id::normalise(f.get(0))
        .map_err(|e| format!("national_id: {e}"))?;
    Ok(p.pseudonym(vaxlake_pseudonymize::IdKind::Person, &digits))
}

fn population_batch(rows: &[population::PopulationRow], ingested_at: i64) -> Result<RecordBatch> {
    let mut year = arrow::array::Int32Builder::new();
    let mut commune = StringBuilder::new();
    let mut canton = StringBuilder::new();
    let mut sex = StringBuilder::new();
    let mut birth_year = arrow::array::Int32Builder::new();
    let mut count = Int64Builder::new();
    let mut ingested = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for r in rows {
        year.append_value(r.reference_year);
        commune.append_value(r.commune);
        canton.append_value(r.canton);
        sex.append_value(r.sex);
        birth_year.append_value(r.birth_year);
        count.append_value(r.count);
        ingested.append_value(ingested_at);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(year.finish()),
        Arc::new(commune.finish()),
        Arc::new(canton.finish()),
        Arc::new(sex.finish()),
        Arc::new(birth_year.finish()),
        Arc::new(count.finish()),
        Arc::new(ingested.finish()),
    ];
    Ok(RecordBatch::try_new(POPULATION.schema().clone(), columns)?)
}

async fn log_run(run: &Run, key_id: &str) -> Result<()> {
    let spec: &'static TableSpec = &INGEST_RUNS;
    let mut table = Table::open_or_create(&run.root, spec, key_id).await?;
    let r = &run.report;
    let ts = |v| {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        b.append_value(v);
        Arc::new(b.finish()) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(arrow::array::StringArray::from(vec![r.run_id.clone()])),
        Arc::new(arrow::array::StringArray::from(vec![run.label])),
        ts(run.started_at),
        ts(now_micros()),
        Arc::new(arrow::array::Int64Array::from(vec![r.read as i64])),
        Arc::new(arrow::array::Int64Array::from(vec![r.accepted as i64])),
        Arc::new(arrow::array::Int64Array::from(vec![r.quarantined as i64])),
        Arc::new(arrow::array::StringArray::from(vec![key_id.to_string()])),
    ];
    let batch = RecordBatch::try_new(spec.schema().clone(), columns)?;
    table.append(batch, run.commit()).await
}
