//! A SQL query's answer and the formats it leaves in: JSON for the API, CSV for spreadsheets
//! and scripts, Arrow IPC for notebooks (no parsing, exact types), a text table for terminals.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::csv::writer::{Terminator, WriterBuilder};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::ipc::writer::StreamWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow::util::pretty::pretty_format_batches_with_schema;
use serde_json::{Number, Value};

use super::Format;
use crate::QueryError;

/// A query's rows as JSON (`/api/sql`, `/api/audit`): the form [`QueryAnswer::to_json`]
/// writes, and the API description's schema of it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RowsBody {
    /// Column names, in order (a name may repeat).
    pub columns: Vec<String>,
    /// One array per row, in column order: numbers, text, dates `YYYY-MM-DD`, timestamps
    /// RFC 3339, null.
    pub rows: Vec<Vec<Value>>,
    /// True when the row cap cut the answer.
    pub truncated: bool,
}

/// The rows of one query, capped at the warehouse's row limit.
#[derive(Debug, Clone)]
pub struct QueryAnswer {
    /// Column names and types, also when there are no rows.
    pub schema: SchemaRef,
    /// The rows; empty batches are left out.
    pub batches: Vec<RecordBatch>,
    /// True when the query had more rows than the cap and only the first ones are here.
    pub truncated: bool,
}

impl QueryAnswer {
    /// Number of rows held.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect()
    }

    /// `{"columns":[...],"rows":[[...],...],"truncated":false}`: rows as arrays, so
    /// repeated column names survive and the payload stays small. Numbers are JSON numbers
    /// (non-finite floats become null), dates `YYYY-MM-DD`, timestamps with a time zone
    /// RFC 3339, nulls null, everything else its text form.
    pub fn to_json(&self) -> Result<Value, QueryError> {
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(self.num_rows());
        for batch in &self.batches {
            let columns = batch
                .columns()
                .iter()
                .map(json_values)
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(columns.iter().map(|column| column[row].clone()).collect());
            }
        }
        let body = RowsBody {
            columns: self.column_names(),
            rows,
            truncated: self.truncated,
        };
        serde_json::to_value(body).map_err(|error| QueryError::Format(error.to_string()))
    }

    /// A header line and RFC 4180 rows (CRLF line ends, quotes only where needed, nulls as
    /// empty fields, dates ISO 8601).
    pub fn to_csv(&self) -> Result<Vec<u8>, QueryError> {
        let mut buffer = Vec::new();
        {
            let mut writer = WriterBuilder::new()
                .with_header(true)
                .with_line_terminator(Terminator::CRLF)
                .build(&mut buffer);
            if self.batches.is_empty() {
                writer.write(&RecordBatch::new_empty(self.schema.clone()))?;
            }
            for batch in &self.batches {
                writer.write(batch)?;
            }
        }
        Ok(buffer)
    }

    /// An Arrow IPC stream (`application/vnd.apache.arrow.stream`), exact types included.
    pub fn to_arrow_ipc(&self) -> Result<Vec<u8>, QueryError> {
        let mut buffer = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut buffer, &self.schema)?;
            for batch in &self.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Ok(buffer)
    }

    /// A boxed text table for terminals (the header also when there are no rows).
    pub fn to_table(&self) -> Result<String, QueryError> {
        Ok(pretty_format_batches_with_schema(self.schema.clone(), &self.batches)?.to_string())
    }

    /// The answer as `vaxlake sql` prints it: a boxed table, RFC 4180 CSV or compact JSON.
    pub fn render(&self, format: Format) -> Result<String, QueryError> {
        match format {
            Format::Table => self.to_table(),
            Format::Csv => String::from_utf8(self.to_csv()?)
                .map_err(|error| QueryError::Format(error.to_string())),
            Format::Json => Ok(self.to_json()?.to_string()),
        }
    }
}

