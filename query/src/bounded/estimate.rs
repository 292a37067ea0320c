//! Upper bounds of what a growing function returns, from its arguments' lengths and counts.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::ColumnarValue;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Growth {
    /// `repeat(text, n)`: `len(text) × n`.
    Repeat,
    /// `lpad`/`rpad(text, n [, fill])`: `n` characters of at most `len(fill)` bytes each.
    Pad,
    /// `replace(text, from, to)`: every position of `text` may become `to`.
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: like `Replace`, and each
    /// group reference in the replacement may copy the whole text again.
    RegexpReplace,
    /// `translate(text, from, to)`: each character may become all of `to`.
    Translate,
    /// `concat(a, b, ...)`: the sum of the arguments.
    Concat,
    /// `concat_ws(separator, a, b, ...)`: the sum, plus a separator per argument.
    ConcatWs,
    /// `array_repeat(element, n)`: `n` copies of the element.
    ArrayRepeat,
    /// `array_resize(array, n [, value])`: `n` elements of the array's or the value's size.
    ArrayResize,
    /// `range`/`generate_series(start, stop [, step])` as a scalar function: one list of
    /// `(stop - start) / step` values of 8 bytes.
    Range,
    /// `array_to_string(array, separator [, null_text])`: the elements plus a separator
    /// (or the null text) per element.
    ArrayToString,
}

/// An upper bound of the bytes `growth`'s function returns for `args` over `rows` rows. Scalar
/// arguments count once per row: even when the function returns one scalar, the batch
/// copies it into every row sooner or later.
pub(super) fn output_bytes(growth: Growth, args: &[ColumnarValue], rows: usize) -> u64 {
    let arg = |index: usize| args.get(index);
    let lengths =
        |index: usize| arg(index).map_or_else(|| vec![0; rows], |a| byte_lengths(a, rows));
    let counts = |index: usize| arg(index).map_or_else(|| vec![0; rows], |a| integers(a, rows));
    let sum = |values: Vec<u64>| values.into_iter().fold(0u64, u64::saturating_add);
    match growth {
        Growth::Repeat => {
            let (text, count) = (lengths(0), counts(1));
            sum(zip_with(&text, &count, |len, n| {
                len.saturating_mul(positive(n))
            }))
        }
        Growth::Pad => {
            let (text, count) = (lengths(0), counts(1));
            let fill = match arg(2) {
                Some(fill) => byte_lengths(fill, rows),
                None => vec![1; rows],
            };
            let padding = zip_with(&count, &fill, |n, fill| {
                positive(n).saturating_mul(fill.max(4))
            });
            sum(text).saturating_add(sum(padding))
        }
        Growth::Replace | Growth::Translate => {
            let (text, to) = (lengths(0), lengths(2));
            sum(zip_with(&text, &to, |len, to| {
                len.saturating_add(len.saturating_add(1).saturating_mul(to))
            }))
        }
        Growth::RegexpReplace => {
            let (text, replacement) = (lengths(0), lengths(2));
            sum(zip_with(&text, &replacement, |len, rep| {
                // Matches ≤ len + 1, each replaced by `rep`; group references copy matched
                // text, at most `rep` references each worth the whole text in total.
                let inserted = len.saturating_add(1).saturating_mul(rep);
                let copied = len.saturating_mul(rep.saturating_add(1));
                inserted.saturating_add(copied)
            }))
        }
        Growth::Concat => args
            .iter()
            .map(|a| sum(byte_lengths(a, rows)))
            .fold(0, u64::saturating_add),
        Growth::ConcatWs => {
            let separators = sum(lengths(0)).saturating_mul(args.len() as u64);
            args.iter()
                .skip(1)
                .map(|a| sum(byte_lengths(a, rows)))
                .fold(separators, u64::saturating_add)
        }
        Growth::ArrayRepeat => {
            let (element, count) = (lengths(0), counts(1));
            sum(zip_with(&count, &element, |n, size| {
                positive(n).saturating_mul(size.max(8))
            }))
        }
        Growth::ArrayResize => {
            let (array, count) = (lengths(0), counts(1));
            let value = match arg(2) {
                Some(value) => byte_lengths(value, rows),
                None => vec![8; rows],
            };
            let elements = zip_with(&count, &value, |n, size| {
                positive(n).saturating_mul(size.max(8))
            });
            sum(array).saturating_add(sum(elements))
        }
        Growth::Range => range_values(args, rows).saturating_mul(8),
        Growth::ArrayToString => {
            let (array, elements) = (
                lengths(0),
                arg(0).map_or_else(|| vec![0; rows], |a| list_lengths(a, rows)),
            );
            let per_element = match arg(2) {
                Some(null_text) => zip_with(&lengths(1), &byte_lengths(null_text, rows), |s, n| {
                    s.saturating_add(n)
                }),
                None => lengths(1),
            };
            let separators = zip_with(&elements, &per_element, |n, size| {
                n.saturating_mul(size.saturating_add(20))
            });
            sum(array).saturating_add(sum(separators))
        }
    }
}

