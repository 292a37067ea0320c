//! The whole indicator table (`vaxlake coverage --all`: every indicator × cohort ×
//! breakdown as flat rows) and its flagged cells (`GET /api/coverage/flags`).

use super::answer::{
    definition_versions, CoverageAnswer, FlaggedRow, FlagsAnswer, TableAnswer, TableRow,
    TABLE_COLUMNS,
};
use super::catalogue::{Catalogue, DoseRule, Indicator, Kind};
use super::cohort::coverage_answer;
use super::facts::Facts;
use super::publish::Context;
use super::question::Breakdown;
use super::select::{latest_reference_year, sex_matches};
use crate::dates::{civil_from_days, parse_iso};
use crate::output::Provenance;
use crate::QueryError;

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

/// Calls `visit` with every row of the `--all` table, in table order, beside its indicator
/// and the answer it comes from.
fn table_rows(
    context: &Context,
    catalogue: &Catalogue,
    mut visit: impl FnMut(&Indicator, &CoverageAnswer, TableRow),
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
                let answer = coverage_answer(context, indicator, cohort.into(), None, by)?;
                let by_name = match (indicator.kind, by) {
                    (Kind::AgeBand, _) => "age_band",
                    (_, None) => "national",
                    (_, Some(by)) => by.column(),
                };
                for row in &answer.rows {
                    let figures = &row.figures;
                    let group = row
                        .group
                        .as_ref()
                        .and_then(|group| group.value.clone())
                        .unwrap_or_default();
                    let table_row = TableRow {
                        indicator: indicator.name.clone(),
                        cohort,
                        by: by_name,
                        group,
                        numerator: figures.numerator,
                        denominator: figures.denominator,
                        coverage: figures.coverage,
                        ci_low: figures.ci_low,
                        ci_high: figures.ci_high,
                        suppressed: figures.suppressed,
                        flags: figures.flags.join(";"),
                    };
                    visit(indicator, &answer, table_row);
                }
            }
        }
    }
    Ok(())
}

pub(super) fn table_answer(
    context: &Context,
    catalogue: &Catalogue,
) -> Result<TableAnswer, QueryError> {
    let mut rows = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut definitions: Vec<(String, u32)> = Vec::new();
    table_rows(context, catalogue, |indicator, answer, row| {
        if let Some(source) = &answer.population_source {
            if !sources.contains(source) {
                sources.push(source.clone());
            }
        }
        let definition = (indicator.name.clone(), indicator.definition_version);
        if !definitions.contains(&definition) {
            definitions.push(definition);
        }
        rows.push(row);
    })?;
    let provenance = Provenance {
        population_source: (!sources.is_empty()).then(|| sources.join("; ")),
        data_until: context.facts.data_until.clone(),
        definition_version: definition_versions(
            definitions
                .iter()
                .map(|(name, version)| (name.as_str(), *version)),
        ),
        table_versions: Some(context.versions.clone()),
    };
    Ok(TableAnswer {
        columns: TABLE_COLUMNS,
        rows,
        provenance,
    })
}

/// The published cells of the `--all` table whose numerator exceeds their denominator, each
/// with its indicator's definition version and its population source, under the provenance
/// every coverage answer carries (`population_source` is set per request by
/// [`super::CoverageEngine::flags`]).
pub(super) fn flags_answer(
    context: &Context,
    catalogue: &Catalogue,
) -> Result<FlagsAnswer, QueryError> {
    let mut rows = Vec::new();
    table_rows(context, catalogue, |indicator, answer, row| {
        let flagged = !row.suppressed
            && row
                .flags
                .split(';')
                .any(|flag| flag == "numerator_exceeds_denominator");
        if flagged {
            rows.push(FlaggedRow {
                row,
                definition_version: indicator.definition_version,
                population_source: answer.population_source.clone(),
            });
        }
    })?;
    let mut columns: Vec<&'static str> = TABLE_COLUMNS.to_vec();
    columns.extend(["definition_version", "population_source"]);
    Ok(FlagsAnswer {
        columns,
        data_until: context.facts.data_until.clone(),
        table_versions: context.versions.clone(),
        suppression_threshold: context.rule.threshold,
        population_source: None,
        rows,
    })
}
