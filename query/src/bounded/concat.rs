//! The `||` operator as a bounded function call (see the parent module).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::expressions::{BinaryExpr as PhysicalBinaryExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;

use super::estimate::{output_bytes, Growth};
use super::reserve;

/// Turns every `a || b` into `ConcatOperator(a, b)`. Runs after type coercion, so both
/// sides already have the types DataFusion's `||` expects.
#[derive(Debug)]
pub(super) struct BoundStringConcat {
    pub(super) concat: Arc<ScalarUDF>,
}

impl AnalyzerRule for BoundStringConcat {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|expr| {
                expr.transform_up(|expr| match expr {
                    Expr::BinaryExpr(BinaryExpr {
                        left,
                        op: Operator::StringConcat,
                        right,
                    }) => Ok(Transformed::yes(Expr::ScalarFunction(
                        ScalarFunction::new_udf(Arc::clone(&self.concat), vec![*left, *right]),
                    ))),
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "bound_string_concat"
    }
}

/// `a || b` as a function: reserves the size of both sides, then evaluates DataFusion's own
/// `||` on them, so answers (and column names: `a || b`) are exactly the operator's.
#[derive(Debug)]
pub(super) struct ConcatOperator {
    pub(super) signature: Signature,
    pub(super) pool: Arc<dyn MemoryPool>,
}

impl PartialEq for ConcatOperator {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.pool), Arc::as_ptr(&other.pool))
    }
}

impl Eq for ConcatOperator {}

impl Hash for ConcatOperator {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ScalarUDFImpl for ConcatOperator {
    fn name(&self) -> &str {
        "||"
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!("{} || {}", args[0], args[1]))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!(
            "{} || {}",
            args[0].schema_name(),
            args[1].schema_name()
        ))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        BinaryTypeCoercer::new(&arg_types[0], &Operator::StringConcat, &arg_types[1])
            .get_result_type()
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|field| field.data_type().clone())
            .collect();
        let nullable = args.arg_fields.iter().any(|field| field.is_nullable());
        Ok(Arc::new(Field::new(
            self.name(),
            self.return_type(&types)?,
            nullable,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let bytes = output_bytes(Growth::Concat, &args.args, rows);
        let narrow_offsets = matches!(
            args.return_field.data_type(),
            DataType::Utf8 | DataType::Binary
        );
        if narrow_offsets && bytes > i32::MAX as u64 {
            // Arrow panics on the offset overflow; say it instead.
            return Err(DataFusionError::ResourcesExhausted(format!(
                "|| would build {} MiB of text in one column, at most 2048 MiB",
                bytes >> 20
            )));
        }
        let _reservation = reserve(&self.pool, "||", bytes)?;

        // Evaluate the operator itself over a two-column batch (scalars stay literals).
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        let mut sides: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        for (argument, field) in args.args.iter().zip(&args.arg_fields) {
            match argument {
                ColumnarValue::Scalar(value) => sides.push(Arc::new(Literal::new(value.clone()))),
                ColumnarValue::Array(array) => {
                    sides.push(Arc::new(Column::new(field.name(), columns.len())));
                    fields.push(Field::new(field.name(), array.data_type().clone(), true));
                    columns.push(Arc::clone(array));
                }
            }
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let right = sides.pop();
        let left = sides.pop();
        let (Some(left), Some(right)) = (left, right) else {
            return Err(DataFusionError::Internal("|| takes two arguments".into()));
        };
        PhysicalBinaryExpr::new(left, Operator::StringConcat, right).evaluate(&batch)
    }
}

#[cfg(test)]
mod tests {
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::prelude::SessionContext;

    async fn table(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn the_bounded_operator_answers_like_the_operator() {
        let plain = SessionContext::new();
        let bounded = SessionContext::new();
        let pool: std::sync::Arc<dyn datafusion::execution::memory_pool::MemoryPool> =
            std::sync::Arc::new(GreedyMemoryPool::new(64 << 20));
        super::super::bound_growing_functions(&bounded, &pool).unwrap();
        for sql in [
            "SELECT 'a' || 'b', 'a' || NULL, 1 || 'x'",
            "SELECT CAST(value AS VARCHAR) || '-' || arrow_cast('v', 'Utf8View') AS s \
             FROM range(1, 4) WHERE CAST(value AS VARCHAR) || 'x' <> '2x' ORDER BY s",
            "SELECT make_array(1, 2) || make_array(3) AS list",
        ] {
            assert_eq!(
                table(&bounded, sql).await,
                table(&plain, sql).await,
                "{sql}"
            );
        }
    }
}
