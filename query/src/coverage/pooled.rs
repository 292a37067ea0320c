//! Pooled birth cohorts (`cohort=2022-2024`): the coverage of small areas over several birth
//! years, protected together with every single year's publication of the same indicator.
//!
//! Publishing a commune's three-year figure beside its single-year figures invites
//! differencing: 2022-2024 minus the published 2022 and 2023 is 2024, which the single-year
//! publication withheld. So the pooled plan is not made alone. It starts as the plan of the
//! pooled table (primary and complementary suppression along the hierarchy, as for one
//! year), and then the auditor's linear programme is solved over everything both
//! publications give away — every single year's published cells and the pooled published
//! cells, with their sums along the hierarchy — and a pooled cell is withheld wherever the
//! programme narrows a withheld cell (of any year, or pooled) below its protection width
//! that the single-year publication alone left it. This repeats until no cell is narrowed.
//!
//! A withheld pooled cell gets a band: the smallest and largest numerator that the published
//! cells allow, which is what anyone can compute from them, so it tells nothing new — but it
//! tells the reader, honestly, how much the published figures already say
//! (docs/coverage.md, "Pooled cohorts and bands").
//!
//! Solver: `microlp`, a pure-Rust simplex; the programmes have one variable per withheld cell
//! (a few hundred at most), and a pooled answer is computed once per table version.

use std::collections::BTreeMap;

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::catalogue::{Indicator, Kind};
use super::cohort::{birth_cohort_selection, publication_plan, selection_bands};
use super::facts::Facts;
use super::plan::{Hierarchy, Plan, Selection};
use super::publish::{Context, Key};
use super::question::{Breakdown, CohortSpan};
use super::select::cohort_reference_year;
use crate::disclosure::Cell;

/// Where a cell is: its breakdown (none for the national cell) and its key.
pub(super) type Address = (Option<Breakdown>, Key);

const BREAKDOWNS: [Breakdown; 3] = [Breakdown::Canton, Breakdown::Commune, Breakdown::Sex];

/// Margin for comparing the solver's floating-point answers with whole counts.
const MARGIN: f64 = 1e-6;

/// Bounds the plan's rounds (each withholds at least one more pooled cell, so a few hundred
/// would always end; a pooled table rarely needs more than three).
const MAX_ROUNDS: usize = 64;

/// What a pooled answer publishes and withholds, and the cells it is cut from.
#[derive(Debug, Clone, Default)]
pub(super) struct PooledPlan {
    pub plan: Plan,
    /// The pool's persons and populations, each year over its own reference year.
    pub selection: Selection,
    /// Those reference years, a year of the span each.
    pub reference_years: Vec<Option<i32>>,
    /// Every withheld pooled cell's band (shares): the smallest band of the grid that holds
    /// the numerator range the published cells imply.
    pub bands: BTreeMap<Address, (f64, f64)>,
}

/// The persons of every year of `span`, each year over its own cohort population (the
/// reference year nearest to when that cohort reaches the age), and those reference years.
pub(super) fn pooled_selection(
    facts: &Facts,
    indicator: &Indicator,
    span: CohortSpan,
    months: u32,
) -> (Selection, Vec<Option<i32>>) {
    let mut pooled = Selection::default();
    let mut years = Vec::new();
    for cohort in span.years() {
        let reference_year = cohort_reference_year(facts, cohort, months);
        let selection = birth_cohort_selection(facts, indicator, cohort, months, reference_year);
        pooled.numerators.extend(selection.numerators);
        pooled.denominators.extend(selection.denominators);
        years.push(reference_year);
    }
    (pooled, years)
}

/// The cells of one publication by address, and each commune's canton.
struct Cells {
    cells: BTreeMap<Address, Cell>,
    parents: BTreeMap<Key, Key>,
    /// The bands a single year's answers publish for its withheld cells (shares).
    bands: BTreeMap<Address, (f64, f64)>,
}

impl Cells {
    fn of(selection: &Selection, facts: &Facts) -> Cells {
        let mut cells = BTreeMap::new();
        let (_, national) = selection.tabulate(facts, None);
        cells.insert((None, None), national);
        let mut parents = BTreeMap::new();
        for by in BREAKDOWNS {
            let (rows, _) = selection.tabulate(facts, Some(by));
            if by == Breakdown::Commune {
                let cantons = selection.parents(facts, &rows);
                parents = rows
                    .iter()
                    .map(|(key, _)| key.clone())
                    .zip(cantons)
                    .collect();
            }
            cells.extend(rows.into_iter().map(|(key, cell)| ((Some(by), key), cell)));
        }
        Cells {
            cells,
            parents,
            bands: BTreeMap::new(),
        }
    }
}

