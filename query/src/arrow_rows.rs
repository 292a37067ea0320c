//! Reading the grouped queries of the coverage and effectiveness engines: SQL string literals
//! to build them, and typed access to the columns and rows of their Arrow answers.

use arrow::array::{Array, ArrayRef, Int64Array, ListArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::QueryError;

/// A SQL string literal. The values come from the compiled-in catalogue or a checked request,
/// but neither must be able to break (or inject into) the queries.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// One result row, its columns cast to text or integers.
pub(crate) struct Row {
    texts: Vec<Option<String>>,
    ints: Vec<Option<i64>>,
}

impl Row {
    pub(crate) fn maybe_text(&self, index: usize) -> Option<String> {
        self.texts[index].clone()
    }

    pub(crate) fn maybe_int(&self, index: usize) -> Option<i64> {
        self.ints[index]
    }

    /// The integer at `index`, 0 when null.
    pub(crate) fn int(&self, index: usize) -> i64 {
        self.ints[index].unwrap_or_default()
    }
}

/// Runs `sql` and returns its rows, text columns as text and the others as integers.
pub(crate) async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Row>, QueryError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        out.extend(batch_rows(batch)?);
    }
    Ok(out)
}

fn batch_rows(batch: &RecordBatch) -> Result<Vec<Row>, QueryError> {
    let mut texts: Vec<Option<StringArray>> = Vec::new();
    let mut ints: Vec<Option<Int64Array>> = Vec::new();
    for column in batch.columns() {
        let is_text = matches!(
            column.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(_, _)
        );
        if is_text {
            texts.push(Some(as_strings(column)?));
            ints.push(None);
        } else {
            texts.push(None);
            ints.push(Some(as_ints(column)?));
        }
    }
    Ok((0..batch.num_rows())
        .map(|row| Row {
            texts: texts
                .iter()
                .map(|column| {
                    column
                        .as_ref()
                        .filter(|array| array.is_valid(row))
                        .map(|array| array.value(row).to_string())
                })
                .collect(),
            ints: ints
                .iter()
                .map(|column| {
                    column
                        .as_ref()
                        .filter(|array| array.is_valid(row))
                        .map(|array| array.value(row))
                })
                .collect(),
        })
        .collect())
}

/// A column cast to text.
pub(crate) fn as_strings(column: &ArrayRef) -> Result<StringArray, QueryError> {
    cast_as_or(column, &DataType::Utf8, "expected a text column")
}

/// A column cast to 64-bit integers.
pub(crate) fn as_ints(column: &ArrayRef) -> Result<Int64Array, QueryError> {
    cast_as_or(column, &DataType::Int64, "expected a number column")
}

/// A column cast to `data_type` and read as the array `A` that type yields.
pub(crate) fn cast_as<A: Array + Clone + 'static>(
    column: &ArrayRef,
    data_type: &DataType,
) -> Result<A, QueryError> {
    cast_as_or(column, data_type, "a column of an unexpected type")
}

/// [`cast_as`], with `expected` as the error when the cast yields another array.
fn cast_as_or<A: Array + Clone + 'static>(
    column: &ArrayRef,
    data_type: &DataType,
    expected: &str,
) -> Result<A, QueryError> {
    let cast = cast(column, data_type)?;
    Ok(cast
        .as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| QueryError::Format(expected.into()))?
        .clone())
}

/// A list column (`array_agg`).
pub(crate) fn list(column: &ArrayRef) -> Result<ListArray, QueryError> {
    column
        .as_any()
        .downcast_ref::<ListArray>()
        .cloned()
        .ok_or_else(|| {
            QueryError::Format(format!(
                "expected a list column, got {}",
                column.data_type()
            ))
        })
}

/// The items of a list column, as their concrete array type.
pub(crate) fn items<T: 'static>(list: &ListArray) -> Result<&T, QueryError> {
    list.values()
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| QueryError::Format(format!("unexpected list items {}", list.value_type())))
}
