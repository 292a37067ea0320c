//! Coverage answers for people at a terminal (an aligned table) and for spreadsheets (CSV),
//! from the same JSON the API sends, so the command line cannot drift from it.

use serde_json::Value;

use crate::QueryError;

/// How `vaxlake coverage` prints an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Columns in reading order; anything else an answer carries follows in name order.
const ORDER: &[&str] = &[
    "estimate",
    "month",
    "indicator",
    "cohort",
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

/// Renders `answer` (an object with `rows`, and `total` when broken down). CSV and table
/// show the rows, then the total marked `total` in its breakdown column.
pub fn render(answer: &Value, format: Format) -> Result<String, QueryError> {
    if format == Format::Json {
        return serde_json::to_string_pretty(answer)
            .map(|text| text + "\n")
            .map_err(|error| QueryError::Format(error.to_string()));
    }
    let mut rows: Vec<Value> = answer["rows"].as_array().cloned().unwrap_or_default();
    let by_column = answer["by"].as_str().map(str::to_string).or_else(|| {
        rows.first()
            .and_then(|row| row.get("age_band"))
            .map(|_| "age_band".to_string())
    });
    if let (Some(mut total), Some(column)) = (answer.get("total").cloned(), by_column) {
        if let Some(map) = total.as_object_mut() {
            map.insert(column, Value::String("total".into()));
        }
        rows.push(total);
    }
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
    match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            let failed = |error: csv::Error| QueryError::Format(error.to_string());
            writer.write_record(&columns).map_err(failed)?;
            for row in &cells {
                writer.write_record(row).map_err(failed)?;
            }
            let bytes = writer
                .into_inner()
                .map_err(|error| QueryError::Format(error.to_string()))?;
            String::from_utf8(bytes).map_err(|error| QueryError::Format(error.to_string()))
        }
        _ => Ok(aligned(&columns, &cells)),
    }
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

    #[test]
    fn csv_puts_the_total_last_and_blanks_for_nulls() {
        let answer = json!({
            "by": "sex",
            "rows": [
                {"cohort": 2023, "sex": "female", "numerator": 9, "denominator": 10, "suppressed": false, "flags": []},
                {"cohort": 2023, "sex": "male", "numerator": null, "denominator": null, "suppressed": true, "flags": []}
            ],
            "total": {"cohort": 2023, "numerator": 12, "denominator": 20, "suppressed": false, "flags": ["a", "b"]}
        });
        assert_eq!(
            render(&answer, Format::Csv).unwrap(),
            "cohort,sex,numerator,denominator,suppressed,flags\n\
             2023,female,9,10,false,\n\
             2023,male,,,true,\n\
             2023,total,12,20,false,a;b\n"
        );
    }
}
