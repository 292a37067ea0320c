//! From strata to published answers: estimates with their intervals or the reason there is
//! none, the screening cross-check, rates, and the withholding of small case counts.

use super::answer::{
    BandEstimate, EffectivenessAnswer, EstimateFigures, PooledEstimate, RateRow, RatesAnswer,
    Screening,
};
use super::estimate::{mantel_haenszel, rate_ratio, screening, Estimate, Stratum};
use super::person_time::{months, strata};
use super::read::StudyData;
use super::study::Study;
use crate::answer_cache::TableVersions;
use crate::coverage::AGE_BANDS;
use crate::disclosure::{round4, Suppression};
use crate::population::population_source;

/// Days in a year, for person-years.
const DAYS_PER_YEAR: f64 = 365.25;

/// Whether a stratum's case counts must be withheld (CONTRACTS.md rule on counts).
fn withheld(rule: Suppression, stratum: &Stratum) -> bool {
    rule.is_small(stratum.a) || rule.is_small(stratum.b)
}

/// One estimate: VE with its interval (or the reason there is none), the counts behind it.
fn estimate_figures(
    stratum: &Stratum,
    estimate: Result<Estimate, &str>,
    rule: Suppression,
) -> EstimateFigures {
    let hide = withheld(rule, stratum);
    let (ve, ci_low, ci_high, irr, reason) = match (&estimate, hide) {
        (_, true) => (
            None,
            None,
            None,
            None,
            Some(format!(
                "fewer than {} cases in a group: withheld",
                rule.threshold
            )),
        ),
        (Ok(estimate), false) => {
            let (low, high) = estimate.ve_interval();
            (
                Some(round4(estimate.ve())),
                Some(round4(low)),
                Some(round4(high)),
                Some(round4(estimate.irr)),
                None,
            )
        }
        (Err(reason), false) => (None, None, None, None, Some(reason.to_string())),
    };
    let count = |value: u64| (!hide).then_some(value);
    EstimateFigures {
        ve,
        ci_low,
        ci_high,
        irr,
        cases_vaccinated: count(stratum.a),
        cases_unvaccinated: count(stratum.b),
        person_days_vaccinated: stratum.t1.round() as i64,
        person_days_unvaccinated: stratum.t0.round() as i64,
        suppressed: hide,
        reason,
    }
}

/// No screening estimate, for `reason`.
fn no_screening(reason: &str) -> Screening {
    Screening {
        ve: None,
        pcv: None,
        ppv: None,
        reason: Some(reason.into()),
    }
}

/// Farrington's cross-check on one stratum: PCV from the cases, PPV as the vaccinated share
/// of the person-time (the period's average coverage).
fn screening_figures(stratum: &Stratum, rule: Suppression) -> Screening {
    if withheld(rule, stratum) {
        return no_screening("withheld with the counts");
    }
    let cases = stratum.a + stratum.b;
    let time = stratum.t1 + stratum.t0;
    if cases == 0 || time <= 0.0 || stratum.t0 < 0.0 {
        return no_screening("no cases or no person-time");
    }
    let pcv = stratum.a as f64 / cases as f64;
    let ppv = stratum.t1 / time;
    let (ve, reason) = match screening(pcv, ppv) {
        Ok(ve) => (Some(round4(ve)), None),
        Err(reason) => (None, Some(reason.to_string())),
    };
    Screening {
        ve,
        pcv: Some(round4(pcv)),
        ppv: Some(round4(ppv)),
        reason,
    }
}

pub(super) fn effectiveness_answer(
    study: &Study,
    data: &StudyData,
    versions: &TableVersions,
    rule: Suppression,
) -> EffectivenessAnswer {
    let strata = strata(study, data, study.from, study.to);
    let pooled = strata
        .iter()
        .fold(Stratum::default(), |sum, s| sum.plus(*s));
    // A band with more vaccinated person-time than residents poisons the pooled sums too.
    let overdrawn = strata.iter().find(|stratum| stratum.t0 < 0.0);
    let pooled_screening = match overdrawn {
        Some(_) => no_screening("a band has more vaccinated person-time than the population holds"),
        None => screening_figures(&pooled, rule),
    };
    let crude_estimate = match overdrawn {
        Some(stratum) => Err(rate_ratio(stratum).err().unwrap_or_default()),
        None => rate_ratio(&pooled),
    };
    let rows = if study.by_band {
        strata
            .iter()
            .zip(AGE_BANDS)
            .map(|(stratum, (label, _, _))| BandEstimate {
                age_band: label,
                figures: estimate_figures(stratum, rate_ratio(stratum), rule),
                screening: screening_figures(stratum, rule),
            })
            .collect()
    } else {
        Vec::new()
    };
    EffectivenessAnswer {
        study: study.describe("cohort"),
        overall: PooledEstimate {
            figures: estimate_figures(&pooled, mantel_haenszel(&strata), rule),
            estimator: "mantel_haenszel",
            screening: Some(pooled_screening),
        },
        crude: PooledEstimate {
            figures: estimate_figures(&pooled, crude_estimate, rule),
            estimator: "crude",
            screening: None,
        },
        rows,
        population_source: population_source(data.reference_year),
        table_versions: versions.clone(),
        suppression_threshold: rule.threshold,
    }
}

pub(super) fn rates_answer(
    study: &Study,
    data: &StudyData,
    versions: &TableVersions,
    rule: Suppression,
) -> RatesAnswer {
    let per_100k = |cases: u64, days: f64| {
        (days > 0.0).then(|| round4(cases as f64 / (days / DAYS_PER_YEAR) * 100_000.0))
    };
    let mut rows = Vec::new();
    for (label, first, last) in months(study) {
        for (stratum, (band, _, _)) in strata(study, data, first, last).iter().zip(AGE_BANDS) {
            let hide = withheld(rule, stratum);
            rows.push(RateRow {
                month: label.clone(),
                age_band: band,
                cases_vaccinated: (!hide).then_some(stratum.a),
                person_years_vaccinated: round4(stratum.t1 / DAYS_PER_YEAR),
                rate_vaccinated: per_100k(stratum.a, stratum.t1).filter(|_| !hide),
                cases_unvaccinated: (!hide).then_some(stratum.b),
                person_years_unvaccinated: round4(stratum.t0 / DAYS_PER_YEAR),
                rate_unvaccinated: per_100k(stratum.b, stratum.t0).filter(|_| !hide),
                suppressed: hide,
            });
        }
    }
    RatesAnswer {
        study: study.describe("rates"),
        rate_unit: "cases per 100,000 person-years",
        rows,
        population_source: population_source(data.reference_year),
        table_versions: versions.clone(),
        suppression_threshold: rule.threshold,
    }
}
