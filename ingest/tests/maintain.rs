//! `maintain`: compaction of small files and vacuum of unreferenced ones, on a warehouse built
//! by the public ingest API with many small commits; and compaction beside a running ingest.

use arrow::array::{AsArray, RecordBatch};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use std::path::{Path, PathBuf};
use vaxlake_generate::{generate, GenerateOptions};
use vaxlake_ingest::schema::VACCINATIONS;
use vaxlake_ingest::{
    ingest, maintain, IngestError, IngestOptions, MaintainOptions, Source, KEY_ID_PROPERTY,
};
use vaxlake_pseudonymize::MasterKey;

mod common;

fn new_key() -> MasterKey {
    MasterKey::from_hex(&MasterKey::generate_hex()).unwrap()
}

/// A synthetic registry export of 200 persons under `dir/export`.
fn export(dir: &Path) -> PathBuf {
    let out = dir.join("export");
    generate(
        &GenerateOptions {
            persons: 200,
            seed: 1,
        },
        &out,
    )
    .unwrap();
    out
}

/// A temporary directory holding a synthetic export and the path of a warehouse beside it.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let exp = export(dir.path());
    let wh = dir.path().join("wh");
    (dir, exp, wh)
}

/// Vacuum everything the log removed, at once (tests only: readers of old versions lose them).
fn zero_retention() -> MaintainOptions {
    MaintainOptions::default()
        .with_retention_hours(0)
        .with_unsafe_zero_retention(true)
}

async fn open(warehouse: &Path, name: &str) -> DeltaTable {
    let url = url::Url::from_directory_path(warehouse.join(name)).unwrap();
    DeltaTable::try_from_url(url).await.unwrap()
}

fn num_files(t: &DeltaTable) -> usize {
    t.snapshot().unwrap().log_data().num_files()
}

/// Every row of `table`, each rendered as one line (all columns but `ingested_at`), sorted.
async fn rows_of(t: &DeltaTable) -> Vec<String> {
    common::rows_of(t, &["ingested_at"]).await
}

fn key_property(t: &DeltaTable) -> Option<String> {
    t.snapshot()
        .unwrap()
        .metadata()
        .configuration()
        .get(KEY_ID_PROPERTY)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_vacuum_keep_rows_and_remove_files() {
    let (_dir, exp, wh) = setup();
    let whs = wh.to_str().unwrap();
    let key = new_key();
    let small = IngestOptions::default().with_batch_rows(5).with_workers(1);
    let csv = Source::parse(&format!("csv:{}", exp.join("registry.csv").display())).unwrap();
    let fhir = Source::parse(&format!("fhir:{}", exp.join("fhir").display())).unwrap();
    let r1 = ingest(whs, &csv, &key, &small).await.unwrap();
    assert!(r1.accepted > 20, "{r1:?}");

    // The zero retention needs the explicit flag.
    let refused = maintain(whs, &MaintainOptions::default().with_retention_hours(0)).await;
    assert!(
        matches!(refused, Err(IngestError::BadInput { .. })),
        "{refused:?}"
    );

    let before = open(&wh, "vaccinations").await;
    let files_before = num_files(&before);
    let rows_before = rows_of(&before).await;
    let key_before = key_property(&before);
    assert!(key_before.is_some());
    assert!(files_before >= 5, "{files_before} files");
    let version_before = before.version().unwrap();

    // A dry run changes nothing and lists nothing yet (no file was removed so far).
    let dry = maintain(whs, &zero_retention().with_dry_run(true))
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        open(&wh, "vaccinations").await.version().unwrap(),
        version_before
    );

    let report = maintain(whs, &zero_retention()).await.unwrap();
    let v = report
        .tables
        .iter()
        .find(|t| t.table == "vaccinations")
        .unwrap();
    eprintln!(
        "vaccinations: files {} -> {}, compaction +{} -{}, vacuumed {} files / {} bytes, v{} -> v{}",
        v.files_before,
        v.files_after,
        v.compaction_files_added,
        v.compaction_files_removed,
        v.vacuumed_files.len(),
        v.vacuumed_bytes,
        v.version_before,
        v.version
    );
    assert_eq!(v.files_before as usize, files_before);
    assert!(v.files_after < v.files_before, "{v:?}");
    assert!(v.compaction_files_removed >= 2, "{v:?}");
    assert!(v.compaction_files_added >= 1, "{v:?}");
    assert_eq!(v.compaction_attempts, 1);
    assert!(v.version > version_before, "{v:?}");
    // The replaced small files are the vacuum's (retention 0): gone from disk.
    assert!(
        v.vacuumed_files.len() as u64 >= v.compaction_files_removed,
        "{v:?}"
    );
    assert!(v.vacuumed_bytes > 0, "{v:?}");
    for f in &v.vacuumed_files {
        assert!(
            !wh.join("vaccinations").join(f).exists(),
            "{f} still on disk"
        );
    }
    // Tables absent from the warehouse are skipped, present ones all visited.
    let names: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    assert!(
        names.contains(&"quarantine") && names.contains(&"ingest_runs"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"cases") && !names.contains(&"population"),
        "{names:?}"
    );

    let after = open(&wh, "vaccinations").await;
    assert_eq!(num_files(&after), v.files_after as usize);
    assert_eq!(after.version().unwrap(), v.version);
    assert_eq!(
        rows_of(&after).await,
        rows_before,
        "compaction changed the rows"
    );
    assert_eq!(key_property(&after), key_before);
    // Every file the new snapshot references is on disk.
    for uri in after.get_file_uris().unwrap() {
        let p = url::Url::parse(&uri)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .unwrap_or_else(|| PathBuf::from(&uri));
        assert!(p.exists(), "{uri} referenced but missing");
    }

    // Ingest still works after maintenance, and still refuses another key.
    let r2 = ingest(whs, &fhir, &key, &small).await.unwrap();
    assert!(r2.accepted > 0, "{r2:?}");
    let refused = ingest(whs, &csv, &new_key(), &small).await;
    assert!(
        matches!(
            refused,
            Err(IngestError::Key(
                vaxlake_catalog::KeyError::KeyMismatch { .. }
            ))
        ),
        "{refused:?}"
    );
    // A second maintenance compacts what the second ingest wrote, rows unchanged.
    let rows_mid = rows_of(&open(&wh, "vaccinations").await).await;
    let again = maintain(whs, &zero_retention()).await.unwrap();
    let v2 = again
        .tables
        .iter()
        .find(|t| t.table == "vaccinations")
        .unwrap();
    assert!(v2.files_after < v2.files_before, "{v2:?}");
    assert_eq!(rows_of(&open(&wh, "vaccinations").await).await, rows_mid);
}

