//! Generalisation of quasi-identifiers: exact birth date → birth month, address → commune
//! and canton. Done at ingest, after whatever needs the exact date has been computed.

use chrono::{Datelike, NaiveDate};
use std::collections::HashMap;
use std::sync::LazyLock;

/// One commune of the reference list `sql/reference/communes.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commune {
    pub name: &'static str,
    pub canton: &'static str,
    /// Approximate resident population, used by the synthetic generator as a weight.
    pub population: u32,
}

/// The communes and cantons, from the reference file people edit (no Rust change needed),
/// as the catalogue parsed it.
pub static COMMUNES: LazyLock<Vec<Commune>> = LazyLock::new(|| {
    vaxlake_catalog::builtin()
        .unwrap_or_else(|error| panic!("{error}"))
        .communes
        .iter()
        .map(|c| Commune {
            name: &c.name,
            canton: &c.canton,
            population: c.population,
        })
        .collect()
});

/// The canton of a commune, matched without regard to case or surrounding spaces, together
/// with the commune's canonical spelling. `None` for a name that is not a commune (free text
/// is never stored).
pub fn canton_of(commune: &str) -> Option<(&'static str, &'static str)> {
    let wanted = commune.trim();
    // Addresses mostly spell the commune as the list does: one hash lookup, no allocation.
    if let Some(&found) = BY_NAME.get(wanted) {
        return Some(found);
    }
    BY_LOWERCASE_NAME
        .get(wanted.to_lowercase().as_str())
        .copied()
}

type Place = (&'static str, &'static str);

/// Commune name as listed → (name, canton).
static BY_NAME: LazyLock<HashMap<&'static str, Place>> = LazyLock::new(|| {
    COMMUNES
        .iter()
        .map(|c| (c.name, (c.name, c.canton)))
        .collect()
});

/// Commune name in lower case (Unicode) → (name, canton): every other spelling.
static BY_LOWERCASE_NAME: LazyLock<HashMap<String, Place>> = LazyLock::new(|| {
    COMMUNES
        .iter()
        .map(|c| (c.name.to_lowercase(), (c.name, c.canton)))
        .collect()
});

/// The first day of the birth month: what the warehouse keeps of a birth date.
pub fn birth_month(birth: NaiveDate) -> NaiveDate {
    birth.with_day(1).expect("day 1 exists in every month")
}

/// Age in completed months on `on` (negative if `on` precedes `birth`). A child born on
/// 31 January completes its first month on the last day of February, as in civil law
/// (the month anniversary is clamped to the end of shorter months).
pub fn age_in_completed_months(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut months = (on.year() - birth.year()) * 12 + on.month() as i32 - birth.month() as i32;
    let anniversary_day = birth.day().min(days_in_month(on.year(), on.month()));
    if on.day() < anniversary_day {
        months -= 1;
    }
    if months < 0 && on >= birth {
        0
    } else {
        months
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn months_are_completed_months() {
        let b = d(2022, 3, 15);
        assert_eq!(age_in_completed_months(b, d(2022, 3, 15)), 0);
        assert_eq!(age_in_completed_months(b, d(2022, 4, 14)), 0);
        assert_eq!(age_in_completed_months(b, d(2022, 4, 15)), 1);
        // The day before the 12-month birthday is still 11 months: "by age 12 months" includes it.
        assert_eq!(age_in_completed_months(b, d(2023, 3, 14)), 11);
        assert_eq!(age_in_completed_months(b, d(2023, 3, 15)), 12);
        assert_eq!(age_in_completed_months(b, d(2024, 3, 15)), 24);
    }

    #[test]
    fn end_of_month_births_clamp() {
        let b = d(2023, 1, 31);
        assert_eq!(age_in_completed_months(b, d(2023, 2, 27)), 0);
        assert_eq!(age_in_completed_months(b, d(2023, 2, 28)), 1);
        assert_eq!(age_in_completed_months(b, d(2023, 3, 30)), 1);
        assert_eq!(age_in_completed_months(b, d(2023, 3, 31)), 2);
        let leap = d(2020, 2, 29);
        assert_eq!(age_in_completed_months(leap, d(2021, 2, 28)), 12);
    }

    #[test]
    fn before_birth_is_negative() {
        assert!(age_in_completed_months(d(2022, 3, 15), d(2022, 3, 14)) < 0);
        assert!(age_in_completed_months(d(2022, 3, 15), d(2021, 3, 20)) < 0);
    }

    #[test]
    fn reference_list_has_twelve_cantons() {
        let cantons: std::collections::BTreeSet<_> = COMMUNES.iter().map(|c| c.canton).collect();
        assert_eq!(cantons.len(), 12);
        assert!(COMMUNES.len() >= 100);
        assert_eq!(canton_of("wiltz"), Some(("Wiltz", "Wiltz")));
        assert_eq!(
            canton_of(" Pétange "),
            Some(("Pétange", "Esch-sur-Alzette"))
        );
        assert_eq!(canton_of("12 rue de la Gare"), None);
        assert_eq!(birth_month(d(2022, 3, 15)), d(2022, 3, 1));
    }
}
