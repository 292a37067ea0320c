//! Typed engine answers as JSON, CSV and aligned tables.
//!
//! JSON goes through [`serde_json::Value`], whose objects (serde_json without
//! `preserve_order`) keep their keys in name order: the order the API has always sent,
//! whatever order an answer's fields are declared in. CSV and table show an answer's rows,
//! columns in reading order, after `# key: value` provenance lines (CSV) or above a
//! provenance footer (table).

use serde::Serialize;
use serde_json::Value;

use super::Format;
use crate::answer_cache::TableVersions;
use crate::QueryError;

/// An answer the output module can print: its rows for CSV and table, and where they come
/// from.
pub trait Tabular: Serialize {
    /// One printed row; its fields are the columns.
    type Row: Serialize;

    /// The rows CSV and table show, a broken-down answer's total last (marked `total` in its
    /// breakdown column).
    fn rows(&self) -> Vec<Self::Row>;

    /// Where the figures come from, printed beside the rows.
    fn provenance(&self) -> Provenance;
}

/// What a figure was computed from and by. CSV prints each known field as a `# key: value`
/// line before the header; the table prints them under the rows; JSON answers carry the same
/// fields themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    /// The population estimate the denominators come from.
    pub population_source: Option<String>,
    /// The newest dose date in the warehouse.
    pub data_until: Option<String>,
    /// The indicator definition's version (`name=version, ...` for several indicators).
    pub definition_version: Option<String>,
    /// The Delta version of every table read.
    pub table_versions: Option<TableVersions>,
}

impl Provenance {
    /// `(key, value)` of every known field, in a fixed order.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let mut lines = Vec::new();
        if let Some(source) = &self.population_source {
            lines.push(("population_source", source.clone()));
        }
        if let Some(until) = &self.data_until {
            lines.push(("data_until", until.clone()));
        }
        if let Some(version) = &self.definition_version {
            lines.push(("definition_version", version.clone()));
        }
        if let Some(versions) = &self.table_versions {
            let text = versions
                .iter()
                .map(|(table, version)| format!("{table}={version}"))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(("table_versions", text));
        }
        lines
    }
}

/// Columns in reading order; anything else a row carries follows in name order.
const ORDER: &[&str] = &[
    "estimate",
    "month",
    "indicator",
    "cohort",
    "cohort_last",
    "season",
    "by",
    "group",
    "age_band",
    "commune",
    "canton",
    "sex",
    "age_months",
    "started",
    "completed",
    "dropped",
    "dropout",
    "vaccinated",
    "median_age_months",
    "timely",
    "timely_share",
    "numerator",
    "denominator",
    "coverage",
    "ve",
    "ci_low",
    "ci_high",
    "band_low",
    "band_high",
    "irr",
    "cases_vaccinated",
    "cases_unvaccinated",
    "person_days_vaccinated",
    "person_days_unvaccinated",
    "person_years_vaccinated",
    "rate_vaccinated",
    "person_years_unvaccinated",
    "rate_unvaccinated",
    "suppressed",
    "flags",
    "reason",
];

/// An answer as the API sends it: a JSON value whose objects list their keys in name order.
pub fn to_json<A: Serialize + ?Sized>(answer: &A) -> Result<Value, QueryError> {
    serde_json::to_value(answer).map_err(|error| QueryError::Format(error.to_string()))
}

