//! Which doses a person received: the Luxembourg-like childhood schedule for cohorts born
//! 2000 and later, adult boosters, zoster, pneumococcal and RSV for older adults, and seasonal
//! influenza. Coverage varies by commune (hesitancy) and cohort; timeliness by family and
//! commune; later doses depend on earlier ones (dropout).

use crate::date::{self, add_months, add_years, age_years, ymd, Day};
use crate::people::{Person, Sex};
use crate::reference::{Geo, Vax, IMMUNE, MEDPREC, OSTOCK, PATOBJ};
use crate::rng::{self, RngExt};
use crate::{CVE_START, EXPORT_DATE};

/// One planned administration (or a recorded refusal when `not_done` is a reason code).
#[derive(Debug, Clone, Copy)]
pub struct Dose {
    pub vax: Vax,
    pub date: Day,
    pub dose_no: u8,
    /// 0 = completed, else an index + 1 into `NOT_DONE_REASONS`.
    pub not_done: u8,
    /// An invalid (or schedule-breaking) dose planted on purpose, for the manifest.
    pub planted: Planted,
}

/// Doses planted so that the dose rules (sql/reference/dose_rules.csv, schedules.csv) have
/// something to find, as registries do: measles before 9 months, DTP doses too close, an
/// HPV second dose too early (then, for most, a third).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Planted {
    #[default]
    No,
    /// A measles-containing dose at 6 to 8 completed months (MCV0), before the usual MCV1.
    Mcv0,
    /// A hexavalent second dose 10 to 23 days after the first (under 28 − 4 days).
    DtpTooClose,
    /// An HPV second dose 2 to 4.5 months after the first (under 5 months − 4 days).
    HpvEarlySecond,
    /// The third HPV dose that completes the schedule after an early second one.
    HpvThird,
}

/// Per-commune behaviour.
#[derive(Debug, Clone)]
pub struct CommuneFx {
    /// Share of children who receive no childhood vaccine at all (before the cohort
    /// multiplier, `cohort_refusal_multiplier`).
    pub refusal: f64,
    /// Multiplies every delay after the due date.
    pub lateness: f64,
    /// Multiplies HPV uptake.
    pub hpv: f64,
    /// A pocket of low coverage (a hesitant community).
    pub pocket: bool,
}

/// The population-weighted mean of the communes' `refusal`, i.e. the national share of
/// children who get no childhood vaccine. It is what the earlier commune factors planted on
/// average (88 % of communes 0.3–1.5 %, 12 % of them 2–4 %, four communes of 2,500 residents
/// or more 6–11 %: 1.55 % over the reference populations), so that national coverage stays
/// where the realism checks expect it while communes spread around it.
pub const NATIONAL_REFUSAL: f64 = 0.0155;

/// Share of communes that are pockets of low coverage: 4 of 101.
pub const POCKET_SHARE: f64 = 0.04;

/// Refusal in a pocket: with the ~96.5 % DTP3 by 12 months of the other children, DTP3
/// lies around 75–85 % (lower in the older cohorts, which refused more).
pub const POCKET_REFUSAL: (f64, f64) = (0.12, 0.22);

/// Pockets are communes of this many residents (reference list): large enough for their
/// coverage to be measured, small enough that the other communes can make up for them
/// (a pocket in the capital would pull the nation down by itself).
pub const POCKET_POPULATION: (u32, u32) = (3000, 12_000);

/// An ordinary commune's refusal is the ordinary scale (about 0.9 %, what the pockets leave
/// of `NATIONAL_REFUSAL`) times a log-normal factor exp(0.7 z) kept within these bounds:
/// about 0.2 % to 3.5 % refusal, DTP3 by 12 months about 93–96 % in expectation (85–98 %
/// observed in a commune of a few dozen children).
const ORDINARY_SPREAD: (f64, f64) = (0.25, 4.0);

