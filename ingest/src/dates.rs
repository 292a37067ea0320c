//! Date and time parsing shared by the sources.

use chrono::{DateTime, NaiveDate, Utc};

/// Days since 1970-01-01, the Arrow `Date32` representation.
pub fn days(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// A date `YYYY-MM-DD`, or the date part of a date-time (`T` or a space, then the time).
/// Anything else after the date refuses it: PostgreSQL writes a date before year 1 as
/// `2021-04-01 BC`, which is not the year 2021.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    let rest = t.get(10..)?;
    let time_follows = rest.is_empty()
        || rest.starts_with(['T', 't'])
        || (rest.starts_with(' ') && rest[1..].starts_with(|c: char| c.is_ascii_digit()));
    if !time_follows || rest.trim_end().ends_with("BC") {
        return None;
    }
    NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok()
}

/// An instant as microseconds since the epoch: RFC 3339, or a bare date (midnight UTC).
pub fn parse_instant_micros(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc).timestamp_micros());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S") {
        return Some(dt.and_utc().timestamp_micros());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
        return Some(dt.and_utc().timestamp_micros());
    }
    if t.len() == 10 {
        let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros());
    }
    None
}

/// Today's date, the upper bound for any dose or onset date.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_registries_write() {
        assert_eq!(
            parse_date("2023-04-05"),
            NaiveDate::from_ymd_opt(2023, 4, 5)
        );
        assert_eq!(
            parse_date("2023-04-05T10:12:00+02:00"),
            NaiveDate::from_ymd_opt(2023, 4, 5)
        );
        assert_eq!(parse_date("2023-02-30"), None);
        assert_eq!(parse_date("05/04/2023"), None);
        assert_eq!(
            parse_date("2023-04-05 10:12:00+02"),
            NaiveDate::from_ymd_opt(2023, 4, 5)
        );
        // PostgreSQL's text of dates before year 1 and beyond year 9999, and trailing text.
        for refused in [
            "2021-04-01 BC",
            "2021-04-01 10:00:00 BC",
            "10000-01-01",
            "2021-04-01x",
            "2021-04-011",
            "infinity",
            "-infinity",
        ] {
            assert_eq!(parse_date(refused), None, "{refused}");
        }
        let a = parse_instant_micros("2023-04-05T10:12:00+02:00").unwrap();
        let b = parse_instant_micros("2023-04-05T08:12:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            parse_instant_micros("2023-04-05").unwrap() % 86_400_000_000,
            0
        );
        assert!(parse_instant_micros("yesterday").is_none());
        assert_eq!(days(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
