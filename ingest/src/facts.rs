//! The coverage facts (`dose_facts`, see `vaxlake_catalog::DOSE_FACTS`), kept up to date
//! after every ingest run by recomputing only the persons the run changed.
//!
//! Each commit of `dose_facts` records, as Delta application transactions, the
//! `vaccinations` and `persons` versions it reflects. A refresh reads what changed in those
//! two tables since then from their Delta logs (the rows of the files each commit removed
//! and added: a row in one and not the other is a change, whatever rewrote the file), takes
//! the persons of the changed rows, and appends their old facts with weight −1 and their new
//! facts with weight +1, netted, in one commit. Appending rather than rewriting keeps a
//! small commit small for the readers too: the coverage engine adds up the added files
//! instead of reading the table again. `vaxlake maintain` rewrites the table netted.
//!
//! A refresh that cannot see the changes (no facts yet, reference rules changed, a commit
//! file or a removed data file gone, or most of the country touched) rebuilds the whole
//! table in one commit instead: slower, never different.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Int32Array, Int32Builder, ListArray,
    RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Date32Type, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Transaction};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use url::Url;
use vaxlake_catalog::validity::{season_of_day, DoseDay, DoseRules, Judged};
use vaxlake_catalog::{Reference, DOSE_FACTS, PERSONS, VACCINATIONS};

use crate::error::{IngestError, Result};
use crate::table::{strings, Table};

/// Bumped when the facts' columns or their derivation change: facts written under another
/// format (or other reference rules, see [`fingerprint`]) are rebuilt, never mixed.
const FORMAT: &str = "dose_facts v1";

/// Above this many changed persons a rebuild reads less than finding each one's doses.
const REBUILD_ABOVE_PERSONS: usize = 50_000;

/// What a refresh did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FactsReport {
    /// The whole table was written again (first run, new rules, or too much changed).
    pub rebuilt: bool,
    /// Persons whose facts were recomputed.
    pub persons: u64,
    /// Rows appended (retractions and new facts) or written by a rebuild.
    pub rows: u64,
}

/// Brings `dose_facts` up to date with the current `vaccinations` and `persons`.
pub async fn refresh(root: &Url, key_id: &str) -> Result<FactsReport> {
    update(root, key_id, false).await
}

/// Writes `dose_facts` again from `vaccinations` and `persons`, netted, in one commit
/// (`vaxlake maintain`): the retractions of earlier refreshes are gone afterwards.
pub async fn rebuild(root: &Url, key_id: &str) -> Result<FactsReport> {
    update(root, key_id, true).await
}

