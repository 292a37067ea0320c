//! Researcher extracts end to end (CONTRACTS.md, Extracts): k recounted on the files
//! written, project pseudonyms that link within a project and nowhere else, opted-out persons
//! absent, the same bytes for the same spec and table versions, four-eyes release with both
//! steps audited, `verify` catching a changed byte, the researchers' API, and expiry.

mod common;
use common::*;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use vaxlake_pseudonymize::{IdKind, MasterKey, ProjectKey, Pseudonymizer};

const PROJECT: &str = "P-2026-014";

fn spec(project: &str, k: u32, columns: &str, qis: &str) -> String {
    let mut text = format!(
        r#"project = "{project}"
purpose = "MMR timeliness by commune"
table = "antigen_doses"
columns = [{columns}]
where = "antigen = 'measles'"
quasi_identifiers = [{qis}]
k = {k}
max_suppressed_share = 0.05
[generalise]
"#
    );
    if qis.contains("birth_month") {
        text.push_str("birth_month = [\"month\", \"quarter\", \"year\"]\n");
    }
    if qis.contains("commune") {
        text.push_str("commune = [\"commune\", \"canton\", \"country\"]\n");
    }
    text
}

const COLUMNS: &str =
    r#""person_key", "antigen", "dose_seq", "age_months_at_dose", "birth_month", "sex", "commune""#;
const QIS: &str = r#""birth_month", "sex", "commune""#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `vaxlake extract create`, however it ends.
fn create_run(wh: &Path, key: &Path, spec: &Path) -> std::process::Output {
    run(&[
        "extract",
        "create",
        "--warehouse",
        wh.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--by",
        "alice",
        "--key-file",
        key.to_str().unwrap(),
    ])
}

fn create(wh: &Path, key: &Path, spec: &Path, by: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "extract",
        "create",
        "--warehouse",
        wh.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--by",
        by,
        "--key-file",
        key.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&args).0.trim().to_string()
}

fn extract_dir(wh: &Path, project: &str, id: &str) -> PathBuf {
    wh.join("extracts").join(project).join(id)
}

fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn column(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let array = arrow::compute::cast(
        batch.column(batch.schema().index_of(name).unwrap()),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let array = array.as_string::<i32>();
    (0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i).to_string()))
        .collect()
}

