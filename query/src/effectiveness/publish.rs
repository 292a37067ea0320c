//! From strata to published answers: estimates with their intervals or the reason there is
//! none, the screening cross-check, rates, and the withholding of small case counts
//! ([`super::withhold`]).

use std::collections::BTreeMap;

use super::answer::{
    BandEstimate, ComparisonGroup, EffectivenessAnswer, EstimateFigures, PooledEstimate, RateRow,
    RatesAnswer, Screening, DEFINITION_VERSION,
};
use super::estimate::{mantel_haenszel, rate_ratio, screening, Estimate, Stratum};
use super::person_time::{months, strata};
use super::read::StudyData;
use super::study::Study;
use super::withhold::{adjustment_strata, withheld_bands};
use crate::answer_cache::TableVersions;
use crate::coverage::AGE_BANDS;
use crate::dates::format_iso;
use crate::disclosure::{round4, Cell, Suppression};
use crate::population::population_source;

/// Days in a year, for person-years.
const DAYS_PER_YEAR: f64 = 365.25;

/// Why a withheld row has no figures. One reason for bands withheld for their own small
/// counts and for those withheld to protect them: telling which is which would narrow the
/// protected band's counts.
fn withheld_reason(rule: Suppression) -> String {
    format!(
        "withheld: fewer than {} cases in a group, here or in another band this one protects",
        rule.threshold
    )
}

/// One estimate: VE with its interval (or the reason there is none), the counts behind it;
/// nothing but the label when `hide`.
fn estimate_figures(
    stratum: &Stratum,
    estimate: Result<Estimate, &str>,
    hide: bool,
    rule: Suppression,
) -> EstimateFigures {
    if hide {
        return EstimateFigures {
            ve: None,
            ci_low: None,
            ci_high: None,
            irr: None,
            interval_method: None,
            cases_vaccinated: None,
            cases_unvaccinated: None,
            person_days_vaccinated: None,
            person_days_unvaccinated: None,
            suppressed: true,
            reason: Some(withheld_reason(rule)),
        };
    }
    let (ve, ci_low, ci_high, irr, interval_method, reason) = match estimate {
        Ok(estimate) => {
            let (low, high) = estimate.ve_interval();
            // One group without a case: a bound, never VE = 1 (or −∞).
            let reason = match (estimate.irr_low, estimate.irr_high) {
                (None, _) => Some("no cases among the vaccinated: VE has a lower bound only (exact, one-sided 97.5 %)".to_string()),
                (_, None) => Some("no cases among the unvaccinated: VE has an upper bound only (exact, one-sided 97.5 %)".to_string()),
                _ => None,
            };
            (
                estimate.ve().map(round4),
                low.map(round4),
                high.map(round4),
                estimate.irr.map(round4),
                Some(estimate.method),
                reason,
            )
        }
        Err(reason) => (None, None, None, None, None, Some(reason.to_string())),
    };
    EstimateFigures {
        ve,
        ci_low,
        ci_high,
        irr,
        interval_method,
        cases_vaccinated: Some(stratum.a),
        cases_unvaccinated: Some(stratum.b),
        person_days_vaccinated: Some(stratum.t1.round() as i64),
        person_days_unvaccinated: Some(stratum.t0.round() as i64),
        suppressed: false,
        reason,
    }
}

/// Farrington's screening method on one stratum: PCV from its cases, PPV the `coverage` of
/// its residents on the period's first day (`None` when withheld or unknown, with the
/// reason).
fn screening_figures(
    stratum: &Stratum,
    coverage: Result<f64, &str>,
    hide: bool,
    on: &str,
) -> Screening {
    let none = |reason: &str| Screening {
        ve: None,
        pcv: None,
        ppv: None,
        ppv_on: on.to_string(),
        reason: Some(reason.into()),
    };
    if hide {
        return none("withheld with the counts");
    }
    let cases = stratum.a + stratum.b;
    if cases == 0 {
        return none("no cases");
    }
    let pcv = stratum.a as f64 / cases as f64;
    let ppv = match coverage {
        Ok(ppv) => ppv,
        Err(reason) => {
            return Screening {
                pcv: Some(round4(pcv)),
                ..none(reason)
            }
        }
    };
    let (ve, reason) = match screening(pcv, ppv) {
        Ok(ve) => (Some(round4(ve)), None),
        Err(reason) => (None, Some(reason.to_string())),
    };
    Screening {
        ve,
        pcv: Some(round4(pcv)),
        ppv: Some(round4(ppv)),
        ppv_on: on.to_string(),
        reason,
    }
}

