//! Timeliness of a birth cohort's dose (`GET /api/coverage/timeliness`): the median age at
//! the dose and the share given by the schedule's age.

use std::collections::BTreeMap;

use super::answer::{GroupValue, TimelinessAnswer, TimelinessFigures};
use super::catalogue::Indicator;
use super::cohort::publication_plan;
use super::publish::{key_order, Context, Key, Place};
use super::question::TimelinessQuery;
use super::select::{before, birth_cohort_only, cohort_doses, group_key, last_birthday};
use crate::disclosure::{round4, Cell};
use crate::QueryError;

pub(super) fn timeliness_answer(
    context: &Context,
    indicator: &Indicator,
    query: &TimelinessQuery,
) -> Result<TimelinessAnswer, QueryError> {
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
    keyed.sort_by(|(a, _, _), (b, _, _)| key_order(a, b));
    let cells: Vec<Cell> = keyed.iter().map(|(_, cell, _)| *cell).collect();

    let total = cell_of(&national);
    let national_median = median(&national);
    let (own, own_total) = match by {
        Some(_) => context.rule.apply(&cells, Some(&total)),
        None => (Vec::new(), context.rule.apply(&[], Some(&total)).1),
    };
    // The vaccinated of a row bound its coverage numerator from above and the timely ones
    // from below: a row is withheld wherever the indicator's coverage publication withholds
    // it (docs/coverage.md, "Disclosure control"), besides its own suppression.
    let months = indicator.age_months.unwrap_or(12);
    let plan = publication_plan(context, indicator, query.cohort, months);
    let withheld: Vec<bool> = keyed
        .iter()
        .zip(&own)
        .map(|((key, _, _), own)| *own || plan.withheld(by, key))
        .collect();
    let total_withheld = own_total || plan.national;
    // The youngest of the cohort has not yet reached the indicator's age: children
    // vaccinated late are still to come, so the median age will rise and the timely share
    // fall. Flagged like coverage cells are.
    let incomplete = before(facts, last_birthday(query.cohort, months));
    let flags = || {
        if incomplete {
            vec!["incomplete_follow_up"]
        } else {
            Vec::new()
        }
    };
    let figures = |cell: &Cell, median: Option<f64>, withheld: bool| {
        let interval = cell.denominator.and(cell.wilson());
        TimelinessFigures {
            vaccinated: shown(withheld, Some(cell.denominator.unwrap_or(cell.numerator))),
            median_age_months: shown(withheld, median),
            timely: shown(withheld, schedule.map(|_| cell.numerator)),
            timely_share: shown(withheld, schedule.and(cell.rate()).map(round4)),
            ci_low: shown(withheld, interval.map(|(low, _)| round4(low))),
            ci_high: shown(withheld, interval.map(|(_, high)| round4(high))),
            suppressed: withheld,
            flags: flags(),
        }
    };
    let place = Place::cohort(query.cohort);
    let total_row = place.row(None, figures(&total, national_median, total_withheld));
    let (rows, total) = match by {
        None => (vec![total_row], None),
        Some(by) => (
            keyed
                .iter()
                .zip(&withheld)
                .map(|((key, cell, median), withheld)| {
                    let group = GroupValue {
                        column: by.column(),
                        value: key.clone(),
                    };
                    place.row(Some(group), figures(cell, *median, *withheld))
                })
                .collect(),
            Some(total_row),
        ),
    };
    Ok(TimelinessAnswer {
        header: context.header(indicator),
        cohort: query.cohort,
        by,
        rows,
        total,
    })
}

/// A figure, or none when its cell is withheld.
fn shown<T>(withheld: bool, value: Option<T>) -> Option<T> {
    value.filter(|_| !withheld)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_even_and_odd_counts() {
        let ages: BTreeMap<i32, u64> = [(2, 1), (3, 1), (5, 1)].into_iter().collect();
        assert_eq!(median(&ages), Some(3.0));
        let ages: BTreeMap<i32, u64> = [(2, 2), (4, 2)].into_iter().collect();
        assert_eq!(median(&ages), Some(3.0));
        assert_eq!(median(&BTreeMap::new()), None);
    }
}
