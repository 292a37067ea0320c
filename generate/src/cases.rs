//! Case notifications (`cases.csv`).
//!
//! Influenza is simulated so that its vaccine effectiveness is known exactly: per person and
//! season a constant hazard set by age and season intensity, halved (hazard ratio
//! `TRUE_HAZARD_RATIO`) from 14 days after that season's influenza dose, with the onset day
//! drawn exactly from the piecewise-exponential law. "Vaccinated" means what the warehouse will
//! see: a current, completed, accepted dose (entered-in-error, not-done and quarantined doses do
//! not protect in this simulation). Coverage and baseline risk both rise with age, so the crude
//! estimate is confounded by age; an age-stratified one recovers 0.5.
//! Measles (among unvaccinated children, clustered in a hesitant commune), pertussis and
//! COVID-19 cases are added without a planted effect.

use crate::date::{self, age_years, push_date, ymd, Day};
use crate::manifest::{CasesBad, CasesManifest};
use crate::people::{corrupt_check_digit, Kind, Person};
use crate::reference::Geo;
use crate::rng::{self, RngExt, Weighted};
use crate::schedule::CommuneFx;
use crate::text::{push_csv_field, push_padded};
use rand::RngCore;
use std::collections::BTreeMap;
use std::io::Write;

pub const CASES_HEADER: &str =
    "case_id,national_id,birth_date,sex,commune,disease,onset_date,hospitalised,died";
/// Seasons (by the year they start) with planted influenza cases: 2021/22 to 2024/25.
pub const FLU_CASE_SEASONS: [i32; 4] = [2021, 2022, 2023, 2024];
pub const TRUE_HAZARD_RATIO: f64 = 0.5;
pub const LAG_DAYS: i32 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disease {
    InfluenzaIdentified,
    InfluenzaUnidentified,
    Measles,
    Pertussis,
    Covid,
}

