//! Key management end to end: key file permissions, `vaxlake key rotate` (every table
//! re-keyed in one version, aggregates unchanged, new data joining), an interrupted rotation
//! completed by a second run, and no key material or national number in anything written or
//! printed.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use vaxlake_pseudonymize::{KeyRotation, MasterKey};

const TABLES: [&str; 5] = [
    "vaccinations",
    "cases",
    "quarantine",
    "population",
    "ingest_runs",
];

/// Every column of each table but those rotation changes (pseudonyms and hashes over them).
const PLAIN: [(&str, &str); 5] = [
    ("vaccinations", "birth_month, sex, commune, canton, administered_on, age_months_at_dose, vaccine_atc, vaccine_name, lot_number, dose_number_recorded, status, source_system, recorded_at, last_updated, ingested_at, birth_decade"),
    ("cases", "disease, onset_date, hospitalised, died, birth_month, sex, commune, canton, age_years_at_onset, last_updated, ingested_at"),
    ("quarantine", "source, position, reason, received_at, run_id, content_hash"),
    ("population", "*"),
    ("ingest_runs", "*"),
];

/// The pseudonym columns, as `table.column`.
const KEYED: [(&str, &str); 6] = [
    ("vaccinations", "event_key"),
    ("vaccinations", "person_key"),
    ("vaccinations", "vaccinator_key"),
    ("cases", "case_key"),
    ("cases", "person_key"),
    ("quarantine", "record_hash"),
];

/// Collects every stdout and stderr of the commands a test runs, for the leak scan.
#[derive(Default)]
struct Logs(Vec<String>);

impl Logs {
    fn ok(&mut self, args: &[&str]) -> String {
        let (out, err) = ok(args);
        self.0.push(out.clone());
        self.0.push(err);
        out
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&mut self, args: &[&str]) -> String {
        let out = run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            !out.status.success(),
            "vaxlake {args:?} succeeded\nstdout: {stdout}\nstderr: {stderr}"
        );
        self.0.push(stdout);
        self.0.push(stderr.clone());
        stderr
    }

    fn ingest(&mut self, wh: &Path, key: &Path, source: &str) -> (u64, u64, u64) {
        let out = self.ok(&ingest_args(wh, key, source));
        counts(&out)
    }

    fn ingest_fails(&mut self, wh: &Path, key: &Path, source: &str) -> String {
        self.fails(&ingest_args(wh, key, source))
    }

    fn rotate(&mut self, wh: &Path, old: &Path, new: &Path) -> String {
        self.ok(&rotate_args(wh, old, new))
    }
}

fn ingest_args<'a>(wh: &'a Path, key: &'a Path, source: &'a str) -> [&'a str; 7] {
    [
        "ingest",
        "--warehouse",
        wh.to_str().unwrap(),
        "--source",
        source,
        "--key-file",
        key.to_str().unwrap(),
    ]
}

fn rotate_args<'a>(wh: &'a Path, old: &'a Path, new: &'a Path) -> [&'a str; 8] {
    [
        "key",
        "rotate",
        "--warehouse",
        wh.to_str().unwrap(),
        "--key-file",
        old.to_str().unwrap(),
        "--new-key-file",
        new.to_str().unwrap(),
    ]
}

/// The key lines of a key file (each key's 64 hex characters).
fn key_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn key_id(path: &Path) -> String {
    MasterKey::load(path).unwrap().key_id()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The newest Delta version of `table` (from its log's file names).
fn version(wh: &Path, table: &str) -> u64 {
    std::fs::read_dir(wh.join(table).join("_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap()
}

fn versions(wh: &Path) -> BTreeMap<&'static str, u64> {
    TABLES.iter().map(|t| (*t, version(wh, t))).collect()
}

/// The `vaxlake.keyId` property of `table`'s newest metadata.
fn stored_key_id(wh: &Path, table: &str) -> String {
    let log = wh.join(table).join("_delta_log");
    let mut id = None;
    for v in 0..=version(wh, table) {
        let text = std::fs::read_to_string(log.join(format!("{v:020}.json"))).unwrap();
        for line in text.lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(k) = action["metaData"]["configuration"]["vaxlake.keyId"].as_str() {
                id = Some(k.to_string());
            }
        }
    }
    id.unwrap_or_else(|| panic!("{table} has no key id"))
}

fn column_set(wh: &Path, table: &str, column: &str) -> BTreeSet<String> {
    sql_csv(
        wh,
        &format!("SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"),
    )
    .lines()
    .skip(1)
    .map(str::to_string)
    .collect()
}

/// Compares two [`invariant_answers`], showing only the first line that differs.
fn assert_same_answers(before: &[String], after: &[String]) {
    assert_eq!(before.len(), after.len());
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        if a != b {
            let header = b.lines().next().unwrap_or_default();
            let (lb, la) = b
                .lines()
                .zip(a.lines())
                .find(|(x, y)| x != y)
                .unwrap_or(("(shorter)", "(longer)"));
            panic!("answer {i} ({header}) changed:\n before: {lb}\n after:  {la}");
        }
    }
}

/// `sql_csv` with the rows sorted (the header stays first).
fn sorted_csv(wh: &Path, query: &str) -> String {
    let text = sql_csv(wh, query);
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1..].sort_unstable();
    lines.join("\n")
}

