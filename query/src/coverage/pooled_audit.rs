//! The disclosure audit of pooled cohorts: DTP3 of birth years 2020, 2021 and 2022, each
//! published by commune, canton and sex, and the same pooled as 2020-2022. The auditor
//! (an LP written here independently of [`super::pooled`]) knows every published cell of
//! the four publications and every denominator, and solves for each withheld cell the
//! smallest and largest numerator consistent with them.
//!
//! The hand-made case: Kehlen (canton Capellen) has 38 of 40 children with DTP3 in 2020 (2
//! without: withheld), but 30 of 40 in 2021 and in 2022 (published). Pooled, Kehlen has 98
//! of 120 — 22 without, a cell that passes the rule on its own. Published beside 2021 and
//! 2022 it would give 2020 away: 98 − 30 − 30 = 38.

use std::collections::BTreeMap;

use super::answer::{CoverageAnswer, CoverageFigures, Row};
use super::catalogue::{Catalogue, DoseRule};
use super::cohort::coverage_answer;
use super::facts::{AgeCount, Facts, Group, PopulationCount};
use super::lp_model::Model;
use super::publish::{Context, Key};
use super::question::{Breakdown, CohortSpan};
use crate::answer_cache::TableVersions;
use crate::disclosure::Suppression;

const YEARS: [i32; 3] = [2020, 2021, 2022];
const BREAKDOWNS: [Option<Breakdown>; 4] = [
    None,
    Some(Breakdown::Commune),
    Some(Breakdown::Canton),
    Some(Breakdown::Sex),
];

/// (commune, canton, [(born, with DTP3 by 12 months) per year of `YEARS`]). Every cell but
/// Kehlen 2020 and tiny Troisvierges has at least 8 children with and 8 without the dose.
type Commune = (&'static str, &'static str, [(u64, u64); 3]);

const COMMUNES: &[Commune] = &[
    ("Kehlen", "Capellen", [(40, 38), (40, 30), (40, 30)]),
    ("Steinfort", "Capellen", [(50, 40), (50, 41), (52, 42)]),
    ("Mamer", "Capellen", [(60, 50), (62, 52), (58, 48)]),
    ("Koerich", "Capellen", [(40, 30), (41, 31), (39, 29)]),
    ("Clervaux", "Clervaux", [(45, 36), (44, 35), (46, 37)]),
    // A tiny commune: every single year withheld; pooled 14 of 17, still withheld.
    ("Troisvierges", "Clervaux", [(6, 5), (5, 4), (6, 5)]),
    ("Wincrange", "Clervaux", [(50, 40), (52, 42), (48, 39)]),
    ("Wiltz", "Wiltz", [(70, 59), (72, 60), (69, 58)]),
    ("Winseler", "Wiltz", [(36, 27), (35, 27), (37, 28)]),
];

fn halves(count: u64) -> [u64; 2] {
    [count / 2, count - count / 2]
}

fn facts(communes: &[Commune]) -> Facts {
    let mut facts = Facts {
        data_until: Some("2025-06-30".into()),
        ..Facts::default()
    };
    let mut doses = Vec::new();
    for (commune, canton, years) in communes {
        for (sex, index) in [("female", 0), ("male", 1)] {
            let group = facts.groups.len() as u32;
            facts.groups.push(Group {
                commune: Some(commune.to_string()),
                canton: Some(canton.to_string()),
                sex: Some(sex.into()),
            });
            for (year, (born, dtp3)) in YEARS.iter().zip(years) {
                doses.push(AgeCount {
                    cohort: *year,
                    group,
                    age_months: 6,
                    persons: halves(*dtp3)[index],
                });
                // Reached 12 months in the year after birth: the reference year is the
                // 1 January after that.
                facts.population.push(PopulationCount {
                    reference_year: year + 2,
                    birth_year: *year,
                    group,
                    persons: halves(*born)[index],
                });
            }
        }
    }
    // Dose 1 given to exactly the children with dose 3 (at 2 months), so that DTP1's
    // publication withholds what DTP3's does and adds nothing of its own to the case.
    let first: Vec<AgeCount> = doses
        .iter()
        .map(|count| AgeCount {
            age_months: 2,
            ..*count
        })
        .collect();
    facts
        .cohort_doses
        .insert(("pertussis".into(), DoseRule::Nth(1)), first);
    facts
        .cohort_doses
        .insert(("pertussis".into(), DoseRule::Nth(3)), doses);
    facts.reference_years = YEARS.iter().map(|year| year + 2).collect();
    facts
}

