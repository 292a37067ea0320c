//! Which doses count: the one implementation of the dose rules of
//! `sql/reference/dose_rules.csv` (minimum age, maximum age, minimum interval since the
//! previous *valid* dose, with a grace period) and of the completion schedules of
//! `sql/reference/schedules.csv`. The coverage engine counts with it and the
//! `antigen_doses` view numbers with it, so the figures and the rows analysts see cannot
//! disagree. It lives here, beside the files it reads, because every stage that numbers
//! doses (query today, ingest when it materialises `antigen_doses`) depends on this crate.
//!
//! ```
//! use vaxlake_catalog::validity::{DoseDay, DoseRules, InvalidReason};
//! let rules = DoseRules::builtin().unwrap();
//! // Measles at 8 completed months (MCV0), then at 12 and 15: the first does not count.
//! let days = [DoseDay::new(19_600, Some(8)), DoseDay::new(19_720, Some(12)), DoseDay::new(19_810, Some(15))];
//! let judged = rules.judge("measles", &days);
//! assert_eq!(judged[0].invalid, Some(InvalidReason::BelowMinimumAge));
//! assert_eq!((judged[1].dose_seq, judged[2].dose_seq), (Some(1), Some(2)));
//! ```

use std::collections::HashMap;

use chrono::{Months, NaiveDate};

use crate::reference::{Schedule, ValidityRule};
use crate::CatalogError;

/// Days early a dose may be given and still count, for minimum intervals (and minimum ages
/// where the age is known to the day, which the warehouse never does: see docs/coverage.md,
/// "Valid doses"). ACIP General Best Practice Guidelines, "Timing and spacing": doses given
/// up to 4 days before the minimum interval or age are counted as valid.
pub const GRACE_DAYS: i32 = 4;

/// One day on which a person received a dose of an antigen (several doses the same day are
/// one): its date (days since 1970-01-01, Arrow's `Date32`) and age in completed months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoseDay {
    pub date: i32,
    pub age_months: Option<i32>,
}

impl DoseDay {
    pub fn new(date: i32, age_months: Option<i32>) -> Self {
        DoseDay { date, age_months }
    }
}

/// Why a dose does not count. The text form is what `antigen_doses.invalid_reason` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidReason {
    /// Given before the minimum age of the dose it would have been (MCV0: measles before 9
    /// completed months).
    BelowMinimumAge,
    /// Given after the maximum age (rotavirus).
    AboveMaximumAge,
    /// Given sooner than the minimum interval (less the grace) after the previous valid dose.
    IntervalTooShort,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 3] = [
        InvalidReason::BelowMinimumAge,
        InvalidReason::AboveMaximumAge,
        InvalidReason::IntervalTooShort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::BelowMinimumAge => "below_minimum_age",
            InvalidReason::AboveMaximumAge => "above_maximum_age",
            InvalidReason::IntervalTooShort => "interval_too_short",
        }
    }
}

/// The verdict on one dose day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// `None` when the dose counts.
    pub invalid: Option<InvalidReason>,
    /// 1, 2, 3, ... among the valid doses; `None` for an invalid one.
    pub dose_seq: Option<u32>,
}

impl Judged {
    pub fn valid(&self) -> bool {
        self.invalid.is_none()
    }
}

/// The dose rules of every antigen, ready to judge a person's doses.
#[derive(Debug, Clone, Default)]
pub struct DoseRules {
    /// Antigen → its lines in dose order (dose 1 first).
    by_antigen: HashMap<String, Vec<ValidityRule>>,
    /// Antigen → its schedules in file order.
    schedules: HashMap<String, Vec<Schedule>>,
}

impl DoseRules {
    pub fn new(rules: &[ValidityRule], schedules: &[Schedule]) -> Self {
        let mut by_antigen: HashMap<String, Vec<ValidityRule>> = HashMap::new();
        for rule in rules {
            by_antigen
                .entry(rule.antigen.clone())
                .or_default()
                .push(rule.clone());
        }
        for lines in by_antigen.values_mut() {
            lines.sort_by_key(|rule| rule.dose);
        }
        let mut by_schedule: HashMap<String, Vec<Schedule>> = HashMap::new();
        for schedule in schedules {
            by_schedule
                .entry(schedule.antigen.clone())
                .or_default()
                .push(schedule.clone());
        }
        DoseRules {
            by_antigen,
            schedules: by_schedule,
        }
    }