/// What rotation must leave unchanged: row counts, the non-key values of every table, the
/// views and joins built on pseudonyms, and the coverage table.
fn invariant_answers(wh: &Path) -> Vec<String> {
    let mut answers = Vec::new();
    for (table, columns) in PLAIN {
        answers.push(sql_csv(wh, &format!("SELECT count(*) FROM {table}")));
        answers.push(sorted_csv(wh, &format!("SELECT {columns} FROM {table}")));
    }
    for query in [
        "SELECT antigen, dose_seq, count(*), count(DISTINCT person_key) FROM antigen_doses GROUP BY antigen, dose_seq",
        "SELECT sex, commune, count(*) FROM persons GROUP BY sex, commune",
        "SELECT count(*), count(DISTINCT c.case_key) FROM cases c JOIN vaccinations v ON c.person_key = v.person_key",
        "SELECT count(DISTINCT person_key), count(DISTINCT vaccinator_key), count(DISTINCT event_key) FROM vaccinations",
        "SELECT count(DISTINCT quarantine_key), count(DISTINCT record_hash) FROM quarantine",
    ] {
        answers.push(sorted_csv(wh, query));
    }
    let (coverage, _) = ok(&[
        "coverage",
        "--warehouse",
        wh.to_str().unwrap(),
        "--all",
        "--format",
        "csv",
        "--suppression-threshold",
        "1",
    ]);
    // The figures must not change; the table versions they were read from do (a rotation is
    // a new version of every table), so that provenance line is left out of the comparison.
    assert!(
        coverage
            .lines()
            .any(|line| line.starts_with("# table_versions:")),
        "the coverage CSV names its table versions:\n{coverage}"
    );
    let figures: Vec<&str> = coverage
        .lines()
        .filter(|line| !line.starts_with("# table_versions:"))
        .collect();
    answers.push(figures.join("\n"));
    answers
}

const PATIENT_ID: &str = "pat-key-1";

fn patient(id: &str, number: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","identifier":[{{"system":"urn:oid:1.3.182.4.4","value":"{number}"}}],"gender":"female","birthDate":"2022-03-15","address":[{{"city":"Wiltz"}}]}}"#
    )
}

fn dose(id: &str, patient: &str, date: &str, lot: &str) -> String {
    dose_updated(id, patient, date, lot, &format!("{date}T12:00:00Z"))
}

/// A dose whose version (`meta.lastUpdated`) is `updated`.
fn dose_updated(id: &str, patient: &str, date: &str, lot: &str, updated: &str) -> String {
    format!(
        r#"{{"resourceType":"Immunization","id":"{id}","meta":{{"lastUpdated":"{updated}"}},"status":"completed","vaccineCode":{{"coding":[{{"system":"http://www.whocc.no/atc","code":"J07BD52"}}]}},"patient":{{"reference":"Patient/{patient}"}},"occurrenceDateTime":"{date}","lotNumber":"{lot}"}}"#
    )
}

/// A FHIR export of the hand-made person `number` with `doses`, plus bad lines that quote
/// national numbers (all quarantined): an invalid check digit, broken JSON, and a dose of an
/// unknown patient. Returns the source and the national numbers it contains.
fn hand_export(dir: &Path, name: &str, number: &str, doses: &[String]) -> (String, Vec<String>) {
    let bad_check = {
        let mut n = national_number("1990-05-06", 17);
        let last = n.pop().unwrap();
        n.push(if last == '0' { '1' } else { '0' });
        n
    };
    let in_broken_json = national_number("1985-01-02", 33);
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let patients = [
        patient(PATIENT_ID, number),
        patient(&format!("{name}-bad"), &bad_check),
        format!(
            r#"{{"resourceType":"Patient","id":"{name}-broken","identifier":[{{"value":"{in_broken_json}"#
        ),
    ];
    let mut immunizations = doses.to_vec();
    immunizations.push(dose(
        &format!("{name}-orphan"),
        &national_number("1977-07-07", 5),
        "2024-01-01",
        "ORPHAN",
    ));
    std::fs::write(d.join("Patient.ndjson"), patients.join("\n") + "\n").unwrap();
    std::fs::write(
        d.join("Immunization.ndjson"),
        immunizations.join("\n") + "\n",
    )
    .unwrap();
    (
        format!("fhir:{}", d.display()),
        vec![
            number.to_string(),
            bad_check,
            in_broken_json,
            national_number("1977-07-07", 5),
        ],
    )
}

