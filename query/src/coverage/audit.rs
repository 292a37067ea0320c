//! The disclosure audit a statistical office runs (τ-ARGUS style): collect everything the
//! coverage endpoints publish about one cohort — coverage by nothing, commune, canton and
//! sex for DTP3 and DTP1, dropout DTP1 → DTP3 by each breakdown, DTP3 timeliness by each
//! breakdown, the national DTP3 curve — and, for every withheld coverage cell, solve the
//! linear programme "smallest and largest numerator consistent with all of it". The range
//! must be at least the threshold (or the cell's whole denominator when that is smaller).
//!
//! The auditor knows what an outsider knows: every denominator (population statistics are
//! published, and they sit beside other indicators' numerators), which commune lies in which
//! canton, that a child with dose 3 had dose 1 (DTP3 ≤ DTP1 in every cell), that the
//! vaccinated by 12 months are among the ever vaccinated and include those vaccinated on
//! time, and that the curve never falls.
//!
//! Solver: `microlp`, a pure-Rust simplex (a fork of the archived `minilp`): it builds with
//! `cargo test` alone, with nothing to install, and the programmes here have a few hundred
//! variables at most. Counts are small integers; answers are compared with a 1e-6 margin.

use std::collections::BTreeMap;

use super::answer::{CoverageFigures, DropoutFigures, Row, TimelinessFigures};
use super::catalogue::{Catalogue, DoseRule};
use super::cohort::coverage_answer;
use super::curve::curve_answer;
use super::dropout::dropout_answer;
use super::facts::{AgeCount, Facts, Group, PopulationCount};
use super::lp_model::Model;
use super::publish::{Context, Key};
use super::question::{Breakdown, CurveQuery, DropoutQuery, TimelinessQuery};
use super::timeliness::timeliness_answer;
use crate::answer_cache::TableVersions;
use crate::disclosure::Suppression;

const COHORT: i32 = 2020;
const BREAKDOWNS: [Option<Breakdown>; 4] = [
    None,
    Some(Breakdown::Commune),
    Some(Breakdown::Canton),
    Some(Breakdown::Sex),
];

/// One commune of the hand-made cohort: its canton, children born (one half girls, the
/// boys the rest), with DTP1 by 12 months, with DTP3 by 12 months, and with DTP3 later.
struct Commune {
    name: &'static str,
    canton: &'static str,
    born: u64,
    dtp1: u64,
    dtp3: u64,
    late: u64,
}

/// Cohort 2020 (threshold 8). Kehlen (2 of 40 without DTP3) is the only commune of canton
/// Capellen that fails the rule; Vianden (6 children) is a canton of one tiny commune.
const COMMUNES: &[Commune] = &[
    Commune {
        name: "Kehlen",
        canton: "Capellen",
        born: 40,
        dtp1: 39,
        dtp3: 38,
        late: 1,
    },
    Commune {
        name: "Steinfort",
        canton: "Capellen",
        born: 50,
        dtp1: 48,
        dtp3: 40,
        late: 3,
    },
    Commune {
        name: "Mamer",
        canton: "Capellen",
        born: 60,
        dtp1: 58,
        dtp3: 50,
        late: 2,
    },
    Commune {
        name: "Clervaux",
        canton: "Clervaux",
        born: 45,
        dtp1: 44,
        dtp3: 36,
        late: 2,
    },
    Commune {
        name: "Troisvierges",
        canton: "Clervaux",
        born: 30,
        dtp1: 29,
        dtp3: 20,
        late: 1,
    },
    Commune {
        name: "Vianden",
        canton: "Vianden",
        born: 6,
        dtp1: 6,
        dtp3: 5,
        late: 0,
    },
    Commune {
        name: "Wiltz",
        canton: "Wiltz",
        born: 70,
        dtp1: 68,
        dtp3: 59,
        late: 4,
    },
    Commune {
        name: "Winseler",
        canton: "Wiltz",
        born: 36,
        dtp1: 35,
        dtp3: 27,
        late: 2,
    },
];

/// Splits `count` between girls (index 0, the smaller half) and boys.
fn halves(count: u64) -> [u64; 2] {
    [count / 2, count - count / 2]
}

