//! `dose_validity(antigen, administered_on, age_months_at_dose) OVER (PARTITION BY
//! person_key, antigen ORDER BY administered_on)`: the verdict of the dose rules on each
//! dose day, as a struct `{valid, invalid_reason, dose_seq}`. It is how the `antigen_doses`
//! view numbers valid doses with the very implementation the coverage engine counts with
//! (`vaxlake_catalog::validity`), rather than a second one in SQL that could drift.
//!
//! A window function because a dose's verdict depends on the person's earlier *valid* doses
//! of the antigen (an invalid dose does not advance the sequence), which `row_number` and
//! `lag` cannot express.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, StringBuilder, StructArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int32Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};
use vaxlake_catalog::validity::{DoseDay, DoseRules, Judged};

/// The `dose_validity` window function over the builtin dose rules, ready to register.
pub fn dose_validity_udwf(rules: Arc<DoseRules>) -> WindowUDF {
    WindowUDF::new_from_impl(DoseValidity {
        signature: Signature::any(3, Volatility::Immutable),
        rules,
    })
}

fn result_fields() -> Fields {
    Fields::from(vec![
        Field::new("valid", DataType::Boolean, false),
        Field::new("invalid_reason", DataType::Utf8, true),
        Field::new("dose_seq", DataType::Int32, true),
    ])
}

#[derive(Debug)]
struct DoseValidity {
    signature: Signature,
    rules: Arc<DoseRules>,
}

// The rules are the builtin ones, the same for every instance: equal by name.
impl PartialEq for DoseValidity {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}
impl Eq for DoseValidity {}
impl std::hash::Hash for DoseValidity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl WindowUDFImpl for DoseValidity {
    fn name(&self) -> &str {
        "dose_validity"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(Evaluator {
            rules: self.rules.clone(),
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Struct(result_fields()),
            false,
        )))
    }
}

#[derive(Debug)]
struct Evaluator {
    rules: Arc<DoseRules>,
}

impl PartitionEvaluator for Evaluator {
    /// One partition is one person's days of one antigen, in date order (the OVER clause).
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let [antigen, dates, ages] = values else {
            return exec_err!(
                "dose_validity(antigen, administered_on, age_months_at_dose) takes 3 arguments"
            );
        };
        let antigen = cast(antigen, &DataType::Utf8)?;
        let antigen = antigen.as_string::<i32>();
        let dates = cast(dates, &DataType::Date32)?;
        let dates = dates.as_primitive::<arrow::datatypes::Date32Type>();
        let ages = cast(ages, &DataType::Int32)?;
        let ages = ages.as_primitive::<Int32Type>();

        let mut valid = BooleanBuilder::with_capacity(num_rows);
        let mut reason = StringBuilder::with_capacity(num_rows, num_rows * 8);
        let mut seq = Int32Builder::with_capacity(num_rows);
        // Rows of one antigen (the partition's, unless the OVER clause was written without
        // it); a null date or antigen gets no verdict-bearing sequence.
        let mut start = 0;
        let mut days: Vec<DoseDay> = Vec::new();
        let mut judged: Vec<Judged> = Vec::new();
        while start < num_rows {
            let name = antigen.is_valid(start).then(|| antigen.value(start));
            let mut end = start + 1;
            while end < num_rows && antigen.is_valid(end).then(|| antigen.value(end)) == name {
                end += 1;
            }
            days.clear();
            for row in start..end {
                if dates.is_null(row) {
                    return exec_err!("dose_validity: administered_on is null");
                }
                days.push(DoseDay::new(
                    dates.value(row),
                    ages.is_valid(row).then(|| ages.value(row)),
                ));
            }
            self.rules
                .judge_into(name.unwrap_or_default(), &days, &mut judged);
            for verdict in &judged {
                valid.append_value(verdict.valid());
                reason.append_option(verdict.invalid.map(|r| r.as_str()));
                seq.append_option(verdict.dose_seq.map(|n| n as i32));
            }
            start = end;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(valid.finish()),
            Arc::new(reason.finish()),
            Arc::new(seq.finish()),
        ];
        Ok(Arc::new(StructArray::try_new(
            result_fields(),
            columns,
            None,
        )?))
    }
}