/// Commune coverage varies as real coverage does: a few pockets of hesitancy (about 4 % of
/// communes, refusal 12–22 %), the other communes spread around a lower refusal, scaled so
/// that the population-weighted mean refusal is exactly `NATIONAL_REFUSAL`: the pockets are
/// made up for by slightly higher coverage elsewhere. Weights are the synthetic population's
/// (`CommuneInfo::weight`), so the mean is the expected national share of refusers.
pub fn commune_factors(geo: &Geo, seed: u64) -> Vec<CommuneFx> {
    let mut rng = rng::stream(seed, rng::ids::COMMUNES);
    let n = geo.communes.len();
    let mut fx: Vec<CommuneFx> = geo
        .communes
        .iter()
        .map(|_| CommuneFx {
            refusal: (0.7 * rng.normal())
                .exp()
                .clamp(ORDINARY_SPREAD.0, ORDINARY_SPREAD.1),
            lateness: (0.3 * rng.normal()).exp(),
            hpv: 0.9 + 0.2 * rng.unit(),
            pocket: false,
        })
        .collect();
    let tiny_canton = geo.tiny.canton;
    let mut eligible: Vec<usize> = (0..n)
        .filter(|&i| {
            let c = &geo.communes[i];
            (POCKET_POPULATION.0..=POCKET_POPULATION.1).contains(&c.population)
                && c.canton != tiny_canton
                && c.weight > 0.0
        })
        .collect();
    let pockets = ((n as f64 * POCKET_SHARE).round() as usize)
        .max(1)
        .min(eligible.len());
    for _ in 0..pockets {
        let i = eligible.remove(rng.below(eligible.len() as u64) as usize);
        let f = &mut fx[i];
        f.pocket = true;
        f.refusal = POCKET_REFUSAL.0 + (POCKET_REFUSAL.1 - POCKET_REFUSAL.0) * rng.unit();
        f.lateness *= 1.4;
        f.hpv *= 0.8;
    }
    // Scale the ordinary communes so that the weighted mean is NATIONAL_REFUSAL.
    let total: f64 = geo.communes.iter().map(|c| c.weight).sum();
    let (mut pocket_mass, mut ordinary_mass) = (0.0, 0.0);
    for (c, f) in geo.communes.iter().zip(&fx) {
        if f.pocket {
            pocket_mass += c.weight * f.refusal;
        } else {
            ordinary_mass += c.weight * f.refusal;
        }
    }
    let scale = ((NATIONAL_REFUSAL * total - pocket_mass) / ordinary_mass).max(0.0);
    for f in fx.iter_mut().filter(|f| !f.pocket) {
        f.refusal *= scale;
    }
    fx
}

/// The population-weighted mean refusal of the communes (`NATIONAL_REFUSAL` by design).
pub fn weighted_refusal(geo: &Geo, fx: &[CommuneFx]) -> f64 {
    let total: f64 = geo.communes.iter().map(|c| c.weight).sum();
    geo.communes
        .iter()
        .zip(fx)
        .map(|(c, f)| c.weight * f.refusal)
        .sum::<f64>()
        / total
}

struct Plan<'a, R: RngExt> {
    rng: &'a mut R,
    out: &'a mut Vec<Dose>,
    late: f64,
}

impl<R: RngExt> Plan<'_, R> {
    /// Days after the due date: log-normal around a week, longer in late families, and now
    /// and then months late.
    fn delay(&mut self) -> i32 {
        let mut d = 6.0 * (0.9 * self.rng.normal()).exp() * self.late;
        if self.rng.chance(0.03) {
            d += 45.0 + 155.0 * self.rng.unit();
        }
        d.round().min(900.0) as i32
    }

    fn push(&mut self, vax: Vax, date: Day, dose_no: u8, not_done: u8) {
        self.out.push(Dose {
            vax,
            date,
            dose_no,
            not_done,
            planted: Planted::No,
        });
    }

    /// A completed dose planted on purpose on `date` (if the export has it).
    fn plant(&mut self, vax: Vax, date: Day, dose_no: u8, planted: Planted) -> Option<Day> {
        if date > EXPORT_DATE {
            return None;
        }
        self.out.push(Dose {
            vax,
            date,
            dose_no,
            not_done: 0,
            planted,
        });
        Some(date)
    }

    /// A dose due on `due`, given with probability `p` after some delay. `None` when it was
    /// not given or not yet by the export date (and then no later dose of the series either).
    fn dose(&mut self, vax: Vax, due: Day, p: f64, dose_no: u8) -> Option<Day> {
        if due > EXPORT_DATE {
            return None;
        }
        // Refusals and missed appointments exist only in the electronic record (from its
        // go-live); transcribed paper records list the doses given.
        if !self.rng.chance(p) {
            if due >= CVE_START && self.rng.chance(0.25) {
                let reason = if self.rng.chance(0.7) {
                    PATOBJ
                } else {
                    MEDPREC
                };
                let date = (due + self.rng.between(0, 20)).min(EXPORT_DATE);
                self.push(vax, date, dose_no, reason);
            }
            return None;
        }
        let date = due + self.delay();
        if date > EXPORT_DATE {
            return None;
        }
        if due >= CVE_START && date > due + 14 && self.rng.chance(0.045) {
            let reason = if self.rng.chance(0.8) { OSTOCK } else { IMMUNE };
            self.push(vax, due, dose_no, reason);
        }
        self.push(vax, date, dose_no, 0);
        Some(date)
    }

    /// A dose given at the same visit as another one.
    fn with(&mut self, vax: Vax, visit: Option<Day>, p: f64, dose_no: u8) -> Option<Day> {
        let day = visit?;
        if !self.rng.chance(p) {
            return None;
        }
        self.push(vax, day, dose_no, 0);
        Some(day)
    }
}

