//! `vaxlake maintain`, `vaxlake key rotate` and `vaxlake extract create` killed (SIGKILL) at
//! moments spread over a clean run's duration, again and again on the same warehouse, then
//! run to completion: after every kill each table reads whole as one of its committed
//! versions (and no half-written extract is listed), and the completed run leaves exactly
//! what a run that was never killed leaves, with no event lost or repeated.

mod common;
use common::tables::{assert_same, copy_tree, snapshot};
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOG: &str = "info,datafusion=warn,deltalake=warn,deltalake_core=warn,buoyant_kernel=warn,delta_kernel=warn,object_store=warn";

fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(bin())
        .args(args)
        .env("VAXLAKE_LOG", LOG)
        .env_remove("VAXLAKE_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("vaxlake starts")
}

/// Runs `args` to completion, returning its stdout and how long it took.
fn timed(args: &[&str]) -> (String, Duration) {
    let started = Instant::now();
    let (out, _) = ok(args);
    (out, started.elapsed())
}

/// When a run is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Once this many new Delta commits are in the warehouse (counted from the run's start).
    Commits(usize),
    /// After this long.
    Delay(Duration),
    /// Once a new path matching this test appears under the warehouse.
    Appears(fn(&Path) -> bool),
}

/// Delta commits of every table of the warehouse (its log entries).
fn commits(wh: &Path) -> usize {
    let Ok(tables) = std::fs::read_dir(wh) else {
        return 0;
    };
    tables
        .flatten()
        .filter_map(|t| std::fs::read_dir(t.path().join("_delta_log")).ok())
        .flat_map(|log| log.flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

/// Every path under `dir`.
fn paths(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// Runs `args` on `wh` and kills it at each of `kills` in turn (each a new run, on what the
/// killed one left), calling `check` after each; returns how many kills found the run still
/// going (the others had finished first).
fn kill_loop(
    args: &[&str],
    wh: &Path,
    kills: &[KillAt],
    dir: &Path,
    mut check: impl FnMut(usize),
) -> usize {
    let mut landed = 0;
    for (i, at) in kills.iter().enumerate() {
        let log = dir.join(format!("kill{i}.err"));
        let baseline = commits(wh);
        // What earlier runs left does not count as this run's progress.
        let initial: std::collections::HashSet<PathBuf> = paths(wh).into_iter().collect();
        let started = Instant::now();
        let mut child = spawn(args, &log);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let due = match at {
                KillAt::Commits(k) => commits(wh) >= baseline + k,
                KillAt::Delay(d) => started.elapsed() >= *d,
                KillAt::Appears(matches) => {
                    paths(wh).iter().any(|p| !initial.contains(p) && matches(p))
                }
            };
            if due {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "vaxlake {args:?} ran 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        match status {
            None => landed += 1,
            Some(status) => {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(
                    status.success(),
                    "vaxlake {args:?} failed before its kill ({at:?}): {err}"
                );
            }
        }
        check(i);
    }
    landed
}

/// A warehouse with several ingests in it (many small files: work for the compaction), its
/// key, and the export it came from.
fn base(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let wh = generated_warehouse(dir, 400, 17, &["fhir", "csv", "population", "cases"]);
    (wh, dir.join("master.key"), dir.join("export"))
}

/// After a kill every table must be as before the operation or as after it, whole.
fn assert_before_or_after(
    wh: &Path,
    before: &std::collections::BTreeMap<&'static str, Option<Vec<String>>>,
    after: &std::collections::BTreeMap<&'static str, Option<Vec<String>>>,
    what: &str,
) -> usize {
    let now = snapshot(wh);
    let mut changed = 0;
    for (table, rows) in &now {
        if rows == &after[table] && rows != &before[table] {
            changed += 1;
        } else {
            assert!(
                rows == &before[table],
                "{what}: {table} reads as neither its version before nor after the operation"
            );
        }
    }
    changed
}

#[test]
fn maintain_killed_anywhere_completes_as_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, _, _) = base(dir.path());
    let before = snapshot(&wh);
    let clean = dir.path().join("clean");
    copy_tree(&wh, &clean);
    let args = |w: &Path| {
        vec![
            "maintain".to_string(),
            "--warehouse".into(),
            w.display().to_string(),
        ]
    };
    let clean_args = args(&clean);
    let (_, took) = timed(&clean_args.iter().map(String::as_str).collect::<Vec<_>>());
    let expected = snapshot(&clean);
    // Compaction and vacuum never change rows.
    assert_same(&expected, &before, "a clean maintain");

    let victim_args = args(&wh);
    let victim_args: Vec<&str> = victim_args.iter().map(String::as_str).collect();
    let kills = [1, 1, 2, 1, 3, 2].map(KillAt::Commits);
    let landed = kill_loop(&victim_args, &wh, &kills, dir.path(), |i| {
        assert_before_or_after(&wh, &before, &expected, &format!("maintain kill {i}"));
    });
    ok(&victim_args);
    assert_same(&snapshot(&wh), &expected, "maintain after the kills");
    eprintln!(
        "maintain: {} kills (after {kills:?}) against a {:.2}s clean run, {landed} landed mid-run",
        kills.len(),
        took.as_secs_f64()
    );
    assert!(landed >= 4, "only {landed} kills hit a running maintain");
}

#[test]
fn key_rotation_killed_anywhere_completes_as_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, key, export) = base(dir.path());
    let before = snapshot(&wh);
    let fresh = key_file(dir.path(), "fresh.key");
    let clean = dir.path().join("clean");
    copy_tree(&wh, &clean);
    let (clean_new, victim_new) = (dir.path().join("clean-new.key"), dir.path().join("new.key"));
    std::fs::copy(&fresh, &clean_new).unwrap();
    std::fs::copy(&fresh, &victim_new).unwrap();
    let args = |w: &Path, new: &Path| {
        vec![
            "key".to_string(),
            "rotate".into(),
            "--warehouse".into(),
            w.display().to_string(),
            "--key-file".into(),
            key.display().to_string(),
            "--new-key-file".into(),
            new.display().to_string(),
        ]
    };
    let clean_args = args(&clean, &clean_new);
    let (_, took) = timed(&clean_args.iter().map(String::as_str).collect::<Vec<_>>());
    let expected = snapshot(&clean);
    for (table, rows) in &expected {
        assert_eq!(
            rows.as_ref().map(Vec::len),
            before[table].as_ref().map(Vec::len),
            "the rotation changed {table}'s count"
        );
    }
    assert_ne!(expected["persons"], before["persons"], "nothing re-keyed");

    let victim_args = args(&wh, &victim_new);
    let victim_args: Vec<&str> = victim_args.iter().map(String::as_str).collect();
    let mut half_rotated = 0;
    let kills = [KillAt::Delay(took / 2)]
        .into_iter()
        .chain([1; 5].map(KillAt::Commits))
        .collect::<Vec<_>>();
    let landed = kill_loop(&victim_args, &wh, &kills, dir.path(), |i| {
        let changed =
            assert_before_or_after(&wh, &before, &expected, &format!("key rotate kill {i}"));
        if changed > 0 && changed < expected.len() {
            half_rotated += 1;
        }
    });
    ok(&victim_args);
    assert_same(&snapshot(&wh), &expected, "key rotate after the kills");
    assert_eq!(
        std::fs::read_to_string(&victim_new).unwrap(),
        std::fs::read_to_string(&clean_new).unwrap(),
        "the key chain written after the kills differs from a clean run's"
    );
    // The chain ingests into the rotated warehouse: the same registry again changes nothing.
    let source = format!("csv:{}", export.join("registry.csv").display());
    let ((read, accepted, quarantined), _, _) = ingest(&wh, &victim_new, &source);
    assert_eq!(read, accepted + quarantined);
    assert_same(&snapshot(&wh), &expected, "re-ingesting after the rotation");
    eprintln!(
        "key rotate: {} kills (after {kills:?}) against a {:.2}s clean run, {landed} landed mid-run, {half_rotated} left some tables rotated and some not",
        kills.len(),
        took.as_secs_f64()
    );
    assert!(landed >= 4, "only {landed} kills hit a running rotation");
    assert!(
        half_rotated >= 1,
        "no kill landed between the rotation's table commits"
    );
}

