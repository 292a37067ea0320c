//! Runs every sqllogictest file under `sql/` (the `sqllogictest` crate, the format DataFusion
//! pins its own SQL with): `sql/views/*.slt` pin the views, `sql/indicators/*.slt` each
//! indicator's written dose-selection rule as reference SQL over those views (the coverage
//! engine's own selection, in Rust, is checked by the end-to-end coverage tests), on
//! hand-made rows with hand-checked answers.
//!
//! One test loops over the files rather than a `harness = false` target with one trial per
//! file: the session needs this crate's private wiring (reference tables, views, their
//! functions), which a separate test target could only reach if it were made public, and the
//! crate's existing test binary is linked anyway. A failure names the file and line.
//!
//! Each file gets a fresh session holding the reference tables of `sql/reference/`; the
//! views of `sql/views/` are created as soon as the tables they read exist (so a file creates
//! `vaccinations`, then queries `antigen_doses`). Values print as the DataFusion
//! sqllogictests print them: `NULL`, `(empty)` for an empty string.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::reference::ReferenceTables;
use crate::views::create_views;
use crate::QueryError;

/// A DataFusion session set up as the warehouse sets up its own, minus the Delta tables: the
/// files bring their own rows.
struct LogicTestSession {
    ctx: SessionContext,
}

impl LogicTestSession {
    fn new() -> Result<Self, QueryError> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        for (name, table) in ReferenceTables::load()?.tables {
            ctx.register_table(name, table)?;
        }
        Ok(LogicTestSession { ctx })
    }
}

#[async_trait::async_trait]
impl AsyncDB for LogicTestSession {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        // Idempotent: a view already there is kept.
        create_views(&self.ctx)
            .await
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        let frame = self.ctx.sql(sql).await?;
        let types = frame
            .schema()
            .fields()
            .iter()
            .map(|field| column_type(field.data_type()))
            .collect();
        let batches = frame.collect().await?;
        Ok(DBOutput::Rows {
            types,
            rows: text_rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "DataFusion"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(_, _)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column, &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|formatter| match formatter.value(row).to_string() {
                        empty if empty.is_empty() => "(empty)".to_string(),
                        cell => cell,
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

fn sql_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql")
}

/// Every `.slt` file under `directory`, in path order.
fn logic_test_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "slt") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let files = logic_test_files(&sql_directory());
    assert!(!files.is_empty(), "no .slt files under sql/");
    let mut failures = Vec::new();
    for path in &files {
        let mut runner = sqllogictest::Runner::new(|| async {
            LogicTestSession::new().map_err(|error| DataFusionError::External(Box::new(error)))
        });
        if let Err(error) = runner.run_file_async(path).await {
            failures.push(format!("{}\n{error}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every indicator of `sql/reference/indicators.csv` has its dose selection pinned: its name
/// appears in an expected row of a file of `sql/indicators/`.
#[tokio::test]
async fn every_indicator_is_pinned() {
    let pinned: String = logic_test_files(&sql_directory().join("indicators"))
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    let mut session = LogicTestSession::new().unwrap();
    let DBOutput::Rows { rows, .. } = session.run("SELECT name FROM indicators").await.unwrap()
    else {
        panic!("the indicators table is not a query result");
    };
    assert!(!rows.is_empty());
    for row in rows {
        let name = &row[0];
        assert!(
            pinned
                .lines()
                .any(|line| line.starts_with(&format!("{name} "))),
            "{name} (sql/reference/indicators.csv) has no expected row in sql/indicators/*.slt"
        );
    }
}
