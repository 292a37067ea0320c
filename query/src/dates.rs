//! Calendar arithmetic on Arrow's `Date32` day numbers (days since 1970-01-01), so that
//! per-person loops need no date library and no allocation.

/// Proleptic Gregorian (year, month, day) of a day number, after Howard Hinnant's
/// `civil_from_days`.
pub fn civil_from_days(day: i32) -> (i32, u32, u32) {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// The day number of a proleptic Gregorian date (Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
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
    let number = days_from_civil(year, month, day);
    (civil_from_days(number) == (year, month, day)).then_some(number)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_iso(day: i32) -> String {
    let (year, month, day) = civil_from_days(day);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The season (named by the year of its 1 September) of a day counted from 1970-01-01.
pub fn season_of_day(day: i32) -> i32 {
    let (year, month, _) = civil_from_days(day);
    if month < 9 {
        year - 1
    } else {
        year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates_and_seasons() {
        assert_eq!(days_from_civil(2024, 8, 31), 19_966);
        assert_eq!(parse_iso("2024-09-01"), Some(19_967));
        assert_eq!(parse_iso("2025-02-29"), None);
        assert_eq!(format_iso(19_967), "2024-09-01");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_966), (2024, 8, 31));
        assert_eq!(civil_from_days(19_967), (2024, 9, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(season_of_day(19_966), 2023);
        assert_eq!(season_of_day(19_967), 2024);
    }
}