/// The facts of [`COMMUNES`]: DTP1 at 2 months; DTP3 of the first half of each sex at 4
/// months (timely: schedule age 4), the rest at 7 months, the late ones at 14 months.
fn facts() -> Facts {
    let mut facts = Facts {
        data_until: Some("2023-06-30".into()),
        ..Facts::default()
    };
    let mut dtp1 = Vec::new();
    let mut dtp3 = Vec::new();
    for commune in COMMUNES {
        for (sex, index) in [("female", 0), ("male", 1)] {
            let group = facts.groups.len() as u32;
            facts.groups.push(Group {
                commune: Some(commune.name.into()),
                canton: Some(commune.canton.into()),
                sex: Some(sex.into()),
            });
            let count = |age_months, persons| AgeCount {
                cohort: COHORT,
                group,
                age_months,
                persons,
            };
            let third = halves(commune.dtp3)[index];
            dtp1.push(count(2, halves(commune.dtp1)[index]));
            dtp3.push(count(4, third / 2));
            dtp3.push(count(7, third - third / 2));
            dtp3.push(count(14, halves(commune.late)[index]));
            facts.population.push(PopulationCount {
                reference_year: 2021,
                birth_year: COHORT,
                group,
                persons: halves(commune.born)[index],
            });
        }
    }
    facts
        .cohort_doses
        .insert(("pertussis".into(), DoseRule::Nth(1)), dtp1);
    facts
        .cohort_doses
        .insert(("pertussis".into(), DoseRule::Nth(3)), dtp3);
    facts.reference_years = vec![2021];
    facts
}

/// One quantity (a numerator, an ever-vaccinated count, ...) in every cell of the hierarchy
/// national → cantons → communes and national → sexes, summed as the tables are.
struct Table {
    national: usize,
    cells: BTreeMap<(Option<Breakdown>, Key), usize>,
}

impl Table {
    fn new(model: &mut Model, name: &str) -> Table {
        let denominators = denominators();
        let mut cells = BTreeMap::new();
        let mut var = |model: &mut Model, by: Option<Breakdown>, key: Key| {
            let high = denominators[&(by, key.clone())] as f64;
            let id = model.var(format!("{name} {by:?} {key:?}"), high);
            cells.insert((by, key), id);
            id
        };
        let national = var(model, None, None);
        let mut cantons: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for commune in COMMUNES {
            let id = var(model, Some(Breakdown::Commune), Some(commune.name.into()));
            cantons.entry(commune.canton).or_default().push(id);
        }
        let mut canton_ids = Vec::new();
        for (canton, communes) in cantons {
            let id = var(model, Some(Breakdown::Canton), Some(canton.into()));
            model.sum(id, &communes);
            canton_ids.push(id);
        }
        model.sum(national, &canton_ids);
        let sexes: Vec<usize> = ["female", "male"]
            .iter()
            .map(|sex| var(model, Some(Breakdown::Sex), Some(sex.to_string())))
            .collect();
        model.sum(national, &sexes);
        Table { national, cells }
    }

    fn get(&self, by: Option<Breakdown>, key: &Key) -> usize {
        match by {
            None => self.national,
            Some(_) => self.cells[&(by, key.clone())],
        }
    }

    /// `self ≤ other` in every cell.
    fn below(&self, other: &Table, model: &mut Model) {
        for (key, &var) in &self.cells {
            model.less(var, other.cells[key]);
        }
    }
}

/// Every cell's denominator (public).
fn denominators() -> BTreeMap<(Option<Breakdown>, Key), u64> {
    let mut all: BTreeMap<(Option<Breakdown>, Key), u64> = BTreeMap::new();
    for commune in COMMUNES {
        let [girls, boys] = halves(commune.born);
        *all.entry((None, None)).or_default() += commune.born;
        *all.entry((Some(Breakdown::Commune), Some(commune.name.into())))
            .or_default() += commune.born;
        *all.entry((Some(Breakdown::Canton), Some(commune.canton.into())))
            .or_default() += commune.born;
        *all.entry((Some(Breakdown::Sex), Some("female".into())))
            .or_default() += girls;
        *all.entry((Some(Breakdown::Sex), Some("male".into())))
            .or_default() += boys;
    }
    all
}

fn key_of<F>(row: &Row<F>) -> Key {
    row.group.as_ref().and_then(|group| group.value.clone())
}

/// Fixes every published count of the rows of an answer broken down `by` (and its total).
fn publish<F>(
    model: &mut Model,
    by: Option<Breakdown>,
    rows: &[Row<F>],
    total: Option<&Row<F>>,
    mut fix: impl FnMut(&mut Model, Option<Breakdown>, &Key, &F),
) {
    for row in rows {
        fix(model, by, &key_of(row), &row.figures);
    }
    if let Some(total) = total {
        fix(model, None, &None, &total.figures);
    }
}

/// What the audit found: every withheld coverage cell with its range and required width.
struct Finding {
    cell: String,
    low: f64,
    high: f64,
    need: f64,
}