/// One DTP3 numerator per (year, commune) and (year, sex), with the sums the tables imply.
struct Cohorts {
    lp: Model,
    /// (year, commune) → variable.
    communes: BTreeMap<(i32, &'static str), usize>,
    /// (year, sex index) → variable.
    sexes: BTreeMap<(i32, usize), usize>,
    list: Vec<Commune>,
}

impl Cohorts {
    fn new(communes: &[Commune]) -> Cohorts {
        let mut lp = Model::default();
        let mut commune_vars = BTreeMap::new();
        let mut sexes = BTreeMap::new();
        for (position, year) in YEARS.iter().enumerate() {
            for (commune, _, years) in communes {
                let var = lp.var(format!("{year} {commune}"), years[position].0 as f64);
                commune_vars.insert((*year, *commune), var);
            }
            for index in 0..2 {
                let born: u64 = communes
                    .iter()
                    .map(|(_, _, years)| halves(years[position].0)[index])
                    .sum();
                sexes.insert(
                    (*year, index),
                    lp.var(format!("{year} sex {index}"), born as f64),
                );
            }
            // The sexes and the communes are two splits of one national count.
            let all_communes: Vec<usize> = communes
                .iter()
                .map(|(commune, _, _)| commune_vars[&(*year, *commune)])
                .collect();
            lp.same_sum(&all_communes, &[sexes[&(*year, 0)], sexes[&(*year, 1)]]);
        }
        Cohorts {
            lp,
            communes: commune_vars,
            sexes,
            list: communes.to_vec(),
        }
    }

    /// The variables a published or withheld cell of `years` sums.
    fn cell(&self, years: &[i32], by: Option<Breakdown>, key: &Key) -> Vec<usize> {
        let mut vars = Vec::new();
        for year in years {
            match by {
                Some(Breakdown::Sex) => {
                    let index = usize::from(key.as_deref() == Some("male"));
                    vars.push(self.sexes[&(*year, index)]);
                }
                _ => {
                    for (commune, canton, _) in &self.list {
                        let inside = match by {
                            None => true,
                            Some(Breakdown::Commune) => key.as_deref() == Some(*commune),
                            Some(Breakdown::Canton) => key.as_deref() == Some(*canton),
                            Some(Breakdown::Sex) => unreachable!(),
                        };
                        if inside {
                            vars.push(self.communes[&(*year, *commune)]);
                        }
                    }
                }
            }
        }
        vars
    }

