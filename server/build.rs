//! Chooses the folder the dashboards are compiled in from (see `src/dashboards.rs`), writing
//! only under `OUT_DIR`: `../dashboards/dist` once `scripts/build-dashboards` has built it,
//! else an empty folder under `OUT_DIR`, so that the pages say how to build them. The choice
//! is the `Assets` item of `$OUT_DIR/dashboard_assets.rs`.
//!
//! A rebuilt front end rebuilds this crate: with `dist` present its files are watched; without
//! it the `dashboards` folder is, which changes when `dist` appears in it.

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dashboards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let dist = dashboards.join("dist");
    let folder = if dist.is_dir() {
        println!("cargo:rerun-if-changed=../dashboards/dist");
        dist
    } else {
        println!("cargo:rerun-if-changed=../dashboards");
        let empty = out_dir.join("dashboards-not-built");
        std::fs::create_dir_all(&empty)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", empty.display()));
        empty
    };
    println!("cargo:rerun-if-changed=build.rs");
    let folder = folder.to_str().unwrap_or_else(|| {
        panic!(
            "{} is not UTF-8: rust-embed needs it as text",
            folder.display()
        )
    });
    // `{:?}` writes a Rust string literal (quotes and backslashes escaped).
    let item = format!(
        "/// The built dashboards (the folder `build.rs` chose).\n\
         #[derive(rust_embed::RustEmbed)]\n\
         #[folder = {:?}]\n\
         struct Assets;\n",
        format!("{folder}/")
    );
    let target = out_dir.join("dashboard_assets.rs");
    std::fs::write(&target, item)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", target.display()));
}
