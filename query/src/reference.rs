//! Reference tables compiled into the binary from `sql/reference/*.csv`, so that every
//! query (and every view) sees the same vaccine → antigen mapping the ingest validated with.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;

use crate::QueryError;

const VACCINES_CSV: &str = include_str!("../../sql/reference/vaccines.csv");
const COMMUNES_CSV: &str = include_str!("../../sql/reference/communes.csv");
pub(crate) const SERIES_CSV: &str = include_str!("../../sql/reference/vaccine_series.csv");
pub(crate) const INDICATORS_CSV: &str = include_str!("../../sql/reference/indicators.csv");

/// The in-memory reference tables, built once per [`crate::Warehouse`] and shared by
/// every session snapshot.
#[derive(Debug, Clone)]
pub(crate) struct ReferenceTables {
    pub tables: Vec<(&'static str, Arc<MemTable>)>,
}

impl ReferenceTables {
    pub fn load() -> Result<Self, QueryError> {
        let vaccines = read_rows(VACCINES_CSV, "sql/reference/vaccines.csv", 3)?;
        let communes = read_rows(COMMUNES_CSV, "sql/reference/communes.csv", 3)?;

        let vaccines_table = string_table(
            &["atc_code", "vaccine_name", "antigens"],
            (0..3)
                .map(|column| vaccines.iter().map(|row| row[column].clone()).collect())
                .collect(),
        )?;

        // One row per (vaccine, antigen): the join key of the antigen_doses view.
        let (atc_codes, antigens): (Vec<String>, Vec<String>) = vaccines
            .iter()
            .flat_map(|row| {
                row[2]
                    .split(';')
                    .map(str::trim)
                    .filter(|antigen| !antigen.is_empty())
                    .map(move |antigen| (row[0].clone(), antigen.to_string()))
            })
            .unzip();
        let vaccine_antigens = string_table(&["atc_code", "antigen"], vec![atc_codes, antigens])?;

        let populations = communes
            .iter()
            .enumerate()
            .map(|(index, row)| {
                row[2].trim().parse::<i64>().map_err(|_| {
                    QueryError::Format(format!(
                        "sql/reference/communes.csv:{}: population {:?} is not a whole number",
                        index + 2,
                        row[2]
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let communes_schema = Arc::new(Schema::new(vec![
            Field::new("commune", DataType::Utf8, false),
            Field::new("canton", DataType::Utf8, false),
            Field::new("population", DataType::Int64, false),
        ]));
        let communes_batch = RecordBatch::try_new(
            communes_schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    communes.iter().map(|r| &r[0]),
                )),
                Arc::new(StringArray::from_iter_values(
                    communes.iter().map(|r| &r[1]),
                )),
                Arc::new(Int64Array::from(populations)),
            ],
        )?;
        let communes_table = MemTable::try_new(communes_schema, vec![vec![communes_batch]])?;

        // Read by the coverage engine (RotaC's last dose) and listed for analysts.
        let series = read_rows(SERIES_CSV, "sql/reference/vaccine_series.csv", 3)?;
        let series_table = string_table(
            &["atc_code", "antigen", "series_doses"],
            (0..3)
                .map(|column| series.iter().map(|row| row[column].clone()).collect())
                .collect(),
        )?;
        let indicators = read_rows(INDICATORS_CSV, "sql/reference/indicators.csv", 10)?;
        let indicators_table = string_table(
            &[
                "name",
                "kind",
                "antigen",
                "dose",
                "age_months",
                "schedule_age_months",
                "min_age_years",
                "sex",
                "definition_version",
                "title",
            ],
            (0..10)
                .map(|column| indicators.iter().map(|row| row[column].clone()).collect())
                .collect(),
        )?;

        Ok(ReferenceTables {
            tables: vec![
                ("indicators", Arc::new(indicators_table)),
                ("vaccine_series", Arc::new(series_table)),
                ("vaccines", Arc::new(vaccines_table)),
                ("vaccine_antigens", Arc::new(vaccine_antigens)),
                ("communes", Arc::new(communes_table)),
            ],
        })
    }
}

/// Reads a headed CSV into rows of exactly `columns` trimmed fields.
pub(crate) fn read_rows(
    text: &str,
    name: &str,
    columns: usize,
) -> Result<Vec<Vec<String>>, QueryError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| QueryError::Format(format!("{name}: {error}")))?;
        if record.len() != columns {
            return Err(QueryError::Format(format!(
                "{name}:{}: expected {columns} fields, found {}",
                index + 2,
                record.len()
            )));
        }
        rows.push(
            record
                .iter()
                .map(|field| field.trim().to_string())
                .collect(),
        );
    }
    Ok(rows)
}

fn string_table(names: &[&str], columns: Vec<Vec<String>>) -> Result<MemTable, QueryError> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns
        .into_iter()
        .map(|values| Arc::new(StringArray::from(values)) as _)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn hexavalent_maps_to_six_antigens_and_communes_have_cantons() {
        let reference = ReferenceTables::load().unwrap();
        let ctx = SessionContext::new();
        for (name, table) in &reference.tables {
            ctx.register_table(*name, table.clone()).unwrap();
        }
        let batches = ctx
            .sql("SELECT count(*) FROM vaccine_antigens WHERE atc_code = 'J07CA09'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let count = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(count, 6);

        let batches = ctx
            .sql("SELECT count(*) FROM communes WHERE canton = '' OR population <= 0")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let bad = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(bad, 0);
    }
}
