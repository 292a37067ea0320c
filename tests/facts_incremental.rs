//! The coverage facts and counts kept incrementally equal a computation from scratch, after
//! every kind of change a registry sends: new doses, corrections (a dose moved in time or
//! to another person), entered-in-error deletions, a correction that arrives before the
//! event it corrects, and persons who die or move.
//!
//! After each step three things are compared:
//! - the counts a running coverage engine kept by adding up what each commit added, against
//!   a fresh engine on a copy of the warehouse whose facts `vaxlake maintain` rebuilt;
//! - the facts the ingest appended (netted by weight) against those of the rebuild;
//! - the facts' dose days, numbers and verdicts against the `antigen_doses` view, which
//!   computes them from the events in SQL.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vaxlake_query::coverage::{CountsRead, CoverageEngine, Suppression};
use vaxlake_query::{QueryOptions, Warehouse};

/// The resources of an NDJSON file (the generator's deliberately broken lines left out).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn export(dir: &Path, name: &str, patients: &[Value], immunizations: &[Value]) -> String {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let ndjson = |values: &[Value]| {
        values
            .iter()
            .map(|v| v.to_string() + "\n")
            .collect::<String>()
    };
    std::fs::write(d.join("Patient.ndjson"), ndjson(patients)).unwrap();
    std::fs::write(d.join("Immunization.ndjson"), ndjson(immunizations)).unwrap();
    format!("fhir:{}", d.display())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A day `days` later (earlier when negative) than the ISO date `date`.
fn shift(date: &str, days: i64) -> String {
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    (date + chrono::Duration::days(days)).to_string()
}

/// A later version of `resource`, changed by `change`.
fn revised(resource: &Value, last_updated: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut v = resource.clone();
    v["meta"]["lastUpdated"] = Value::from(last_updated);
    change(&mut v);
    v
}

const FACT_COLUMNS: &str = "person_key, antigen, administered_on, age_months_at_dose, valid, \
    invalid_reason, dose_seq, completes_series, completes_schedule, first_in_season, \
    resident, birth_year, commune, canton, sex, death_year";

/// The current facts: rows whose weights do not sum to zero, with their weight.
fn netted_facts(wh: &Path) -> String {
    sql_csv(
        wh,
        &format!(
            "SELECT {FACT_COLUMNS}, sum(weight) AS weight FROM dose_facts \
             GROUP BY {FACT_COLUMNS} HAVING sum(weight) <> 0 ORDER BY {FACT_COLUMNS}"
        ),
    )
}

struct Check {
    dir: PathBuf,
    wh: PathBuf,
    engine: CoverageEngine,
}

impl Check {
    async fn open(wh: &Path) -> CoverageEngine {
        let warehouse = Warehouse::open(
            wh.to_str().unwrap(),
            QueryOptions::default().with_refresh_interval(Duration::ZERO),
        )
        .await
        .unwrap();
        // Threshold 1 withholds nothing: every count is compared as counted.
        CoverageEngine::new(warehouse, Suppression { threshold: 1 })
            .unwrap()
            .with_complement_key(b"facts test")
    }

    async fn table(engine: &CoverageEngine) -> (Value, Value) {
        let table = engine.table().await.unwrap();
        let invalid = engine.invalid_doses().await.unwrap();
        (
            serde_json::to_value(&table.rows).unwrap(),
            serde_json::to_value(&invalid.rows).unwrap(),
        )
    }

