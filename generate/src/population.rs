//! Denominators (`population.csv`): residents by commune, sex and birth year, for the
//! reference years 2025 and 2026 (residents on 1 January, as CONTRACTS.md defines it).

use crate::date::{self, age_years, ymd};
use crate::manifest::PopulationManifest;
use crate::people::{Kind, Person, Sex, FIRST_COHORT, LAST_COHORT};
use crate::reference::Geo;
use crate::rng::{self, RngExt};
use crate::text::{push_csv_field, push_uint};
use std::io::Write;

pub const POPULATION_HEADER: &str = "reference_year,commune,sex,birth_year,count";
/// Residents on 1 January 2025 and on 1 January 2026 (= at the 2025-12-31 export date).
pub const REFERENCE_YEARS: [i32; 2] = [2025, 2026];

/// Probability of dying within a year at `age` (Gompertz-like, for the 2024 counts).
fn mortality(age: i32) -> f64 {
    (0.000_025 * (0.09 * f64::from(age.max(30))).exp()).min(0.3)
}

/// Reference year Y counts the residents on 1 January of Y: 2026 is the population at the
/// export date (2025 births included, emigrated Patients excluded); 2025 also holds the
/// Patients who emigrated in 2025 and residents who died in 2025, and not those who arrived
/// in 2025.
pub fn write_population(
    out: &mut impl Write,
    persons: &[Person],
    geo: &Geo,
    seed: u64,
) -> std::io::Result<PopulationManifest> {
    let mut rng = rng::stream(seed, rng::ids::POPULATION);
    let cohorts = (LAST_COHORT - FIRST_COHORT + 1) as usize;
    let cell = |commune: u16, sex: Sex, birth: date::Day| {
        let y = (date::year(birth) - FIRST_COHORT) as usize;
        (commune as usize * Sex::ALL.len() + sex as usize) * cohorts + y
    };
    let size = geo.communes.len() * Sex::ALL.len() * cohorts;
    let mut counts = [vec![0u64; size], vec![0u64; size]];
    let end_2024 = ymd(2024, 12, 31);
    for p in persons {
        let c = cell(p.commune, p.sex, p.birth);
        match p.kind {
            Kind::Resident => {
                // Alive on 1 January 2026, or not (deaths planted in 2025).
                if p.deceased.is_none() {
                    counts[1][c] += 1;
                }
                if p.birth <= end_2024 {
                    if !p.immigrated_2025 {
                        counts[0][c] += 1;
                    }
                    if rng.chance(mortality(age_years(p.birth, ymd(2025, 1, 1)))) {
                        counts[0][c] += 1;
                    }
                }
            }
            Kind::Emigrated if p.birth <= end_2024 => counts[0][c] += 1,
            _ => {}
        }
    }
    let mut m = PopulationManifest {
        reference_years: REFERENCE_YEARS.to_vec(),
        ..PopulationManifest::default()
    };
    let mut buf = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(POPULATION_HEADER.as_bytes());
    buf.push(b'\n');
    for (k, year) in REFERENCE_YEARS.iter().enumerate() {
        let mut total = 0;
        for (ci, commune) in geo.communes.iter().enumerate() {
            for sex in Sex::ALL {
                for y in 0..cohorts {
                    let n = counts[k][(ci * Sex::ALL.len() + sex as usize) * cohorts + y];
                    if n == 0 {
                        continue;
                    }
                    push_uint(&mut buf, *year as u64);
                    buf.push(b',');
                    push_csv_field(&mut buf, commune.name);
                    buf.push(b',');
                    buf.extend_from_slice(sex.as_str().as_bytes());
                    buf.push(b',');
                    push_uint(&mut buf, (FIRST_COHORT + y as i32) as u64);
                    buf.push(b',');
                    push_uint(&mut buf, n);
                    buf.push(b'\n');
                    m.rows += 1;
                    total += n;
                }
            }
        }
        m.totals.insert(year.to_string(), total);
    }
    out.write_all(&buf)?;
    m.residents = m.totals.get("2026").copied().unwrap_or(0);
    Ok(m)
}
