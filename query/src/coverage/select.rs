//! Which counts of the [`Facts`] an answer sums: persons of an indicator's sex, a cohort's
//! doses and population, the reference year of a denominator, and whether follow-up is
//! complete.

use super::catalogue::{Indicator, Kind};
use super::facts::{Facts, Group};
use super::publish::Key;
use super::question::Breakdown;
use crate::dates::{days_from_civil, parse_iso};
use crate::population::choose_reference_year;
use crate::QueryError;

pub(super) fn sex_matches(indicator: &Indicator, group: &Group) -> bool {
    indicator
        .sex
        .as_deref()
        .is_none_or(|sex| group.sex.as_deref() == Some(sex))
}

pub(super) fn group_key(by: Option<Breakdown>, group: &Group) -> Key {
    by.and_then(|by| by.key(group))
}

/// Counts given as `(group index, persons)`, kept when the group is of the indicator's sex and
/// keyed by the breakdown `by`: how every numerator and denominator reaches [`tabulate`].
///
/// [`tabulate`]: super::publish::tabulate
pub(super) fn keyed_counts<'a>(
    facts: &'a Facts,
    indicator: &'a Indicator,
    by: Option<Breakdown>,
    counts: impl Iterator<Item = (u32, u64)> + 'a,
) -> impl Iterator<Item = (Key, u64)> + 'a {
    counts
        .map(move |(group, persons)| (&facts.groups[group as usize], persons))
        .filter(move |(group, _)| sex_matches(indicator, group))
        .map(move |(group, persons)| (group_key(by, group), persons))
}

/// The newest reference year (the last cohort the `--all` table lists).
pub(super) fn latest_reference_year(facts: &Facts) -> Option<i32> {
    facts.reference_years.last().copied()
}

/// The reference year nearest to `target` (see [`choose_reference_year`]).
pub(super) fn reference_year_for(facts: &Facts, target: i32) -> Option<i32> {
    choose_reference_year(facts.reference_years.iter().copied(), target)
}

/// The denominator year of cohort `cohort` at `months` months (CONTRACTS.md): the reference
/// year nearest to the 1 January after the whole cohort has reached that age, i.e. after
/// the youngest of it (born 31 December) has. DTP3 by 12 months of cohort 2022: 1 January
/// 2024; MCV2 by 24 months: 1 January 2025.
pub(super) fn cohort_reference_year(facts: &Facts, cohort: i32, months: u32) -> Option<i32> {
    let reached = crate::dates::civil_from_days(last_birthday(cohort, months)).0;
    reference_year_for(facts, reached + 1)
}

/// Whether the warehouse's newest dose is before `day`: some of the population could not
/// yet have been vaccinated, so the figure will still rise.
pub(super) fn before(facts: &Facts, day: i32) -> bool {
    match facts.data_until.as_deref().and_then(parse_iso) {
        Some(until) => until < day,
        None => true,
    }
}

/// The day the youngest of cohort `year` turns `months` months old: the last day of the
/// month `months` after December of `year`.
pub(super) fn last_birthday(year: i32, months: u32) -> i32 {
    let index = year as i64 * 12 + 12 + i64::from(months);
    let (next_year, next_month) = ((index / 12) as i32, (index % 12) as u32 + 1);
    days_from_civil(next_year, next_month, 1) - 1
}

pub(super) fn season_label(year: i32) -> String {
    format!("{year}/{:02}", (year + 1).rem_euclid(100))
}

pub(super) fn birth_cohort_only(indicator: &Indicator, what: &str) -> Result<(), QueryError> {
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
pub(super) fn cohort_doses<'a>(
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

/// The cohort's denominator per key in `reference_year` (from [`cohort_reference_year`],
/// which the caller has already found for the answer's provenance).
pub(super) fn cohort_population(
    facts: &Facts,
    indicator: &Indicator,
    cohort: i32,
    by: Option<Breakdown>,
    reference_year: Option<i32>,
) -> Vec<(Key, u64)> {
    let population = facts
        .population
        .iter()
        .filter(|row| Some(row.reference_year) == reference_year && row.birth_year == cohort)
        .map(|row| (row.group, row.persons));
    keyed_counts(facts, indicator, by, population).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::civil_from_days;

    #[test]
    fn the_youngest_of_a_cohort_reaches_an_age_at_the_end_of_a_month() {
        assert_eq!(civil_from_days(last_birthday(2023, 12)), (2024, 12, 31));
        assert_eq!(civil_from_days(last_birthday(2023, 2)), (2024, 2, 29));
        assert_eq!(civil_from_days(last_birthday(2023, 14)), (2025, 2, 28));
    }

    #[test]
    fn a_cohort_denominator_is_the_year_after_it_reaches_the_age() {
        let facts = Facts {
            reference_years: vec![2023, 2024, 2026],
            ..Facts::default()
        };
        // Cohort 2022 has all turned 12 months on 31 December 2023: 1 January 2024.
        assert_eq!(cohort_reference_year(&facts, 2022, 12), Some(2024));
        // By 24 months: 1 January 2025, one year from 2024 and from 2026: the earlier.
        assert_eq!(cohort_reference_year(&facts, 2022, 24), Some(2024));
        // Cohort 2024 at 12 months: 1 January 2026, not the newest-but-one.
        assert_eq!(cohort_reference_year(&facts, 2024, 12), Some(2026));
        // Cohort 2010 at 15 years: 1 January 2026.
        assert_eq!(cohort_reference_year(&facts, 2010, 180), Some(2026));
        // Cohort 2020 at 12 months (1 January 2022): the nearest there is, 2023.
        assert_eq!(cohort_reference_year(&facts, 2020, 12), Some(2023));
    }

    #[test]
    fn seasons_are_labelled_like_surveillance_reports() {
        assert_eq!(season_label(2024), "2024/25");
        assert_eq!(season_label(1999), "1999/00");
    }
}
