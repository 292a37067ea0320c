//! Disclosure control shared by the coverage and effectiveness engines: one published figure
//! (a numerator over a denominator), its 95 % Wilson interval, the suppression rule every
//! figure and count goes through before it leaves an engine (primary and secondary), and the
//! rounding of published shares.

/// z for a two-sided 95 % interval.
pub(crate) const Z95: f64 = 1.959964;

/// Counts behind one published figure. `denominator` is `None` where the population has no
/// row (persons without a commune, sexes the population does not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cell {
    pub numerator: u64,
    pub denominator: Option<u64>,
}

impl Cell {
    pub fn new(numerator: u64, denominator: Option<u64>) -> Cell {
        Cell {
            numerator,
            denominator,
        }
    }

    /// The share, when there is a non-zero denominator. Above 1 when the registry knows more
    /// vaccinated persons than the population counts (flagged, not hidden).
    pub fn rate(&self) -> Option<f64> {
        match self.denominator {
            Some(d) if d > 0 => Some(self.numerator as f64 / d as f64),
            _ => None,
        }
    }

    /// The 95 % Wilson score interval; none when the denominator is missing or zero, or the
    /// numerator exceeds it (no binomial proportion then).
    pub fn wilson(&self) -> Option<(f64, f64)> {
        let d = self.denominator.filter(|&d| d > 0 && self.numerator <= d)? as f64;
        let p = self.numerator as f64 / d;
        let z2 = Z95 * Z95;
        let centre = (p + z2 / (2.0 * d)) / (1.0 + z2 / d);
        let half = Z95 * (p * (1.0 - p) / d + z2 / (4.0 * d * d)).sqrt() / (1.0 + z2 / d);
        Some(((centre - half).max(0.0), (centre + half).min(1.0)))
    }

    pub fn exceeds(&self) -> bool {
        self.denominator
            .is_some_and(|denominator| self.numerator > denominator)
    }

    fn plus(self, other: Cell) -> Cell {
        Cell {
            numerator: self.numerator + other.numerator,
            denominator: Some(self.denominator.unwrap_or(0) + other.denominator.unwrap_or(0)),
        }
    }
}

/// The CONTRACTS.md rule: a cell is withheld when its denominator, its numerator, or
/// denominator − numerator lies between 1 and `threshold − 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppression {
    pub threshold: u64,
}

impl Default for Suppression {
    fn default() -> Self {
        Suppression { threshold: 8 }
    }
}

impl Suppression {
    /// Whether a published count lies between 1 and `threshold − 1` (0 is never withheld:
    /// nobody can be recognised in it).
    pub fn is_small(&self, count: u64) -> bool {
        count >= 1 && count < self.threshold
    }

    /// Whether `cell` must be withheld on its own (primary suppression). A missing
    /// denominator counts as 0.
    pub fn fails(&self, cell: &Cell) -> bool {
        let small = |value: u64| self.is_small(value);
        let denominator = cell.denominator.unwrap_or(0);
        small(cell.numerator)
            || small(denominator)
            || denominator.checked_sub(cell.numerator).is_some_and(small)
    }

    /// Which of `rows` to withhold when they are published beside `total` (their sum): first
    /// every row failing the rule, then, while the withheld rows taken together would fail it
    /// (their sum is what a reader gets by subtracting the published rows from the total),
    /// the published row with the smallest denominator, then numerator, then position.
    /// Returns one flag per row, and whether the total itself is withheld.
    pub fn apply(&self, rows: &[Cell], total: Option<&Cell>) -> (Vec<bool>, bool) {
        let mut withheld: Vec<bool> = rows.iter().map(|row| self.fails(row)).collect();
        let total_withheld = total.is_some_and(|total| self.fails(total));
        if total.is_none() || total_withheld {
            return (withheld, total_withheld);
        }
        loop {
            let hidden = rows
                .iter()
                .zip(&withheld)
                .filter(|(_, &hidden)| hidden)
                .fold(None, |sum: Option<Cell>, (row, _)| {
                    Some(sum.map_or(*row, |sum| sum.plus(*row)))
                });
            let Some(hidden) = hidden else { break };
            if !self.fails(&hidden) {
                break;
            }
            let next = rows
                .iter()
                .enumerate()
                .filter(|(index, _)| !withheld[*index])
                .min_by_key(|(index, row)| (row.denominator.unwrap_or(0), row.numerator, *index));
            match next {
                Some((index, _)) => withheld[index] = true,
                None => break,
            }
        }
        (withheld, false)
    }
}

