//! From counts to published rows: cells summed per breakdown value, primary and secondary
//! suppression, and the figures of a coverage cell. Shared by every coverage answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::answer::{CoverageFigures, GroupValue, Header, Row};
use super::catalogue::{Catalogue, Indicator};
use super::facts::Facts;
use super::plan::Plan;
use crate::answer_cache::TableVersions;
use crate::disclosure::{round4, Cell, Suppression};

/// What one answer is computed from.
pub(super) struct Context<'a> {
    pub facts: &'a Facts,
    pub versions: &'a TableVersions,
    pub rule: Suppression,
    /// The key of the complement order (see [`super::plan`]).
    pub order_key: [u8; 32],
    /// The indicators whose publications are linked (doses of one antigen).
    pub catalogue: &'a Catalogue,
    /// Plans already made for this answer (the `--all` table asks for each many times).
    pub plans: PlanCache,
}

/// Publication plans by (indicator, cohort, age in months).
pub(super) type PlanCache = Mutex<HashMap<(String, i32, u32), Arc<Plan>>>;

impl Context<'_> {
    /// The fields every answer about `indicator` starts with.
    pub fn header(&self, indicator: &Indicator) -> Header {
        Header {
            definition: indicator.into(),
            data_until: self.facts.data_until.clone(),
            table_versions: self.versions.clone(),
            suppression_threshold: self.rule.threshold,
        }
    }
}

/// A key of an answer's rows: the breakdown value, `None` for persons without one.
pub(super) type Key = Option<String>;

/// Named keys first, in name order; the key of persons without a value last.
pub(super) fn key_order(a: &Key, b: &Key) -> std::cmp::Ordering {
    (a.is_none(), a).cmp(&(b.is_none(), b))
}

/// Sums numerators and denominators per key. A key (and the total) has a denominator when
/// the population has at least one row for it: a cohort the population does not count is
/// `no_denominator`, not a denominator of 0.
pub(super) fn tabulate(
    numerators: impl IntoIterator<Item = (Key, u64)>,
    denominators: impl IntoIterator<Item = (Key, u64)>,
) -> (Vec<(Key, Cell)>, Cell) {
    let mut cells: BTreeMap<Key, Cell> = BTreeMap::new();
    let mut total = Cell::new(0, None);
    for (key, persons) in numerators {
        cells.entry(key).or_default().numerator += persons;
        total.numerator += persons;
    }
    for (key, persons) in denominators {
        let cell = cells.entry(key).or_default();
        cell.denominator = Some(cell.denominator.unwrap_or(0) + persons);
        total.denominator = Some(total.denominator.unwrap_or(0) + persons);
    }
    let mut rows: Vec<(Key, Cell)> = cells.into_iter().collect();
    rows.sort_by(|(a, _), (b, _)| key_order(a, b));
    (rows, total)
}

/// The published figures of a coverage cell.
pub(super) fn coverage_figures(cell: &Cell, withheld: bool, incomplete: bool) -> CoverageFigures {
    let mut flags = Vec::new();
    if cell.denominator.is_none() {
        flags.push("no_denominator");
    }
    if !withheld && cell.exceeds() {
        flags.push("numerator_exceeds_denominator");
    }
    if incomplete {
        flags.push("incomplete_follow_up");
    }
    if withheld {
        return CoverageFigures {
            numerator: None,
            denominator: None,
            coverage: None,
            ci_low: None,
            ci_high: None,
            suppressed: true,
            flags,
            band_low: None,
            band_high: None,
        };
    }
    let interval = cell.wilson();
    CoverageFigures {
        numerator: Some(cell.numerator),
        denominator: cell.denominator,
        coverage: cell.rate().map(round4),
        ci_low: interval.map(|(low, _)| round4(low)),
        ci_high: interval.map(|(_, high)| round4(high)),
        suppressed: false,
        flags,
        band_low: None,
        band_high: None,
    }
}

/// Where an answer's rows are: their cohort and, for seasonal answers, the season.
#[derive(Clone)]
pub(super) struct Place {
    pub cohort: i32,
    pub season: Option<String>,
}

impl Place {
    pub fn cohort(cohort: i32) -> Place {
        Place {
            cohort,
            season: None,
        }
    }

    pub fn row<F>(&self, group: Option<GroupValue>, figures: F) -> Row<F> {
        Row {
            cohort: self.cohort,
            cohort_last: None,
            season: self.season.clone(),
            age_months: None,
            group,
            figures,
        }
    }
}

/// Rows (each at `place` with its breakdown value in `column`) and, with a breakdown, the
/// total, withheld where the publication plan says so (see [`super::plan`]).
pub(super) fn publish_planned<F>(
    column: Option<&'static str>,
    rows: &[(Key, Cell)],
    total: &Cell,
    place: &Place,
    withheld: impl Fn(&Key) -> bool,
    total_withheld: bool,
    figures: impl Fn(&Cell, bool) -> F,
) -> (Vec<Row<F>>, Option<Row<F>>) {
    match column {
        None => (vec![place.row(None, figures(total, total_withheld))], None),
        Some(column) => {
            let published = rows
                .iter()
                .map(|(key, cell)| {
                    let group = GroupValue {
                        column,
                        value: key.clone(),
                    };
                    place.row(Some(group), figures(cell, withheld(key)))
                })
                .collect();
            let total_row = place.row(None, figures(total, total_withheld));
            (published, Some(total_row))
        }
    }
}
