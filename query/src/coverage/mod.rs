//! Person-level coverage: cohort coverage at an age, curves, dropout, timeliness, seasonal
//! and age-band coverage, with Wilson intervals and disclosure control, for the API and the
//! command line alike. Definitions: docs/coverage.md; indicators: sql/reference/indicators.csv.
//!
//! Answers come from [`facts::Facts`], counts read once per table version, and are cached
//! per table version: a new ingest (a new Delta version) invalidates both.

pub mod catalogue;
mod cells;
pub(crate) mod facts;
mod render;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use catalogue::{age_band, Catalogue, DoseRule, Indicator, Kind, AGE_BANDS};
pub(crate) use cells::Z95;
pub use cells::{round4, Cell, Suppression};
pub use render::{render, Format};

use facts::{Facts, Group};

use crate::dates::{civil_from_days, days_from_civil, parse_iso};
use crate::{QueryError, Warehouse};

/// Answers kept per table version before the cache starts over (a bound on memory, far
/// above what dashboards ask for).
const MAX_CACHED_ANSWERS: usize = 20_000;

/// A breakdown of an answer's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    Commune,
    Canton,
    Sex,
}

impl Breakdown {
    pub fn column(self) -> &'static str {
        match self {
            Breakdown::Commune => "commune",
            Breakdown::Canton => "canton",
            Breakdown::Sex => "sex",
        }
    }

    fn key(self, group: &Group) -> Option<String> {
        match self {
            Breakdown::Commune => group.commune.clone(),
            Breakdown::Canton => group.canton.clone(),
            Breakdown::Sex => group.sex.clone(),
        }
    }
}

impl std::str::FromStr for Breakdown {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "commune" => Ok(Breakdown::Commune),
            "canton" => Ok(Breakdown::Canton),
            "sex" => Ok(Breakdown::Sex),
            other => Err(format!("by must be commune, canton or sex, not {other:?}")),
        }
    }
}

/// `/api/coverage` parameters (CONTRACTS.md).
#[derive(Debug, Clone, Deserialize)]
pub struct CoverageQuery {
    pub indicator: String,
    pub cohort: i32,
    pub age_months: Option<u32>,
    pub by: Option<Breakdown>,
}

/// `/api/coverage/curve` parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct CurveQuery {
    pub indicator: String,
    pub cohort: i32,
    pub max_age_months: Option<u32>,
}

/// `/api/coverage/dropout` parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct DropoutQuery {
    pub from: String,
    pub to: String,
    pub cohort: i32,
    pub age_months: Option<u32>,
    pub by: Option<Breakdown>,
}

/// `/api/coverage/timeliness` parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct TimelinessQuery {
    pub indicator: String,
    pub cohort: i32,
    pub by: Option<Breakdown>,
}

/// The coverage engine over one warehouse. Cheap to share behind an `Arc`; concurrent
/// requests for a new table version wait for one read of the counts.
pub struct CoverageEngine {
    warehouse: Warehouse,
    catalogue: Arc<Catalogue>,
    rule: Suppression,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    versions: Option<BTreeMap<String, i64>>,
    facts: Option<Arc<Facts>>,
    answers: HashMap<String, Arc<Value>>,
}

/// What one answer is computed from.
struct Context<'a> {
    facts: &'a Facts,
    versions: &'a BTreeMap<String, i64>,
    rule: Suppression,
}