    /// The rules compiled into this binary.
    pub fn builtin() -> Result<Self, CatalogError> {
        let reference = crate::builtin()?;
        Ok(DoseRules::new(&reference.dose_rules, &reference.schedules))
    }

    /// The line for the `dose`-th valid dose of `antigen`: its own, or the antigen's last.
    fn rule(&self, antigen: &str, dose: u32) -> Option<&ValidityRule> {
        let lines = self.by_antigen.get(antigen)?;
        lines.iter().rev().find(|rule| rule.dose <= dose)
    }

    /// Judges one person's dose days of `antigen`, in date order, one per day. Each dose is
    /// judged as the next valid dose: an invalid one does not count and does not advance
    /// the sequence, so the dose after it is judged against the same line and the same
    /// previous valid dose. An antigen without lines accepts every dose.
    pub fn judge(&self, antigen: &str, days: &[DoseDay]) -> Vec<Judged> {
        let mut out = Vec::with_capacity(days.len());
        self.judge_into(antigen, days, &mut out);
        out
    }

    /// [`judge`](Self::judge) into a reused buffer (cleared first).
    pub fn judge_into(&self, antigen: &str, days: &[DoseDay], out: &mut Vec<Judged>) {
        out.clear();
        let mut valid = 0u32;
        let mut previous: Option<i32> = None;
        for day in days {
            let invalid = self
                .rule(antigen, valid + 1)
                .and_then(|rule| reason(rule, day, previous));
            if invalid.is_none() {
                valid += 1;
                previous = Some(day.date);
            }
            out.push(Judged {
                invalid,
                dose_seq: invalid.is_none().then_some(valid),
            });
        }
    }

    /// Whether `antigen` has completion schedules (indicators whose dose is `schedule`).
    pub fn has_schedule(&self, antigen: &str) -> bool {
        self.schedules.contains_key(antigen)
    }

    /// The index in `days` of the valid dose completing the schedule of `antigen` that
    /// applies to the age of the first valid dose, or `None` while it is open: the first
    /// valid dose numbered at least the schedule's `doses` and given at least
    /// `first_to_last_months` (less the grace) after the first valid dose. So an HPV course
    /// started at 12 years whose second dose came 3 months after the first is completed by
    /// a third dose, not by the second.
    pub fn completion(&self, antigen: &str, days: &[DoseDay], judged: &[Judged]) -> Option<usize> {
        let schedules = self.schedules.get(antigen)?;
        let first = judged.iter().position(Judged::valid)?;
        let start_age = days[first].age_months;
        let schedule = schedules.iter().find(|s| match s.start_before_months {
            None => true,
            Some(limit) => start_age.is_some_and(|age| age < limit as i32),
        })?;
        let earliest = match schedule.first_to_last_months {
            Some(months) => add_months(days[first].date, months) - GRACE_DAYS,
            None => i32::MIN,
        };
        (0..days.len()).find(|&index| {
            judged[index]
                .dose_seq
                .is_some_and(|seq| seq >= schedule.doses && days[index].date >= earliest)
        })
    }
}

/// Why `day` cannot be the dose `rule` describes, given the previous valid dose.
fn reason(rule: &ValidityRule, day: &DoseDay, previous: Option<i32>) -> Option<InvalidReason> {
    if let (Some(minimum), Some(age)) = (rule.min_age_months, day.age_months) {
        if age < minimum as i32 {
            return Some(InvalidReason::BelowMinimumAge);
        }
    }
    if let (Some(maximum), Some(age)) = (rule.max_age_months, day.age_months) {
        if age > maximum as i32 {
            return Some(InvalidReason::AboveMaximumAge);
        }
    }
    if let Some(previous) = previous {
        if rule.min_interval_months.is_some() || rule.min_interval_days.is_some() {
            let due = add_months(previous, rule.min_interval_months.unwrap_or(0))
                + rule.min_interval_days.unwrap_or(0) as i32;
            if day.date < due - GRACE_DAYS {
                return Some(InvalidReason::IntervalTooShort);
            }
        }
    }
    None
}

