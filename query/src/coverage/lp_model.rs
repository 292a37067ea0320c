//! The outsider's linear programme the disclosure audits solve (tests only): bounded
//! unknowns, equalities and `≤` constraints, and the smallest and largest value of a sum of
//! unknowns over what they allow. Written apart from the engine's own programme
//! (`pooled.rs`'s `Auditor`) so that the audits check it independently.

use microlp::{ComparisonOp, OptimizationDirection, Problem};

/// A linear programme under construction: bounded variables, equalities and `≤`.
#[derive(Default)]
pub(super) struct Model {
    pub bounds: Vec<(f64, f64)>,
    names: Vec<String>,
    equalities: Vec<(Vec<(usize, f64)>, f64)>,
    at_most: Vec<(Vec<(usize, f64)>, f64)>,
}

impl Model {
    /// A count between 0 and `high`.
    pub fn var(&mut self, name: String, high: f64) -> usize {
        self.bounds.push((0.0, high));
        self.names.push(name);
        self.bounds.len() - 1
    }

    pub fn fix(&mut self, var: usize, value: u64) {
        self.fix_sum(&[var], value);
    }

    /// The sum of `vars` is `value` (a published cell of several unknowns).
    pub fn fix_sum(&mut self, vars: &[usize], value: u64) {
        let terms = vars.iter().map(|&var| (var, 1.0)).collect();
        self.equalities.push((terms, value as f64));
    }

    /// `total` is the sum of `parts`.
    pub fn sum(&mut self, total: usize, parts: &[usize]) {
        self.same_sum(&[total], parts);
    }

    /// The unknowns `left` and `right` add up to the same count.
    pub fn same_sum(&mut self, left: &[usize], right: &[usize]) {
        let mut terms: Vec<(usize, f64)> = left.iter().map(|&var| (var, 1.0)).collect();
        terms.extend(right.iter().map(|&var| (var, -1.0)));
        self.equalities.push((terms, 0.0));
    }

    /// A published band of coverage (`low` ≤ share, share < `high`, or ≤ 100 %) of the sum of
    /// `vars` over `denominator`, in whole counts, as an outsider reads it.
    pub fn band(&mut self, vars: &[usize], low: f64, high: f64, denominator: u64) {
        let d = denominator as f64;
        let lowest = (low * d - 1e-9).ceil();
        let highest = if high >= 1.0 {
            d
        } else {
            (high * d - 1e-9).ceil() - 1.0
        };
        self.at_most
            .push((vars.iter().map(|&var| (var, 1.0)).collect(), highest));
        self.at_most
            .push((vars.iter().map(|&var| (var, -1.0)).collect(), -lowest));
    }

    pub fn less(&mut self, small: usize, large: usize) {
        self.at_most.push((vec![(small, 1.0), (large, -1.0)], 0.0));
    }

    /// The smallest and largest value of `var` over the feasible set.
    pub fn range(&self, var: usize) -> (f64, f64) {
        self.range_of(&[var])
    }

    /// The smallest and largest value of the sum of `vars` over the feasible set.
    pub fn range_of(&self, vars: &[usize]) -> (f64, f64) {
        let solve = |direction| {
            let mut problem = Problem::new(direction);
            let unknowns: Vec<_> = self
                .bounds
                .iter()
                .enumerate()
                .map(|(index, bounds)| {
                    let weight = vars.iter().filter(|&&var| var == index).count() as f64;
                    problem.add_var(weight, *bounds)
                })
                .collect();
            let expr = |terms: &[(usize, f64)]| -> Vec<_> {
                terms.iter().map(|&(v, c)| (unknowns[v], c)).collect()
            };
            for (terms, rhs) in &self.equalities {
                problem.add_constraint(expr(terms).as_slice(), ComparisonOp::Eq, *rhs);
            }
            for (terms, rhs) in &self.at_most {
                problem.add_constraint(expr(terms).as_slice(), ComparisonOp::Le, *rhs);
            }
            problem
                .solve()
                .unwrap_or_else(|error| {
                    let names: Vec<&str> = vars.iter().map(|&v| self.names[v].as_str()).collect();
                    panic!("{names:?}: {error:?}")
                })
                .objective()
        };
        (
            solve(OptimizationDirection::Minimize),
            solve(OptimizationDirection::Maximize),
        )
    }
}
