//! The counts every coverage answer is cut from, read once per table version.
//!
//! Instead of one SQL query per request, a few grouped queries count persons at the finest
//! grain any answer needs (cohort × commune × canton × sex × age at the dose, per antigen and
//! dose); every indicator, cohort, age, breakdown, curve, dropout and timeliness answer is
//! then a sum over these rows in memory. That is what makes cached answers cost microseconds
//! and a whole indicator table cost one pass over the warehouse.
//!
//! Only valid doses count (docs/coverage.md, "Valid doses"): each person's dose days of an
//! antigen are judged by `vaxlake_catalog::validity`, the implementation the
//! `antigen_doses` view numbers its `dose_seq` with, and dose N is the N-th valid dose.

use std::collections::HashMap;

use arrow::array::{Array, Date32Array, Int32Array, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use vaxlake_catalog::validity::{DoseDay, DoseRules, Judged};

use super::catalogue::{Catalogue, DoseRule, Kind};
use crate::arrow_rows::{as_ints, as_strings, items, list, rows, string_list, Row};
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
    /// The newest dose date in the warehouse (ISO), for follow-up checks.
    pub data_until: Option<String>,
}

impl Facts {
    /// Runs the grouped queries for every indicator of `catalogue` on `ctx`.
    pub async fn load(ctx: &SessionContext, catalogue: &Catalogue) -> Result<Facts, QueryError> {
        if !ctx.table_exist("vaccinations")? {
            return Err(QueryError::Unavailable(
                "no vaccinations have been ingested into this warehouse yet".into(),
            ));
        }
        if !ctx.table_exist("persons")? {
            return Err(QueryError::Unavailable(
                "this warehouse has no persons table (ingested before December 2026): \
                 ingest the registry export again to build it"
                    .into(),
            ));
        }
        let mut facts = Facts::default();
        let mut interner = HashMap::new();

        let mut cohort_pairs: Vec<(String, u32)> = Vec::new();
        let mut series_antigens: Vec<String> = Vec::new();
        let mut schedule_antigens: Vec<String> = Vec::new();
        let mut season_antigens: Vec<String> = Vec::new();
        let mut year_pairs: Vec<(String, u32)> = Vec::new();
        for indicator in &catalogue.indicators {
            let antigen = indicator.antigen.clone();
            match (indicator.kind, indicator.dose) {
                (Kind::BirthCohort, DoseRule::Nth(n)) => cohort_pairs.push((antigen, n)),
                (Kind::BirthCohort, DoseRule::Series) => series_antigens.push(antigen),
                (Kind::BirthCohort, DoseRule::Schedule) => schedule_antigens.push(antigen),
                (Kind::Season, _) => season_antigens.push(antigen),
                (Kind::AgeBand, DoseRule::Nth(n)) => year_pairs.push((antigen, n)),
                (Kind::AgeBand, DoseRule::Series | DoseRule::Schedule) => {}
            }
        }
        for list in [
            &mut series_antigens,
            &mut schedule_antigens,
            &mut season_antigens,
        ] {
            list.sort();
            list.dedup();
        }
        cohort_pairs.sort();
        cohort_pairs.dedup();
        year_pairs.sort();
        year_pairs.dedup();

        // One pass over the residents' doses for every indicator (`resident_doses_sql`).
        let mut wanted: Vec<String> = cohort_pairs
            .iter()
            .chain(&year_pairs)
            .map(|(antigen, _)| antigen.clone())
            .chain(series_antigens.iter().cloned())
            .chain(schedule_antigens.iter().cloned())
            .chain(season_antigens.iter().cloned())
            .collect();
        wanted.sort();
        wanted.dedup();
        if !wanted.is_empty() {
            let vaccines = VaccineAntigens::load(ctx, &wanted, catalogue).await?;
            if !vaccines.by_atc.is_empty() {
                let plan = DosePlan::new(
                    &wanted,
                    &cohort_pairs,
                    &series_antigens,
                    &schedule_antigens,
                    &season_antigens,
                    &year_pairs,
                );
                let mut counts = DoseCounts::default();
                // The residents who died are counted again per year of death, in the same
                // pass: season and age-band coverage count the living on a 1 January, so
                // each answer takes away those who died before it (docs/coverage.md).
                let living_matter = !season_antigens.is_empty() || !year_pairs.is_empty();
                let mut by_death: HashMap<i32, DoseCounts> = HashMap::new();
                let sql = resident_doses_sql(&vaccines.atc_codes());
                let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    count_batch(
                        &batch,
                        &vaccines,
                        &catalogue.rules,
                        &plan,
                        &mut facts,
                        &mut interner,
                        &mut counts,
                    )?;
                    let death_years = as_ints(batch.column(8))?;
                    if !living_matter || death_years.null_count() == death_years.len() {
                        continue;
                    }
                    let mut years: Vec<i64> = death_years.iter().flatten().collect();
                    years.sort_unstable();
                    years.dedup();
                    for year in years {
                        let rows = arrow::compute::kernels::cmp::eq(
                            &death_years,
                            &arrow::array::Int64Array::new_scalar(year),
                        )?;
                        let part = arrow::compute::filter_record_batch(&batch, &rows)?;
                        count_batch(
                            &part,
                            &vaccines,
                            &catalogue.rules,
                            &plan,
                            &mut facts,
                            &mut interner,
                            by_death.entry(year as i32).or_default(),
                        )?;
                    }
                }
                counts.store(&wanted, &mut facts);
                for (death_year, counts) in by_death {
                    let mut dead = Facts {
                        groups: std::mem::take(&mut facts.groups),
                        ..Facts::default()
                    };
                    counts.store(&wanted, &mut dead);
                    facts.groups = std::mem::take(&mut dead.groups);
                    for (antigen, rows) in dead.season_doses {
                        facts
                            .dead_season_doses
                            .entry(antigen)
                            .or_default()
                            .extend(rows.into_iter().map(|row| (death_year, row)));
                    }
                    for (pair, rows) in dead.year_doses {
                        facts
                            .dead_year_doses
                            .entry(pair)
                            .or_default()
                            .extend(rows.into_iter().map(|row| (death_year, row)));
                    }
                }
            }
        }

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