fn withheld(plan: &Plan, (by, key): &Address) -> bool {
    plan.withheld(*by, key)
}

/// The pooled plan of `indicator` over `span` at age `months`, joined (as single years are)
/// with the pooled plans of the other doses of its antigen.
pub(super) fn pooled_plan(
    context: &Context,
    indicator: &Indicator,
    span: CohortSpan,
    months: u32,
) -> PooledPlan {
    let own = Publications::of(context, indicator, span, months);
    let linked = context.catalogue.indicators.iter().filter(|other| {
        other.kind == Kind::BirthCohort
            && other.antigen == indicator.antigen
            && other.sex == indicator.sex
            && !(other.name == indicator.name && other.age_months == Some(months))
    });
    let mut plan = own_pooled_plan(context, &own);
    for other in linked {
        let months = other.age_months.unwrap_or(12);
        let theirs = Publications::of(context, other, span, months);
        plan = plan.union(&own_pooled_plan(context, &theirs), false);
    }
    let Publications {
        singles,
        selection,
        reference_years,
        pooled,
    } = own;
    publish_derivable(&mut plan, &pooled, &singles);
    // The bands of the joined plan: its published cells are fewer, so ranges only widen.
    let ranges = match Auditor::new(&singles, Some((&pooled, &plan))) {
        Some(auditor) => auditor.pooled_ranges(&pooled, &plan),
        None => BTreeMap::new(),
    };
    let bands = ranges
        .into_iter()
        .filter_map(|(address, (lowest, highest))| {
            let denominator = pooled.cells[&address].denominator?;
            let band = super::bands::enclosing(denominator, lowest, highest)?;
            Some((address, super::bands::shares(band)))
        })
        .collect();
    PooledPlan {
        plan,
        selection,
        reference_years,
        bands,
    }
}

/// What one pooled publication is planned against: every single year's cells, published
/// plan and bands, and the pool's selection and cells — built once per indicator.
struct Publications {
    singles: Vec<(Cells, Plan)>,
    selection: Selection,
    reference_years: Vec<Option<i32>>,
    pooled: Cells,
}

impl Publications {
    fn of(context: &Context, indicator: &Indicator, span: CohortSpan, months: u32) -> Self {
        let facts = context.facts;
        let singles = span
            .years()
            .map(|cohort| {
                let reference_year = cohort_reference_year(facts, cohort, months);
                let selection =
                    birth_cohort_selection(facts, indicator, cohort, months, reference_year);
                let plan = publication_plan(context, indicator, cohort, months);
                let mut cells = Cells::of(&selection, facts);
                cells.bands = selection_bands(context, &selection, &plan)
                    .into_iter()
                    .map(|((by, key), band)| ((Some(by), key), band))
                    .collect();
                (cells, (*plan).clone())
            })
            .collect();
        let (selection, reference_years) = pooled_selection(facts, indicator, span, months);
        let pooled = Cells::of(&selection, facts);
        Publications {
            singles,
            selection,
            reference_years,
            pooled,
        }
    }
}

