//! The 13-digit national identification number: `YYYYMMDD` + 3-digit serial + a Luhn digit +
//! a Verhoeff digit, both check digits computed over the first 11 digits.
//!
//! Verified before hashing so that a mistyped number is quarantined instead of silently
//! becoming a second, unlinkable person.

use chrono::NaiveDate;

/// Why a national number was refused. Deliberately carries no part of the number: these
/// reasons end up in the quarantine and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("national number must have 13 digits")]
    Length,
    #[error("national number contains a non-digit")]
    NotDigits,
    #[error("national number does not start with a valid date of birth")]
    BadDate,
    #[error("national number fails its Luhn check digit")]
    Luhn,
    #[error("national number fails its Verhoeff check digit")]
    Verhoeff,
}

/// Normalises (strips spaces, dots and dashes that people type) and validates a national
/// number, returning the 13 digits.
pub fn normalise(raw: &str) -> Result<String, NationalIdError> {
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '\u{a0}'))
        .collect();
    validate(&digits)?;
    Ok(digits)
}

/// Validates 13 digits exactly as stored (no normalisation).
pub fn validate(digits: &str) -> Result<(), NationalIdError> {
    let b = digits.as_bytes();
    if b.len() != 13 {
        return Err(NationalIdError::Length);
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return Err(NationalIdError::NotDigits);
    }
    if birth_date(digits).is_none() {
        return Err(NationalIdError::BadDate);
    }
    let payload = &b[..11];
    if luhn_digit(payload) != b[11] - b'0' {
        return Err(NationalIdError::Luhn);
    }
    if verhoeff_digit(payload) != b[12] - b'0' {
        return Err(NationalIdError::Verhoeff);
    }
    Ok(())
}

/// The date of birth encoded in the first eight digits, if it is a real date.
pub fn birth_date(digits: &str) -> Option<NaiveDate> {
    let y: i32 = digits.get(0..4)?.parse().ok()?;
    let m: u32 = digits.get(4..6)?.parse().ok()?;
    let d: u32 = digits.get(6..8)?.parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

/// Builds a valid national number from a birth date and a serial (0..=999). Used by the
/// synthetic registry generator and by tests.
pub fn compose(birth: NaiveDate, serial: u16) -> String {
    use chrono::Datelike;
    let mut s = format!(
        "{:04}{:02}{:02}{:03}",
        birth.year(),
        birth.month(),
        birth.day(),
        serial % 1000
    );
    let luhn = luhn_digit(s.as_bytes());
    let verhoeff = verhoeff_digit(s.as_bytes());
    s.push((b'0' + luhn) as char);
    s.push((b'0' + verhoeff) as char);
    s
}

/// Luhn check digit for ASCII digits `payload`.
pub fn luhn_digit(payload: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, c) in payload.iter().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    ((10 - sum % 10) % 10) as u8
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Verhoeff check digit for ASCII digits `payload`.
pub fn verhoeff_digit(payload: &[u8]) -> u8 {
    let mut c = 0u8;
    for (i, d) in payload.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[(i + 1) % 8][(d - b'0') as usize] as usize];
    }
    VERHOEFF_INV[c as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example_is_valid() {
        assert_eq!(validate("1893120105732"), Ok(()));
        assert_eq!(normalise("1893 1201 057 32"), Ok("1893120105732".into()));
    }

    #[test]
    fn each_check_digit_is_enforced() {
        assert_eq!(validate("1893120105742"), Err(NationalIdError::Luhn));
        assert_eq!(validate("1893120105733"), Err(NationalIdError::Verhoeff));
        assert_eq!(validate("189312010573"), Err(NationalIdError::Length));
        assert_eq!(validate("18931201057a2"), Err(NationalIdError::NotDigits));
        // 31 February does not exist.
        let bad_date = format!("19930231001{}{}", 0, 0);
        assert_eq!(validate(&bad_date), Err(NationalIdError::BadDate));
    }

    #[test]
    fn every_single_digit_error_is_caught() {
        let good = "1893120105732";
        for pos in 0..13 {
            for d in b'0'..=b'9' {
                let mut b = good.as_bytes().to_vec();
                if b[pos] == d {
                    continue;
                }
                b[pos] = d;
                let s = String::from_utf8(b).unwrap();
                assert!(validate(&s).is_err(), "{s} passed");
            }
        }
    }

    #[test]
    fn adjacent_transpositions_are_caught() {
        let good = "1893120105732";
        for pos in 0..12 {
            let mut b = good.as_bytes().to_vec();
            if b[pos] == b[pos + 1] {
                continue;
            }
            b.swap(pos, pos + 1);
            let s = String::from_utf8(b).unwrap();
            assert!(validate(&s).is_err(), "{s} passed");
        }
    }

    #[test]
    fn compose_round_trips() {
        let d = NaiveDate::from_ymd_opt(2021, 2, 28).unwrap();
        for serial in [0u16, 1, 57, 999] {
            let n = compose(d, serial);
            assert_eq!(validate(&n), Ok(()), "{n}");
            assert_eq!(birth_date(&n), Some(d));
        }
        assert_eq!(
            compose(NaiveDate::from_ymd_opt(1893, 12, 1).unwrap(), 57),
            "1893120105732"
        );
    }
}
