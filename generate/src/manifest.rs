//! What the generator planted, counted from what it wrote (`manifest.json`).
//!
//! Line and row counts exclude CSV header lines. "Accepted" and "quarantined" are what a
//! correct ingest must do with each line/row; "current events" are the rows the warehouse's
//! `vaccinations` table must hold afterwards.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    /// Residents (the `persons` option).
    pub persons: u64,
    pub export_date: String,
    pub fhir: FhirManifest,
    pub csv: CsvManifest,
    /// Rows of `vaccinations` after ingesting both the FHIR folder and registry.csv (each COVID
    /// copy shares its event key with a CSV row and counts once).
    pub current_events_fhir_and_csv: u64,
    pub population: PopulationManifest,
    pub cases: CasesManifest,
    /// Doses planted to break the dose rules (sql/reference/dose_rules.csv, schedules.csv).
    pub invalid_doses: InvalidDosesManifest,
    /// Distinct Patients whose Patient line is accepted.
    pub distinct_patients_accepted: u64,
    /// Plain-language notes on conventions (reference dates, sex values, ...).
    pub notes: Vec<String>,
    /// Communes planted for coverage maps and disclosure control: pockets of low coverage
    /// and a canton with one tiny commune.
    #[serde(default)]
    pub communes: CommunesManifest,
}

/// How childhood coverage varies by commune, and the canton whose tiny commune disclosure
/// control must protect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommunesManifest {
    /// Share of children planted to get no childhood vaccine at all, averaged over the
    /// communes weighted by their synthetic residents (the same for every seed; cohorts
    /// 2000–2012 and 2020–2021 refuse 1.25 to 1.6 times more).
    pub national_refusal: f64,
    /// Lowest and highest refusal share of the communes that are not pockets.
    pub ordinary_refusal: [f64; 2],
    /// Pockets of low coverage (a hesitant community), by name.
    pub pockets: Vec<PocketCommune>,
    pub tiny: TinyCommune,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PocketCommune {
    pub name: String,
    pub canton: String,
    /// Share of children planted to get no childhood vaccine (before the cohort factor).
    pub refusal: f64,
    /// 1 − `refusal`: the planted coverage factor. Childhood coverage in the commune is
    /// about this times what the other children reach (DTP3 by 12 months ≈ 96 %).
    pub coverage_factor: f64,
    /// Residents on 1 January 2026 (population.csv).
    pub residents: u64,
}

/// The commune that a canton total minus its other commune would reveal: the only canton
/// of the export with exactly two communes that have residents, one of them tiny.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TinyCommune {
    pub name: String,
    pub canton: String,
    /// Residents on 1 January 2026 (population.csv).
    pub residents: u64,
    /// Residents born 2016–2025, on 1 January 2026, per birth year.
    pub births_per_year: f64,
    /// The canton's other commune with residents (its seat, at its reference size).
    pub partner: String,
    /// The canton's communes with residents (the tiny one and its partner).
    pub canton_communes_with_residents: Vec<String>,
    /// The canton's communes of the reference list left without synthetic residents.
    pub communes_without_residents: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FhirManifest {
    /// Lines in Patient.ndjson, broken ones included.
    pub patient_lines: u64,
    /// Lines in Immunization.ndjson, broken ones included.
    pub immunization_lines: u64,
    pub bad: FhirBad,
    /// Lines of both files the ingest must quarantine: every `bad` count summed.
    pub expected_quarantined: u64,
    /// `patient_lines + immunization_lines - expected_quarantined`.
    pub expected_accepted: u64,
    /// Of which quarantined in Patient.ndjson / Immunization.ndjson.
    pub patient_quarantined: u64,
    pub immunization_quarantined: u64,
    /// Accepted Patient lines (each a distinct Patient).
    pub patients_accepted: u64,
    /// Later versions (same `id`, later `meta.lastUpdated`) that correct a valid record.
    pub corrections: u64,
    /// Later versions with status entered-in-error.
    pub entered_in_error: u64,
    /// Accepted lines with status not-done.
    pub not_done: u64,
    /// Second lines for the same person, vaccine and day under another id (both accepted).
    pub same_day_duplicates: u64,
    /// Immunizations imported from the COVID-19 system (`meta.source` covid19), each sharing
    /// its event id with a registry.csv row.
    pub covid_copies: u64,
    /// Distinct event keys (Immunization id, or the source event id of a COVID copy) whose
    /// latest version is valid and not entered-in-error.
    pub current_events: u64,
    pub current_completed: u64,
    pub current_not_done: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FhirBad {
    /// Lines that are not JSON (truncated or garbage), in either file.
    pub broken_json: u64,
    pub broken_json_patient: u64,
    pub broken_json_immunization: u64,
    /// Patient lines whose national number fails a check digit.
    pub invalid_check_digit_patients: u64,
    /// Immunization lines referencing those Patients.
    pub immunizations_of_invalid_patients: u64,
    /// ATC code not in sql/reference/vaccines.csv.
    pub unknown_atc: u64,
    /// occurrenceDateTime before the Patient's birthDate.
    pub dose_before_birth: u64,
    /// occurrenceDateTime after the export date (years like 2091).
    pub dose_in_future: u64,
    /// patient.reference to a Patient that is not in the export.
    pub missing_patient: u64,
}

/// Completed doses planted against the dose rules, in Immunization.ndjson, of Patients the
/// ingest accepts (counted as planned: the generator's own corrections, entered-in-error
/// versions and same-day duplicates, about 1.3 % of lines, may move or remove a few).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidDosesManifest {
    /// Measles-containing doses at 6 to 8 completed months (MCV0; `below_minimum_age`).
    pub mcv0: u64,
    /// Hexavalent second doses 10 to 23 days after the first (`interval_too_short` for
    /// diphtheria, tetanus, pertussis, polio, Hib and hepatitis B).
    pub dtp_too_close: u64,
    /// HPV second doses 2 to 4.5 months after the first: valid doses that leave the
    /// two-dose schedule open.
    pub hpv_second_too_early: u64,
    /// Of those, girls and boys given the third dose that completes the schedule.
    pub hpv_third_after_early_second: u64,
    /// The same situations as a correct ingest finds them in the current versions of the
    /// lines (corrections applied, entered-in-error removed): the planted ones plus the
    /// few that a corrected date creates, less the few a correction or removal undoes.
    #[serde(default)]
    pub in_the_files: InvalidDosesFound,
}

