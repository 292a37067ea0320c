//! Helpers shared by the ingest crate's integration tests.
#![allow(dead_code)]

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
