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
    for (&(birth_year, protected), &persons) in &data.vaccinated {
        if let Some(band) = study.band_of(birth_year) {
            let start = protected.max(first);
            if start <= last {
                strata[band].t1 += persons as f64 * f64::from(last - start + 1);
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
            reference_year: Some(2025),
        };
        data.vaccinated
            .insert((1955, parse_iso("2024-10-22").unwrap()), 1);
        data.vaccinated.insert((1955, study.from), 1);
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
    fn months_are_clipped_to_the_period() {
        let months = months(&study("2024-10-15", "2024-12-03"));
        let labels: Vec<&str> = months.iter().map(|(label, _, _)| label.as_str()).collect();
        assert_eq!(labels, ["2024-10", "2024-11", "2024-12"]);
        assert_eq!(months[0].1, parse_iso("2024-10-15").unwrap());
        assert_eq!(months[2].2, parse_iso("2024-12-03").unwrap());
    }
}
