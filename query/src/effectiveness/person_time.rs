//! Cases and person-time per age band over a (sub-)period of a study, and the study's
//! calendar months.

use super::estimate::Stratum;
use super::read::StudyData;
use super::study::Study;
use crate::coverage::AGE_BANDS;
use crate::dates::{civil_from_days, days_from_civil};

/// Cases and person-time per age band over `[first, last]` (a sub-period of the study).
pub(super) fn strata(study: &Study, data: &StudyData, first: i32, last: i32) -> Vec<Stratum> {
    let days = f64::from(last - first + 1);
    let mut strata = vec![Stratum::default(); AGE_BANDS.len()];
    let mut population = vec![0.0; AGE_BANDS.len()];
    for (&birth_year, &persons) in &data.population {
        if let Some(band) = study.band_of(birth_year) {
            population[band] += persons as f64 * days;
        }
    }
    // The population's person-time ends at death too: the days after a resident's death
    // are nobody's, vaccinated or not.
    for (&(birth_year, alive_until), &persons) in &data.deaths {
        if let Some(band) = study.band_of(birth_year) {
            let start = (alive_until + 1).max(first);
            if start <= last {
                population[band] -= persons as f64 * f64::from(last - start + 1);
            }
        }
    }
    for (&(birth_year, protected, alive_until), &persons) in &data.vaccinated {
        if let Some(band) = study.band_of(birth_year) {
            let (start, end) = (protected.max(first), alive_until.min(last));
            if start <= end {
                strata[band].t1 += persons as f64 * f64::from(end - start + 1);
            }
        }
    }
    for (&(birth_year, onset, vaccinated), &cases) in &data.cases {
        if onset < first || onset > last {
            continue;
        }
        if let Some(band) = study.band_of(birth_year) {
            if vaccinated {
                strata[band].a += cases;
            } else {
                strata[band].b += cases;
            }
        }
    }
    for (stratum, population) in strata.iter_mut().zip(population) {
        stratum.t0 = population - stratum.t1;
    }
    strata
}

/// The calendar months of the period, clipped to it: (label, first day, last day).
pub(super) fn months(study: &Study) -> Vec<(String, i32, i32)> {
    let mut out = Vec::new();
    let (mut year, mut month, _) = civil_from_days(study.from);
    loop {
        let start = days_from_civil(year, month, 1);
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = days_from_civil(next_year, next_month, 1) - 1;
        if start > study.to {
            break;
        }
        out.push((
            format!("{year:04}-{month:02}"),
            start.max(study.from),
            end.min(study.to),
        ));
        (year, month) = (next_year, next_month);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::study::Outcome;
    use super::*;
    use crate::dates::parse_iso;
    use std::collections::BTreeMap;

    fn study(from: &str, to: &str) -> Study {
        Study {
            antigen: "influenza".into(),
            disease: "J10".into(),
            from: parse_iso(from).unwrap(),
            to: parse_iso(to).unwrap(),
            lag_days: 14,
            dose: 1,
            by_band: true,
            doses_since: None,
            outcome: Outcome::Any,
            episode_days: 90,
        }
    }

    #[test]
    fn person_days_by_hand() {
        // Period 2024-10-01..2024-10-31 (31 days). Band 65-74 (born 1955, 69 in 2024):
        // 10 residents = 310 person-days. One person protected from 2024-10-22 (10 days:
        // 22..31), one from before the period (31 days): T1 = 41, T0 = 269. A case on
        // 2024-10-25 in a protected person, two unprotected.
        let study = study("2024-10-01", "2024-10-31");
        let mut data = StudyData {
            vaccinated: BTreeMap::new(),
            cases: BTreeMap::new(),
            population: BTreeMap::from([(1955, 10)]),
            deaths: BTreeMap::new(),
            reference_year: Some(2025),
        };
        data.vaccinated
            .insert((1955, parse_iso("2024-10-22").unwrap(), study.to), 1);
        data.vaccinated.insert((1955, study.from, study.to), 1);
        data.cases
            .insert((1955, parse_iso("2024-10-25").unwrap(), true), 1);
        data.cases
            .insert((1955, parse_iso("2024-10-05").unwrap(), false), 2);
        let strata = strata(&study, &data, study.from, study.to);
        assert_eq!(
            strata[3],
            Stratum {
                a: 1,
                b: 2,
                t1: 41.0,
                t0: 269.0
            }
        );
        assert_eq!(strata[2], Stratum::default());
    }

    #[test]
    fn person_time_ends_at_death() {
        // Period 2024-10-01..2024-10-31 (31 days), band 65-74, 10 residents: 310 days. One
        // vaccinated resident protected from the start died in October (month of death
        // 2024-10): alive to the month's end, 31 vaccinated days. Another vaccinated resident
        // protected from the start died in September, before the period (after the
        // population's reference date, so the population counts them): no vaccinated days.
        // An unvaccinated resident died in the same September: the two September deaths
        // take 2 × 31 = 62 days off the population's 310. Then T1 = 31, T0 = 310 - 62 - 31
        // = 217.
        let study = study("2024-10-01", "2024-10-31");
        let day = |text| parse_iso(text).unwrap();
        let data = StudyData {
            vaccinated: BTreeMap::from([
                ((1955, study.from, day("2024-10-31")), 1),
                ((1955, study.from, day("2024-09-30")), 1),
            ]),
            cases: BTreeMap::new(),
            population: BTreeMap::from([(1955, 10)]),
            deaths: BTreeMap::from([((1955, day("2024-09-30")), 2)]),
            reference_year: Some(2024),
        };
        let strata = strata(&study, &data, study.from, study.to);
        assert_eq!(strata[3].t1, 31.0);
        assert_eq!(strata[3].t0, 217.0);
        // The first half of the month, for the monthly rates: T1 = 15, T0 = 150 - 30 - 15.
        let half = super::strata(&study, &data, study.from, day("2024-10-15"));
        assert_eq!((half[3].t1, half[3].t0), (15.0, 105.0));
    }

    #[test]
    fn months_are_clipped_to_the_period() {
        let months = months(&study("2024-10-15", "2024-12-03"));
        let labels: Vec<&str> = months.iter().map(|(label, _, _)| label.as_str()).collect();
        assert_eq!(labels, ["2024-10", "2024-11", "2024-12"]);
        assert_eq!(months[0].1, parse_iso("2024-10-15").unwrap());
        assert_eq!(months[2].2, parse_iso("2024-12-03").unwrap());
    }
}
