//! The ministry's dashboards in a real browser: headless Chromium (Debian's `chromium`) driven
//! by `tests/dashboards/run.mjs` (playwright-core from `dashboards/web/node_modules`) against
//! `vaxlake serve` on a small generated warehouse, once open (loopback, no `--auth`) and once
//! with `--auth` (sign-in through the form as the ministry; a researcher is refused). The
//! script checks that every figure shown equals the API's answer, that filters change them,
//! that suppressed cells show no number, and that nothing leaves the server; see its header.
//! Screenshots go to `target/screenshots/{open,signed-in}/`.
//!
//! Needs `/usr/bin/chromium` (or `VAXLAKE_CHROMIUM`), `node`, and `scripts/build-dashboards`
//! run before the binary was compiled. Without them the test says SKIPPED loudly, unless
//! `VAXLAKE_REQUIRE_BROWSER=1`, which makes it fail instead.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("VAXLAKE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether everything the browser test needs is here; otherwise SKIPPED (or, with
/// `VAXLAKE_REQUIRE_BROWSER=1`, a failure naming what is missing and how to get it).
fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!(
            "{} (apt-get install chromium, or set VAXLAKE_CHROMIUM)",
            chromium().display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node (Node.js 20 or later)".to_string());
    }
    if !root().join("dashboards/dist/index.html").exists() {
        missing.push("dashboards/dist (run scripts/build-dashboards, then rebuild)".to_string());
    }
    if !root()
        .join("dashboards/web/node_modules/playwright-core/package.json")
        .exists()
    {
        missing.push("dashboards/web/node_modules (run scripts/build-dashboards)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("VAXLAKE_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "VAXLAKE_REQUIRE_BROWSER=1 but the browser test cannot run; missing: {}",
        missing.join("; ")
    );
    eprintln!(
        "\n*** dashboards_browser SKIPPED: missing {} ***\n",
        missing.join("; ")
    );
    false
}

/// Runs the browser script with `args`, failing the test with its whole output when it fails.
fn run_script(args: &[&str]) {
    let output = Command::new("node")
        .arg(root().join("tests/dashboards/run.mjs"))
        .args(["--chromium", chromium().to_str().unwrap()])
        .args(args)
        .current_dir(root().join("dashboards/web"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("run.mjs {args:?}\n{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "the dashboards failed in the browser ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// A token of `role` and its `[[user]]` entry (from `vaxlake token new`).
fn token(name: &str, role: &str, project: Option<&str>) -> (String, String) {
    let mut args = vec!["token", "new", "--name", name, "--role", role];
    if let Some(project) = project {
        args.extend(["--project", project]);
    }
    let (stdout, stderr) = common::ok(&args);
    let entry: String = stderr
        .lines()
        .skip_while(|line| line.trim() != "[[user]]")
        .take_while(|line| line.trim() == "[[user]]" || line.contains(" = "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(entry.contains("token_blake3"), "no auth entry in: {stderr}");
    (stdout.trim().to_string(), entry)
}

/// Fails early, with the fix, when the binary was compiled before `dashboards/dist` existed.
fn assert_serves_dashboards(port: u16) {
    let (status, body) = common::http_get(port, "/dashboards/index.json").expect("server answers");
    assert_eq!(
        status, 200,
        "vaxlake does not serve the built dashboards ({body}); run scripts/build-dashboards \
         before compiling (a binary built before dashboards/dist existed never finds it)"
    );
}

fn screenshots(name: &str) -> PathBuf {
    let dir = root().join("target/screenshots").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dashboards_in_headless_chromium() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A few thousand persons: enough for published national figures, small enough for many
    // suppressed commune cells.
    let wh = common::generated_warehouse(
        dir.path(),
        4000,
        11,
        &["fhir", "population", "cases", "csv"],
    );

    {
        let log = dir.path().join("serve-open.log");
        let server = common::serve_logged(&wh, &[], Some(&log));
        assert_serves_dashboards(server.port);
        let base = format!("http://127.0.0.1:{}", server.port);
        let out = screenshots("open");
        run_script(&["--base", &base, "--out", out.to_str().unwrap()]);
    }

    let (ministry, ministry_entry) = token("minister", "ministry", None);
    let (researcher, researcher_entry) = token("rita", "researcher", Some("P-2026-001"));
    let auth = dir.path().join("users.toml");
    std::fs::write(&auth, format!("{ministry_entry}{researcher_entry}")).unwrap();
    let log = dir.path().join("serve-auth.log");
    let server = common::serve_logged(&wh, &["--auth", auth.to_str().unwrap()], Some(&log));
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = screenshots("signed-in");
    run_script(&[
        "--base",
        &base,
        "--token",
        &ministry,
        "--role",
        "ministry",
        "--researcher-token",
        &researcher,
        "--out",
        out.to_str().unwrap(),
    ]);
}