/// Coverage on the period's first day per band (vaccinated residents over residents), and
/// pooled, each with the shared suppression rule and complementary suppression against the
/// pooled cell: a withheld coverage gives the reason instead.
fn band_coverage(
    study: &Study,
    data: &StudyData,
    vaccinated_at_start: &BTreeMap<i32, u64>,
    rule: Suppression,
) -> (Vec<Result<f64, &'static str>>, Result<f64, &'static str>) {
    let mut cells = vec![Cell::new(0, Some(0)); AGE_BANDS.len()];
    for (&birth_year, &residents) in &data.population {
        if let Some(band) = study.band_of(birth_year) {
            cells[band].denominator = Some(cells[band].denominator.unwrap_or(0) + residents);
        }
    }
    for (&birth_year, &vaccinated) in vaccinated_at_start {
        if let Some(band) = study.band_of(birth_year) {
            cells[band].numerator += vaccinated;
        }
    }
    let total = Cell::new(
        cells.iter().map(|cell| cell.numerator).sum(),
        Some(cells.iter().filter_map(|cell| cell.denominator).sum()),
    );
    let (withheld, total_withheld) = rule.apply(&cells, Some(&total));
    let share = |cell: &Cell, hidden: bool| {
        if hidden {
            return Err("the band's coverage is withheld (small counts)");
        }
        match cell.rate() {
            Some(rate) if rate <= 1.0 => Ok(rate),
            Some(_) => Err("more residents counted vaccinated than the population holds"),
            None => Err("no residents"),
        }
    };
    (
        cells
            .iter()
            .zip(withheld)
            .map(|(cell, hidden)| share(cell, hidden))
            .collect(),
        share(&total, total_withheld),
    )
}

/// Who the unvaccinated are, in words and fields (docs/effectiveness.md, "Unvaccinated").
fn comparison_group(study: &Study) -> ComparisonGroup {
    let doses = if study.dose == 1 {
        "no valid dose".to_string()
    } else {
        format!("fewer than {} valid doses", study.dose)
    };
    let since = study
        .doses_since
        .map(|day| format!(" given on or after {}", format_iso(day)))
        .unwrap_or_default();
    let earlier = study
        .doses_since
        .map(|day| {
            format!(
                " Persons vaccinated only before {} (an earlier season) are unvaccinated.",
                format_iso(day)
            )
        })
        .unwrap_or_default();
    ComparisonGroup {
        definition: format!(
            "Residents of the age band who, on the day, have {doses} of a {antigen}-containing \
             vaccine{since}, or whose dose {dose} was given less than {lag} days before (the \
             time it takes to protect).{earlier} Their person-time is the band's population \
             person-time minus the vaccinated person-time.",
            antigen = study.antigen,
            dose = study.dose,
            lag = study.lag_days,
        ),
        fewer_doses_than: study.dose,
        within_lag_days: study.lag_days,
        doses_before_ignored: study.doses_since.map(format_iso),
    }
}

