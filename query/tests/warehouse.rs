//! The warehouse over a real Delta table: registration, the antigen_doses view, the
//! sandbox, limits and refresh.

mod common;

use std::time::{Duration, Instant};

use common::{first_doses, second_doses, write_vaccinations, PERSON_A, PERSON_B};
use serde_json::{json, Value};
use vaxlake_query::{QueryError, QueryOptions, Warehouse};

fn rows(answer: &vaxlake_query::QueryAnswer) -> Vec<Value> {
    match answer.to_json().unwrap()["rows"].take() {
        Value::Array(rows) => rows,
        other => panic!("rows is not an array: {other}"),
    }
}

async fn query(warehouse: &Warehouse, sql: &str) -> Vec<Value> {
    let answer = warehouse
        .sql(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    rows(&answer)
}

async fn warehouse_with_first_doses(options: QueryOptions) -> (tempfile::TempDir, Warehouse) {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(write_vaccinations(root.path(), &first_doses()).await, 0);
    let warehouse = Warehouse::open(root.path().to_str().unwrap(), options)
        .await
        .unwrap();
    (root, warehouse)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_the_delta_table_and_its_version() {
    let (_root, warehouse) = warehouse_with_first_doses(QueryOptions::default()).await;
    assert_eq!(warehouse.versions().get("vaccinations"), Some(&0));
    assert_eq!(warehouse.versions().len(), 1, "{:?}", warehouse.versions());
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([8])]
    );
    // Columns keep their types: dates as ISO dates, the partition column as a number.
    assert_eq!(
        query(
            &warehouse,
            "SELECT administered_on, birth_decade, age_months_at_dose FROM vaccinations \
             WHERE event_key LIKE '%6536' ORDER BY administered_on"
        )
        .await,
        vec![json!(["2024-01-15", 2020, 12])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_information_schema_are_queries_too() {
    let (_root, warehouse) = warehouse_with_first_doses(QueryOptions::default()).await;
    let plan = warehouse
        .sql("EXPLAIN SELECT antigen, count(*) FROM antigen_doses GROUP BY antigen")
        .await
        .unwrap();
    assert!(plan.num_rows() > 0);
    assert!(plan.to_table().unwrap().contains("physical_plan"));
    let tables = query(
        &warehouse,
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .await;
    assert_eq!(
        tables,
        [
            "antigen_doses",
            "communes",
            "dose_rules",
            "indicators",
            // `persons` is a table written by ingest (December 2026), not a view: this
            // warehouse holds vaccinations only.
            "schedules",
            "vaccinations",
            "vaccine_antigens",
            "vaccine_series",
            "vaccines"
        ]
        .map(|name| json!([name]))
        .to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn antigen_doses_counts_same_day_doses_once_and_skips_not_done() {
    let (_root, warehouse) = warehouse_with_first_doses(QueryOptions::default()).await;

    // A: 6 hexavalent antigens × 2 days + 3 MMR antigens × 2 days; B: 6 + influenza.
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM antigen_doses").await,
        vec![json!([25])]
    );
    assert_eq!(
        query(
            &warehouse,
            "SELECT antigen, count(*) FROM antigen_doses GROUP BY antigen ORDER BY antigen"
        )
        .await,
        vec![
            json!(["diphtheria", 3]),
            json!(["hepatitis_b", 3]),
            json!(["hib", 3]),
            json!(["influenza", 1]),
            json!(["measles", 2]),
            json!(["mumps", 2]),
            json!(["pertussis", 3]),
            json!(["polio", 3]),
            json!(["rubella", 2]),
            json!(["tetanus", 3]),
        ]
    );
    // The MMR at 2 months is below measles' minimum age of 9 months (dose_rules.csv): it
    // stays, unnumbered, and the 12-month MMR is the first valid measles dose.
    let expected_a = [
        ("diphtheria", Some(1), "2023-03-01", 2),
        ("diphtheria", Some(2), "2023-05-01", 4),
        ("measles", None, "2023-03-01", 2),
        ("measles", Some(1), "2024-01-15", 12),
        ("polio", Some(1), "2023-03-01", 2),
        ("polio", Some(2), "2023-05-01", 4),
    ];
    assert_eq!(
        query(
            &warehouse,
            &format!(
                "SELECT antigen, dose_seq, administered_on, age_months_at_dose FROM antigen_doses \
                 WHERE person_key = '{PERSON_A}' AND antigen IN ('diphtheria', 'measles', 'polio') \
                 ORDER BY antigen, administered_on"
            )
        )
        .await,
        expected_a
            .iter()
            .map(|(antigen, seq, day, age)| json!([antigen, seq, day, age]))
            .collect::<Vec<_>>()
    );
    // Nothing from the not-done dose of 2023-07-01.
    assert_eq!(
        query(
            &warehouse,
            "SELECT count(*) FROM antigen_doses WHERE administered_on = DATE '2023-07-01'"
        )
        .await,
        vec![json!([0])]
    );
    // The person's attributes come along.
    assert_eq!(
        query(
            &warehouse,
            &format!(
                "SELECT DISTINCT birth_month, sex, commune, canton FROM antigen_doses \
                 WHERE person_key = '{PERSON_B}'"
            )
        )
        .await,
        vec![json!(["2022-06-01", "male", "Wiltz", "Wiltz"])]
    );
    // Reference tables are there too.
    assert_eq!(
        query(
            &warehouse,
            "SELECT antigen FROM vaccine_antigens WHERE atc_code = 'J07BD52' ORDER BY antigen"
        )
        .await,
        vec![json!(["measles"]), json!(["mumps"]), json!(["rubella"])]
    );
    assert_eq!(
        query(&warehouse, "SELECT count(DISTINCT canton) FROM communes").await,
        vec![json!([12])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sql_is_refused_and_writes_nothing() {
    let (root, warehouse) = warehouse_with_first_doses(QueryOptions::default()).await;
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().display().to_string();
    let before = common::files_under(root.path());

    let hostile = [
        "CREATE TABLE t (a INT)".to_string(),
        "CREATE TABLE t AS SELECT * FROM vaccinations".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{outside_path}/x'"),
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/tmp/x'".to_string(),
        "INSERT INTO vaccinations SELECT * FROM vaccinations".to_string(),
        "INSERT INTO vaccinations VALUES ('x')".to_string(),
        "DELETE FROM vaccinations".to_string(),
        "UPDATE vaccinations SET sex = 'x'".to_string(),
        format!("COPY (SELECT 1) TO '{outside_path}/x.csv'"),
        format!("COPY vaccinations TO '{outside_path}/x.parquet'"),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "DROP TABLE vaccinations".to_string(),
        "DROP VIEW antigen_doses".to_string(),
        "SELECT 1; SELECT 2".to_string(),
        "SELECT 1; DROP TABLE vaccinations".to_string(),
        "SELECT * FROM '/etc/passwd'".to_string(),
        "SELECT * FROM 'file:///tmp/x.parquet'".to_string(),
        "SELECT 1 INTO copy_of_it".to_string(),
    ];
    for sql in &hostile {
        match warehouse.sql(sql).await {
            Err(QueryError::Refused(reason)) => {
                assert!(reason.len() > 20, "{sql}: reason too short: {reason}")
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    assert_eq!(
        common::files_under(root.path()),
        before,
        "the warehouse changed"
    );
    assert!(
        common::files_under(outside.path()).is_empty(),
        "files appeared outside the warehouse"
    );
    assert_eq!(warehouse.versions().get("vaccinations"), Some(&0));
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([8])]
    );
    // Still there, still answering the same.
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM antigen_doses").await,
        vec![json!([25])]
    );
    // Unknown names and bad syntax are SQL errors, not refusals.
    assert!(matches!(
        warehouse.sql("SELECT * FROM nope").await,
        Err(QueryError::Sql(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_cap_sets_truncated() {
    let (_root, warehouse) =
        warehouse_with_first_doses(QueryOptions::default().with_max_rows(3)).await;
    let answer = warehouse
        .sql("SELECT * FROM antigen_doses ORDER BY antigen")
        .await
        .unwrap();
    assert_eq!(answer.num_rows(), 3);
    assert!(answer.truncated);
    assert_eq!(answer.to_json().unwrap()["truncated"], json!(true));

    let exactly = warehouse
        .sql("SELECT * FROM vaccinations LIMIT 3")
        .await
        .unwrap();
    assert_eq!(exactly.num_rows(), 3);
    assert!(!exactly.truncated);

    let fewer = warehouse
        .sql("SELECT * FROM vaccinations LIMIT 2")
        .await
        .unwrap();
    assert_eq!(fewer.num_rows(), 2);
    assert!(!fewer.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_queries_time_out_and_are_cancelled() {
    let (_root, warehouse) = warehouse_with_first_doses(
        QueryOptions::default().with_query_timeout(Duration::from_millis(300)),
    )
    .await;
    let started = Instant::now();
    let result = warehouse
        .sql(
            "SELECT sum(a.value * b.value) FROM generate_series(1, 1000000) AS a, \
             generate_series(1, 1000000) AS b",
        )
        .await;
    assert!(
        matches!(result, Err(QueryError::Timeout(_))),
        "expected a timeout, got {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancelled only after {:?}",
        started.elapsed()
    );
    // The warehouse still answers afterwards.
    assert_eq!(query(&warehouse, "SELECT 1").await, vec![json!([1])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded() {
    let (_root, warehouse) =
        warehouse_with_first_doses(QueryOptions::default().with_memory_limit(1 << 20)).await;
    // array_agg cannot spill: 10 million values need far more than 1 MiB.
    let result = warehouse
        .sql("SELECT array_agg(value) FROM generate_series(1, 10000000)")
        .await;
    assert!(
        matches!(result, Err(QueryError::ResourcesExhausted(_))),
        "expected resources exhausted, got {result:?}"
    );
}

/// One query holds at most its own share of the warehouse's pool (half by default): about
/// 33 MB of kept text passes a 128 MiB pool whole, but not an 8 MiB share of it (the
/// aggregate may run in two partitions of half the text each, so the share is well below half).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_stops_at_its_own_share_of_the_pool() {
    const KEEPS_33_MB: &str = "SELECT cardinality(array_agg(concat(CAST(value AS VARCHAR), \
        repeat('x', 200)))) AS n FROM generate_series(100000, 249999)";
    let pool = 128 << 20;
    let (_root, whole) = warehouse_with_first_doses(
        QueryOptions::default()
            .with_memory_limit(pool)
            .with_query_memory_limit(pool),
    )
    .await;
    assert_eq!(query(&whole, KEEPS_33_MB).await, vec![json!([150000])]);

    let (_root, shared) = warehouse_with_first_doses(
        QueryOptions::default()
            .with_memory_limit(pool)
            .with_query_memory_limit(8 << 20),
    )
    .await;
    match shared.sql(KEEPS_33_MB).await {
        Err(QueryError::ResourcesExhausted(reason)) => {
            assert!(reason.contains("memory limit of one query"), "{reason}")
        }
        other => panic!("expected the query's own limit, got {other:?}"),
    }
    // Its memory went back: a small query runs at once.
    assert_eq!(
        query(&shared, "SELECT count(*) AS n FROM generate_series(1, 10)").await,
        vec![json!([10])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_delta_version_is_picked_up() {
    let (root, warehouse) =
        warehouse_with_first_doses(QueryOptions::default().with_refresh_interval(Duration::ZERO))
            .await;
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([8])]
    );

    assert_eq!(write_vaccinations(root.path(), &second_doses()).await, 1);

    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([9])]
    );
    assert_eq!(warehouse.versions().get("vaccinations"), Some(&1));
    // The view follows: B's second hexavalent dose, dated before the influenza dose.
    assert_eq!(
        query(
            &warehouse,
            &format!(
                "SELECT dose_seq, administered_on FROM antigen_doses \
                 WHERE person_key = '{PERSON_B}' AND antigen = 'hib' ORDER BY dose_seq"
            )
        )
        .await,
        vec![json!([1, "2022-08-01"]), json!([2, "2022-10-01"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_waits_for_its_interval() {
    let (root, warehouse) = warehouse_with_first_doses(
        QueryOptions::default().with_refresh_interval(Duration::from_secs(3600)),
    )
    .await;
    write_vaccinations(root.path(), &second_doses()).await;
    // Within the interval the session keeps its versions ...
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([8])]
    );
    // ... until asked explicitly.
    assert!(warehouse.refresh().await.unwrap());
    assert!(!warehouse.refresh().await.unwrap());
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([9])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_warehouse_opens_and_tables_appear_later() {
    let root = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(
        root.path().to_str().unwrap(),
        QueryOptions::default().with_refresh_interval(Duration::ZERO),
    )
    .await
    .unwrap();
    assert!(warehouse.versions().is_empty());
    assert_eq!(
        query(
            &warehouse,
            "SELECT count(*) FROM vaccines WHERE atc_code = 'J07CA09'"
        )
        .await,
        vec![json!([1])]
    );
    match warehouse.sql("SELECT * FROM antigen_doses").await {
        Err(QueryError::Sql(message)) => assert!(message.contains("antigen_doses"), "{message}"),
        other => panic!("expected an unknown table, got {other:?}"),
    }
    assert!(
        common::files_under(root.path()).is_empty(),
        "opening wrote to the warehouse"
    );

    write_vaccinations(root.path(), &first_doses()).await;
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM antigen_doses").await,
        vec![json!([25])]
    );

    // A root that does not exist at all opens empty, and stays uncreated.
    let missing = root.path().join("not-yet");
    let empty = Warehouse::open(missing.to_str().unwrap(), QueryOptions::default())
        .await
        .unwrap();
    assert!(empty.versions().is_empty());
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_urls_open_like_paths() {
    let (root, _) = warehouse_with_first_doses(QueryOptions::default()).await;
    let url = url::Url::from_directory_path(root.path()).unwrap();
    let warehouse = Warehouse::open(url.as_str(), QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(
        query(&warehouse, "SELECT count(*) FROM vaccinations").await,
        vec![json!([8])]
    );
}
