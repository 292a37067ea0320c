//! A synthetic, Luxembourg-like national vaccination registry export, for tests, demos and
//! benchmarks of the warehouse: a FHIR Bulk Data export (`fhir/Patient.ndjson`,
//! `fhir/Immunization.ndjson`), the COVID-19 system's CSV (`registry.csv`), denominators
//! (`population.csv`), case notifications with a known influenza vaccine effectiveness
//! (`cases.csv`) and `manifest.json`, which says what was planted and what a correct ingest
//! must accept, quarantine and keep.
//!
//! Same options, same bytes: every random choice comes from ChaCha8 streams derived from the
//! seed, one per stage and per chunk of persons, whatever the number of threads.
//!
//! ```no_run
//! use vaxlake_generate::{generate, GenerateOptions};
//! let manifest = generate(&GenerateOptions::default().with_persons(2000), "demo-data".as_ref()).unwrap();
//! assert_eq!(manifest.persons, 2000);
//! ```

mod broken_rules;
mod cases;
mod communes;
mod covid;
mod date;
mod fhir;
mod manifest;
mod par;
mod people;
mod population;
mod reference;
mod rng;
mod schedule;
mod text;

pub use manifest::{
    CasesBad, CasesManifest, CommunesManifest, CsvBad, CsvManifest, FhirBad, FhirManifest,
    InvalidDosesFound, InvalidDosesManifest, Manifest, PocketCommune, PopulationManifest,
    TinyCommune,
};

use date::{Day, Ts};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The "today" of the synthetic registry: no valid dose is later.
pub const EXPORT_DATE_TEXT: &str = "2025-12-31";
pub(crate) const EXPORT_DATE: Day = date::ymd(2025, 12, 31);
/// The last minute (UTC) a record may have been updated: 2025-12-31T22:59Z.
pub(crate) const EXPORT_END: Ts = (EXPORT_DATE as i64 + 1) * 1440 - 61;
/// The electronic vaccination record went live in December 2021; earlier doses were
/// transcribed from paper afterwards.
pub(crate) const CVE_START: Day = date::ymd(2021, 12, 1);
/// Persons per unit of parallel work (and per random stream).
pub(crate) const PERSON_CHUNK: usize = 1024;

pub const MIN_PERSONS: u64 = 100;
/// National numbers allow 1000 persons per birth date: 10 million residents stay well below.
pub const MAX_PERSONS: u64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Residents (670 000 ≈ Luxembourg). The registry adds a few emigrated Patients.
    pub persons: u64,
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            persons: 670_000,
            seed: 1,
        }
    }
}