async fn update(root: &Url, key_id: &str, force_rebuild: bool) -> Result<FactsReport> {
    let Some(vaccinations) = Table::open(root, &VACCINATIONS, Some(key_id)).await? else {
        return Ok(FactsReport::default());
    };
    let persons = Table::open(root, &PERSONS, Some(key_id)).await?;
    let mut facts = Table::open_or_create(root, &DOSE_FACTS, key_id).await?;
    let reference = vaxlake_catalog::builtin()?;
    let (vaccinations_app, persons_app) = app_ids(reference);
    let now = Watermark {
        vaccinations: vaccinations.version().unwrap_or(-1),
        persons: persons.as_ref().and_then(Table::version).unwrap_or(-1),
    };
    let done = Watermark {
        vaccinations: facts.app_version(&vaccinations_app).await?.unwrap_or(-2),
        persons: facts.app_version(&persons_app).await?.unwrap_or(-1),
    };
    if !force_rebuild && done == now {
        return Ok(FactsReport::default());
    }
    let commit = CommitProperties::default().with_application_transactions(vec![
        Transaction::new(&vaccinations_app, now.vaccinations),
        Transaction::new(&persons_app, now.persons),
    ]);
    let touched = if force_rebuild || done.vaccinations < -1 {
        None
    } else {
        changed_persons(&vaccinations, persons.as_ref(), &done, &now).await?
    };
    let source = SessionContext::new();
    vaccinations.register(&source, "vaccinations").await?;
    match &persons {
        Some(persons) => persons.register(&source, "persons").await?,
        None => register_batch(
            &source,
            "persons",
            RecordBatch::new_empty(PERSONS.schema().clone()),
        )?,
    }

    let Some(touched) = touched.filter(|t| t.len() <= REBUILD_ABOVE_PERSONS) else {
        // Written as DataFusion derives it, a batch of persons at a time: the country's
        // facts are never held whole.
        let events = count_rows(&source, "vaccinations").await?;
        let derived = DerivedFacts::new(&source, slices(events));
        facts.replace_all_from(derived.plan()?, commit).await?;
        let (persons, rows) = derived.counted();
        tracing::info!(rows, "coverage facts rebuilt");
        return Ok(FactsReport {
            rebuilt: true,
            persons,
            rows,
        });
    };

    // The touched persons' current facts retracted and their new facts added, netted: a
    // person whose facts did not change adds nothing.
    let mut keys: Vec<&str> = touched.iter().map(String::as_str).collect();
    keys.sort_unstable();
    let keys = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "person_key",
            DataType::Utf8,
            false,
        )])),
        vec![Arc::new(StringArray::from(keys))],
    )?;
    register_batch(&source, "touched", keys.clone())?;
    let ctx = SessionContext::new();
    register_batch(&ctx, "touched", keys)?;
    let derived = DerivedFacts::new(&source, vec![TOUCHED.to_string()]);
    ctx.register_table("derived", Arc::new(derived.table()?))
        .map_err(df_err)?;
    facts.register(&ctx, "dose_facts").await?;
    let columns = DOSE_FACTS
        .columns
        .iter()
        .map(|c| c.name)
        .filter(|&name| name != "weight")
        .collect::<Vec<_>>()
        .join(", ");
    let netted = format!(
        "SELECT {columns}, CAST(sum(w) AS INT) AS weight FROM (
             SELECT {columns}, -weight AS w FROM dose_facts
             WHERE person_key IN (SELECT person_key FROM touched)
             UNION ALL SELECT {columns}, weight AS w FROM derived)
         GROUP BY {columns} HAVING sum(w) <> 0"
    );
    let changes = ctx
        .sql(&netted)
        .await
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    let changes = concat_batches(DOSE_FACTS.schema(), &conform(&changes)?)?;
    let rows = changes.num_rows() as u64;
    if rows == 0 {
        facts.commit_marker(commit).await?;
    } else {
        facts.append(changes, commit).await?;
    }
    tracing::info!(persons = touched.len(), rows, "coverage facts refreshed");
    Ok(FactsReport {
        rebuilt: false,
        persons: touched.len() as u64,
        rows,
    })
}

/// Registers `batch` as table `name` of `ctx`.
fn register_batch(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df_err)?;
    ctx.register_table(name, Arc::new(table)).map_err(df_err)?;
    Ok(())
}

fn df_err(source: datafusion::error::DataFusionError) -> IngestError {
    IngestError::DataFusion {
        table: DOSE_FACTS.name.to_string(),
        source,
    }
}

/// `batches` with the columns of `dose_facts` as the table stores them (DataFusion reads
/// text as string views and computes nullable columns).
fn conform(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let schema = DOSE_FACTS.schema();
    batches
        .iter()
        .map(|batch| {
            let columns = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| arrow::compute::cast(column, field.data_type()))
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect()
}

/// The application ids the facts record their source versions under. They name the
/// format and the reference rules, so facts of other rules count as no facts at all.
fn app_ids(reference: &Reference) -> (String, String) {
    let print = fingerprint(reference);
    (
        format!("vaxlake-dose-facts-{print}-vaccinations"),
        format!("vaxlake-dose-facts-{print}-persons"),
    )
}

/// A short hash of what the facts are derived with: their format and every reference file
/// the derivation reads (vaccines and their antigens, series, dose rules, schedules).
fn fingerprint(reference: &Reference) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(FORMAT.as_bytes());
    for vaccine in &reference.vaccines {
        hasher.update(format!("{}|{}|", vaccine.atc_code, vaccine.antigens.join(",")).as_bytes());
    }
    hasher.update(
        format!(
            "{:?}{:?}{:?}",
            reference.series, reference.dose_rules, reference.schedules
        )
        .as_bytes(),
    );
    hasher.finalize().to_hex()[..12].to_string()
}