    /// Compares the kept counts and facts with a rebuild after the step `step`.
    async fn step(&self, step: &str, incremental: bool) {
        let kept = Self::table(&self.engine).await;
        if incremental {
            assert!(
                matches!(
                    self.engine.last_counts_read().await,
                    Some(CountsRead::Added { .. })
                ),
                "{step}: the engine added up the new commit instead of reading everything: {:?}",
                self.engine.last_counts_read().await
            );
        }

        let copy = self.dir.join(format!("rebuilt-{step}"));
        copy_dir(&self.wh, &copy);
        ok(&[
            "maintain",
            "--warehouse",
            copy.to_str().unwrap(),
            "--no-vacuum",
        ]);
        let fresh = Self::table(&Self::open(&copy).await).await;
        assert_eq!(kept.0, fresh.0, "{step}: coverage table kept vs rebuilt");
        assert_eq!(kept.1, fresh.1, "{step}: invalid doses kept vs rebuilt");
        assert!(
            kept.0.as_array().unwrap().len() > 100,
            "{step}: the table has rows"
        );

        let facts = netted_facts(&self.wh);
        assert_eq!(
            facts,
            netted_facts(&copy),
            "{step}: facts appended vs rebuilt"
        );
        let mut lines = facts.lines();
        assert!(lines.next().unwrap().ends_with(",weight"));
        for line in lines {
            assert!(
                line.ends_with(",1"),
                "{step}: a fact of weight other than 1: {line}"
            );
        }
        // The view computes the same judged dose days from the events.
        let days = "person_key, antigen, administered_on, dose_seq, valid, invalid_reason";
        assert_eq!(
            sql_csv(
                &self.wh,
                &format!(
                    "SELECT {days} FROM dose_facts GROUP BY {days} HAVING sum(weight) > 0 \
                     ORDER BY {days}"
                )
            ),
            sql_csv(
                &self.wh,
                &format!("SELECT {days} FROM antigen_doses ORDER BY {days}")
            ),
            "{step}: facts vs the antigen_doses view"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_counts_and_facts_equal_a_rebuild_after_every_kind_of_change() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("export");
    generate(&generated, 400, 11);
    let patients = lines(&generated.join("fhir/Patient.ndjson"));
    let immunizations = lines(&generated.join("fhir/Immunization.ndjson"));
    let n = immunizations.len();
    assert!(n > 1_000, "{n} immunizations");
    let (first, rest) = immunizations.split_at(n * 6 / 10);
    let (second, third) = rest.split_at(n * 2 / 10);

    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    load(&wh, &key, &export(dir.path(), "0", &patients, first));
    let check = Check {
        dir: dir.path().to_path_buf(),
        wh: wh.clone(),
        engine: Check::open(&wh).await,
    };
    check.step("first load", false).await;

    // 1. New doses of known and new persons.
    load(&wh, &key, &export(dir.path(), "1", &patients, second));
    check.step("inserts", true).await;

    // 2. Corrections and deletions of doses already counted: some moved 40 days earlier
    //    (some become too early or too close to the previous dose), some moved to another
    //    person, some entered in error.
    let later = "2026-11-30T00:00:00Z";
    let mut changes = Vec::new();
    for (i, imm) in first.iter().enumerate().filter(|(i, _)| i % 23 == 0) {
        changes.push(match i % 3 {
            0 => revised(imm, later, |v| {
                let date = v["occurrenceDateTime"].as_str().unwrap().to_string();
                v["occurrenceDateTime"] = Value::from(shift(&date, -40));
            }),
            1 => revised(imm, later, |v| {
                let other = &first[(i + 500) % first.len()]["patient"];
                v["patient"] = other.clone();
            }),
            _ => revised(imm, later, |v| {
                v["status"] = Value::from("entered-in-error")
            }),
        });
    }
    assert!(changes.len() > 30);
    let (read, accepted, _) = ingest(&wh, &key, &export(dir.path(), "2", &patients, &changes)).0;
    assert!(accepted * 10 >= read * 9, "{accepted} of {read} accepted");
    check.step("corrections and deletions", true).await;

    // 3. Corrections that arrive before the events they correct.
    let early: Vec<Value> = third
        .iter()
        .step_by(7)
        .map(|imm| {
            revised(imm, later, |v| {
                let date = v["occurrenceDateTime"].as_str().unwrap().to_string();
                v["occurrenceDateTime"] = Value::from(shift(&date, 9));
            })
        })
        .collect();
    load(&wh, &key, &export(dir.path(), "3", &patients, &early));
    check.step("corrections before their events", true).await;

    // 4. The originals at last (older: they change nothing), the rest of the doses, and
    //    persons who died or moved to another commune.
    let mut moved = Vec::new();
    for (i, patient) in patients.iter().enumerate().filter(|(i, _)| i % 17 == 0) {
        moved.push(revised(patient, later, |v| {
            if i % 2 == 0 {
                v["deceasedDateTime"] = Value::from("2025-02-10");
            } else {
                v["address"][0]["city"] = Value::from("Vianden");
            }
        }));
    }
    let everyone: Vec<Value> = patients.iter().chain(&moved).cloned().collect();
    load(&wh, &key, &export(dir.path(), "4", &everyone, third));
    check.step("originals, deaths and moves", true).await;
}

/// Ingests `source`; the generated registry's deliberately broken records are quarantined.
/// (An export carries the patients of its immunizations: the age at a dose is computed from
/// them. Unchanged patients change nothing.)
fn load(wh: &Path, key: &Path, source: &str) {
    let (read, accepted, quarantined) = ingest(wh, key, source).0;
    assert!(accepted > 0, "{source}: nothing accepted");
    assert_eq!(read, accepted + quarantined);
}
