//! Rate ratios and vaccine effectiveness from cases and person-time: one stratum, the crude
//! pooled estimate, the Mantel–Haenszel estimate over strata, and the screening method.
//! Every function says why it gives no estimate instead of returning infinities or NaN.

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

/// A rate ratio with its 95 % interval, and VE = 1 − IRR (interval flipped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub irr: f64,
    pub irr_low: f64,
    pub irr_high: f64,
}

impl Estimate {
    fn from_log(log_irr: f64, se: f64) -> Estimate {
        Estimate {
            irr: log_irr.exp(),
            irr_low: (log_irr - Z95 * se).exp(),
            irr_high: (log_irr + Z95 * se).exp(),
        }
    }

    pub fn ve(&self) -> f64 {
        1.0 - self.irr
    }

    /// The VE interval: (1 − upper IRR, 1 − lower IRR).
    pub fn ve_interval(&self) -> (f64, f64) {
        (1.0 - self.irr_high, 1.0 - self.irr_low)
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

/// IRR = (a/T1)/(b/T0), SE(log IRR) = sqrt(1/a + 1/b).
pub fn rate_ratio(stratum: &Stratum) -> Result<Estimate, &'static str> {
    if let Some(problem) = person_time_problem(stratum) {
        return Err(problem);
    }
    if stratum.a == 0 {
        return Err("no cases among the vaccinated: the rate ratio is 0 and has no interval on the log scale");
    }
    if stratum.b == 0 {
        return Err("no cases among the unvaccinated: the rate ratio is unbounded");
    }
    let (a, b) = (stratum.a as f64, stratum.b as f64);
    let log_irr = ((a / stratum.t1) / (b / stratum.t0)).ln();
    Ok(Estimate::from_log(log_irr, (1.0 / a + 1.0 / b).sqrt()))
}

/// The Mantel–Haenszel rate ratio over strata, IRR = Σ a·T0/T / Σ b·T1/T, with the
/// Greenland–Robins variance Var(log IRR) = Σ M·T1·T0/T² / (Σ a·T0/T · Σ b·T1/T),
/// M = a + b. Strata without person-time in both groups carry no information and are left out.
pub fn mantel_haenszel(strata: &[Stratum]) -> Result<Estimate, &'static str> {
    let (mut numerator, mut denominator, mut variance) = (0.0, 0.0, 0.0);
    let mut informative = 0;
    for stratum in strata {
        if person_time_problem(stratum).is_some() {
            if stratum.t0 < 0.0 {
                return Err(person_time_problem(stratum).unwrap_or_default());
            }
            continue;
        }
        informative += 1;
        let t = stratum.t1 + stratum.t0;
        numerator += stratum.a as f64 * stratum.t0 / t;
        denominator += stratum.b as f64 * stratum.t1 / t;
        variance += (stratum.a + stratum.b) as f64 * stratum.t1 * stratum.t0 / (t * t);
    }
    if informative == 0 {
        return Err("no stratum has both vaccinated and unvaccinated person-time");
    }
    if numerator == 0.0 {
        return Err("no cases among the vaccinated in any stratum");
    }
    if denominator == 0.0 {
        return Err("no cases among the unvaccinated in any stratum");
    }
    let log_irr = (numerator / denominator).ln();
    let se = (variance / (numerator * denominator)).sqrt();
    Ok(Estimate::from_log(log_irr, se))
}

/// Farrington's screening method: VE = 1 − PCV/(1 − PCV) · (1 − PPV)/PPV, with PCV the share
/// of cases vaccinated and PPV the share of the population vaccinated.
pub fn screening(pcv: f64, ppv: f64) -> Result<f64, &'static str> {
    if !(0.0..1.0).contains(&pcv) {
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
        // (0.250049, 0.999805); VE 0.5 (0.000195, 0.749951).
        let estimate = rate_ratio(&Stratum {
            a: 10,
            b: 40,
            t1: 1000.0,
            t0: 2000.0,
        })
        .unwrap();
        assert!(close(estimate.irr, 0.5));
        assert!(close(estimate.irr_low, 0.250049), "{estimate:?}");
        assert!(close(estimate.irr_high, 0.999805), "{estimate:?}");
        assert!(close(estimate.ve(), 0.5));
    }

    #[test]
    fn zero_cases_give_a_reason_not_a_number() {
        let reason = rate_ratio(&Stratum {
            a: 0,
            b: 5,
            t1: 10.0,
            t0: 10.0,
        })
        .unwrap_err();
        assert!(reason.contains("vaccinated"), "{reason}");
        assert!(rate_ratio(&Stratum {
            a: 3,
            b: 0,
            t1: 10.0,
            t0: 10.0
        })
        .is_err());
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
        assert!(close(mh.irr, 0.5), "{mh:?}");
        // Var = (45·1000·4000/5000² + 60·4000·1000/5000²)/(12·24) = (7.2 + 9.6)/288 = 0.058333.
        let se = (16.8f64 / 288.0).sqrt();
        assert!(
            close(mh.irr_high, (0.5f64.ln() + 1.959964 * se).exp()),
            "{mh:?}"
        );
        // Crude: (45/5000)/(60/5000) = 0.75.
        let crude = rate_ratio(&strata[0].plus(strata[1])).unwrap();
        assert!(close(crude.irr, 0.75));
    }

    #[test]
    fn screening_by_hand() {
        // PCV 0.2, PPV 0.5: VE = 1 − 0.25 · 1 = 0.75.
        assert!(close(screening(0.2, 0.5).unwrap(), 0.75));
        assert!(screening(1.0, 0.5).is_err());
        assert!(screening(0.2, 0.0).is_err());
    }
}
