//! Dose days by antigen and validity (`GET /api/coverage/invalid_doses`, the data-quality
//! dashboard), protected as one table (docs/coverage.md, "Invalid doses: disclosure
//! control").
//!
//! **Structure.** For each antigen, the dose days of each reason (`valid` and every invalid
//! reason) add up to the antigen's dose days. The answer publishes that total (`totals`),
//! and an outsider may know it anyway (doses administered by vaccine are routine
//! statistics), so each antigen is a flat table with a published total: the plan of
//! [`super::plan::flat_plan`], the one age-band coverage uses. No sum across antigens is
//! published (one MMR dose is a measles, a mumps and a rubella day: such a sum counts
//! nothing), so the antigens are separate tables.
//!
//! **Room.** A count of doses has no denominator: the auditor bounds a withheld count below
//! by 0 and above only by what the published total leaves. With the total and the other
//! cells published, the withheld cells of an antigen sum to a known `S`, and each can lie
//! anywhere in 0..S: its range is exactly `S` wide. So the withheld cells of an antigen must
//! hold at least the threshold together. The plan's cells carry no denominator, which gives
//! them unbounded room up and their count as room down; its width for a withheld cell is
//! then its own count plus the others' — `S`, the auditor's range.
//!
//! **Order.** Complements are taken in the keyed order of [`super::plan`], keyed by the
//! reason's name alone: antigens with the same counts (those of one combination vaccine)
//! withhold the same rows, so knowing that measles and mumps days go together gives
//! nothing back.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::plan::flat_plan;
use super::publish::Key;
use crate::answer_cache::TableVersions;
use crate::disclosure::{Cell, Suppression};

/// The reason of the valid dose days, shown beside the invalid ones for scale.
pub const VALID: &str = "valid";

/// The dose days of one antigen and reason, before disclosure control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDoseCount {
    pub antigen: String,
    /// An invalid reason or [`VALID`].
    pub reason: String,
    pub doses: u64,
}

/// One published cell: `doses` is null when withheld.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvalidDosesRow {
    pub antigen: String,
    pub reason: String,
    pub doses: Option<u64>,
    pub suppressed: bool,
}

/// One antigen's dose days, all reasons: the total its rows add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvalidDosesTotal {
    pub antigen: String,
    pub doses: Option<u64>,
    pub suppressed: bool,
}

/// What `GET /api/coverage/invalid_doses` sends. A pair of antigen and reason without a row
/// has no dose day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvalidDosesAnswer {
    /// Every invalid reason there is (`valid` besides them in `rows`).
    pub reasons: Vec<&'static str>,
    pub suppression_threshold: u64,
    pub table_versions: TableVersions,
    pub rows: Vec<InvalidDosesRow>,
    pub totals: Vec<InvalidDosesTotal>,
}

/// The published table: per antigen, primary suppression of its cells and its total, then
/// complements until the withheld cells of each antigen hold at least the threshold together
/// (a withheld total withholds the antigen's every cell).
pub fn invalid_doses_answer(
    rule: Suppression,
    order_key: &[u8; 32],
    counts: &[InvalidDoseCount],
    versions: &TableVersions,
) -> InvalidDosesAnswer {
    let mut antigens: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for count in counts {
        *antigens
            .entry(&count.antigen)
            .or_default()
            .entry(&count.reason)
            .or_default() += count.doses;
    }
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for (antigen, reasons) in antigens {
        let cells: Vec<(Key, Cell)> = reasons
            .iter()
            .map(|(reason, doses)| (Some(reason.to_string()), Cell::new(*doses, None)))
            .collect();
        let total = Cell::new(reasons.values().sum(), None);
        let plan = flat_plan(rule, order_key, &cells, &total);
        for (key, cell) in &cells {
            let suppressed = plan.band_withheld(key);
            rows.push(InvalidDosesRow {
                antigen: antigen.to_string(),
                reason: key.clone().unwrap_or_default(),
                doses: (!suppressed).then_some(cell.numerator),
                suppressed,
            });
        }
        totals.push(InvalidDosesTotal {
            antigen: antigen.to_string(),
            doses: (!plan.national).then_some(total.numerator),
            suppressed: plan.national,
        });
    }
    InvalidDosesAnswer {
        reasons: vaxlake_catalog::validity::InvalidReason::ALL
            .iter()
            .map(|reason| reason.as_str())
            .collect(),
        suppression_threshold: rule.threshold,
        table_versions: versions.clone(),
        rows,
        totals,
    }
}