fn positive(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

fn zip_with<A: Copy, B: Copy>(a: &[A], b: &[B], f: impl Fn(A, B) -> u64) -> Vec<u64> {
    a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
}

/// Bytes of each row's value: exact for text and binary, the average per row otherwise.
fn byte_lengths(value: &ColumnarValue, rows: usize) -> Vec<u64> {
    match value {
        ColumnarValue::Scalar(scalar) => {
            let len = match scalar {
                ScalarValue::Utf8(text)
                | ScalarValue::LargeUtf8(text)
                | ScalarValue::Utf8View(text) => text.as_ref().map_or(0, String::len),
                ScalarValue::Binary(bytes)
                | ScalarValue::LargeBinary(bytes)
                | ScalarValue::BinaryView(bytes)
                | ScalarValue::FixedSizeBinary(_, bytes) => bytes.as_ref().map_or(0, Vec::len),
                other => other
                    .data_type()
                    .primitive_width()
                    .unwrap_or_else(|| other.size()),
            };
            vec![len as u64; rows]
        }
        ColumnarValue::Array(array) => array_byte_lengths(array),
    }
}

fn array_byte_lengths(array: &ArrayRef) -> Vec<u64> {
    fn lengths<'a, T: AsRef<[u8]> + ?Sized + 'a>(
        values: impl Iterator<Item = Option<&'a T>>,
    ) -> Vec<u64> {
        values
            .map(|value| value.map_or(0, |v| v.as_ref().len() as u64))
            .collect()
    }
    match array.data_type() {
        DataType::Utf8 => lengths(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => lengths(array.as_string::<i64>().iter()),
        DataType::Utf8View => lengths(array.as_string_view().iter()),
        DataType::Binary => lengths(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => lengths(array.as_binary::<i64>().iter()),
        DataType::BinaryView => lengths(array.as_binary_view().iter()),
        _ => {
            let average = array.get_array_memory_size() / array.len().max(1);
            vec![average as u64; array.len()]
        }
    }
}

/// Each row's value as a 64-bit integer (nulls and values that do not convert count 0).
fn integers(value: &ColumnarValue, rows: usize) -> Vec<i64> {
    match value {
        ColumnarValue::Scalar(scalar) => {
            let value = match scalar.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(value))) => value,
                _ => 0,
            };
            vec![value; rows]
        }
        ColumnarValue::Array(array) => match arrow::compute::cast(array, &DataType::Int64) {
            Ok(array) => array
                .as_primitive::<Int64Type>()
                .iter()
                .map(|value| value.unwrap_or(0))
                .collect(),
            Err(_) => vec![0; array.len()],
        },
    }
}

/// Elements of each row's list (0 for what is not a list).
fn list_lengths(value: &ColumnarValue, rows: usize) -> Vec<u64> {
    match value {
        ColumnarValue::Array(array) => list_lengths_of(array),
        ColumnarValue::Scalar(_) => {
            let length = one_row_per_value(value)
                .and_then(|array| list_lengths_of(&array).first().copied())
                .unwrap_or(0);
            vec![length; rows]
        }
    }
}

fn list_lengths_of(array: &ArrayRef) -> Vec<u64> {
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            (0..list.len())
                .map(|i| list.value_length(i) as u64)
                .collect()
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            (0..list.len())
                .map(|i| list.value_length(i) as u64)
                .collect()
        }
        DataType::FixedSizeList(_, size) => vec![*size as u64; array.len()],
        _ => vec![0; array.len()],
    }
}

/// Values the scalar `range`/`generate_series` produces over all rows, at most.
fn range_values(args: &[ColumnarValue], rows: usize) -> u64 {
    let is_temporal = args.first().is_some_and(|arg| {
        matches!(
            arg.data_type(),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        )
    });
    let spans: Vec<(i128, i128, i128)> = if is_temporal {
        let (Some(start), Some(stop), Some(step)) = (args.first(), args.get(1), args.get(2)) else {
            return 0;
        };
        let (start, stop, step) = (
            nanoseconds(start, rows),
            nanoseconds(stop, rows),
            step_nanoseconds(step, rows),
        );
        (0..rows).map(|i| (start[i], stop[i], step[i])).collect()
    } else {
        let column = |index: usize| args.get(index).map(|arg| integers(arg, rows));
        let (start, stop, step) = match args.len() {
            1 => (None, column(0), None),
            _ => (column(0), column(1), column(2)),
        };
        let Some(stop) = stop else { return 0 };
        (0..rows)
            .map(|i| {
                let start = start.as_ref().map_or(0, |s| s[i]);
                let step = step.as_ref().map_or(1, |s| s[i]);
                (i128::from(start), i128::from(stop[i]), i128::from(step))
            })
            .collect()
    };
    spans
        .into_iter()
        .map(|(start, stop, step)| match step {
            0 => 0,
            step => {
                let values = (stop - start) / step + 1;
                u64::try_from(values.max(0)).unwrap_or(u64::MAX)
            }
        })
        .fold(0, u64::saturating_add)
}

