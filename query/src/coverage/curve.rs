//! Cumulative coverage of a birth cohort by age in months (`GET /api/coverage/curve`).

use std::collections::BTreeMap;

use super::answer::{CurveAnswer, Row};
use super::catalogue::Indicator;
use super::publish::{coverage_figures, Context, Key};
use super::question::CurveQuery;
use super::select::{
    before, birth_cohort_only, cohort_doses, cohort_population, cohort_reference_year,
    last_birthday,
};
use crate::disclosure::Cell;
use crate::population::population_source;
use crate::QueryError;

pub(super) fn curve_answer(
    context: &Context,
    indicator: &Indicator,
    query: &CurveQuery,
) -> Result<CurveAnswer, QueryError> {
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
    // One denominator for the whole curve: the cohort's at the indicator's age.
    let reference_year = cohort_reference_year(facts, query.cohort, months);
    let population: Vec<(Key, u64)> =
        cohort_population(facts, indicator, query.cohort, None, reference_year);
    let denominator = (!population.is_empty())
        .then(|| population.iter().map(|(_, persons)| persons).sum::<u64>());
    let rows = (1..=max_age)
        .map(|age| {
            let numerator = by_age.range(..age as i32).map(|(_, persons)| persons).sum();
            let cell = Cell::new(numerator, denominator);
            let withheld = context.rule.fails(&cell);
            let incomplete = before(facts, last_birthday(query.cohort, age));
            Row {
                cohort: query.cohort,
                cohort_last: None,
                season: None,
                age_months: Some(age),
                group: None,
                figures: coverage_figures(&cell, withheld, incomplete),
            }
        })
        .collect();
    Ok(CurveAnswer {
        header: context.header(indicator),
        cohort: query.cohort,
        population_source: population_source(reference_year),
        rows,
    })
}