/// One JSON value per row of `array`.
fn json_values(array: &ArrayRef) -> Result<Vec<Value>, QueryError> {
    let nulls = |values: Vec<Value>| -> Vec<Value> {
        values
            .into_iter()
            .enumerate()
            .map(|(row, value)| {
                if array.is_null(row) {
                    Value::Null
                } else {
                    value
                }
            })
            .collect()
    };
    let values = match array.data_type() {
        DataType::Null => vec![Value::Null; array.len()],
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|value| value.map_or(Value::Null, Value::Bool))
            .collect(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            cast(array, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .iter()
                .map(|value| value.map_or(Value::Null, Value::from))
                .collect()
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            cast(array, &DataType::UInt64)?
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|value| value.map_or(Value::Null, Value::from))
                .collect()
        }
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .iter()
            .map(|value| {
                value
                    .and_then(Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            })
            .collect(),
        // Through their shortest text form, so 0.1f32 stays 0.1 rather than 0.10000000149.
        DataType::Float16
        | DataType::Float32
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => nulls(
            formatted(array)?
                .into_iter()
                .map(|text| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                })
                .collect(),
        ),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            match cast(array, &DataType::Utf8) {
                Ok(strings) => strings
                    .as_string::<i32>()
                    .iter()
                    .map(|value| value.map_or(Value::Null, Value::from))
                    .collect(),
                Err(_) => nulls(formatted(array)?.into_iter().map(Value::from).collect()),
            }
        }
        _ => nulls(formatted(array)?.into_iter().map(Value::from).collect()),
    };
    Ok(values)
}

/// Arrow's display form of each value: ISO dates, RFC 3339 for time-zoned timestamps.
fn formatted(array: &ArrayRef) -> Result<Vec<String>, QueryError> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len())
        .map(|row| formatter.value(row).to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn answer() -> QueryAnswer {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("share", DataType::Float64, true),
            Field::new("small", DataType::Float32, true),
            Field::new("on", DataType::Date32, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("ok", DataType::Boolean, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("Wiltz, \"north\""), None])),
                Arc::new(Int32Array::from(vec![Some(97), None])),
                Arc::new(Float64Array::from(vec![Some(0.9327), Some(f64::NAN)])),
                Arc::new(Float32Array::from(vec![Some(0.1), None])),
                // 2024-03-01 is day 19783 since 1970-01-01.
                Arc::new(Date32Array::from(vec![Some(19783), None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_709_294_400_000_000), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
            ],
        )
        .unwrap();
        QueryAnswer {
            schema,
            batches: vec![batch],
            truncated: false,
        }
    }

    #[test]
    fn json_uses_native_types_and_iso_dates() {
        let json = answer().to_json().unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "columns": ["name", "n", "share", "small", "on", "at", "ok"],
                "rows": [
                    ["Wiltz, \"north\"", 97, 0.9327, 0.1, "2024-03-01", "2024-03-01T12:00:00Z", true],
                    [null, null, null, null, null, null, null]
                ],
                "truncated": false
            })
        );
    }

    #[test]
    fn csv_is_rfc_4180() {
        let csv = String::from_utf8(answer().to_csv().unwrap()).unwrap();
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next().unwrap(), "name,n,share,small,on,at,ok");
        let first = lines.next().unwrap();
        assert!(
            first.starts_with(
                "\"Wiltz, \"\"north\"\"\",97,0.9327,0.1,2024-03-01,2024-03-01T12:00:00"
            ),
            "{first}"
        );
        assert_eq!(lines.next().unwrap(), ",,NaN,,,,");
    }

    #[test]
    fn empty_answers_keep_their_header() {
        let mut empty = answer();
        empty.batches.clear();
        assert_eq!(
            String::from_utf8(empty.to_csv().unwrap()).unwrap(),
            "name,n,share,small,on,at,ok\r\n"
        );
        assert!(empty.to_table().unwrap().contains("| name | n "));
        assert_eq!(empty.to_json().unwrap()["rows"], serde_json::json!([]));
    }

    #[test]
    fn arrow_ipc_round_trips() {
        let answer = answer();
        let bytes = answer.to_arrow_ipc().unwrap();
        let reader = arrow::ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(batches, answer.batches);
    }
}
