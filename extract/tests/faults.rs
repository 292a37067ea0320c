//! Faults of object storage while an extract is created: the warehouse sits in the
//! `faulty://` store (ingest/tests/common/faulty.rs), whose gets and lists fail or are torn
//! at points spread along a clean run's requests (an extract only reads the warehouse; its
//! files go to a local directory, whose faults tests/disk_full.rs and tests/crash_loops.rs
//! inject). After every fault nothing is listed, findable or left behind, and the next
//! attempt writes the very extract a clean run writes (same id, same bytes).

use std::collections::BTreeMap;
use std::path::Path;

use vaxlake_extract::{create, list, CreateOptions, OutputFormat, Spec};
use vaxlake_generate::{generate, GenerateOptions};
use vaxlake_ingest::{ingest, IngestOptions, Source};
use vaxlake_pseudonymize::MasterKey;

#[path = "../../ingest/tests/common/faulty.rs"]
#[allow(dead_code)]
mod faulty;
use faulty::{factory, spread, Fault, Kind};

const SPEC: &str = r#"project = "P-FAULTS"
purpose = "faults while an extract is written"
table = "antigen_doses"
columns = ["person_key", "antigen", "dose_seq", "birth_month", "sex"]
where = "antigen = 'measles'"
quasi_identifiers = ["birth_month", "sex"]
k = 3
max_suppressed_share = 0.3
[generalise]
birth_month = ["month", "quarter", "year"]
"#;

fn key() -> MasterKey {
    MasterKey::from_hex(&"ab".repeat(32)).unwrap()
}

fn options() -> CreateOptions {
    CreateOptions {
        by: "alice".into(),
        format: OutputFormat::Parquet,
        expires_after_days: 30,
    }
}

/// Every file under `dir` (hidden ones included), relative, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The extract's files, the manifest without its clock fields.
fn comparable(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(name, bytes)| {
            let text = if name.ends_with("manifest.json") {
                let mut manifest: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                manifest["created_at"] = serde_json::Value::Null;
                manifest["expires_at"] = serde_json::Value::Null;
                manifest.to_string()
            } else {
                blake3::hash(bytes).to_hex().to_string()
            };
            (name.clone(), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_extract_leaves_nothing_and_the_retry_writes_the_clean_extract() {
    let factory = factory();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    generate(
        &GenerateOptions {
            persons: 300,
            seed: 5,
        },
        &out,
    )
    .unwrap();
    let source = Source::parse(&format!("fhir:{}", out.join("fhir").display())).unwrap();
    let root = "faulty://extract-wh/wh";
    ingest(root, &source, &key(), &IngestOptions::default())
        .await
        .unwrap();
    let spec = Spec::parse(SPEC).unwrap();
    let bucket = factory.bucket("extract-wh");

    // The clean run, counted.
    let clean_dir = dir.path().join("clean");
    std::env::set_var("VAXLAKE_EXTRACTS_DIR", &clean_dir);
    bucket.count_only();
    let clean = create(root, &spec, &key(), &options()).await.unwrap();
    let (gets, lists) = (bucket.count(Kind::Get), bucket.count(Kind::List));
    assert!(gets > 5 && lists > 0, "gets {gets}, lists {lists}");
    let clean_files = comparable(&tree(&clean_dir));
    assert!(clean.manifest["rows"]["written"].as_u64().unwrap() > 20);
    assert_eq!(clean_files.len(), 2, "{:?}", clean_files.keys());

    let mut cases = Vec::new();
    for n in spread(gets, 8) {
        cases.push((Kind::Get, n, Fault::Fail));
    }
    for n in spread(lists, 4) {
        cases.push((Kind::List, n, Fault::Fail));
    }
    for (i, n) in spread(gets, 8).into_iter().enumerate() {
        let fault = if i % 2 == 0 {
            Fault::TornError
        } else {
            Fault::TornShort
        };
        cases.push((Kind::Get, n, fault));
    }
    let (mut failed, mut silent) = (0, Vec::new());
    for (index, (kind, n, fault)) in cases.iter().copied().enumerate() {
        let what = format!("{fault:?} on {kind:?} #{n}");
        let extracts = dir.path().join(format!("case{index}"));
        std::env::set_var("VAXLAKE_EXTRACTS_DIR", &extracts);
        bucket.arm(kind, n..n + 1, fault);
        let first = create(root, &spec, &key(), &options()).await;
        let hit = bucket.injected() > 0;
        bucket.disarm();
        match &first {
            Err(error) => {
                failed += 1;
                assert!(hit, "{what}: failed without a fault: {error}");
                assert!(
                    list(&extracts, None).unwrap().is_empty(),
                    "{what}: a failed extract is listed"
                );
                let left = tree(&extracts);
                assert!(
                    left.is_empty(),
                    "{what}: a failed extract left {:?}",
                    left.keys()
                );
            }
            Ok(created) => {
                // Served despite the fault: it must be the clean extract.
                assert_eq!(created.id, clean.id, "{what}");
                if comparable(&tree(&extracts)) != clean_files {
                    silent.push(what.clone());
                }
                continue;
            }
        }
        let again = create(root, &spec, &key(), &options())
            .await
            .unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"));
        assert_eq!(again.id, clean.id, "{what}");
        assert_eq!(
            comparable(&tree(&extracts)),
            clean_files,
            "{what}: the retry differs"
        );
        assert_eq!(list(&extracts, None).unwrap().len(), 1, "{what}");
    }
    eprintln!(
        "extract faults: {} runs, {failed} failed, {} served a different extract; clean run: {gets} gets, {lists} lists",
        cases.len(),
        silent.len()
    );
    assert!(
        silent.is_empty(),
        "faults that went unnoticed and changed the extract: {silent:?}"
    );
    assert!(
        failed * 2 >= cases.len(),
        "only {failed} of {} faults stopped the extract",
        cases.len()
    );
}
