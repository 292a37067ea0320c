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

/// The vaccine of an event's ATC code, or the quarantine reason. The code is shown only as
/// its first eight alphanumeric characters: enough to fix the catalogue, never free text.
pub fn vaccine_or_reason(atc: &str) -> Result<&'static Vaccine, String> {
    vaccine(atc).ok_or_else(|| {
        let shown: String = atc
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        format!("unknown ATC code {shown} (not in sql/reference/vaccines.csv)")
    })
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
}