/// What `maintain` relies on from deltalake: a compaction planned on version N whose commit
/// lands after an append committed N+1 keeps the appended rows (the commit is checked against
/// N+1 and goes in as N+2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_planned_before_an_append_keeps_it() {
    let (_dir, exp, wh) = setup();
    let whs = wh.to_str().unwrap();
    let key = new_key();
    let small = IngestOptions::default().with_batch_rows(5).with_workers(1);
    let csv = Source::parse(&format!("csv:{}", exp.join("registry.csv").display())).unwrap();
    let fhir = Source::parse(&format!("fhir:{}", exp.join("fhir").display())).unwrap();
    ingest(whs, &csv, &key, &small).await.unwrap();

    let stale = open(&wh, "vaccinations").await;
    let read_version = stale.version().unwrap();
    ingest(whs, &fhir, &key, &IngestOptions::default())
        .await
        .unwrap();
    let appended = open(&wh, "vaccinations").await;
    assert!(appended.version().unwrap() > read_version);
    let expected = rows_of(&appended).await;

    let (compacted, metrics) = stale
        .optimize()
        .with_target_size(std::num::NonZeroU64::new(128 << 20).unwrap())
        .await
        .unwrap();
    assert!(metrics.num_files_removed >= 2, "{metrics:?}");
    assert!(compacted.version().unwrap() > appended.version().unwrap());
    let now = open(&wh, "vaccinations").await;
    assert_eq!(
        rows_of(&now).await,
        expected,
        "the concurrent append was lost"
    );
}

/// The export's registry CSV with only the first line of each event: an ingest of it only
/// appends (a correction's MERGE may be rejected by a concurrent compaction; see
/// `a_correction_from_before_a_compaction_goes_in_once`).
fn first_versions_only(exp: &Path) -> PathBuf {
    let text = std::fs::read_to_string(exp.join("registry.csv")).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let id = line.split(',').next().unwrap_or("").to_string();
        if i == 0 || seen.insert(id) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = exp.join("registry-first.csv");
    std::fs::write(&path, out).unwrap();
    path
}

