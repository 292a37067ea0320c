//! The vaccine catalogue (`sql/reference/vaccines.csv`): which ATC codes the warehouse knows.
//! An event with a code missing from it is quarantined, since coverage could not count it.

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vaccine {
    pub atc_code: String,
    pub name: String,
    pub antigens: Vec<String>,
}

/// Every vaccine of the reference file, by ATC code.
pub static VACCINES: LazyLock<HashMap<String, Vaccine>> = LazyLock::new(|| {
    let mut reader =
        csv::Reader::from_reader(include_str!("../../sql/reference/vaccines.csv").as_bytes());
    reader
        .records()
        .filter_map(|r| r.ok())
        .map(|r| {
            let v = Vaccine {
                atc_code: r[0].trim().to_string(),
                name: r[1].trim().to_string(),
                antigens: r[2].split(';').map(|a| a.trim().to_string()).collect(),
            };
            (v.atc_code.clone(), v)
        })
        .collect()
});

/// Looks an ATC code up, ignoring case and surrounding spaces.
pub fn vaccine(atc: &str) -> Option<&'static Vaccine> {
    let code = atc.trim();
    VACCINES
        .get(code)
        .or_else(|| VACCINES.get(&code.to_ascii_uppercase()))
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
