//! The counts every coverage answer is cut from.
//!
//! They are sums over the coverage facts the ingest maintains (`dose_facts`: every person's
//! dose days per antigen, judged by `vaxlake_catalog::validity`, numbered, with the
//! person's residence and death), counted at the finest grain any answer needs (cohort ×
//! commune × canton × sex × age at the dose, per antigen and dose); every indicator,
//! cohort, age, breakdown, curve, dropout and timeliness answer is then a sum over these
//! rows in memory. Each fact row carries a weight (+1, or −1 for a retraction), so the
//! counts are kept by adding up only the rows a new table version added
//! ([`FactCounts::apply`], see `maintained.rs`) instead of reading everything again.
//!
//! Only valid doses count (docs/coverage.md, "Valid doses"), and dose N is the N-th valid
//! dose.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Date32Type, Int32Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::catalogue::{Catalogue, DoseRule, Kind};
use super::invalid_doses::{InvalidDoseCount, VALID};
use crate::arrow_rows::{rows, Row};
use crate::dates::{civil_from_days, season_of_day};
use crate::QueryError;

/// Where a person is counted: their row of the `persons` table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub commune: Option<String>,
    pub canton: Option<String>,
    pub sex: Option<String>,
}

/// Persons of one birth year and group whose dose was given at one age in completed months.
#[derive(Debug, Clone, Copy)]
pub struct AgeCount {
    pub cohort: i32,
    pub group: u32,
    pub age_months: i32,
    pub persons: u64,
}

/// Persons of one birth year and group counted in one year (a season's first year, or the
/// calendar year their dose was given).
#[derive(Debug, Clone, Copy)]
pub struct YearCount {
    pub year: i32,
    pub birth_year: i32,
    pub group: u32,
    pub persons: u64,
}

/// Residents of one birth year and group on 1 January of `reference_year`.
#[derive(Debug, Clone, Copy)]
pub struct PopulationCount {
    pub reference_year: i32,
    pub birth_year: i32,
    pub group: u32,
    pub persons: u64,
}

/// Everything the engine answers from, for one set of table versions.
#[derive(Debug, Default)]
pub struct Facts {
    pub groups: Vec<Group>,
    /// Birth-cohort indicators: (antigen, dose) → ages at the dose.
    pub cohort_doses: HashMap<(String, DoseRule), Vec<AgeCount>>,
    /// Season indicators: antigen → persons with a dose in the season starting `year`.
    pub season_doses: HashMap<String, Vec<YearCount>>,
    /// Age-band indicators: (antigen, dose) → persons whose dose was given in `year`.
    pub year_doses: HashMap<(String, u32), Vec<YearCount>>,
    pub population: Vec<PopulationCount>,
    /// The population's reference years, in order.
    pub reference_years: Vec<i32>,
    /// Season indicators: the persons of [`Facts::season_doses`] who died, by the year of
    /// their death (they are not among the living on any later 1 January).
    pub dead_season_doses: HashMap<String, Vec<(i32, YearCount)>>,
    /// Age-band indicators: the persons of [`Facts::year_doses`] who died, by the year of
    /// their death.
    pub dead_year_doses: HashMap<(String, u32), Vec<(i32, YearCount)>>,
    /// The newest day of a completed dose in the warehouse (ISO), for follow-up checks.
    pub data_until: Option<String>,
    /// Dose days by antigen and reason (or `valid`), of every person: the invalid-doses
    /// table's counts.
    pub invalid_doses: Vec<InvalidDoseCount>,
}

/// The `dose_facts` columns the counts read.
pub(crate) const COUNTED_COLUMNS: &str = "antigen, administered_on, age_months_at_dose, \
    invalid_reason, dose_seq, completes_series, completes_schedule, first_in_season, \
    resident, birth_year, commune, canton, sex, death_year, weight";

/// Persons counted by key, with the weights of the facts added so far: a retraction
/// (weight −1) takes away what its fact added, so the counts of a table version are the
/// counts of its rows in any order and any grouping of commits.
#[derive(Debug)]
pub struct FactCounts {
    plan: DosePlan,
    groups: Vec<Group>,
    interner: HashMap<Group, u32>,
    /// (antigen, rule, birth year, group, age at the dose).
    cohort: HashMap<(usize, DoseRule, i32, u32, i32), i64>,
    /// (antigen, season, birth year, group).
    season: HashMap<(usize, i32, i32, u32), i64>,
    /// (antigen, dose, year given, birth year, group).
    year: HashMap<(usize, u32, i32, i32, u32), i64>,
    /// The same for the persons who died, by year of death first.
    dead_season: HashMap<(i32, usize, i32, i32, u32), i64>,
    dead_year: HashMap<(i32, usize, u32, i32, i32, u32), i64>,
    /// (antigen, reason or `valid`) of every person's dose days.
    invalid: HashMap<(String, String), i64>,
    /// Dose days by day, for the newest one.
    days: BTreeMap<i32, i64>,
}