        let until = rows(
            ctx,
            "SELECT CAST(max(administered_on) AS VARCHAR) FROM vaccinations",
        )
        .await?;
        facts.data_until = until.first().and_then(|row| row.maybe_text(0));
        Ok(facts)
    }
}

/// One row per resident with a completed dose of the vaccines `atc_codes`: (vaccines, dates,
/// ages, birth year, commune, canton, sex, product names, year of death or null).
///
/// One pass over the vaccinations for every indicator. DataFusion groups each person's
/// completed doses into three lists (vaccine, date, age); each vaccine is then expanded into
/// its antigens and the dose days are sorted, deduplicated and numbered in Rust, per person
/// and antigen. Grouping by person alone (1.4 million groups at 10 million events) rather
/// than by person and antigen (8.7 million, after the join multiplied the doses by their
/// antigens) took the grouping from 11 s to under 3 s; a window function sorting every dose
/// of the country by person costs more still. The person's attributes and residence are
/// those of the `persons` table: persons living abroad (cross-border workers vaccinated in
/// Luxembourg) are not in any numerator (docs/coverage.md, "Who is counted").
fn resident_doses_sql(atc_codes: &[String]) -> String {
    format!(
        "SELECT d.vaccines, d.dates, d.ages,
                CAST(date_part('year', p.birth_month) AS BIGINT) AS birth_year,
                p.commune, p.canton, p.sex, d.names,
                CAST(date_part('year', p.deceased_month) AS BIGINT) AS death_year
         FROM (SELECT person_key,
                      array_agg(vaccine_atc) AS vaccines,
                      array_agg(administered_on) AS dates,
                      array_agg(age_months_at_dose) AS ages,
                      array_agg(vaccine_name) AS names
               FROM vaccinations
               WHERE status = 'completed' AND vaccine_atc IN ({})
               GROUP BY person_key) AS d
         JOIN persons AS p ON p.person_key = d.person_key
         WHERE p.resident",
        string_list(atc_codes)
    )
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
    *interner.entry(group.clone()).or_insert_with(|| {
        groups.push(group);
        (groups.len() - 1) as u32
    })
}

