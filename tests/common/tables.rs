//! Whole tables as rows, through `vaxlake sql`, to compare a warehouse with the one a clean
//! run leaves (the crash and disk-full tests).

use std::collections::BTreeMap;

use super::{run, WarehouseLocation};

/// The tables (and the `antigen_doses` view, which the dose facts feed) an analyst reads.
pub const ANALYST_TABLES: &[&str] = &[
    "vaccinations",
    "antigen_doses",
    "persons",
    "cases",
    "population",
    "quarantine",
];

/// Columns saying when or by which run a row was written: they differ between two runs by
/// design.
const CLOCK_COLUMNS: &[&str] = &["ingested_at", "received_at", "run_id"];

/// Every row of `table` as a CSV line without the clock columns, sorted; `None` when the
/// warehouse has no such table (the query fails).
pub fn rows(warehouse: &(impl WarehouseLocation + ?Sized), table: &str) -> Option<Vec<String>> {
    let out = run(&[
        "sql",
        "--warehouse",
        &warehouse.location(),
        "--format",
        "csv",
        &format!("SELECT * FROM {table}"),
    ]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let kept: Vec<usize> = (0..header.len())
        .filter(|i| !CLOCK_COLUMNS.contains(&&header[*i]))
        .collect();
    let mut lines: Vec<String> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            kept.iter()
                .map(|i| format!("{}={}", &header[*i], &r[*i]))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    lines.sort();
    Some(lines)
}

/// [`rows`] of every [`ANALYST_TABLES`] table.
pub fn snapshot(
    warehouse: &(impl WarehouseLocation + ?Sized),
) -> BTreeMap<&'static str, Option<Vec<String>>> {
    ANALYST_TABLES
        .iter()
        .map(|t| (*t, rows(warehouse, t)))
        .collect()
}

/// Fails naming the first table whose rows differ, with a few rows found only on each side.
pub fn assert_same(
    got: &BTreeMap<&'static str, Option<Vec<String>>>,
    want: &BTreeMap<&'static str, Option<Vec<String>>>,
    what: &str,
) {
    for (table, w) in want {
        let g = &got[table];
        if g == w {
            continue;
        }
        let (g, w) = (g.clone().unwrap_or_default(), w.clone().unwrap_or_default());
        let only_got: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(2).collect();
        let only_want: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(2).collect();
        panic!(
            "{what}: {table} holds {} rows, expected {}; only here: {only_got:?}; only expected: {only_want:?}",
            g.len(),
            w.len()
        );
    }
}

/// Copies the directory tree `from` to `to` (a warehouse, to run two histories from one
/// start).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}