/// Doses against the three planted rules among the current completed doses of accepted
/// Patients (dose days: same-day lines count once).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidDosesFound {
    /// Measles-containing dose days before 9 completed months.
    pub mcv0: u64,
    /// Hexavalent dose days less than 24 days (28 − 4 days of grace) after the previous
    /// valid hexavalent dose.
    pub dtp_too_close: u64,
    /// Persons whose second HPV dose day is less than 5 months − 4 days after the first.
    pub hpv_second_too_early: u64,
    /// Of those, persons with a third HPV dose day.
    pub hpv_third_after_early_second: u64,
}

impl InvalidDosesFound {
    pub fn add(&mut self, other: &InvalidDosesFound) {
        self.mcv0 += other.mcv0;
        self.dtp_too_close += other.dtp_too_close;
        self.hpv_second_too_early += other.hpv_second_too_early;
        self.hpv_third_after_early_second += other.hpv_third_after_early_second;
    }
}

impl InvalidDosesManifest {
    pub fn add(&mut self, other: &InvalidDosesManifest) {
        self.mcv0 += other.mcv0;
        self.dtp_too_close += other.dtp_too_close;
        self.hpv_second_too_early += other.hpv_second_too_early;
        self.hpv_third_after_early_second += other.hpv_third_after_early_second;
        self.in_the_files.add(&other.in_the_files);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CsvManifest {
    /// Data rows of registry.csv (the header excluded).
    pub rows: u64,
    pub bad: CsvBad,
    pub expected_quarantined: u64,
    pub expected_accepted: u64,
    /// Rows repeating an earlier event_id with a later recorded_at and corrected values.
    pub corrections: u64,
    /// Rows repeating an earlier event_id with status entered-in-error.
    pub entered_in_error: u64,
    /// Distinct valid event_ids whose latest row is not entered-in-error.
    pub current_events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CsvBad {
    pub invalid_check_digit: u64,
    pub unknown_atc: u64,
    pub dose_before_birth: u64,
    /// administered_on that is not an ISO date.
    pub bad_date: u64,
    /// Rows with 12 or 14 fields instead of 13.
    pub bad_field_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopulationManifest {
    /// Data rows of population.csv (both reference years).
    pub rows: u64,
    /// Sum of the 2025 counts: every resident, in the registry or not.
    pub residents: u64,
    /// Residents without a Patient record or any registry row.
    pub never_in_registry: u64,
    /// Registry Patients who are not residents (not in population.csv 2025).
    pub emigrated_patients: u64,
    /// Patients living abroad (address in France, Belgium or Germany), vaccinated in
    /// Luxembourg: in no population row, not resident for the warehouse.
    #[serde(default)]
    pub cross_border_patients: u64,
    /// Residents who died in 2025 (`Patient.deceasedDateTime`): counted in 2025, not 2026.
    #[serde(default)]
    pub deceased_patients: u64,
    pub reference_years: Vec<i32>,
    /// Sum of the counts per reference year.
    pub totals: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CasesManifest {
    /// Data rows of cases.csv.
    pub rows: u64,
    pub expected_quarantined: u64,
    pub expected_accepted: u64,
    pub bad: CasesBad,
    /// Accepted rows per ICD-10 code.
    pub by_disease: BTreeMap<String, u64>,
    /// The hazard ratio against influenza infection planted for persons vaccinated at least
    /// 14 days before (VE = 1 − HR).
    pub true_ve_influenza: f64,
    pub influenza_lag_days: u32,
    /// Seasons (1 October to 30 April) with planted influenza cases, e.g. "2021/22".
    pub influenza_seasons: Vec<String>,
    /// Accepted influenza cases (J10 + J11) of residents with onset ≥ 14 days after that
    /// season's dose (first notifications only; cross-border workers' cases apart).
    pub influenza_cases_vaccinated: u64,
    pub influenza_cases_unvaccinated: u64,
    /// First notifications (any disease) of cross-border workers: rows whose commune is a
    /// town abroad, in no effectiveness count.
    #[serde(default)]
    pub cross_border_cases: u64,
    /// Second notifications of an influenza episode, 2 to 40 days after the first (rows of
    /// cases.csv; `by_disease` counts them, the influenza counts above do not).
    #[serde(default)]
    pub repeat_notifications: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CasesBad {
    pub invalid_national_id: u64,
    pub bad_onset_date: u64,
}
