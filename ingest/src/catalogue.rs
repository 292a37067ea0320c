//! The vaccine catalogue (`sql/reference/vaccines.csv`): which ATC codes the warehouse knows.
//! An event with a code missing from it is quarantined, since coverage could not count it.

pub use vaxlake_catalog::Vaccine;

/// Looks an ATC code up, ignoring case and surrounding spaces.
pub fn vaccine(atc: &str) -> Option<&'static Vaccine> {
    vaxlake_catalog::builtin()
        .unwrap_or_else(|error| panic!("{error}"))
        .vaccine(atc)
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
    fn knows_the_schedule() {
        assert_eq!(vaccine("J07CA09").unwrap().antigens.len(), 6);
        assert_eq!(
            vaccine("j07bd52").unwrap().antigens,
            ["measles", "mumps", "rubella"]
        );
        assert!(vaccine("J07ZZ99").is_none());
    }
}
