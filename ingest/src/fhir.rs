//! FHIR R4 Bulk Data export: `Patient` and `Immunization` resources, one per line.
//!
//! Patients are read first into an in-memory index (resource id → pseudonymised person),
//! because an Immunization only references its Patient; the index holds no identity in clear
//! and costs about 100 bytes a person (70 MB at national scale), independent of the number of
//! events. Immunizations then stream through in parallel chunks.

use crate::catalogue::vaccine_or_reason;
use crate::chunks::Chunk;
use crate::dates::{days, parse_date, parse_instant_micros};
use crate::row::{Parsed, Rejected, Vaccination};
use chrono::NaiveDate;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use vaxlake_pseudonymize::{
    age_in_completed_months, birth_month, canton_of, national_id, IdKind, Pseudonymizer,
};

/// The identifier system that carries the national number (CONTRACTS.md).
pub const DEFAULT_NATIONAL_ID_SYSTEM: &str = "urn:oid:1.3.182.4.4";
/// Identifier systems of this form name the originating system of an imported event, so the
/// copy and the original map to the same event key.
pub const SOURCE_SYSTEM_PREFIX: &str = "urn:vaxlake:source-system:";
const ATC_SYSTEM: &str = "http://www.whocc.no/atc";

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, rename = "lastUpdated")]
    last_updated: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Identifier<'a> {
    #[serde(borrow)]
    system: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Address<'a> {
    #[serde(borrow)]
    city: Option<Cow<'a, str>>,
    #[serde(borrow)]
    district: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PatientJson<'a> {
    #[serde(borrow, rename = "resourceType")]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    meta: Option<Meta<'a>>,
    #[serde(borrow, default)]
    identifier: Vec<Identifier<'a>>,
    #[serde(borrow, rename = "birthDate")]
    birth_date: Option<Cow<'a, str>>,
    #[serde(borrow)]
    gender: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    address: Vec<Address<'a>>,
    #[serde(borrow, rename = "deceasedDateTime")]
    deceased: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Coding<'a> {
    #[serde(borrow)]
    system: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    /// The product's name, when the registry gives it (the rotavirus series follows it).
    #[serde(borrow, default)]
    display: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CodeableConcept<'a> {
    #[serde(borrow, default)]
    coding: Vec<Coding<'a>>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow)]
    reference: Option<Cow<'a, str>>,
    #[serde(borrow)]
    identifier: Option<Identifier<'a>>,
}

#[derive(Deserialize)]
struct Performer<'a> {
    #[serde(borrow)]
    actor: Option<Reference<'a>>,
}

#[derive(Deserialize)]
struct ProtocolApplied {
    #[serde(rename = "doseNumberPositiveInt")]
    dose_number: Option<i64>,
}

#[derive(Deserialize)]
struct ImmunizationJson<'a> {
    #[serde(borrow, rename = "resourceType")]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    meta: Option<Meta<'a>>,
    #[serde(borrow, default)]
    identifier: Vec<Identifier<'a>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "vaccineCode")]
    vaccine_code: Option<CodeableConcept<'a>>,
    #[serde(borrow)]
    patient: Option<Reference<'a>>,
    #[serde(borrow, rename = "occurrenceDateTime")]
    occurrence: Option<Cow<'a, str>>,
    #[serde(borrow)]
    recorded: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "lotNumber")]
    lot_number: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    performer: Vec<Performer<'a>>,
    #[serde(default, rename = "protocolApplied")]
    protocol_applied: Vec<ProtocolApplied>,
}

/// What the warehouse keeps of a Patient: pseudonymised and generalised, but with the exact
/// birth date until the ages at dose are computed (it never leaves memory).
#[derive(Debug, Clone)]
pub struct Person {
    pub person_key: [u8; 16],
    pub birth_date: NaiveDate,
    pub sex: &'static str,
    pub commune: Option<&'static str>,
    pub canton: Option<&'static str>,
    /// The address is in a Luxembourg commune (see [`residence`]).
    pub resident: bool,
    /// Days since epoch of the first of the month of death, from `deceasedDateTime`.
    pub deceased_month: Option<i32>,
    version: i64,
}