/// Publishes everything for cohort 2020 under `rule` and audits it. With `naive`, DTP3's
/// coverage rows are withheld by the rule before December 2026 instead (the negative
/// control: answers protected one by one).
/// Also returns how many bands were published (and audited) beside the withheld cells.
fn audit(rule: Suppression, naive: bool) -> (Vec<Finding>, usize) {
    let facts = facts();
    let catalogue = Catalogue::builtin().unwrap();
    let versions = TableVersions::new();
    let context = Context {
        facts: &facts,
        versions: &versions,
        rule,
        order_key: [3; 32],
        catalogue: &catalogue,
        plans: Default::default(),
    };
    let denominators = denominators();
    let mut bands = 0;
    let mut model = Model::default();
    let dtp1 = Table::new(&mut model, "DTP1");
    let dtp3 = Table::new(&mut model, "DTP3");
    let ever = Table::new(&mut model, "DTP3 ever");
    let timely = Table::new(&mut model, "DTP3 timely");
    dtp3.below(&dtp1, &mut model);
    dtp3.below(&ever, &mut model);
    timely.below(&dtp3, &mut model);
    for (table, indicator) in [
        (&dtp3, dtp1_or_3(&catalogue, 3)),
        (&dtp1, dtp1_or_3(&catalogue, 1)),
    ] {
        for by in BREAKDOWNS {
            let mut answer = coverage_answer(&context, indicator, COHORT.into(), None, by).unwrap();
            if naive && indicator.name == "DTP3" {
                naive_suppression(rule, &mut answer.rows, answer.total.as_mut());
            }
            publish(
                &mut model,
                by,
                &answer.rows,
                answer.total.as_ref(),
                |model, by, key, figures: &CoverageFigures| {
                    if let Some(numerator) = figures.numerator {
                        model.fix(table.get(by, key), numerator);
                    }
                    if let (Some(low), Some(high)) = (figures.band_low, figures.band_high) {
                        let denominator = denominators[&(by, key.clone())];
                        model.band(&[table.get(by, key)], low, high, denominator);
                        bands += 1;
                    }
                },
            );
        }
    }
    for by in BREAKDOWNS {
        let query = DropoutQuery {
            from: "DTP1".into(),
            to: "DTP3".into(),
            cohort: COHORT,
            age_months: None,
            by,
        };
        let answer = dropout_answer(
            &context,
            dtp1_or_3(&catalogue, 1),
            dtp1_or_3(&catalogue, 3),
            &query,
        )
        .unwrap();
        publish(
            &mut model,
            by,
            &answer.rows,
            answer.total.as_ref(),
            |model, by, key, figures: &DropoutFigures| {
                if let Some(started) = figures.started {
                    model.fix(dtp1.get(by, key), started);
                }
                if let Some(completed) = figures.completed {
                    model.fix(dtp3.get(by, key), completed);
                }
            },
        );
        let query = TimelinessQuery {
            indicator: "DTP3".into(),
            cohort: COHORT,
            by,
        };
        let answer = timeliness_answer(&context, dtp1_or_3(&catalogue, 3), &query).unwrap();
        publish(
            &mut model,
            by,
            &answer.rows,
            answer.total.as_ref(),
            |model, by, key, figures: &TimelinessFigures| {
                if let Some(vaccinated) = figures.vaccinated {
                    model.fix(ever.get(by, key), vaccinated);
                }
                if let Some(on_time) = figures.timely {
                    model.fix(timely.get(by, key), on_time);
                }
            },
        );
    }
    // The curve: national DTP3 by each age, never falling, equal to coverage at 12 months.
    let curve = curve_answer(
        &context,
        dtp1_or_3(&catalogue, 3),
        &CurveQuery {
            indicator: "DTP3".into(),
            cohort: COHORT,
            max_age_months: Some(24),
        },
    )
    .unwrap();
    let total_born = denominators[&(None, None)] as f64;
    let mut previous: Option<usize> = None;
    for row in &curve.rows {
        let age = row.age_months.unwrap();
        let var = if age == 12 {
            dtp3.national
        } else {
            model.var(format!("DTP3 curve {age}"), total_born)
        };
        if let Some(previous) = previous {
            model.less(previous, var);
        }
        if let Some(numerator) = row.figures.numerator {
            model.fix(var, numerator);
        }
        previous = Some(var);
    }
    if let Some(last) = previous {
        model.less(last, ever.national);
    }

    // Every withheld coverage cell of both indicators.
    let mut findings = Vec::new();
    for (name, table, indicator) in [
        ("DTP3", &dtp3, dtp1_or_3(&catalogue, 3)),
        ("DTP1", &dtp1, dtp1_or_3(&catalogue, 1)),
    ] {
        for by in BREAKDOWNS {
            let mut answer = coverage_answer(&context, indicator, COHORT.into(), None, by).unwrap();
            if naive && name == "DTP3" {
                naive_suppression(rule, &mut answer.rows, answer.total.as_mut());
            }
            let withheld = answer
                .rows
                .iter()
                .chain(answer.total.as_ref())
                .filter(|row| row.figures.suppressed);
            for row in withheld {
                let key = if row.group.is_some() {
                    key_of(row)
                } else {
                    None
                };
                let by = if row.group.is_some() { by } else { None };
                let (low, high) = model.range(table.get(by, &key));
                let need = rule.threshold.min(denominators[&(by, key.clone())]) as f64;
                findings.push(Finding {
                    cell: format!("{name} {by:?} {key:?}"),
                    low,
                    high,
                    need,
                });
            }
        }
    }
    (findings, bands)
}

