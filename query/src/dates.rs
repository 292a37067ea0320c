//! Calendar arithmetic on Arrow's `Date32` day numbers (days since 1970-01-01), done by
//! chrono: the engines keep plain day numbers in their per-person loops and convert only here.

use chrono::{Datelike, NaiveDate};

/// The date of a day number; days beyond chrono's range (about ±262,000 years) saturate.
fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_epoch_days(day).unwrap_or(if day < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    })
}

/// Proleptic Gregorian (year, month, day) of a day number.
pub fn civil_from_days(day: i32) -> (i32, u32, u32) {
    let date = date_of(day);
    (date.year(), date.month(), date.day())
}

/// The day number of a proleptic Gregorian date. Counted from the first of the month, so a
/// day past the month's end runs on into the next month; a year beyond chrono's range (a
/// cohort typed by hand) saturates instead of failing.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = year.clamp(NaiveDate::MIN.year(), NaiveDate::MAX.year());
    let first = NaiveDate::from_ymd_opt(year, month.clamp(1, 12), 1)
        .expect("the first of every month of chrono's years exists");
    first.to_epoch_days().saturating_add(day as i32 - 1)
}

/// The day number of an ISO date `YYYY-MM-DD`, checked (2025-02-30 is refused).
pub fn parse_iso(text: &str) -> Option<i32> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day): (i32, u32, u32) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    NaiveDate::from_ymd_opt(year, month, day).map(|date| date.to_epoch_days())
}

/// `YYYY-MM-DD` of a day number (the year zero-padded to four digits, unsigned beyond 9999).
pub fn format_iso(day: i32) -> String {
    let (year, month, day) = civil_from_days(day);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(days_from_civil(2024, 8, 31), 19_966);
        assert_eq!(parse_iso("2024-09-01"), Some(19_967));
        assert_eq!(parse_iso("2025-02-29"), None);
        assert_eq!(format_iso(19_967), "2024-09-01");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_966), (2024, 8, 31));
        assert_eq!(civil_from_days(19_967), (2024, 9, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // A day past the month's end runs on, as callers computing "the day before the 1st"
        // rely on; an absurd year saturates rather than panicking.
        assert_eq!(days_from_civil(2024, 2, 30), days_from_civil(2024, 3, 1));
        assert!(days_from_civil(i32::MAX, 8, 31) > days_from_civil(2024, 8, 31));
    }
}