const SPEC: &str = r#"project = "P-CRASH"
purpose = "extracts killed while written"
table = "antigen_doses"
columns = ["person_key", "antigen", "dose_seq", "birth_month", "sex"]
where = "antigen = 'measles'"
quasi_identifiers = ["birth_month", "sex"]
k = 3
max_suppressed_share = 0.3
[generalise]
birth_month = ["month", "quarter", "year"]
"#;

/// The extracts under a warehouse: every directory not hidden must be a whole extract.
fn whole_extracts(wh: &Path, what: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(projects) = std::fs::read_dir(wh.join("extracts")) else {
        return found;
    };
    for project in projects.flatten() {
        for entry in std::fs::read_dir(project.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let out = run(&["extract", "verify", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{what}: {} is there but not whole: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            found.push(path);
        }
    }
    found
}

#[test]
fn extract_creation_killed_anywhere_completes_as_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, key, _) = base(dir.path());
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let clean = dir.path().join("clean");
    copy_tree(&wh, &clean);
    let args = |w: &Path| {
        vec![
            "extract".to_string(),
            "create".into(),
            "--warehouse".into(),
            w.display().to_string(),
            "--spec".into(),
            spec.display().to_string(),
            "--by".into(),
            "alice".into(),
            "--key-file".into(),
            key.display().to_string(),
        ]
    };
    let clean_args = args(&clean);
    let (out, took) = timed(&clean_args.iter().map(String::as_str).collect::<Vec<_>>());
    let id = out.trim().to_string();
    let clean_dirs = whole_extracts(&clean, "the clean run");
    assert_eq!(clean_dirs.len(), 1);
    let part = |d: &Path| std::fs::read(d.join("part-00000.parquet")).unwrap();
    let clean_part = part(&clean_dirs[0]);

    let victim_args = args(&wh);
    let victim_args: Vec<&str> = victim_args.iter().map(String::as_str).collect();
    let mut finished_early = 0;
    fn staging(p: &Path) -> bool {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".partial-"))
    }
    fn staged(name: &'static str) -> impl Fn(&Path) -> bool {
        move |p: &Path| p.file_name().is_some_and(|n| n == name) && p.parent().is_some_and(staging)
    }
    let kills = [
        KillAt::Delay(took / 2),
        KillAt::Appears(staging),
        KillAt::Appears(|p| staged("part-00000.parquet")(p)),
        KillAt::Appears(|p| staged("manifest.json")(p)),
        KillAt::Appears(|p| {
            p.file_name().is_some_and(|n| n == "manifest.json") && !p.parent().is_some_and(staging)
        }),
    ];
    let mut staged_left = 0;
    let landed = kill_loop(&victim_args, &wh, &kills, dir.path(), |i| {
        if paths(&wh).iter().any(|p| staging(p)) {
            staged_left += 1;
        }
        let found = whole_extracts(&wh, &format!("extract kill {i}"));
        if !found.is_empty() {
            // The run finished before its kill, or between its rename and its exit.
            finished_early += 1;
            std::fs::remove_dir_all(&found[0]).unwrap();
        }
    });
    let (out, _) = ok(&victim_args);
    assert_eq!(out.trim(), id, "the extract id after the kills");
    let dirs = whole_extracts(&wh, "after the kills");
    assert_eq!(dirs.len(), 1);
    assert_eq!(
        part(&dirs[0]),
        clean_part,
        "the extract's rows after the kills"
    );
    // Nothing an interrupted run wrote is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(dirs[0].parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    eprintln!(
        "extract create: {} kills against a {:.2}s clean run, {landed} landed mid-run, {staged_left} left a staging directory, {finished_early} found a finished extract",
        kills.len(),
        took.as_secs_f64()
    );
    assert!(landed >= 4, "only {landed} kills hit a running extract");
}

