//! The disclosure audit of the invalid-doses answer, as a statistical office runs it: for
//! every withheld cell, the smallest and largest count consistent with everything the
//! answer publishes (its published cells, each antigen's published total, counts never
//! below 0, and, where the outsider knows that antigens come in one vaccine, that their
//! counts are equal). The range must be at least the threshold.
//!
//! Written apart from the plan: it knows nothing of flows or orders, only the linear
//! programme (`microlp`, as in [`super::audit`]).

use std::collections::BTreeMap;

use microlp::{ComparisonOp, Error, OptimizationDirection, Problem};

use super::invalid_doses::{counts, invalid_doses_answer, InvalidDosesAnswer};
use crate::answer_cache::TableVersions;
use crate::disclosure::Suppression;

/// The range (max − min) of every withheld cell of `answer`, keyed by (antigen, reason);
/// `f64::INFINITY` when nothing bounds it above. The programme reads published figures
/// alone. `linked` lists groups of antigens the outsider knows to have equal counts, reason
/// by reason.
fn ranges(answer: &InvalidDosesAnswer, linked: &[&[&str]]) -> BTreeMap<(String, String), f64> {
    let cells: Vec<(&str, &str, Option<u64>)> = answer
        .rows
        .iter()
        .map(|row| (row.antigen.as_str(), row.reason.as_str(), row.doses))
        .collect();
    let solve = |target: usize, direction| -> f64 {
        let mut problem = Problem::new(direction);
        let vars: Vec<_> = cells
            .iter()
            .enumerate()
            .map(|(index, (_, _, doses))| {
                let objective = if index == target { 1.0 } else { 0.0 };
                match doses {
                    Some(doses) => problem.add_var(objective, (*doses as f64, *doses as f64)),
                    None => problem.add_var(objective, (0.0, f64::INFINITY)),
                }
            })
            .collect();
        for total in &answer.totals {
            if let Some(doses) = total.doses {
                let terms: Vec<_> = cells
                    .iter()
                    .zip(&vars)
                    .filter(|((antigen, _, _), _)| *antigen == total.antigen)
                    .map(|(_, var)| (*var, 1.0))
                    .collect();
                problem.add_constraint(terms.as_slice(), ComparisonOp::Eq, doses as f64);
            }
        }
        for group in linked {
            for pair in group.windows(2) {
                let index = |antigen: &str, reason: &str| {
                    cells
                        .iter()
                        .position(|(a, r, _)| *a == antigen && *r == reason)
                };
                for (_, reason, _) in cells.iter().filter(|(a, _, _)| *a == pair[0]) {
                    if let (Some(a), Some(b)) = (index(pair[0], reason), index(pair[1], reason)) {
                        problem.add_constraint(
                            [(vars[a], 1.0), (vars[b], -1.0)].as_slice(),
                            ComparisonOp::Eq,
                            0.0,
                        );
                    }
                }
            }
        }
        match problem.solve() {
            Ok(solution) => solution.objective(),
            Err(Error::Unbounded) => f64::INFINITY,
            Err(error) => panic!("{:?}: {error:?}", cells[target]),
        }
    };
    cells
        .iter()
        .enumerate()
        .filter(|(_, (_, _, doses))| doses.is_none())
        .map(|(index, (antigen, reason, _))| {
            let low = solve(index, OptimizationDirection::Minimize);
            let high = solve(index, OptimizationDirection::Maximize);
            ((antigen.to_string(), reason.to_string()), high - low)
        })
        .collect()
}

fn plan(table: &[(&str, &str, u64)], rule: Suppression, key: &[u8; 32]) -> InvalidDosesAnswer {
    invalid_doses_answer(rule, key, &counts(table), &TableVersions::new())
}

/// The answer as the endpoint made it before: only counts from 1 to threshold − 1 withheld,
/// beside the same totals.
fn primary_only(table: &[(&str, &str, u64)], rule: Suppression) -> InvalidDosesAnswer {
    let mut answer = plan(table, rule, &[0; 32]);
    for row in &mut answer.rows {
        let (_, _, doses) = table
            .iter()
            .find(|(antigen, reason, _)| row.antigen == *antigen && row.reason == *reason)
            .expect("every row comes from the table");
        row.suppressed = rule.is_small(*doses);
        row.doses = (!row.suppressed).then_some(*doses);
    }
    answer
}