fn dtp1_or_3(catalogue: &Catalogue, dose: u32) -> &super::catalogue::Indicator {
    catalogue.get(&format!("DTP{dose}")).unwrap()
}

/// The rule before December 2026, answer by answer: primary suppression, then the smallest
/// rows until the withheld rows together pass (disclosure.rs `Suppression::apply`).
fn naive_suppression(
    rule: Suppression,
    rows: &mut [Row<CoverageFigures>],
    total: Option<&mut Row<CoverageFigures>>,
) {
    let selection_of = |row: &Row<CoverageFigures>| {
        // Recount the cell from the facts: the published row may already be withheld.
        let key = key_of(row);
        let column = row.group.as_ref().map(|group| group.column);
        let mut cell = crate::disclosure::Cell::new(0, Some(0));
        for commune in COMMUNES {
            for (sex, index) in [("female", 0), ("male", 1)] {
                let matches = match column {
                    None => true,
                    Some("commune") => key.as_deref() == Some(commune.name),
                    Some("canton") => key.as_deref() == Some(commune.canton),
                    _ => key.as_deref() == Some(sex),
                };
                if matches {
                    cell.numerator += halves(commune.dtp3)[index];
                    cell.denominator =
                        Some(cell.denominator.unwrap() + halves(commune.born)[index]);
                }
            }
        }
        cell
    };
    let cells: Vec<_> = rows.iter().map(selection_of).collect();
    let total_cell = total.as_ref().map(|total| selection_of(total));
    let (withheld, total_withheld) = rule.apply(&cells, total_cell.as_ref());
    let reveal = |row: &mut Row<CoverageFigures>, cell: &crate::disclosure::Cell, hide: bool| {
        row.figures.suppressed = hide;
        row.figures.numerator = (!hide).then_some(cell.numerator);
        row.figures.denominator = if hide { None } else { cell.denominator };
    };
    for ((row, cell), hide) in rows.iter_mut().zip(&cells).zip(withheld) {
        reveal(row, cell, hide);
    }
    if let (Some(total), Some(cell)) = (total, total_cell) {
        reveal(total, &cell, total_withheld);
    }
}

#[test]
fn no_withheld_cell_is_narrower_than_the_threshold() {
    let (findings, bands) = audit(Suppression::default(), false);
    assert!(
        bands > 0,
        "withheld cells carry bands, and the audit counts them as published"
    );
    assert!(
        findings.iter().any(|f| f.cell.contains("Kehlen")),
        "Kehlen (38 of 40) is withheld"
    );
    assert!(findings.iter().any(|f| f.cell.contains("Vianden")));
    for finding in &findings {
        assert!(
            finding.high - finding.low >= finding.need - 1e-6,
            "{}: {}..{} narrower than {}",
            finding.cell,
            finding.low,
            finding.high,
            finding.need
        );
    }
}

/// The negative control: the rule before December 2026 protected each answer on its own.
/// DTP3 by commune withholds Kehlen (38 of 40: 2 without) and, to protect it against the
/// total, the smallest commune — Vianden (6), already withheld — then Troisvierges (30):
/// but DTP3 by canton publishes Capellen = 128, and Steinfort 40 and Mamer 50 are published,
/// so Kehlen = 128 − 40 − 50 = 38 exactly. The auditor must find it.
#[test]
fn the_auditor_finds_the_single_withheld_commune_of_a_canton() {
    let (findings, _) = audit(Suppression::default(), true);
    let kehlen = findings
        .iter()
        .find(|f| f.cell.starts_with("DTP3") && f.cell.contains("Kehlen"))
        .expect("Kehlen is withheld");
    assert!((kehlen.low - 38.0).abs() < 1e-6 && (kehlen.high - 38.0).abs() < 1e-6);
}