/// (ATC code, wanted antigen index) → (product or `None`, series length), file order.
type SeriesLines = HashMap<(String, usize), Vec<(Option<String>, u32)>>;

/// The wanted antigens each vaccine protects against, and the series lengths of the
/// products of vaccine_series.csv.
struct VaccineAntigens {
    /// ATC code → indices into the wanted antigens.
    by_atc: HashMap<String, Vec<usize>>,
    series: SeriesLines,
}

impl VaccineAntigens {
    async fn load(
        ctx: &SessionContext,
        wanted: &[String],
        catalogue: &Catalogue,
    ) -> Result<Self, QueryError> {
        let sql = format!(
            "SELECT DISTINCT atc_code, antigen FROM vaccine_antigens WHERE antigen IN ({})",
            string_list(wanted)
        );
        let mut by_atc: HashMap<String, Vec<usize>> = HashMap::new();
        for row in rows(ctx, &sql).await? {
            let (Some(atc), Some(antigen)) = (row.maybe_text(0), row.maybe_text(1)) else {
                continue;
            };
            let Ok(index) = wanted.binary_search(&antigen) else {
                continue;
            };
            by_atc.entry(atc).or_default().push(index);
        }
        let mut series = SeriesLines::new();
        for line in &catalogue.series {
            if let Ok(index) = wanted.binary_search(&line.antigen) {
                series
                    .entry((line.atc_code.clone(), index))
                    .or_default()
                    .push((line.vaccine_name.clone(), line.doses));
            }
        }
        Ok(VaccineAntigens { by_atc, series })
    }

    fn atc_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.by_atc.keys().cloned().collect();
        codes.sort();
        codes
    }

    /// The series length a dose of `atc` recorded as `name` gives `antigen`: the product's
    /// line, else the code's line without a product (as `Catalogue::series_doses`).
    fn series_doses(&self, atc: &str, name: Option<&str>, antigen: usize) -> Option<u32> {
        let lines = self.series.get(&(atc.to_string(), antigen))?;
        name.and_then(|name| {
            lines.iter().find(|(product, _)| {
                product
                    .as_deref()
                    .is_some_and(|product| product.eq_ignore_ascii_case(name))
            })
        })
        .or_else(|| lines.iter().find(|(product, _)| product.is_none()))
        .map(|&(_, doses)| doses)
    }
}

/// What the catalogue needs of each wanted antigen (by its index in the sorted list).
struct DosePlan {
    /// The wanted antigens' names, by index.
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
    fn new(
        wanted: &[String],
        cohort_pairs: &[(String, u32)],
        series_antigens: &[String],
        schedule_antigens: &[String],
        season_antigens: &[String],
        year_pairs: &[(String, u32)],
    ) -> Self {
        let index = |antigen: &String| wanted.binary_search(antigen).ok();
        let mut plan = DosePlan {
            names: wanted.to_vec(),
            cohort_doses: vec![Vec::new(); wanted.len()],
            series: vec![false; wanted.len()],
            schedule: vec![false; wanted.len()],
            season: vec![false; wanted.len()],
            year_doses: vec![Vec::new(); wanted.len()],
        };
        for (antigen, dose) in cohort_pairs {
            if let Some(i) = index(antigen) {
                plan.cohort_doses[i].push(*dose);
            }
        }
        for antigen in series_antigens {
            if let Some(i) = index(antigen) {
                plan.series[i] = true;
            }
        }
        for antigen in schedule_antigens {
            if let Some(i) = index(antigen) {
                plan.schedule[i] = true;
            }
        }
        for antigen in season_antigens {
            if let Some(i) = index(antigen) {
                plan.season[i] = true;
            }
        }
        for (antigen, dose) in year_pairs {
            if let Some(i) = index(antigen) {
                plan.year_doses[i].push(*dose);
            }
        }
        plan
    }
}

