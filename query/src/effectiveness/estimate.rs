//! Rate ratios and vaccine effectiveness from cases and person-time: one stratum, the crude
//! pooled estimate, the Mantel–Haenszel estimate over strata, and the screening method.
//! Every function says why it gives no estimate instead of returning infinities or NaN.

use serde::Serialize;
use statrs::function::beta::inv_beta_reg;
use utoipa::ToSchema;

use crate::disclosure::Z95;

/// Cases and person-days of one stratum: `a` cases among the vaccinated over `t1` days,
/// `b` among the unvaccinated over `t0` days.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stratum {
    pub a: u64,
    pub b: u64,
    pub t1: f64,
    pub t0: f64,
}

impl Stratum {
    pub fn plus(self, other: Stratum) -> Stratum {
        Stratum {
            a: self.a + other.a,
            b: self.b + other.b,
            t1: self.t1 + other.t1,
            t0: self.t0 + other.t0,
        }
    }
}

/// How an interval was computed: named in every answer, because a reader must know whether
/// a small band's interval is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    /// exp(log IRR ± 1.959964·sqrt(1/a + 1/b)): both groups have [`EXACT_BELOW`] cases or more.
    WaldLog,
    /// Clopper–Pearson on the vaccinated share of the cases, conditional on their total.
    ExactConditional,
    /// The same, when one group has no case: only one bound exists.
    ExactConditionalOneSided,
    /// The Mantel–Haenszel estimate's Greenland–Robins variance of log IRR.
    GreenlandRobins,
}

/// Below this many cases in either group of a stratum, its interval is exact: the normal
/// approximation of log IRR needs enough cases on both sides (Rothman, Modern Epidemiology).
pub const EXACT_BELOW: u64 = 10;

/// Half the 5 % left outside a two-sided 95 % interval.
const ALPHA_HALF: f64 = 0.025;

/// A rate ratio with its 95 % interval, and VE = 1 − IRR (interval flipped). With no case
/// in one group the ratio itself is 0 or unbounded: `irr` is then `None` and only the one
/// finite bound is given (`irr_high` when no vaccinated case, `irr_low` when no
/// unvaccinated case).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub irr: Option<f64>,
    pub irr_low: Option<f64>,
    pub irr_high: Option<f64>,
    pub method: IntervalMethod,
}

impl Estimate {
    fn from_log(log_irr: f64, se: f64, method: IntervalMethod) -> Estimate {
        Estimate {
            irr: Some(log_irr.exp()),
            irr_low: Some((log_irr - Z95 * se).exp()),
            irr_high: Some((log_irr + Z95 * se).exp()),
            method,
        }
    }

    pub fn ve(&self) -> Option<f64> {
        self.irr.map(|irr| 1.0 - irr)
    }

    /// The VE interval: (1 − upper IRR, 1 − lower IRR); a missing IRR bound is a missing VE
    /// bound (no vaccinated case: VE has a lower bound only).
    pub fn ve_interval(&self) -> (Option<f64>, Option<f64>) {
        (
            self.irr_high.map(|high| 1.0 - high),
            self.irr_low.map(|low| 1.0 - low),
        )
    }
}

fn person_time_problem(stratum: &Stratum) -> Option<&'static str> {
    if stratum.t0 < 0.0 {
        return Some("the registry counts more vaccinated person-time than the population holds (persons missing from the population)");
    }
    if stratum.t1 <= 0.0 {
        return Some("no vaccinated person-time");
    }
    if stratum.t0 <= 0.0 {
        return Some("no unvaccinated person-time");
    }
    None
}

