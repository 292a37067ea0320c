//! Calendar arithmetic on plain day numbers (days since 1970-01-01) and minute timestamps.
//!
//! The generator keeps integer days (cheap to compare, add and store by the million); the
//! calendar itself is chrono's. Only the formatting into output buffers is written here: it
//! writes tens of millions of dates without allocating.

use chrono::{Datelike, Months, NaiveDate};

/// Days since 1970-01-01.
pub type Day = i32;
/// Minutes since 1970-01-01T00:00Z.
pub type Ts = i64;

/// The day number of a date; `const` so that fixed dates can be constants. Panics on a date
/// that does not exist (every caller passes a real one).
pub const fn ymd(y: i32, m: u32, d: u32) -> Day {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(date) => date.to_epoch_days(),
        None => panic!("not a calendar date"),
    }
}

/// The date of a day number (the generator's days are all within chrono's range).
fn date(d: Day) -> NaiveDate {
    NaiveDate::from_epoch_days(d).expect("a day within chrono's range")
}

/// (year, month, day) of a day number.
pub fn civil(d: Day) -> (i32, u32, u32) {
    let date = date(d);
    (date.year(), date.month(), date.day())
}

pub fn year(d: Day) -> i32 {
    date(d).year()
}

/// The date `months` calendar months after `d`, the day clamped to the end of shorter months
/// (chrono's rule): the same rule as `vaxlake_pseudonymize::age_in_completed_months`, so
/// `add_months(birth, m)` is the day on which the child completes `m` months.
pub fn add_months(d: Day, months: i32) -> Day {
    let date = date(d);
    let moved = if months >= 0 {
        date.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    moved.expect("a day within chrono's range").to_epoch_days()
}

pub fn add_years(d: Day, years: i32) -> Day {
    add_months(d, years * 12)
}

/// Age in completed years on `on` (negative before the birth).
pub fn age_years(birth: Day, on: Day) -> i32 {
    let (birth, on) = (date(birth), date(on));
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// The last Sunday of a month (the EU's summer-time switch days).
fn last_sunday(y: i32, m: u32) -> Day {
    let first_of_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    }
    .expect("a month within chrono's range");
    let last = first_of_next.to_epoch_days() - 1;
    last - date(last).weekday().num_days_from_sunday() as Day
}

/// Luxembourg's UTC offset in minutes on day `d` for daytime hours (CET / CEST, EU rules).
pub fn lux_offset_minutes(d: Day) -> i64 {
    let y = year(d);
    if d >= last_sunday(y, 3) && d < last_sunday(y, 10) {
        120
    } else {
        60
    }
}

/// The UTC timestamp of local (Luxembourg) wall-clock `minute_of_day` on day `d`.
pub fn local_ts(d: Day, minute_of_day: i64) -> Ts {
    i64::from(d) * 1440 + minute_of_day - lux_offset_minutes(d)
}

pub fn ts_day(ts: Ts) -> Day {
    ts.div_euclid(1440) as Day
}

fn push2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// `YYYY-MM-DD`.
pub fn push_date(buf: &mut Vec<u8>, d: Day) {
    let (y, m, day) = civil(d);
    let y = y.clamp(0, 9999) as u32;
    push2(buf, y / 100);
    push2(buf, y % 100);
    buf.push(b'-');
    push2(buf, m);
    buf.push(b'-');
    push2(buf, day);
}

fn push_datetime(buf: &mut Vec<u8>, t: Ts) {
    push_date(buf, ts_day(t));
    let mins = t.rem_euclid(1440) as u32;
    buf.push(b'T');
    push2(buf, mins / 60);
    buf.push(b':');
    push2(buf, mins % 60);
    buf.extend_from_slice(b":00");
}

/// `YYYY-MM-DDTHH:MM:00Z`.
pub fn push_utc(buf: &mut Vec<u8>, t: Ts) {
    push_datetime(buf, t);
    buf.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:00+01:00` (or `+02:00` in summer), Luxembourg local time.
pub fn push_local(buf: &mut Vec<u8>, t: Ts) {
    // Daytime timestamps only: the day of the local time decides the offset.
    let off = lux_offset_minutes(ts_day(t + 60));
    push_datetime(buf, t + off);
    buf.extend_from_slice(if off == 120 { b"+02:00" } else { b"+01:00" });
}

pub fn date_string(d: Day) -> String {
    let mut b = Vec::with_capacity(10);
    push_date(&mut b, d);
    String::from_utf8(b).expect("ASCII")
}

pub fn to_naive(d: Day) -> chrono::NaiveDate {
    date(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn civil_round_trips_and_matches_chrono() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for d in (ymd(1899, 1, 1)..ymd(2101, 1, 1)).step_by(7) {
            let (y, m, day) = civil(d);
            assert_eq!(ymd(y, m, day), d);
            let c = epoch + chrono::Duration::days(i64::from(d));
            assert_eq!((c.year(), c.month(), c.day()), (y, m, day));
            assert_eq!(to_naive(d), c);
        }
    }

    #[test]
    fn months_match_the_pseudonymiser_rule() {
        for birth in [
            ymd(2023, 1, 31),
            ymd(2020, 2, 29),
            ymd(2022, 3, 15),
            ymd(2021, 8, 31),
        ] {
            for m in 0..40 {
                let a = add_months(birth, m);
                let age =
                    vaxlake_pseudonymize::age_in_completed_months(to_naive(birth), to_naive(a));
                assert_eq!(age, m, "birth {} + {m}", date_string(birth));
                let before =
                    vaxlake_pseudonymize::age_in_completed_months(to_naive(birth), to_naive(a - 1));
                if m > 0 {
                    assert_eq!(before, m - 1);
                }
            }
        }
    }

    #[test]
    fn formats_and_time_zones() {
        let mut b = Vec::new();
        push_local(&mut b, local_ts(ymd(2023, 4, 5), 10 * 60 + 12));
        assert_eq!(b, b"2023-04-05T10:12:00+02:00");
        b.clear();
        push_utc(&mut b, local_ts(ymd(2023, 4, 5), 10 * 60 + 12));
        assert_eq!(b, b"2023-04-05T08:12:00Z");
        b.clear();
        push_local(&mut b, local_ts(ymd(2023, 1, 5), 9 * 60));
        assert_eq!(b, b"2023-01-05T09:00:00+01:00");
        assert_eq!(age_years(ymd(2000, 3, 1), ymd(2025, 2, 28)), 24);
        assert_eq!(age_years(ymd(2000, 3, 1), ymd(2025, 3, 1)), 25);
    }
}
