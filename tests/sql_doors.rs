//! One policy, three doors: every statement of the hostile corpus
//! (`tests/sql_sandbox_corpus.tsv`) sent through `/api/sql`, through Arrow Flight SQL (ADBC)
//! and through the PostgreSQL protocol (psycopg) gets the same answer: the same refusal
//! reason, the same bound (memory or time), or the same number of rows.

mod common;
use common::corpus::{entries, Places};
use common::doors::free_port;
use common::*;

use std::collections::BTreeMap;

const MAX_ROWS: usize = 50;

/// Why a door may answer otherwise than `/api/sql`, by design (docs/clients.md):
/// - the PostgreSQL door answers transaction control (psycopg and JDBC open transactions
///   on their own), changing nothing;
/// - its catalog also holds `pg_catalog`, so catalog queries list more;
/// - the streaming doors do not hold the answer, so `/api/sql`'s bound on the answer's size
///   does not apply to them; the row cap still does.
fn by_design(
    door: &str,
    sql: &str,
    http: &Result<usize, String>,
    answer: &serde_json::Value,
) -> Option<&'static str> {
    let answered = answer["ok"].as_bool() == Some(true);
    let words = sql.trim_start().to_ascii_uppercase();
    if door == "postgres" && answered && (words.starts_with("BEGIN") || words.starts_with("START"))
    {
        return Some("transaction control is answered and changes nothing");
    }
    if door == "postgres"
        && answered
        && http.is_ok()
        && (words.contains("INFORMATION_SCHEMA") || words.contains("PG_CATALOG"))
    {
        return Some("the PostgreSQL door's catalog also lists pg_catalog");
    }
    if let Err(reason) = http {
        if reason.contains("the answer would exceed")
            && answered
            && answer["rows"].as_u64() <= Some(MAX_ROWS as u64)
        {
            return Some("a streamed answer is not held: the row cap bounds it");
        }
    }
    None
}

#[test]
fn the_hostile_corpus_gets_the_same_answers_through_every_door() {
    let Some(python) =
        cross_check_python("the_hostile_corpus_gets_the_same_answers_through_every_door")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 300, 21, &["fhir", "population"]);
    let places = Places {
        warehouse: wh.clone(),
        export: dir.path().join("export"),
        outside: dir.path().join("outside"),
    };
    std::fs::create_dir(&places.outside).unwrap();
    // The bursts are about concurrency, which each door shares (the same permits).
    let statements: Vec<_> = entries(&places)
        .into_iter()
        .filter(|entry| entry.outcome != "busy" && entry.outcome != "crowd")
        .collect();
    assert!(statements.len() >= 100, "{} statements", statements.len());

    let out = run(&["token", "new", "--name", "ana", "--role", "analyst"]);
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, &stderr[stderr.find("[[user]]").unwrap()..]).unwrap();
    let (flight_port, pg_port) = (free_port(), free_port());
    let mut server = serve(
        &wh,
        &[
            "--auth",
            auth.to_str().unwrap(),
            "--flight-listen",
            &format!("127.0.0.1:{flight_port}"),
            "--pg-listen",
            &format!("127.0.0.1:{pg_port}"),
            "--memory-limit-mb",
            "64",
            "--query-timeout-ms",
            "1500",
            "--max-rows",
            &MAX_ROWS.to_string(),
        ],
    );

    // What /api/sql answers: the reason of a refusal or bound, or the rows.
    let mut http: BTreeMap<usize, Result<usize, String>> = BTreeMap::new();
    for entry in &statements {
        let body = serde_json::json!({ "sql": entry.sql }).to_string();
        let answer = http::request(
            server.port,
            "POST",
            "/api/sql",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
        .expect("an answer");
        let json: serde_json::Value = serde_json::from_str(&answer.text()).unwrap();
        let result = match answer.status {
            200 => Ok(json["rows"].as_array().unwrap().len()),
            _ => Err(json["error"].as_str().unwrap().to_string()),
        };
        http.insert(entry.line, result);
    }

    let config = dir.path().join("doors.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "flight": format!("grpc://127.0.0.1:{flight_port}"),
            "pg_host": "127.0.0.1",
            "pg_port": pg_port,
            "name": "ana",
            "token": token,
        })
        .to_string(),
    )
    .unwrap();
    let list = dir.path().join("statements.json");
    std::fs::write(
        &list,
        serde_json::to_string(
            &statements
                .iter()
                .map(|entry| serde_json::json!({"line": entry.line, "sql": entry.sql}))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    let answers = dir.path().join("answers.json");
    run_cross_check(
        &python,
        "doors_corpus.py",
        &[
            config.into_os_string(),
            list.into_os_string(),
            answers.clone().into_os_string(),
        ],
    );
    let answers: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&answers).unwrap()).unwrap();
    assert_eq!(answers.len(), 2 * statements.len());

    let bound = |reason: &str| reason.contains("more memory") || reason.contains("ran longer than");
    // Planning errors end with the planner's guess at a function name, which the
    // PostgreSQL door's extra functions change ("Did you mean 'pg_get_expr'?").
    let reason_of = |reason: &str| {
        reason
            .split("\nDid you mean")
            .next()
            .unwrap_or("")
            .to_string()
    };
    let mut allowed = Vec::new();
    let mut differences = Vec::new();
    for answer in &answers {
        let line = answer["line"].as_u64().unwrap() as usize;
        let door = answer["door"].as_str().unwrap();
        let entry = statements.iter().find(|entry| entry.line == line).unwrap();
        let verdict = match (&http[&line], answer["ok"].as_bool().unwrap()) {
            (Ok(rows), true) => match answer["rows"].as_u64() == Some(*rows as u64) {
                true => Ok(()),
                false => Err(format!("{} rows, /api/sql {rows}", answer["rows"])),
            },
            (Err(reason), false) => {
                let error = answer["error"].as_str().unwrap();
                // Bounds race the machine: memory or time, whichever comes first.
                match error.contains(&reason_of(reason)) || (bound(reason) && bound(error)) {
                    true => Ok(()),
                    false => Err(format!("answered {error:?}, /api/sql {reason:?}")),
                }
            }
            (Ok(rows), false) => Err(format!(
                "refused ({}), /api/sql answered {rows} rows",
                answer["error"]
            )),
            (Err(reason), true) => Err(format!("answered, /api/sql refused: {reason}")),
        };
        if let Err(why) = verdict {
            match by_design(door, &entry.sql, &http[&line], answer) {
                Some(reason) => allowed.push(format!("line {line} via {door}: {why} ({reason})")),
                None => {
                    differences.push(format!("line {line} ({}) via {door}: {why}", entry.abuse))
                }
            }
        }
    }
    println!("differences by design:\n{}", allowed.join("\n"));
    assert!(
        allowed.len() <= 4,
        "more differences than the design explains: {allowed:#?}"
    );
    assert!(
        differences.is_empty(),
        "{} of {} answers differ from /api/sql:\n{}",
        differences.len(),
        answers.len(),
        differences.join("\n")
    );
    // Still alive and answering after the corpus went through every door.
    assert!(server.is_running());
    server.terminate();
}