impl Person {
    /// The person's `persons` row (its version is the Patient's `meta.lastUpdated`).
    pub fn row(&self, position: u64) -> crate::persons::PersonRow {
        crate::persons::PersonRow {
            person_key: self.person_key,
            birth_month: days(birth_month(self.birth_date)),
            sex: self.sex,
            commune: self.commune,
            canton: self.canton,
            resident: self.resident,
            deceased_month: self.deceased_month,
            last_updated: self.version,
            known_from: crate::persons::KnownFrom::Patient,
            position,
        }
    }
}

/// Whether an address `country` is Luxembourg: absent (the registry's own country), or its
/// ISO 3166 codes or name.
fn in_luxembourg(country: Option<&str>) -> bool {
    match country.map(str::trim) {
        None | Some("") => true,
        Some(c) => ["LU", "LUX", "Luxembourg", "Luxemburg", "Lëtzebuerg"]
            .iter()
            .any(|name| c.eq_ignore_ascii_case(name)),
    }
}

/// Commune, canton and residence from an address: a person is resident when the address is
/// in Luxembourg and its city is a commune of the reference list. Someone living abroad
/// (a cross-border worker) keeps no commune or canton, whatever the city is called.
pub fn residence(
    city: Option<&str>,
    district: Option<&str>,
    country: Option<&str>,
) -> (Option<&'static str>, Option<&'static str>, bool) {
    if !in_luxembourg(country) {
        return (None, None, false);
    }
    let (commune, canton) = place(city, district);
    (commune, canton, commune.is_some())
}

/// Patient resource id (hashed, so even the registry's internal ids are not kept in clear)
/// → the person, or `None` when that Patient was rejected.
pub type PatientIndex = HashMap<[u8; 16], Option<Person>>;

/// A parse error's category and column, never its message: serde quotes offending values,
/// which may be identities.
fn json_reason(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof => {
            format!("invalid JSON (syntax error at column {})", err.column())
        }
        Category::Data => format!(
            "JSON does not have the FHIR shape expected (at column {})",
            err.column()
        ),
        Category::Io => "unreadable line".to_string(),
    }
}

pub fn sex(value: Option<&str>) -> Result<&'static str, String> {
    match value.map(str::trim) {
        Some("male") => Ok("male"),
        Some("female") => Ok("female"),
        Some("other") => Ok("other"),
        Some("unknown") | Some("") | None => Ok("unknown"),
        Some(_) => Err("gender/sex must be male, female, other or unknown".into()),
    }
}

/// A free-text value the warehouse stores as it is (a lot number, the name of the
/// originating system), or the reason it is refused: it holds a valid national number (a
/// column shifted in an export, an identity typed in the wrong field), which must never be
/// stored in clear. The reason names the column, never the value.
pub fn stored_text<'a>(column: &str, value: &'a str) -> Result<&'a str, String> {
    let holds_number = value
        .split(|c: char| !(c.is_ascii_digit() || matches!(c, ' ' | '.' | '-')))
        // A run shorter than a national number cannot hold one (most values: no allocation).
        .filter(|run| run.len() >= 13)
        .any(|run| {
            let only: String = run.chars().filter(char::is_ascii_digit).collect();
            only.len() >= 13
                && (0..=only.len() - 13).any(|at| national_id::validate(&only[at..at + 13]).is_ok())
        });
    if holds_number {
        return Err(format!("{column} holds a national number"));
    }
    Ok(value)
}

/// Commune and canton from an address; a city that is not a commune is dropped (it could be
/// free text), a known canton name is kept.
pub fn place(
    city: Option<&str>,
    district: Option<&str>,
) -> (Option<&'static str>, Option<&'static str>) {
    match city.and_then(canton_of) {
        Some((commune, canton)) => (Some(commune), Some(canton)),
        None => {
            let canton = district.and_then(|d| {
                vaxlake_pseudonymize::COMMUNES
                    .iter()
                    .find(|c| c.canton.eq_ignore_ascii_case(d.trim()))
                    .map(|c| c.canton)
            });
            (None, canton)
        }
    }
}

