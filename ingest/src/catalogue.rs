//! The vaccine catalogue (`sql/reference/vaccines.csv`): which ATC codes the warehouse knows.
//! An event with a code missing from it is quarantined, since coverage could not count it.

pub use vaxlake_catalog::Vaccine;

/// Looks an ATC code up, ignoring case and surrounding spaces.
pub fn vaccine(atc: &str) -> Option<&'static Vaccine> {
    vaxlake_catalog::builtin()
        .unwrap_or_else(|error| panic!("{error}"))
        .vaccine(atc)
}

/// The name stored as `vaccine_name`: the product the source names, when it is one of the
/// code's products in `sql/reference/vaccine_series.csv` (the series length follows the
/// product: Rotarix 2 doses, RotaTeq 3), else the catalogue's name for the code. Only
/// names from the reference files are ever stored, never the source's free text.
pub fn vaccine_name<'a>(
    vaccine: &'static Vaccine,
    source_names: impl IntoIterator<Item = &'a str>,
) -> &'static str {
    let reference = vaxlake_catalog::builtin().unwrap_or_else(|error| panic!("{error}"));
    source_names
        .into_iter()
        .find_map(|text| reference.product(&vaccine.atc_code, text))
        .unwrap_or(&vaccine.name)
}

/// The vaccine of an event's ATC code, or the quarantine reason. The code is shown only when
/// it has the shape of an ATC code (enough to fix the catalogue): a field that holds anything
/// else, such as a national number or a name shifted into the column, is never quoted (its
/// first digits would be a birth date).
pub fn vaccine_or_reason(atc: &str) -> Result<&'static Vaccine, String> {
    vaccine(atc).ok_or_else(|| {
        let code = atc.trim();
        if atc_shaped(code) {
            format!(
                "unknown ATC code {} (not in sql/reference/vaccines.csv)",
                code.to_ascii_uppercase()
            )
        } else {
            "vaccine code is not an ATC code (a letter, two digits, then up to two letters and two digits, e.g. J07BD52)".to_string()
        }
    })
}

/// Whether `code` has the form of an ATC code of any level: `A`, `A01`, `A01B`, `A01BC`,
/// `A01BC01` (letters in either case). No name or national number has this form.
fn atc_shaped(code: &str) -> bool {
    let b = code.as_bytes();
    let letter = |i: usize| b[i].is_ascii_alphabetic();
    let digit = |i: usize| b[i].is_ascii_digit();
    match b.len() {
        1 => letter(0),
        3 => letter(0) && digit(1) && digit(2),
        4 => letter(0) && digit(1) && digit(2) && letter(3),
        5 => letter(0) && digit(1) && digit(2) && letter(3) && letter(4),
        7 => letter(0) && digit(1) && digit(2) && letter(3) && letter(4) && digit(5) && digit(6),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_is_kept_when_the_source_names_a_known_one() {
        let rotarix = vaccine("J07BH01").unwrap();
        assert_eq!(
            vaccine_name(rotarix, Some("Rotarix oral suspension")),
            "Rotarix"
        );
        assert_eq!(vaccine_name(rotarix, Some("Anne's vaccine")), rotarix.name);
        assert_eq!(vaccine_name(rotarix, None), rotarix.name);
        let hexa = vaccine("J07CA09").unwrap();
        assert_eq!(vaccine_name(hexa, Some("Rotarix")), hexa.name);
    }

    #[test]
    fn knows_the_schedule() {
        assert_eq!(vaccine("J07CA09").unwrap().antigens.len(), 6);
        assert_eq!(
            vaccine("j07bd52").unwrap().antigens,
            ["measles", "mumps", "rubella"]
        );
        assert!(vaccine("J07ZZ99").is_none());
    }

    #[test]
    fn an_unknown_code_is_quoted_only_when_it_looks_like_an_atc_code() {
        let reason = vaccine_or_reason(" j07zz99 ").unwrap_err();
        assert!(reason.contains("unknown ATC code J07ZZ99"), "{reason}");
        // A national number or a name shifted into the column: neither it nor its first
        // digits (a birth date) are quoted.
        for shifted in [
            "1893120105732",
            "18931201",
            "Anne Schmit",
            "Schmit",
            "J07BN01X",
        ] {
            let reason = vaccine_or_reason(shifted).unwrap_err();
            assert!(reason.contains("not an ATC code"), "{reason}");
            for part in ["1893", "Anne", "Schmit", "J07BN01X"] {
                assert!(!reason.contains(part), "{reason}");
            }
        }
    }
}
