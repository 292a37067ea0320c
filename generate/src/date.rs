//! Calendar arithmetic on plain day numbers (days since 1970-01-01) and minute timestamps.
//!
//! The generator formats tens of millions of dates; integer days with Howard Hinnant's civil
//! algorithms are exact for the proleptic Gregorian calendar and allocation-free (the tests
//! check them against chrono).

/// Days since 1970-01-01.
pub type Day = i32;
/// Minutes since 1970-01-01T00:00Z.
pub type Ts = i64;

pub const fn ymd(y: i32, m: u32, d: u32) -> Day {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

pub const fn civil(z: Day) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn year(d: Day) -> i32 {
    civil(d).0
}

pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The date `months` calendar months after `d`, the day clamped to the end of shorter months:
/// the same rule as `vaxlake_pseudonymize::age_in_completed_months`, so `add_months(birth, m)`
/// is the day on which the child completes `m` months.
pub fn add_months(d: Day, months: i32) -> Day {
    let (y, m, day) = civil(d);
    let total = y * 12 + (m as i32 - 1) + months;
    let ny = total.div_euclid(12);
    let nm = total.rem_euclid(12) as u32 + 1;
    ymd(ny, nm, day.min(days_in_month(ny, nm)))
}

pub fn add_years(d: Day, years: i32) -> Day {
    add_months(d, years * 12)
}

/// Age in completed years on `on`.
pub fn age_years(birth: Day, on: Day) -> i32 {
    let (by, bm, bd) = civil(birth);
    let (y, m, d) = civil(on);
    let mut age = y - by;
    if (m, d) < (bm, bd) {
        age -= 1;
    }
    age
}

/// 0 = Sunday.
fn weekday(d: Day) -> i32 {
    (d + 4).rem_euclid(7)
}

fn last_sunday(y: i32, m: u32) -> Day {
    let last = ymd(y, m, days_in_month(y, m));
    last - weekday(last)
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
    let (y, m, day) = civil(d);
    chrono::NaiveDate::from_ymd_opt(y, m, day).expect("valid civil date")
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
