//! Coverage of one cohort (`GET /api/coverage`): a birth cohort by an age, a season's
//! vaccinated of an age, or a calendar year's status per age band.

use super::answer::{CoverageAnswer, CoverageFigures, Row};
use super::catalogue::{age_band, DoseRule, Indicator, Kind, AGE_BANDS};
use super::facts::Facts;
use super::plan::{flat_plan, Plan, Selection};
use super::pooled::{pooled_plan, PooledPlan};
use super::publish::{coverage_figures, publish_planned, tabulate, Context, Key, Place};
use super::question::{Breakdown, CohortSpan};
use super::select::{
    before, cohort_reference_year, last_birthday, reference_year_for, season_label, sex_matches,
};
use std::sync::Arc;

use crate::dates::days_from_civil;
use crate::population::population_source;
use crate::QueryError;

/// `counted` less `dead`, per key.
fn living<K: Ord>(
    counted: impl Iterator<Item = (K, u64)>,
    dead: impl Iterator<Item = (K, u64)>,
) -> Vec<(K, u64)> {
    let mut sums: std::collections::BTreeMap<K, u64> = std::collections::BTreeMap::new();
    for (key, persons) in counted {
        *sums.entry(key).or_default() += persons;
    }
    for (key, persons) in dead {
        let sum = sums.entry(key).or_default();
        *sum = sum.saturating_sub(persons);
    }
    sums.into_iter().collect()
}

/// Persons of `cohort` (and the indicator's sex) with the indicator's dose before `months`,
/// over the cohort's population in `reference_year`, per facts group: the cells of one
/// birth-cohort publication, which every breakdown and the plan are cut from.
pub(super) fn birth_cohort_selection(
    facts: &Facts,
    indicator: &Indicator,
    cohort: i32,
    months: u32,
    reference_year: Option<i32>,
) -> Selection {
    let doses = facts
        .cohort_doses
        .get(&(indicator.antigen.clone(), indicator.dose))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of_sex = |group: u32| sex_matches(indicator, &facts.groups[group as usize]);
    Selection {
        numerators: doses
            .iter()
            .filter(|row| row.cohort == cohort && row.age_months < months as i32)
            .filter(|row| of_sex(row.group))
            .map(|row| (row.group, row.persons))
            .collect(),
        denominators: facts
            .population
            .iter()
            .filter(|row| Some(row.reference_year) == reference_year && row.birth_year == cohort)
            .filter(|row| of_sex(row.group))
            .map(|row| (row.group, row.persons))
            .collect(),
    }
}

/// The plan every answer about `indicator`, `cohort` and age `months` reads: its own, joined
/// with those of the other doses of the same antigen at their ages (a child with dose 3 had
/// dose 1, so a published DTP1 cell would bound a withheld DTP3 cell; withholding the same
/// cells in both keeps the moves of docs/coverage.md possible in both at once).
pub(super) fn publication_plan(
    context: &Context,
    indicator: &Indicator,
    cohort: i32,
    months: u32,
) -> Arc<Plan> {
    let own = single_plan(context, indicator, cohort, months);
    let linked = context.catalogue.indicators.iter().filter(|other| {
        other.kind == Kind::BirthCohort
            && other.antigen == indicator.antigen
            && other.sex == indicator.sex
            && !(other.name == indicator.name && other.age_months == Some(months))
    });
    let mut plan = (*own).clone();
    for other in linked {
        let months = other.age_months.unwrap_or(12);
        plan = plan.union(&single_plan(context, other, cohort, months), false);
    }
    Arc::new(plan)
}

/// The plan of one indicator's own counts, made once per answer.
fn single_plan(context: &Context, indicator: &Indicator, cohort: i32, months: u32) -> Arc<Plan> {
    let key = (indicator.name.clone(), cohort, months);
    if let Some(plan) = context.plans.lock().expect("plan cache").get(&key) {
        return plan.clone();
    }
    let facts = context.facts;
    let selection = birth_cohort_selection(
        facts,
        indicator,
        cohort,
        months,
        cohort_reference_year(facts, cohort, months),
    );
    let plan = Arc::new(selection.plan(facts, context.rule, &context.order_key));
    context
        .plans
        .lock()
        .expect("plan cache")
        .insert(key, plan.clone());
    plan
}

/// The age a birth-cohort answer counts doses by: the question's, else the indicator's.
pub(super) fn answer_months(
    indicator: &Indicator,
    age_months: Option<u32>,
) -> Result<u32, QueryError> {
    let months = age_months.or(indicator.age_months).unwrap_or(12);
    if months == 0 || months > 1200 {
        return Err(QueryError::Invalid(
            "age_months must be between 1 and 1200".into(),
        ));
    }
    Ok(months)
}

