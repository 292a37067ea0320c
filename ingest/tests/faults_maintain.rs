//! Faults of object storage during `maintain` and key rotation (the `faulty://` store of
//! tests/common/faulty.rs: failed puts, gets, lists and deletes, and torn reads, aimed all
//! along a clean run's requests). After every injected fault each table reads as one of its
//! committed versions, whole (maintenance: the rows it held before, since compaction and
//! vacuum never change rows; rotation: all of its rows under the old key or all under the
//! new one, and a warehouse whose tables disagree is refused by the ingest), and the next run
//! without the fault ends exactly where a run that never failed ends.

use std::collections::BTreeMap;
use std::path::Path;

use vaxlake_generate::{generate, GenerateOptions};
use vaxlake_ingest::{
    check_key_everywhere, ingest, maintain, rekey, warehouse_url, IngestOptions, MaintainOptions,
    RekeyOptions, Source,
};
use vaxlake_pseudonymize::{KeyRotation, MasterKey};

mod common;
use common::faulty::{factory, spread, Fault, Kind};
use common::{assert_same, Snapshot};

/// The tables a generated FHIR export fills.
const TABLES: &[&str] = &[
    "vaccinations",
    "persons",
    "quarantine",
    "dose_facts",
    "ingest_runs",
];

async fn snapshot(root: &str) -> Snapshot {
    common::snapshot(root, TABLES).await
}

fn key_a() -> MasterKey {
    MasterKey::from_hex(&"ab".repeat(32)).unwrap()
}

fn key_b() -> MasterKey {
    MasterKey::from_hex(&"cd".repeat(32)).unwrap()
}

/// Short leases: a run that failed while releasing one (an injected delete fault) holds up
/// the next run for this long, not 30 s.
fn short_leases() {
    std::env::set_var("VAXLAKE_LEASE_SECONDS", "1");
}

/// A warehouse ingested from a small generated export in small batches (many small files:
/// work for the compaction), in bucket `name`.
async fn base_warehouse(dir: &Path, name: &str) -> String {
    let out = dir.join("export");
    generate(
        &GenerateOptions {
            persons: 120,
            seed: 11,
        },
        &out,
    )
    .unwrap();
    let source = Source::parse(&format!("fhir:{}", out.join("fhir").display())).unwrap();
    let root = format!("faulty://{name}/wh");
    let options = IngestOptions {
        batch_rows: 150,
        workers: 2,
        ..IngestOptions::default()
    };
    let report = ingest(&root, &source, &key_a(), &options).await.unwrap();
    assert!(report.accepted > 300, "{report:?}");
    root
}

/// Copies the warehouse of bucket `from` into the fresh bucket `to`; returns `to`'s root.
async fn copy_of(from: &str, to: &str) -> String {
    let factory = factory();
    let objects = factory.bucket(from).objects().await;
    let target = factory.bucket(to);
    assert!(target.objects().await.is_empty(), "bucket {to} reused");
    target.load(&objects).await;
    format!("faulty://{to}/wh")
}

/// The fault plans of one operation whose clean run made `counts` requests of each kind:
/// `per_kind` points spread over each kind's requests, failing them, and torn reads (both
/// kinds) at `torn` points over its gets.
fn plans(
    counts: &BTreeMap<String, usize>,
    per_kind: usize,
    torn: usize,
) -> Vec<(Kind, usize, Fault)> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let total = counts[&format!("{kind:?}")];
        for n in spread(total, per_kind) {
            out.push((kind, n, Fault::Fail));
        }
    }
    let gets = counts["Get"];
    for (i, n) in spread(gets.saturating_sub(1), torn).into_iter().enumerate() {
        // Alternate the two kinds of torn read, and shift the short ones by one request so
        // the two do not always hit the same object.
        if i % 2 == 0 {
            out.push((Kind::Get, n, Fault::TornError));
        } else {
            out.push((Kind::Get, n + 1, Fault::TornShort));
        }
    }
    out
}

fn counts_of(bucket: &common::faulty::Bucket) -> BTreeMap<String, usize> {
    Kind::ALL
        .iter()
        .map(|k| (format!("{k:?}"), bucket.count(*k)))
        .collect()
}

/// One line of the summary a test prints: what the run with `what` armed did.
fn outcome<T, E: std::fmt::Display>(what: &str, run: &Result<T, E>, hit: bool) -> String {
    match run {
        Ok(_) if hit => format!("{what}: ok despite the fault"),
        Ok(_) => format!("{what}: not reached"),
        Err(e) => format!(
            "{what}: failed ({})",
            e.to_string().chars().take(80).collect::<String>()
        ),
    }
}

