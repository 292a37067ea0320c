//! Which population estimate a denominator comes from, and how an answer names it: the one
//! rule of coverage and effectiveness denominators.

/// Of the population's reference `years`, the one nearest to `target` (a population on
/// 1 January of `target` is the one the figure needs); of two equally near, the earlier,
/// an estimate made before the fact rather than after it. (Until December 2026: `target`
/// else the latest earlier year, which took a 2020 file for a 2024 target beside a 2025 one.)
pub(crate) fn choose_reference_year(
    years: impl Iterator<Item = i32> + Clone,
    target: i32,
) -> Option<i32> {
    years.min_by_key(|&year| ((year - target).abs(), year > target))
}

/// The `population_source` of an answer whose denominators come from reference `year`.
pub(crate) fn population_source(year: Option<i32>) -> Option<String> {
    year.map(|year| format!("population, reference_year {year}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_year_the_earlier_on_a_tie() {
        let years = [2022, 2024, 2025];
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2024),
            Some(2024)
        );
        // 2023 is one year from 2022 and from 2024: the earlier wins.
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2023),
            Some(2022)
        );
        // Nearest, not "latest before": 2026 is nearer 2025 than 2024, and 2040 too.
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2026),
            Some(2025)
        );
        let sparse = [2020, 2025];
        assert_eq!(
            choose_reference_year(sparse.iter().copied(), 2024),
            Some(2025)
        );
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2020),
            Some(2022)
        );
        assert_eq!(choose_reference_year([].iter().copied(), 2020), None);
    }
}