pub(super) fn coverage_answer(
    context: &Context,
    indicator: &Indicator,
    span: CohortSpan,
    age_months: Option<u32>,
    by: Option<Breakdown>,
) -> Result<CoverageAnswer, QueryError> {
    if span.is_pooled() {
        return pooled_answer(context, indicator, span, age_months, by);
    }
    let cohort = span.first;
    let facts = context.facts;
    let mut header = context.header(indicator);
    let mut place = Place::cohort(cohort);

    let mut bands = Bands::new();
    let (rows, total, reference_year, incomplete, column, plan) = match indicator.kind {
        Kind::BirthCohort => {
            let months = answer_months(indicator, age_months)?;
            header.definition.age_months = Some(months);
            let reference_year = cohort_reference_year(facts, cohort, months);
            let selection =
                birth_cohort_selection(facts, indicator, cohort, months, reference_year);
            let (rows, total) = selection.tabulate(facts, by);
            let plan = publication_plan(context, indicator, cohort, months);
            let incomplete = before(facts, last_birthday(cohort, months));
            bands = selection_bands(context, &selection, &plan);
            (
                rows,
                total,
                reference_year,
                incomplete,
                by.map(Breakdown::column),
                plan,
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
            let of_sex = |group: u32| sex_matches(indicator, &facts.groups[group as usize]);
            let selection = Selection {
                numerators: living(
                    doses
                        .iter()
                        .filter(|row| row.year == cohort && row.birth_year <= oldest_birth_year)
                        .filter(|row| of_sex(row.group))
                        .map(|row| (row.group, row.persons)),
                    // The living on the season's 1 January: not those who died before it.
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
                        .filter(|(_, row)| of_sex(row.group))
                        .map(|(_, row)| (row.group, row.persons)),
                ),
                denominators: facts
                    .population
                    .iter()
                    .filter(|row| {
                        Some(row.reference_year) == reference_year
                            && row.birth_year <= oldest_birth_year
                    })
                    .filter(|row| of_sex(row.group))
                    .map(|row| (row.group, row.persons))
                    .collect(),
            };
            let (rows, total) = selection.tabulate(facts, by);
            let plan = Arc::new(selection.plan(facts, context.rule, &context.order_key));
            let incomplete = before(facts, days_from_civil(cohort + 1, 8, 31));
            bands = selection_bands(context, &selection, &plan);
            (
                rows,
                total,
                reference_year,
                incomplete,
                by.map(Breakdown::column),
                plan,
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
            let plan = Arc::new(flat_plan(context.rule, &context.order_key, &rows, &total));
            let incomplete = before(facts, days_from_civil(cohort, 12, 31));
            (
                rows,
                total,
                reference_year,
                incomplete,
                Some("age_band"),
                plan,
            )
        }
    };
    let withheld = |key: &Key| match (indicator.kind, by) {
        (Kind::AgeBand, _) => plan.band_withheld(key),
        (_, by) => plan.withheld(by, key),
    };
    let (mut rows, total) = publish_planned(
        column,
        &rows,
        &total,
        &place,
        withheld,
        plan.national,
        |cell, withheld| coverage_figures(cell, withheld, incomplete),
    );
    attach_bands(&mut rows, by, &bands);
    Ok(CoverageAnswer {
        header,
        cohort,
        cohort_last: None,
        by,
        season: place.season,
        population_source: population_source(reference_year),
        rows,
        total,
    })
}

/// Bands of withheld cells by breakdown and key, as shares.
pub(super) type Bands = std::collections::BTreeMap<(Breakdown, Key), (f64, f64)>;

/// The bands of the withheld cells of `selection`'s publication under `plan` (see
/// [`super::bands`]).
pub(super) fn selection_bands(context: &Context, selection: &Selection, plan: &Plan) -> Bands {
    let mut hierarchy = selection.hierarchy(context.facts, context.rule, &context.order_key);
    hierarchy.impose(plan);
    hierarchy.bands()
}

/// Sets the band of every withheld row that has one.
fn attach_bands(rows: &mut [Row<CoverageFigures>], by: Option<Breakdown>, bands: &Bands) {
    let Some(by) = by else { return };
    for row in rows.iter_mut().filter(|row| row.figures.suppressed) {
        let key = row.group.as_ref().and_then(|group| group.value.clone());
        if let Some(&(low, high)) = bands.get(&(by, key)) {
            row.figures.band_low = Some(low);
            row.figures.band_high = Some(high);
        }
    }
}

/// Coverage of consecutive birth cohorts pooled: each year's vaccinated over its own
/// population, summed; withheld cells carry the band the published cells imply (see
/// [`super::pooled`]).
fn pooled_answer(
    context: &Context,
    indicator: &Indicator,
    span: CohortSpan,
    age_months: Option<u32>,
    by: Option<Breakdown>,
) -> Result<CoverageAnswer, QueryError> {
    if indicator.kind != Kind::BirthCohort {
        return Err(QueryError::Invalid(format!(
            "{} is not a birth-cohort indicator; only birth cohorts are pooled (cohort=YEAR)",
            indicator.name
        )));
    }
    let facts = context.facts;
    let mut header = context.header(indicator);
    let months = answer_months(indicator, age_months)?;
    header.definition.age_months = Some(months);
    let PooledPlan {
        plan,
        selection,
        reference_years,
        bands,
    } = pooled_plan(context, indicator, span, months);
    let (cells, total_cell) = selection.tabulate(facts, by);
    let incomplete = before(facts, last_birthday(span.last, months));
    let place = Place::cohort(span.first);
    let (mut rows, mut total) = publish_planned(
        by.map(Breakdown::column),
        &cells,
        &total_cell,
        &place,
        |key| plan.withheld(by, key),
        plan.national,
        |cell, withheld| coverage_figures(cell, withheld, incomplete),
    );
    for row in rows.iter_mut().chain(total.as_mut()) {
        row.cohort_last = Some(span.last);
    }
    let bands: Bands = bands
        .into_iter()
        .filter_map(|((by, key), band)| Some(((by?, key), band)))
        .collect();
    attach_bands(&mut rows, by, &bands);
    let mut sources: Vec<String> = Vec::new();
    for source in reference_years.into_iter().filter_map(population_source) {
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    Ok(CoverageAnswer {
        header,
        cohort: span.first,
        cohort_last: Some(span.last),
        by,
        season: None,
        population_source: (!sources.is_empty()).then(|| sources.join("; ")),
        rows,
        total,
    })
}
