//! The dose-rule situations the generator plants, found again in what the files finally say:
//! the generator's own corrections move some dose dates (a hexavalent dose moved a few days
//! towards its neighbour is too close too) and entered-in-error versions remove some, so the
//! planned counts and what an ingest applying the rules finds differ by a few.

use crate::date::{add_months, Day};
use crate::fhir::{Code, Imm};
use crate::manifest::InvalidDosesFound;
use crate::reference::Vax;

/// Counts, among one accepted Patient's lines (first versions as planned, with their later
/// versions applied), the doses a correct ingest finds against the three planted rules:
/// a measles-containing dose before 9 completed months; a hexavalent dose less than 28 − 4
/// days after the previous valid one; a second HPV dose less than 5 months − 4 days after the
/// first (and, of those, a third dose).
pub fn count(birth: Day, lines: &[Imm], found: &mut InvalidDosesFound) {
    let days = |wanted: fn(Vax) -> bool| {
        let mut days: Vec<Day> = lines
            .iter()
            .filter(|imm| matches!(imm.code, Code::Vax(v) if wanted(v)))
            .filter_map(Imm::current_completed_date)
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    };
    let nine_months = add_months(birth, 9);
    found.mcv0 += days(Vax::has_measles)
        .iter()
        .filter(|&&d| d < nine_months)
        .count() as u64;
    let mut last_valid: Option<Day> = None;
    for d in days(|v| v == Vax::Hexa) {
        match last_valid {
            Some(v) if d - v < 24 => found.dtp_too_close += 1,
            _ => last_valid = Some(d),
        }
    }
    let hpv = days(|v| v == Vax::Hpv9);
    if hpv.len() >= 2 && hpv[1] < add_months(hpv[0], 5) - 4 {
        found.hpv_second_too_early += 1;
        found.hpv_third_after_early_second += u64::from(hpv.len() >= 3);
    }
}