/// The versions of `vaccinations` and `persons` (−1: no table yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watermark {
    vaccinations: i64,
    persons: i64,
}

/// The persons whose rows changed in `vaccinations` or `persons` between `done` and `now`;
/// `None` when the logs or files needed to tell are gone (then everything is rebuilt).
async fn changed_persons(
    vaccinations: &Table,
    persons: Option<&Table>,
    done: &Watermark,
    now: &Watermark,
) -> Result<Option<HashSet<String>>> {
    let mut touched = HashSet::new();
    let mut sources = vec![(
        vaccinations,
        done.vaccinations..=now.vaccinations,
        ["event_key", "content_hash", "person_key"],
    )];
    if let Some(persons) = persons {
        sources.push((
            persons,
            done.persons..=now.persons,
            ["person_key", "content_hash", "person_key"],
        ));
    }
    for (table, versions, columns) in sources {
        if !changed_rows(table, versions, columns, &mut touched).await? {
            return Ok(None);
        }
    }
    Ok(Some(touched))
}

/// Adds to `touched` the persons (third column) of the rows, identified by the first two
/// columns, that the commits after the first of `versions` up to its last added or removed
/// without putting back the same. `false` when a commit or a removed file cannot be read
/// any more.
async fn changed_rows(
    table: &Table,
    versions: std::ops::RangeInclusive<i64>,
    [id, content, person]: [&str; 3],
    touched: &mut HashSet<String>,
) -> Result<bool> {
    let name = table.name();
    let log = table.delta().log_store();
    let delta_err = |source| IngestError::Delta {
        table: name.to_string(),
        source,
    };
    // Net file changes: a file added and removed again within the range never counts.
    let mut files: HashMap<String, i32> = HashMap::new();
    for version in (versions.start() + 1).max(0)..=*versions.end() {
        let Some(bytes) = log
            .read_commit_entry(version as u64)
            .await
            .map_err(delta_err)?
        else {
            return Ok(false);
        };
        for action in deltalake::logstore::get_actions(version as u64, &bytes).map_err(delta_err)? {
            // Compaction moves rows without changing them (`dataChange: false`): skipping
            // its files loses no change and saves reading the whole table after `maintain`.
            match action {
                Action::Add(add) if add.data_change => *files.entry(add.path).or_default() += 1,
                Action::Remove(remove) if remove.data_change => {
                    *files.entry(remove.path).or_default() -= 1
                }
                _ => {}
            }
        }
    }
    tracing::debug!(
        table = name,
        ?versions,
        files = files.len(),
        "facts: changed files"
    );
    let store = log.object_store(None);
    // (row id, content) → (net count, person).
    let mut rows: HashMap<(String, String), (i32, String)> = HashMap::new();
    for (path, sign) in files {
        if sign == 0 {
            continue;
        }
        let batches = match read_columns(store.as_ref(), &path, &[id, content, person]).await {
            Ok(batches) => batches,
            Err(error) if sign < 0 => {
                tracing::info!(table = name, %error, "a removed file is gone; rebuilding the facts");
                return Ok(false);
            }
            Err(error) => {
                return Err(delta_err(deltalake::DeltaTableError::Generic(
                    error.to_string(),
                )))
            }
        };
        for batch in batches {
            let text = |column: &str| {
                strings(
                    batch
                        .column_by_name(column)
                        .ok_or_else(|| bad(&format!("{path} has no column {column}")))?,
                )
            };
            let (ids, contents, persons) = (text(id)?, text(content)?, text(person)?);
            for i in 0..batch.num_rows() {
                let entry = rows
                    .entry((ids.value(i).to_string(), contents.value(i).to_string()))
                    .or_insert_with(|| (0, persons.value(i).to_string()));
                entry.0 += sign.signum();
            }
        }
    }
    touched.extend(
        rows.into_values()
            .filter(|(count, _)| *count != 0)
            .map(|(_, person)| person),
    );
    Ok(true)
}