/// The plan of one indicator's pool, checked against its single years.
fn own_pooled_plan(context: &Context, publications: &Publications) -> Plan {
    let Publications {
        singles,
        selection,
        pooled,
        ..
    } = publications;
    let mut hierarchy: Hierarchy =
        selection.hierarchy(context.facts, context.rule, &context.order_key);
    hierarchy.complete();
    let threshold = context.rule.threshold;

    // What each single year's withheld cells keep without the pooled table.
    let Some(alone) = Auditor::new(singles, None) else {
        return everything_withheld(&hierarchy, singles);
    };
    let widths: Vec<BTreeMap<Address, f64>> = (0..singles.len())
        .map(|year| alone.single_widths(singles, year))
        .collect();
    // The same for pooled cells, each solved the first round it is withheld.
    let mut pooled_widths: BTreeMap<Address, f64> = BTreeMap::new();

    for _ in 0..MAX_ROUNDS {
        let plan = hierarchy.plan();
        if plan.national {
            return plan;
        }
        let Some(auditor) = Auditor::new(singles, Some((pooled, &plan))) else {
            return everything_withheld(&hierarchy, singles);
        };
        // Each address once: a second failure of the same cell in the same round must not
        // withhold a sibling as well (that escalation is for cells withheld already).
        let mut narrowed: std::collections::BTreeSet<Address> = Default::default();
        for (year, (cells, _)) in singles.iter().enumerate() {
            for (address, width) in auditor.single_widths(singles, year) {
                let before = widths[year].get(&address).copied().unwrap_or(f64::INFINITY);
                let need = protection(&cells.cells[&address], threshold).min(before);
                if width + MARGIN < need {
                    narrowed.insert(address);
                }
            }
        }
        for (address, (low, high)) in auditor.pooled_ranges(pooled, &plan) {
            // What the single years alone leave of it: nothing to protect in a sum of
            // published cells.
            let cell = &pooled.cells[&address];
            let alone_width = *pooled_widths.entry(address.clone()).or_insert_with(|| {
                let (alone_low, alone_high) = alone.pooled_range(&address, cell);
                (alone_high - alone_low) as f64
            });
            let need = protection(cell, threshold).min(alone_width);
            if ((high - low) as f64) + MARGIN < need {
                narrowed.insert(address);
            }
        }
        tracing::debug!(narrowed = narrowed.len(), "pooled plan round");
        if narrowed.is_empty() {
            return plan;
        }
        let mut changed = false;
        for address in &narrowed {
            changed |= match address {
                // A single year's withheld national count next to a pooled one.
                (None, _) => hierarchy.force(None, &None),
                address => withhold_beside(&mut hierarchy, address),
            };
        }
        if !changed {
            break;
        }
        hierarchy.complete();
    }
    everything_withheld(&hierarchy, singles)
}

/// Withholds the pooled cell at `address`, or, when it is withheld already, the next
/// published cell beside it: a sibling, else (for a commune) its canton, else another
/// canton. Never the national cell: the pooled national count is the sum of the single
/// years' national counts, published or not, so withholding it protects nothing. Whether
/// anything changed.
fn withhold_beside(hierarchy: &mut Hierarchy, (by, key): &Address) -> bool {
    if hierarchy.force(*by, key) {
        return true;
    }
    if let Some(sibling) = hierarchy.next_sibling(*by, key) {
        return hierarchy.force(*by, &sibling);
    }
    let Some(Breakdown::Commune) = by else {
        return false;
    };
    let Some(canton) = hierarchy.canton_of(key) else {
        return false;
    };
    let by = Some(Breakdown::Canton);
    if hierarchy.force(by, &canton) {
        return true;
    }
    match hierarchy.next_sibling(by, &canton) {
        Some(other) => hierarchy.force(by, &other),
        None => false,
    }
}

/// Publishes again every withheld pooled cell whose single years are all published: anyone
/// can add those up, so withholding it hides nothing and only blanks the map.
fn publish_derivable(plan: &mut Plan, pooled: &Cells, singles: &[(Cells, Plan)]) {
    if plan.national {
        return;
    }
    for (by, key) in pooled.cells.keys() {
        let Some(by) = by else { continue };
        let derivable = singles.iter().all(|(cells, single)| {
            !cells.cells.contains_key(&(Some(*by), key.clone())) || !single.withheld(Some(*by), key)
        });
        if derivable {
            let map = match by {
                Breakdown::Commune => &mut plan.communes,
                Breakdown::Canton => &mut plan.cantons,
                Breakdown::Sex => &mut plan.sexes,
            };
            if let Some(hidden) = map.get_mut(key) {
                *hidden = false;
            }
        }
    }
}

/// Every pooled cell below the national one withheld (the fallback when the rounds do not
/// settle); the national one too when a single year withholds its own.
fn everything_withheld(hierarchy: &Hierarchy, singles: &[(Cells, Plan)]) -> Plan {
    let mut plan = hierarchy.plan();
    for map in [&mut plan.communes, &mut plan.cantons, &mut plan.sexes] {
        map.values_mut().for_each(|hidden| *hidden = true);
    }
    plan.national |= singles.iter().any(|(_, single)| single.national);
    plan
}

/// The width a withheld cell's range must reach (docs/coverage.md, "Disclosure control").
fn protection(cell: &Cell, threshold: u64) -> f64 {
    match cell.denominator {
        Some(denominator) => threshold.min(denominator) as f64,
        None => threshold as f64,
    }
}

/// The component of each of `count` unknowns under `equalities` (union-find; the smallest
/// unknown of a component names it).
fn components(count: usize, equalities: &[(Vec<(usize, f64)>, f64)]) -> Vec<usize> {
    fn root(parent: &mut [usize], mut node: usize) -> usize {
        while parent[node] != node {
            parent[node] = parent[parent[node]];
            node = parent[node];
        }
        node
    }
    let mut parent: Vec<usize> = (0..count).collect();
    for (terms, _) in equalities {
        for pair in terms.windows(2) {
            let (a, b) = (root(&mut parent, pair[0].0), root(&mut parent, pair[1].0));
            let (low, high) = (a.min(b), a.max(b));
            parent[high] = low;
        }
    }
    (0..count).map(|node| root(&mut parent, node)).collect()
}