/// IRR = (a/T1)/(b/T0). With [`EXACT_BELOW`] cases or more in both groups, the interval is
/// exp(log IRR ± z·sqrt(1/a + 1/b)); below, it is exact ([`exact_conditional`]).
pub fn rate_ratio(stratum: &Stratum) -> Result<Estimate, &'static str> {
    if let Some(problem) = person_time_problem(stratum) {
        return Err(problem);
    }
    if stratum.a == 0 && stratum.b == 0 {
        return Err("no cases in either group");
    }
    if stratum.a < EXACT_BELOW || stratum.b < EXACT_BELOW {
        return Ok(exact_conditional(stratum));
    }
    let (a, b) = (stratum.a as f64, stratum.b as f64);
    let log_irr = ((a / stratum.t1) / (b / stratum.t0)).ln();
    Ok(Estimate::from_log(
        log_irr,
        (1.0 / a + 1.0 / b).sqrt(),
        IntervalMethod::WaldLog,
    ))
}

/// The exact interval of a rate ratio (Rothman, Modern Epidemiology, "exact methods" for
/// person-time data): given the n = a + b cases, the vaccinated ones are binomial with
/// π = IRR·T1/(IRR·T1 + T0). Clopper–Pearson (1934) bounds π — the lower bound the 2.5 %
/// quantile of Beta(a, b + 1), the upper the 97.5 % quantile of Beta(a + 1, b) — and
/// IRR = π/(1 − π) · T0/T1 turns them into IRR bounds. With a = 0 the lower bound is 0 and
/// with b = 0 the upper is unbounded: one-sided, and no point estimate is given. The caller
/// has checked that both person-times are positive and n > 0.
pub fn exact_conditional(stratum: &Stratum) -> Estimate {
    let (a, b) = (stratum.a as f64, stratum.b as f64);
    let irr_of = |share: f64| share / (1.0 - share) * stratum.t0 / stratum.t1;
    let irr_low = (stratum.a > 0).then(|| irr_of(inv_beta_reg(a, b + 1.0, ALPHA_HALF)));
    let irr_high = (stratum.b > 0).then(|| irr_of(inv_beta_reg(a + 1.0, b, 1.0 - ALPHA_HALF)));
    let one_sided = stratum.a == 0 || stratum.b == 0;
    Estimate {
        irr: (!one_sided).then(|| (a / stratum.t1) / (b / stratum.t0)),
        irr_low,
        irr_high,
        method: if one_sided {
            IntervalMethod::ExactConditionalOneSided
        } else {
            IntervalMethod::ExactConditional
        },
    }
}

/// The Mantel–Haenszel rate ratio over strata, IRR = Σ a·T0/T / Σ b·T1/T, with the
/// Greenland–Robins variance Var(log IRR) = Σ M·T1·T0/T² / (Σ a·T0/T · Σ b·T1/T),
/// M = a + b (valid when strata are many and sparse: Greenland & Robins 1985). Strata
/// without person-time in both groups carry no information and are left out. With no case
/// in one group in every stratum, the bound of [`exact_stratified_bound`] instead.
pub fn mantel_haenszel(strata: &[Stratum]) -> Result<Estimate, &'static str> {
    let (mut numerator, mut denominator, mut variance) = (0.0, 0.0, 0.0);
    let mut informative = Vec::new();
    for stratum in strata {
        if person_time_problem(stratum).is_some() {
            if stratum.t0 < 0.0 {
                return Err(person_time_problem(stratum).unwrap_or_default());
            }
            continue;
        }
        informative.push(*stratum);
        let t = stratum.t1 + stratum.t0;
        numerator += stratum.a as f64 * stratum.t0 / t;
        denominator += stratum.b as f64 * stratum.t1 / t;
        variance += (stratum.a + stratum.b) as f64 * stratum.t1 * stratum.t0 / (t * t);
    }
    if informative.is_empty() {
        return Err("no stratum has both vaccinated and unvaccinated person-time");
    }
    if numerator == 0.0 && denominator == 0.0 {
        return Err("no cases in any stratum");
    }
    if numerator == 0.0 || denominator == 0.0 {
        return Ok(exact_stratified_bound(&informative));
    }
    let log_irr = (numerator / denominator).ln();
    let se = (variance / (numerator * denominator)).sqrt();
    Ok(Estimate::from_log(
        log_irr,
        se,
        IntervalMethod::GreenlandRobins,
    ))
}

