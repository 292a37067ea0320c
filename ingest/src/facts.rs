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
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Array, Date32Builder, Int32Array, Int32Builder,
    ListArray, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Transaction};
use deltalake::DeltaTable;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use url::Url;
use vaxlake_catalog::validity::{DoseDay, DoseRules, Judged};
use vaxlake_catalog::{Reference, DOSE_FACTS, PERSONS, VACCINATIONS};

use crate::error::{IngestError, Result};
use crate::table::Table;

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
    let rules = DoseRules::new(&reference.dose_rules, &reference.schedules);
    let (vaccinations_app, persons_app) = app_ids(reference);
    let now = Watermark {
        vaccinations: vaccinations.version().unwrap_or(-1),
        persons: persons.as_ref().and_then(Table::version).unwrap_or(-1),
    };
    let done = Watermark {
        vaccinations: facts.app_version(&vaccinations_app).await?.unwrap_or(-2),
        persons: facts.app_version(&persons_app).await?.unwrap_or(-1),
    };
    let commit = CommitProperties::default().with_application_transactions(vec![
        Transaction::new(&vaccinations_app, now.vaccinations),
        Transaction::new(&persons_app, now.persons),
    ]);
    let sources = Sources {
        vaccinations: vaccinations.delta(),
        persons: persons.as_ref().map(Table::delta),
    };
    if !force_rebuild && done == now {
        return Ok(FactsReport::default());
    }
    let touched = if force_rebuild || done.vaccinations < -1 {
        None
    } else {
        changed_persons(&sources, &done, &now).await?
    };
    let Some(touched) = touched.filter(|t| t.len() <= REBUILD_ABOVE_PERSONS) else {
        let ctx = sources.session(None).await?;
        let mut derive = Derive::new(reference, &rules);
        let mut batches = derive.all(&ctx).await?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
        if batches.is_empty() {
            // No completed dose yet: the commit still records the versions it reflects.
            batches.push(RecordBatch::new_empty(DOSE_FACTS.schema().clone()));
        }
        facts.overwrite(batches, commit).await?;
        tracing::info!(rows, "coverage facts rebuilt");
        return Ok(FactsReport {
            rebuilt: true,
            persons: derive.persons,
            rows,
        });
    };
    let mut keys: Vec<String> = touched.into_iter().collect();
    keys.sort_unstable();
    let mut weights: HashMap<FactRow, i32> = HashMap::new();
    for (row, weight) in current_facts(&facts, &keys).await? {
        *weights.entry(row).or_default() -= weight;
    }
    let ctx = sources.session(Some(&keys)).await?;
    let mut derive = Derive::new(reference, &rules);
    for row in derive.rows(&ctx).await? {
        *weights.entry(row).or_default() += 1;
    }
    let mut changes: Vec<(FactRow, i32)> = weights.into_iter().filter(|(_, w)| *w != 0).collect();
    changes.sort_unstable();
    let rows = changes.len() as u64;
    if changes.is_empty() {
        facts.commit_marker(commit).await?;
    } else {
        facts.append(facts_batch(&changes)?, commit).await?;
    }
    tracing::info!(persons = keys.len(), rows, "coverage facts refreshed");
    Ok(FactsReport {
        rebuilt: false,
        persons: keys.len() as u64,
        rows,
    })
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

struct Sources<'a> {
    vaccinations: &'a DeltaTable,
    persons: Option<&'a DeltaTable>,
}

impl Sources<'_> {
    /// A session over the two tables at the versions being reflected, and the persons of
    /// `only` as table `touched` (all persons when `None`).
    async fn session(&self, only: Option<&[String]>) -> Result<SessionContext> {
        let ctx = SessionContext::new();
        register(&ctx, "vaccinations", self.vaccinations).await?;
        match self.persons {
            Some(persons) => register(&ctx, "persons", persons).await?,
            None => {
                let empty = datafusion::datasource::MemTable::try_new(
                    PERSONS.schema().clone(),
                    vec![vec![]],
                )
                .map_err(df_err("persons"))?;
                ctx.register_table("persons", Arc::new(empty))
                    .map_err(df_err("persons"))?;
            }
        }
        if let Some(keys) = only {
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("person_key", arrow::datatypes::DataType::Utf8, false),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from_iter_values(keys)) as ArrayRef],
            )?;
            let touched = datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]])
                .map_err(df_err("dose_facts"))?;
            ctx.register_table("touched", Arc::new(touched))
                .map_err(df_err("dose_facts"))?;
        }
        Ok(ctx)
    }
}