fn resource_key(p: &Pseudonymizer, id: &str) -> [u8; 16] {
    p.pseudonym_bytes(IdKind::Resource, id.as_bytes())
}

/// Keyed hash of a raw record, stored in the quarantine instead of the record.
pub fn record_hash(p: &Pseudonymizer, raw: &[u8]) -> [u8; 16] {
    let mut bytes = b"quarantined record|".to_vec();
    bytes.extend_from_slice(raw);
    p.pseudonym_bytes(IdKind::Resource, &bytes)
}

/// Parsed Patients of one chunk: (hashed resource id, person or `None` if rejected).
pub type PatientChunk = Parsed<([u8; 16], Option<Person>)>;

pub fn parse_patients(
    chunk: &Chunk,
    source: &Arc<str>,
    p: &Pseudonymizer,
    national_system: &str,
    today: NaiveDate,
) -> PatientChunk {
    let mut out = PatientChunk::default();
    for (line, raw) in chunk.lines() {
        out.read += 1;
        let raw = match raw {
            Ok(raw) => raw,
            Err(too_long) => {
                out.rejected
                    .push(too_long.rejected(source, line, |raw| record_hash(p, raw)));
                continue;
            }
        };
        let reject = |reason: String| Rejected {
            source: source.clone(),
            line,
            reason,
            record_hash: record_hash(p, raw),
        };
        let parsed: PatientJson = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                out.rejected.push(reject(json_reason(&e)));
                continue;
            }
        };
        let Some(id) = parsed.id.as_deref().filter(|s| !s.is_empty()) else {
            out.rejected.push(reject("Patient has no id".into()));
            continue;
        };
        let key = resource_key(p, id);
        match patient(&parsed, p, national_system, today) {
            Ok(person) => out.rows.push((key, Some(person))),
            Err(reason) => {
                out.rows.push((key, None));
                out.rejected.push(reject(reason));
            }
        }
    }
    out
}

fn patient(
    parsed: &PatientJson,
    p: &Pseudonymizer,
    national_system: &str,
    today: NaiveDate,
) -> Result<Person, String> {
    if parsed.resource_type.as_deref() != Some("Patient") {
        return Err("resourceType is not Patient".into());
    }
    let number = parsed
        .identifier
        .iter()
        .find(|i| i.system.as_deref() == Some(national_system))
        .and_then(|i| i.value.as_deref())
        .ok_or_else(|| format!("Patient has no identifier of system {national_system}"))?;
    let normalised = national_id::normalise(number).map_err(|e| e.to_string())?;
    let birth_date = match parsed.birth_date.as_deref() {
        Some(text) => parse_date(text).ok_or("birthDate is not a date YYYY-MM-DD")?,
        None => national_id::birth_date(&normalised).ok_or("Patient has no birthDate")?,
    };
    if birth_date > today {
        return Err("birthDate is in the future".into());
    }
    let sex = sex(parsed.gender.as_deref())?;
    let address = parsed.address.first();
    let (commune, canton, resident) = residence(
        address.and_then(|a| a.city.as_deref()),
        address.and_then(|a| a.district.as_deref()),
        address.and_then(|a| a.country.as_deref()),
    );
    // Only the month is kept, like the birth month. A date of death before the birth or in
    // the future is a data error, quarantined like any other.
    let deceased_month = match parsed.deceased.as_deref() {
        None => None,
        Some(text) => {
            let day = parse_date(text).ok_or("deceasedDateTime is not a date")?;
            if day < birth_date {
                return Err("deceasedDateTime is before the birthDate".into());
            }
            if day > today {
                return Err("deceasedDateTime is in the future".into());
            }
            Some(days(birth_month(day)))
        }
    };
    let version = parsed
        .meta
        .as_ref()
        .and_then(|m| m.last_updated.as_deref())
        .and_then(parse_instant_micros)
        .unwrap_or(0);
    Ok(Person {
        person_key: p.pseudonym_bytes(IdKind::Person, normalised.as_bytes()),
        birth_date,
        sex,
        commune,
        canton,
        resident,
        deceased_month,
        version,
    })
}

