//! The counts every coverage answer is cut from, read once per table version.
//!
//! Instead of one SQL query per request, a few grouped queries count persons at the finest
//! grain any answer needs (cohort × commune × canton × sex × age at the dose, per antigen and
//! dose); every indicator, cohort, age, breakdown, curve, dropout and timeliness answer is
//! then a sum over these rows in memory. That is what makes cached answers cost microseconds
//! and a whole indicator table cost one pass over the warehouse.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::catalogue::{Catalogue, DoseRule, Kind};
use crate::QueryError;

/// Where a person is counted: the attributes of the `persons` view.
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
    /// The newest dose date in the warehouse (ISO), for follow-up checks.
    pub data_until: Option<String>,
    /// Whether a `population` table exists at all.
    pub has_population: bool,
}

impl Facts {
    /// Runs the grouped queries for every indicator of `catalogue` on `ctx`.
    pub async fn load(ctx: &SessionContext, catalogue: &Catalogue) -> Result<Facts, QueryError> {
        if !ctx.table_exist("vaccinations")? {
            return Err(QueryError::Unavailable(
                "no vaccinations have been ingested into this warehouse yet".into(),
            ));
        }
        let mut facts = Facts::default();
        let mut interner = HashMap::new();

        let mut cohort_pairs: Vec<(String, u32)> = Vec::new();
        let mut series_antigens: Vec<String> = Vec::new();
        let mut season_antigens: Vec<String> = Vec::new();
        let mut year_pairs: Vec<(String, u32)> = Vec::new();
        for indicator in &catalogue.indicators {
            let antigen = indicator.antigen.clone();
            match (indicator.kind, indicator.dose) {
                (Kind::BirthCohort, DoseRule::Nth(n)) => cohort_pairs.push((antigen, n)),
                (Kind::BirthCohort, DoseRule::Series) => series_antigens.push(antigen),
                (Kind::Season, _) => season_antigens.push(antigen),
                (Kind::AgeBand, DoseRule::Nth(n)) => year_pairs.push((antigen, n)),
                (Kind::AgeBand, DoseRule::Series) => {}
            }
        }
        for list in [&mut series_antigens, &mut season_antigens] {
            list.sort();
            list.dedup();
        }
        cohort_pairs.sort();
        cohort_pairs.dedup();
        year_pairs.sort();
        year_pairs.dedup();

        // One pass over the vaccinations for every indicator: the antigen's dose days are
        // numbered per person once, joined to the person's attributes once, and each row
        // keeps only the columns some indicator needs (the others are NULL), so that the
        // grouped result stays small.
        let wanted: Vec<String> = {
            let mut all: Vec<String> = cohort_pairs
                .iter()
                .chain(&year_pairs)
                .map(|(antigen, _)| antigen.clone())
                .chain(series_antigens.iter().cloned())
                .chain(season_antigens.iter().cloned())
                .collect();
            all.sort();
            all.dedup();
            all
        };
        if !wanted.is_empty() {
            let none = "FALSE".to_string();
            let or_none = |predicate: String| {
                if predicate.is_empty() {
                    none.clone()
                } else {
                    predicate
                }
            };
            let cohort_rows = or_none(
                [
                    pairs_predicate(&cohort_pairs, "n.antigen", "n.dose_seq"),
                    if series_antigens.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "(n.antigen IN ({}) AND n.dose_seq = n.series_doses)",
                            string_list(&series_antigens)
                        )
                    },
                ]
                .into_iter()
                .filter(|predicate| !predicate.is_empty())
                .collect::<Vec<_>>()
                .join(" OR "),
            );
            let season_rows = if season_antigens.is_empty() {
                none.clone()
            } else {
                format!(
                    "(n.antigen IN ({}) AND (n.previous_dose_on IS NULL OR {} <> {}))",
                    string_list(&season_antigens),
                    season_of("n.previous_dose_on"),
                    season_of("n.administered_on")
                )
            };
            let year_rows = or_none(pairs_predicate(&year_pairs, "n.antigen", "n.dose_seq"));
            let series_list = if series_antigens.is_empty() {
                "NULL".to_string()
            } else {
                string_list(&series_antigens)
            };
            let sql = format!(
                "WITH days AS (
                     SELECT v.person_key, a.antigen, v.administered_on,
                            min(v.age_months_at_dose) AS age_months_at_dose,
                            max(CAST(s.series_doses AS BIGINT)) AS series_doses
                     FROM vaccinations AS v
                     JOIN vaccine_antigens AS a ON a.atc_code = v.vaccine_atc
                     LEFT JOIN vaccine_series AS s
                            ON s.atc_code = v.vaccine_atc AND s.antigen = a.antigen
                     WHERE v.status = 'completed' AND a.antigen IN ({wanted})
                     GROUP BY v.person_key, a.antigen, v.administered_on),
                 numbered AS (
                     SELECT person_key, antigen, administered_on, age_months_at_dose,
                            row_number() OVER (PARTITION BY person_key, antigen ORDER BY administered_on) AS dose_seq,
                            lag(administered_on) OVER (PARTITION BY person_key, antigen ORDER BY administered_on) AS previous_dose_on,
                            max(series_doses) OVER (PARTITION BY person_key, antigen) AS series_doses
                     FROM days)
                 SELECT n.antigen,
                        CAST(n.dose_seq AS BIGINT) AS dose_seq,
                        CASE WHEN n.antigen IN ({series_list}) AND n.dose_seq = n.series_doses THEN 1 ELSE 0 END AS completes_series,
                        CASE WHEN {cohort_rows} THEN n.age_months_at_dose END AS cohort_age_months,
                        CASE WHEN {season_rows} THEN {season} END AS season,
                        CASE WHEN {year_rows} THEN CAST(date_part('year', n.administered_on) AS BIGINT) END AS year,
                        CAST(date_part('year', p.birth_month) AS BIGINT) AS birth_year,
                        p.commune, p.canton, p.sex,
                        count(*) AS persons
                 FROM numbered AS n JOIN persons AS p ON p.person_key = n.person_key
                 WHERE ({cohort_rows}) OR ({season_rows}) OR ({year_rows})
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
                wanted = string_list(&wanted),
                season = season_of("n.administered_on"),
            );
            for row in rows(ctx, &sql).await? {
                let group = intern(&mut facts.groups, &mut interner, &row, 7);
                let antigen = row.text(0);
                let dose = row.int(1) as u32;
                let birth_year = row.int(6) as i32;
                let persons = row.int(10) as u64;
                if let Some(age) = row.maybe_int(3) {
                    let count = AgeCount {
                        cohort: birth_year,
                        group,
                        age_months: age as i32,
                        persons,
                    };
                    if cohort_pairs.contains(&(antigen.clone(), dose)) {
                        facts
                            .cohort_doses
                            .entry((antigen.clone(), DoseRule::Nth(dose)))
                            .or_default()
                            .push(count);
                    }
                    if row.int(2) == 1 {
                        facts
                            .cohort_doses
                            .entry((antigen.clone(), DoseRule::Series))
                            .or_default()
                            .push(count);
                    }
                }
                if let Some(season) = row.maybe_int(4) {
                    facts
                        .season_doses
                        .entry(antigen.clone())
                        .or_default()
                        .push(YearCount {
                            year: season as i32,
                            birth_year,
                            group,
                            persons,
                        });
                }
                if let Some(year) = row.maybe_int(5) {
                    facts
                        .year_doses
                        .entry((antigen.clone(), dose))
                        .or_default()
                        .push(YearCount {
                            year: year as i32,
                            birth_year,
                            group,
                            persons,
                        });
                }
            }
        }

        facts.has_population = ctx.table_exist("population")?;
        if facts.has_population {
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

/// The season (the year of its 1 September) a date falls in: January to August belong to
/// the season that started the year before.
fn season_of(date: &str) -> String {
    format!(
        "(CAST(date_part('year', {date}) AS BIGINT) - CASE WHEN date_part('month', {date}) < 9 THEN 1 ELSE 0 END)"
    )
}

/// `(antigen = 'a' AND dose_seq IN (1, 3)) OR ...` for the pairs, grouped by antigen; empty
/// for no pairs.
fn pairs_predicate(pairs: &[(String, u32)], antigen_column: &str, dose_column: &str) -> String {
    let mut by_antigen: Vec<(String, Vec<u32>)> = Vec::new();
    for (antigen, dose) in pairs {
        match by_antigen.iter_mut().find(|(name, _)| name == antigen) {
            Some((_, doses)) => doses.push(*dose),
            None => by_antigen.push((antigen.clone(), vec![*dose])),
        }
    }
    by_antigen
        .iter()
        .map(|(antigen, doses)| {
            let doses: Vec<String> = doses.iter().map(u32::to_string).collect();
            format!(
                "({antigen_column} = {} AND {dose_column} IN ({}))",
                quote(antigen),
                doses.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

fn string_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SQL string literal. The values come from the compiled-in catalogue, but a catalogue
/// edit must not be able to break (or inject into) the queries.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// One result row, its columns cast to text or integers.
struct Row {
    texts: Vec<Option<String>>,
    ints: Vec<Option<i64>>,
}

impl Row {
    fn text(&self, index: usize) -> String {
        self.texts[index].clone().unwrap_or_default()
    }
    fn maybe_text(&self, index: usize) -> Option<String> {
        self.texts[index].clone()
    }
    fn int(&self, index: usize) -> i64 {
        self.ints[index].unwrap_or_default()
    }
    fn maybe_int(&self, index: usize) -> Option<i64> {
        self.ints[index]
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
    *interner.entry(group.clone()).or_insert_with(|| {
        groups.push(group);
        (groups.len() - 1) as u32
    })
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Row>, QueryError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        out.extend(batch_rows(batch)?);
    }
    Ok(out)
}

fn batch_rows(batch: &RecordBatch) -> Result<Vec<Row>, QueryError> {
    let mut texts: Vec<Option<StringArray>> = Vec::new();
    let mut ints: Vec<Option<Int64Array>> = Vec::new();
    for column in batch.columns() {
        let is_text = matches!(
            column.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(_, _)
        );
        if is_text {
            texts.push(Some(as_strings(column)?));
            ints.push(None);
        } else {
            texts.push(None);
            ints.push(Some(as_ints(column)?));
        }
    }
    Ok((0..batch.num_rows())
        .map(|row| Row {
            texts: texts
                .iter()
                .map(|column| {
                    column
                        .as_ref()
                        .filter(|array| array.is_valid(row))
                        .map(|array| array.value(row).to_string())
                })
                .collect(),
            ints: ints
                .iter()
                .map(|column| {
                    column
                        .as_ref()
                        .filter(|array| array.is_valid(row))
                        .map(|array| array.value(row))
                })
                .collect(),
        })
        .collect())
}

fn as_strings(column: &ArrayRef) -> Result<StringArray, QueryError> {
    let cast = cast(column, &DataType::Utf8)?;
    Ok(cast
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| QueryError::Format("expected a text column".into()))?
        .clone())
}

fn as_ints(column: &ArrayRef) -> Result<Int64Array, QueryError> {
    let cast = cast(column, &DataType::Int64)?;
    Ok(cast
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| QueryError::Format("expected a number column".into()))?
        .clone())
}