/// The named columns of one Parquet data file of a table (`path` as its Delta log writes
/// it), in file order.
async fn read_columns(
    store: &dyn object_store::ObjectStore,
    path: &str,
    columns: &[&str],
) -> std::result::Result<Vec<RecordBatch>, Box<dyn std::error::Error + Send + Sync>> {
    let location = object_store::path::Path::from_url_path(path)?;
    let bytes = store.get(&location).await?.bytes().await?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    Ok(builder
        .with_projection(mask)
        .build()?
        .collect::<std::result::Result<Vec<RecordBatch>, _>>()?)
}

/// Column builders of `dose_facts`, in table order.
#[derive(Default)]
struct FactsBuilder {
    person_key: StringBuilder,
    antigen: StringBuilder,
    administered_on: Date32Builder,
    age_months: Int32Builder,
    valid: BooleanBuilder,
    invalid_reason: StringBuilder,
    dose_seq: Int32Builder,
    completes_series: BooleanBuilder,
    completes_schedule: BooleanBuilder,
    first_in_season: BooleanBuilder,
    resident: BooleanBuilder,
    birth_year: Int32Builder,
    commune: StringBuilder,
    canton: StringBuilder,
    sex: StringBuilder,
    death_year: Int32Builder,
    weight: Int32Builder,
    rows: usize,
}

/// One fact of weight +1: a person's dose day of an antigen and its verdict.
struct Fact<'a> {
    person: &'a Person<'a>,
    antigen: &'a str,
    day: &'a DoseDay,
    verdict: &'a Judged,
    completes_series: bool,
    completes_schedule: bool,
    first_in_season: bool,
}

impl FactsBuilder {
    fn push(&mut self, fact: &Fact<'_>) {
        let person = fact.person;
        self.person_key.append_value(person.key);
        self.antigen.append_value(fact.antigen);
        self.administered_on.append_value(fact.day.date);
        self.age_months.append_option(fact.day.age_months);
        self.valid.append_value(fact.verdict.valid());
        self.invalid_reason
            .append_option(fact.verdict.invalid.map(|reason| reason.as_str()));
        self.dose_seq
            .append_option(fact.verdict.dose_seq.map(|seq| seq as i32));
        self.completes_series.append_value(fact.completes_series);
        self.completes_schedule
            .append_value(fact.completes_schedule);
        self.first_in_season.append_value(fact.first_in_season);
        self.resident.append_value(person.resident);
        self.birth_year.append_option(person.birth_year);
        self.commune.append_option(person.commune);
        self.canton.append_option(person.canton);
        self.sex.append_option(person.sex);
        self.death_year.append_option(person.death_year);
        self.weight.append_value(1);
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.person_key.finish()),
            Arc::new(self.antigen.finish()),
            Arc::new(self.administered_on.finish()),
            Arc::new(self.age_months.finish()),
            Arc::new(self.valid.finish()),
            Arc::new(self.invalid_reason.finish()),
            Arc::new(self.dose_seq.finish()),
            Arc::new(self.completes_series.finish()),
            Arc::new(self.completes_schedule.finish()),
            Arc::new(self.first_in_season.finish()),
            Arc::new(self.resident.finish()),
            Arc::new(self.birth_year.finish()),
            Arc::new(self.commune.finish()),
            Arc::new(self.canton.finish()),
            Arc::new(self.sex.finish()),
            Arc::new(self.death_year.finish()),
            Arc::new(self.weight.finish()),
        ];
        Ok(RecordBatch::try_new(DOSE_FACTS.schema().clone(), columns)?)
    }
}

/// The persons of a refresh: those of table `touched`.
const TOUCHED: &str = "person_key IN (SELECT person_key FROM touched)";

/// Completed events per slice of a rebuild, at most: the grouping by person holds a slice's
/// persons and their doses in memory (about 1.5 GiB for the 2.3M persons of 10M events in
/// one piece, which set the ingest's peak).
const EVENTS_PER_SLICE: u64 = 2_500_000;

/// Rows of table `name` of `ctx` (from the Delta log's statistics; no scan).
async fn count_rows(ctx: &SessionContext, name: &str) -> Result<u64> {
    let batches = ctx
        .sql(&format!("SELECT count(*) FROM {name}"))
        .await
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    Ok(batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
                .map(|c| c.value(0))
        })
        .unwrap_or(0)
        .max(0) as u64)
}