pub(super) fn effectiveness_answer(
    study: &Study,
    data: &StudyData,
    vaccinated_at_start: &BTreeMap<i32, u64>,
    versions: &TableVersions,
    rule: Suppression,
) -> EffectivenessAnswer {
    let strata = strata(study, data, study.from, study.to);
    let pooled = strata
        .iter()
        .fold(Stratum::default(), |sum, s| sum.plus(*s));
    let withheld = withheld_bands(rule, &strata);
    // A band with more vaccinated person-time than residents poisons the pooled sums too.
    let overdrawn = strata.iter().find(|stratum| stratum.t0 < 0.0);
    let (overall_estimate, crude_estimate) = match overdrawn {
        Some(stratum) => {
            let reason = rate_ratio(stratum).err().unwrap_or_default();
            (Err(reason), Err(reason))
        }
        None => (
            mantel_haenszel(&adjustment_strata(&strata, &withheld)),
            rate_ratio(&pooled),
        ),
    };
    let on = format_iso(study.from);
    let (coverage, pooled_coverage) = band_coverage(study, data, vaccinated_at_start, rule);
    let rows = if study.by_band {
        strata
            .iter()
            .zip(AGE_BANDS)
            .zip(withheld.bands.iter().zip(coverage))
            .map(
                |((stratum, (label, _, _)), (&hide, coverage))| BandEstimate {
                    age_band: label,
                    figures: estimate_figures(stratum, rate_ratio(stratum), hide, rule),
                    screening: screening_figures(stratum, coverage, hide, &on),
                },
            )
            .collect()
    } else {
        Vec::new()
    };
    EffectivenessAnswer {
        study: study.describe("cohort"),
        overall: PooledEstimate {
            figures: estimate_figures(&pooled, overall_estimate, withheld.pooled, rule),
            estimator: "mantel_haenszel",
        },
        crude: PooledEstimate {
            figures: estimate_figures(&pooled, crude_estimate, withheld.pooled, rule),
            estimator: "crude",
        },
        screening: screening_figures(&pooled, pooled_coverage, withheld.pooled, &on),
        unvaccinated: comparison_group(study),
        rows,
        population_source: population_source(data.reference_year),
        definition_version: DEFINITION_VERSION,
        table_versions: versions.clone(),
        suppression_threshold: rule.threshold,
    }
}

/// Rates by month and band, withheld as the effectiveness answer of the same study
/// withholds its bands (a band withheld there is withheld in every month here, or the months
/// would add up to it), and within each published band with complementary suppression
/// across its months against the band's total, which the effectiveness answer publishes.
pub(super) fn rates_answer(
    study: &Study,
    data: &StudyData,
    versions: &TableVersions,
    rule: Suppression,
) -> RatesAnswer {
    let per_100k = |cases: u64, days: f64| {
        (days > 0.0).then(|| round4(cases as f64 / (days / DAYS_PER_YEAR) * 100_000.0))
    };
    let months = months(study);
    let by_month: Vec<Vec<Stratum>> = months
        .iter()
        .map(|(_, first, last)| strata(study, data, *first, *last))
        .collect();
    let whole = withheld_bands(rule, &strata(study, data, study.from, study.to));
    let cell = |stratum: &Stratum| Cell::new(stratum.a, Some(stratum.a + stratum.b));
    let mut hidden = vec![vec![false; AGE_BANDS.len()]; months.len()];
    for band in 0..AGE_BANDS.len() {
        let cells: Vec<Cell> = by_month.iter().map(|month| cell(&month[band])).collect();
        let total = by_month
            .iter()
            .fold(Stratum::default(), |sum, month| sum.plus(month[band]));
        let (flags, _) = rule.apply(&cells, Some(&cell(&total)));
        for (month, flag) in flags.into_iter().enumerate() {
            hidden[month][band] = whole.bands[band] || whole.pooled || flag;
        }
    }
    let mut rows = Vec::new();
    for ((label, _, _), (month_strata, month_hidden)) in
        months.iter().zip(by_month.iter().zip(&hidden))
    {
        for ((stratum, (band, _, _)), &hide) in month_strata.iter().zip(AGE_BANDS).zip(month_hidden)
        {
            let shown = |value: f64| (!hide).then_some(value);
            rows.push(RateRow {
                month: label.clone(),
                age_band: band,
                cases_vaccinated: (!hide).then_some(stratum.a),
                person_years_vaccinated: shown(round4(stratum.t1 / DAYS_PER_YEAR)),
                rate_vaccinated: per_100k(stratum.a, stratum.t1).filter(|_| !hide),
                cases_unvaccinated: (!hide).then_some(stratum.b),
                person_years_unvaccinated: shown(round4(stratum.t0 / DAYS_PER_YEAR)),
                rate_unvaccinated: per_100k(stratum.b, stratum.t0).filter(|_| !hide),
                suppressed: hide,
            });
        }
    }
    RatesAnswer {
        study: study.describe("rates"),
        rate_unit: "cases per 100,000 person-years",
        unvaccinated: comparison_group(study),
        rows,
        population_source: population_source(data.reference_year),
        definition_version: DEFINITION_VERSION,
        table_versions: versions.clone(),
        suppression_threshold: rule.threshold,
    }
}