/// `months` calendar months after `day` (days since 1970-01-01); the 31st plus one month
/// is the last day of the next month, as chrono (and ACIP's "months") count.
pub fn add_months(day: i32, months: u32) -> i32 {
    const EPOCH_FROM_CE: i32 = 719_163;
    NaiveDate::from_num_days_from_ce_opt(day + EPOCH_FROM_CE)
        .and_then(|date| date.checked_add_months(Months::new(months)))
        .map_or(i32::MAX, |date| {
            use chrono::Datelike;
            date.num_days_from_ce() - EPOCH_FROM_CE
        })
}

/// The influenza season holding `day` (days since 1970-01-01), named by the year of its
/// 1 September (docs/coverage.md, "Indicator kinds"): the ingest marks each person's first
/// valid dose of a season, and the coverage engine counts it under this season.
pub fn season_of_day(day: i32) -> i32 {
    use chrono::Datelike;
    let date = NaiveDate::from_epoch_days(day).unwrap_or(if day < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    });
    if date.month() < 9 {
        date.year() - 1
    } else {
        date.year()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> i32 {
        use chrono::Datelike;
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .unwrap()
            .num_days_from_ce()
            - 719_163
    }

    fn doses(list: &[(&str, i32)]) -> Vec<DoseDay> {
        list.iter()
            .map(|&(date, age)| DoseDay::new(day(date), Some(age)))
            .collect()
    }

    fn verdicts(judged: &[Judged]) -> Vec<(Option<&'static str>, Option<u32>)> {
        judged
            .iter()
            .map(|j| (j.invalid.map(InvalidReason::as_str), j.dose_seq))
            .collect()
    }

    #[test]
    fn seasons_start_on_the_first_of_september() {
        assert_eq!(season_of_day(day("2024-08-31")), 2023);
        assert_eq!(season_of_day(day("2024-09-01")), 2024);
        assert_eq!(season_of_day(day("2025-01-15")), 2024);
        assert_eq!(season_of_day(day("1969-12-31")), 1969);
    }

    #[test]
    fn months_are_calendar_months() {
        assert_eq!(add_months(day("2024-01-31"), 1), day("2024-02-29"));
        assert_eq!(add_months(day("2023-08-15"), 5), day("2024-01-15"));
        assert_eq!(add_months(day("2023-08-15"), 0), day("2023-08-15"));
    }

    /// Born 2023-01-10. Measles at 8 completed months (2023-09-20: MCV0, below 9), at 12
    /// (2024-01-15) and at 15 (2024-04-20, 96 days later). MCV1 is the second, MCV2 the third.
    #[test]
    fn a_measles_dose_before_9_months_is_never_mcv1() {
        let rules = DoseRules::builtin().unwrap();
        let days = doses(&[("2023-09-20", 8), ("2024-01-15", 12), ("2024-04-20", 15)]);
        assert_eq!(
            verdicts(&rules.judge("measles", &days)),
            [
                (Some("below_minimum_age"), None),
                (None, Some(1)),
                (None, Some(2))
            ]
        );
    }

    /// DTP: 28 days between primary doses, less 4 days of grace, so 24 days counts and 23
    /// does not. Dose 1 on 2023-03-01; 2023-03-24 is 23 days later (too soon, and the
    /// sequence stays at 1); 2023-03-25 is 24 days after dose 1 (valid dose 2); 2023-04-10
    /// is 16 days after that valid dose 2 (too soon); 2023-04-18 is 24 days after it (dose 3).
    #[test]
    fn a_dtp_dose_less_than_24_days_after_the_previous_valid_one_is_not_a_next_dose() {
        let rules = DoseRules::builtin().unwrap();
        let days = doses(&[
            ("2023-03-01", 2),
            ("2023-03-24", 2),
            ("2023-03-25", 2),
            ("2023-04-10", 3),
            ("2023-04-18", 3),
        ]);
        for antigen in ["diphtheria", "tetanus", "pertussis", "polio", "hib"] {
            assert_eq!(
                verdicts(&rules.judge(antigen, &days)),
                [
                    (None, Some(1)),
                    (Some("interval_too_short"), None),
                    (None, Some(2)),
                    (Some("interval_too_short"), None),
                    (None, Some(3)),
                ],
                "{antigen}"
            );
        }
    }

    /// Rotavirus: dose 1 at 4 completed months is above the 3 allowed (14 weeks 6 days),
    /// and so is the next one judged as dose 1; a valid series needs a dose 1 by month 3 and
    /// no dose after completed month 8.
    #[test]
    fn rotavirus_doses_past_the_maximum_age_do_not_count() {
        let rules = DoseRules::builtin().unwrap();
        let late = doses(&[("2023-05-15", 4), ("2023-06-20", 5)]);
        assert_eq!(
            verdicts(&rules.judge("rotavirus", &late)),
            [
                (Some("above_maximum_age"), None),
                (Some("above_maximum_age"), None)
            ]
        );
        let series = doses(&[("2023-03-01", 2), ("2023-04-01", 3), ("2023-10-01", 9)]);
        assert_eq!(
            verdicts(&rules.judge("rotavirus", &series)),
            [
                (None, Some(1)),
                (None, Some(2)),
                (Some("above_maximum_age"), None)
            ]
        );
    }

    /// HPV started at 11 years (132 months) on 2021-01-15: a second dose on 2021-04-15 (3
    /// months later) is a valid dose but does not complete the two-dose schedule (it needs
    /// 2021-06-15 − 4 days = 2021-06-11); the third dose on 2021-09-15 completes it. A
    /// second dose on 2021-06-11 (exactly 5 months − 4 days) completes it; on 2021-06-10 not.
    #[test]
    fn hpv_follows_the_schedule_for_the_age_at_the_first_dose() {
        let rules = DoseRules::builtin().unwrap();
        let close = doses(&[
            ("2021-01-15", 132),
            ("2021-04-15", 135),
            ("2021-09-15", 140),
        ]);
        let judged = rules.judge("hpv", &close);
        assert!(judged.iter().all(Judged::valid));
        assert_eq!(rules.completion("hpv", &close, &judged), Some(2));
        let edge = doses(&[("2021-01-15", 132), ("2021-06-11", 136)]);
        let judged = rules.judge("hpv", &edge);
        assert_eq!(rules.completion("hpv", &edge, &judged), Some(1));
        let early = doses(&[("2021-01-15", 132), ("2021-06-10", 136)]);
        let judged = rules.judge("hpv", &early);
        assert_eq!(rules.completion("hpv", &early, &judged), None);

        // Started at 15 years (180 months): three doses. Two doses 6 months apart do not
        // complete; a third 12 weeks (84 days, less 4) after the second does. A third only
        // 79 days after the second is too soon.
        let older = doses(&[
            ("2021-01-15", 180),
            ("2021-07-15", 186),
            ("2021-10-07", 188),
        ]);
        let judged = rules.judge("hpv", &older);
        assert_eq!(judged[2].dose_seq, Some(3), "84 days after the second");
        assert_eq!(rules.completion("hpv", &older, &judged), Some(2));
        let two = &older[..2];
        assert_eq!(rules.completion("hpv", two, &rules.judge("hpv", two)), None);
        let soon = doses(&[
            ("2021-01-15", 180),
            ("2021-07-15", 186),
            ("2021-10-02", 188),
        ]);
        let judged = rules.judge("hpv", &soon);
        assert_eq!(judged[2].invalid, Some(InvalidReason::IntervalTooShort));
        assert_eq!(rules.completion("hpv", &soon, &judged), None);

        // A dose before 9 years does not start the schedule: the next one does.
        let young = doses(&[
            ("2018-01-15", 100),
            ("2021-01-15", 136),
            ("2021-07-15", 142),
        ]);
        let judged = rules.judge("hpv", &young);
        assert_eq!(judged[0].invalid, Some(InvalidReason::BelowMinimumAge));
        assert_eq!(rules.completion("hpv", &young, &judged), Some(2));
    }

    #[test]
    fn an_antigen_without_rules_accepts_every_dose() {
        let rules = DoseRules::builtin().unwrap();
        let days = doses(&[("2021-01-01", 500), ("2021-01-02", 500)]);
        assert_eq!(
            verdicts(&rules.judge("covid19", &days)),
            [(None, Some(1)), (None, Some(2))]
        );
    }

    /// An unknown age (no birth date) skips the age limits, never the interval.
    #[test]
    fn an_unknown_age_is_judged_on_the_interval_alone() {
        let rules = DoseRules::builtin().unwrap();
        let days = [
            DoseDay::new(day("2023-01-01"), None),
            DoseDay::new(day("2023-01-10"), None),
        ];
        assert_eq!(
            verdicts(&rules.judge("measles", &days)),
            [(None, Some(1)), (Some("interval_too_short"), None)]
        );
    }
}
