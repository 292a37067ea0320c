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
    let pseudonymizer = Pseudonymizer::new(&master);
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

    // No national number in any extract file.
    for file in all_files(&wh.join("extracts")) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).to_string();
        for n in &numbers {
            assert!(
                !text.contains(n.as_str()),
                "{} holds a national number",
                file.display()
            );
        }
    }

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

    // The researchers' side, through the API.
    let (auth, tokens) = researchers(dir.path());
    let mut server = serve(&wh, &["--auth", auth.to_str().unwrap()]);
    let port = server.port;
    let get_bytes = |token: &str, path: &str| -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, raw[split + 4..].to_vec())
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

    // Expired extracts are deleted.
    let short = write(dir.path(), "short.toml", &spec("P-SHORT", 5, COLUMNS, QIS));
    let short_id = create(&wh, &key, &short, "alice", &["--expires-days", "0"]);
    let (out, _) = ok(&["extract", "expire", "--warehouse", wh.to_str().unwrap()]);
    assert!(out.contains(&short_id));
    assert!(!extract_dir(&wh, "P-SHORT", &short_id).exists());
    assert!(out_dir.exists());
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