async fn register(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<()> {
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|source| IngestError::Delta {
            table: name.to_string(),
            source,
        })?;
    let provider = table.table_provider().await.map_err(df_err(name))?;
    ctx.register_table(name, provider).map_err(df_err(name))?;
    Ok(())
}

fn df_err(table: &str) -> impl Fn(datafusion::error::DataFusionError) -> IngestError + '_ {
    move |source| IngestError::DataFusion {
        table: table.to_string(),
        source,
    }
}

/// The persons whose rows changed in `vaccinations` or `persons` between `done` and `now`;
/// `None` when the logs or files needed to tell are gone (then everything is rebuilt).
async fn changed_persons(
    sources: &Sources<'_>,
    done: &Watermark,
    now: &Watermark,
) -> Result<Option<HashSet<String>>> {
    let mut touched = HashSet::new();
    let found = changed_rows(
        sources.vaccinations,
        "vaccinations",
        done.vaccinations,
        now.vaccinations,
        &["event_key", "content_hash", "person_key"],
        &mut touched,
    )
    .await?;
    if !found {
        return Ok(None);
    }
    if let Some(persons) = sources.persons {
        let found = changed_rows(
            persons,
            "persons",
            done.persons,
            now.persons,
            &["person_key", "content_hash", "person_key"],
            &mut touched,
        )
        .await?;
        if !found {
            return Ok(None);
        }
    }
    Ok(Some(touched))
}

