//! The columns of the input formats the ingest reads (CONTRACTS.md): the generator writes
//! them, the ingest reads them, the PostgreSQL registry holds them.

/// The columns of CONTRACTS.md "Registry CSV", in order (`csv:FILE` and the `postgres:`
/// registry table, which adds `change_seq`).
pub const REGISTRY_COLUMNS: [&str; 13] = [
    "event_id",
    "national_id",
    "birth_date",
    "sex",
    "commune",
    "vaccine_atc",
    "vaccine_name",
    "lot_number",
    "dose_number",
    "administered_on",
    "vaccinator_id",
    "status",
    "recorded_at",
];

/// The header line of a registry CSV.
pub fn registry_header() -> String {
    REGISTRY_COLUMNS.join(",")
}
