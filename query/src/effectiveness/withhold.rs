//! Disclosure control of effectiveness answers across age bands: which bands to withhold so
//! that none whose counts are small can be recovered — neither by subtracting the published
//! bands from the overall counts, nor from the published estimates and person-days.
//!
//! Bands are withheld by the shared rule of [`crate::disclosure`] (a band is a cell whose
//! "numerator" is its vaccinated cases and "denominator" all its cases, so the cell fails
//! exactly when either group's count is small), with complementary suppression against the
//! overall counts: the withheld bands together must pass the rule too, or a reader gets
//! their sum — and with a single withheld band, the band itself — by subtraction. A withheld
//! band publishes nothing but its label; and the Mantel–Haenszel estimate takes the withheld
//! bands as one merged stratum, so that it depends on them only through their sums, which
//! the overall minus the published bands gives anyway.

use super::estimate::Stratum;
use crate::disclosure::{Cell, Suppression};

/// Which bands of an answer are withheld, and whether the pooled counts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Withheld {
    pub(super) bands: Vec<bool>,
    pub(super) pooled: bool,
}

/// The bands (and pooled counts) to withhold for `strata` published beside their sum.
pub(super) fn withheld_bands(rule: Suppression, strata: &[Stratum]) -> Withheld {
    // Bands without a case publish zeros, which point at nobody, and hiding them would
    // protect nothing: only bands with cases take part (and may be chosen as complements).
    let with_cases: Vec<usize> = (0..strata.len())
        .filter(|&band| strata[band].a + strata[band].b > 0)
        .collect();
    let cell = |stratum: &Stratum| Cell::new(stratum.a, Some(stratum.a + stratum.b));
    let cells: Vec<Cell> = with_cases.iter().map(|&band| cell(&strata[band])).collect();
    let total = strata
        .iter()
        .fold(Stratum::default(), |sum, stratum| sum.plus(*stratum));
    let (flags, pooled) = rule.apply(&cells, Some(&cell(&total)));
    let mut bands = vec![false; strata.len()];
    for (band, hidden) in with_cases.into_iter().zip(flags) {
        bands[band] = hidden;
    }
    Withheld { bands, pooled }
}

/// The strata the Mantel–Haenszel estimate is computed over: the published bands as they
/// are, the withheld ones merged into one.
pub(super) fn adjustment_strata(strata: &[Stratum], withheld: &Withheld) -> Vec<Stratum> {
    let mut out: Vec<Stratum> = Vec::new();
    let mut merged: Option<Stratum> = None;
    for (stratum, &hidden) in strata.iter().zip(&withheld.bands) {
        if hidden {
            merged = Some(merged.unwrap_or_default().plus(*stratum));
        } else {
            out.push(*stratum);
        }
    }
    out.extend(merged);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(a: u64, b: u64, t1: f64, t0: f64) -> Stratum {
        Stratum { a, b, t1, t0 }
    }

    #[test]
    fn a_lone_small_band_takes_the_smallest_other_band_with_it() {
        let rule = Suppression::default();
        // 0-4: nobody; 5-17: 3 and 40 cases (3 is small); 18-64: 30 and 90; 65-74: 20 and
        // 25; 75-84: 12 and 15; 85+: 0 and 0. Alone, 5-17 would be overall minus the others:
        // 75-84 (27 cases, the fewest of the others) goes with it, and 3 + 12 = 15,
        // 40 + 15 = 55 pass. Empty bands are never chosen.
        let strata = [
            s(0, 0, 0.0, 0.0),
            s(3, 40, 10.0, 100.0),
            s(30, 90, 10.0, 100.0),
            s(20, 25, 10.0, 100.0),
            s(12, 15, 10.0, 100.0),
            s(0, 0, 0.0, 0.0),
        ];
        let withheld = withheld_bands(rule, &strata);
        assert_eq!(
            withheld,
            Withheld {
                bands: vec![false, true, false, false, true, false],
                pooled: false
            }
        );
        // The adjustment strata: 0-4, 18-64, 65-74, 85+, then 5-17 + 75-84.
        let adjusted = adjustment_strata(&strata, &withheld);
        assert_eq!(adjusted.len(), 5);
        assert_eq!(adjusted[4], s(15, 55, 20.0, 200.0));
    }

    #[test]
    fn small_pooled_counts_withhold_everything_with_cases() {
        // 2 + 3 vaccinated cases in all: the pooled count 5 is small itself.
        let strata = [s(2, 20, 1.0, 1.0), s(3, 30, 1.0, 1.0), s(0, 0, 0.0, 0.0)];
        let withheld = withheld_bands(Suppression::default(), &strata);
        assert_eq!(withheld.bands, vec![true, true, false]);
        assert!(withheld.pooled);
    }
}
