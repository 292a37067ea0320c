//! Reference tables compiled into the binary from `sql/reference/*.csv` (as the catalogue
//! parsed them), so that every query (and every view) sees the same vaccine → antigen
//! mapping the ingest validated with.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use vaxlake_catalog::reference::INDICATOR_COLUMNS;

use crate::QueryError;

/// The in-memory reference tables, built once per [`crate::Warehouse`] and shared by
/// every session snapshot.
#[derive(Debug, Clone)]
pub(crate) struct ReferenceTables {
    pub tables: Vec<(&'static str, Arc<MemTable>)>,
}

impl ReferenceTables {
    pub fn load() -> Result<Self, QueryError> {
        let reference = vaxlake_catalog::builtin()?;
        let vaccines = &reference.vaccines;

        let vaccines_table = string_table(
            &["atc_code", "vaccine_name", "antigens"],
            vec![
                vaccines.iter().map(|v| v.atc_code.clone()).collect(),
                vaccines.iter().map(|v| v.name.clone()).collect(),
                vaccines.iter().map(|v| v.antigens.join(";")).collect(),
            ],
        )?;

        // One row per (vaccine, antigen): the join key of the antigen_doses view.
        let (atc_codes, antigens): (Vec<String>, Vec<String>) = vaccines
            .iter()
            .flat_map(|v| {
                v.antigens
                    .iter()
                    .map(move |antigen| (v.atc_code.clone(), antigen.clone()))
            })
            .unzip();
        let vaccine_antigens = string_table(&["atc_code", "antigen"], vec![atc_codes, antigens])?;

        let communes = &reference.communes;
        let communes_schema = Arc::new(Schema::new(vec![
            Field::new("commune", DataType::Utf8, false),
            Field::new("canton", DataType::Utf8, false),
            Field::new("population", DataType::Int64, false),
        ]));
        let communes_batch = RecordBatch::try_new(
            communes_schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    communes.iter().map(|c| &c.name),
                )),
                Arc::new(StringArray::from_iter_values(
                    communes.iter().map(|c| &c.canton),
                )),
                Arc::new(Int64Array::from_iter_values(
                    communes.iter().map(|c| i64::from(c.population)),
                )),
            ],
        )?;
        let communes_table = MemTable::try_new(communes_schema, vec![vec![communes_batch]])?;

        // Read by the coverage engine (RotaC's last dose) and listed for analysts.
        let series = &reference.series;
        // `vaccine_name` is the product ('' for "product not recorded", the code's default).
        let series_table = string_table(
            &["atc_code", "vaccine_name", "antigen", "series_doses"],
            vec![
                series.iter().map(|s| s.atc_code.clone()).collect(),
                series
                    .iter()
                    .map(|s| s.vaccine_name.clone().unwrap_or_default())
                    .collect(),
                series.iter().map(|s| s.antigen.clone()).collect(),
                series.iter().map(|s| s.doses.to_string()).collect(),
            ],
        )?;
        // The dose rules and schedules as written ('' for an empty field), so analysts can
        // read why a dose of antigen_doses is invalid.
        let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
        let rules = &reference.dose_rules;
        let dose_rules_table = string_table(
            &[
                "antigen",
                "dose",
                "min_age_months",
                "max_age_months",
                "min_interval_months",
                "min_interval_days",
                "source",
            ],
            vec![
                rules.iter().map(|r| r.antigen.clone()).collect(),
                rules.iter().map(|r| r.dose.to_string()).collect(),
                rules.iter().map(|r| text(r.min_age_months)).collect(),
                rules.iter().map(|r| text(r.max_age_months)).collect(),
                rules.iter().map(|r| text(r.min_interval_months)).collect(),
                rules.iter().map(|r| text(r.min_interval_days)).collect(),
                rules.iter().map(|r| r.source.clone()).collect(),
            ],
        )?;
        let schedules = &reference.schedules;
        let schedules_table = string_table(
            &[
                "antigen",
                "schedule",
                "start_before_months",
                "doses",
                "first_to_last_months",
                "source",
            ],
            vec![
                schedules.iter().map(|s| s.antigen.clone()).collect(),
                schedules.iter().map(|s| s.name.clone()).collect(),
                schedules
                    .iter()
                    .map(|s| text(s.start_before_months))
                    .collect(),
                schedules.iter().map(|s| s.doses.to_string()).collect(),
                schedules
                    .iter()
                    .map(|s| text(s.first_to_last_months))
                    .collect(),
                schedules.iter().map(|s| s.source.clone()).collect(),
            ],
        )?;
        let lines: Vec<[String; 10]> = reference.indicators.iter().map(|i| i.fields()).collect();
        let indicators_table = string_table(
            &INDICATOR_COLUMNS,
            (0..INDICATOR_COLUMNS.len())
                .map(|column| lines.iter().map(|line| line[column].clone()).collect())
                .collect(),
        )?;

        Ok(ReferenceTables {
            tables: vec![
                ("indicators", Arc::new(indicators_table)),
                ("vaccine_series", Arc::new(series_table)),
                ("dose_rules", Arc::new(dose_rules_table)),
                ("schedules", Arc::new(schedules_table)),
                ("vaccines", Arc::new(vaccines_table)),
                ("vaccine_antigens", Arc::new(vaccine_antigens)),
                ("communes", Arc::new(communes_table)),
            ],
        })
    }
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