/// Prints `answer` as `format`: pretty JSON, or its rows as CSV or an aligned table with its
/// provenance.
pub fn render<A: Tabular>(answer: &A, format: Format) -> Result<String, QueryError> {
    let failed = |error: serde_json::Error| QueryError::Format(error.to_string());
    if format == Format::Json {
        return serde_json::to_string_pretty(&to_json(answer)?)
            .map(|text| text + "\n")
            .map_err(failed);
    }
    let rows: Vec<Value> = answer
        .rows()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let mut columns: Vec<String> = Vec::new();
    for name in ORDER {
        if rows.iter().any(|row| row.get(*name).is_some()) {
            columns.push(name.to_string());
        }
    }
    for row in &rows {
        for name in row.as_object().into_iter().flat_map(|map| map.keys()) {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| text(&row[column.as_str()]))
                .collect()
        })
        .collect();
    let provenance = answer.provenance().lines();
    match format {
        Format::Csv => {
            let mut out = String::new();
            for (key, value) in &provenance {
                out.push_str(&format!("# {key}: {}\n", one_line(value)));
            }
            out.push_str(&csv(&columns, &cells)?);
            Ok(out)
        }
        _ => {
            let mut out = aligned(&columns, &cells);
            if !provenance.is_empty() {
                out.push('\n');
                for (key, value) in &provenance {
                    out.push_str(&format!("{key}: {}\n", one_line(value)));
                }
            }
            Ok(out)
        }
    }
}

/// A provenance value kept on its comment line.
fn one_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

fn csv(columns: &[String], rows: &[Vec<String>]) -> Result<String, QueryError> {
    let failed = |error: csv::Error| QueryError::Format(error.to_string());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(columns).map_err(failed)?;
    for row in rows {
        writer.write_record(row).map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| QueryError::Format(error.to_string()))?;
    String::from_utf8(bytes).map_err(|error| QueryError::Format(error.to_string()))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

fn aligned(columns: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, name)| {
            rows.iter()
                .map(|row| row[index].chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(columns);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Rows given as JSON, as a typed answer would serialize them.
    #[derive(Serialize)]
    struct Fixture {
        zebra: u32,
        apple: u32,
        #[serde(skip)]
        rows: Vec<Value>,
        #[serde(skip)]
        provenance: Provenance,
    }

    impl Tabular for Fixture {
        type Row = Value;
        fn rows(&self) -> Vec<Value> {
            self.rows.clone()
        }
        fn provenance(&self) -> Provenance {
            self.provenance.clone()
        }
    }

    fn fixture() -> Fixture {
        Fixture {
            zebra: 1,
            apple: 2,
            rows: vec![
                json!({"cohort": 2023, "sex": "female", "numerator": 9, "denominator": 10, "suppressed": false, "flags": []}),
                json!({"cohort": 2023, "sex": "male", "numerator": null, "denominator": null, "suppressed": true, "flags": []}),
                json!({"cohort": 2023, "sex": "total", "numerator": 12, "denominator": 20, "suppressed": false, "flags": ["a", "b"]}),
            ],
            provenance: Provenance {
                population_source: Some("population, reference_year 2024".into()),
                data_until: Some("2025-03-31".into()),
                definition_version: Some("1".into()),
                table_versions: Some(BTreeMap::from([
                    ("population".to_string(), 2),
                    ("vaccinations".to_string(), 7),
                ])),
            },
        }
    }

    #[test]
    fn csv_starts_with_provenance_and_blanks_nulls() {
        assert_eq!(
            render(&fixture(), Format::Csv).unwrap(),
            "# population_source: population, reference_year 2024\n\
             # data_until: 2025-03-31\n\
             # definition_version: 1\n\
             # table_versions: population=2, vaccinations=7\n\
             cohort,sex,numerator,denominator,suppressed,flags\n\
             2023,female,9,10,false,\n\
             2023,male,,,true,\n\
             2023,total,12,20,false,a;b\n"
        );
    }

    #[test]
    fn tables_end_with_their_provenance() {
        let table = render(&fixture(), Format::Table).unwrap();
        assert!(
            table.starts_with("cohort  sex     numerator  denominator  suppressed  flags\n"),
            "{table}"
        );
        assert!(
            table.ends_with(
                "\npopulation_source: population, reference_year 2024\n\
                 data_until: 2025-03-31\n\
                 definition_version: 1\n\
                 table_versions: population=2, vaccinations=7\n"
            ),
            "{table}"
        );
    }

    #[test]
    fn json_keys_are_in_name_order_whatever_the_declaration_order() {
        assert_eq!(
            render(&fixture(), Format::Json).unwrap(),
            "{\n  \"apple\": 2,\n  \"zebra\": 1\n}\n"
        );
    }
}
