//! Population denominators (`population:FILE`): residents on 1 January of a reference year
//! by commune, sex and birth year. No identities, so nothing to pseudonymise.

use crate::csv_rows::Fields;
use crate::fhir::sex;
use vaxlake_pseudonymize::canton_of;

pub const COLUMNS: &[&str] = &["reference_year", "commune", "sex", "birth_year", "count"];

#[derive(Debug, Clone)]
pub struct PopulationRow {
    pub reference_year: i32,
    pub commune: &'static str,
    pub canton: &'static str,
    pub sex: &'static str,
    pub birth_year: i32,
    pub count: i64,
}

const MAX_COUNT: i64 = 1_000_000_000;

pub fn parse_row(f: &Fields, _line: u64) -> Result<PopulationRow, String> {
    let reference_year: i32 = f
        .get(0)
        .parse()
        .ok()
        .filter(|y| (1900..=2200).contains(y))
        .ok_or("reference_year is not a year")?;
    let (commune, canton) =
        canton_of(f.get(1)).ok_or("commune is not in sql/reference/communes.csv")?;
    let sex = sex(f.opt(2))?;
    let birth_year: i32 = f
        .get(3)
        .parse()
        .ok()
        .filter(|y| (1850..=reference_year).contains(y))
        .ok_or("birth_year is not a year up to reference_year")?;
    // No cell of residents reaches a billion: a larger count is a shifted column (a
    // 13-digit national number is a valid i64), never stored.
    let count: i64 = f
        .get(4)
        .parse()
        .ok()
        .filter(|c| (0..MAX_COUNT).contains(c))
        .ok_or("count is not a non-negative integer below 10^9")?;
    Ok(PopulationRow {
        reference_year,
        commune,
        canton,
        sex,
        birth_year,
        count,
    })
}