/// The exact one-sided bound over strata when one group has no case in any of them. Given
/// each stratum's n cases, its vaccinated cases are binomial with
/// π = IRR·T1/(IRR·T1 + T0), independently; with no vaccinated case anywhere, the upper
/// bound on IRR is where P(no vaccinated case) = Π (1 − π)ⁿ falls to 2.5 % (with no
/// unvaccinated case, the lower bound where Π πⁿ does). One stratum gives the Clopper–Pearson
/// bound of [`exact_conditional`]. Found by bisection on log IRR: the probability is
/// monotone in IRR.
pub fn exact_stratified_bound(strata: &[Stratum]) -> Estimate {
    let no_vaccinated = strata.iter().all(|stratum| stratum.a == 0);
    // log P(the observed extreme | IRR): decreasing in IRR with no vaccinated case,
    // increasing with no unvaccinated case.
    let log_probability = |log_irr: f64| -> f64 {
        strata
            .iter()
            .map(|stratum| {
                let n = (stratum.a + stratum.b) as f64;
                let vaccinated = log_irr.exp() * stratum.t1;
                let share = vaccinated / (vaccinated + stratum.t0);
                n * if no_vaccinated {
                    (1.0 - share).ln()
                } else {
                    share.ln()
                }
            })
            .sum()
    };
    let target = ALPHA_HALF.ln();
    let (mut low, mut high) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let middle = (low + high) / 2.0;
        let above = log_probability(middle) > target;
        // Move towards where the probability crosses 2.5 %.
        if above == no_vaccinated {
            low = middle;
        } else {
            high = middle;
        }
    }
    let bound = ((low + high) / 2.0).exp();
    Estimate {
        irr: None,
        irr_low: (!no_vaccinated).then_some(bound),
        irr_high: no_vaccinated.then_some(bound),
        method: IntervalMethod::ExactConditionalOneSided,
    }
}

