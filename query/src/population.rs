//! Which population estimate a denominator comes from, and how an answer names it: the one
//! rule of coverage and effectiveness denominators.

/// Of the population's reference `years`, `target` when present, else the latest earlier
/// one, else the earliest there is.
pub(crate) fn choose_reference_year(
    years: impl Iterator<Item = i32> + Clone,
    target: i32,
) -> Option<i32> {
    years
        .clone()
        .filter(|&year| year <= target)
        .max()
        .or_else(|| years.min())
}

/// The `population_source` of an answer whose denominators come from reference `year`.
pub(crate) fn population_source(year: Option<i32>) -> Option<String> {
    year.map(|year| format!("population, reference_year {year}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_year_else_the_latest_before_else_the_earliest() {
        let years = [2022, 2024, 2025];
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2024),
            Some(2024)
        );
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2023),
            Some(2022)
        );
        assert_eq!(
            choose_reference_year(years.iter().copied(), 2020),
            Some(2022)
        );
        assert_eq!(choose_reference_year([].iter().copied(), 2020), None);
    }
}
