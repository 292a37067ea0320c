//! The dashboards are compiled in from `../dashboards/dist` (built by
//! `scripts/build-dashboards`; see `src/api/pages.rs`). The folder must exist when this crate
//! compiles, or its path is never resolved and the pages stay missing even after a build;
//! and a rebuilt front end must rebuild this crate.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/dist");
    if let Err(error) = std::fs::create_dir_all(&dist) {
        println!("cargo:warning=cannot create {}: {error}", dist.display());
    }
    println!("cargo:rerun-if-changed=../dashboards/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