/// Compaction rounds running while an ingest appends in small commits lose no row: the
/// result equals the same ingest into a warehouse nobody maintained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_beside_a_running_ingest_loses_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let exp = export(dir.path());
    let key = new_key();
    let csv = Source::parse(&format!("csv:{}", first_versions_only(&exp).display())).unwrap();
    let small = IngestOptions::default().with_batch_rows(3).with_workers(1);

    let reference = dir.path().join("reference");
    ingest(reference.to_str().unwrap(), &csv, &key, &small)
        .await
        .unwrap();
    let expected = rows_of(&open(&reference, "vaccinations").await).await;

    let wh = dir.path().join("wh");
    let whs = wh.to_str().unwrap().to_string();
    // The first commits exist before maintenance starts, so rounds have files to compact.
    std::fs::create_dir_all(&wh).unwrap();
    let writer = {
        let (whs, key, csv, small) = (whs.clone(), key.clone(), csv.clone(), small.clone());
        tokio::spawn(async move { ingest(&whs, &csv, &key, &small).await })
    };
    let maintainer = {
        let whs = whs.clone();
        tokio::spawn(async move {
            let mut rounds = Vec::new();
            for _ in 0..200 {
                let r = maintain(&whs, &MaintainOptions::default()).await.unwrap();
                rounds.push(r);
                if rounds.len() >= 3
                    && rounds
                        .iter()
                        .flat_map(|r| &r.tables)
                        .filter(|t| t.table == "vaccinations")
                        .filter(|t| t.compaction_files_removed > 0)
                        .count()
                        >= 2
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            rounds
        })
    };
    let report = writer.await.unwrap().unwrap();
    assert_eq!((report.updated, report.deleted), (0, 0), "{report:?}");
    let rounds = maintainer.await.unwrap();
    let compactions = rounds
        .iter()
        .flat_map(|r| &r.tables)
        .filter(|t| t.table == "vaccinations" && t.compaction_files_removed > 0)
        .count();
    assert!(compactions >= 1, "no compaction overlapped the ingest");
    assert!(report.accepted > 0);
    // Default retention: nothing a reader might still need was deleted.
    assert!(rounds
        .iter()
        .flat_map(|r| &r.tables)
        .all(|t| t.vacuumed_files.is_empty()));

    let got = rows_of(&open(&wh, "vaccinations").await).await;
    assert_eq!(got.len(), expected.len(), "row count differs");
    assert_eq!(got, expected, "rows differ from the unmaintained warehouse");
}

/// A MERGE (a correcting ingest's upsert) from a table opened before a compaction commit
/// neither fails nor brings the replaced row version back through the compacted file: it
/// reads the newest version under the rewrite lock first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_from_before_a_compaction_goes_in_once() {
    use vaxlake_ingest::table::Table;
    let (_dir, exp, wh) = setup();
    let whs = wh.to_str().unwrap();
    let key = new_key();
    let small = IngestOptions::default().with_batch_rows(5).with_workers(1);
    let csv = Source::parse(&format!("csv:{}", exp.join("registry.csv").display())).unwrap();
    ingest(whs, &csv, &key, &small).await.unwrap();
    let root = vaxlake_ingest::warehouse_url(whs).unwrap();
    let mut stale = Table::open(&root, &VACCINATIONS, Some(&key.key_id()))
        .await
        .unwrap()
        .unwrap();

    // One existing row, with a newer version and another content.
    let t = open(&wh, "vaccinations").await;
    let ctx = SessionContext::new();
    t.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", t.table_provider().await.unwrap())
        .unwrap();
    let found = ctx
        .sql("SELECT * FROM t ORDER BY event_key LIMIT 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = &found[0];
    let schema = VACCINATIONS.schema().clone();
    let cols: Vec<arrow::array::ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            let c = b.column_by_name(f.name()).unwrap();
            let c = arrow::compute::cast(c, f.data_type()).unwrap();
            match f.name().as_str() {
                "last_updated" => {
                    let v = c.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                    std::sync::Arc::new(
                        arrow::array::TimestampMicrosecondArray::from(vec![v.value(0) + 1_000_000])
                            .with_timezone("UTC"),
                    ) as arrow::array::ArrayRef
                }
                "content_hash" => {
                    std::sync::Arc::new(arrow::array::StringArray::from(vec!["changed"]))
                }
                _ => c,
            }
        })
        .collect();
    let changed = RecordBatch::try_new(schema, cols).unwrap();
    let event_key = changed.column(0).as_string::<i32>().value(0).to_string();
    let copies = |rows: &[String]| {
        rows.iter()
            .filter(|r| r.starts_with(&format!("event_key={event_key},")))
            .cloned()
            .collect::<Vec<_>>()
    };

    let report = maintain(whs, &MaintainOptions::default()).await.unwrap();
    assert!(report.tables[0].compaction_files_removed >= 2, "{report:?}");
    // A writer that opened the table before the compaction takes the rewrite lock and reads
    // the newest version before its MERGE (Table::rewrite_guard): the correction goes in
    // once, with no conflict and no duplicate.
    let stats = stale
        .upsert(changed, &[false], Default::default())
        .await
        .unwrap();
    assert_eq!(stats.updated, 1);
    let rows = rows_of(&open(&wh, "vaccinations").await).await;
    let found = copies(&rows);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("content_hash=changed"), "{found:?}");
}