/// Dates and timestamps as nanoseconds since the epoch (0 where they do not convert).
fn nanoseconds(value: &ColumnarValue, rows: usize) -> Vec<i128> {
    let as_nanos = DataType::Timestamp(TimeUnit::Nanosecond, None);
    let Some(array) = one_row_per_value(value) else {
        return vec![0; rows];
    };
    let converted = arrow::compute::cast(&array, &as_nanos)
        .and_then(|array| arrow::compute::cast(&array, &DataType::Int64));
    let values: Vec<i128> = match converted {
        Ok(array) => array
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| i128::from(v.unwrap_or(0)))
            .collect(),
        Err(_) => vec![0; array.len()],
    };
    broadcast(values, rows)
}

/// The shortest a step interval can be, in nanoseconds (a month counts 28 days).
fn step_nanoseconds(value: &ColumnarValue, rows: usize) -> Vec<i128> {
    const DAY: i128 = 86_400_000_000_000;
    let interval = DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano);
    let Some(array) = one_row_per_value(value) else {
        return vec![0; rows];
    };
    let values: Vec<i128> = match arrow::compute::cast(&array, &interval) {
        Ok(array) => array
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.map_or(0, |v| {
                    i128::from(v.months) * 28 * DAY
                        + i128::from(v.days) * DAY
                        + i128::from(v.nanoseconds)
                })
            })
            .collect(),
        Err(_) => vec![0; array.len()],
    };
    broadcast(values, rows)
}

/// The argument as an array: a column as it is, a scalar as one row (see [`broadcast`]).
fn one_row_per_value(value: &ColumnarValue) -> Option<ArrayRef> {
    match value {
        ColumnarValue::Array(array) => Some(Arc::clone(array)),
        ColumnarValue::Scalar(scalar) => scalar.to_array_of_size(1).ok(),
    }
}

/// A one-row column (a scalar argument) repeated to `rows`; other columns as they are.
fn broadcast(values: Vec<i128>, rows: usize) -> Vec<i128> {
    match values.as_slice() {
        [single] if rows != 1 => vec![*single; rows],
        _ if values.len() < rows => {
            let mut values = values;
            values.resize(rows, 0);
            values
        }
        _ => values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string())))
    }

    fn int(value: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(value)))
    }

    #[test]
    fn estimates_follow_the_arguments() {
        assert_eq!(
            output_bytes(Growth::Repeat, &[text("ab"), int(1_000)], 1),
            2_000
        );
        assert_eq!(output_bytes(Growth::Repeat, &[text("ab"), int(-5)], 1), 0);
        // A scalar answer is broadcast to every row of the batch sooner or later.
        assert_eq!(output_bytes(Growth::Repeat, &[text("ab"), int(10)], 3), 60);
        let column = ColumnarValue::Array(Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])));
        assert_eq!(output_bytes(Growth::Repeat, &[text("ab"), column], 3), 12);
        assert_eq!(
            output_bytes(Growth::Pad, &[text("x"), int(1_000)], 1),
            4_001
        );
        assert_eq!(
            output_bytes(Growth::Range, &[int(1_000_000_000)], 1),
            8_000_000_008
        );
        assert_eq!(
            output_bytes(Growth::Range, &[int(10), int(1), int(-1)], 1),
            80
        );
        assert_eq!(
            output_bytes(Growth::Range, &[int(1), int(10), int(0)], 1),
            0
        );
        assert_eq!(
            output_bytes(Growth::ArrayRepeat, &[int(1), int(1_000)], 1),
            8_000
        );
        assert_eq!(
            output_bytes(Growth::Replace, &[text("aaa"), text("a"), text("bb")], 1),
            11
        );
    }

    #[test]
    fn date_ranges_count_days() {
        let date = |d: i32| ColumnarValue::Scalar(ScalarValue::Date32(Some(d)));
        let one_day = ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(
            arrow::datatypes::IntervalMonthDayNano::new(0, 1, 0),
        )));
        assert_eq!(
            output_bytes(Growth::Range, &[date(0), date(365), one_day], 1),
            366 * 8
        );
    }
}
