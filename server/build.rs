//! Rebuilds this crate when the front end is rebuilt, so that a release binary embeds the
//! current `dashboards/dist` (see `src/dashboards.rs`). A missing folder counts as changed on
//! every build, so the first `scripts/build-dashboards` is always picked up. Nothing is
//! written outside `OUT_DIR`.
fn main() {
    println!("cargo:rerun-if-changed=../dashboards/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