/// Counters filled person by person (antigens by index), then turned into [`Facts`] rows.
#[derive(Default)]
struct DoseCounts {
    cohort: HashMap<(usize, DoseRule, i32, u32, i32), u64>,
    season: HashMap<(usize, i32, i32, u32), u64>,
    year: HashMap<(usize, u32, i32, i32, u32), u64>,
}

impl DoseCounts {
    fn store(self, wanted: &[String], facts: &mut Facts) {
        for ((antigen, dose, cohort, group, age_months), persons) in self.cohort {
            facts
                .cohort_doses
                .entry((wanted[antigen].clone(), dose))
                .or_default()
                .push(AgeCount {
                    cohort,
                    group,
                    age_months,
                    persons,
                });
        }
        for ((antigen, year, birth_year, group), persons) in self.season {
            facts
                .season_doses
                .entry(wanted[antigen].clone())
                .or_default()
                .push(YearCount {
                    year,
                    birth_year,
                    group,
                    persons,
                });
        }
        for ((antigen, dose, year, birth_year, group), persons) in self.year {
            facts
                .year_doses
                .entry((wanted[antigen].clone(), dose))
                .or_default()
                .push(YearCount {
                    year,
                    birth_year,
                    group,
                    persons,
                });
        }
    }

    /// Counts one person's dose days of one antigen (in date order, one per day, with the
    /// youngest age of the day) as judged by the dose rules: only valid doses count, and
    /// dose N is the N-th valid one.
    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        plan: &DosePlan,
        rules: &DoseRules,
        antigen_name: &str,
        antigen: usize,
        days: &[DoseDay],
        judged: &[Judged],
        series_doses: Option<u32>,
        birth_year: i32,
        group: u32,
    ) {
        // (date, age) of the valid doses, in order.
        let valid = || {
            days.iter()
                .zip(judged)
                .filter(|(_, judged)| judged.valid())
                .map(|(day, _)| day)
        };
        let age = |day: &DoseDay| day.age_months.unwrap_or(i32::MAX);
        for &dose in &plan.cohort_doses[antigen] {
            if let Some(day) = valid().nth(dose as usize - 1) {
                *self
                    .cohort
                    .entry((antigen, DoseRule::Nth(dose), birth_year, group, age(day)))
                    .or_default() += 1;
            }
        }
        if let (true, Some(series_doses)) = (plan.series[antigen], series_doses) {
            let need = series_doses.max(1) as usize;
            if let Some(day) = valid().nth(need - 1) {
                *self
                    .cohort
                    .entry((antigen, DoseRule::Series, birth_year, group, age(day)))
                    .or_default() += 1;
            }
        }
        if plan.schedule[antigen] {
            if let Some(index) = rules.completion(antigen_name, days, judged) {
                *self
                    .cohort
                    .entry((
                        antigen,
                        DoseRule::Schedule,
                        birth_year,
                        group,
                        age(&days[index]),
                    ))
                    .or_default() += 1;
            }
        }
        if plan.season[antigen] {
            let mut previous = None;
            for day in valid() {
                let season = season_of_day(day.date);
                if previous != Some(season) {
                    *self
                        .season
                        .entry((antigen, season, birth_year, group))
                        .or_default() += 1;
                    previous = Some(season);
                }
            }
        }
        for &dose in &plan.year_doses[antigen] {
            if let Some(day) = valid().nth(dose as usize - 1) {
                let year = civil_from_days(day.date).0;
                *self
                    .year
                    .entry((antigen, dose, year, birth_year, group))
                    .or_default() += 1;
            }
        }
    }
}

