//! The HTTP API through the router, without a socket.

// The query crate's hand-checked warehouse, shared rather than copied.
#[path = "../../query/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::{first_doses, second_doses, write_vaccinations};
use serde_json::{json, Value};
use tower::ServiceExt;
use vaxlake_query::{QueryOptions, Warehouse};
use vaxlake_server::api::{router, ApiState};

async fn app_with(
    options: QueryOptions,
    state: impl FnOnce(ApiState) -> ApiState,
) -> (tempfile::TempDir, Router) {
    let root = tempfile::tempdir().unwrap();
    write_vaccinations(root.path(), &first_doses()).await;
    let warehouse = Warehouse::open(root.path().to_str().unwrap(), options)
        .await
        .unwrap();
    (root, router(Arc::new(state(ApiState::new(warehouse)))))
}

async fn app() -> (tempfile::TempDir, Router) {
    app_with(QueryOptions::default(), |state| state).await
}

fn post_sql(sql: &str, accept: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/api/sql").header(header::CONTENT_TYPE, "application/json");
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    request
        .body(Body::from(json!({ "sql": sql }).to_string()))
        .unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, content_type, body.to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_json() {
    let (_root, app) = app().await;
    let (status, content_type, body) = send(
        &app,
        post_sql(
            "SELECT antigen, count(*) AS doses FROM antigen_doses \
             WHERE antigen IN ('measles', 'influenza') GROUP BY antigen ORDER BY antigen",
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        json_of(&body),
        json!({
            "columns": ["antigen", "doses"],
            "rows": [["influenza", 1], ["measles", 2]],
            "truncated": false
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_csv() {
    let (_root, app) = app().await;
    let (status, content_type, body) = send(
        &app,
        post_sql(
            "SELECT antigen, dose_seq, administered_on FROM antigen_doses \
             WHERE antigen = 'measles' ORDER BY dose_seq",
            Some("text/csv"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        // The MMR at 2 months (2023-03-01) is below measles' minimum age of 9 months
        // (sql/reference/dose_rules.csv): it stays, unnumbered (null sorts last), and the
        // 12-month MMR is the first valid measles dose.
        "antigen,dose_seq,administered_on\r\nmeasles,1,2024-01-15\r\nmeasles,,2023-03-01\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_arrow_ipc() {
    let (_root, app) = app().await;
    let (status, content_type, body) = send(
        &app,
        post_sql(
            "SELECT person_key, administered_on FROM vaccinations ORDER BY event_key",
            Some("application/vnd.apache.arrow.stream"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/vnd.apache.arrow.stream");
    let reader = arrow::ipc::reader::StreamReader::try_new(body.as_slice(), None).unwrap();
    let schema = reader.schema();
    assert_eq!(
        schema.field(1).data_type(),
        &arrow::datatypes::DataType::Date32
    );
    let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(rows, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_a_query_is_a_400_with_a_reason() {
    let (root, app) = app().await;
    let before = common::files_under(root.path());
    for sql in [
        "DROP TABLE vaccinations",
        "INSERT INTO vaccinations SELECT * FROM vaccinations",
        "COPY (SELECT 1) TO '/tmp/vaxlake-api-test.csv'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT 1; SELECT 2",
    ] {
        let (status, content_type, body) = send(&app, post_sql(sql, None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}");
        assert_eq!(content_type, "application/json");
        let error = json_of(&body)["error"].as_str().unwrap().to_string();
        assert!(error.starts_with("refused: "), "{sql}: {error}");
    }
    assert_eq!(common::files_under(root.path()), before);

    // SQL errors are 400 too, with DataFusion's text.
    let (status, _, body) = send(&app, post_sql("SELECT * FROM nope", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json_of(&body)["error"].as_str().unwrap().contains("nope"));

    // A body that is not {"sql": ...}.
    let request = Request::post("/api/sql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("SELECT 1"))
        .unwrap();
    // Sent as a page could send it across origins (no JSON type), it is not even read.
    let (status, _, _) = send(
        &app,
        Request::post("/api/sql")
            .body(Body::from("SELECT 1"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("\"sql\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_refused() {
    let (_root, app) = app_with(QueryOptions::default(), |state| {
        state.with_max_body_bytes(64)
    })
    .await;
    let sql = format!("SELECT '{}'", "x".repeat(100));
    let (status, _, body) = send(&app, post_sql(&sql, None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("64 bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_busy_servers_answer_in_json() {
    let (_root, app) = app_with(
        QueryOptions::default().with_query_timeout(Duration::from_millis(1500)),
        |state| state.with_max_concurrent_queries(1),
    )
    .await;
    let slow = "SELECT sum(a.value * b.value) FROM generate_series(1, 1000000) AS a, \
                generate_series(1, 1000000) AS b";
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post_sql(slow, None)).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (status, _, body) = send(&app, post_sql("SELECT 1", None)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("too many"));

    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("cancelled"));

    // The permit is back.
    let (status, _, _) = send(&app, post_sql("SELECT 1", None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_answers_say_so() {
    let (_root, app) = app_with(QueryOptions::default().with_max_rows(2), |state| state).await;
    let response = app
        .clone()
        .oneshot(post_sql("SELECT * FROM vaccinations", Some("text/csv")))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-vaxlake-truncated"], "true");
    let (_, _, body) = send(&app, post_sql("SELECT * FROM vaccinations", None)).await;
    let answer = json_of(&body);
    assert_eq!(answer["truncated"], json!(true));
    assert_eq!(answer["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_table_versions() {
    let (root, app) = app_with(
        QueryOptions::default().with_refresh_interval(Duration::ZERO),
        |state| state,
    )
    .await;
    let health = || Request::get("/api/health").body(Body::empty()).unwrap();
    let (status, _, body) = send(&app, health()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body),
        json!({"status": "ok", "table_version": 0, "tables": {"vaccinations": 0}})
    );

    write_vaccinations(root.path(), &second_doses()).await;
    let (_, _, body) = send(&app, health()).await;
    assert_eq!(json_of(&body)["table_version"], json!(1));
    let (_, _, body) = send(&app, post_sql("SELECT count(*) FROM vaccinations", None)).await;
    assert_eq!(json_of(&body)["rows"], json!([[9]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_of_a_fresh_warehouse_has_no_version() {
    let root = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(root.path().to_str().unwrap(), QueryOptions::default())
        .await
        .unwrap();
    let app = router(Arc::new(ApiState::new(warehouse)));
    let (status, _, body) = send(
        &app,
        Request::get("/api/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body),
        json!({"status": "ok", "table_version": null, "tables": {}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_on_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(root.path().to_str().unwrap(), QueryOptions::default())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vaxlake_server::api::serve(
        warehouse,
        "127.0.0.1:0".parse().unwrap(),
        async move {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve did not stop")
        .unwrap()
        .unwrap();
}