/// Adds to `touched` the persons (third column) of the rows, identified by the first two
/// columns, that the commits after `from` up to `to` added or removed without putting back
/// the same. `false` when a commit or a removed file cannot be read any more.
async fn changed_rows(
    table: &DeltaTable,
    name: &str,
    from: i64,
    to: i64,
    columns: &[&str; 3],
    touched: &mut HashSet<String>,
) -> Result<bool> {
    let log = table.log_store();
    let delta_err = |source| IngestError::Delta {
        table: name.to_string(),
        source,
    };
    // Net file changes: a file added and removed again within the range never counts.
    let mut files: HashMap<String, i32> = HashMap::new();
    for version in (from + 1).max(0)..=to {
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
        from,
        to,
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
        let location = object_store::path::Path::from_url_path(&path)
            .map_err(|error| delta_err(deltalake::DeltaTableError::Generic(error.to_string())))?;
        let batches = match read_columns(store.clone(), location, columns).await {
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
            let text = |i: usize| -> Result<StringArray> {
                let column =
                    arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)?;
                Ok(column.as_string::<i32>().clone())
            };
            let (id, content, person) = (text(0)?, text(1)?, text(2)?);
            for i in 0..batch.num_rows() {
                let entry = rows
                    .entry((id.value(i).to_string(), content.value(i).to_string()))
                    .or_insert_with(|| (0, person.value(i).to_string()));
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

/// The named columns of one Parquet data file of a table, in that order.
async fn read_columns(
    store: Arc<dyn object_store::ObjectStore>,
    location: object_store::path::Path,
    columns: &[&str; 3],
) -> std::result::Result<Vec<RecordBatch>, parquet::errors::ParquetError> {
    let bytes = store
        .get(&location)
        .await
        .map_err(|error| parquet::errors::ParquetError::External(Box::new(error)))?
        .bytes()
        .await
        .map_err(|error| parquet::errors::ParquetError::External(Box::new(error)))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    let batches = builder
        .with_projection(mask)
        .build()?
        .collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
    // The projection keeps file order; put the columns in the order asked.
    batches
        .into_iter()
        .map(|batch| {
            let picked = columns
                .iter()
                .map(|c| {
                    batch.column_by_name(c).cloned().ok_or_else(|| {
                        parquet::errors::ParquetError::General(format!("no column {c}"))
                    })
                })
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            let fields: Vec<arrow::datatypes::Field> = columns
                .iter()
                .zip(&picked)
                .map(|(c, a)| arrow::datatypes::Field::new(*c, a.data_type().clone(), true))
                .collect();
            RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), picked)
                .map_err(|e| parquet::errors::ParquetError::General(e.to_string()))
        })
        .collect()
}

/// The current facts of the persons `keys` (rows whose weights do not sum to zero), with
/// their summed weight.
async fn current_facts(facts: &Table, keys: &[String]) -> Result<Vec<(FactRow, i32)>> {
    let columns = FACT_COLUMNS.join(", ");
    let mut found = Vec::new();
    for chunk in keys.chunks(5_000) {
        let list = chunk
            .iter()
            .map(|key| format!("'{}'", key.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, CAST(sum(weight) AS INT) AS weight FROM target \
             WHERE person_key IN ({list}) GROUP BY {columns} HAVING sum(weight) <> 0"
        );
        for batch in facts.query(&sql).await? {
            let weights = arrow::compute::cast(
                batch.column(FACT_COLUMNS.len()),
                &arrow::datatypes::DataType::Int32,
            )?;
            let weights = weights.as_primitive::<Int32Type>();
            for (i, row) in fact_rows(&batch)?.into_iter().enumerate() {
                found.push((row, weights.value(i)));
            }
        }
    }
    Ok(found)
}

/// The columns of a fact, in table order, without its weight.
const FACT_COLUMNS: [&str; 16] = [
    "person_key",
    "antigen",
    "administered_on",
    "age_months_at_dose",
    "valid",
    "invalid_reason",
    "dose_seq",
    "completes_series",
    "completes_schedule",
    "first_in_season",
    "resident",
    "birth_year",
    "commune",
    "canton",
    "sex",
    "death_year",
];

/// One fact (`dose_facts` without its weight); `valid` is `invalid_reason.is_none()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct FactRow {
    person_key: String,
    antigen: String,
    administered_on: i32,
    age_months: Option<i32>,
    invalid_reason: Option<String>,
    dose_seq: Option<i32>,
    completes_series: bool,
    completes_schedule: bool,
    first_in_season: bool,
    resident: bool,
    birth_year: Option<i32>,
    commune: Option<String>,
    canton: Option<String>,
    sex: Option<String>,
    death_year: Option<i32>,
}

/// The facts of a batch with [`FACT_COLUMNS`] first.
fn fact_rows(batch: &RecordBatch) -> Result<Vec<FactRow>> {
    let text = |i: usize| -> Result<StringArray> {
        let column = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)?;
        Ok(column.as_string::<i32>().clone())
    };
    let int = |i: usize| -> Result<Int32Array> {
        let column = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Int32)?;
        Ok(column.as_primitive::<Int32Type>().clone())
    };
    let flag = |i: usize| -> Result<arrow::array::BooleanArray> {
        let column = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Boolean)?;
        Ok(column.as_boolean().clone())
    };
    let date = |i: usize| -> Result<Date32Array> {
        let column = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Date32)?;
        Ok(column.as_primitive::<Date32Type>().clone())
    };
    let (person, antigen, day, age) = (text(0)?, text(1)?, date(2)?, int(3)?);
    let (reason, seq) = (text(5)?, int(6)?);
    let (series, schedule, season, resident) = (flag(7)?, flag(8)?, flag(9)?, flag(10)?);
    let (birth, commune, canton, sex, death) =
        (int(11)?, text(12)?, text(13)?, text(14)?, int(15)?);
    let opt_text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    let opt_int = |a: &Int32Array, i: usize| a.is_valid(i).then(|| a.value(i));
    Ok((0..batch.num_rows())
        .map(|i| FactRow {
            person_key: person.value(i).to_string(),
            antigen: antigen.value(i).to_string(),
            administered_on: day.value(i),
            age_months: opt_int(&age, i),
            invalid_reason: opt_text(&reason, i),
            dose_seq: opt_int(&seq, i),
            completes_series: series.value(i),
            completes_schedule: schedule.value(i),
            first_in_season: season.value(i),
            resident: resident.value(i),
            birth_year: opt_int(&birth, i),
            commune: opt_text(&commune, i),
            canton: opt_text(&canton, i),
            sex: opt_text(&sex, i),
            death_year: opt_int(&death, i),
        })
        .collect())
}

/// Column builders of `dose_facts`.
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

