//! Helpers shared by the ingest crate's integration tests.
#![allow(dead_code)]

pub mod faulty;

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
