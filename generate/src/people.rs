//! The synthetic population: residents (an age pyramid shaped like Luxembourg's), the
//! registry's Patients among them, emigrated Patients, and the identities (names, addresses,
//! unique national numbers) that the ingest must drop or pseudonymise.

use crate::date::{self, Day};
use crate::reference::{
    Geo, Practitioners, FAMILY_NAMES, FEMALE_GIVEN_OLDER, FEMALE_GIVEN_RECENT, MALE_GIVEN_OLDER,
    MALE_GIVEN_RECENT, STREETS,
};
use crate::rng::{self, RngExt, Weighted};
use crate::{GenerateError, EXPORT_DATE};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Sex {
    Male,
    Female,
    Other,
    Unknown,
}

impl Sex {
    pub const ALL: [Sex; 4] = [Sex::Male, Sex::Female, Sex::Other, Sex::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Lives in the country at the export date (counted in population.csv).
    Resident,
    /// A registry Patient who left during the export year: not in population.csv 2025.
    Emigrated,
    /// A Patient whose only line in the export is broken JSON.
    Ghost,
    /// Lives in France, Belgium or Germany and works in Luxembourg: a registry Patient with
    /// an address abroad, vaccinated here, in no population of Luxembourg.
    CrossBorder,
}

/// Towns across the border where cross-border workers live: (city, ISO country code).
pub const BORDER_TOWNS: [(&str, &str); 6] = [
    ("Thionville", "FR"),
    ("Longwy", "FR"),
    ("Arlon", "BE"),
    ("Aubange", "BE"),
    ("Trier", "DE"),
    ("Perl", "DE"),
];

#[derive(Debug, Clone)]
pub struct Person {
    pub birth: Day,
    /// The person's (valid) national number.
    pub nid: [u8; 13],
    /// `pat-NNNNNN` of the Patient record; 0 = never in the registry.
    pub pat_no: u32,
    pub kind: Kind,
    pub sex: Sex,
    pub commune: u16,
    /// The Patient record carries a national number with a wrong check digit.
    pub invalid_nid: bool,
    /// Arrived during 2025: not in the 2024 population.
    pub immigrated_2025: bool,
    /// Never a childhood-vaccine refuser (hosts of planted records that must exist).
    pub force_vaccinated: bool,
    /// Receives one planted bad Immunization of every kind.
    pub bad_host: bool,
    pub family: u16,
    pub given: u16,
    /// Second given name, `u16::MAX` when none.
    pub given2: u16,
    pub street: u16,
    pub house: u16,
    pub postal: u16,
    /// The usual practitioner (`prac-NNNN`).
    pub prac: u16,
    /// Died on this day (a resident who died in 2025: `Patient.deceasedDateTime`).
    pub deceased: Option<Day>,
}

impl Person {
    pub fn in_registry(&self) -> bool {
        self.pat_no != 0
    }
    /// A registry Patient whose record the ingest accepts.
    pub fn valid_patient(&self) -> bool {
        self.pat_no != 0 && !self.invalid_nid && self.kind != Kind::Ghost
    }
    /// Lived here during the influenza seasons simulated for cases (ghosts are not people).
    pub fn at_risk(&self) -> bool {
        self.kind != Kind::Ghost
    }
    /// The national number as the Patient record carries it (a wrong check digit if planted).
    pub fn patient_nid(&self) -> [u8; 13] {
        if self.invalid_nid {
            corrupt_check_digit(&self.nid, u64::from(self.pat_no))
        } else {
            self.nid
        }
    }
    /// Where a person living abroad lives: (city, country); `None` for everyone else.
    pub fn abroad(&self) -> Option<(&'static str, &'static str)> {
        (self.kind == Kind::CrossBorder).then(|| {
            BORDER_TOWNS[(self.street as usize + self.house as usize) % BORDER_TOWNS.len()]
        })
    }
    /// Alive on `day`.
    pub fn alive_on(&self, day: Day) -> bool {
        self.deceased.is_none_or(|death| day <= death)
    }
    pub fn given_names(&self) -> (&'static str, Option<&'static str>) {
        let list = given_list(self.sex, self.birth, self.family);
        let first = list[self.given as usize % list.len()];
        let second = (self.given2 != u16::MAX).then(|| list[self.given2 as usize % list.len()]);
        (first, second)
    }
}

fn given_list(sex: Sex, birth: Day, family: u16) -> &'static [&'static str] {
    let recent = date::year(birth) >= 1975;
    let female = match sex {
        Sex::Female => true,
        Sex::Male => false,
        _ => family.is_multiple_of(2),
    };
    match (female, recent) {
        (true, true) => FEMALE_GIVEN_RECENT,
        (true, false) => FEMALE_GIVEN_OLDER,
        (false, true) => MALE_GIVEN_RECENT,
        (false, false) => MALE_GIVEN_OLDER,
    }
}