impl GenerateOptions {
    pub fn with_persons(mut self, persons: u64) -> Self {
        self.persons = persons;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid generate options: {0}")]
    InvalidOptions(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create(path: &Path) -> Result<BufWriter<File>, GenerateError> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(io_err(path))
}

/// Flushes a finished file (no fsync: the export is test data and can be made again).
fn finish(mut w: BufWriter<File>, path: &Path) -> Result<(), GenerateError> {
    w.flush().map_err(io_err(path))
}

/// Writes the synthetic export under `out` (created if needed; files replaced) and returns
/// the manifest, also written to `out/manifest.json`.
pub fn generate(opts: &GenerateOptions, out: &Path) -> Result<Manifest, GenerateError> {
    if !(MIN_PERSONS..=MAX_PERSONS).contains(&opts.persons) {
        return Err(GenerateError::InvalidOptions(format!(
            "--persons must be between {MIN_PERSONS} and {MAX_PERSONS}, got {}",
            opts.persons
        )));
    }
    let seed = opts.seed;
    let fhir_dir = out.join("fhir");
    std::fs::create_dir_all(&fhir_dir).map_err(io_err(&fhir_dir))?;

    let geo = reference::Geo::new();
    let pracs =
        reference::Practitioners::new(&geo, &mut rng::stream(seed, rng::ids::PRACTITIONERS));
    let people = people::build(opts.persons, seed, &geo, &pracs)?;
    let persons = &people.persons;
    let fx = schedule::commune_factors(&geo, seed);

    // The COVID-19 system first: the FHIR registry imports some of its events.
    let csv_path = out.join("registry.csv");
    let doses = covid::generate_doses(persons, seed);
    let mut w = create(&csv_path)?;
    let covid =
        covid::write_registry(&mut w, persons, &geo, &doses, seed).map_err(io_err(&csv_path))?;
    finish(w, &csv_path)?;
    drop(doses);

    let ctx = fhir::Ctx {
        seed,
        persons,
        geo: &geo,
        fx: &fx,
        pracs: &pracs,
        copies: &covid.copies,
        max_pat_no: people.max_pat_no,
    };
    let pat_path = fhir_dir.join("Patient.ndjson");
    let imm_path = fhir_dir.join("Immunization.ndjson");
    let mut pat_w = create(&pat_path)?;
    let mut imm_w = create(&imm_path)?;
    let mut later_versions: Vec<u8> = Vec::new();
    let mut fhir_counts = FhirManifest::default();
    let mut invalid_doses = manifest::InvalidDosesManifest::default();
    let mut flu_cases = Vec::new();
    let mut measles_candidates = Vec::new();
    let chunks = fhir::chunk_count(persons.len());
    let batch = par::threads() * 4;
    let mut next_id = 0u64;
    for batch_start in (0..chunks).step_by(batch) {
        let batch_end = (batch_start + batch).min(chunks);
        let plans = par::map(batch_end - batch_start, |k| {
            fhir::plan_chunk(&ctx, batch_start + k)
        });
        let first_ids: Vec<u64> = plans
            .iter()
            .map(|p| {
                let first = next_id;
                next_id += p.imms.len() as u64;
                first
            })
            .collect();
        let written = par::map(plans.len(), |k| {
            fhir::write_chunk(&ctx, &plans[k], first_ids[k])
        });
        for b in written {
            pat_w.write_all(&b.patients).map_err(io_err(&pat_path))?;
            imm_w
                .write_all(&b.immunizations)
                .map_err(io_err(&imm_path))?;
            later_versions.extend_from_slice(&b.later_versions);
            fhir_counts.add(&b.counts);
        }
        for p in plans {
            invalid_doses.add(&p.invalid_doses);
            flu_cases.extend(p.flu_cases);
            measles_candidates.extend(p.measles_candidates);
        }
    }
    imm_w
        .write_all(&later_versions)
        .map_err(io_err(&imm_path))?;
    finish(pat_w, &pat_path)?;
    finish(imm_w, &imm_path)?;
    fhir_counts.finish();
    debug_assert_eq!(fhir_counts.bad.broken_json_patient, people.ghosts);
    debug_assert_eq!(
        fhir_counts.bad.invalid_check_digit_patients,
        people.invalid_patients
    );

    let cases_path = out.join("cases.csv");
    let mut w = create(&cases_path)?;
    let case_inputs = cases::Inputs {
        persons,
        residents: people.residents,
        geo: &geo,
        fx: &fx,
        measles_candidates: &measles_candidates,
        seed,
    };
    let cases = cases::write_cases(&mut w, &case_inputs, flu_cases).map_err(io_err(&cases_path))?;
    finish(w, &cases_path)?;

    let pop_path = out.join("population.csv");
    let mut w = create(&pop_path)?;
    let mut population =
        population::write_population(&mut w, persons, &geo, seed).map_err(io_err(&pop_path))?;
    finish(w, &pop_path)?;
    population.never_in_registry = people.never_in_registry;
    population.emigrated_patients = people.emigrated;
    population.cross_border_patients = people.cross_border;
    population.deceased_patients = people.deceased;

    let manifest = Manifest {
        seed,
        persons: opts.persons,
        export_date: EXPORT_DATE_TEXT.to_string(),
        current_events_fhir_and_csv: fhir_counts.current_events + covid.manifest.current_events
            - fhir_counts.covid_copies,
        distinct_patients_accepted: fhir_counts.patients_accepted,
        fhir: fhir_counts,
        invalid_doses,
        csv: covid.manifest,
        population,
        cases,
        notes: notes(),
        communes: communes::manifest(&geo, &fx, persons),
    };
    let manifest_path = out.join("manifest.json");
    let mut text = serde_json::to_string_pretty(&manifest).expect("the manifest serialises");
    text.push('\n');
    std::fs::write(&manifest_path, text).map_err(io_err(&manifest_path))?;
    Ok(manifest)
}

fn notes() -> Vec<String> {
    [
        "Quarantined (expected_quarantined) means exactly: lines that are not JSON; Patients whose national number fails a check digit and every Immunization referencing them; Immunizations with an ATC code missing from sql/reference/vaccines.csv, dated before the Patient's birthDate, dated after the export date, or referencing a Patient absent from the export; in registry.csv rows with an invalid national number, unknown ATC, administered_on before birth_date or not an ISO date, or a field count other than 13; in cases.csv rows with an invalid national number or an onset_date that is not an ISO date. Everything else is accepted, including not-done, entered-in-error, corrected and duplicate records.",
        "Immunization.ndjson holds first versions grouped by Patient, then every later version (corrections, entered-in-error) with a later meta.lastUpdated. registry.csv holds first rows in administration order, then later versions of an event_id (later recorded_at) in recorded_at order.",
        "COVID copies: Immunizations with meta.source covid19 and identifier system urn:vaxlake:source-system:covid19 whose value is a registry.csv event_id; same person, ATC, date, lot and dose number. Their performer is the COVID system's vaccinator id as an identifier.",
        "population.csv reference_year Y counts residents on 1 January of Y: the 2026 rows are the population at the export date (2025 births included). The 2025 rows also count the Patients who emigrated in 2025 and residents who died in 2025, and exclude residents who arrived in 2025.",
        "Childhood coverage varies by commune: communes.pockets lists the pockets of low coverage (about 4 % of communes, 12-22 % of children get no childhood vaccine, DTP3 by 12 months about 75-85 %); the other communes spread around a lower refusal (communes.ordinary_refusal) so that the population-weighted mean is communes.national_refusal for every seed. Older cohorts (2000-2012) and cohorts 2020-2021 refuse 1.25 to 1.6 times more.",
        "communes.tiny: no canton of Luxembourg has two communes, so the synthetic population makes one: in the canton with the fewest communes, the smallest commune gets a handful of births a year (about 3 at 670,000 persons), the canton's seat keeps its reference size, and its other communes get no synthetic resident (they stay valid communes of sql/reference/communes.csv). Publishing the canton and the seat would reveal the tiny commune's suppressed cells by subtraction.",
        "population.csv sex is as recorded: male, female, and small rows for other and unknown.",
        "Cross-border workers (population.cross_border_patients): Patients whose address[0] is a town in France, Belgium or Germany with that country code, vaccinated in Luxembourg; their registry.csv and cases.csv rows name the town abroad. They are in no population row and not resident. Deceased residents (population.deceased_patients) carry Patient.deceasedDateTime in 2025; nothing of theirs is dated after death; population 2025 counts them, 2026 does not.",
        "cases.csv persons are residents (in the registry or not), cross-border workers, or registry Patients who have since emigrated. cases.repeat_notifications rows repeat an influenza notification of the same person and disease 2 to 40 days later (one episode). Influenza onsets fall between 1 October and 30 April; a person counts as vaccinated from 14 days after the first influenza dose given on or after 1 September of that season.",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