/// A cell in the programme: a published count plus withheld unknowns.
#[derive(Debug, Clone, Default)]
struct Sum {
    known: f64,
    unknowns: Vec<usize>,
}

impl Sum {
    fn add(&mut self, other: &Sum) {
        self.known += other.known;
        self.unknowns.extend(&other.unknowns);
    }
}

/// The auditor's linear programme over the single years' publications and, optionally, the
/// pooled one: one unknown per withheld single-year cell, the sums along the hierarchy and
/// over the years as equalities.
struct Auditor {
    bounds: Vec<(f64, f64)>,
    equalities: Vec<(Vec<(usize, f64)>, f64)>,
    /// Every single year's cells as sums of unknowns.
    years: Vec<BTreeMap<Address, Sum>>,
    /// Each unknown's component: unknowns tied by no chain of equalities are independent
    /// programmes (a canton whose totals are published in every year is one), and a range
    /// is solved over its own component only — a few dozen unknowns instead of hundreds.
    components: Vec<usize>,
}

impl Auditor {
    /// The programme, or none when the published cells contradict each other (a commune
    /// filed under two cantons): the caller then withholds the whole pooled table.
    fn new(singles: &[(Cells, Plan)], pooled: Option<(&Cells, &Plan)>) -> Option<Auditor> {
        let mut auditor = Auditor {
            bounds: Vec::new(),
            equalities: Vec::new(),
            years: Vec::new(),
            components: Vec::new(),
        };
        for (cells, plan) in singles {
            let mut year = BTreeMap::new();
            for (address, cell) in &cells.cells {
                let sum = if withheld(plan, address) {
                    // An outsider's bounds: 0 to the denominator, or the published band. A
                    // count above its denominator keeps its own value as the bound, or the
                    // truth would lie outside the programme.
                    let high = cell
                        .denominator
                        .map_or(f64::INFINITY, |d| d.max(cell.numerator) as f64);
                    let bounds = match (cells.bands.get(address), cell.denominator) {
                        (Some(&band), Some(denominator)) => {
                            let (low, high) = super::bands::share_counts(denominator, band);
                            (low as f64, high as f64)
                        }
                        _ => (0.0, high),
                    };
                    auditor.bounds.push(bounds);
                    Sum {
                        known: 0.0,
                        unknowns: vec![auditor.bounds.len() - 1],
                    }
                } else {
                    Sum {
                        known: cell.numerator as f64,
                        unknowns: Vec::new(),
                    }
                };
                year.insert(address.clone(), sum);
            }
            auditor.hierarchy_sums(&year, &cells.parents);
            auditor.years.push(year);
        }
        if let Some((cells, plan)) = pooled {
            for (address, cell) in &cells.cells {
                if withheld(plan, address) {
                    continue;
                }
                let mut sum = Sum::default();
                for year in &auditor.years {
                    if let Some(part) = year.get(address) {
                        sum.add(part);
                    }
                }
                auditor.equal(&sum, &Sum::default(), cell.numerator as f64);
            }
        }
        auditor.components = components(auditor.bounds.len(), &auditor.equalities);
        auditor.feasible().then_some(auditor)
    }

    /// Communes add up to their canton, cantons and sexes to the nation.
    fn hierarchy_sums(&mut self, year: &BTreeMap<Address, Sum>, parents: &BTreeMap<Key, Key>) {
        let national = year.get(&(None, None)).cloned().unwrap_or_default();
        let mut cantons: BTreeMap<Key, Sum> = BTreeMap::new();
        let mut all_cantons = Sum::default();
        let mut sexes = Sum::default();
        for ((by, key), sum) in year {
            match by {
                Some(Breakdown::Commune) => {
                    let canton = parents.get(key).cloned().flatten();
                    cantons.entry(canton).or_default().add(sum);
                }
                Some(Breakdown::Canton) => all_cantons.add(sum),
                Some(Breakdown::Sex) => sexes.add(sum),
                None => {}
            }
        }
        for (canton, communes) in cantons {
            let cell = year
                .get(&(Some(Breakdown::Canton), canton))
                .cloned()
                .unwrap_or_default();
            self.equal(&cell, &communes, 0.0);
        }
        self.equal(&national, &all_cantons, 0.0);
        self.equal(&national, &sexes, 0.0);
    }