    /// The denominator of a cell: its unknowns' upper bounds (each the births counted).
    fn denominator(&self, vars: &[usize]) -> f64 {
        vars.iter().map(|&v| self.lp.bounds[v].1).sum()
    }
}

fn key_of(row: &Row<CoverageFigures>) -> (Option<Breakdown>, Key) {
    match &row.group {
        Some(group) => (
            Some(match group.column {
                "commune" => Breakdown::Commune,
                "canton" => Breakdown::Canton,
                _ => Breakdown::Sex,
            }),
            group.value.clone(),
        ),
        None => (None, None),
    }
}

/// Every answer of the four publications: each year and the pool, by each breakdown.
fn answers(
    communes: &[Commune],
    pooled: impl Fn(&Context, Option<Breakdown>) -> CoverageAnswer,
) -> Vec<(Vec<i32>, CoverageAnswer)> {
    let facts = facts(communes);
    let catalogue = Catalogue::builtin().unwrap();
    let versions = TableVersions::new();
    let context = Context {
        facts: &facts,
        versions: &versions,
        rule: Suppression::default(),
        order_key: [5; 32],
        catalogue: &catalogue,
        plans: Default::default(),
    };
    let dtp3 = catalogue.get("DTP3").unwrap();
    let mut all = Vec::new();
    for by in BREAKDOWNS {
        for year in YEARS {
            let answer = coverage_answer(&context, dtp3, year.into(), None, by).unwrap();
            all.push((vec![year], answer));
        }
        all.push((YEARS.to_vec(), pooled(&context, by)));
    }
    all
}

/// (cell, low, high, need) of every withheld cell, after fixing every published one.
fn audit(communes: &[Commune], all: &[(Vec<i32>, CoverageAnswer)]) -> Vec<(String, f64, f64, f64)> {
    let mut model = Cohorts::new(communes);
    for (years, answer) in all {
        for row in answer.rows.iter().chain(answer.total.as_ref()) {
            let (by, key) = key_of(row);
            let vars = model.cell(years, by, &key);
            if let Some(numerator) = row.figures.numerator {
                model.lp.fix_sum(&vars, numerator);
            }
            if let (Some(low), Some(high)) = (row.figures.band_low, row.figures.band_high) {
                let denominator = model.denominator(&vars) as u64;
                model.lp.band(&vars, low, high, denominator);
            }
        }
    }
    let mut findings = Vec::new();
    for (years, answer) in all {
        for row in answer.rows.iter().chain(answer.total.as_ref()) {
            if row.figures.suppressed {
                let (by, key) = key_of(row);
                let vars = model.cell(years, by, &key);
                let (low, high) = model.lp.range_of(&vars);
                let denominator = model.denominator(&vars);
                findings.push((
                    format!("{years:?} {by:?} {key:?}"),
                    low,
                    high,
                    denominator.min(8.0),
                ));
            }
        }
    }
    findings
}

fn span() -> CohortSpan {
    "2020-2022".parse().unwrap()
}

#[test]
fn pooled_cohorts_pin_no_withheld_cell_of_any_year() {
    let all = answers(COMMUNES, |context, by| {
        let dtp3 = context.catalogue.get("DTP3").unwrap();
        coverage_answer(context, dtp3, span(), None, by).unwrap()
    });
    let findings = audit(COMMUNES, &all);
    assert!(findings
        .iter()
        .any(|(cell, ..)| cell == "[2020] Some(Commune) Some(\"Kehlen\")"));
    for (cell, low, high, need) in &findings {
        assert!(
            high - low >= need - 1e-6,
            "{cell}: {low}..{high} narrower than {need}"
        );
    }
    // Kehlen pooled cannot be published next to its 2021 and 2022 figures.
    let pooled_communes = &all
        .iter()
        .find(|(years, answer)| years.len() == 3 && answer.by == Some(Breakdown::Commune))
        .unwrap()
        .1;
    let kehlen = pooled_communes
        .rows
        .iter()
        .find(|row| key_of(row).1.as_deref() == Some("Kehlen"))
        .unwrap();
    assert!(kehlen.figures.suppressed);
    // Wiltz pooled, by hand: 59 + 60 + 58 = 177 of 70 + 72 + 69 = 211.
    let wiltz = pooled_communes
        .rows
        .iter()
        .find(|row| key_of(row).1.as_deref() == Some("Wiltz"))
        .unwrap();
    assert_eq!(wiltz.figures.numerator, Some(177));
    assert_eq!(wiltz.figures.denominator, Some(211));
    assert_eq!((wiltz.cohort, wiltz.cohort_last), (2020, Some(2022)));
}

#[test]
fn a_withheld_pooled_cell_shows_a_band_that_holds_what_the_published_cells_imply() {
    let all = answers(COMMUNES, |context, by| {
        let dtp3 = context.catalogue.get("DTP3").unwrap();
        coverage_answer(context, dtp3, span(), None, by).unwrap()
    });
    let findings = audit(COMMUNES, &all);
    let mut banded = 0;
    for (years, answer) in &all {
        for row in answer.rows.iter().filter(|row| row.figures.suppressed) {
            let (by, key) = key_of(row);
            let name = format!("{years:?} {by:?} {key:?}");
            let (_, low, high, _) = findings.iter().find(|(cell, ..)| *cell == name).unwrap();
            let born = |position: usize| -> u64 {
                COMMUNES
                    .iter()
                    .filter(|(commune, canton, _)| match by {
                        Some(Breakdown::Commune) => key.as_deref() == Some(*commune),
                        Some(Breakdown::Canton) => key.as_deref() == Some(*canton),
                        _ => false,
                    })
                    .map(|(_, _, years)| years[position].0)
                    .sum()
            };
            let denominator: u64 = years
                .iter()
                .map(|year| born(YEARS.iter().position(|y| y == year).unwrap()))
                .sum();
            if let (Some(band_low), Some(band_high)) = (row.figures.band_low, row.figures.band_high)
            {
                banded += 1;
                // Everything the auditor finds possible lies in the band: at least its lower
                // limit, below its upper one (or at most 100 %).
                let d = denominator as f64;
                assert!(
                    band_low * d <= low + 1e-6,
                    "{name}: {band_low} above {low}/{d}"
                );
                assert!(
                    band_high >= 1.0 || *high < band_high * d - 1e-6,
                    "{name}: {band_high} not above {high}/{d}"
                );
                assert!(
                    band_low > 0.0 || band_high < 1.0,
                    "{name}: a 0-100 % band is none"
                );
            }
        }
    }
    assert!(banded > 0, "some withheld cell gets a band");
}

/// The negative control: the pooled table planned alone (primary and complementary
/// suppression within it, as for one year) publishes Kehlen 98 of 120, and the auditor
/// pins Kehlen 2020 at 98 − 30 − 30 = 38.
#[test]
fn the_auditor_pins_a_year_when_the_pool_is_planned_alone() {
    let all = answers(COMMUNES, |context, by| {
        let dtp3 = context.catalogue.get("DTP3").unwrap();
        let mut answer = coverage_answer(context, dtp3, span(), None, by).unwrap();
        let (selection, _) = super::pooled::pooled_selection(context.facts, dtp3, span(), 12);
        let plan = selection.plan(context.facts, context.rule, &context.order_key);
        let (cells, total) = selection.tabulate(context.facts, by);
        for row in &mut answer.rows {
            let (_, key) = key_of(row);
            let cell = cells.iter().find(|(k, _)| *k == key).unwrap().1;
            let hide = plan.withheld(by, &key);
            row.figures.suppressed = hide;
            row.figures.numerator = (!hide).then_some(cell.numerator);
        }
        if let Some(row) = answer.total.as_mut() {
            row.figures.suppressed = plan.national;
            row.figures.numerator = (!plan.national).then_some(total.numerator);
        }
        if by.is_none() {
            answer.rows[0].figures.numerator = Some(total.numerator);
        }
        answer
    });
    let findings = audit(COMMUNES, &all);
    let (_, low, high, _) = findings
        .iter()
        .find(|(cell, ..)| cell == "[2020] Some(Commune) Some(\"Kehlen\")")
        .unwrap();
    assert!(
        (low - 38.0).abs() < 1e-6 && (high - 38.0).abs() < 1e-6,
        "{low}..{high}"
    );
}

/// Communes drawn from `seed` (a small linear congruential generator: the test needs
/// variety, not quality): four cantons of two to seven communes, 3 to 90 births a year,
/// coverage 75-100 %, so that many cells fail the rule, in every pattern.
fn drawn(seed: u64) -> Vec<Commune> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |below: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % below
    };
    let mut communes = Vec::new();
    for canton in 0..4 {
        let canton_name: &'static str = Box::leak(format!("K{canton}").into_boxed_str());
        for commune in 0..2 + next(6) {
            let name: &'static str = Box::leak(format!("K{canton}c{commune}").into_boxed_str());
            let size = 3 + next(88);
            let years = [0, 1, 2].map(|_| {
                let born = (size + next(7)).saturating_sub(3).max(2);
                let coverage = 750 + next(251);
                (born, (born * coverage / 1000).min(born))
            });
            communes.push((name, canton_name, years));
        }
    }
    communes
}

/// The same audit on drawn registries: single years with their bands, and the pool with
/// its bands, never narrow a withheld cell below what it needs.
#[test]
fn drawn_registries_pin_no_withheld_cell() {
    let mut withheld = 0;
    let mut banded = 0;
    for seed in 1..=6 {
        let communes = drawn(seed);
        let all = answers(&communes, |context, by| {
            let dtp3 = context.catalogue.get("DTP3").unwrap();
            coverage_answer(context, dtp3, span(), None, by).unwrap()
        });
        banded += all
            .iter()
            .flat_map(|(_, answer)| &answer.rows)
            .filter(|row| row.figures.band_low.is_some())
            .count();
        for (cell, low, high, need) in audit(&communes, &all) {
            withheld += 1;
            assert!(
                high - low >= need - 1e-6,
                "seed {seed}: {cell}: {low}..{high} narrower than {need}"
            );
        }
    }
    assert!(
        withheld > 100 && banded > 20,
        "{withheld} withheld, {banded} banded"
    );
}
