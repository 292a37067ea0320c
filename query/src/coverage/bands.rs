//! Bands for withheld coverage cells: where a figure cannot be shown, a range of coverage
//! from a fixed public grid ("85-95 %"), wide enough that the cell keeps the protection the
//! publication plan gave it (docs/coverage.md, "Bands").
//!
//! A band is published information, unlike a blank: it is chosen so that, with every band
//! of the publication added to what the auditor knows, every withheld cell can still move by
//! the threshold ([`super::plan::Hierarchy::bands`] checks it with the plan's own moves, now
//! kept inside the bands; `pooled_audit.rs` and `audit.rs` check it with a linear
//! programme).

/// The grid of band limits, in per mille of coverage: bands run from one limit to another,
/// lower limit included, upper excluded (except 100 %). Finer near the top, where coverage
/// figures are read.
const GRID: [u64; 8] = [0, 500, 700, 800, 850, 900, 950, 1000];

/// How many times the bands of one publication may widen before they are all dropped (the
/// grid has seven steps, so a band is full well before).
pub(super) const MAX_WIDENINGS: usize = 16;

/// The band of the grid holding `numerator` of `denominator`, widened until its whole counts
/// span at least `need` — a choice made from the grid step and the public denominator
/// alone. None without a denominator, above 100 %, or when only the full 0-100 % would do.
pub(super) fn initial(numerator: i64, denominator: u64, need: i64) -> Option<(usize, usize)> {
    let numerator = u64::try_from(numerator).ok()?;
    if denominator == 0 || numerator > denominator {
        return None;
    }
    let step = (0..GRID.len() - 1)
        .rev()
        .find(|&i| GRID[i] * denominator <= numerator * 1000)
        .unwrap_or(0);
    let mut band = (step, step + 1);
    let need = u64::try_from(need.max(0)).unwrap_or(0);
    loop {
        let (low, high) = counts(denominator, band);
        if high.saturating_sub(low) >= need {
            return Some(band);
        }
        band = wider(band)?;
    }
}

/// The next wider band: one grid step up and down in turn (up first, where there is room),
/// so that a band stays around its figure; none once it would be the whole 0-100 %.
pub(super) fn wider((low, high): (usize, usize)) -> Option<(usize, usize)> {
    let last = GRID.len() - 1;
    let up_first = (high - low) % 2 == 1;
    let band = match (low > 0, high < last) {
        (true, true) if up_first => (low, high + 1),
        (true, _) => (low - 1, high),
        (false, true) => (low, high + 1),
        (false, false) => return None,
    };
    (band != (0, last)).then_some(band)
}

/// The smallest band of the grid holding every count from `lowest` to `highest` of
/// `denominator` (a range the published figures already imply); none when only 0-100 %
/// would.
pub(super) fn enclosing(denominator: u64, lowest: u64, highest: u64) -> Option<(usize, usize)> {
    if denominator == 0 || highest > denominator {
        return None;
    }
    let last = GRID.len() - 1;
    let low = (0..last)
        .rev()
        .find(|&i| GRID[i] * denominator <= lowest * 1000)
        .unwrap_or(0);
    let high = (low + 1..=last)
        .find(|&j| j == last || highest * 1000 < GRID[j] * denominator)
        .unwrap_or(last);
    ((low, high) != (0, last)).then_some((low, high))
}

/// The whole counts a band allows out of `denominator`: from the lower limit's count
/// (rounded up) to the last count below the upper limit (or the denominator at 100 %).
pub(super) fn counts(denominator: u64, (low, high): (usize, usize)) -> (u64, u64) {
    let ceil = |per_mille: u64| (per_mille * denominator).div_ceil(1000);
    let lowest = ceil(GRID[low]);
    let highest = if GRID[high] >= 1000 {
        denominator
    } else {
        ceil(GRID[high]).saturating_sub(1)
    };
    (lowest, highest.max(lowest))
}

/// The whole counts a published band (as shares of the grid) allows out of `denominator`.
pub(super) fn share_counts(denominator: u64, (low, high): (f64, f64)) -> (u64, u64) {
    let step = |share: f64| {
        let per_mille = (share * 1000.0).round() as u64;
        GRID.iter().position(|&limit| limit == per_mille)
    };
    match (step(low), step(high)) {
        (Some(low), Some(high)) if low < high => counts(denominator, (low, high)),
        _ => (0, denominator),
    }
}

/// A band as the answer shows it: its lower and upper limit as shares.
pub(super) fn shares((low, high): (usize, usize)) -> (f64, f64) {
    (GRID[low] as f64 / 1000.0, GRID[high] as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_is_the_grid_step_of_the_figure_widened_to_the_need() {
        // 58 of 60 (96.7 %): step 95-100 % holds 57..60, a span of 3 < 8; 90-100 %: 54..60,
        // 6; 85-100 %: 51..60, 9 ≥ 8.
        assert_eq!(shares(initial(58, 60, 8).unwrap()), (0.85, 1.0));
        // 950 of 1000: 95-100 % holds 950..1000, a span of 50 ≥ 16.
        assert_eq!(shares(initial(950, 1000, 8).unwrap()), (0.95, 1.0));
        // 949 of 1000 lies below 95 %: 90-95 % holds 900..949.
        assert_eq!(shares(initial(949, 1000, 8).unwrap()), (0.9, 0.95));
        assert_eq!(counts(1000, (5, 6)), (900, 949));
        // 5 of 6 (need 6): no band short of 0-100 % spans 6.
        assert_eq!(initial(5, 6, 6), None);
        // Above 100 % or without a denominator: none.
        assert_eq!(initial(61, 60, 8), None);
        assert_eq!(initial(3, 0, 8), None);
    }

    #[test]
    fn widening_goes_up_and_down_in_turn_and_stops_short_of_everything() {
        // 90-95 % → 90-100 % → 85-100 % → 80-100 %.
        assert_eq!(wider((5, 6)), Some((5, 7)));
        assert_eq!(wider((5, 7)), Some((4, 7)));
        // 70-80 % (two steps) → 70-85 % → 50-85 %.
        assert_eq!(wider((2, 3)), Some((2, 4)));
        assert_eq!(wider((2, 4)), Some((1, 4)));
        assert_eq!(wider((6, 7)), Some((5, 7)));
        assert_eq!(wider((0, 1)), Some((0, 2)));
        assert_eq!(wider((1, 7)), None);
        assert_eq!(wider((0, 6)), None);
    }

    #[test]
    fn the_enclosing_band_holds_the_whole_range() {
        // 91..100 of 120 (75.8-83.3 %): 70-85 % holds 84..101 → from 70 % (84) to below
        // 85 % (102 would be 85 %): 91..100 fits.
        assert_eq!(enclosing(120, 91, 100), Some((2, 4)));
        // 102 of 120 is exactly 85 %: the band must reach past it.
        assert_eq!(enclosing(120, 91, 102), Some((2, 5)));
        assert_eq!(enclosing(120, 0, 120), None);
        assert_eq!(enclosing(120, 114, 120), Some((6, 7)));
    }
}