/// Fails if any of `secrets` (or, for keys, either half of one) appears in `texts`.
fn assert_absent(what: &str, texts: &[String], secrets: &BTreeSet<String>) {
    for text in texts {
        let lower = text.to_ascii_lowercase();
        for s in secrets {
            let s = s.to_ascii_lowercase();
            let pieces: Vec<&str> = if s.len() == 64 {
                vec![&s[..32], &s[32..]]
            } else {
                vec![s.as_str()]
            };
            for piece in pieces {
                assert!(
                    !lower.contains(piece),
                    "{what}: found a secret ({} characters) in: {}",
                    piece.len(),
                    &text[..text.len().min(300)]
                );
            }
        }
    }
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_fix_and_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "master.key");
    assert_eq!(mode(&key), 0o600);
    let hex = key_lines(&key).remove(0);
    let (source, _) = hand_export(
        dir.path(),
        "a",
        &national_number("2022-03-15", 1),
        &[dose("imm-a", PATIENT_ID, "2023-04-01", "L1")],
    );
    let mut logs = Logs::default();
    for bad_mode in [0o644, 0o640, 0o604] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(bad_mode)).unwrap();
        let err = logs.ingest_fails(&wh, &key, &source);
        assert!(
            err.contains(&format!("chmod 600 {}", key.display())),
            "{err}"
        );
        assert!(!wh.join("vaccinations").exists(), "nothing written");
        // Rotation refuses it too, as old or as new key.
        let other = key_file(dir.path(), &format!("other-{bad_mode:o}.key"));
        let err = logs.fails(&rotate_args(&wh, &key, &other));
        assert!(err.contains("chmod 600"), "{err}");
        let err = logs.fails(&rotate_args(&wh, &other, &key));
        assert!(err.contains("chmod 600"), "{err}");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(logs.ingest(&wh, &key, &source).1, 2);

    // A malformed key file holding a near-key (the real key with its last digit changed,
    // after a valid line) is refused by line number, without quoting it.
    let near = format!("{}g", &hex[..63]);
    let malformed = dir.path().join("malformed.key");
    std::fs::write(&malformed, format!("{hex}\n{near}\n")).unwrap();
    std::fs::set_permissions(&malformed, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = logs.ingest_fails(&wh, &malformed, &source);
    assert!(err.contains("line 2") && err.contains("64 hex"), "{err}");
    let secrets = BTreeSet::from([hex.clone(), near.clone(), near[..40].to_string()]);
    assert_absent("command output", &logs.0, &secrets);
}

