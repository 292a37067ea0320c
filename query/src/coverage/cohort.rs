//! Coverage of one cohort (`GET /api/coverage`): a birth cohort by an age, a season's
//! vaccinated of an age, or a calendar year's status per age band.

use super::answer::CoverageAnswer;
use super::catalogue::{age_band, DoseRule, Indicator, Kind, AGE_BANDS};
use super::publish::{coverage_figures, publish, tabulate, Context, Key, Place};
use super::question::Breakdown;
use super::select::{
    before, cohort_population, cohort_reference_year, keyed_counts, last_birthday,
    reference_year_for, season_label, sex_matches,
};
use crate::dates::days_from_civil;
use crate::population::population_source;
use crate::QueryError;

/// `counted` less `dead`, per key.
fn living(
    counted: impl Iterator<Item = (Key, u64)>,
    dead: impl Iterator<Item = (Key, u64)>,
) -> Vec<(Key, u64)> {
    let mut sums: std::collections::BTreeMap<Key, u64> = std::collections::BTreeMap::new();
    for (key, persons) in counted {
        *sums.entry(key).or_default() += persons;
    }
    for (key, persons) in dead {
        let sum = sums.entry(key).or_default();
        *sum = sum.saturating_sub(persons);
    }
    sums.into_iter().collect()
}

pub(super) fn coverage_answer(
    context: &Context,
    indicator: &Indicator,
    cohort: i32,
    age_months: Option<u32>,
    by: Option<Breakdown>,
) -> Result<CoverageAnswer, QueryError> {
    let facts = context.facts;
    let mut header = context.header(indicator);
    let mut place = Place::cohort(cohort);

    let (rows, total, reference_year, incomplete, column) = match indicator.kind {
        Kind::BirthCohort => {
            let months = age_months.or(indicator.age_months).unwrap_or(12);
            if months == 0 || months > 1200 {
                return Err(QueryError::Invalid(
                    "age_months must be between 1 and 1200".into(),
                ));
            }
            header.definition.age_months = Some(months);
            let reference_year = cohort_reference_year(facts, cohort, months);
            let doses = facts
                .cohort_doses
                .get(&(indicator.antigen.clone(), indicator.dose))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let numerators = keyed_counts(
                facts,
                indicator,
                by,
                doses
                    .iter()
                    .filter(|row| row.cohort == cohort && row.age_months < months as i32)
                    .map(|row| (row.group, row.persons)),
            );
            let denominators = cohort_population(facts, indicator, cohort, by, reference_year);
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
            place.season = Some(season_label(cohort));
            let reference_year = reference_year_for(facts, cohort + 1);
            let doses = facts
                .season_doses
                .get(&indicator.antigen)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let numerators = keyed_counts(
                facts,
                indicator,
                by,
                doses
                    .iter()
                    .filter(|row| row.year == cohort && row.birth_year <= oldest_birth_year)
                    .map(|row| (row.group, row.persons)),
            );
            // The living on the season's 1 January: not those who died before it.
            let dead = keyed_counts(
                facts,
                indicator,
                by,
                facts
                    .dead_season_doses
                    .get(&indicator.antigen)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|(death_year, row)| {
                        *death_year <= cohort
                            && row.year == cohort
                            && row.birth_year <= oldest_birth_year
                    })
                    .map(|(_, row)| (row.group, row.persons)),
            );
            let numerators = living(numerators, dead);
            let denominators = keyed_counts(
                facts,
                indicator,
                by,
                facts
                    .population
                    .iter()
                    .filter(|row| {
                        Some(row.reference_year) == reference_year
                            && row.birth_year <= oldest_birth_year
                    })
                    .map(|row| (row.group, row.persons)),
            );
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
            // Status on 1 January after the year, of the living then: not those who died in
            // the year or before (docs/coverage.md, "Who is counted").
            let dead = facts
                .dead_year_doses
                .get(&(indicator.antigen.clone(), dose))
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|(death_year, row)| {
                    *death_year <= cohort && row.year <= cohort && band(row.birth_year).is_some()
                })
                .filter(|(_, row)| sex_matches(indicator, &facts.groups[row.group as usize]))
                .map(|(_, row)| (band(row.birth_year), row.persons));
            let numerators = living(numerators, dead);
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
    let (rows, total) = publish(
        context.rule,
        column,
        &rows,
        &total,
        &place,
        |cell, withheld| coverage_figures(cell, withheld, incomplete),
    );
    Ok(CoverageAnswer {
        header,
        cohort,
        by,
        season: place.season,
        population_source: population_source(reference_year),
        rows,
        total,
    })
}