fn manifest_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn extracts_are_k_anonymous_project_keyed_reproducible_and_released_by_a_second_operator() {
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 3000, 11, &["fhir", "population", "cases"]);
    let key = dir.path().join("master.key");
    let export = dir.path().join("export");
    let numbers: Vec<String> = national_numbers(&export).into_iter().collect();

    // 40 children (born 2016 or later: measles doses) object, and one unreadable line is
    // quarantined, not guessed at.
    let objecting: Vec<&String> = numbers
        .iter()
        .filter(|n| vaxlake_pseudonymize::national_id::normalise(n).is_ok())
        .filter(|n| n.as_str() >= "2016")
        .step_by(7)
        .take(40)
        .collect();
    let mut optout = String::from("national_id\n");
    for n in &objecting {
        optout.push_str(&format!("{n}\n"));
    }
    optout.push_str("12345\n");
    let file = write(dir.path(), "optout.csv", &optout);
    let (counts, out, err) = ingest(&wh, &key, &format!("optout:{}", file.display()));
    assert_eq!(counts, (41, 40, 1));
    assert!(!format!("{out}{err}").contains(objecting[0].as_str()));

    let spec_path = write(dir.path(), "spec.toml", &spec(PROJECT, 5, COLUMNS, QIS));
    let id = create(&wh, &key, &spec_path, "alice", &[]);
    let out_dir = extract_dir(&wh, PROJECT, &id);
    let manifest = manifest_of(&out_dir);
    // The manifest names the versions of the tables read (antigen_doses is a view over
    // vaccinations; optout), not every table of the warehouse.
    let read: Vec<&String> = manifest["table_versions"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(read, ["optout", "vaccinations"], "{manifest}");

    // An opt-out file without one valid number is refused and leaves the list as it was:
    // the same spec on the same versions is still the same extract.
    let empty = write(dir.path(), "optout-empty.csv", "national_id\n12345\n");
    let refused = run(&[
        "ingest",
        "--warehouse",
        wh.to_str().unwrap(),
        "--source",
        &format!("optout:{}", empty.display()),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no valid national number"), "{stderr}");
    let again = create_run(&wh, &key, &spec_path);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "the opt-out list changed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let part = out_dir.join("part-00000.parquet");
    let batch = read_parquet(&part);

    // Counts: everything read is accounted for, against SQL on the warehouse.
    let measles = sql_u64(
        &wh,
        "SELECT count(*) FROM antigen_doses WHERE antigen = 'measles'",
    );
    let rows = &manifest["rows"];
    assert_eq!(rows["read"].as_u64(), Some(measles));
    let removed = rows["removed_opt_out"].as_u64().unwrap();
    assert!(
        removed > 0,
        "some objecting persons had measles doses: {manifest}"
    );
    assert_eq!(
        rows["written"].as_u64().unwrap() + rows["suppressed"].as_u64().unwrap() + removed,
        measles
    );
    assert_eq!(batch.num_rows() as u64, rows["written"].as_u64().unwrap());
    assert!(batch.num_rows() > 100, "a vacuous extract proves nothing");
    assert!(
        rows["suppressed"].as_f64().unwrap() <= 0.05 * (measles - removed) as f64,
        "{manifest}"
    );
    // Rows and persons removed, recounted from the objecting persons' warehouse keys.
    let pseudonymizer = Pseudonymizer::new(&MasterKey::load(&key).unwrap());
    let objecting_warehouse_keys: Vec<String> = objecting
        .iter()
        .map(|n| format!("'{}'", pseudonymizer.pseudonym(IdKind::Person, n)))
        .collect();
    let objecting_doses = format!(
        "FROM antigen_doses WHERE antigen = 'measles' AND person_key IN ({})",
        objecting_warehouse_keys.join(", ")
    );
    assert_eq!(
        removed,
        sql_u64(&wh, &format!("SELECT count(*) {objecting_doses}"))
    );
    let removed_persons = rows["removed_opt_out_persons"].as_u64().unwrap();
    assert_eq!(
        removed_persons,
        sql_u64(
            &wh,
            &format!("SELECT count(DISTINCT person_key) {objecting_doses}")
        )
    );
    assert!(
        removed_persons > 0 && removed_persons < removed,
        "a person has several measles doses: {manifest}"
    );
    // Birth months released as months, communes as communes, sex as is: nothing is
    // generalised then; otherwise at most every written record.
    let coarsened = manifest["anonymisation"]["levels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| !matches!(l["level"].as_str(), Some("month" | "commune" | "value")));
    let generalised = rows["generalised"].as_u64().unwrap();
    if coarsened {
        assert!(generalised > 0 && generalised <= rows["written"].as_u64().unwrap());
    } else {
        assert_eq!(generalised, 0, "{manifest}");
    }

    // k recounted here, on the file, over the released quasi-identifiers.
    let mut classes: HashMap<Vec<Option<String>>, u64> = HashMap::new();
    let qi_columns: Vec<Vec<Option<String>>> = ["birth_month", "sex", "commune"]
        .iter()
        .map(|c| column(&batch, c))
        .collect();
    for row in 0..batch.num_rows() {
        let key: Vec<Option<String>> = qi_columns.iter().map(|c| c[row].clone()).collect();
        *classes.entry(key).or_default() += 1;
    }
    let smallest = *classes.values().min().unwrap();
    assert!(smallest >= 5, "a class of {smallest} < k");
    assert_eq!(
        manifest["anonymisation"]["k_achieved"].as_u64(),
        Some(smallest)
    );
    let risk = &manifest["anonymisation"]["risk"];
    assert_eq!(
        risk["highest_risk"].as_f64().unwrap(),
        1.0 / smallest as f64
    );
    let average = classes.len() as f64 / batch.num_rows() as f64;
    assert!((risk["average_risk"].as_f64().unwrap() - average).abs() < 1e-12);
    assert_eq!(risk["records_at_risk"], 0);
    let levels = &manifest["anonymisation"]["levels"];
    let commune_level = levels
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["column"] == "commune")
        .unwrap()["level"]
        .as_str()
        .unwrap()
        .to_string();
    let communes: BTreeSet<Option<String>> = qi_columns[2].iter().cloned().collect();
    match commune_level.as_str() {
        "country" => assert_eq!(communes.len(), 1),
        "canton" => assert!(communes.len() <= 12),
        _ => {}
    }

    // Project pseudonyms: none is a warehouse key; the objecting persons are absent.
    let master = MasterKey::load(&key).unwrap();
    let project_key = ProjectKey::new(&master, PROJECT);
    let extracted: BTreeSet<String> = column(&batch, "person_key").into_iter().flatten().collect();
    let warehouse_keys: BTreeSet<String> =
        sql_csv(&wh, "SELECT DISTINCT person_key FROM vaccinations")
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
    assert!(
        extracted.is_disjoint(&warehouse_keys),
        "a warehouse key left in an extract"
    );
    let objecting_keys: BTreeSet<String> = objecting
        .iter()
        .map(|n| {
            let warehouse = pseudonymizer.pseudonym(IdKind::Person, n);
            project_key.rekey_hex(IdKind::Person, &warehouse).unwrap()
        })
        .collect();
    assert!(
        extracted.is_disjoint(&objecting_keys),
        "an objecting person was extracted"
    );
    // The non-objecting persons' project keys are what the project key gives.
    let expected_keys: BTreeSet<String> = warehouse_keys
        .iter()
        .map(|k| project_key.rekey_hex(IdKind::Person, k).unwrap())
        .collect();
    assert!(extracted.is_subset(&expected_keys));
    assert_eq!(manifest["project_key_id"], project_key.key_id());

    // Another project never links; another extract of the same project does.
    let other_spec = write(dir.path(), "other.toml", &spec("P-OTHER", 5, COLUMNS, QIS));
    let other_id = create(&wh, &key, &other_spec, "alice", &[]);
    let other: BTreeSet<String> = column(
        &read_parquet(&extract_dir(&wh, "P-OTHER", &other_id).join("part-00000.parquet")),
        "person_key",
    )
    .into_iter()
    .flatten()
    .collect();
    assert!(other.is_disjoint(&extracted) && !other.is_empty());
    let second_spec = write(
        dir.path(),
        "second.toml",
        &spec(PROJECT, 3, r#""person_key", "antigen", "sex""#, r#""sex""#),
    );
    let second_id = create(&wh, &key, &second_spec, "alice", &[]);
    assert_ne!(second_id, id);
    let second: BTreeSet<String> = column(
        &read_parquet(&extract_dir(&wh, PROJECT, &second_id).join("part-00000.parquet")),
        "person_key",
    )
    .into_iter()
    .flatten()
    .collect();
    assert!(
        !second.is_disjoint(&extracted),
        "one project's extracts link"
    );

    // Reproducible: the same spec on the same table versions gives the same id and bytes.
    let bytes = std::fs::read(&part).unwrap();
    let again = create_run(&wh, &key, &spec_path);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    std::fs::remove_dir_all(&out_dir).unwrap();
    assert_eq!(create(&wh, &key, &spec_path, "alice", &[]), id);
    assert_eq!(std::fs::read(&part).unwrap(), bytes);

    // Four eyes: the creator cannot approve; a second operator can, once.
    let approve = |by: &str| {
        run(&[
            "extract",
            "approve",
            "--warehouse",
            wh.to_str().unwrap(),
            &id,
            "--by",
            by,
        ])
    };
    let refused = approve("alice");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot also approve"));
    // Nor under another spelling of the same name.
    for by in ["Alice", " alice ", "ALICE"] {
        let refused = approve(by);
        assert!(!refused.status.success(), "{by:?} approved alice's extract");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("cannot also approve"),
            "{by:?}: {}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    // Nor by rewriting created_by in the pending manifest: the audit names the creator.
    let manifest_path = out_dir.join("manifest.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let forged = original.replace("\"created_by\": \"alice\"", "\"created_by\": \"mallory\"");
    assert_ne!(forged, original);
    std::fs::write(&manifest_path, &forged).unwrap();
    for by in ["alice", "bob"] {
        let refused = approve(by);
        assert!(!refused.status.success(), "{by} approved a forged manifest");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("the manifest was changed"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    std::fs::write(&manifest_path, &original).unwrap();
    // An unknown id is refused, and the attempt audited.
    let unknown = run(&[
        "extract",
        "approve",
        "--warehouse",
        wh.to_str().unwrap(),
        "00000000deadbeef",
        "--by",
        "carol",
    ]);
    assert!(!unknown.status.success());
    assert!(approve("bob").status.success());
    assert!(!approve("carol").status.success(), "approved twice");
    let (verified, _) = ok(&["extract", "verify", out_dir.to_str().unwrap()]);
    assert!(verified.contains("released"), "{verified}");

    // Both steps are in the audit, the refused approval too.
    let (audit, _) = ok(&[
        "audit",
        "--warehouse",
        wh.to_str().unwrap(),
        "--format",
        "csv",
        "--limit",
        "1000",
    ]);
    assert!(audit
        .lines()
        .any(|l| l.contains("alice") && l.contains("vaxlake extract create") && l.contains(&id)));
    assert!(audit
        .lines()
        .any(|l| l.contains("bob") && l.contains("vaxlake extract approve") && l.contains(",ok,")));
    assert!(audit.lines().any(|l| l.contains("alice")
        && l.contains("vaxlake extract approve")
        && l.contains(",forbidden,")));
    assert!(audit.lines().any(|l| l.contains("carol")
        && l.contains("vaxlake extract approve")
        && l.contains("deadbeef")
        && l.contains(",refused,")));

    // A changed byte fails verification.
    let mut changed = bytes.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    std::fs::write(&part, &changed).unwrap();
    let broken = run(&["extract", "verify", out_dir.to_str().unwrap()]);
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("part-00000.parquet differs"));
    std::fs::write(&part, &bytes).unwrap();

    // k out of reach is refused with the reason, and writes nothing.
    let strict = write(
        dir.path(),
        "strict.toml",
        &spec("P-STRICT", 100_000, COLUMNS, QIS),
    );
    let out = create_run(&wh, &key, &strict);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be reached"));
    assert!(!wh.join("extracts/P-STRICT").exists());

    // Free text and subqueries never get in.
    let leaky = write(
        dir.path(),
        "leaky.toml",
        &spec(PROJECT, 5, r#""person_key", "lot_number""#, ""),
    );
    let out = create_run(&wh, &key, &leaky);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"lot_number\" cannot be extracted"),
        "{stderr}"
    );

    // The researchers' side, through the API.
    let (auth, tokens) = researchers(dir.path());
    let mut server = serve(&wh, &["--auth", auth.to_str().unwrap()]);
    let port = server.port;
    let get_bytes = |token: &str, path: &str| -> (u16, Vec<u8>) {
        let bearer = format!("Bearer {token}");
        let answer =
            http::request(port, "GET", path, &[("Authorization", bearer.as_str())], "").unwrap();
        (answer.status, answer.body)
    };
    let get = |token: &str, path: &str| {
        let (status, body) = get_bytes(token, path);
        (status, String::from_utf8_lossy(&body).to_string())
    };
    let (status, body) = get(&tokens[0], "/api/extracts");
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = listed["extracts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extract_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![id.as_str()],
        "only the released extract of rex's project"
    );
    let file_path = format!("/api/extracts/{PROJECT}/{id}/part-00000.parquet");
    let (status, downloaded) = get_bytes(&tokens[0], &file_path);
    assert_eq!(status, 200);
    assert_eq!(downloaded, bytes, "the file as written and verified");
    let (status, _) = get(
        &tokens[0],
        &format!("/api/extracts/{PROJECT}/{second_id}/part-00000.parquet"),
    );
    assert_eq!(status, 404, "not released yet");
    let (status, _) = get(&tokens[1], &file_path);
    assert_eq!(status, 403, "another project's researcher");
    let (_, body) = get(&tokens[1], "/api/extracts");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["extracts"],
        serde_json::json!([])
    );
    let (status, body) = get(&tokens[2], "/api/extracts");
    assert_eq!(status, 200, "operators list every extract");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["extracts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // An operator reviews an unreleased extract's manifest, but no operator alone takes its
    // data out before the second approval; once released, operators download like its project.
    let unreleased = format!("/api/extracts/{PROJECT}/{second_id}");
    let (status, manifest) = get(&tokens[2], &format!("{unreleased}/manifest.json"));
    assert_eq!(status, 200, "{manifest}");
    assert!(manifest.contains(&second_id), "{manifest}");
    let (status, refusal) = get(&tokens[2], &format!("{unreleased}/part-00000.parquet"));
    assert_eq!(status, 403, "{refusal}");
    assert!(refusal.contains("not released"), "{refusal}");
    let (status, downloaded) = get_bytes(&tokens[2], &file_path);
    assert_eq!((status, downloaded == bytes), (200, true));
    let (status, _) = get(&tokens[3], "/api/extracts");
    assert_eq!(status, 403, "analysts have no extracts");
    assert!(
        server.terminate().success(),
        "a clean stop commits the audit"
    );
    let (audit, _) = ok(&[
        "audit",
        "--warehouse",
        wh.to_str().unwrap(),
        "--user",
        "rex",
        "--format",
        "csv",
    ]);
    assert!(
        audit.contains(&file_path),
        "the download is audited: {audit}"
    );

    // Key columns of vaccinations (event, person, vaccinator) for two projects: no value
    // shared between the projects, nor with any key of the warehouse's table.
    let keys_spec = |project: &str| {
        format!(
            r#"project = "{project}"
purpose = "doses per vaccine"
table = "vaccinations"
columns = ["event_key", "person_key", "vaccinator_key", "vaccine_atc", "dose_number_recorded"]
quasi_identifiers = []
k = 2
max_suppressed_share = 0.0
"#
        )
    };
    let key_columns = ["event_key", "person_key", "vaccinator_key"];
    let mut per_project: Vec<BTreeSet<String>> = Vec::new();
    let mut person_keys: Vec<BTreeSet<String>> = Vec::new();
    for project in [PROJECT, "P-OTHER"] {
        let path = write(
            dir.path(),
            &format!("keys-{project}.toml"),
            &keys_spec(project),
        );
        let keys_id = create(&wh, &key, &path, "alice", &[]);
        let batch = read_parquet(&extract_dir(&wh, project, &keys_id).join("part-00000.parquet"));
        let mut values = BTreeSet::new();
        for name in key_columns {
            let keys = column(&batch, name);
            assert!(keys.iter().all(Option::is_some) || name == "vaccinator_key");
            let distinct: BTreeSet<String> = keys.into_iter().flatten().collect();
            assert!(!distinct.is_empty(), "{project}: no {name}");
            if name == "person_key" {
                person_keys.push(distinct.clone());
            }
            values.extend(distinct);
        }
        per_project.push(values);
    }
    assert!(
        per_project[0].is_disjoint(&per_project[1]),
        "a key value shared between two projects"
    );
    let mut warehouse_values = BTreeSet::new();
    for name in key_columns {
        warehouse_values.extend(
            sql_csv(&wh, &format!("SELECT DISTINCT {name} FROM vaccinations"))
                .lines()
                .skip(1)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    assert!(warehouse_values.len() > 1000, "a vacuous comparison");
    for values in &per_project {
        assert!(
            values.is_disjoint(&warehouse_values),
            "a warehouse key left in an extract"
        );
    }
    // Within a project, persons link across extracts; across projects, never.
    assert!(!person_keys[0].is_disjoint(&extracted));
    assert!(person_keys[1].is_disjoint(&extracted) && !person_keys[1].is_disjoint(&other));

    // CSV on request: the same rules, readable text.
    let csv_spec = write(dir.path(), "csv.toml", &spec(PROJECT, 4, COLUMNS, QIS));
    let csv_id = create(&wh, &key, &csv_spec, "alice", &["--format", "csv"]);
    let csv_path = extract_dir(&wh, PROJECT, &csv_id).join("part-00000.csv");
    let csv_text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv_text.starts_with("person_key,"), "{csv_text:.200}");
    assert!(csv_text.lines().count() > 100);
    assert!(ok(&[
        "extract",
        "verify",
        csv_path.parent().unwrap().to_str().unwrap()
    ])
    .0
    .contains("match the manifest"));

    // No national number in any extract: every decoded Parquet value, the CSV files and
    // the manifests (every run of 11 or more digits checked against the export's numbers).
    let texts = everything_written(&wh.join("extracts"));
    assert!(
        texts.iter().any(|t| extracted.contains(t)),
        "the Parquet files were not decoded"
    );
    assert!(
        texts.iter().any(|t| t == &csv_text),
        "the CSV file was not read"
    );
    let numbers: BTreeSet<&str> = numbers.iter().map(String::as_str).collect();
    assert_eq!(holding_a_national_number(&texts, &numbers), None);
    // The scan finds a number where a leak would put it.
    let mut planted = texts.clone();
    planted.push(format!("x,0{}7,y", numbers.iter().nth(3).unwrap()));
    assert!(holding_a_national_number(&planted, &numbers).is_some());

    // Expired extracts are deleted.
    let short = write(dir.path(), "short.toml", &spec("P-SHORT", 5, COLUMNS, QIS));
    let short_id = create(&wh, &key, &short, "alice", &["--expires-days", "0"]);
    let (out, _) = ok(&["extract", "expire", "--warehouse", wh.to_str().unwrap()]);
    assert!(out.contains(&short_id));
    assert!(!extract_dir(&wh, "P-SHORT", &short_id).exists());
    assert!(out_dir.exists());
}

/// The first text holding one of `numbers` in a run of digits, if any.
fn holding_a_national_number<'a>(texts: &'a [String], numbers: &BTreeSet<&str>) -> Option<&'a str> {
    let shortest = numbers.iter().map(|n| n.len()).min().unwrap_or(11);
    let longest = numbers.iter().map(|n| n.len()).max().unwrap_or(13);
    texts.iter().map(String::as_str).find(|text| {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|run| run.len() >= shortest)
            .any(|run| {
                (0..run.len()).any(|start| {
                    (start + shortest..=run.len().min(start + longest))
                        .any(|end| numbers.contains(&run[start..end]))
                })
            })
    })
}

/// An extract reads the table versions pinned when it starts, whatever is ingested
/// meanwhile, and names exactly those (and only the tables it read) in its manifest; the key
/// of the table it reads is checked, whichever table that is.
#[test]
fn an_extract_reads_one_pinned_snapshot_and_checks_the_key_of_what_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 400, 23, &["fhir"]);
    let key = dir.path().join("master.key");
    let master = MasterKey::load(&key).unwrap();
    let text = r#"project = "P-PIN"
purpose = "doses per vaccine"
table = "vaccinations"
columns = ["person_key", "vaccine_atc"]
quasi_identifiers = []
k = 2
max_suppressed_share = 0.0
"#;
    let spec = vaxlake_extract::Spec::parse(text).unwrap();
    let options = vaxlake_extract::CreateOptions {
        by: "alice".into(),
        format: vaxlake_extract::OutputFormat::Parquet,
        expires_after_days: 1,
    };
    let before = sql_u64(&wh, "SELECT count(*) FROM vaccinations");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let location = wh.to_str().unwrap();
    let pinned = runtime
        .block_on(vaxlake_extract::open_pinned(location, &spec))
        .unwrap();
    let pinned_versions = pinned.versions();

    // An ingest commits new rows; the pinned session is older than any refresh interval.
    let export = dir.path().join("export-2");
    generate(&export, 200, 24);
    ingest(
        &wh,
        &key,
        &format!("csv:{}", export.join("registry.csv").display()),
    );
    let after = sql_u64(&wh, "SELECT count(*) FROM vaccinations");
    assert!(after > before);
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let created = runtime
        .block_on(vaxlake_extract::create_in(
            &pinned, &spec, &master, &options,
        ))
        .unwrap();
    let manifest = &created.manifest;
    assert_eq!(
        manifest["table_versions"],
        serde_json::json!({"vaccinations": pinned_versions["vaccinations"]}),
        "only the table read, at the version read"
    );
    assert_eq!(
        manifest["rows"]["read"].as_u64(),
        Some(before),
        "{manifest}"
    );
    assert_eq!(manifest["rows"]["written"].as_u64(), Some(before));
    let part = read_parquet(&created.dir.join("part-00000.parquet"));
    assert_eq!(part.num_rows() as u64, before);

    // A session that refreshes is refused; a fresh create reads the new version.
    let refreshing = runtime
        .block_on(vaxlake_query::Warehouse::open(
            location,
            vaxlake_query::QueryOptions::default(),
        ))
        .unwrap();
    let error = runtime
        .block_on(vaxlake_extract::create_in(
            &refreshing,
            &spec,
            &master,
            &options,
        ))
        .unwrap_err();
    assert!(error.to_string().contains("open_pinned"), "{error}");
    let spec_path = write(dir.path(), "pin.toml", text);
    let id = create(&wh, &key, &spec_path, "alice", &[]);
    assert_ne!(id, created.id);
    let manifest = manifest_of(&extract_dir(&wh, "P-PIN", &id));
    assert_eq!(manifest["rows"]["read"].as_u64(), Some(after));
    assert!(
        manifest["table_versions"]["vaccinations"].as_i64() > Some(pinned_versions["vaccinations"])
    );

    // A warehouse holding only cases: their key is checked too.
    let cases_wh = dir.path().join("cases-wh");
    ingest(
        &cases_wh,
        &key,
        &format!("cases:{}", dir.path().join("export/cases.csv").display()),
    );
    let cases_spec = write(
        dir.path(),
        "cases.toml",
        r#"project = "P-PIN"
purpose = "cases per disease"
table = "cases"
columns = ["case_key", "disease"]
quasi_identifiers = []
k = 2
max_suppressed_share = 0.0
"#,
    );
    let other_key = key_file(dir.path(), "other.key");
    let refused = create_run(&cases_wh, &other_key, &cases_spec);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("table 'cases' was written with key id"),
        "{stderr}"
    );
    assert!(!cases_wh.join("extracts").exists());
    create(&cases_wh, &key, &cases_spec, "alice", &[]);
}

/// Auth file with rex (researcher of PROJECT), ray (researcher of P-OTHER), ops (operator)
/// and ana (analyst); their tokens in that order.
fn researchers(dir: &Path) -> (PathBuf, Vec<String>) {
    let mut file = String::new();
    let mut tokens = Vec::new();
    for args in [
        vec![
            "--name",
            "rex",
            "--role",
            "researcher",
            "--project",
            PROJECT,
        ],
        vec![
            "--name",
            "ray",
            "--role",
            "researcher",
            "--project",
            "P-OTHER",
        ],
        vec!["--name", "ops", "--role", "operator"],
        vec!["--name", "ana", "--role", "analyst"],
    ] {
        let mut all = vec!["token", "new"];
        all.extend(args);
        let (out, err) = ok(&all);
        tokens.push(out.trim().to_string());
        file.push_str(&err[err.find("[[user]]").unwrap()..]);
    }
    (write(dir, "auth.toml", &file), tokens)
}
