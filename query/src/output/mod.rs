//! The one output module: every answer leaves as JSON for the API, CSV for spreadsheets and
//! scripts, or an aligned text table for terminals (SQL answers also as Arrow IPC).
//!
//! Engine answers are typed ([`Tabular`]); JSON is their serde form, CSV and table print their
//! rows with a [`Provenance`] beside them, so a figure never travels without its source.

mod query_answer;
mod query_stream;
mod rows;

pub use query_answer::{QueryAnswer, RowsBody};
pub use query_stream::QueryStream;
pub use rows::{render, to_json, Provenance, Tabular};

/// How an answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}