/// Number of data files of each table's newest version.
async fn files(root: &str) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for table in TABLES {
        let url = url::Url::parse(&format!("{root}/{table}/")).unwrap();
        if let Ok(t) = deltalake::DeltaTable::try_from_url(url).await {
            out.insert(*table, t.snapshot().unwrap().log_data().num_files());
        }
    }
    out
}

fn maintain_options() -> MaintainOptions {
    // Retention 0: the vacuum deletes what the compaction just removed, so the run makes
    // delete requests to fault.
    MaintainOptions::default()
        .with_target_file_size(64 * 1024 * 1024)
        .with_retention_hours(0)
        .with_unsafe_zero_retention(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_after_any_fault_leaves_committed_versions_and_the_next_run_completes() {
    short_leases();
    let factory = factory();
    let dir = tempfile::tempdir().unwrap();
    base_warehouse(dir.path(), "m-base").await;
    let before = snapshot("faulty://m-base/wh").await;
    let files_before = files("faulty://m-base/wh").await;

    // The run nothing fails, counted.
    let clean_root = copy_of("m-base", "m-clean").await;
    let clean_bucket = factory.bucket("m-clean");
    clean_bucket.count_only();
    let clean = maintain(&clean_root, &maintain_options()).await.unwrap();
    let counts = counts_of(&clean_bucket);
    let expected = snapshot(&clean_root).await;
    let files_expected = files(&clean_root).await;
    assert!(
        files_expected["vaccinations"] < files_before["vaccinations"],
        "the clean run compacted nothing: {files_before:?} -> {files_expected:?}"
    );
    assert!(
        clean.tables.iter().any(|t| !t.vacuumed_files.is_empty()),
        "the clean run vacuumed nothing"
    );
    assert!(counts["Delete"] > 0, "{counts:?}");

    let cases = plans(&counts, 5, 6);
    let (mut failed, mut tried) = (0, 0);
    let mut outcomes = Vec::new();
    for (index, (kind, n, fault)) in cases.iter().copied().enumerate() {
        let name = format!("m-case{index}");
        let root = copy_of("m-base", &name).await;
        let bucket = factory.bucket(&name);
        bucket.arm(kind, n..n + 1, fault);
        let first = maintain(&root, &maintain_options()).await;
        let hit = bucket.injected() > 0;
        bucket.disarm();
        let what = format!("{fault:?} on {kind:?} #{n}");
        tried += 1;
        if let Err(error) = &first {
            failed += 1;
            assert!(hit, "{what}: failed without a fault: {error}");
            let message = error.to_string();
            // Compaction and vacuum never change rows: every table reads whole, as before
            // (the coverage facts as before or as netted by the rebuild).
            let now = snapshot(&root).await;
            for table in TABLES {
                assert!(
                    now[table] == before[table] || now[table] == expected[table],
                    "{what}: {table} does not read as a committed version after: {message}"
                );
            }
        }
        outcomes.push(outcome(&what, &first, hit));
        let second = maintain(&root, &maintain_options())
            .await
            .unwrap_or_else(|error| panic!("{what}: the run after the fault failed: {error}"));
        assert_same(&snapshot(&root).await, &expected, &what);
        assert_eq!(
            files(&root).await,
            files_expected,
            "{what}: the next run left other files than a clean run"
        );
        assert!(
            second.tables.iter().all(|t| t.compaction_skipped.is_none()),
            "{what}"
        );
    }
    eprintln!(
        "maintain faults: {tried} runs, {failed} failed, clean run requests {counts:?}\n{}",
        outcomes.join("\n")
    );
    assert!(
        failed * 2 >= tried,
        "only {failed} of {tried} injected faults stopped maintenance"
    );
    // The rows never changed, only the files holding them.
    for table in ["vaccinations", "persons", "quarantine", "ingest_runs"] {
        assert_eq!(
            before[table], expected[table],
            "maintain changed {table}'s rows"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_after_any_fault_leaves_whole_tables_and_the_next_run_completes() {
    short_leases();
    let factory = factory();
    let dir = tempfile::tempdir().unwrap();
    base_warehouse(dir.path(), "r-base").await;
    let before = snapshot("faulty://r-base/wh").await;
    let rotation = KeyRotation::new(&key_a(), &key_b()).unwrap();
    let chain = rotation.rotated_key().clone();

    let clean_root = copy_of("r-base", "r-clean").await;
    let clean_bucket = factory.bucket("r-clean");
    clean_bucket.count_only();
    let clean = rekey(&clean_root, &rotation, &RekeyOptions::default())
        .await
        .unwrap();
    assert!(clean.complete());
    let counts = counts_of(&clean_bucket);
    let expected = snapshot(&clean_root).await;
    // The same rows, every pseudonym changed.
    for table in TABLES {
        let (b, e) = (
            before[table].clone().unwrap_or_default(),
            expected[table].clone().unwrap_or_default(),
        );
        assert_eq!(b.len(), e.len(), "{table}: the rotation changed the count");
    }
    let person_keys = |s: &Snapshot| -> Vec<String> {
        s["persons"]
            .iter()
            .flatten()
            .map(|r| {
                r.split(',')
                    .find(|c| c.starts_with("person_key="))
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let (old_keys, new_keys) = (person_keys(&before), person_keys(&expected));
    assert!(!old_keys.is_empty());
    assert!(
        new_keys.iter().all(|k| !old_keys.contains(k)),
        "a person key survived the rotation"
    );
    // ... under the new key: re-keying the old pseudonyms gives them.
    let mut rekeyed: Vec<String> = old_keys
        .iter()
        .map(|k| {
            let hex = k.trim_start_matches("person_key=");
            format!(
                "person_key={}",
                rotation
                    .rekey_hex(vaxlake_pseudonymize::IdKind::Person, hex)
                    .unwrap()
            )
        })
        .collect();
    rekeyed.sort();
    let mut sorted_new = new_keys.clone();
    sorted_new.sort();
    assert_eq!(rekeyed, sorted_new);
    check_key_everywhere(&warehouse_url(&clean_root).unwrap(), &chain.key_id())
        .await
        .unwrap();

    let cases = plans(&counts, 5, 6);
    let (mut failed, mut tried, mut half_rotated) = (0, 0, 0);
    let mut outcomes = Vec::new();
    for (index, (kind, n, fault)) in cases.iter().copied().enumerate() {
        let name = format!("r-case{index}");
        let root = copy_of("r-base", &name).await;
        let bucket = factory.bucket(&name);
        bucket.arm(kind, n..n + 1, fault);
        let first = rekey(&root, &rotation, &RekeyOptions::default()).await;
        let hit = bucket.injected() > 0;
        bucket.disarm();
        let what = format!("{fault:?} on {kind:?} #{n}");
        tried += 1;
        if let Err(error) = &first {
            failed += 1;
            assert!(hit, "{what}: failed without a fault: {error}");
            // Each table whole: all rows under the old key, or all under the new one.
            let now = snapshot(&root).await;
            let (mut rotated, mut unrotated) = (0, 0);
            for table in TABLES {
                if now[table] == before[table] && now[table] == expected[table] {
                    continue; // no pseudonyms in it: its rows say nothing
                }
                if now[table] == expected[table] {
                    rotated += 1;
                } else {
                    assert!(
                        now[table] == before[table],
                        "{what}: {table} is neither its old nor its rotated version after: {error}"
                    );
                    unrotated += 1;
                }
            }
            // Tables that disagree are refused (ingest, extracts) until the rotation is run
            // again.
            if rotated > 0 && unrotated > 0 {
                half_rotated += 1;
                for key in [key_a().key_id(), chain.key_id()] {
                    let refused = check_key_everywhere(&warehouse_url(&root).unwrap(), &key).await;
                    assert!(
                        refused.is_err(),
                        "{what}: a half-rotated warehouse ({rotated} tables rotated, {unrotated} not) accepted key {key}"
                    );
                }
            }
        }
        outcomes.push(outcome(&what, &first, hit));
        rekey(&root, &rotation, &RekeyOptions::default())
            .await
            .unwrap_or_else(|error| panic!("{what}: the run after the fault failed: {error}"));
        assert_same(&snapshot(&root).await, &expected, &what);
        check_key_everywhere(&warehouse_url(&root).unwrap(), &chain.key_id())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    eprintln!(
        "key rotation faults: {tried} runs, {failed} failed ({half_rotated} of them between table commits), clean run requests {counts:?}\n{}",
        outcomes.join("\n")
    );
    assert!(
        failed * 2 >= tried,
        "only {failed} of {tried} injected faults stopped the rotation"
    );
}