impl FactsBuilder {
    fn push(&mut self, row: &FactRow, weight: i32) {
        self.person_key.append_value(&row.person_key);
        self.antigen.append_value(&row.antigen);
        self.administered_on.append_value(row.administered_on);
        self.age_months.append_option(row.age_months);
        self.valid.append_value(row.invalid_reason.is_none());
        self.invalid_reason
            .append_option(row.invalid_reason.as_deref());
        self.dose_seq.append_option(row.dose_seq);
        self.completes_series.append_value(row.completes_series);
        self.completes_schedule.append_value(row.completes_schedule);
        self.first_in_season.append_value(row.first_in_season);
        self.resident.append_value(row.resident);
        self.birth_year.append_option(row.birth_year);
        self.commune.append_option(row.commune.as_deref());
        self.canton.append_option(row.canton.as_deref());
        self.sex.append_option(row.sex.as_deref());
        self.death_year.append_option(row.death_year);
        self.weight.append_value(weight);
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

fn facts_batch(rows: &[(FactRow, i32)]) -> Result<RecordBatch> {
    let mut builder = FactsBuilder::default();
    for (row, weight) in rows {
        builder.push(row, *weight);
    }
    builder.finish()
}

/// One row per person with a completed dose: the person's doses as lists (vaccine, date,
/// age, product name) and their `persons` row (a person `persons` does not know is no
/// resident). Grouping by person alone, then expanding vaccines into antigens in Rust, is
/// what made the coverage counts 4× faster than grouping by person and antigen (see
/// `vaxlake_query`'s former `resident_doses_sql`).
fn person_doses_sql(only: bool) -> String {
    let touched = if only {
        "AND person_key IN (SELECT person_key FROM touched)"
    } else {
        ""
    };
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
               WHERE status = 'completed' {touched}
               GROUP BY person_key) AS d
         LEFT JOIN persons AS p ON p.person_key = d.person_key"
    )
}

/// Turns persons' doses into facts with the reference rules.
struct Derive<'a> {
    reference: &'a Reference,
    rules: &'a DoseRules,
    /// Persons derived so far.
    persons: u64,
}

/// Rows per batch a rebuild writes.
const BATCH_ROWS: usize = 64 * 1024;

impl<'a> Derive<'a> {
    fn new(reference: &'a Reference, rules: &'a DoseRules) -> Self {
        Derive {
            reference,
            rules,
            persons: 0,
        }
    }

    /// The facts of every person, as batches of weight +1.
    async fn all(&mut self, ctx: &SessionContext) -> Result<Vec<RecordBatch>> {
        let mut builder = FactsBuilder::default();
        let mut batches = Vec::new();
        let mut stream = ctx
            .sql(&person_doses_sql(false))
            .await
            .map_err(df_err("vaccinations"))?
            .execute_stream()
            .await
            .map_err(df_err("vaccinations"))?;
        let mut rows = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(df_err("vaccinations"))?;
            rows.clear();
            self.batch(&batch, &mut rows)?;
            for row in &rows {
                builder.push(row, 1);
            }
            if builder.rows >= BATCH_ROWS {
                batches.push(builder.finish()?);
            }
        }
        if builder.rows > 0 {
            batches.push(builder.finish()?);
        }
        Ok(batches)
    }

    /// The facts of the persons of table `touched`.
    async fn rows(&mut self, ctx: &SessionContext) -> Result<Vec<FactRow>> {
        let batches = ctx
            .sql(&person_doses_sql(true))
            .await
            .map_err(df_err("vaccinations"))?
            .collect()
            .await
            .map_err(df_err("vaccinations"))?;
        let mut rows = Vec::new();
        for batch in &batches {
            self.batch(batch, &mut rows)?;
        }
        Ok(rows)
    }

    /// The facts of one batch of [`person_doses_sql`] rows.
    fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<FactRow>) -> Result<()> {
        let list = |i: usize| -> Result<ListArray> {
            batch
                .column(i)
                .as_list_opt::<i32>()
                .cloned()
                .ok_or_else(|| bad("a dose list is not a list"))
        };
        let (vaccines, dates, ages, names) = (list(1)?, list(2)?, list(3)?, list(4)?);
        let text = |i: usize| -> Result<StringArray> {
            let column = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)?;
            Ok(column.as_string::<i32>().clone())
        };
        let persons = text(0)?;
        let int = |i: usize| -> Result<Int32Array> {
            let column = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Int32)?;
            Ok(column.as_primitive::<Int32Type>().clone())
        };
        let (birth, commune, canton, sex) = (int(5)?, text(6)?, text(7)?, text(8)?);
        let resident = arrow::compute::cast(batch.column(9), &arrow::datatypes::DataType::Boolean)?;
        let resident = resident.as_boolean();
        let death = int(10)?;
        let atc_values = text_values(&vaccines)?;
        let name_values = text_values(&names)?;
        let date_values =
            arrow::compute::cast(dates.values(), &arrow::datatypes::DataType::Date32)?;
        let date_values = date_values.as_primitive::<Date32Type>();
        let age_values = arrow::compute::cast(ages.values(), &arrow::datatypes::DataType::Int64)?;
        let age_values = age_values.as_primitive::<Int64Type>();
        let offsets = vaccines.value_offsets();
        if dates.value_offsets() != offsets
            || ages.value_offsets() != offsets
            || names.value_offsets() != offsets
        {
            return Err(bad("dose vaccines, dates, ages and names do not line up"));
        }
        let opt_text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        // (antigen, date, age, series length) of every dose of the person.
        let mut doses: Vec<(&str, i32, Option<i32>, Option<u32>)> = Vec::new();
        let mut days: Vec<DoseDay> = Vec::new();
        let mut judged: Vec<Judged> = Vec::new();
        for row in 0..batch.num_rows() {
            self.persons += 1;
            let person = Person {
                key: persons.value(row).to_string(),
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
                let atc = atc_values.value(index);
                let Some(vaccine) = self.reference.vaccine(atc) else {
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
                facts_of(
                    &person,
                    antigen,
                    &days,
                    &judged,
                    series_doses,
                    self.rules
                        .has_schedule(antigen)
                        .then(|| self.rules.completion(antigen, &days, &judged))
                        .flatten(),
                    out,
                );
            }
        }
        Ok(())
    }
}