/// Adds a chunk's Patients to the index; of two versions of one Patient the newer wins.
pub fn index_patients(index: &mut PatientIndex, patients: Vec<([u8; 16], Option<Person>)>) {
    for (key, person) in patients {
        match (index.get(&key), &person) {
            (Some(Some(kept)), Some(new)) if kept.version > new.version => {}
            (Some(Some(_)), None) => {}
            _ => {
                index.insert(key, person);
            }
        }
    }
}

/// Everything an Immunization needs to become a row.
pub struct ImmunizationContext {
    pub pseudonymizer: Pseudonymizer,
    pub patients: PatientIndex,
    pub today: NaiveDate,
    /// Quarantine label of each file, by the chunk's file index.
    pub source: Vec<Arc<str>>,
}

/// Parses a chunk of Immunization lines. Positions combine file index and line (file × 2^40)
/// so that "the later line wins" holds across `Immunization.001.ndjson`, `.002`, ...
pub fn parse_immunizations(chunk: &Chunk, ctx: &ImmunizationContext) -> Parsed<Vaccination> {
    let source = &ctx.source[chunk.file];
    let mut out = Parsed::default();
    for (line, raw) in chunk.lines() {
        out.read += 1;
        let raw = match raw {
            Ok(raw) => raw,
            Err(too_long) => {
                out.rejected.push(
                    too_long.rejected(source, line, |raw| record_hash(&ctx.pseudonymizer, raw)),
                );
                continue;
            }
        };
        match immunization(raw, ctx) {
            Ok(mut v) => {
                v.position = ((chunk.file as u64) << 40) | line;
                out.rows.push(v);
            }
            Err(reason) => out.rejected.push(Rejected {
                source: source.clone(),
                line,
                reason,
                record_hash: record_hash(&ctx.pseudonymizer, raw),
            }),
        }
    }
    out
}

