//! Helpers shared by the ingest crate's integration tests.
#![allow(dead_code)]

pub mod faulty;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

/// Every row of `t`, each rendered as one line `column=value,...` (all columns but
/// `skipped`: those that differ from run to run by design), sorted. Reading every row reads
/// every file the log names.
pub async fn rows_of(t: &DeltaTable, skipped: &[&str]) -> Vec<String> {
    let ctx = SessionContext::new();
    t.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", t.table_provider().await.unwrap())
        .unwrap();
    let batches = ctx
        .sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|error| panic!("the table does not read as a committed version: {error}"));
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<(String, arrow::array::ArrayRef)> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .filter(|(f, _)| !skipped.contains(&f.name().as_str()))
            .map(|(f, c)| {
                let c = arrow::compute::cast(c, &DataType::Utf8).unwrap();
                (f.name().clone(), c)
            })
            .collect();
        for i in 0..b.num_rows() {
            let line: Vec<String> = cols
                .iter()
                .map(|(n, c)| {
                    let s = c.as_string::<i32>();
                    if s.is_null(i) {
                        format!("{n}=∅")
                    } else {
                        format!("{n}={}", s.value(i))
                    }
                })
                .collect();
            out.push(line.join(","));
        }
    }
    out.sort();
    out
}

/// Every row of `table` in the warehouse at `root` (see [`rows_of`]), without the columns
/// that say when and by which run a row was written (they differ from run to run by
/// design); `None` when the table is not there.
pub async fn rows_at(root: &str, table: &str) -> Option<Vec<String>> {
    let url = url::Url::parse(&format!("{root}/{table}/")).unwrap();
    let delta = match DeltaTable::try_from_url(url).await {
        Ok(t) if t.version().is_some() => t,
        _ => return None,
    };
    Some(rows_of(&delta, &["ingested_at", "received_at", "run_id"]).await)
}

/// Rows of each table of a warehouse, by table name ([`rows_at`]).
pub type Snapshot = BTreeMap<&'static str, Option<Vec<String>>>;

/// [`rows_at`] of each of `tables` in the warehouse at `root`.
pub async fn snapshot(root: &str, tables: &[&'static str]) -> Snapshot {
    let mut all = BTreeMap::new();
    for table in tables {
        all.insert(*table, rows_at(root, table).await);
    }
    all
}

/// Fails naming the first table whose rows differ, with a few rows found only on each side
/// (whole tables are too long to read).
pub fn assert_same(got: &Snapshot, want: &Snapshot, what: &str) {
    for (table, want_rows) in want {
        let got_rows = &got[table];
        if got_rows == want_rows {
            continue;
        }
        let (g, w) = (
            got_rows.clone().unwrap_or_default(),
            want_rows.clone().unwrap_or_default(),
        );
        let only_got: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(3).collect();
        let only_want: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(3).collect();
        panic!(
            "{what}: {table} holds {} rows, expected {}; only here: {only_got:?}; only expected: {only_want:?}",
            g.len(),
            w.len()
        );
    }
}