/// What a fact says about its person.
struct Person {
    key: String,
    resident: bool,
    birth_year: Option<i32>,
    commune: Option<String>,
    canton: Option<String>,
    sex: Option<String>,
    death_year: Option<i32>,
}

/// The facts of one person's dose days of one antigen.
fn facts_of(
    person: &Person,
    antigen: &str,
    days: &[DoseDay],
    judged: &[Judged],
    series_doses: Option<u32>,
    completes_schedule: Option<usize>,
    out: &mut Vec<FactRow>,
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
        out.push(FactRow {
            person_key: person.key.clone(),
            antigen: antigen.to_string(),
            administered_on: day.date,
            age_months: day.age_months,
            invalid_reason: verdict.invalid.map(|reason| reason.as_str().to_string()),
            dose_seq: verdict.dose_seq.map(|seq| seq as i32),
            completes_series: verdict.dose_seq.is_some() && verdict.dose_seq == series_need,
            completes_schedule: completes_schedule == Some(index),
            first_in_season,
            resident: person.resident,
            birth_year: person.birth_year,
            commune: person.commune.clone(),
            canton: person.canton.clone(),
            sex: person.sex.clone(),
            death_year: person.death_year,
        });
    }
}

/// The first year of the season (1 September – 31 August) holding `day` (days since
/// 1970-01-01).
fn season_of_day(day: i32) -> i32 {
    use chrono::Datelike;
    let date = chrono::NaiveDate::from_num_days_from_ce_opt(day + 719_163)
        .unwrap_or(chrono::NaiveDate::MIN);
    if date.month() < 9 {
        date.year() - 1
    } else {
        date.year()
    }
}

fn text_values(list: &ListArray) -> Result<StringArray> {
    let values = arrow::compute::cast(list.values(), &arrow::datatypes::DataType::Utf8)?;
    Ok(values.as_string::<i32>().clone())
}

fn bad(message: &str) -> IngestError {
    IngestError::Delta {
        table: "dose_facts".into(),
        source: deltalake::DeltaTableError::Generic(message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasons_start_on_the_first_of_september() {
        let day = |y, m, d| {
            (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
                - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32
        };
        assert_eq!(season_of_day(day(2024, 8, 31)), 2023);
        assert_eq!(season_of_day(day(2024, 9, 1)), 2024);
        assert_eq!(season_of_day(day(2025, 1, 15)), 2024);
    }
}