/// Counts from (antigen, reason, dose days) written by hand (tests).
#[cfg(test)]
pub(super) fn counts(table: &[(&str, &str, u64)]) -> Vec<InvalidDoseCount> {
    table
        .iter()
        .map(|(antigen, reason, doses)| InvalidDoseCount {
            antigen: antigen.to_string(),
            reason: reason.to_string(),
            doses: *doses,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn answer(table: &[(&str, &str, u64)], key: &[u8; 32]) -> InvalidDosesAnswer {
        invalid_doses_answer(
            Suppression::default(),
            key,
            &counts(table),
            &TableVersions::new(),
        )
    }

    fn row<'a>(answer: &'a InvalidDosesAnswer, antigen: &str, reason: &str) -> &'a InvalidDosesRow {
        answer
            .rows
            .iter()
            .find(|row| row.antigen == antigen && row.reason == reason)
            .unwrap()
    }

    fn total(answer: &InvalidDosesAnswer, antigen: &str) -> Option<u64> {
        let total = answer.totals.iter().find(|t| t.antigen == antigen).unwrap();
        assert_eq!(total.suppressed, total.doses.is_none());
        total.doses
    }

    /// What the endpoint withheld before: only the counts from 1 to threshold − 1.
    fn primary_only(table: &[(&str, &str, u64)]) -> Vec<bool> {
        let rule = Suppression::default();
        table
            .iter()
            .map(|(_, _, doses)| rule.is_small(*doses))
            .collect()
    }

    #[test]
    fn a_withheld_count_is_not_the_total_minus_the_published_ones() {
        // Threshold 8. Measles: 120 valid days, 3 MCV0 days (below the minimum age): 123.
        // The primary rule alone withheld the 3 and published 120 beside the total 123
        // (published now, and known anyway as the MMR doses given): 123 − 120 = 3 exactly.
        // Now the only other cell, valid, goes too: the two withheld cells hold 123 together
        // and each lies anywhere in 0..123.
        // Rotavirus: 50 valid, 2 above the maximum age, 3 too soon (55). Primary withholds
        // 2 and 3, which hold 5 < 8 together: 55 − 50 = 5 put each in 0..5 (a range of 5).
        // Now valid goes too: 55 held together, each in 0..55.
        // Pertussis: 40 valid, 9 too soon: nothing to withhold, total 49 published.
        // RSV: 5 valid days in all: the total fails the rule itself, so everything goes.
        let table = [
            ("measles", "below_minimum_age", 3),
            ("measles", "valid", 120),
            ("pertussis", "interval_too_short", 9),
            ("pertussis", "valid", 40),
            ("rotavirus", "above_maximum_age", 2),
            ("rotavirus", "interval_too_short", 3),
            ("rotavirus", "valid", 50),
            ("rsv", "valid", 5),
        ];
        assert_eq!(
            primary_only(&table),
            [true, false, false, false, true, true, false, true]
        );
        let published = answer(&table, &KEY);
        let withheld: Vec<bool> = published.rows.iter().map(|row| row.suppressed).collect();
        assert_eq!(
            withheld,
            [true, true, false, false, true, true, true, true],
            "{published:?}"
        );
        assert_eq!(total(&published, "measles"), Some(123));
        assert_eq!(total(&published, "pertussis"), Some(49));
        assert_eq!(total(&published, "rotavirus"), Some(55));
        assert_eq!(total(&published, "rsv"), None);
        assert_eq!(row(&published, "pertussis", "valid").doses, Some(40));
        assert_eq!(row(&published, "measles", "valid").doses, None);
        assert_eq!(
            published.reasons,
            [
                "below_minimum_age",
                "above_maximum_age",
                "interval_too_short"
            ]
        );
    }

    #[test]
    fn one_complement_of_any_key_is_enough_and_the_same_for_linked_antigens() {
        // Measles, mumps and rubella from MMR only: the same days. 120 valid, 3 below the
        // minimum age (primary), 10 too soon; total 133. Primary only: 133 − 120 − 10 = 3.
        // Either published cell is a sufficient complement (3 + 120 or 3 + 10 ≥ 8), so
        // exactly one goes, whichever comes first in the keyed order of the reasons — the
        // same one for the three antigens, whatever the key.
        let mut table = Vec::new();
        for antigen in ["measles", "mumps", "rubella"] {
            table.push((antigen, "below_minimum_age", 3));
            table.push((antigen, "interval_too_short", 10));
            table.push((antigen, "valid", 120));
        }
        let mut complements = std::collections::BTreeSet::new();
        for seed in 0..16u8 {
            let published = answer(&table, &[seed; 32]);
            let pattern = |antigen: &str| -> Vec<bool> {
                ["below_minimum_age", "interval_too_short", "valid"]
                    .iter()
                    .map(|reason| row(&published, antigen, reason).suppressed)
                    .collect()
            };
            let measles = pattern("measles");
            assert_eq!(measles.iter().filter(|&&hidden| hidden).count(), 2);
            assert!(measles[0], "{measles:?}");
            assert_eq!(pattern("mumps"), measles);
            assert_eq!(pattern("rubella"), measles);
            assert_eq!(total(&published, "mumps"), Some(133));
            complements.insert(measles);
        }
        // Both complements occur over the keys: the choice is the key's, not the counts'.
        assert_eq!(complements.len(), 2, "{complements:?}");
    }

    #[test]
    fn a_threshold_of_one_publishes_everything() {
        let rule = Suppression { threshold: 1 };
        let published = invalid_doses_answer(
            rule,
            &KEY,
            &counts(&[("hpv", "interval_too_short", 1), ("hpv", "valid", 2)]),
            &TableVersions::new(),
        );
        assert!(published.rows.iter().all(|row| !row.suppressed));
        assert_eq!(total(&published, "hpv"), Some(3));
    }
}