#[test]
fn rotation_rekeys_every_table_in_one_version_and_new_data_joins() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let old = key_file(dir.path(), "old.key");
    let new = key_file(dir.path(), "new.key");
    let (old_hex, fresh_hex) = (key_lines(&old).remove(0), key_lines(&new).remove(0));
    let (old_id, fresh_id) = (key_id(&old), key_id(&new));
    let mut logs = Logs::default();
    logs.ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        "400",
        "--seed",
        "5",
    ]);
    for source in [
        format!("fhir:{}", export.join("fhir").display()),
        format!("csv:{}", export.join("registry.csv").display()),
        format!("population:{}", export.join("population.csv").display()),
        format!("cases:{}", export.join("cases.csv").display()),
    ] {
        let (read, accepted, quarantined) = logs.ingest(&wh, &old, &source);
        assert_eq!(read, accepted + quarantined);
    }
    let number = national_number("2022-03-15", 1);
    let (before_source, mut numbers) = hand_export(
        dir.path(),
        "before",
        &number,
        &[dose("imm-k1", PATIENT_ID, "2023-04-01", "KEYTEST-1")],
    );
    assert_eq!(logs.ingest(&wh, &old, &before_source), (5, 2, 3));
    let person_before = sql_value(
        &wh,
        "SELECT person_key FROM vaccinations WHERE lot_number = 'KEYTEST-1'",
    );

    let versions_before = versions(&wh);
    for table in TABLES {
        assert_eq!(stored_key_id(&wh, table), old_id, "{table}");
    }
    let answers_before = invariant_answers(&wh);
    let keyed_before: Vec<BTreeSet<String>> =
        KEYED.iter().map(|(t, c)| column_set(&wh, t, c)).collect();
    assert!(
        keyed_before.iter().all(|s| !s.is_empty()),
        "every keyed column holds values"
    );

    // Rotate. The complement-order secret is not derived from the master key: the rotation
    // leaves it as it is, so coverage keeps withholding the same cells (docs/coverage.md).
    let order_secret = std::fs::read(wh.join("_vaxlake_order.secret")).unwrap();
    let out = logs.rotate(&wh, &old, &new);
    assert!(out.contains(&format!("destroy {}", old.display())), "{out}");
    assert!(out.contains("vaccinations: version"), "{out}");
    assert_eq!(
        std::fs::read(wh.join("_vaxlake_order.secret")).unwrap(),
        order_secret
    );

    // One new version per table, under the chain's id, and the chain written to NEW.
    let chain_id = key_id(&new);
    assert_eq!(key_lines(&new), vec![old_hex.clone(), fresh_hex.clone()]);
    assert_eq!(mode(&new), 0o600);
    assert!(chain_id != old_id && chain_id != fresh_id);
    let versions_after = versions(&wh);
    for table in TABLES {
        assert_eq!(versions_after[table], versions_before[table] + 1, "{table}");
        assert_eq!(stored_key_id(&wh, table), chain_id, "{table}");
    }

    // Every pseudonym changed, one for one; everything else is the same.
    for ((table, column), before) in KEYED.iter().zip(&keyed_before) {
        let after = column_set(&wh, table, column);
        assert_eq!(after.len(), before.len(), "{table}.{column}");
        assert!(
            after.is_disjoint(before),
            "{table}.{column}: an old pseudonym survived"
        );
    }
    let all_old: BTreeSet<&String> = keyed_before.iter().flatten().collect();
    for (table, _) in PLAIN {
        let rows = sql_csv(&wh, &format!("SELECT * FROM {table}"));
        for value in rows.lines().flat_map(|l| l.split(',')) {
            assert!(
                !all_old.contains(&value.to_string()),
                "{table}: old pseudonym {value}"
            );
        }
    }
    assert_same_answers(&answers_before, &invariant_answers(&wh));

    // The old key is refused, saying which key to use.
    let err = logs.ingest_fails(&wh, &old, &before_source);
    assert!(
        err.contains("rotated") && err.contains("--new-key-file"),
        "{err}"
    );
    assert_eq!(
        versions(&wh),
        versions_after,
        "a refused ingest writes nothing"
    );

    // Re-ingesting what is already there with the chain changes nothing: event keys,
    // content hashes and quarantine keys were all carried over.
    logs.ingest(
        &wh,
        &new,
        &format!("fhir:{}", export.join("fhir").display()),
    );
    logs.ingest(&wh, &new, &before_source);
    logs.ingest(
        &wh,
        &new,
        &format!("cases:{}", export.join("cases.csv").display()),
    );
    for table in ["vaccinations", "cases", "quarantine"] {
        assert_eq!(
            version(&wh, table),
            versions_after[table],
            "{table}: unchanged rows rewritten"
        );
    }
    // A newer version of a dose with the same content is no change either (content hash).
    let (restated, _) = hand_export(
        dir.path(),
        "restated",
        &number,
        &[dose_updated(
            "imm-k1",
            PATIENT_ID,
            "2023-04-01",
            "KEYTEST-1",
            "2025-01-01T00:00:00Z",
        )],
    );
    logs.ingest(&wh, &new, &restated);
    assert_eq!(
        version(&wh, "vaccinations"),
        versions_after["vaccinations"],
        "an unchanged dose was rewritten"
    );

    // The same person's next dose lands on the same (rotated) person_key.
    let (after_source, more_numbers) = hand_export(
        dir.path(),
        "after",
        &number,
        &[dose("imm-k2", PATIENT_ID, "2023-09-01", "KEYTEST-2")],
    );
    numbers.extend(more_numbers);
    assert_eq!(logs.ingest(&wh, &new, &after_source), (5, 2, 3));
    assert_eq!(
        sql_csv(
            &wh,
            "SELECT count(*) AS doses, count(DISTINCT person_key) AS persons FROM vaccinations WHERE lot_number LIKE 'KEYTEST-%'"
        ),
        "doses,persons\n2,1\n"
    );
    let person_after = sql_value(
        &wh,
        "SELECT DISTINCT person_key FROM vaccinations WHERE lot_number LIKE 'KEYTEST-%'",
    );
    assert_ne!(person_after, person_before);
    assert!(column_set(&wh, "vaccinations", "person_key").contains(&person_after));
    assert_eq!(
        sql_value(
            &wh,
            "SELECT max(dose_seq) FROM antigen_doses WHERE antigen = 'measles' AND person_key IN (SELECT person_key FROM vaccinations WHERE lot_number = 'KEYTEST-2')"
        ),
        "2"
    );

    // No key material and no national number in anything written or printed.
    let mut secrets: BTreeSet<String> = national_numbers(&export);
    secrets.extend(numbers);
    secrets.extend([old_hex, fresh_hex]);
    assert!(secrets.len() > 100);
    assert_absent("warehouse", &everything_written(&wh), &secrets);
    assert_absent("command output", &logs.0, &secrets);
    eprintln!("rotation test took {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn an_interrupted_rotation_is_refused_by_ingest_and_completed_by_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 150, 9, &["fhir", "population", "cases"]);
    let old = dir.path().join("master.key");
    let new = key_file(dir.path(), "new.key");
    let fhir = format!("fhir:{}", dir.path().join("export/fhir").display());
    let mut logs = Logs::default();
    let joined = "SELECT count(*) FROM cases c JOIN vaccinations v ON c.person_key = v.person_key";
    let joined_before = sql_value(&wh, joined);
    let versions_before = versions(&wh);

    // A key the warehouse was not written with is refused before anything changes.
    let stranger = key_file(dir.path(), "stranger.key");
    let err = logs.fails(&rotate_args(&wh, &stranger, &new));
    assert!(
        err.contains("neither") && err.contains("written with"),
        "{err}"
    );
    // So is a "new" key that is already the current one.
    let err = logs.fails(&rotate_args(&wh, &old, &old));
    assert!(err.contains("vaxlake key new"), "{err}");
    assert_eq!(versions(&wh), versions_before);

    // The first run stops after the vaccinations table (as if killed between commits).
    let rotation = KeyRotation::new(
        &MasterKey::load(&old).unwrap(),
        &MasterKey::load(&new).unwrap(),
    )
    .unwrap();
    let report = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(vaxlake_ingest::rekey(
            wh.to_str().unwrap(),
            &rotation,
            &vaxlake_ingest::RekeyOptions::default().with_tables(&["vaccinations"]),
        ))
        .unwrap();
    assert!(!report.complete());
    assert_eq!(
        version(&wh, "vaccinations"),
        versions_before["vaccinations"] + 1
    );
    assert_eq!(stored_key_id(&wh, "vaccinations"), rotation.to_key_id());
    assert_eq!(stored_key_id(&wh, "cases"), key_id(&old));

    // Ingest refuses the mix with either key, and says to finish the rotation.
    let chain = dir.path().join("chain.key");
    rotation.rotated_key().save(&chain).unwrap();
    for key in [&old, &chain] {
        let err = logs.ingest_fails(&wh, key, &fhir);
        assert!(
            err.contains("interrupted") && err.contains("key rotate"),
            "{err}"
        );
    }

    // Running the rotation again completes it, skipping the table already done.
    let out = logs.rotate(&wh, &old, &new);
    assert!(out.contains("vaccinations: version"), "{out}");
    assert!(out.contains("skipped"), "{out}");
    for table in TABLES {
        assert_eq!(stored_key_id(&wh, table), rotation.to_key_id(), "{table}");
        assert_eq!(versions(&wh)[table], versions_before[table] + 1, "{table}");
    }
    assert_eq!(MasterKey::load(&new).unwrap(), *rotation.rotated_key());
    assert_eq!(
        sql_value(&wh, joined),
        joined_before,
        "cases still join vaccinations"
    );

    // A third run (NEW now holds the chain) changes nothing; ingest with the chain works.
    logs.rotate(&wh, &old, &new);
    assert_eq!(
        versions(&wh),
        TABLES
            .iter()
            .map(|t| (*t, versions_before[t] + 1))
            .collect::<BTreeMap<_, _>>()
    );
    let (read, accepted, quarantined) = logs.ingest(&wh, &new, &fhir);
    assert_eq!(read, accepted + quarantined);
    assert_eq!(
        version(&wh, "vaccinations"),
        versions_before["vaccinations"] + 1
    );

    let mut secrets = BTreeSet::new();
    for key in [&old, &new, &stranger] {
        secrets.extend(key_lines(key));
    }
    assert_absent("command output", &logs.0, &secrets);
    assert_absent("warehouse", &everything_written(&wh), &secrets);
}
