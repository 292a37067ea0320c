//! Case notifications (`cases:FILE`), pseudonymised with the same person key as vaccinations
//! so that the two link without identities.

use crate::csv_rows::Fields;
use crate::dates::{days, parse_date};
use crate::fhir::{place, sex};
use crate::row::Case;
use chrono::NaiveDate;
use vaxlake_pseudonymize::{
    age_in_completed_months, birth_month, national_id, IdKind, Pseudonymizer,
};

pub const COLUMNS: &[&str] = &[
    "case_id",
    "national_id",
    "birth_date",
    "sex",
    "commune",
    "disease",
    "onset_date",
    "hospitalised",
    "died",
];

/// An ICD-10 code: a letter, two digits, optionally a dot and one to two more characters.
fn icd10(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_uppercase();
    let b = t.as_bytes();
    let ok = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_alphanumeric()
        && (b.len() == 3
            || (b[3] == b'.'
                && (5..=7).contains(&b.len())
                && b[4..].iter().all(u8::is_ascii_alphanumeric)));
    ok.then_some(t)
}

fn boolean(text: &str, column: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(format!("{column} must be true or false")),
    }
}

pub fn parse_row(
    f: &Fields,
    line: u64,
    p: &Pseudonymizer,
    today: NaiveDate,
) -> Result<Case, String> {
    let case_id = f.opt(0).ok_or("case_id is empty")?;
    let number = national_id::normalise(f.get(1)).map_err(|e| e.to_string())?;
    let birth = match f.opt(2) {
        Some(t) => parse_date(t).ok_or("birth_date is not a date YYYY-MM-DD")?,
        None => national_id::birth_date(&number).ok_or("birth_date is empty")?,
    };
    let sex = sex(f.opt(3))?;
    let (commune, canton) = place(f.opt(4), None);
    let disease = icd10(f.get(5)).ok_or("disease is not an ICD-10 code (e.g. J10, U07.1)")?;
    let onset = f
        .opt(6)
        .ok_or("onset_date is empty")
        .and_then(|t| parse_date(t).ok_or("onset_date is not a date YYYY-MM-DD"))?;
    if onset < birth {
        return Err("onset_date is before the birth date".into());
    }
    if onset > today {
        return Err("onset_date is in the future".into());
    }
    Ok(Case {
        case_key: p.pseudonym_bytes(IdKind::Case, case_id.as_bytes()),
        person_key: p.pseudonym_bytes(IdKind::Person, number.as_bytes()),
        disease,
        onset_date: days(onset),
        hospitalised: boolean(f.get(7), "hospitalised")?,
        died: boolean(f.get(8), "died")?,
        birth_month: days(birth_month(birth)),
        sex,
        commune,
        canton,
        age_years_at_onset: age_in_completed_months(birth, onset).div_euclid(12),
        position: line,
    })
}

/// The `persons` row a case notification gives: resident when its commune is in the
/// reference list, dated by the onset. It is ranked below any Patient or registry row, so it
/// describes only a person no other record knows (see `persons::KnownFrom::Case`).
pub fn person_row(case: &Case) -> crate::persons::PersonRow {
    crate::persons::PersonRow {
        person_key: case.person_key,
        birth_month: case.birth_month,
        sex: case.sex,
        commune: case.commune,
        canton: case.canton,
        resident: case.commune.is_some(),
        deceased_month: None,
        last_updated: i64::from(case.onset_date) * 86_400_000_000,
        known_from: crate::persons::KnownFrom::Case,
        position: case.position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_codes() {
        assert_eq!(icd10("j10").as_deref(), Some("J10"));
        assert_eq!(icd10("U07.1").as_deref(), Some("U07.1"));
        assert_eq!(icd10("A37.0"), Some("A37.0".into()));
        assert_eq!(icd10("flu"), None);
        assert_eq!(icd10("1893120105732"), None);
    }
}