/// Changes the Luhn or the Verhoeff digit so that the number fails validation.
pub fn corrupt_check_digit(nid: &[u8; 13], salt: u64) -> [u8; 13] {
    let mut out = *nid;
    let h = rng::hash(&[salt, 0xBAD]);
    let pos = if h.is_multiple_of(2) { 11 } else { 12 };
    let bump = 1 + (h >> 8) % 9;
    out[pos] = b'0' + ((u64::from(out[pos] - b'0') + bump) % 10) as u8;
    out
}

/// Residents per year of age at 670k (age = 2025 − birth year): Luxembourg's pyramid, wide
/// at 30–50 through immigration, narrowing with mortality after 60.
const PYRAMID: [(i32, f64); 20] = [
    (0, 6300.0),
    (5, 6500.0),
    (10, 6900.0),
    (15, 7000.0),
    (20, 7300.0),
    (25, 8800.0),
    (30, 10600.0),
    (35, 11200.0),
    (40, 11000.0),
    (45, 10400.0),
    (50, 10000.0),
    (55, 9600.0),
    (60, 8200.0),
    (65, 6600.0),
    (70, 5300.0),
    (75, 4300.0),
    (80, 3000.0),
    (85, 1800.0),
    (90, 800.0),
    (95, 200.0),
];

pub const FIRST_COHORT: i32 = 1930;
pub const LAST_COHORT: i32 = 2025;

pub fn pyramid_weight(age: i32) -> f64 {
    for w in PYRAMID.windows(2) {
        let (a0, v0) = w[0];
        let (a1, v1) = w[1];
        if age >= a0 && age < a1 {
            return v0 + (v1 - v0) * f64::from(age - a0) / f64::from(a1 - a0);
        }
    }
    PYRAMID[PYRAMID.len() - 1].1
}

pub struct People {
    pub persons: Vec<Person>,
    pub residents: u64,
    pub never_in_registry: u64,
    pub emigrated: u64,
    pub cross_border: u64,
    pub deceased: u64,
    pub ghosts: u64,
    pub invalid_patients: u64,
    /// Highest `pat_no` used.
    pub max_pat_no: u32,
}