/// A writer killed between writing its Parquet and committing leaves files no version
/// references: vacuum deletes them once older than the retention, and never a young one (it
/// may be a running writer's), nor anything under a shorter-than-an-hour retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_deletes_old_crash_leftovers_only() {
    let (_dir, exp, wh) = setup();
    let whs = wh.to_str().unwrap();
    let key = new_key();
    let csv = Source::parse(&format!("csv:{}", exp.join("registry.csv").display())).unwrap();
    ingest(whs, &csv, &key, &IngestOptions::default())
        .await
        .unwrap();
    let rows_before = rows_of(&open(&wh, "vaccinations").await).await;

    let table_dir = wh.join("vaccinations");
    let partition = std::fs::read_dir(&table_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .expect("a partition directory");
    let old = partition.join("part-00000-crashed-old.snappy.parquet");
    let young = partition.join("part-00000-crashed-young.snappy.parquet");
    for path in [&old, &young] {
        std::fs::write(path, b"PAR1 not really").unwrap();
    }
    let three_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(three_hours_ago)
        .unwrap();

    // Zero retention: only files the log removed; both orphans stay.
    maintain(whs, &zero_retention()).await.unwrap();
    assert!(old.exists() && young.exists());

    // Two hours: the three-hour-old orphan goes, the young one stays.
    maintain(
        whs,
        &MaintainOptions::default()
            .with_retention_hours(2)
            .with_unsafe_zero_retention(true),
    )
    .await
    .unwrap();
    assert!(!old.exists(), "an old unreferenced file was kept");
    assert!(young.exists(), "a young unreferenced file was deleted");
    assert_eq!(rows_of(&open(&wh, "vaccinations").await).await, rows_before);
}

/// The registry watermark is a Delta application transaction: a compaction (and the vacuum
/// after it) keeps it, so a following ingest resumes where it was, not from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_survives_compaction_and_vacuum() {
    let (_dir, exp, wh) = setup();
    let whs = wh.to_str().unwrap();
    let key = new_key();
    let small = IngestOptions::default().with_batch_rows(5).with_workers(1);
    let csv = Source::parse(&format!("csv:{}", exp.join("registry.csv").display())).unwrap();
    ingest(whs, &csv, &key, &small).await.unwrap();

    let app_id = "vaxlake-test-registry";
    let mut table = open(&wh, "vaccinations").await;
    let commit = vaxlake_ingest::postgres::with_watermark(
        deltalake::kernel::transaction::CommitProperties::default(),
        app_id,
        4242,
    );
    vaxlake_ingest::postgres::commit_watermark_only(&mut table, commit)
        .await
        .unwrap();
    let files_before = num_files(&open(&wh, "vaccinations").await);

    maintain(whs, &zero_retention()).await.unwrap();
    let after = open(&wh, "vaccinations").await;
    assert!(num_files(&after) < files_before, "nothing was compacted");
    let watermark = after
        .snapshot()
        .unwrap()
        .transaction_version(after.log_store().as_ref(), app_id)
        .await
        .unwrap();
    assert_eq!(watermark, Some(4242));
}

/// A warehouse written before the complement-order secret existed gets one from `maintain`
/// (not from a dry run); one that has it keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_creates_a_missing_order_secret_and_keeps_an_existing_one() {
    let (_dir, exp, wh) = setup();
    let source = Source::parse(&format!("fhir:{}", exp.join("fhir").display())).unwrap();
    ingest(
        wh.to_str().unwrap(),
        &source,
        &new_key(),
        &IngestOptions::default(),
    )
    .await
    .unwrap();
    let secret_path = wh.join(vaxlake_catalog::ORDER_SECRET_OBJECT);
    let created_by_ingest = std::fs::read(&secret_path).unwrap();
    assert_eq!(created_by_ingest.len(), 32);

    let options = MaintainOptions::default().with_compact(false);
    let report = maintain(wh.to_str().unwrap(), &options).await.unwrap();
    assert!(!report.order_secret_created);
    assert_eq!(std::fs::read(&secret_path).unwrap(), created_by_ingest);

    // As before December 2026: no secret.
    std::fs::remove_file(&secret_path).unwrap();
    let dry = options.clone().with_dry_run(true);
    assert!(
        !maintain(wh.to_str().unwrap(), &dry)
            .await
            .unwrap()
            .order_secret_created
    );
    assert!(!secret_path.exists(), "a dry run writes nothing");
    assert!(
        maintain(wh.to_str().unwrap(), &options)
            .await
            .unwrap()
            .order_secret_created
    );
    let created_by_maintain = std::fs::read(&secret_path).unwrap();
    assert_eq!(created_by_maintain.len(), 32);
    assert_ne!(
        created_by_maintain, created_by_ingest,
        "a fresh random secret"
    );
}
