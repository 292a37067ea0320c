//! Faults of object storage during an ingest: a store that fails (or stalls) the N-th
//! request of a kind, registered under the `faulty://` scheme so the ingest reaches it
//! through deltalake exactly as it reaches S3. After every injected fault the tables read as
//! a version that was committed (every file the log names is there, no event twice), and the
//! next run without the fault ends where a run that never failed ends.

use std::path::Path;
use std::time::Duration;

use vaxlake_generate::{generate, GenerateOptions};
use vaxlake_ingest::{ingest, IngestOptions, Source};
use vaxlake_pseudonymize::MasterKey;

mod common;
use common::faulty::{factory, Fault, Kind};
use common::{assert_same, Snapshot};

fn key() -> MasterKey {
    MasterKey::from_hex(&"ab".repeat(32)).unwrap()
}

fn options() -> IngestOptions {
    IngestOptions {
        batch_rows: 400,
        workers: 2,
        ..IngestOptions::default()
    }
}

const TABLES: &[&str] = &["vaccinations", "persons", "quarantine", "dose_facts"];

async fn snapshot(root: &str) -> Snapshot {
    common::snapshot(root, TABLES).await
}

fn export(dir: &Path) -> Source {
    let out = dir.join("export");
    generate(
        &GenerateOptions {
            persons: 300,
            seed: 5,
        },
        &out,
    )
    .unwrap();
    Source::parse(&format!("fhir:{}", out.join("fhir").display())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_any_failed_request_the_tables_hold_a_committed_version_and_the_next_run_completes() {
    let factory = factory();
    let dir = tempfile::tempdir().unwrap();
    let source = export(dir.path());

    // The run nothing fails: what every faulted warehouse must end as.
    let clean_root = "faulty://clean/wh";
    let clean = ingest(clean_root, &source, &key(), &options())
        .await
        .unwrap();
    let expected = snapshot(clean_root).await;
    assert!(expected["vaccinations"]
        .as_ref()
        .is_some_and(|rows| rows.len() > 1000));
    // Count the requests of a clean run, to aim faults all along it.
    let counting = factory.bucket("counting");
    counting.count_only();
    ingest("faulty://counting/wh", &source, &key(), &options())
        .await
        .unwrap();
    let puts = counting.count(Kind::Put);
    assert!(puts > 10, "a clean run made {puts} puts");

    let mut failed_runs = 0;
    let mut cases = Vec::new();
    for n in (0..puts).step_by((puts / 8).max(1)) {
        cases.push((Kind::Put, n));
    }
    for n in [0, 3, 20, 60] {
        cases.push((Kind::Get, n));
        cases.push((Kind::List, n));
    }
    for (index, (kind, n)) in cases.into_iter().enumerate() {
        let name = format!("case{index}");
        let root = format!("faulty://{name}/wh");
        let bucket = factory.bucket(&name);
        bucket.arm(kind, n..n + 1, Fault::Fail);
        let first = ingest(&root, &source, &key(), &options()).await;
        let hit = bucket.injected() > 0;
        bucket.disarm();
        if let Err(error) = &first {
            failed_runs += 1;
            assert!(hit, "{kind:?} #{n}: failed without a fault: {error}");
            // What is there is a committed version: it reads whole, no event twice.
            if let Some(rows) = common::rows_at(&root, "vaccinations").await {
                let mut keys: Vec<&str> =
                    rows.iter().map(|r| r.split(',').next().unwrap()).collect();
                let all = keys.len();
                keys.dedup();
                assert_eq!(
                    keys.len(),
                    all,
                    "{kind:?} #{n}: an event twice after the fault"
                );
            }
        }
        // The next run ends where the clean run ended.
        let second = ingest(&root, &source, &key(), &options()).await;
        let second = second.unwrap_or_else(|error| {
            panic!("{kind:?} #{n}: the run after the fault failed: {error}")
        });
        assert_eq!(second.read, clean.read, "{kind:?} #{n}");
        assert_same(&snapshot(&root).await, &expected, &format!("{kind:?} #{n}"));
    }
    assert!(
        failed_runs >= 8,
        "only {failed_runs} injected faults stopped a run"
    );

    // A stalled request slows the run and changes nothing.
    let bucket = factory.bucket("stalled");
    bucket.arm(Kind::Put, 2..4, Fault::Stall(Duration::from_millis(700)));
    ingest("faulty://stalled/wh", &source, &key(), &options())
        .await
        .unwrap();
    assert_eq!(bucket.injected(), 2);
    assert_same(
        &snapshot("faulty://stalled/wh").await,
        &expected,
        "stalled puts",
    );
}