/// A hand-made table (threshold 8): an antigen with one small reason, one with two small
/// reasons that together stay small, an antigen whose total is small, the three antigens of
/// MMR with equal counts, and one with nothing to withhold.
const TABLE: &[(&str, &str, u64)] = &[
    ("hpv", "interval_too_short", 4),
    ("hpv", "valid", 310),
    ("measles", "below_minimum_age", 3),
    ("measles", "interval_too_short", 10),
    ("measles", "valid", 120),
    ("mumps", "below_minimum_age", 3),
    ("mumps", "interval_too_short", 10),
    ("mumps", "valid", 120),
    ("pertussis", "interval_too_short", 9),
    ("pertussis", "valid", 40),
    ("rotavirus", "above_maximum_age", 2),
    ("rotavirus", "interval_too_short", 3),
    ("rotavirus", "valid", 50),
    ("rsv", "valid", 5),
    ("rubella", "below_minimum_age", 3),
    ("rubella", "interval_too_short", 10),
    ("rubella", "valid", 120),
];

const MMR: &[&str] = &["measles", "mumps", "rubella"];

#[test]
fn every_withheld_cell_spans_the_threshold() {
    let rule = Suppression::default();
    for key in [[1; 32], [2; 32], [3; 32], [4; 32]] {
        let answer = plan(TABLE, rule, &key);
        let ranges = ranges(&answer, &[MMR]);
        // hpv 4 + its complement; measles, mumps, rubella 3 + one; rotavirus 2, 3 + valid;
        // rsv 5 (its total withheld).
        assert_eq!(ranges.len(), 2 + 3 * 2 + 3 + 1, "{ranges:?}");
        for (cell, range) in &ranges {
            assert!(*range >= rule.threshold as f64 - 1e-6, "{cell:?}: {range}");
        }
    }
}

#[test]
fn the_primary_rule_alone_fails_the_audit() {
    // Negative control: with only the primary cells withheld beside the totals, hpv's 4 is
    // 314 − 310, measles' 3 is 133 − 120 − 10 (range 0), and rotavirus' 2 and 3 lie in
    // 0..5 (55 − 50 = 5 between them: a range of 5 < 8).
    let rule = Suppression::default();
    let ranges = ranges(&primary_only(TABLE, rule), &[MMR]);
    let range = |antigen: &str, reason: &str| ranges[&(antigen.to_string(), reason.to_string())];
    assert!(range("hpv", "interval_too_short").abs() < 1e-6);
    assert!(range("measles", "below_minimum_age").abs() < 1e-6);
    assert!((range("rotavirus", "above_maximum_age") - 5.0).abs() < 1e-6);
    assert!((range("rotavirus", "interval_too_short") - 5.0).abs() < 1e-6);
    assert!(range("rsv", "valid").is_infinite());
}

#[test]
fn random_tables_pass_the_audit() {
    // Many small tables from a fixed generator: counts 0 to 30, small ones frequent, some
    // antigens linked (equal counts), thresholds 3 to 10, several keys.
    let reasons = [
        "above_maximum_age",
        "below_minimum_age",
        "interval_too_short",
        "valid",
    ];
    let antigens = ["a", "b", "c", "d"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % bound
    };
    let (mut audited, mut primary_failures) = (0, 0);
    for round in 0..200u32 {
        let rule = Suppression {
            threshold: 3 + next(8),
        };
        let mut table: Vec<(&str, &str, u64)> = Vec::new();
        let mut first: Vec<u64> = Vec::new();
        for (a, antigen) in antigens.iter().enumerate() {
            for (r, reason) in reasons.iter().enumerate() {
                // b repeats a's counts: the two are one vaccine.
                let doses = if a == 1 {
                    first[r]
                } else if next(3) == 0 {
                    next(30)
                } else {
                    next(9)
                };
                if a == 0 {
                    first.push(doses);
                }
                if doses > 0 {
                    table.push((antigen, reason, doses));
                }
            }
        }
        let key = [round as u8; 32];
        let answer = plan(&table, rule, &key);
        for (cell, range) in ranges(&answer, &[&["a", "b"]]) {
            assert!(
                range >= rule.threshold as f64 - 1e-6,
                "round {round}, threshold {}: {cell:?} spans {range} in {table:?}",
                rule.threshold
            );
            audited += 1;
        }
        let narrow = |(_, range): (_, f64)| range < rule.threshold as f64 - 1e-6;
        primary_failures += ranges(&primary_only(&table, rule), &[&["a", "b"]])
            .into_iter()
            .filter(|cell| narrow(cell.clone()))
            .count();
    }
    // The tables exercise the rule: many withheld cells, and the primary rule alone would
    // have let many be narrowed.
    assert!(audited > 1000, "{audited}");
    assert!(primary_failures > 100, "{primary_failures}");
}