fn immunization(raw: &[u8], ctx: &ImmunizationContext) -> Result<Vaccination, String> {
    let p = &ctx.pseudonymizer;
    let parsed: ImmunizationJson = serde_json::from_slice(raw).map_err(|e| json_reason(&e))?;
    if parsed.resource_type.as_deref() != Some("Immunization") {
        return Err("resourceType is not Immunization".into());
    }
    let id = parsed
        .id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("Immunization has no id")?;
    let status = match parsed.status.as_deref() {
        Some("completed") => "completed",
        Some("entered-in-error") => "entered-in-error",
        Some("not-done") => "not-done",
        _ => return Err("status must be completed, entered-in-error or not-done".into()),
    };
    let meta = parsed.meta.as_ref();
    let last_updated = meta
        .and_then(|m| m.last_updated.as_deref())
        .ok_or("meta.lastUpdated is missing")
        .and_then(|t| parse_instant_micros(t).ok_or("meta.lastUpdated is not an instant"))?;
    let atc = parsed
        .vaccine_code
        .as_ref()
        .and_then(|c| {
            c.coding
                .iter()
                .find(|c| c.system.as_deref() == Some(ATC_SYSTEM))
        })
        .and_then(|c| c.code.as_deref())
        .ok_or("vaccineCode has no ATC coding (system http://www.whocc.no/atc)")?;
    let vaccine = vaccine_or_reason(atc)?;
    let vaccine_name = crate::catalogue::vaccine_name(
        vaccine,
        parsed
            .vaccine_code
            .iter()
            .flat_map(|c| &c.coding)
            .filter_map(|c| c.display.as_deref()),
    );
    let patient_ref = parsed
        .patient
        .as_ref()
        .and_then(|r| r.reference.as_deref())
        .ok_or("patient.reference is missing")?;
    let patient_id = patient_ref.strip_prefix("Patient/").unwrap_or(patient_ref);
    let person = match ctx.patients.get(&resource_key(p, patient_id)) {
        Some(Some(person)) => person,
        Some(None) => {
            return Err("its Patient was rejected (see the Patient's quarantine entry)".into())
        }
        None => return Err("its Patient is not in the export".into()),
    };
    let occurrence = parsed
        .occurrence
        .as_deref()
        .ok_or("occurrenceDateTime is missing")
        .and_then(|t| parse_date(t).ok_or("occurrenceDateTime is not a date"))?;
    if occurrence < person.birth_date {
        return Err("dose given before the Patient's birth date".into());
    }
    if occurrence > ctx.today {
        return Err("dose date is in the future".into());
    }
    let origin = parsed.identifier.iter().find_map(|i| {
        let system = i.system.as_deref()?.strip_prefix(SOURCE_SYSTEM_PREFIX)?;
        Some((system, i.value.as_deref()?))
    });
    let (origin_system, origin_id) = origin.unwrap_or(("registry", id));
    let source_system: Arc<str> = stored_text(
        "meta.source",
        meta.and_then(|m| m.source.as_deref()).unwrap_or("registry"),
    )?
    .into();
    let lot_number = match parsed.lot_number.as_deref().map(str::trim) {
        Some(lot) if !lot.is_empty() => Some(stored_text("lotNumber", lot)?.to_string()),
        _ => None,
    };
    let vaccinator_key = parsed
        .performer
        .first()
        .and_then(|perf| perf.actor.as_ref())
        .and_then(|a| {
            a.reference.as_deref().map(str::to_string).or_else(|| {
                a.identifier
                    .as_ref()
                    .and_then(|i| i.value.as_deref())
                    .map(str::to_string)
            })
        })
        .map(|r| p.pseudonym_bytes(IdKind::Practitioner, r.trim().as_bytes()));
    Ok(Vaccination {
        event_key: event_key(p, origin_system, origin_id),
        person_key: person.person_key,
        birth_month: days(birth_month(person.birth_date)),
        birth_decade: crate::schema::birth_decade(person.birth_date),
        sex: person.sex,
        commune: person.commune,
        canton: person.canton,
        administered_on: days(occurrence),
        age_months_at_dose: age_in_completed_months(person.birth_date, occurrence),
        vaccine_atc: &vaccine.atc_code,
        vaccine_name,
        lot_number,
        dose_number_recorded: parsed
            .protocol_applied
            .first()
            .and_then(|d| d.dose_number)
            .and_then(|d| i32::try_from(d).ok()),
        status,
        vaccinator_key,
        source_system,
        recorded_at: parsed.recorded.as_deref().and_then(parse_instant_micros),
        last_updated,
        position: 0,
    })
}

