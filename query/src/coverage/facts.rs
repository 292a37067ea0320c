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

use std::collections::HashMap;

// The counters are updated once per fact row (millions on a cold read): DataFusion's hash
// map (hashbrown with foldhash) hashes their small keys several times faster than std's
// SipHash, and looks text up by `&str` without allocating.
use datafusion::common::HashMap as Counters;

use arrow::array::{Array, BooleanArray, Date32Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::catalogue::{Catalogue, DoseRule, Kind};
use super::invalid_doses::{InvalidDoseCount, VALID};
use vaxlake_catalog::validity::season_of_day;

use crate::arrow_rows::{cast_as, rows, Row};
use crate::dates::{civil_from_days, format_iso};
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

fn opt_text(array: &StringArray, row: usize) -> Option<&str> {
    array.is_valid(row).then(|| array.value(row))
}

/// A row's (commune, canton, sex).
type Place<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// An age-band cell: (antigen, dose, year given, birth year, group, year of death if any).
type YearCell = (usize, u32, i32, i32, u32, Option<i32>);

/// Persons counted by key, with the weights of the facts added so far: a retraction
/// (weight −1) takes away what its fact added, so the counts of a table version are the
/// counts of its rows in any order and any grouping of commits.
#[derive(Debug)]
pub struct FactCounts {
    plan: DosePlan,
    groups: Vec<Group>,
    interner: HashMap<Group, u32>,
    /// (antigen, rule, birth year, group, age at the dose).
    cohort: Counters<(usize, DoseRule, i32, u32, i32), i64>,
    /// (antigen, season, birth year, group, year of death if any).
    season: Counters<(usize, i32, i32, u32, Option<i32>), i64>,
    year: Counters<YearCell, i64>,
    /// Every person's dose days, by antigen and reason (or `valid`).
    invalid: ReasonCounts,
    /// Dose days by day, for the newest one.
    days: Counters<i32, i64>,
}

impl FactCounts {
    /// No facts yet, counting what `catalogue`'s indicators need.
    pub fn new(catalogue: &Catalogue) -> FactCounts {
        FactCounts {
            plan: DosePlan::new(catalogue),
            groups: Vec::new(),
            interner: HashMap::new(),
            cohort: Counters::default(),
            season: Counters::default(),
            year: Counters::default(),
            invalid: ReasonCounts::default(),
            days: Counters::default(),
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
        let sql = format!("SELECT {COUNTED_COLUMNS} FROM dose_facts");
        // Counting is the cold read's own work (the scan is DataFusion's): each partition of
        // the scan is counted on a task of its own, on every core, and the counts are summed.
        let streams = ctx.sql(&sql).await?.execute_stream_partitioned().await?;
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|mut stream| {
                let mut counts = FactCounts::new(catalogue);
                tokio::spawn(async move {
                    while let Some(batch) = stream.next().await {
                        counts.apply(&batch?)?;
                    }
                    Ok::<_, QueryError>(counts)
                })
            })
            .collect();
        let mut total = FactCounts::new(catalogue);
        for task in tasks {
            let counts = task.await.map_err(|error| {
                QueryError::Sql(format!("counting the coverage facts: {error}"))
            })??;
            total.merge(counts);
        }
        Ok(total)
    }

    /// Adds `other`'s counts to these (the same catalogue's).
    fn merge(&mut self, other: FactCounts) {
        let groups: Vec<u32> = other
            .groups
            .into_iter()
            .map(|group| intern_group(&mut self.groups, &mut self.interner, group))
            .collect();
        let group = |g: u32| groups[g as usize];
        for ((antigen, rule, year, g, age), n) in other.cohort {
            *self
                .cohort
                .entry((antigen, rule, year, group(g), age))
                .or_default() += n;
        }
        for ((antigen, season, year, g, death), n) in other.season {
            *self
                .season
                .entry((antigen, season, year, group(g), death))
                .or_default() += n;
        }
        for ((antigen, dose, given, year, g, death), n) in other.year {
            let key = (antigen, dose, given, year, group(g), death);
            *self.year.entry(key).or_default() += n;
        }
        for (antigen, reasons) in &other.invalid.0 {
            for (reason, &n) in reasons {
                self.invalid.add(antigen, reason, n);
            }
        }
        for (day, n) in other.days {
            *self.days.entry(day).or_default() += n;
        }
    }

    /// Adds the facts of `batch` (columns [`COUNTED_COLUMNS`], by name), each by its weight.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| QueryError::Format(format!("dose_facts has no column {name}")))
        };
        let texts = |name| cast_as::<StringArray>(column(name)?, &DataType::Utf8);
        let ints = |name| cast_as::<Int32Array>(column(name)?, &DataType::Int32);
        let flags = |name| cast_as::<BooleanArray>(column(name)?, &DataType::Boolean);
        let antigens = texts("antigen")?;
        let days = cast_as::<Date32Array>(column("administered_on")?, &DataType::Date32)?;
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
        let mut last_antigen: Option<(&str, Option<usize>)> = None;
        let mut last_group: Option<(Place<'_>, u32)> = None;
        let flag = |array: &BooleanArray, row: usize| array.is_valid(row) && array.value(row);
        for row in 0..batch.num_rows() {
            let weight = i64::from(weights.value(row));
            let antigen_name = antigens.value(row);
            let day = days.value(row);
            let reason = if reasons.is_valid(row) {
                reasons.value(row)
            } else {
                VALID
            };
            self.invalid.add(antigen_name, reason, weight);
            *self.days.entry(day).or_default() += weight;
            if reasons.is_valid(row) || !flag(&resident, row) || births.is_null(row) {
                continue;
            }
            // A person's facts are stored together, so most rows repeat the antigen and the
            // group of the row before: those are looked up once per run of rows.
            let antigen = match last_antigen {
                Some((name, index)) if name == antigen_name => index,
                _ => {
                    let index = self
                        .plan
                        .names
                        .binary_search_by(|n| n.as_str().cmp(antigen_name))
                        .ok();
                    last_antigen = Some((antigen_name, index));
                    index
                }
            };
            let Some(antigen) = antigen else {
                continue;
            };
            let birth_year = births.value(row);
            let place = (
                opt_text(&communes, row),
                opt_text(&cantons, row),
                opt_text(&sexes, row),
            );
            let group = match last_group {
                Some((held, group)) if held == place => group,
                _ => {
                    let (commune, canton, sex) = place;
                    let group = intern_group(
                        &mut self.groups,
                        &mut self.interner,
                        Group {
                            commune: commune.map(str::to_string),
                            canton: canton.map(str::to_string),
                            sex: sex.map(str::to_string),
                        },
                    );
                    last_group = Some((place, group));
                    group
                }
            };
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
                let key = (antigen, season_of_day(day), birth_year, group, death);
                *self.season.entry(key).or_default() += weight;
            }
            if let Some(seq) = seq.filter(|seq| self.plan.year_doses[antigen].contains(seq)) {
                let key = (
                    antigen,
                    seq,
                    civil_from_days(day).0,
                    birth_year,
                    group,
                    death,
                );
                *self.year.entry(key).or_default() += weight;
            }
        }
        Ok(())
    }

    /// The facts answers are cut from: these counts, and the population of `ctx`.
    pub async fn facts(&self, ctx: &SessionContext) -> Result<Facts, QueryError> {
        let names = &self.plan.names;
        let mut negative = 0_usize;
        let mut facts = Facts {
            groups: self.groups.clone(),
            cohort_doses: rows_of(
                &self.cohort,
                &mut negative,
                |&(antigen, dose, cohort, group, age_months), persons| {
                    let row = AgeCount {
                        cohort,
                        group,
                        age_months,
                        persons,
                    };
                    Some(((names[antigen].clone(), dose), row))
                },
            ),
            // Season and age-band counts are kept by year of death (none for the living):
            // the answers count everyone, then take away who died before their 1 January.
            season_doses: rows_of(
                &self.season,
                &mut negative,
                |&(antigen, year, birth_year, group, _), persons| {
                    let row = year_count(year, birth_year, group, persons);
                    Some((names[antigen].clone(), row))
                },
            ),
            year_doses: rows_of(
                &self.year,
                &mut negative,
                |&(antigen, dose, year, birth_year, group, _), persons| {
                    let row = year_count(year, birth_year, group, persons);
                    Some(((names[antigen].clone(), dose), row))
                },
            ),
            dead_season_doses: rows_of(
                &self.season,
                &mut negative,
                |&(antigen, year, birth_year, group, death), persons| {
                    let row = year_count(year, birth_year, group, persons);
                    death.map(|death| (names[antigen].clone(), (death, row)))
                },
            ),
            ..Facts::default()
        };
        facts.dead_year_doses = rows_of(
            &self.year,
            &mut negative,
            |&(antigen, dose, year, birth_year, group, death), persons| {
                let row = year_count(year, birth_year, group, persons);
                death.map(|death| ((names[antigen].clone(), dose), (death, row)))
            },
        );
        for (antigen, reasons) in &self.invalid.0 {
            for (reason, &count) in reasons {
                negative += usize::from(count < 0);
                if count > 0 {
                    facts.invalid_doses.push(InvalidDoseCount {
                        antigen: antigen.clone(),
                        reason: reason.clone(),
                        doses: count as u64,
                    });
                }
            }
        }
        if negative > 0 {
            // A retraction without its fact: the facts table is inconsistent (a bug, or a
            // table written by hand). Counts are never negative; say so loudly.
            tracing::error!(
                cells = negative,
                "coverage facts retract more than they hold"
            );
        }
        facts.data_until = self
            .days
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(&day, _)| day)
            .max()
            .map(format_iso);

        if ctx.table_exist("population")? {
            let mut interner = self.interner.clone();
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

fn year_count(year: i32, birth_year: i32, group: u32, persons: u64) -> YearCount {
    YearCount {
        year,
        birth_year,
        group,
        persons,
    }
}

/// The counted cells of `counts` as [`Facts`] rows, grouped by the key `place` gives each
/// (a cell `place` gives no key is left out); counts of zero are gone, and negative ones
/// are added to `negative`.
fn rows_of<C, K, R>(
    counts: &Counters<C, i64>,
    negative: &mut usize,
    place: impl Fn(&C, u64) -> Option<(K, R)>,
) -> HashMap<K, Vec<R>>
where
    K: std::hash::Hash + Eq,
    C: std::hash::Hash + Eq,
{
    let mut rows: HashMap<K, Vec<R>> = HashMap::new();
    for (cell, &count) in counts {
        *negative += usize::from(count < 0);
        let Ok(persons @ 1..) = u64::try_from(count) else {
            continue;
        };
        if let Some((key, row)) = place(cell, persons) {
            rows.entry(key).or_default().push(row);
        }
    }
    rows
}

/// Dose days by antigen, then by reason (or `valid`): two lookups by `&str`, so a row
/// allocates nothing unless its pair is new.
#[derive(Debug, Default)]
struct ReasonCounts(Counters<String, Counters<String, i64>>);

impl ReasonCounts {
    fn add(&mut self, antigen: &str, reason: &str, weight: i64) {
        *self
            .0
            .entry_ref(antigen)
            .or_default()
            .entry_ref(reason)
            .or_default() += weight;
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