/// Conditions that split the persons of a rebuild into ranges of `person_key` (hex text, so
/// ranges of its first two characters), enough of them that each holds about
/// [`EVENTS_PER_SLICE`] of `events`: together they cover every key exactly once, whatever
/// its characters.
fn slices(events: u64) -> Vec<String> {
    let count = events.div_ceil(EVENTS_PER_SLICE).clamp(1, 16) as usize;
    let bound = |i: usize| format!("{:02x}", i * 256 / count);
    (0..count)
        .map(|i| {
            let low = (i > 0).then(|| format!("person_key >= '{}'", bound(i)));
            let high = (i + 1 < count).then(|| format!("person_key < '{}'", bound(i + 1)));
            match (low, high) {
                (Some(l), Some(h)) => format!("{l} AND {h}"),
                (Some(c), None) | (None, Some(c)) => c,
                (None, None) => "TRUE".to_string(),
            }
        })
        .collect()
}

/// One row per person with a completed dose whose key meets `persons` (SQL): the person's
/// doses as lists (vaccine, date, age, product name) and their `persons` row (a person
/// `persons` does not know is no resident). Grouping by person alone, then expanding
/// vaccines into antigens in Rust, took the coverage counts from 11 s to under 3 s at 10M
/// events against grouping by person and antigen (BENCHMARKS.md).
fn person_doses_sql(persons: &str) -> String {
    format!(
        "SELECT d.person_key, d.vaccines, d.dates, d.ages, d.names,
                CAST(date_part('year', p.birth_month) AS INT) AS birth_year,
                p.commune, p.canton, p.sex, coalesce(p.resident, false) AS resident,
                CAST(date_part('year', p.deceased_month) AS INT) AS death_year
         FROM (SELECT person_key,
                      array_agg(vaccine_atc) AS vaccines,
                      array_agg(administered_on) AS dates,
                      array_agg(age_months_at_dose) AS ages,
                      array_agg(vaccine_name) AS names
               FROM vaccinations
               WHERE status = 'completed' AND ({persons})
               GROUP BY person_key) AS d
         LEFT JOIN persons AS p ON p.person_key = d.person_key"
    )
}

/// The facts, weight +1, of the persons with a completed dose in `source`, as a table
/// DataFusion reads batch by batch: one batch of persons' doses in, their facts out, for
/// each slice of persons in turn (each a [`person_doses_sql`] condition).
#[derive(Clone)]
struct DerivedFacts {
    source: SessionContext,
    slices: Vec<String>,
    /// Persons and facts derived so far.
    persons: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
}

impl std::fmt::Debug for DerivedFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivedFacts")
            .field("slices", &self.slices)
            .finish()
    }
}

impl DerivedFacts {
    fn new(source: &SessionContext, slices: Vec<String>) -> Self {
        DerivedFacts {
            source: source.clone(),
            slices,
            persons: Arc::default(),
            rows: Arc::default(),
        }
    }

    fn table(&self) -> Result<StreamingTable> {
        StreamingTable::try_new(DOSE_FACTS.schema().clone(), vec![Arc::new(self.clone())])
            .map_err(df_err)
    }

    fn plan(&self) -> Result<LogicalPlan> {
        LogicalPlanBuilder::scan("derived", provider_as_source(Arc::new(self.table()?)), None)
            .and_then(LogicalPlanBuilder::build)
            .map_err(df_err)
    }

    /// (persons, facts) derived so far.
    fn counted(&self) -> (u64, u64) {
        (
            self.persons.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
        )
    }
}