    /// `left − right = rhs` over the unknowns (the known parts move to the right-hand side).
    fn equal(&mut self, left: &Sum, right: &Sum, rhs: f64) {
        let mut terms: BTreeMap<usize, f64> = BTreeMap::new();
        for &unknown in &left.unknowns {
            *terms.entry(unknown).or_default() += 1.0;
        }
        for &unknown in &right.unknowns {
            *terms.entry(unknown).or_default() -= 1.0;
        }
        terms.retain(|_, coefficient| *coefficient != 0.0);
        if terms.is_empty() {
            return;
        }
        self.equalities
            .push((terms.into_iter().collect(), rhs - left.known + right.known));
    }

    /// The programme with `objective` (unknowns, each weighing 1 per mention) to optimise,
    /// over the components the objective touches, or over everything without one.
    fn problem(&self, direction: OptimizationDirection, objective: &[usize]) -> Problem {
        let wanted: std::collections::BTreeSet<usize> = objective
            .iter()
            .map(|&unknown| self.components[unknown])
            .collect();
        let inside =
            |unknown: usize| wanted.is_empty() || wanted.contains(&self.components[unknown]);
        let mut weights: BTreeMap<usize, f64> = BTreeMap::new();
        for &unknown in objective {
            *weights.entry(unknown).or_default() += 1.0;
        }
        let mut problem = Problem::new(direction);
        let vars: Vec<Option<_>> = self
            .bounds
            .iter()
            .enumerate()
            .map(|(index, bounds)| {
                inside(index)
                    .then(|| problem.add_var(weights.get(&index).copied().unwrap_or(0.0), *bounds))
            })
            .collect();
        for (terms, rhs) in &self.equalities {
            if !inside(terms[0].0) {
                continue;
            }
            let expression: Vec<_> = terms
                .iter()
                .filter_map(|&(v, c)| vars[v].map(|var| (var, c)))
                .collect();
            problem.add_constraint(expression.as_slice(), ComparisonOp::Eq, *rhs);
        }
        problem
    }

    fn feasible(&self) -> bool {
        self.problem(OptimizationDirection::Minimize, &[])
            .solve()
            .is_ok()
    }

    /// The smallest and largest value of `sum`; an unbounded side is infinite.
    fn range(&self, sum: &Sum) -> (f64, f64) {
        if sum.unknowns.is_empty() {
            return (sum.known, sum.known);
        }
        let solve = |direction, unbounded: f64| match self.problem(direction, &sum.unknowns).solve()
        {
            Ok(solution) => sum.known + solution.objective(),
            Err(_) => unbounded,
        };
        (
            solve(OptimizationDirection::Minimize, f64::NEG_INFINITY),
            solve(OptimizationDirection::Maximize, f64::INFINITY),
        )
    }

    /// The range width of every withheld cell of year `year`.
    fn single_widths(&self, singles: &[(Cells, Plan)], year: usize) -> BTreeMap<Address, f64> {
        let plan = &singles[year].1;
        self.years[year]
            .iter()
            .filter(|(address, _)| withheld(plan, address))
            .map(|(address, sum)| {
                let (low, high) = self.range(sum);
                (address.clone(), high - low)
            })
            .collect()
    }

    /// The numerator range of every withheld pooled cell in whole persons.
    fn pooled_ranges(&self, pooled: &Cells, plan: &Plan) -> BTreeMap<Address, (u64, u64)> {
        pooled
            .cells
            .iter()
            .filter(|(address, _)| withheld(plan, address))
            .map(|(address, cell)| (address.clone(), self.pooled_range(address, cell)))
            .collect()
    }

    /// The numerator range of the pooled cell at `address` in whole persons.
    fn pooled_range(&self, address: &Address, cell: &Cell) -> (u64, u64) {
        {
            {
                let mut sum = Sum::default();
                for year in &self.years {
                    if let Some(part) = year.get(address) {
                        sum.add(part);
                    }
                }
                let (low, high) = self.range(&sum);
                // Counts are whole: the smallest whole count at or above the programme's
                // minimum, the largest at or below its maximum, never above the denominator.
                let ceiling = cell.denominator.unwrap_or(u64::MAX);
                let low = ((low - MARGIN).ceil().max(0.0) as u64).min(ceiling);
                let high = if high.is_finite() {
                    ((high + MARGIN).floor().max(0.0) as u64).min(ceiling)
                } else {
                    ceiling
                };
                (low, high)
            }
        }
    }
}