pub fn build(
    residents: u64,
    seed: u64,
    geo: &Geo,
    pracs: &Practitioners,
) -> Result<People, GenerateError> {
    let mut rng = rng::stream(seed, rng::ids::PEOPLE);
    let export = EXPORT_DATE;
    let cohorts: Vec<i32> = (FIRST_COHORT..=LAST_COHORT).collect();
    let weights: Vec<f64> = cohorts.iter().map(|y| pyramid_weight(2025 - y)).collect();
    let per_year = rng::apportion(residents, &weights);
    let year_pick = Weighted::new(weights.iter().copied());
    // Emigrants are mostly young adults and their children.
    let emig_pick = Weighted::new(cohorts.iter().zip(&weights).map(|(y, w)| {
        let age = 2025 - y;
        w * if (22..=45).contains(&age) {
            2.5
        } else if age < 12 {
            1.4
        } else {
            0.6
        }
    }));

    let n_emigrated = ((residents as f64 * 0.005).round() as u64).max(1);
    let mut persons: Vec<Person> = Vec::with_capacity((residents + n_emigrated) as usize + 64);
    let blank = |birth: Day, kind: Kind| Person {
        birth,
        nid: [b'0'; 13],
        pat_no: 0,
        kind,
        sex: Sex::Unknown,
        commune: 0,
        invalid_nid: false,
        immigrated_2025: false,
        force_vaccinated: false,
        bad_host: false,
        family: 0,
        given: 0,
        given2: u16::MAX,
        street: 0,
        house: 0,
        postal: 0,
        prac: 0,
        deceased: None,
    };
    let birth_in = |rng: &mut rand_chacha::ChaCha8Rng, y: i32| -> Day {
        let start = date::ymd(y, 1, 1);
        let end = date::ymd(y, 12, 31).min(export);
        rng.between(start, end)
    };
    for (y, n) in cohorts.iter().zip(&per_year) {
        for _ in 0..*n {
            let b = birth_in(&mut rng, *y);
            persons.push(blank(b, Kind::Resident));
        }
    }
    for _ in 0..n_emigrated {
        let y = cohorts[emig_pick.sample(&mut rng)];
        let b = birth_in(&mut rng, y);
        persons.push(blank(b, Kind::Emigrated));
    }
    // Cross-border workers vaccinated in Luxembourg (about 1 % of the Patients; Luxembourg
    // has some 200,000 cross-border workers, most vaccinated at home): working ages.
    let n_cross_border = ((residents as f64 * 0.01).round() as u64).max(1);
    for _ in 0..n_cross_border {
        let y = rng.between(1965, 2000);
        let b = birth_in(&mut rng, y);
        persons.push(blank(b, Kind::CrossBorder));
    }
    // Broken Patient lines: about 0.3 % of the Patient file.
    let n_ghosts = ((residents as f64 * 0.003).round() as u64).max(1);
    for _ in 0..n_ghosts {
        let y = cohorts[year_pick.sample(&mut rng)];
        let b = birth_in(&mut rng, y);
        persons.push(blank(b, Kind::Ghost));
    }

    // Demography and registry membership.
    let mut never = 0;
    for p in persons.iter_mut() {
        let u = rng.unit();
        p.sex = if u < 0.4985 {
            Sex::Male
        } else if u < 0.997 {
            Sex::Female
        } else if u < 0.9985 {
            Sex::Other
        } else {
            Sex::Unknown
        };
        p.commune = geo.weights.sample(&mut rng) as u16;
        let age = date::age_years(p.birth, export);
        let in_registry = match p.kind {
            Kind::Resident => {
                let p_never = if age < 18 { 0.008 } else { 0.036 };
                !rng.chance(p_never)
            }
            _ => true,
        };
        if !in_registry {
            never += 1;
        }
        // pat_no is assigned after shuffling; mark membership with a placeholder.
        p.pat_no = u32::from(in_registry);
        let p_imm = if (20..=45).contains(&age) {
            0.015
        } else {
            0.008
        };
        p.immigrated_2025 = p.kind == Kind::Resident && rng.chance(p_imm);
        p.family = rng.below(FAMILY_NAMES.len() as u64) as u16;
        p.given = rng.below(1000) as u16;
        p.given2 = if rng.chance(0.22) {
            rng.below(1000) as u16
        } else {
            u16::MAX
        };
        p.street = rng.below(STREETS.len() as u64) as u16;
        p.house = if rng.chance(0.7) {
            rng.between(1, 60)
        } else {
            rng.between(61, 250)
        } as u16;
        let c = &geo.communes[p.commune as usize];
        p.postal = rng.between(i32::from(c.postal_lo), i32::from(c.postal_hi)) as u16;
        p.prac = pracs.pick(c.canton, &mut rng);
    }

    // Deaths in 2025 among registry residents of 70 or more (their Patient says when; the
    // 2025 population counts them, the 2026 one does not).
    let mut n_deceased = 0u64;
    let death_rate = |age: i32| (0.000_025 * (0.09 * f64::from(age)).exp()).min(0.3);
    for p in persons.iter_mut() {
        let age = date::age_years(p.birth, date::ymd(2025, 1, 1));
        if p.kind == Kind::Resident && p.pat_no != 0 && age >= 70 && rng.chance(death_rate(age)) {
            p.deceased = Some(rng.between(date::ymd(2025, 1, 10), date::ymd(2025, 12, 20)));
            n_deceased += 1;
        }
    }
    // Even a small export plants one: the oldest registry resident.
    if n_deceased == 0 {
        let oldest = persons
            .iter_mut()
            .filter(|p| p.kind == Kind::Resident && p.pat_no != 0)
            .min_by_key(|p| p.birth);
        if let Some(p) = oldest {
            p.deceased = Some(date::ymd(2025, 6, 15));
            n_deceased = 1;
        }
    }

    // Patient file order is unrelated to age or place.
    for i in (1..persons.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        persons.swap(i, j);
    }
    let mut next_pat = 0u32;
    for p in persons.iter_mut() {
        if p.pat_no != 0 {
            next_pat += 1;
            p.pat_no = next_pat;
        }
    }

    // National numbers: birth date + a serial unique for that date.
    let mut per_day: HashMap<Day, u16> = HashMap::new();
    for p in persons.iter_mut() {
        let k = per_day.entry(p.birth).or_insert(0);
        if *k >= 1000 {
            return Err(GenerateError::InvalidOptions(format!(
                "more than 1000 persons born on {}: national numbers would repeat; use fewer persons",
                date::date_string(p.birth)
            )));
        }
        let base = rng::hash(&[seed, 0x5E21A1, p.birth as u64]) % 1000;
        let serial = ((base + u64::from(*k) * 617) % 1000) as u16;
        *k += 1;
        let nid = vaxlake_pseudonymize::national_id::compose(date::to_naive(p.birth), serial);
        p.nid.copy_from_slice(nid.as_bytes());
    }

    // Planted invalid check digits (~0.3 % of Patients), one of them surely a vaccinated child,
    // and one child who hosts one bad Immunization of every kind.
    let child = |p: &Person| {
        p.kind == Kind::Resident && p.pat_no != 0 && (2001..=2023).contains(&date::year(p.birth))
    };
    let children: Vec<usize> = (0..persons.len()).filter(|&i| child(&persons[i])).collect();
    let registry: Vec<usize> = (0..persons.len())
        .filter(|&i| persons[i].pat_no != 0 && persons[i].kind != Kind::Ghost)
        .collect();
    let n_invalid = ((registry.len() as f64 * 0.003).round() as usize).max(1);
    let mut invalid = 0u64;
    if let Some(&i) = children.first() {
        persons[i].invalid_nid = true;
        persons[i].force_vaccinated = true;
        invalid += 1;
    }
    if let Some(&i) = children.get(1) {
        persons[i].bad_host = true;
        persons[i].force_vaccinated = true;
    } else if let Some(&i) = registry.iter().find(|&&i| !persons[i].invalid_nid) {
        persons[i].bad_host = true;
        persons[i].force_vaccinated = true;
    }
    let mut guard = 0;
    while (invalid as usize) < n_invalid && guard < n_invalid * 20 && !registry.is_empty() {
        guard += 1;
        let i = registry[rng.below(registry.len() as u64) as usize];
        if !persons[i].invalid_nid && !persons[i].bad_host {
            persons[i].invalid_nid = true;
            invalid += 1;
        }
    }

    Ok(People {
        residents,
        never_in_registry: never,
        emigrated: n_emigrated,
        cross_border: n_cross_border,
        deceased: n_deceased,
        ghosts: n_ghosts,
        invalid_patients: invalid,
        max_pat_no: next_pat,
        persons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupted_numbers_fail_validation() {
        let good =
            vaxlake_pseudonymize::national_id::compose(date::to_naive(date::ymd(2021, 2, 28)), 57);
        let mut nid = [0u8; 13];
        nid.copy_from_slice(good.as_bytes());
        for salt in 0..200 {
            let bad = corrupt_check_digit(&nid, salt);
            assert!(vaxlake_pseudonymize::national_id::validate(
                std::str::from_utf8(&bad).unwrap()
            )
            .is_err());
        }
    }

    #[test]
    fn pyramid_totals_about_670k() {
        let total: f64 = (FIRST_COHORT..=LAST_COHORT)
            .map(|y| pyramid_weight(2025 - y))
            .sum();
        assert!((640_000.0..700_000.0).contains(&total), "{total}");
    }
}