impl Disease {
    pub fn code(self) -> &'static str {
        match self {
            Disease::InfluenzaIdentified => "J10",
            Disease::InfluenzaUnidentified => "J11",
            Disease::Measles => "B05",
            Disease::Pertussis => "A37",
            Disease::Covid => "U07.1",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CaseRec {
    pub person: u32,
    pub disease: Disease,
    pub onset: Day,
    pub hospitalised: bool,
    pub died: bool,
    /// Influenza: onset at least 14 days after that season's dose.
    pub vaccinated: bool,
}

/// Doses that count for a season (as the effectiveness API counts them: given on or after
/// 1 September, and before the season ends).
pub fn flu_dose_window(season: i32) -> (Day, Day) {
    (ymd(season, 9, 1), ymd(season + 1, 4, 30))
}

/// Onsets fall from 1 October to 30 April: [start, end).
fn season_bounds(season: i32) -> (Day, Day) {
    (ymd(season, 10, 1), ymd(season + 1, 5, 1))
}

/// Risk of a notified influenza infection over a whole season when unvaccinated, by age:
/// ~1 % at 65 rising to ~4 % at 90, higher in young children.
pub fn flu_risk(age: i32) -> f64 {
    match age {
        i32::MIN..=4 => 0.020,
        5..=14 => 0.012,
        // Flat over working ages, so that the 18–64 stratum is not confounded by age.
        15..=64 => 0.005,
        _ => (0.010 * 4f64.powf(f64::from(age - 65) / 25.0)).min(0.06),
    }
}

fn season_intensity(season: i32) -> f64 {
    match season {
        2021 => 0.6,
        2022 => 1.3,
        2024 => 1.15,
        _ => 1.0,
    }
}

fn flu_hospitalisation(age: i32) -> f64 {
    match age {
        i32::MIN..=4 => 0.04,
        5..=17 => 0.01,
        18..=49 => 0.015,
        50..=64 => 0.04,
        65..=74 => 0.09,
        75..=84 => 0.16,
        _ => 0.26,
    }
}

/// `flu[k]`: the first current influenza dose of season `FLU_CASE_SEASONS[k]`, if any.
pub fn simulate_flu<R: RngExt>(
    p: &Person,
    person: u32,
    flu: &[Option<Day>; FLU_CASE_SEASONS.len()],
    rng: &mut R,
    out: &mut Vec<CaseRec>,
) {
    for (k, &season) in FLU_CASE_SEASONS.iter().enumerate() {
        let (s0, s1) = season_bounds(season);
        let start = s0.max(p.birth);
        if start >= s1 {
            continue;
        }
        let age = age_years(p.birth, s0).max(0);
        let risk = (flu_risk(age) * season_intensity(season)).min(0.5);
        let lambda = -(1.0 - risk).ln() / f64::from(s1 - s0);
        let protected_from = flu[k].map_or(s1, |d| (d + LAG_DAYS).clamp(start, s1));
        let e = rng.exp1();
        let before = lambda * f64::from(protected_from - start);
        let onset = if e < before {
            Some(start + (e / lambda) as i32)
        } else {
            let rest = e - before;
            let lambda_v = lambda * TRUE_HAZARD_RATIO;
            (rest < lambda_v * f64::from(s1 - protected_from))
                .then(|| protected_from + (rest / lambda_v) as i32)
        };
        let Some(onset) = onset else { continue };
        let onset = onset.min(s1 - 1);
        let vaccinated = flu[k].is_some() && onset >= protected_from;
        let hospitalised =
            rng.chance(flu_hospitalisation(age) * if vaccinated { 0.7 } else { 1.0 });
        let p_death = match age {
            i32::MIN..=64 => 0.01,
            65..=79 => 0.06,
            _ => 0.12,
        };
        let died = hospitalised && rng.chance(p_death);
        let disease = if rng.chance(0.9) {
            Disease::InfluenzaIdentified
        } else {
            Disease::InfluenzaUnidentified
        };
        out.push(CaseRec {
            person,
            disease,
            onset,
            hospitalised,
            died,
            vaccinated,
        });
    }
}

/// Draws a person satisfying `ok` (rejection sampling; `None` after many misses).
fn draw_person<R: RngExt>(
    persons: &[Person],
    rng: &mut R,
    ok: impl Fn(&Person) -> bool,
) -> Option<u32> {
    (0..20_000).find_map(|_| {
        let i = rng.below(persons.len() as u64) as usize;
        ok(&persons[i]).then_some(i as u32)
    })
}

fn scaled(residents: u64, per_670k: f64) -> usize {
    ((residents as f64 * per_670k / 670_000.0).round() as usize).max(1)
}

fn other_cases<R: RngExt>(
    persons: &[Person],
    residents: u64,
    fx: &[CommuneFx],
    measles_candidates: &[u32],
    rng: &mut R,
    out: &mut Vec<CaseRec>,
) {
    let at_risk = |p: &Person| p.kind != Kind::Ghost;
    let push = |out: &mut Vec<CaseRec>,
                person: u32,
                disease: Disease,
                onset: Day,
                p_hosp: f64,
                p_died: f64,
                rng: &mut R| {
        let hospitalised = rng.chance(p_hosp);
        let died = hospitalised && rng.chance(p_died);
        out.push(CaseRec {
            person,
            disease,
            onset,
            hospitalised,
            died,
            vaccinated: false,
        });
    };

    // Measles, spring 2024: unvaccinated children and young adults, mostly in one hesitant commune.
    let n = scaled(residents, 14.0);
    let outbreak_commune = measles_candidates
        .iter()
        .map(|&i| persons[i as usize].commune)
        .max_by(|a, b| {
            fx[*a as usize]
                .refusal
                .total_cmp(&fx[*b as usize].refusal)
                .then(b.cmp(a))
        });
    let local: Vec<u32> = measles_candidates
        .iter()
        .copied()
        .filter(|&i| Some(persons[i as usize].commune) == outbreak_commune)
        .collect();
    let mut chosen: Vec<u32> = Vec::new();
    for _ in 0..n {
        let pool = if !local.is_empty() && rng.chance(0.7) {
            &local
        } else {
            measles_candidates
        };
        let person = if pool.is_empty() {
            draw_person(persons, rng, |p| {
                p.kind == Kind::Resident && date::year(p.birth) >= 2000
            })
        } else {
            Some(*rng.pick(pool))
        };
        if let Some(i) = person.filter(|i| !chosen.contains(i)) {
            chosen.push(i);
            let onset =
                (ymd(2024, 2, 15) + rng.between(0, 110)).max(persons[i as usize].birth + 30);
            push(out, i, Disease::Measles, onset, 0.2, 0.0, rng);
        }
    }

    // Pertussis, the 2023–2024 resurgence: infants, school children, adults.
    for _ in 0..scaled(residents, 150.0) {
        let u = rng.unit();
        let person = if u < 0.25 {
            draw_person(persons, rng, |p| {
                at_risk(p) && p.birth >= ymd(2023, 7, 1) && p.birth <= ymd(2024, 10, 31)
            })
        } else if u < 0.6 {
            draw_person(persons, rng, |p| {
                at_risk(p) && (5..=15).contains(&age_years(p.birth, ymd(2024, 1, 1)))
            })
        } else {
            draw_person(persons, rng, |p| {
                at_risk(p) && age_years(p.birth, ymd(2024, 1, 1)) >= 18
            })
        };
        let Some(i) = person else { continue };
        let birth = persons[i as usize].birth;
        let onset = (ymd(2023, 9, 1) + rng.between(0, 486)).max(birth + 14);
        let infant = onset - birth < 365;
        let (h, d) = if infant { (0.5, 0.02) } else { (0.02, 0.0) };
        push(
            out,
            i,
            Disease::Pertussis,
            onset.min(ymd(2024, 12, 31)),
            h,
            d,
            rng,
        );
    }

    // COVID-19 notifications, 2021–2024, by wave.
    let waves = [
        (ymd(2021, 1, 4), ymd(2021, 3, 31), 0.15),
        (ymd(2021, 11, 15), ymd(2022, 2, 28), 0.45),
        (ymd(2022, 6, 1), ymd(2022, 8, 31), 0.15),
        (ymd(2022, 10, 1), ymd(2022, 12, 15), 0.10),
        (ymd(2023, 9, 1), ymd(2023, 12, 31), 0.08),
        (ymd(2024, 6, 1), ymd(2024, 9, 30), 0.07),
    ];
    let wave_pick = Weighted::new(waves.iter().map(|w| w.2));
    for _ in 0..scaled(residents, 3350.0) {
        let (lo, hi, _) = waves[wave_pick.sample(rng)];
        let onset = rng.between(lo, hi);
        let Some(i) = draw_person(persons, rng, |p| at_risk(p) && p.birth < onset) else {
            continue;
        };
        let age = age_years(persons[i as usize].birth, onset);
        let (h, d) = match age {
            i32::MIN..=17 => (0.005, 0.0),
            18..=64 => (0.02, 0.02),
            65..=79 => (0.08, 0.12),
            _ => (0.18, 0.2),
        };
        push(out, i, Disease::Covid, onset, h, d, rng);
    }
}

enum Onset {
    Date(Day),
    Text(String),
}

/// What the case notifications are drawn from.
pub struct Inputs<'a> {
    pub persons: &'a [Person],
    pub residents: u64,
    pub geo: &'a Geo,
    pub fx: &'a [CommuneFx],
    pub measles_candidates: &'a [u32],
    pub seed: u64,
}

/// Writes cases.csv: the simulated influenza cases plus the other diseases and bad rows.
pub fn write_cases(
    out: &mut impl Write,
    inp: &Inputs,
    mut cases: Vec<CaseRec>,
) -> std::io::Result<CasesManifest> {
    let (persons, geo) = (inp.persons, inp.geo);
    let mut rng = rng::stream(inp.seed, rng::ids::CASES);
    other_cases(
        persons,
        inp.residents,
        inp.fx,
        inp.measles_candidates,
        &mut rng,
        &mut cases,
    );
    // Nothing is notified after a death.
    cases.retain(|c| persons[c.person as usize].alive_on(c.onset));
    let mut m = CasesManifest {
        true_ve_influenza: 1.0 - TRUE_HAZARD_RATIO,
        influenza_lag_days: LAG_DAYS as u32,
        influenza_seasons: FLU_CASE_SEASONS
            .iter()
            .map(|s| format!("{s}/{:02}", (s + 1) % 100))
            .collect(),
        ..CasesManifest::default()
    };
    let mut by_disease: BTreeMap<String, u64> = BTreeMap::new();
    for c in &cases {
        *by_disease.entry(c.disease.code().to_string()).or_default() += 1;
        if persons[c.person as usize].abroad().is_some() {
            m.cross_border_cases += 1;
            continue;
        }
        if matches!(
            c.disease,
            Disease::InfluenzaIdentified | Disease::InfluenzaUnidentified
        ) {
            if c.vaccinated {
                m.influenza_cases_vaccinated += 1;
            } else {
                m.influenza_cases_unvaccinated += 1;
            }
        }
    }

    // Rows: (case, national number override, onset as written).
    let mut rows: Vec<(CaseRec, Option<[u8; 13]>, Onset)> = cases
        .iter()
        .map(|c| (*c, None, Onset::Date(c.onset)))
        .collect();
    // Repeat notifications of one episode (a second laboratory, a hospital after the
    // doctor): about 3 % of influenza cases notified again 2 to 40 days after the first.
    // The effectiveness engine counts them once (90-day episodes).
    for c in &cases {
        let influenza = matches!(
            c.disease,
            Disease::InfluenzaIdentified | Disease::InfluenzaUnidentified
        );
        if influenza && rng.chance(0.03) {
            let onset = c.onset + rng.between(2, 40);
            if onset <= crate::EXPORT_DATE && persons[c.person as usize].alive_on(onset) {
                let repeat = CaseRec {
                    onset,
                    hospitalised: false,
                    died: false,
                    ..*c
                };
                rows.push((repeat, None, Onset::Date(onset)));
                *by_disease.entry(c.disease.code().to_string()).or_default() += 1;
                m.repeat_notifications += 1;
            }
        }
    }
    let n_bad = ((cases.len() as f64 * 0.003).round() as usize).max(1);
    let mut bad = CasesBad::default();
    if !cases.is_empty() {
        for k in 0..2 * n_bad {
            let c = cases[rng.below(cases.len() as u64) as usize];
            if k % 2 == 0 {
                let nid = corrupt_check_digit(&persons[c.person as usize].nid, rng.next_u64());
                rows.push((c, Some(nid), Onset::Date(c.onset)));
                bad.invalid_national_id += 1;
            } else {
                let (y, mo, d) = date::civil(c.onset);
                let text = if rng.chance(0.5) {
                    format!("{d:02}/{mo:02}/{y:04}")
                } else {
                    format!("{y:04}-02-{}", 30 + d % 2)
                };
                rows.push((c, None, Onset::Text(text)));
                bad.bad_onset_date += 1;
            }
        }
    }
    rows.sort_by_key(|(c, nid, onset)| {
        (
            c.onset,
            c.person,
            c.disease,
            nid.is_some(),
            matches!(onset, Onset::Text(_)),
        )
    });

    let mut buf = Vec::with_capacity(rows.len() * 100 + 100);
    buf.extend_from_slice(CASES_HEADER.as_bytes());
    buf.push(b'\n');
    for (k, (c, nid, onset)) in rows.iter().enumerate() {
        let p = &persons[c.person as usize];
        buf.extend_from_slice(b"CASE-");
        push_padded(&mut buf, k as u64 + 1, 7);
        buf.push(b',');
        buf.extend_from_slice(nid.as_ref().unwrap_or(&p.nid));
        buf.push(b',');
        push_date(&mut buf, p.birth);
        buf.push(b',');
        buf.extend_from_slice(p.sex.as_str().as_bytes());
        buf.push(b',');
        match p.abroad() {
            Some((city, _)) => push_csv_field(&mut buf, city),
            None => push_csv_field(&mut buf, geo.communes[p.commune as usize].name),
        }
        buf.push(b',');
        buf.extend_from_slice(c.disease.code().as_bytes());
        buf.push(b',');
        match onset {
            Onset::Date(d) => push_date(&mut buf, *d),
            Onset::Text(t) => buf.extend_from_slice(t.as_bytes()),
        }
        buf.extend_from_slice(if c.hospitalised { b",true" } else { b",false" });
        buf.extend_from_slice(if c.died { b",true\n" } else { b",false\n" });
    }
    out.write_all(&buf)?;
    m.rows = rows.len() as u64;
    m.expected_quarantined = bad.invalid_national_id + bad.bad_onset_date;
    m.expected_accepted = m.rows - m.expected_quarantined;
    m.bad = bad;
    m.by_disease = by_disease;
    Ok(m)
}