/// All doses of a person (FHIR registry side), sorted by date.
pub fn plan_person<R: RngExt>(p: &Person, fx: &CommuneFx, rng: &mut R, out: &mut Vec<Dose>) {
    out.clear();
    childhood(p, fx, rng, out);
    adult(p, rng, out);
    influenza(p, rng, out);
    out.sort_by_key(|d| (d.date, d.vax, d.dose_no));
}

fn cohort_refusal_multiplier(cohort: i32) -> f64 {
    match cohort {
        2000..=2005 => 1.6,
        2006..=2012 => 1.25,
        2020 | 2021 => 1.3,
        _ => 1.0,
    }
}

fn childhood<R: RngExt>(p: &Person, fx: &CommuneFx, rng: &mut R, out: &mut Vec<Dose>) {
    let b = p.birth;
    let cohort = date::year(b);
    if cohort < 2000 {
        return;
    }
    let m = |k: i32| add_months(b, k);
    let refuser = !p.force_vaccinated && rng.chance(fx.refusal * cohort_refusal_multiplier(cohort));
    let late = fx.lateness * (0.45 * rng.normal()).exp();
    let mut plan = Plan { rng, out, late };
    if refuser {
        if m(2) >= CVE_START && m(2) <= EXPORT_DATE && plan.rng.chance(0.4) {
            let d = m(2) + plan.rng.between(0, 30);
            plan.push(Vax::Hexa, d.min(EXPORT_DATE), 1, PATOBJ);
        }
        if m(12) >= CVE_START && m(12) <= EXPORT_DATE && plan.rng.chance(0.3) {
            let d = m(12) + plan.rng.between(0, 30);
            plan.push(Vax::Mmr, d.min(EXPORT_DATE), 1, PATOBJ);
        }
        return;
    }

    // Hexavalent at 2, 3, 4 months, booster at 11–13 months.
    let h1 = plan.dose(Vax::Hexa, m(2), 0.995, 1);
    // About 1 child in 100 gets the second dose too soon (a catch-up visit squeezed in);
    // it does not count, so the third becomes the second valid dose.
    let h2 = h1.and_then(|d| {
        if plan.rng.chance(0.01) {
            let soon = d + plan.rng.between(10, 23);
            plan.plant(Vax::Hexa, soon, 2, Planted::DtpTooClose)
        } else {
            plan.dose(Vax::Hexa, m(3).max(d + 28), 0.997, 2)
        }
    });
    let h3 = h2.and_then(|d| plan.dose(Vax::Hexa, m(4).max(d + 28), 0.995, 3));
    let h4 = match h3 {
        Some(d) => {
            let due = (m(11) + plan.rng.between(0, 60)).max(d + 150);
            plan.dose(Vax::Hexa, due, 0.965, 4)
        }
        None => None,
    };
    let _ = h4;

    // Pneumococcal conjugate at 2, 4, 12 months (cohorts from 2004).
    let mut pcv3 = None;
    if cohort >= 2004 {
        let p1 = plan.with(Vax::Pcv, h1, 0.99, 1);
        let p2 = if p1.is_some() {
            plan.with(Vax::Pcv, h3, 0.985, 2)
        } else {
            None
        };
        if let Some(d) = p2 {
            pcv3 = plan.dose(Vax::Pcv, m(12).max(d + 150), 0.965, 3);
        }
    }

    // Rotavirus at 2 and 3 months (pentavalent: 2, 3, 4), within its age limits.
    if cohort >= 2007 {
        let pentavalent = plan.rng.chance(0.15);
        let vax = if pentavalent { Vax::Rota5 } else { Vax::Rota1 };
        let r1 = plan.with(vax, h1.filter(|&d| d <= b + 105), 0.92, 1);
        let r2 = if r1.is_some() {
            plan.with(vax, h2.filter(|&d| d <= b + 168), 0.96, 2)
        } else {
            None
        };
        if pentavalent && r2.is_some() {
            plan.with(vax, h3.filter(|&d| d <= b + 224), 0.95, 3);
        }
    }

    // Meningococcal B at 2, 4, 12 months (cohorts from 2022).
    if cohort >= 2022 {
        let b1 = if plan.rng.chance(0.7) {
            plan.with(Vax::MenB, h1, 0.82, 1)
        } else {
            match h1 {
                Some(d) => plan.dose(Vax::MenB, d + 14, 0.80, 1),
                None => None,
            }
        };
        let b2 = if b1.is_some() {
            plan.with(Vax::MenB, h3, 0.95, 2)
        } else {
            None
        };
        if let Some(d) = b2 {
            if pcv3.is_some() && plan.rng.chance(0.7) {
                plan.with(Vax::MenB, pcv3, 0.92, 3);
            } else {
                plan.dose(Vax::MenB, m(12).max(d + 180), 0.92, 3);
            }
        }
    }

    // Measles-mumps-rubella (some MMRV) at 12 months and 15–23 months.
    let mmr_vax = |rng: &mut R, share: f64| {
        if cohort >= 2010 && rng.chance(share) {
            Vax::Mmrv
        } else {
            Vax::Mmr
        }
    };
    // About 1 child in 100 gets a measles-containing dose at 6 to 8 months (travel, an
    // outbreak nearby): MCV0, which never counts as MCV1; the schedule goes on as usual.
    if cohort >= 2010 && plan.rng.chance(0.01) {
        let date = m(6) + plan.rng.between(0, 80);
        plan.plant(Vax::Mmr, date, 1, Planted::Mcv0);
    }
    let v1 = mmr_vax(plan.rng, 0.10);
    let mcv1 = plan.dose(v1, m(12), 0.985, 1);
    if let Some(d) = mcv1 {
        let v2 = mmr_vax(plan.rng, 0.20);
        let due = (m(15) + plan.rng.between(0, 240)).max(d + 28);
        plan.dose(v2, due, 0.935, 2);
    }

    // Meningococcal C (to 2017), then ACWY, at 13 months.
    if cohort >= 2004 {
        let vax = if cohort >= 2018 {
            Vax::MenAcwy
        } else {
            Vax::MenC
        };
        plan.dose(vax, m(13), 0.93, 1);
    }

    // DTaP-IPV at 5–6 years, dTap at 15–16 years.
    if h3.is_some() {
        let due = m(60) + plan.rng.between(0, 364);
        plan.dose(Vax::DtapIpv, due, 0.90, 5);
    }
    let due = m(180) + plan.rng.between(0, 364);
    plan.dose(Vax::Dtap, due, 0.78, 6);

    // Adolescent MenACWY at 13–14 years, from 2019.
    let due = m(156) + plan.rng.between(0, 364);
    if due >= ymd(2019, 1, 1) {
        let dose_no = if cohort >= 2018 { 2 } else { 1 };
        plan.dose(Vax::MenAcwy, due, 0.55, dose_no);
    }

    // HPV, two doses from 9 to 13 years: girls from cohort 2005, boys from 2008 (given from 2019).
    let girl = p.sex == Sex::Female;
    if (girl && cohort >= 2005) || (!girl && cohort >= 2008) {
        let years = (2.2 + 0.9 * plan.rng.normal()).clamp(0.0, 4.9);
        let mut due = m(108) + (years * 365.25) as i32;
        if !girl {
            due = due.max(ymd(2019, 1, 1) + plan.rng.between(0, 180));
        }
        if due < add_years(b, 15) {
            let p1 = if girl { 0.76 } else { 0.56 } * fx.hpv;
            if let Some(d) = plan.dose(Vax::Hpv9, due, p1.min(0.97), 1) {
                if plan.rng.chance(0.06) {
                    // A second dose too early for the two-dose schedule; most then get the
                    // third dose that completes it.
                    let early = d + plan.rng.between(60, 135);
                    if let Some(second) = plan.plant(Vax::Hpv9, early, 2, Planted::HpvEarlySecond) {
                        if plan.rng.chance(0.7) {
                            let third = (d + 183).max(second + 90) + plan.rng.between(0, 90);
                            plan.plant(Vax::Hpv9, third, 3, Planted::HpvThird);
                        }
                    }
                } else {
                    let due2 = d + 180 + plan.rng.between(0, 180);
                    plan.dose(Vax::Hpv9, due2, 0.90, 2);
                }
            }
        }
    }
}