/// The count of case–vaccination pairs of one person: the join a half-rotated warehouse
/// (cases under one key, vaccinations under the other) silently answers 0 to.
const JOINED: &str =
    "SELECT count(*) AS n FROM cases c JOIN vaccinations v ON c.person_key = v.person_key";

async fn joined(warehouse: &vaxlake_query::Warehouse) -> serde_json::Value {
    warehouse.sql(JOINED).await.unwrap().to_json().unwrap()["rows"][0][0].clone()
}

#[test]
fn a_running_reader_never_sees_a_half_rotated_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, key, _) = base(dir.path());
    let fresh = key_file(dir.path(), "fresh.key");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let reader = vaxlake_query::Warehouse::open(
            wh.to_str().unwrap(),
            vaxlake_query::QueryOptions::default().with_refresh_interval(Duration::ZERO),
        )
        .await
        .unwrap();
        let before = joined(&reader).await;
        assert!(
            before.as_u64().unwrap() > 0,
            "no case links to a vaccination"
        );
        let versions = reader.versions();

        // The rotation stops after one table (as if killed between its commits).
        let rotation = vaxlake_pseudonymize::KeyRotation::new(
            &vaxlake_pseudonymize::MasterKey::load(&key).unwrap(),
            &vaxlake_pseudonymize::MasterKey::load(&fresh).unwrap(),
        )
        .unwrap();
        let partial = vaxlake_ingest::rekey(
            wh.to_str().unwrap(),
            &rotation,
            &vaxlake_ingest::RekeyOptions::default().with_tables(&["vaccinations"]),
        )
        .await
        .unwrap();
        assert!(!partial.complete());
        reader.refresh_if_due().await;
        assert_eq!(
            reader.versions(),
            versions,
            "the reader took up a half-rotated warehouse"
        );
        assert_eq!(joined(&reader).await, before);

        // Completed, the rotation is taken up whole: new versions, the same links.
        let done = vaxlake_ingest::rekey(
            wh.to_str().unwrap(),
            &rotation,
            &vaxlake_ingest::RekeyOptions::default(),
        )
        .await
        .unwrap();
        assert!(done.complete());
        reader.refresh_if_due().await;
        assert_ne!(reader.versions(), versions);
        assert_eq!(joined(&reader).await, before);
    });
}