impl FactCounts {
    /// No facts yet, counting what `catalogue`'s indicators need.
    pub fn new(catalogue: &Catalogue) -> FactCounts {
        FactCounts {
            plan: DosePlan::new(catalogue),
            groups: Vec::new(),
            interner: HashMap::new(),
            cohort: HashMap::new(),
            season: HashMap::new(),
            year: HashMap::new(),
            dead_season: HashMap::new(),
            dead_year: HashMap::new(),
            invalid: HashMap::new(),
            days: BTreeMap::new(),
        }
    }

    /// Every fact of the `dose_facts` table registered on `ctx`.
    pub async fn load(
        ctx: &SessionContext,
        catalogue: &Catalogue,
    ) -> Result<FactCounts, QueryError> {
        if !ctx.table_exist("vaccinations")? {
            return Err(QueryError::Unavailable(
                "no vaccinations have been ingested into this warehouse yet".into(),
            ));
        }
        if !ctx.table_exist("dose_facts")? {
            return Err(QueryError::Unavailable(
                "this warehouse has no coverage facts (dose_facts; ingested before December \
                 2026): run `vaxlake maintain` to build them"
                    .into(),
            ));
        }
        let mut counts = FactCounts::new(catalogue);
        let sql = format!("SELECT {COUNTED_COLUMNS} FROM dose_facts");
        let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            counts.apply(&batch?)?;
        }
        Ok(counts)
    }

    /// Adds the facts of `batch` (columns [`COUNTED_COLUMNS`], by name), each by its weight.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| QueryError::Format(format!("dose_facts has no column {name}")))
        };
        let cast = |name: &str, to: &DataType| -> Result<arrow::array::ArrayRef, QueryError> {
            Ok(arrow::compute::cast(column(name)?, to)?)
        };
        let texts = |name: &str| -> Result<StringArray, QueryError> {
            Ok(cast(name, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let ints = |name: &str| -> Result<arrow::array::Int32Array, QueryError> {
            Ok(cast(name, &DataType::Int32)?
                .as_primitive::<Int32Type>()
                .clone())
        };
        let flags = |name: &str| -> Result<arrow::array::BooleanArray, QueryError> {
            Ok(cast(name, &DataType::Boolean)?.as_boolean().clone())
        };
        let antigens = texts("antigen")?;
        let days = cast("administered_on", &DataType::Date32)?;
        let days = days.as_primitive::<Date32Type>();
        let ages = ints("age_months_at_dose")?;
        let reasons = texts("invalid_reason")?;
        let seqs = ints("dose_seq")?;
        let series = flags("completes_series")?;
        let schedule = flags("completes_schedule")?;
        let first_in_season = flags("first_in_season")?;
        let resident = flags("resident")?;
        let births = ints("birth_year")?;
        let communes = texts("commune")?;
        let cantons = texts("canton")?;
        let sexes = texts("sex")?;
        let deaths = ints("death_year")?;
        let weights = ints("weight")?;
        let text = |array: &StringArray, row: usize| {
            array.is_valid(row).then(|| array.value(row).to_string())
        };
        let flag = |array: &arrow::array::BooleanArray, row: usize| {
            array.is_valid(row) && array.value(row)
        };
        for row in 0..batch.num_rows() {
            let weight = i64::from(weights.value(row));
            let antigen_name = antigens.value(row);
            let day = days.value(row);
            let reason = if reasons.is_valid(row) {
                reasons.value(row)
            } else {
                VALID
            };
            *self
                .invalid
                .entry((antigen_name.to_string(), reason.to_string()))
                .or_default() += weight;
            *self.days.entry(day).or_default() += weight;
            if reasons.is_valid(row) || !flag(&resident, row) || births.is_null(row) {
                continue;
            }
            let Ok(antigen) = self
                .plan
                .names
                .binary_search_by(|n| n.as_str().cmp(antigen_name))
            else {
                continue;
            };
            let birth_year = births.value(row);
            let group = intern_group(
                &mut self.groups,
                &mut self.interner,
                Group {
                    commune: text(&communes, row),
                    canton: text(&cantons, row),
                    sex: text(&sexes, row),
                },
            );
            let age = if ages.is_valid(row) {
                ages.value(row)
            } else {
                i32::MAX
            };
            let seq = seqs.is_valid(row).then(|| seqs.value(row) as u32);
            let death = deaths.is_valid(row).then(|| deaths.value(row));
            let mut cohort = |rule: DoseRule| {
                *self
                    .cohort
                    .entry((antigen, rule, birth_year, group, age))
                    .or_default() += weight;
            };
            if let Some(seq) = seq.filter(|seq| self.plan.cohort_doses[antigen].contains(seq)) {
                cohort(DoseRule::Nth(seq));
            }
            if flag(&series, row) && self.plan.series[antigen] {
                cohort(DoseRule::Series);
            }
            if flag(&schedule, row) && self.plan.schedule[antigen] {
                cohort(DoseRule::Schedule);
            }
            if flag(&first_in_season, row) && self.plan.season[antigen] {
                let season = season_of_day(day);
                *self
                    .season
                    .entry((antigen, season, birth_year, group))
                    .or_default() += weight;
                if let Some(death) = death {
                    *self
                        .dead_season
                        .entry((death, antigen, season, birth_year, group))
                        .or_default() += weight;
                }
            }
            if let Some(seq) = seq.filter(|seq| self.plan.year_doses[antigen].contains(seq)) {
                let year = civil_from_days(day).0;
                *self
                    .year
                    .entry((antigen, seq, year, birth_year, group))
                    .or_default() += weight;
                if let Some(death) = death {
                    *self
                        .dead_year
                        .entry((death, antigen, seq, year, birth_year, group))
                        .or_default() += weight;
                }
            }
        }
        Ok(())
    }

    /// The facts answers are cut from: these counts, and the population of `ctx`.
    pub async fn facts(&self, ctx: &SessionContext) -> Result<Facts, QueryError> {
        let mut facts = Facts {
            groups: self.groups.clone(),
            ..Facts::default()
        };
        let mut interner = self.interner.clone();
        let names = &self.plan.names;
        let mut negative = 0_usize;
        let mut persons = |count: i64| -> Option<u64> {
            negative += usize::from(count < 0);
            u64::try_from(count).ok().filter(|&n| n > 0)
        };
        for (&(antigen, dose, cohort, group, age_months), &count) in &self.cohort {
            let Some(persons) = persons(count) else {
                continue;
            };
            facts
                .cohort_doses
                .entry((names[antigen].clone(), dose))
                .or_default()
                .push(AgeCount {
                    cohort,
                    group,
                    age_months,
                    persons,
                });
        }
        for (&(antigen, year, birth_year, group), &count) in &self.season {
            let Some(persons) = persons(count) else {
                continue;
            };
            facts
                .season_doses
                .entry(names[antigen].clone())
                .or_default()
                .push(YearCount {
                    year,
                    birth_year,
                    group,
                    persons,
                });
        }
        for (&(antigen, dose, year, birth_year, group), &count) in &self.year {
            let Some(persons) = persons(count) else {
                continue;
            };
            facts
                .year_doses
                .entry((names[antigen].clone(), dose))
                .or_default()
                .push(YearCount {
                    year,
                    birth_year,
                    group,
                    persons,
                });
        }
        for (&(death, antigen, year, birth_year, group), &count) in &self.dead_season {
            let Some(persons) = persons(count) else {
                continue;
            };
            facts
                .dead_season_doses
                .entry(names[antigen].clone())
                .or_default()
                .push((
                    death,
                    YearCount {
                        year,
                        birth_year,
                        group,
                        persons,
                    },
                ));
        }
        for (&(death, antigen, dose, year, birth_year, group), &count) in &self.dead_year {
            let Some(persons) = persons(count) else {
                continue;
            };
            facts
                .dead_year_doses
                .entry((names[antigen].clone(), dose))
                .or_default()
                .push((
                    death,
                    YearCount {
                        year,
                        birth_year,
                        group,
                        persons,
                    },
                ));
        }
        for ((antigen, reason), &count) in &self.invalid {
            let Some(doses) = persons(count) else {
                continue;
            };
            facts.invalid_doses.push(InvalidDoseCount {
                antigen: antigen.clone(),
                reason: reason.clone(),
                doses,
            });
        }
        facts
            .invalid_doses
            .sort_by(|a, b| (&a.antigen, &a.reason).cmp(&(&b.antigen, &b.reason)));
        if negative > 0 {
            // A retraction without its fact: the facts table is inconsistent (a bug, or a
            // table written by hand). Counts are never negative; say so loudly.
            tracing::error!(
                cells = negative,
                "coverage facts retract more than they hold"
            );
        }
        sort_facts(&mut facts);
        facts.data_until = self
            .days
            .iter()
            .rev()
            .find(|(_, &count)| count > 0)
            .map(|(&day, _)| {
                let (y, m, d) = civil_from_days(day);
                format!("{y:04}-{m:02}-{d:02}")
            });

        if ctx.table_exist("population")? {
            let sql = "SELECT CAST(reference_year AS BIGINT), CAST(birth_year AS BIGINT),
                              commune, canton, sex, CAST(sum(count) AS BIGINT)
                       FROM population GROUP BY 1, 2, 3, 4, 5";
            for row in rows(ctx, sql).await? {
                let group = intern(&mut facts.groups, &mut interner, &row, 2);
                facts.population.push(PopulationCount {
                    reference_year: row.int(0) as i32,
                    birth_year: row.int(1) as i32,
                    group,
                    persons: row.int(5) as u64,
                });
            }
            facts.reference_years = facts
                .population
                .iter()
                .map(|row| row.reference_year)
                .collect();
            facts.reference_years.sort_unstable();
            facts.reference_years.dedup();
        }
        Ok(facts)
    }
}

/// Puts every list of `facts` in one order, so that the same counts give the same facts
/// whatever order the hash maps held them in.
fn sort_facts(facts: &mut Facts) {
    for rows in facts.cohort_doses.values_mut() {
        rows.sort_by_key(|r| (r.cohort, r.group, r.age_months));
    }
    for rows in facts
        .season_doses
        .values_mut()
        .chain(facts.year_doses.values_mut())
    {
        rows.sort_by_key(|r| (r.year, r.birth_year, r.group));
    }
    for rows in facts
        .dead_season_doses
        .values_mut()
        .chain(facts.dead_year_doses.values_mut())
    {
        rows.sort_by_key(|(death, r)| (*death, r.year, r.birth_year, r.group));
    }
}

/// Interns the (commune, canton, sex) found at `first`, `first + 1`, `first + 2`.
fn intern(
    groups: &mut Vec<Group>,
    interner: &mut HashMap<Group, u32>,
    row: &Row,
    first: usize,
) -> u32 {
    let group = Group {
        commune: row.maybe_text(first),
        canton: row.maybe_text(first + 1),
        sex: row.maybe_text(first + 2),
    };
    intern_group(groups, interner, group)
}

/// The index of `group` in `groups`, added if new.
fn intern_group(groups: &mut Vec<Group>, interner: &mut HashMap<Group, u32>, group: Group) -> u32 {
    if let Some(&index) = interner.get(&group) {
        return index;
    }
    groups.push(group.clone());
    let index = (groups.len() - 1) as u32;
    interner.insert(group, index);
    index
}

/// What the catalogue needs of each antigen it names (by its index in the sorted list).
#[derive(Debug)]
struct DosePlan {
    /// The antigens' names, sorted.
    names: Vec<String>,
    /// Birth-cohort indicators: the dose numbers counted.
    cohort_doses: Vec<Vec<u32>>,
    /// Birth-cohort indicators counting the completed series.
    series: Vec<bool>,
    /// Birth-cohort indicators counting the completed schedule (schedules.csv).
    schedule: Vec<bool>,
    /// Season indicators.
    season: Vec<bool>,
    /// Age-band indicators: the dose numbers counted by the year they were given.
    year_doses: Vec<Vec<u32>>,
}

impl DosePlan {
    fn new(catalogue: &Catalogue) -> Self {
        let mut names: Vec<String> = catalogue
            .indicators
            .iter()
            .map(|indicator| indicator.antigen.clone())
            .collect();
        names.sort();
        names.dedup();
        let n = names.len();
        let mut plan = DosePlan {
            names,
            cohort_doses: vec![Vec::new(); n],
            series: vec![false; n],
            schedule: vec![false; n],
            season: vec![false; n],
            year_doses: vec![Vec::new(); n],
        };
        for indicator in &catalogue.indicators {
            let Ok(i) = plan.names.binary_search(&indicator.antigen) else {
                continue;
            };
            match (indicator.kind, indicator.dose) {
                (Kind::BirthCohort, DoseRule::Nth(n)) => plan.cohort_doses[i].push(n),
                (Kind::BirthCohort, DoseRule::Series) => plan.series[i] = true,
                (Kind::BirthCohort, DoseRule::Schedule) => plan.schedule[i] = true,
                (Kind::Season, _) => plan.season[i] = true,
                (Kind::AgeBand, DoseRule::Nth(n)) => plan.year_doses[i].push(n),
                (Kind::AgeBand, DoseRule::Series | DoseRule::Schedule) => {}
            }
        }
        for doses in plan
            .cohort_doses
            .iter_mut()
            .chain(plan.year_doses.iter_mut())
        {
            doses.sort_unstable();
            doses.dedup();
        }
        plan
    }
}