fn adult<R: RngExt>(p: &Person, rng: &mut R, out: &mut Vec<Dose>) {
    let b = p.birth;
    let age_now = age_years(b, EXPORT_DATE);
    let mut push = |vax: Vax, date: Day, dose_no: u8| {
        if date >= b && date <= EXPORT_DATE {
            out.push(Dose {
                vax,
                date,
                dose_no,
                not_done: 0,
                planted: Planted::No,
            });
        }
    };
    let window = |rng: &mut R, lo: Day, hi: Day| (lo <= hi).then(|| rng.between(lo, hi));

    // Td (some dTap) boosters every ten years: one within the registry's last decade.
    if age_now >= 26 && rng.chance(0.33) {
        if let Some(d) = window(rng, ymd(2016, 1, 1).max(add_years(b, 25)), EXPORT_DATE) {
            let vax = if rng.chance(0.2) { Vax::Dtap } else { Vax::Td };
            push(vax, d, 1);
        }
    }

    // Zoster: recombinant (2 doses) from 2022, live attenuated before.
    if age_now >= 60 {
        let p_rec = if age_now >= 65 { 0.12 } else { 0.04 };
        if rng.chance(p_rec) {
            if let Some(d) = window(
                rng,
                ymd(2022, 1, 1).max(add_years(b, 60)),
                ymd(2025, 10, 31),
            ) {
                push(Vax::ZosterRec, d, 1);
                if rng.chance(0.85) {
                    push(Vax::ZosterRec, d + rng.between(60, 180), 2);
                }
            }
        } else if age_now >= 65 && rng.chance(0.04) {
            if let Some(d) = window(
                rng,
                ymd(2016, 1, 1).max(add_years(b, 60)),
                ymd(2021, 12, 31),
            ) {
                push(Vax::ZosterLive, d, 1);
            }
        }
    }

    // Pneumococcal for 65+: conjugate, sometimes followed by the polysaccharide vaccine.
    if age_now >= 66 {
        if rng.chance(0.15) {
            if let Some(d) = window(rng, ymd(2019, 1, 1).max(add_years(b, 65)), EXPORT_DATE) {
                push(Vax::Pcv, d, 1);
                if rng.chance(0.4) {
                    push(Vax::Ppsv, d + rng.between(60, 365), 2);
                }
            }
        } else if rng.chance(0.06) {
            if let Some(d) = window(rng, ymd(2019, 1, 1).max(add_years(b, 65)), EXPORT_DATE) {
                push(Vax::Ppsv, d, 1);
            }
        }
    }

    // RSV for 75+ in the 2024 and 2025 autumns.
    if age_now >= 76 && rng.chance(0.08) {
        let year = if rng.chance(0.5) { 2024 } else { 2025 };
        let d = ymd(year, 9, 20) + rng.between(0, 80);
        push(Vax::Rsv, d, 1);
    }
}