impl PartitionStream for DerivedFacts {
    fn schema(&self) -> &SchemaRef {
        DOSE_FACTS.schema()
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let this = self.clone();
        let external = |error: IngestError| DataFusionError::External(Box::new(error));
        let facts = futures::stream::once(async move {
            let mut derive =
                Derive::new(vaxlake_catalog::builtin().map_err(|e| external(e.into()))?)
                    .map_err(external)?;
            // One slice's query at a time: the next starts when the last is drained.
            let source = this.source.clone();
            let doses = futures::stream::iter(this.slices.clone())
                .then(move |persons| {
                    let source = source.clone();
                    async move {
                        source
                            .sql(&person_doses_sql(&persons))
                            .await?
                            .execute_stream()
                            .await
                    }
                })
                .try_flatten();
            Ok::<_, DataFusionError>(doses.map(move |batch| {
                let batch = batch?;
                let mut builder = FactsBuilder::default();
                derive.batch(&batch, &mut builder).map_err(external)?;
                this.persons
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                this.rows.fetch_add(builder.rows as u64, Ordering::Relaxed);
                builder.finish().map_err(external)
            }))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(
            DOSE_FACTS.schema().clone(),
            facts,
        ))
    }
}

/// Turns persons' doses into facts with the reference rules.
struct Derive {
    reference: &'static Reference,
    rules: DoseRules,
}

impl Derive {
    fn new(reference: &'static Reference) -> Result<Self> {
        Ok(Derive {
            reference,
            rules: DoseRules::builtin()?,
        })
    }

    /// The facts of one batch of [`person_doses_sql`] rows.
    fn batch(&mut self, batch: &RecordBatch, out: &mut FactsBuilder) -> Result<()> {
        let list = |i: usize| -> Result<ListArray> {
            batch
                .column(i)
                .as_list_opt::<i32>()
                .cloned()
                .ok_or_else(|| bad("a dose list is not a list"))
        };
        let (vaccines, dates, ages, names) = (list(1)?, list(2)?, list(3)?, list(4)?);
        let cast = |array: &ArrayRef, to: &DataType| arrow::compute::cast(array, to);
        let text = |i: usize| strings(batch.column(i));
        let int = |i: usize| -> Result<Int32Array> {
            Ok(cast(batch.column(i), &DataType::Int32)?
                .as_primitive::<Int32Type>()
                .clone())
        };
        let (persons, birth, commune, canton, sex) =
            (text(0)?, int(5)?, text(6)?, text(7)?, text(8)?);
        let resident = cast(batch.column(9), &DataType::Boolean)?;
        let resident = resident.as_boolean();
        let death = int(10)?;
        let atc_values = strings(vaccines.values())?;
        let name_values = strings(names.values())?;
        let date_values = cast(dates.values(), &DataType::Date32)?;
        let date_values = date_values.as_primitive::<Date32Type>();
        let age_values = cast(ages.values(), &DataType::Int64)?;
        let age_values = age_values.as_primitive::<Int64Type>();
        let offsets = vaccines.value_offsets();
        if dates.value_offsets() != offsets
            || ages.value_offsets() != offsets
            || names.value_offsets() != offsets
        {
            return Err(bad("dose vaccines, dates, ages and names do not line up"));
        }
        // (antigen, date, age, series length) of every dose of the person.
        let mut doses: Vec<(&str, i32, Option<i32>, Option<u32>)> = Vec::new();
        let mut days: Vec<DoseDay> = Vec::new();
        let mut judged: Vec<Judged> = Vec::new();
        for row in 0..batch.num_rows() {
            let person = Person {
                key: persons.value(row),
                resident: resident.is_valid(row) && resident.value(row),
                birth_year: birth.is_valid(row).then(|| birth.value(row)),
                commune: opt_text(&commune, row),
                canton: opt_text(&canton, row),
                sex: opt_text(&sex, row),
                death_year: death.is_valid(row).then(|| death.value(row)),
            };
            doses.clear();
            for index in offsets[row] as usize..offsets[row + 1] as usize {
                if atc_values.is_null(index) || date_values.is_null(index) {
                    continue;
                }
                let Some(vaccine) = self.reference.vaccine(atc_values.value(index)) else {
                    continue;
                };
                let name = name_values
                    .is_valid(index)
                    .then(|| name_values.value(index));
                let age = age_values
                    .is_valid(index)
                    .then(|| i32::try_from(age_values.value(index)).ok())
                    .flatten();
                for antigen in &vaccine.antigens {
                    let series = self
                        .reference
                        .series_doses(&vaccine.atc_code, name, antigen);
                    doses.push((antigen.as_str(), date_values.value(index), age, series));
                }
            }
            // By antigen and date, known ages before unknown ones (`None` sorts first, so
            // the age is compared as `i32::MAX` when unknown): the day's youngest age.
            doses.sort_unstable_by_key(|&(antigen, date, age, _)| {
                (antigen, date, age.unwrap_or(i32::MAX))
            });
            for run in doses.chunk_by(|a, b| a.0 == b.0) {
                let antigen = run[0].0;
                // The longest series of any product given (ACIP: one RotaTeq dose, or one
                // of unknown product, and three are needed).
                let series_doses = run.iter().filter_map(|dose| dose.3).max();
                days.clear();
                days.extend(run.iter().map(|&(_, date, age, _)| DoseDay::new(date, age)));
                days.dedup_by_key(|day| day.date);
                self.rules.judge_into(antigen, &days, &mut judged);
                let completion = self.rules.completion(antigen, &days, &judged);
                facts_of(
                    &person,
                    antigen,
                    &days,
                    &judged,
                    series_doses,
                    completion,
                    out,
                );
            }
        }
        Ok(())
    }
}

/// What a fact says about its person.
struct Person<'a> {
    key: &'a str,
    resident: bool,
    birth_year: Option<i32>,
    commune: Option<&'a str>,
    canton: Option<&'a str>,
    sex: Option<&'a str>,
    death_year: Option<i32>,
}

