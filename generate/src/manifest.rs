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
    /// Distinct Patients whose Patient line is accepted.
    pub distinct_patients_accepted: u64,
    /// Plain-language notes on conventions (reference dates, sex values, ...).
    pub notes: Vec<String>,
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
    /// Accepted influenza cases (J10 + J11) with onset ≥ 14 days after that season's dose.
    pub influenza_cases_vaccinated: u64,
    pub influenza_cases_unvaccinated: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CasesBad {
    pub invalid_national_id: u64,
    pub bad_onset_date: u64,
}