/// Influenza coverage in a season by age: (share of regular takers, share of occasional
/// takers). Regular takers accept 90 % of seasons, occasional 25 %; at 65+ that makes
/// 37 % coverage of registry patients at 65 rising to 57 % at 90 (about 35–55 % of the
/// population, which includes residents never in the registry).
pub fn flu_propensity(age: i32) -> (f64, f64) {
    match age {
        i32::MIN..=1 => (0.0, 0.0),
        2..=17 => (0.01, 0.02),
        18..=49 => (0.025, 0.04),
        50..=64 => (0.07, 0.08),
        _ => {
            let cov = 0.37 + 0.20 * (f64::from(age - 65) / 25.0).clamp(0.0, 1.0);
            let occasional = 0.25;
            ((cov - 0.25 * occasional) / 0.9, occasional)
        }
    }
}

pub const FLU_SEASONS: std::ops::RangeInclusive<i32> = 2019..=2025;

fn season_uptake(season: i32) -> f64 {
    match season {
        2019 => 0.92,
        2020 => 1.10,
        2021 => 1.05,
        2023 => 0.97,
        2024 => 0.98,
        _ => 1.0,
    }
}

fn influenza<R: RngExt>(p: &Person, rng: &mut R, out: &mut Vec<Dose>) {
    let u = rng.unit();
    for season in FLU_SEASONS {
        let start = ymd(season, 9, 15);
        let age = age_years(p.birth, start);
        if age < 0 {
            continue;
        }
        let (regular, occasional) = flu_propensity(age);
        let p_take = if u < regular {
            0.9
        } else if u < regular + occasional {
            0.25
        } else {
            0.0
        };
        if p_take == 0.0 || !rng.chance((p_take * season_uptake(season)).min(0.98)) {
            if age >= 65 && season >= 2022 && rng.chance(0.006) {
                let d = ymd(season, 10, 1) + rng.between(0, 60);
                if d <= EXPORT_DATE {
                    out.push(Dose {
                        vax: Vax::FluSplit,
                        date: d,
                        dose_no: 1,
                        not_done: PATOBJ,
                        planted: Planted::No,
                    });
                }
            }
            continue;
        }
        let x = rng.unit();
        let offset = if x < 0.03 {
            rng.between(0, 15)
        } else if x < 0.88 {
            16 + (61.0 * rng.unit().powf(1.3)) as i32
        } else {
            77 + rng.between(0, 62)
        };
        let date = start + offset;
        if date > EXPORT_DATE {
            continue;
        }
        let vax = if age < 18 && rng.chance(0.7) {
            Vax::FluLaiv
        } else {
            Vax::FluSplit
        };
        out.push(Dose {
            vax,
            date,
            dose_no: 1,
            not_done: 0,
            planted: Planted::No,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commune_refusal_averages_the_national_factor_with_a_few_pockets() {
        let geo = Geo::new();
        for seed in 1..=20 {
            let fx = commune_factors(&geo, seed);
            let mean = weighted_refusal(&geo, &fx);
            assert!(
                (mean - NATIONAL_REFUSAL).abs() < 1e-12,
                "seed {seed}: {mean}"
            );
            let pockets: Vec<usize> = (0..fx.len()).filter(|&i| fx[i].pocket).collect();
            // 4 of 101 communes (3-6 % asked for), sized to be visible, none in the tiny canton.
            assert_eq!(pockets.len(), 4, "seed {seed}");
            for &i in &pockets {
                let c = &geo.communes[i];
                assert!((0.12..0.22).contains(&fx[i].refusal));
                assert!((3000..=12_000).contains(&c.population), "{}", c.name);
                assert_ne!(c.canton, geo.tiny.canton);
            }
            // The others lie well below the pockets, spread (not one value) around a mean
            // that makes up for the pockets: below the national factor.
            let ordinary: Vec<f64> = fx.iter().filter(|f| !f.pocket).map(|f| f.refusal).collect();
            let max = ordinary.iter().copied().fold(0.0, f64::max);
            let min = ordinary.iter().copied().fold(1.0, f64::min);
            assert!(max < 0.06 && min > 0.0, "seed {seed}: {min}..{max}");
            assert!(max > 4.0 * min, "seed {seed}: {min}..{max}");
            let pocket_weight: f64 = pockets.iter().map(|&i| geo.communes[i].weight).sum();
            let total: f64 = geo.communes.iter().map(|c| c.weight).sum();
            let ordinary_mean = (NATIONAL_REFUSAL * total
                - pockets
                    .iter()
                    .map(|&i| geo.communes[i].weight * fx[i].refusal)
                    .sum::<f64>())
                / (total - pocket_weight);
            assert!(ordinary_mean < NATIONAL_REFUSAL && ordinary_mean > 0.005);
        }
        // Deterministic from the seed, different between seeds.
        let a = commune_factors(&geo, 5);
        let b = commune_factors(&geo, 5);
        let c = commune_factors(&geo, 6);
        assert!(a.iter().zip(&b).all(|(x, y)| x.refusal == y.refusal));
        assert!(a.iter().zip(&c).any(|(x, y)| x.refusal != y.refusal));
    }
}