impl CoverageEngine {
    /// An engine with the compiled-in catalogue and the given suppression rule.
    pub fn new(warehouse: Warehouse, rule: Suppression) -> Result<CoverageEngine, QueryError> {
        Ok(CoverageEngine {
            warehouse,
            catalogue: Arc::new(Catalogue::builtin()?),
            rule,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn suppression(&self) -> Suppression {
        self.rule
    }

    /// The catalogue as `/api/coverage/indicators` shows it.
    pub fn indicators(&self) -> Value {
        json!({
            "indicators": self.catalogue.indicators.iter().map(Indicator::describe).collect::<Vec<_>>(),
            "age_bands": AGE_BANDS.iter().map(|(label, _, _)| *label).collect::<Vec<_>>(),
            "suppression_threshold": self.rule.threshold,
        })
    }

    /// Reads the counts of the current table versions if they are not read yet, so that the
    /// next request after an ingest does not pay for it (the server calls this periodically).
    pub async fn warm(&self) -> Result<(), QueryError> {
        self.cached("warm".into(), |_| Ok(Value::Null))
            .await
            .map(|_| ())
    }

    /// Cohort, seasonal or age-band coverage (`GET /api/coverage`).
    pub async fn coverage(&self, query: &CoverageQuery) -> Result<Arc<Value>, QueryError> {
        let indicator = self.indicator(&query.indicator)?.clone();
        let key = format!(
            "coverage|{}|{}|{:?}|{:?}",
            indicator.name, query.cohort, query.age_months, query.by
        );
        self.cached(key, |context| {
            coverage_answer(
                context,
                &indicator,
                query.cohort,
                query.age_months,
                query.by,
            )
        })
        .await
    }

    /// Cumulative coverage by age in months (`GET /api/coverage/curve`).
    pub async fn curve(&self, query: &CurveQuery) -> Result<Arc<Value>, QueryError> {
        let indicator = self.indicator(&query.indicator)?.clone();
        let key = format!(
            "curve|{}|{}|{:?}",
            indicator.name, query.cohort, query.max_age_months
        );
        self.cached(key, |context| curve_answer(context, &indicator, query))
            .await
    }

    /// Dropout between two doses of one antigen on the same children.
    pub async fn dropout(&self, query: &DropoutQuery) -> Result<Arc<Value>, QueryError> {
        let from = self.indicator(&query.from)?.clone();
        let to = self.indicator(&query.to)?.clone();
        let key = format!(
            "dropout|{}|{}|{}|{:?}|{:?}",
            from.name, to.name, query.cohort, query.age_months, query.by
        );
        self.cached(key, |context| dropout_answer(context, &from, &to, query))
            .await
    }

    /// Median age at the dose and the share given on time.
    pub async fn timeliness(&self, query: &TimelinessQuery) -> Result<Arc<Value>, QueryError> {
        let indicator = self.indicator(&query.indicator)?.clone();
        let key = format!(
            "timeliness|{}|{}|{:?}",
            indicator.name, query.cohort, query.by
        );
        self.cached(key, |context| timeliness_answer(context, &indicator, query))
            .await
    }

    /// Every indicator × cohort × breakdown as flat rows (the `--all` table; docs/coverage.md).
    pub async fn table(&self) -> Result<Arc<Value>, QueryError> {
        let catalogue = self.catalogue.clone();
        self.cached("table".into(), |context| table_answer(context, &catalogue))
            .await
    }

    /// The published cells whose numerator exceeds their denominator, of `cohort` or of all
    /// cohorts (`GET /api/coverage/flags`), from the `--all` table's cells (read once per
    /// table version, then filtered).
    pub async fn flags(&self, cohort: Option<i32>) -> Result<Value, QueryError> {
        let catalogue = self.catalogue.clone();
        let all = self
            .cached("flags".into(), |context| flags_answer(context, &catalogue))
            .await?;
        let mut answer = all.as_ref().clone();
        let rows: Vec<Value> = all["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|row| {
                cohort.is_none_or(|cohort| row["cohort"].as_i64() == Some(i64::from(cohort)))
            })
            .cloned()
            .collect();
        let mut sources: Vec<&str> = Vec::new();
        for source in rows
            .iter()
            .filter_map(|row| row["population_source"].as_str())
        {
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        // The rows' sources on one line (each row says which is its own); null without rows.
        answer["population_source"] = json!((!sources.is_empty()).then(|| sources.join("; ")));
        answer["rows"] = Value::Array(rows);
        Ok(answer)
    }

    fn indicator(&self, name: &str) -> Result<&Indicator, QueryError> {
        self.catalogue.get(name).ok_or_else(|| {
            QueryError::Invalid(format!(
                "unknown indicator {name:?}; known: {}",
                self.catalogue.names()
            ))
        })
    }

    /// The answer under `key` for the current table versions, computing it (and, after a
    /// new ingest, the counts) when missing.
    async fn cached(
        &self,
        key: String,
        compute: impl FnOnce(&Context) -> Result<Value, QueryError>,
    ) -> Result<Arc<Value>, QueryError> {
        self.warehouse.refresh_if_due().await;
        let snapshot = self.warehouse.snapshot();
        let mut state = self.state.lock().await;
        if state.facts.is_none() || state.versions.as_ref() != Some(&snapshot.versions) {
            let started = std::time::Instant::now();
            let facts = Facts::load(&snapshot.ctx, &self.catalogue).await?;
            tracing::info!(
                versions = ?snapshot.versions,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "coverage counts read"
            );
            state.facts = Some(Arc::new(facts));
            state.versions = Some(snapshot.versions.clone());
            state.answers.clear();
        }
        if let Some(answer) = state.answers.get(&key) {
            return Ok(answer.clone());
        }
        let facts = state.facts.clone().expect("facts were just loaded");
        let versions = state.versions.clone().unwrap_or_default();
        let context = Context {
            facts: &facts,
            versions: &versions,
            rule: self.rule,
        };
        let answer = Arc::new(compute(&context)?);
        if state.answers.len() >= MAX_CACHED_ANSWERS {
            state.answers.clear();
        }
        state.answers.insert(key, answer.clone());
        Ok(answer)
    }
}

// ---------------------------------------------------------------------------------------
// Answers

/// The fields every answer starts with: what was computed, by which definition, from what.
fn header(context: &Context, indicator: &Indicator) -> Map<String, Value> {
    let Value::Object(mut map) = indicator.describe() else {
        unreachable!("describe() builds an object")
    };
    map.insert("data_until".into(), json!(context.facts.data_until));
    map.insert("table_versions".into(), json!(context.versions));
    map.insert(
        "suppression_threshold".into(),
        json!(context.rule.threshold),
    );
    map
}

/// A key of an answer's rows: the breakdown value, `None` for persons without one.
type Key = Option<String>;

/// Sums numerators and denominators per key. A key (and the total) has a denominator when
/// the population has at least one row for it: a cohort the population does not count is
/// `no_denominator`, not a denominator of 0.
fn tabulate(
    numerators: impl IntoIterator<Item = (Key, u64)>,
    denominators: impl IntoIterator<Item = (Key, u64)>,
) -> (Vec<(Key, Cell)>, Cell) {
    let mut cells: BTreeMap<Key, Cell> = BTreeMap::new();
    let mut total = Cell::new(0, None);
    for (key, persons) in numerators {
        cells.entry(key).or_default().numerator += persons;
        total.numerator += persons;
    }
    for (key, persons) in denominators {
        let cell = cells.entry(key).or_default();
        cell.denominator = Some(cell.denominator.unwrap_or(0) + persons);
        total.denominator = Some(total.denominator.unwrap_or(0) + persons);
    }
    let mut rows: Vec<(Key, Cell)> = cells.into_iter().collect();
    // Named rows first, in name order; the row of persons without a value last.
    rows.sort_by(|(a, _), (b, _)| (a.is_none(), a).cmp(&(b.is_none(), b)));
    (rows, total)
}

/// The published fields of a coverage cell.
fn coverage_fields(cell: &Cell, withheld: bool, incomplete: bool) -> Map<String, Value> {
    let mut flags = Vec::new();
    if cell.denominator.is_none() {
        flags.push("no_denominator");
    }
    if !withheld && cell.exceeds() {
        flags.push("numerator_exceeds_denominator");
    }
    if incomplete {
        flags.push("incomplete_follow_up");
    }
    let mut map = Map::new();
    if withheld {
        for field in ["numerator", "denominator", "coverage", "ci_low", "ci_high"] {
            map.insert(field.into(), Value::Null);
        }
    } else {
        let interval = cell.wilson();
        map.insert("numerator".into(), json!(cell.numerator));
        map.insert("denominator".into(), json!(cell.denominator));
        map.insert("coverage".into(), json!(cell.rate().map(round4)));
        map.insert("ci_low".into(), json!(interval.map(|(low, _)| round4(low))));
        map.insert(
            "ci_high".into(),
            json!(interval.map(|(_, high)| round4(high))),
        );
    }
    map.insert("suppressed".into(), json!(withheld));
    map.insert("flags".into(), json!(flags));
    map
}

/// Rows (each prefixed by `prefix` and its breakdown value) and, with a breakdown, the total,
/// after primary and secondary suppression.
fn publish(
    rule: Suppression,
    column: Option<&str>,
    rows: &[(Key, Cell)],
    total: &Cell,
    prefix: &Map<String, Value>,
    fields: impl Fn(&Cell, bool) -> Map<String, Value>,
) -> (Vec<Value>, Option<Value>) {
    match column {
        None => {
            let (_, withheld) = rule.apply(&[], Some(total));
            let mut row = prefix.clone();
            row.extend(fields(total, withheld));
            (vec![Value::Object(row)], None)
        }
        Some(column) => {
            let cells: Vec<Cell> = rows.iter().map(|(_, cell)| *cell).collect();
            let (withheld, total_withheld) = rule.apply(&cells, Some(total));
            let published = rows
                .iter()
                .zip(withheld)
                .map(|((key, cell), withheld)| {
                    let mut row = prefix.clone();
                    row.insert(column.into(), json!(key));
                    row.extend(fields(cell, withheld));
                    Value::Object(row)
                })
                .collect();
            let mut total_row = prefix.clone();
            total_row.extend(fields(total, total_withheld));
            (published, Some(Value::Object(total_row)))
        }
    }
}

fn sex_matches(indicator: &Indicator, group: &Group) -> bool {
    indicator
        .sex
        .as_deref()
        .is_none_or(|sex| group.sex.as_deref() == Some(sex))
}

fn group_key(by: Option<Breakdown>, group: &Group) -> Key {
    by.and_then(|by| by.key(group))
}

/// The newest reference year, which birth-cohort denominators use (CONTRACTS.md).
fn latest_reference_year(facts: &Facts) -> Option<i32> {
    facts.population.iter().map(|row| row.reference_year).max()
}

/// `target` when the population has it, else the latest earlier year, else the earliest.
fn reference_year_for(facts: &Facts, target: i32) -> Option<i32> {
    choose_reference_year(
        facts.population.iter().map(|row| row.reference_year),
        target,
    )
}

/// Of the population's reference `years`, `target` when present, else the latest earlier
/// one, else the earliest there is: the one rule of coverage and effectiveness denominators.
pub(crate) fn choose_reference_year(
    years: impl Iterator<Item = i32> + Clone,
    target: i32,
) -> Option<i32> {
    years
        .clone()
        .filter(|&year| year <= target)
        .max()
        .or_else(|| years.min())
}

fn population_source(year: Option<i32>) -> Value {
    json!(year.map(|year| format!("population, reference_year {year}")))
}

/// Whether the warehouse's newest dose is before `day`: some of the population could not
/// yet have been vaccinated, so the figure will still rise.
fn before(facts: &Facts, day: i32) -> bool {
    match facts.data_until.as_deref().and_then(parse_iso) {
        Some(until) => until < day,
        None => true,
    }
}

/// The day the youngest of cohort `year` turns `months` months old: the last day of the
/// month `months` after December of `year`.
fn last_birthday(year: i32, months: u32) -> i32 {
    let index = year as i64 * 12 + 12 + i64::from(months);
    let (next_year, next_month) = ((index / 12) as i32, (index % 12) as u32 + 1);
    days_from_civil(next_year, next_month, 1) - 1
}

fn season_label(year: i32) -> String {
    format!("{year}/{:02}", (year + 1).rem_euclid(100))
}

fn coverage_answer(
    context: &Context,
    indicator: &Indicator,
    cohort: i32,
    age_months: Option<u32>,
    by: Option<Breakdown>,
) -> Result<Value, QueryError> {
    let facts = context.facts;
    let mut answer = header(context, indicator);
    answer.insert("cohort".into(), json!(cohort));
    answer.insert("by".into(), json!(by));
    let mut prefix = Map::new();
    prefix.insert("cohort".into(), json!(cohort));

    let (rows, total, reference_year, incomplete, column) = match indicator.kind {
        Kind::BirthCohort => {
            let months = age_months.or(indicator.age_months).unwrap_or(12);
            if months == 0 || months > 1200 {
                return Err(QueryError::Invalid(
                    "age_months must be between 1 and 1200".into(),
                ));
            }
            answer.insert("age_months".into(), json!(months));
            let reference_year = latest_reference_year(facts);
            let doses = facts
                .cohort_doses
                .get(&(indicator.antigen.clone(), indicator.dose))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let numerators = doses
                .iter()
                .filter(|row| row.cohort == cohort && row.age_months < months as i32)
                .map(|row| (&facts.groups[row.group as usize], row.persons))
                .filter(|(group, _)| sex_matches(indicator, group))
                .map(|(group, persons)| (group_key(by, group), persons));
            let denominators = facts
                .population
                .iter()
                .filter(|row| {
                    Some(row.reference_year) == reference_year && row.birth_year == cohort
                })
                .map(|row| (&facts.groups[row.group as usize], row.persons))
                .filter(|(group, _)| sex_matches(indicator, group))
                .map(|(group, persons)| (group_key(by, group), persons));
            let (rows, total) = tabulate(numerators, denominators);
            let incomplete = before(facts, last_birthday(cohort, months));
            (
                rows,
                total,
                reference_year,
                incomplete,
                by.map(Breakdown::column),
            )
        }
        Kind::Season => {
            if age_months.is_some() {
                return Err(QueryError::Invalid(
                    "age_months applies to birth-cohort indicators only".into(),
                ));
            }
            let oldest_birth_year = cohort - indicator.min_age_years.unwrap_or(0);
            prefix.insert("season".into(), json!(season_label(cohort)));
            answer.insert("season".into(), json!(season_label(cohort)));
            let reference_year = reference_year_for(facts, cohort + 1);
            let doses = facts
                .season_doses
                .get(&indicator.antigen)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let numerators = doses
                .iter()
                .filter(|row| row.year == cohort && row.birth_year <= oldest_birth_year)
                .map(|row| (&facts.groups[row.group as usize], row.persons))
                .filter(|(group, _)| sex_matches(indicator, group))
                .map(|(group, persons)| (group_key(by, group), persons));
            let denominators = facts
                .population
                .iter()
                .filter(|row| {
                    Some(row.reference_year) == reference_year
                        && row.birth_year <= oldest_birth_year
                })
                .map(|row| (&facts.groups[row.group as usize], row.persons))
                .filter(|(group, _)| sex_matches(indicator, group))
                .map(|(group, persons)| (group_key(by, group), persons));
            let (rows, total) = tabulate(numerators, denominators);
            let incomplete = before(facts, days_from_civil(cohort + 1, 8, 31));
            (
                rows,
                total,
                reference_year,
                incomplete,
                by.map(Breakdown::column),
            )
        }
        Kind::AgeBand => {
            if by.is_some() || age_months.is_some() {
                return Err(QueryError::Invalid(format!(
                    "{} is broken down by age band; `by` and `age_months` do not apply",
                    indicator.name
                )));
            }
            let DoseRule::Nth(dose) = indicator.dose else {
                return Err(QueryError::Invalid(
                    "age-band indicators count the n-th dose".into(),
                ));
            };
            let reference_year = reference_year_for(facts, cohort + 1);
            let band = |birth_year: i32| age_band(cohort - birth_year).map(str::to_string);
            let doses = facts
                .year_doses
                .get(&(indicator.antigen.clone(), dose))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let numerators = doses
                .iter()
                .filter(|row| row.year <= cohort && band(row.birth_year).is_some())
                .filter(|row| sex_matches(indicator, &facts.groups[row.group as usize]))
                .map(|row| (band(row.birth_year), row.persons));
            let denominators = facts
                .population
                .iter()
                .filter(|row| {
                    Some(row.reference_year) == reference_year && band(row.birth_year).is_some()
                })
                .filter(|row| sex_matches(indicator, &facts.groups[row.group as usize]))
                .map(|row| (band(row.birth_year), row.persons));
            let (mut rows, total) = tabulate(numerators, denominators);
            let order = |key: &Key| {
                AGE_BANDS
                    .iter()
                    .position(|(label, _, _)| Some(*label) == key.as_deref())
            };
            rows.sort_by_key(|(key, _)| order(key));
            let incomplete = before(facts, days_from_civil(cohort, 12, 31));
            (rows, total, reference_year, incomplete, Some("age_band"))
        }
    };
    answer.insert(
        "population_source".into(),
        population_source(reference_year),
    );
    let (rows, total) = publish(
        context.rule,
        column,
        &rows,
        &total,
        &prefix,
        |cell, withheld| coverage_fields(cell, withheld, incomplete),
    );
    answer.insert("rows".into(), Value::Array(rows));
    if let Some(total) = total {
        answer.insert("total".into(), total);
    }
    Ok(Value::Object(answer))
}

fn birth_cohort_only(indicator: &Indicator, what: &str) -> Result<(), QueryError> {
    if indicator.kind == Kind::BirthCohort {
        Ok(())
    } else {
        Err(QueryError::Invalid(format!(
            "{what} is defined for birth-cohort indicators; {} is not one",
            indicator.name
        )))
    }
}

/// Persons of `cohort` (of the indicator's sex) with the indicator's dose: (group, age at
/// the dose in completed months, persons).
fn cohort_doses<'a>(
    facts: &'a Facts,
    indicator: &'a Indicator,
    cohort: i32,
) -> impl Iterator<Item = (&'a Group, i32, u64)> + 'a {
    facts
        .cohort_doses
        .get(&(indicator.antigen.clone(), indicator.dose))
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(move |row| row.cohort == cohort)
        .map(|row| {
            (
                &facts.groups[row.group as usize],
                row.age_months,
                row.persons,
            )
        })
        .filter(|(group, _, _)| sex_matches(indicator, group))
}

/// The cohort's denominator per key (latest reference year).
fn cohort_population(
    facts: &Facts,
    indicator: &Indicator,
    cohort: i32,
    by: Option<Breakdown>,
) -> Vec<(Key, u64)> {
    let reference_year = latest_reference_year(facts);
    facts
        .population
        .iter()
        .filter(|row| Some(row.reference_year) == reference_year && row.birth_year == cohort)
        .map(|row| (&facts.groups[row.group as usize], row.persons))
        .filter(|(group, _)| sex_matches(indicator, group))
        .map(|(group, persons)| (group_key(by, group), persons))
        .collect()
}

fn curve_answer(
    context: &Context,
    indicator: &Indicator,
    query: &CurveQuery,
) -> Result<Value, QueryError> {
    birth_cohort_only(indicator, "a coverage curve")?;
    let facts = context.facts;
    let months = indicator.age_months.unwrap_or(12);
    let max_age = query.max_age_months.unwrap_or((2 * months).min(240));
    if max_age == 0 || max_age > 1200 {
        return Err(QueryError::Invalid(
            "max_age_months must be between 1 and 1200".into(),
        ));
    }
    let mut by_age: BTreeMap<i32, u64> = BTreeMap::new();
    for (_, age, persons) in cohort_doses(facts, indicator, query.cohort) {
        *by_age.entry(age).or_default() += persons;
    }
    let population: Vec<(Key, u64)> = cohort_population(facts, indicator, query.cohort, None);
    let denominator = (!population.is_empty())
        .then(|| population.iter().map(|(_, persons)| persons).sum::<u64>());
    let mut answer = header(context, indicator);
    answer.insert("cohort".into(), json!(query.cohort));
    answer.insert(
        "population_source".into(),
        population_source(latest_reference_year(facts)),
    );
    let rows: Vec<Value> = (1..=max_age)
        .map(|age| {
            let numerator = by_age.range(..age as i32).map(|(_, persons)| persons).sum();
            let cell = Cell::new(numerator, denominator);
            let withheld = context.rule.fails(&cell);
            let incomplete = before(facts, last_birthday(query.cohort, age));
            let mut row = Map::new();
            row.insert("cohort".into(), json!(query.cohort));
            row.insert("age_months".into(), json!(age));
            row.extend(coverage_fields(&cell, withheld, incomplete));
            Value::Object(row)
        })
        .collect();
    answer.insert("rows".into(), Value::Array(rows));
    Ok(Value::Object(answer))
}

fn dropout_answer(
    context: &Context,
    from: &Indicator,
    to: &Indicator,
    query: &DropoutQuery,
) -> Result<Value, QueryError> {
    birth_cohort_only(from, "dropout")?;
    birth_cohort_only(to, "dropout")?;
    let same_children = match (from.dose, to.dose) {
        (DoseRule::Nth(first), DoseRule::Nth(later)) => {
            from.antigen == to.antigen && first < later && from.sex == to.sex
        }
        _ => false,
    };
    if !same_children {
        return Err(QueryError::Invalid(format!(
            "dropout needs two doses of one antigen, the second later (e.g. DTP1 and DTP3); {} and {} are not",
            from.name, to.name
        )));
    }
    let facts = context.facts;
    let months = query.age_months.or(to.age_months).unwrap_or(12);
    let by = query.by;
    let mut started: BTreeMap<Key, u64> = BTreeMap::new();
    let mut completed: BTreeMap<Key, u64> = BTreeMap::new();
    for (indicator, counts) in [(from, &mut started), (to, &mut completed)] {
        for (group, age, persons) in cohort_doses(facts, indicator, query.cohort) {
            if age < months as i32 {
                *counts.entry(group_key(by, group)).or_default() += persons;
            }
        }
    }
    // A cell is (completed of started): the person-level dose sequence makes every child
    // with the later dose one of those with the first.
    let numerators = completed.into_iter();
    let keys: Vec<(Key, u64)> = started.into_iter().collect();
    let mut cells: BTreeMap<Key, Cell> = BTreeMap::new();
    let mut total = Cell::new(0, Some(0));
    for (key, persons) in &keys {
        cells.entry(key.clone()).or_default().denominator = Some(*persons);
        total.denominator = Some(total.denominator.unwrap_or(0) + persons);
    }
    for (key, persons) in numerators {
        cells.entry(key).or_default().numerator += persons;
        total.numerator += persons;
    }
    let mut rows: Vec<(Key, Cell)> = cells.into_iter().collect();
    rows.sort_by(|(a, _), (b, _)| (a.is_none(), a).cmp(&(b.is_none(), b)));

    let mut answer = header(context, to);
    answer.insert("from".into(), json!(from.name));
    answer.insert("to".into(), json!(to.name));
    answer.insert("cohort".into(), json!(query.cohort));
    answer.insert("age_months".into(), json!(months));
    answer.insert("by".into(), json!(by));
    let mut prefix = Map::new();
    prefix.insert("cohort".into(), json!(query.cohort));
    let incomplete = before(facts, last_birthday(query.cohort, months));
    let (rows, total) = publish(
        context.rule,
        by.map(Breakdown::column),
        &rows,
        &total,
        &prefix,
        |cell, withheld| dropout_fields(cell, withheld, incomplete),
    );
    answer.insert("rows".into(), Value::Array(rows));
    if let Some(total) = total {
        answer.insert("total".into(), total);
    }
    Ok(Value::Object(answer))
}

fn dropout_fields(cell: &Cell, withheld: bool, incomplete: bool) -> Map<String, Value> {
    let started = cell.denominator.unwrap_or(0);
    let mut map = Map::new();
    if withheld {
        for field in [
            "started",
            "completed",
            "dropped",
            "dropout",
            "ci_low",
            "ci_high",
        ] {
            map.insert(field.into(), Value::Null);
        }
    } else {
        let dropped = started.saturating_sub(cell.numerator);
        let dropped_cell = Cell::new(dropped, Some(started));
        let interval = dropped_cell.wilson();
        map.insert("started".into(), json!(started));
        map.insert("completed".into(), json!(cell.numerator));
        map.insert("dropped".into(), json!(dropped));
        map.insert("dropout".into(), json!(dropped_cell.rate().map(round4)));
        map.insert("ci_low".into(), json!(interval.map(|(low, _)| round4(low))));
        map.insert(
            "ci_high".into(),
            json!(interval.map(|(_, high)| round4(high))),
        );
    }
    map.insert("suppressed".into(), json!(withheld));
    let flags: Vec<&str> = if incomplete {
        vec!["incomplete_follow_up"]
    } else {
        vec![]
    };
    map.insert("flags".into(), json!(flags));
    map
}

/// The median of a histogram of ages (age → persons).
fn median(ages: &BTreeMap<i32, u64>) -> Option<f64> {
    let total: u64 = ages.values().sum();
    if total == 0 {
        return None;
    }
    let nth = |position: u64| {
        let mut seen = 0;
        for (age, persons) in ages {
            seen += persons;
            if seen > position {
                return f64::from(*age);
            }
        }
        unreachable!("position is below the total")
    };
    Some(if total % 2 == 1 {
        nth(total / 2)
    } else {
        (nth(total / 2 - 1) + nth(total / 2)) / 2.0
    })
}

fn timeliness_answer(
    context: &Context,
    indicator: &Indicator,
    query: &TimelinessQuery,
) -> Result<Value, QueryError> {
    birth_cohort_only(indicator, "timeliness")?;
    let facts = context.facts;
    let by = query.by;
    let schedule = indicator.schedule_age_months;
    let mut histograms: BTreeMap<Key, BTreeMap<i32, u64>> = BTreeMap::new();
    let mut national: BTreeMap<i32, u64> = BTreeMap::new();
    for (group, age, persons) in cohort_doses(facts, indicator, query.cohort) {
        *histograms
            .entry(group_key(by, group))
            .or_default()
            .entry(age)
            .or_default() += persons;
        *national.entry(age).or_default() += persons;
    }
    // A cell is (timely of vaccinated); without a schedule age only the vaccinated count.
    let cell_of = |ages: &BTreeMap<i32, u64>| {
        let vaccinated: u64 = ages.values().sum();
        match schedule {
            Some(schedule) => Cell::new(
                ages.range(..=schedule as i32)
                    .map(|(_, persons)| persons)
                    .sum(),
                Some(vaccinated),
            ),
            None => Cell::new(vaccinated, None),
        }
    };
    let mut keyed: Vec<(Key, Cell, Option<f64>)> = histograms
        .iter()
        .map(|(key, ages)| (key.clone(), cell_of(ages), median(ages)))
        .collect();
    keyed.sort_by(|(a, _, _), (b, _, _)| (a.is_none(), a).cmp(&(b.is_none(), b)));
    let rows: Vec<(Key, Cell)> = keyed
        .iter()
        .map(|(key, cell, _)| (key.clone(), *cell))
        .collect();

    let total = cell_of(&national);
    let national_median = median(&national);
    let mut answer = header(context, indicator);
    answer.insert("cohort".into(), json!(query.cohort));
    answer.insert("by".into(), json!(by));
    let mut prefix = Map::new();
    prefix.insert("cohort".into(), json!(query.cohort));

    let cells: Vec<Cell> = rows.iter().map(|(_, cell)| *cell).collect();
    let (withheld, total_withheld) = match by {
        Some(_) => context.rule.apply(&cells, Some(&total)),
        None => (Vec::new(), context.rule.apply(&[], Some(&total)).1),
    };
    let fields = |cell: &Cell, median: Option<f64>, withheld: bool| {
        let mut map = Map::new();
        let interval = cell.denominator.and(cell.wilson());
        let hide = |value: Value| if withheld { Value::Null } else { value };
        let vaccinated = cell.denominator.unwrap_or(cell.numerator);
        map.insert("vaccinated".into(), hide(json!(vaccinated)));
        map.insert("median_age_months".into(), hide(json!(median)));
        map.insert(
            "timely".into(),
            hide(json!(schedule.map(|_| cell.numerator))),
        );
        map.insert(
            "timely_share".into(),
            hide(json!(schedule.and(cell.rate()).map(round4))),
        );
        map.insert(
            "ci_low".into(),
            hide(json!(interval.map(|(low, _)| round4(low)))),
        );
        map.insert(
            "ci_high".into(),
            hide(json!(interval.map(|(_, high)| round4(high)))),
        );
        map.insert("suppressed".into(), json!(withheld));
        map.insert("flags".into(), json!(Vec::<&str>::new()));
        map
    };
    let published: Vec<Value> = match by {
        None => {
            let mut row = prefix.clone();
            row.extend(fields(&total, national_median, total_withheld));
            vec![Value::Object(row)]
        }
        Some(by) => keyed
            .iter()
            .zip(&withheld)
            .map(|((key, cell, median), withheld)| {
                let mut row = prefix.clone();
                row.insert(by.column().into(), json!(key));
                row.extend(fields(cell, *median, *withheld));
                Value::Object(row)
            })
            .collect(),
    };
    answer.insert("schedule_age_months".into(), json!(schedule));
    answer.insert("rows".into(), Value::Array(published));
    if by.is_some() {
        let mut row = prefix.clone();
        row.extend(fields(&total, national_median, total_withheld));
        answer.insert("total".into(), Value::Object(row));
    }
    Ok(Value::Object(answer))
}

/// The columns of the `--all` table (docs/coverage.md).
pub const TABLE_COLUMNS: &[&str] = &[
    "indicator",
    "cohort",
    "by",
    "group",
    "numerator",
    "denominator",
    "coverage",
    "ci_low",
    "ci_high",
    "suppressed",
    "flags",
];

/// The cohorts (or seasons, or years) an indicator is tabulated for.
fn cohorts_of(facts: &Facts, indicator: &Indicator) -> Vec<i32> {
    let range = |years: &mut dyn Iterator<Item = i32>| {
        let years: Vec<i32> = years.collect();
        match (years.iter().min(), years.iter().max()) {
            (Some(&first), Some(&last)) => (first..=last).collect(),
            _ => Vec::new(),
        }
    };
    match indicator.kind {
        Kind::BirthCohort => {
            let months = indicator.age_months.unwrap_or(12) as i32;
            let first = facts
                .cohort_doses
                .get(&(indicator.antigen.clone(), indicator.dose))
                .into_iter()
                .flatten()
                .filter(|row| row.age_months < months)
                .filter(|row| sex_matches(indicator, &facts.groups[row.group as usize]))
                .map(|row| row.cohort)
                .min();
            let reference_year = latest_reference_year(facts);
            let last = facts
                .population
                .iter()
                .filter(|row| Some(row.reference_year) == reference_year)
                .map(|row| row.birth_year)
                .max();
            match (first, last) {
                (Some(first), Some(last)) => (first..=last).collect(),
                (Some(first), None) => vec![first],
                _ => Vec::new(),
            }
        }
        Kind::Season => range(
            &mut facts
                .season_doses
                .get(&indicator.antigen)
                .into_iter()
                .flatten()
                .map(|row| row.year),
        ),
        Kind::AgeBand => {
            let DoseRule::Nth(dose) = indicator.dose else {
                return Vec::new();
            };
            let first = facts
                .year_doses
                .get(&(indicator.antigen.clone(), dose))
                .into_iter()
                .flatten()
                .map(|row| row.year)
                .min();
            // Status at the end of every year up to the newest data, even when nobody got
            // the dose in the last years: coverage does not stop because uptake did.
            let last = facts
                .data_until
                .as_deref()
                .and_then(parse_iso)
                .map(|day| civil_from_days(day).0);
            match (first, last) {
                (Some(first), Some(last)) => (first..=last.max(first)).collect(),
                (Some(first), None) => vec![first],
                _ => Vec::new(),
            }
        }
    }
}

/// One row of the `--all` table and the answer it comes from.
struct TableRow<'a> {
    indicator: &'a Indicator,
    answer: &'a Value,
    row: Value,
}

/// Calls `visit` with every row of the `--all` table, in table order.
fn table_rows(
    context: &Context,
    catalogue: &Catalogue,
    mut visit: impl FnMut(TableRow),
) -> Result<(), QueryError> {
    for indicator in &catalogue.indicators {
        let breakdowns: &[Option<Breakdown>] = match indicator.kind {
            Kind::AgeBand => &[None],
            _ => &[
                None,
                Some(Breakdown::Commune),
                Some(Breakdown::Canton),
                Some(Breakdown::Sex),
            ],
        };
        for cohort in cohorts_of(context.facts, indicator) {
            for &by in breakdowns {
                let answer = coverage_answer(context, indicator, cohort, None, by)?;
                let (by_name, column) = match (indicator.kind, by) {
                    (Kind::AgeBand, _) => ("age_band", Some("age_band")),
                    (_, None) => ("national", None),
                    (_, Some(by)) => (by.column(), Some(by.column())),
                };
                for row in answer["rows"].as_array().into_iter().flatten() {
                    let group = column
                        .and_then(|column| row[column].as_str())
                        .unwrap_or_default();
                    let flags: Vec<&str> = row["flags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    visit(TableRow {
                        indicator,
                        answer: &answer,
                        row: json!({
                            "indicator": indicator.name,
                            "cohort": cohort,
                            "by": by_name,
                            "group": group,
                            "numerator": row["numerator"],
                            "denominator": row["denominator"],
                            "coverage": row["coverage"],
                            "ci_low": row["ci_low"],
                            "ci_high": row["ci_high"],
                            "suppressed": row["suppressed"],
                            "flags": flags.join(";"),
                        }),
                    });
                }
            }
        }
    }
    Ok(())
}

fn table_answer(context: &Context, catalogue: &Catalogue) -> Result<Value, QueryError> {
    let mut out = Vec::new();
    table_rows(context, catalogue, |row| out.push(row.row))?;
    Ok(json!({ "columns": TABLE_COLUMNS, "rows": out }))
}

/// The published cells of the `--all` table whose numerator exceeds their denominator, each
/// with its indicator's definition version and its population source, under the provenance
/// every coverage answer carries (`population_source` is set by [`CoverageEngine::flags`]).
fn flags_answer(context: &Context, catalogue: &Catalogue) -> Result<Value, QueryError> {
    let mut rows = Vec::new();
    table_rows(
        context,
        catalogue,
        |TableRow {
             indicator,
             answer,
             mut row,
         }| {
            let flagged = row["suppressed"] != Value::Bool(true)
                && row["flags"]
                    .as_str()
                    .is_some_and(|f| f.split(';').any(|f| f == "numerator_exceeds_denominator"));
            if !flagged {
                return;
            }
            if let Some(map) = row.as_object_mut() {
                map.insert(
                    "definition_version".into(),
                    json!(indicator.definition_version),
                );
                map.insert(
                    "population_source".into(),
                    answer["population_source"].clone(),
                );
            }
            rows.push(row);
        },
    )?;
    let mut columns: Vec<&str> = TABLE_COLUMNS.to_vec();
    columns.extend(["definition_version", "population_source"]);
    Ok(json!({
        "columns": columns,
        "data_until": context.facts.data_until,
        "table_versions": context.versions,
        "suppression_threshold": context.rule.threshold,
        "population_source": null,
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_youngest_of_a_cohort_reaches_an_age_at_the_end_of_a_month() {
        assert_eq!(civil_from_days(last_birthday(2023, 12)), (2024, 12, 31));
        assert_eq!(civil_from_days(last_birthday(2023, 2)), (2024, 2, 29));
        assert_eq!(civil_from_days(last_birthday(2023, 14)), (2025, 2, 28));
    }

    #[test]
    fn medians_of_even_and_odd_counts() {
        let ages: BTreeMap<i32, u64> = [(2, 1), (3, 1), (5, 1)].into_iter().collect();
        assert_eq!(median(&ages), Some(3.0));
        let ages: BTreeMap<i32, u64> = [(2, 2), (4, 2)].into_iter().collect();
        assert_eq!(median(&ages), Some(3.0));
        assert_eq!(median(&BTreeMap::new()), None);
    }

    #[test]
    fn seasons_are_labelled_like_surveillance_reports() {
        assert_eq!(season_label(2024), "2024/25");
        assert_eq!(season_label(1999), "1999/00");
    }
}