/// The event key: one pseudonym per (originating system, event id), whichever file it came from.
pub fn event_key(p: &Pseudonymizer, system: &str, id: &str) -> [u8; 16] {
    p.pseudonym_bytes(IdKind::Event, format!("{system}|{id}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaxlake_pseudonymize::MasterKey;

    fn ctx() -> (Pseudonymizer, NaiveDate) {
        let key = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        (
            Pseudonymizer::new(&key),
            NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
        )
    }

    const GOOD_PATIENT: &str = r#"{"resourceType":"Patient","id":"pat-1","identifier":[{"system":"urn:oid:1.3.182.4.4","value":"1893120105732"}],"name":[{"family":"Schmit"}],"gender":"female","birthDate":"2022-03-15","address":[{"line":["12 rue de la Gare"],"city":"Wiltz","district":"Wiltz"}]}"#;

    fn chunk(lines: &[&str]) -> Chunk {
        Chunk::new(0, 1, lines.join("\n").into_bytes())
    }

    fn index(p: &Pseudonymizer, today: NaiveDate, lines: &[&str]) -> (PatientIndex, Vec<Rejected>) {
        let parsed = parse_patients(
            &chunk(lines),
            &Arc::from("fhir:Patient.ndjson"),
            p,
            DEFAULT_NATIONAL_ID_SYSTEM,
            today,
        );
        let mut idx = PatientIndex::new();
        index_patients(&mut idx, parsed.rows);
        (idx, parsed.rejected)
    }

    #[test]
    fn patient_is_pseudonymised_and_generalised() {
        let (p, today) = ctx();
        let (idx, rejected) = index(&p, today, &[GOOD_PATIENT]);
        assert!(rejected.is_empty());
        let person = idx.values().next().unwrap().as_ref().unwrap();
        assert_eq!(
            person.person_key,
            p.pseudonym_bytes(IdKind::Person, b"1893120105732")
        );
        assert_eq!(
            (person.commune, person.canton),
            (Some("Wiltz"), Some("Wiltz"))
        );
        assert_eq!(person.sex, "female");
    }

    #[test]
    fn bad_patients_are_rejected_without_quoting_identities() {
        let (p, today) = ctx();
        let bad_digit = GOOD_PATIENT.replace("1893120105732", "1893120105733");
        let numeric = GOOD_PATIENT.replace("\"1893120105732\"", "1893120105732");
        let future = GOOD_PATIENT.replace("2022-03-15", "2099-01-01");
        let no_number = GOOD_PATIENT.replace("urn:oid:1.3.182.4.4", "urn:other");
        let lines = [
            bad_digit.as_str(),
            numeric.as_str(),
            future.as_str(),
            no_number.as_str(),
            "{\"resourceType\":\"Pat",
        ];
        let (idx, rejected) = index(&p, today, &lines);
        assert_eq!(rejected.len(), 5);
        assert_eq!(
            rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert!(
            rejected[0].reason.contains("Verhoeff"),
            "{}",
            rejected[0].reason
        );
        assert!(rejected[2].reason.contains("future"));
        assert!(rejected[4].reason.contains("invalid JSON"));
        for r in &rejected {
            assert!(!r.reason.contains("1893120105"), "{}", r.reason);
        }
        // Rejected patients stay in the index as rejected, so their Immunizations say so.
        assert!(idx.values().all(Option::is_none));
    }

    /// A line the reader found too long (it stands as an empty line) is counted as read and
    /// quarantined with its number and the limit, its neighbours parsed as usual; two such
    /// lines get distinct hashes.
    #[test]
    fn a_line_too_long_is_quarantined_in_its_place() {
        let (p, today) = ctx();
        let mut c = Chunk::new(
            0,
            10,
            format!("{GOOD_PATIENT}\n\n{GOOD_PATIENT}\n\n").into_bytes(),
        );
        c.too_long = vec![11, 13];
        c.max_line = 64 << 20;
        let parsed = parse_patients(
            &c,
            &Arc::from("fhir:Patient.ndjson"),
            &p,
            DEFAULT_NATIONAL_ID_SYSTEM,
            today,
        );
        assert_eq!(parsed.read, 4);
        assert_eq!(parsed.rows.iter().filter(|(_, p)| p.is_some()).count(), 2);
        let rejected: Vec<_> = parsed
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [
                (11, "a line longer than 64 MiB"),
                (13, "a line longer than 64 MiB")
            ]
        );
        assert_ne!(
            parsed.rejected[0].record_hash,
            parsed.rejected[1].record_hash
        );
        let ictx = ImmunizationContext {
            pseudonymizer: p,
            patients: PatientIndex::new(),
            today,
            source: vec![Arc::from("fhir:Immunization.ndjson")],
        };
        let c = Chunk {
            too_long: vec![1],
            max_line: 100,
            ..Chunk::new(0, 1, b"\n".to_vec())
        };
        let parsed = parse_immunizations(&c, &ictx);
        assert_eq!(parsed.read, 1);
        assert_eq!(parsed.rejected[0].reason, "a line longer than 100 bytes");
    }

    fn immunization_line(patch: &[(&str, &str)]) -> String {
        let mut s = r#"{"resourceType":"Immunization","id":"imm-1","meta":{"lastUpdated":"2023-04-05T10:12:00Z"},"status":"completed","vaccineCode":{"coding":[{"system":"http://www.whocc.no/atc","code":"J07CA09"}]},"patient":{"reference":"Patient/pat-1"},"occurrenceDateTime":"2022-05-16","recorded":"2022-05-16T10:12:00+02:00","lotNumber":"AB12","performer":[{"actor":{"reference":"Practitioner/prac-7"}}],"protocolApplied":[{"doseNumberPositiveInt":1}],"note":[{"text":"Anne Schmit had a fever"}]}"#.to_string();
        for (from, to) in patch {
            s = s.replace(from, to);
        }
        s
    }

    #[test]
    fn immunizations_become_rows_or_reasons() {
        let (p, today) = ctx();
        let (patients, _) = index(&p, today, &[GOOD_PATIENT]);
        let ctx = ImmunizationContext {
            pseudonymizer: p.clone(),
            patients,
            today,
            source: vec![Arc::from("fhir:Immunization.ndjson")],
        };
        let lines = [
            immunization_line(&[]),
            immunization_line(&[("J07CA09", "J07ZZ99")]),
            immunization_line(&[("2022-05-16\"", "2022-03-14\"")]),
            immunization_line(&[("2022-05-16\"", "2091-01-01\"")]),
            immunization_line(&[("Patient/pat-1", "Patient/pat-404")]),
            immunization_line(&[("\"completed\"", "\"not-done\"")]),
            immunization_line(&[("\"completed\"", "\"finished\"")]),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = parse_immunizations(&chunk(&refs), &ctx);
        assert_eq!(out.read, 7);
        assert_eq!(out.rows.len(), 2);
        let v = &out.rows[0];
        // Born 2022-03-15, dose 2022-05-16: two completed months.
        assert_eq!(v.age_months_at_dose, 2);
        assert_eq!(
            v.birth_month,
            days(NaiveDate::from_ymd_opt(2022, 3, 1).unwrap())
        );
        assert_eq!(v.birth_decade, 2020);
        assert_eq!(v.event_key, event_key(&p, "registry", "imm-1"));
        assert_eq!(v.dose_number_recorded, Some(1));
        assert_eq!(out.rows[1].status, "not-done");
        let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons[0].contains("unknown ATC code J07ZZ99"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("before the Patient's birth"));
        assert!(reasons[2].contains("future"));
        assert!(reasons[3].contains("not in the export"));
        assert!(reasons[4].contains("status"));
    }

    #[test]
    fn free_text_holding_a_national_number_is_refused() {
        for held in [
            "1893120105732",
            "LOT 1893.1201.057-32",
            "x1893120105732y",
            "991893120105732",
        ] {
            let reason = stored_text("lotNumber", held).unwrap_err();
            assert_eq!(reason, "lotNumber holds a national number");
        }
        // Digits that are no valid national number are a lot number like any other.
        for kept in ["FF1234", "1893120105733", "20210401", "covid19"] {
            assert_eq!(stored_text("lotNumber", kept), Ok(kept));
        }
    }

    #[test]
    fn imported_copies_share_the_originals_event_key() {
        let (p, today) = ctx();
        let (patients, _) = index(&p, today, &[GOOD_PATIENT]);
        let ctx = ImmunizationContext {
            pseudonymizer: p.clone(),
            patients,
            today,
            source: vec![Arc::from("fhir:Immunization.ndjson")],
        };
        let copy = immunization_line(&[(
            r#""meta":{"lastUpdated":"2023-04-05T10:12:00Z"}"#,
            r#""meta":{"lastUpdated":"2023-04-05T10:12:00Z","source":"covid19"},"identifier":[{"system":"urn:vaxlake:source-system:covid19","value":"CV-0000001"}]"#,
        )]);
        let out = parse_immunizations(&chunk(&[&copy]), &ctx);
        assert_eq!(
            out.rows[0].event_key,
            event_key(&p, "covid19", "CV-0000001")
        );
        assert_eq!(&*out.rows[0].source_system, "covid19");
    }
}