/// The facts of one person's dose days of one antigen, judged, with the day that completes
/// the schedule (`completion`) if any.
fn facts_of(
    person: &Person<'_>,
    antigen: &str,
    days: &[DoseDay],
    judged: &[Judged],
    series_doses: Option<u32>,
    completion: Option<usize>,
    out: &mut FactsBuilder,
) {
    let series_need = series_doses.map(|doses| doses.max(1));
    let mut seasons_seen: Vec<i32> = Vec::new();
    for (index, (day, verdict)) in days.iter().zip(judged).enumerate() {
        let first_in_season = verdict.valid() && {
            let season = season_of_day(day.date);
            let first = !seasons_seen.contains(&season);
            seasons_seen.push(season);
            first
        };
        out.push(&Fact {
            person,
            antigen,
            day,
            verdict,
            completes_series: verdict.dose_seq.is_some() && verdict.dose_seq == series_need,
            completes_schedule: completion == Some(index),
            first_in_season,
        });
    }
}

fn opt_text(array: &StringArray, row: usize) -> Option<&str> {
    array.is_valid(row).then(|| array.value(row))
}

fn bad(message: &str) -> IngestError {
    IngestError::Delta {
        table: DOSE_FACTS.name.into(),
        source: deltalake::DeltaTableError::Generic(message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key falls in exactly one slice, for every slice count, including keys that are
    /// not hex (the ranges cover all text).
    #[tokio::test]
    async fn slices_cover_every_key_once() {
        let keys = [
            "", "0", "00ff", "3f", "3fff", "40", "4000", "7f", "80", "bf", "c0", "f", "ff", "ffff",
            "g", "A", "zz", "~",
        ];
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "person_key",
                DataType::Utf8,
                false,
            )])),
            vec![Arc::new(StringArray::from(keys.to_vec()))],
        )
        .unwrap();
        let ctx = SessionContext::new();
        register_batch(&ctx, "k", batch).unwrap();
        for events in [
            0,
            1,
            EVENTS_PER_SLICE,
            EVENTS_PER_SLICE + 1,
            7_500_000,
            10_000_000,
            u64::MAX,
        ] {
            let slices = slices(events);
            assert!(!slices.is_empty() && slices.len() <= 16);
            let union = slices
                .iter()
                .map(|c| format!("SELECT person_key FROM k WHERE {c}"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let found = ctx
                .sql(&format!(
                    "SELECT person_key, count(*) AS n FROM ({union}) GROUP BY person_key"
                ))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let counted: usize = found.iter().map(|b| b.num_rows()).sum();
            assert_eq!(counted, keys.len(), "{events} events: {slices:?}");
            for b in &found {
                let n = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
                assert!(n.values().iter().all(|&n| n == 1), "{slices:?}");
            }
        }
        assert_eq!(slices(10_000_000).len(), 4);
    }
}