/// Rounds a published share to four decimals (as CONTRACTS.md shows them): more digits
/// suggest a precision the counts do not have.
pub fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(numerator: u64, denominator: u64) -> Cell {
        Cell::new(numerator, Some(denominator))
    }

    #[test]
    fn wilson_matches_a_hand_computation() {
        // 97/104: p = 0.932692; z² = 3.841459; centre = (p + z²/208)/(1 + z²/104)
        // = 0.951161/1.036937 = 0.917276; half = z·sqrt(p(1−p)/104 + z²/43264)/1.036937
        // = 1.959964 · sqrt(0.000603611 + 0.0000887910)/1.036937 = 0.049737.
        let (low, high) = cell(97, 104).wilson().unwrap();
        assert!((low - 0.867539).abs() < 1e-5, "{low}");
        assert!((high - 0.967013).abs() < 1e-5, "{high}");
        // All or nothing still gives an interval inside [0, 1].
        let (low, high) = cell(0, 20).wilson().unwrap();
        assert!(low.abs() < 1e-12, "{low}");
        assert!((high - 0.161125).abs() < 1e-5, "{high}");
        assert_eq!(cell(21, 20).wilson(), None);
        assert_eq!(Cell::new(3, None).wilson(), None);
    }

    #[test]
    fn primary_rule_looks_at_numerator_denominator_and_their_difference() {
        let rule = Suppression::default();
        assert!(!rule.fails(&cell(0, 0)));
        assert!(!rule.fails(&cell(0, 8)));
        assert!(rule.fails(&cell(0, 7)));
        assert!(rule.fails(&cell(7, 100)));
        assert!(!rule.fails(&cell(8, 100)));
        assert!(rule.fails(&cell(95, 100)));
        assert!(!rule.fails(&cell(100, 100)));
        assert!(!rule.fails(&cell(92, 100)));
        assert!(rule.fails(&Cell::new(3, None)));
        assert!(!rule.fails(&Cell::new(30, None)));
        assert!(!Suppression { threshold: 1 }.fails(&cell(1, 2)));
    }

    #[test]
    fn one_withheld_row_beside_a_total_takes_the_smallest_other_with_it() {
        let rule = Suppression::default();
        let rows = [cell(50, 60), cell(3, 20), cell(40, 50), cell(30, 40)];
        let total = cell(123, 170);
        // Row 1 fails (numerator 3); alone it could be recovered as total − the others, so
        // the row with the smallest denominator (40) goes too: hidden sum 33/60 passes.
        assert_eq!(
            rule.apply(&rows, Some(&total)),
            (vec![false, true, false, true], false)
        );
        // Without a total in the answer, nothing can be subtracted.
        assert_eq!(
            rule.apply(&rows, None),
            (vec![false, true, false, false], false)
        );
    }

    #[test]
    fn withheld_rows_grow_until_their_sum_passes() {
        let rule = Suppression::default();
        // 2/3, 1/2 and 10/12 (difference 2) fail on their own; together 13/17 still fails
        // (difference 4), so 20/30, the smallest published row, goes too: 33/47 passes.
        let rows = [
            cell(2, 3),
            cell(1, 2),
            cell(10, 12),
            cell(20, 30),
            cell(80, 90),
        ];
        let total = cell(113, 137);
        let (withheld, total_withheld) = rule.apply(&rows, Some(&total));
        assert_eq!(withheld, vec![true, true, true, true, false]);
        assert!(!total_withheld);
    }

    #[test]
    fn a_small_total_is_withheld_itself() {
        let rule = Suppression::default();
        let (withheld, total_withheld) = rule.apply(&[cell(2, 3), cell(1, 2)], Some(&cell(3, 5)));
        assert_eq!((withheld, total_withheld), (vec![true, true], true));
    }
}