/// Counts one batch of (vaccines, dates, ages, birth_year, commune, canton, sex, names)
/// rows: one row is one person's completed doses of the wanted vaccines.
fn count_batch(
    batch: &RecordBatch,
    vaccines: &VaccineAntigens,
    rules: &DoseRules,
    plan: &DosePlan,
    facts: &mut Facts,
    interner: &mut HashMap<Group, u32>,
    counts: &mut DoseCounts,
) -> Result<(), QueryError> {
    let atcs = list(batch.column(0))?;
    let dates = list(batch.column(1))?;
    let ages = list(batch.column(2))?;
    let birth_years = as_ints(batch.column(3))?;
    let communes = as_strings(batch.column(4))?;
    let cantons = as_strings(batch.column(5))?;
    let sexes = as_strings(batch.column(6))?;
    let names = list(batch.column(7))?;
    let text =
        |array: &StringArray, row: usize| array.is_valid(row).then(|| array.value(row).to_string());

    let atc_values = as_strings(atcs.values())?;
    let name_values = as_strings(names.values())?;
    let date_values = items::<Date32Array>(&dates)?;
    let age_values = items::<Int32Array>(&ages)?;
    let offsets = atcs.value_offsets();
    if dates.value_offsets() != offsets
        || ages.value_offsets() != offsets
        || names.value_offsets() != offsets
    {
        return Err(QueryError::Format(
            "dose vaccines, dates, ages and names do not line up".into(),
        ));
    }
    // (antigen, date, age, series length) of every dose of the person; ages sort nulls
    // first, so `i32::MIN` stands for an unknown age and is put back as `None` below.
    let mut doses: Vec<(usize, i32, i32, Option<u32>)> = Vec::new();
    let mut days: Vec<DoseDay> = Vec::new();
    let mut judged: Vec<Judged> = Vec::new();
    for row in 0..batch.num_rows() {
        let group = intern_group(
            &mut facts.groups,
            interner,
            Group {
                commune: text(&communes, row),
                canton: text(&cantons, row),
                sex: text(&sexes, row),
            },
        );
        let birth_year = birth_years.value(row) as i32;

        doses.clear();
        for index in offsets[row] as usize..offsets[row + 1] as usize {
            if atc_values.is_null(index) {
                continue;
            }
            let atc = atc_values.value(index);
            let Some(antigens) = vaccines.by_atc.get(atc) else {
                continue;
            };
            let name = name_values
                .is_valid(index)
                .then(|| name_values.value(index));
            let date = date_values.value(index);
            let age = if age_values.is_valid(index) {
                age_values.value(index)
            } else {
                i32::MIN
            };
            for &antigen in antigens {
                let series = if plan.series[antigen] {
                    vaccines.series_doses(atc, name, antigen)
                } else {
                    None
                };
                doses.push((antigen, date, age, series));
            }
        }
        doses.sort_unstable();
        for run in doses.chunk_by(|a, b| a.0 == b.0) {
            let antigen = run[0].0;
            // The longest series of any product given (ACIP: one RotaTeq dose, or one of
            // unknown product, and three are needed).
            let series_doses = run.iter().filter_map(|dose| dose.3).max();
            days.clear();
            days.extend(
                run.iter()
                    .map(|&(_, date, age, _)| DoseDay::new(date, (age != i32::MIN).then_some(age))),
            );
            days.dedup_by_key(|day| day.date);
            rules.judge_into(&plan.names[antigen], &days, &mut judged);
            counts.count(
                plan,
                rules,
                &plan.names[antigen],
                antigen,
                &days,
                &judged,
                series_doses,
                birth_year,
                group,
            );
        }
    }
    Ok(())
}
