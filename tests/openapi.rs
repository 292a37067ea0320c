//! `GET /api/openapi.json`: an OpenAPI 3.1 description of every route, valid by
//! openapi-spec-validator (PyPI), readable without a token under `--auth`.

mod common;
use common::*;

/// The route table as `METHOD<TAB>PATH` lines, from the server crate itself.
fn route_lines() -> String {
    vaxlake_server::api::ROUTES
        .iter()
        .map(|route| format!("{}\t{}\n", route.method_name().to_uppercase(), route.path))
        .collect()
}

#[test]
fn the_api_description_is_valid_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let (token, entry) = {
        let out = run(&["token", "new", "--name", "ana", "--role", "analyst"]);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr[stderr.find("[[user]]").unwrap()..].to_string(),
        )
    };
    assert!(!token.is_empty());
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, entry).unwrap();
    let server = serve(&wh, &["--auth", auth.to_str().unwrap()]);
    // Open like /api/health: a client generator reads it before it has a token.
    let (status, body) = http_get(server.port, "/api/openapi.json").expect("an answer");
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // The coverage answer's schema is the answer type's: its rows, and the header it
    // flattens (where `suppression_threshold` is).
    let schemas = &doc["components"]["schemas"];
    let coverage = schemas["CoverageAnswer"].to_string();
    assert!(
        coverage.contains("rows") && coverage.contains("Header"),
        "{coverage}"
    );
    assert!(schemas["Header"]
        .to_string()
        .contains("suppression_threshold"));
    let Some(python) = cross_check_python("the_api_description_is_valid_and_complete") else {
        return;
    };
    let description = dir.path().join("openapi.json");
    std::fs::write(&description, &body).unwrap();
    let routes = dir.path().join("routes.tsv");
    std::fs::write(&routes, route_lines()).unwrap();
    run_cross_check(
        &python,
        "openapi_check.py",
        &[description.into_os_string(), routes.into_os_string()],
    );
}