/// Farrington's screening method: VE = 1 − PCV/(1 − PCV) · (1 − PPV)/PPV, with PCV the share
/// of cases vaccinated and PPV the share of the population vaccinated. No vaccinated case
/// would give VE = 1 exactly, which no data can show: no estimate then, as for the rate ratio.
pub fn screening(pcv: f64, ppv: f64) -> Result<f64, &'static str> {
    if pcv <= 0.0 {
        return Err(
            "no case was vaccinated: the screening method gives no estimate (it would say VE = 1)",
        );
    }
    if pcv >= 1.0 {
        return Err("every case was vaccinated: the screening method gives no estimate");
    }
    if !(ppv > 0.0 && ppv < 1.0) {
        return Err(
            "the population is all or none vaccinated: the screening method gives no estimate",
        );
    }
    Ok(1.0 - pcv / (1.0 - pcv) * (1.0 - ppv) / ppv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn one_stratum_by_hand() {
        // 10 cases over 1,000 vaccinated days, 40 over 2,000 unvaccinated: IRR = 0.01/0.02
        // = 0.5, SE = sqrt(1/10 + 1/40) = 0.353553, interval exp(ln 0.5 ± 0.692952) =
        // (0.250049, 0.999805); VE 0.5 (0.000195, 0.749951). Ten cases: not exact.
        let estimate = rate_ratio(&Stratum {
            a: 10,
            b: 40,
            t1: 1000.0,
            t0: 2000.0,
        })
        .unwrap();
        assert_eq!(estimate.method, IntervalMethod::WaldLog);
        assert!(close(estimate.irr.unwrap(), 0.5));
        assert!(close(estimate.irr_low.unwrap(), 0.250049), "{estimate:?}");
        assert!(close(estimate.irr_high.unwrap(), 0.999805), "{estimate:?}");
        assert!(close(estimate.ve().unwrap(), 0.5));
    }

    #[test]
    fn fewer_than_ten_cases_give_the_exact_interval() {
        // a = 3, b = 12, T1 = 1,000, T0 = 2,000: IRR = 0.003/0.006 = 0.5. Given n = 15
        // cases, a ~ Binomial(15, π). Clopper–Pearson bounds on π, found independently by
        // bisection on the binomial tails (P(X ≥ 3 | π_L) = 0.025, P(X ≤ 3 | π_U) = 0.025,
        // in Python, double precision): π_L = 0.043312, π_U = 0.480891; IRR = π/(1 − π)·2000/1000:
        // (0.0905457, 1.8527564).
        let estimate = rate_ratio(&Stratum {
            a: 3,
            b: 12,
            t1: 1000.0,
            t0: 2000.0,
        })
        .unwrap();
        assert_eq!(estimate.method, IntervalMethod::ExactConditional);
        assert!(close(estimate.irr.unwrap(), 0.5));
        assert!(close(estimate.irr_low.unwrap(), 0.0905457), "{estimate:?}");
        assert!(close(estimate.irr_high.unwrap(), 1.8527564), "{estimate:?}");
        // Nine vaccinated cases are still fewer than ten: 9 and 30 over 1,000 days each,
        // by the same bisection (0.1252859, 0.6481566).
        let nine = rate_ratio(&Stratum {
            a: 9,
            b: 30,
            t1: 1000.0,
            t0: 1000.0,
        })
        .unwrap();
        assert_eq!(nine.method, IntervalMethod::ExactConditional);
        assert!(close(nine.irr_low.unwrap(), 0.1252859), "{nine:?}");
        assert!(close(nine.irr_high.unwrap(), 0.6481566), "{nine:?}");
    }

    #[test]
    fn no_vaccinated_case_gives_a_lower_bound_on_ve_not_ve_one() {
        // a = 0, b = 8, T1 = 500, T0 = 1,500: P(X = 0 | π_U) = (1 − π_U)^8 = 0.025, so
        // π_U = 1 − 0.025^(1/8) = 0.369416, IRR ≤ 0.369416/0.630584 · 3 = 1.757500: VE is at
        // least 1 − 1.7575 = −0.7575, and has no point estimate.
        let estimate = rate_ratio(&Stratum {
            a: 0,
            b: 8,
            t1: 500.0,
            t0: 1500.0,
        })
        .unwrap();
        assert_eq!(estimate.method, IntervalMethod::ExactConditionalOneSided);
        assert_eq!(estimate.irr, None);
        assert_eq!(estimate.ve(), None);
        let (ve_low, ve_high) = estimate.ve_interval();
        let pi = 1.0 - 0.025f64.powf(1.0 / 8.0);
        assert!(
            close(ve_low.unwrap(), 1.0 - pi / (1.0 - pi) * 3.0),
            "{estimate:?}"
        );
        assert!(close(ve_low.unwrap(), -0.7575), "{estimate:?}");
        assert_eq!(ve_high, None);
        // No unvaccinated case: an upper bound on VE only. a = 2, b = 0: π_L solves
        // π^2 = 0.025, π_L = 0.158114; IRR ≥ 0.158114/0.841886 · 3 = 0.563433.
        let estimate = rate_ratio(&Stratum {
            a: 2,
            b: 0,
            t1: 500.0,
            t0: 1500.0,
        })
        .unwrap();
        assert_eq!(estimate.method, IntervalMethod::ExactConditionalOneSided);
        assert_eq!(estimate.ve(), None);
        let (ve_low, ve_high) = estimate.ve_interval();
        assert_eq!(ve_low, None);
        let pi = 0.025f64.sqrt();
        assert!(
            close(ve_high.unwrap(), 1.0 - pi / (1.0 - pi) * 3.0),
            "{estimate:?}"
        );
    }

    #[test]
    fn no_usable_data_gives_a_reason_not_a_number() {
        let reason = rate_ratio(&Stratum {
            a: 0,
            b: 0,
            t1: 10.0,
            t0: 10.0,
        })
        .unwrap_err();
        assert!(reason.contains("no cases"), "{reason}");
        assert!(rate_ratio(&Stratum {
            a: 3,
            b: 3,
            t1: 0.0,
            t0: 10.0
        })
        .is_err());
        assert!(rate_ratio(&Stratum {
            a: 3,
            b: 3,
            t1: 20.0,
            t0: -10.0
        })
        .is_err());
    }

    #[test]
    fn mantel_haenszel_by_hand() {
        // Two strata with the same IRR 0.5 but different coverage and risk: the crude ratio
        // is confounded, the MH one is 0.5.
        // S1: a=5, T1=1000, b=40, T0=4000 (IRR 0.5); S2: a=40, T1=4000, b=20, T0=1000 (0.5).
        let strata = [
            Stratum {
                a: 5,
                b: 40,
                t1: 1000.0,
                t0: 4000.0,
            },
            Stratum {
                a: 40,
                b: 20,
                t1: 4000.0,
                t0: 1000.0,
            },
        ];
        let mh = mantel_haenszel(&strata).unwrap();
        // Σ a·T0/T = 5·4000/5000 + 40·1000/5000 = 4 + 8 = 12; Σ b·T1/T = 40·1000/5000 +
        // 20·4000/5000 = 8 + 16 = 24; IRR = 0.5.
        assert!(close(mh.irr.unwrap(), 0.5), "{mh:?}");
        assert_eq!(mh.method, IntervalMethod::GreenlandRobins);
        // Var = (45·1000·4000/5000² + 60·4000·1000/5000²)/(12·24) = (7.2 + 9.6)/288 = 0.058333.
        let se = (16.8f64 / 288.0).sqrt();
        assert!(
            close(mh.irr_high.unwrap(), (0.5f64.ln() + 1.959964 * se).exp()),
            "{mh:?}"
        );
        // Crude: (45/5000)/(60/5000) = 0.75.
        let crude = rate_ratio(&strata[0].plus(strata[1])).unwrap();
        assert!(close(crude.irr.unwrap(), 0.75));
    }

    #[test]
    fn no_vaccinated_case_in_any_stratum_gives_the_exact_stratified_bound() {
        // One stratum: the Clopper–Pearson bound of the single stratum (a = 0, b = 8,
        // T1 = 500, T0 = 1,500: IRR ≤ 1.757500, see above).
        let one = [Stratum {
            a: 0,
            b: 8,
            t1: 500.0,
            t0: 1500.0,
        }];
        let bound = mantel_haenszel(&one).unwrap();
        assert_eq!(bound.method, IntervalMethod::ExactConditionalOneSided);
        assert_eq!(bound.irr, None);
        assert!(close(bound.irr_high.unwrap(), 1.757500), "{bound:?}");
        // Two strata, 0 of 5 cases over T1 = 100, T0 = 400 and 0 of 3 over T1 = 300,
        // T0 = 300: at the bound U, (400/(100U + 400))^5 · (300/(300U + 300))^3 = 0.025.
        let two = [
            Stratum {
                a: 0,
                b: 5,
                t1: 100.0,
                t0: 400.0,
            },
            Stratum {
                a: 0,
                b: 3,
                t1: 300.0,
                t0: 300.0,
            },
        ];
        let upper = mantel_haenszel(&two).unwrap().irr_high.unwrap();
        let p =
            (400.0 / (100.0 * upper + 400.0)).powi(5) * (300.0 / (300.0 * upper + 300.0)).powi(3);
        assert!(close(p, 0.025), "{upper}: {p}");
        // And no case at all: no bound.
        assert!(mantel_haenszel(&[Stratum {
            a: 0,
            b: 0,
            t1: 1.0,
            t0: 1.0
        }])
        .is_err());
    }

    #[test]
    fn screening_by_hand() {
        // PCV 0.2, PPV 0.5: VE = 1 − 0.25 · 1 = 0.75.
        assert!(close(screening(0.2, 0.5).unwrap(), 0.75));
        assert!(screening(1.0, 0.5).is_err());
        assert!(screening(0.0, 0.5).is_err(), "never VE = 1");
        assert!(screening(0.2, 0.0).is_err());
    }
}
