//! Functions whose answer can dwarf their arguments reserve its size in the memory pool
//! before they run.
//!
//! DataFusion counts the memory of sorts, aggregates and joins against the pool, but not the
//! arrays a scalar function returns. `repeat('x', 1000000000)` therefore allocated 1 GB
//! (4 GB peak) while the pool held 64 MiB, `array_repeat(1, 1000000000)` aborted the process
//! on a failed 8 GB allocation, and both ran inside constant folding, where no query timeout
//! can interrupt them. Each function listed in [`GROWING`] is replaced by a wrapper that
//! estimates an upper bound of its output from its arguments (lengths and counts, never the
//! values themselves) and reserves that much in the shared pool for the duration of the call:
//! beyond the pool, the query fails with "resources exhausted" before anything is allocated.
//!
//! Functions whose output is at most a small multiple of their input (`upper`, `encode`,
//! ...) need no estimate of their own: their input is already bounded by the functions
//! here. `concat`, `concat_ws` and the `||` operator are bounded anyway, since each level of
//! `WITH b AS (SELECT s || s AS s FROM a), c AS (SELECT s || s ...)` doubles the size: twelve
//! levels over a 1 MB text took 3 GB and then panicked inside Arrow on an offset overflow.
//! `||` is an operator, not a function, so an analyzer rule ([`BoundStringConcat`]) turns
//! it into a call of [`ConcatOperator`], which reserves like the others and then runs
//! DataFusion's own `||`.
//!
//! `array_agg` under-reports the text of string views it keeps; [`aggregate`] corrects that.

mod aggregate;
mod concat;
mod estimate;

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ExprSchema, Result, ScalarValue};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping, Volatility,
};
use datafusion::prelude::SessionContext;

use aggregate::{ViewAccounted, KEEPING};
use concat::{BoundStringConcat, ConcatOperator};
use estimate::{output_bytes, Growth};

/// Below this estimate a call runs without a reservation: the pool's bookkeeping would cost
/// more than the memory it guards.
const RESERVE_FROM: u64 = 1 << 20;

/// The functions wrapped, by the name DataFusion registers them under (aliases follow).
const GROWING: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("translate", Growth::Translate),
    ("concat", Growth::Concat),
    ("concat_ws", Growth::ConcatWs),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("array_to_string", Growth::ArrayToString),
];

/// Replaces the functions of [`GROWING`] registered in `ctx` by wrappers that reserve their
/// output's estimated size in `pool` while they run, has `||` do the same (see the module
/// documentation), and has the aggregates of [`KEEPING`] count the text they keep.
pub(crate) fn bound_growing_functions(
    ctx: &SessionContext,
    pool: &Arc<dyn MemoryPool>,
) -> Result<()> {
    ctx.add_analyzer_rule(Arc::new(BoundStringConcat {
        concat: Arc::new(ScalarUDF::new_from_impl(ConcatOperator {
            signature: Signature::any(2, Volatility::Immutable),
            pool: Arc::clone(pool),
        })),
    }));
    for name in KEEPING {
        let inner = ctx.udaf(name)?;
        ctx.register_udaf(ViewAccounted::wrap(Arc::clone(inner.inner())));
    }
    for &(name, growth) in GROWING {
        let inner = ctx.udf(name)?;
        ctx.register_udf(ScalarUDF::new_from_impl(BoundedOutput {
            inner: Arc::clone(inner.inner()).into(),
            growth,
            pool: Arc::clone(pool),
        }));
    }
    Ok(())
}

/// Reserves `bytes` of `pool` for `function`'s output, unless that is too little to matter.
fn reserve(
    pool: &Arc<dyn MemoryPool>,
    function: &str,
    bytes: u64,
) -> Result<Option<MemoryReservation>> {
    if bytes < RESERVE_FROM {
        return Ok(None);
    }
    let reservation = MemoryConsumer::new(format!("{function}()")).register(pool);
    reservation.try_grow(usize::try_from(bytes).unwrap_or(usize::MAX))?;
    Ok(Some(reservation))
}

/// A scalar function that reserves its estimated output size before it runs.
#[derive(Debug)]
struct BoundedOutput {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
    growth: Growth,
    pool: Arc<dyn MemoryPool>,
}

impl PartialEq for BoundedOutput {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
            && self.growth == other.growth
            && std::ptr::addr_eq(Arc::as_ptr(&self.pool), Arc::as_ptr(&other.pool))
    }
}

impl Eq for BoundedOutput {}

impl Hash for BoundedOutput {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.growth.hash(state);
    }
}

impl ScalarUDFImpl for BoundedOutput {
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = output_bytes(self.growth, &args.args, args.number_rows);
        let _reservation = if bytes >= RESERVE_FROM {
            let reservation =
                MemoryConsumer::new(format!("{}()", self.inner.name())).register(&self.pool);
            reservation.try_grow(usize::try_from(bytes).unwrap_or(usize::MAX))?;
            Some(reservation)
        } else {
            None
        };
        self.inner.invoke_with_args(args)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(BoundedOutput {
            inner: Arc::clone(updated.inner()).into(),
            growth: self.growth,
            pool: Arc::clone(&self.pool),
        }))
    }

    // Everything else is the wrapped function's own.

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // A simplification that keeps calling this function must keep calling the wrapper.
        match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Original(args) => Ok(ExprSimplifyResult::Original(args)),
            ExprSimplifyResult::Simplified(expr) => {
                Ok(ExprSimplifyResult::Simplified(self.keep_wrapped(expr)?))
            }
        }
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}

impl BoundedOutput {
    /// `expr` with calls of the unwrapped function (as a simplification may build them)
    /// pointed back at this wrapper.
    fn keep_wrapped(&self, expr: Expr) -> Result<Expr> {
        expr.transform_up(|node| match node {
            Expr::ScalarFunction(ScalarFunction { func, args })
                if !is_wrapper(&func) && func.name() == self.inner.name() =>
            {
                let wrapper = ScalarUDF::new_from_impl(BoundedOutput {
                    inner: Arc::clone(func.inner()).into(),
                    growth: self.growth,
                    pool: Arc::clone(&self.pool),
                });
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                    func: Arc::new(wrapper),
                    args,
                })))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|transformed| transformed.data)
    }
}

fn is_wrapper(udf: &ScalarUDF) -> bool {
    let inner: &dyn Any = udf.inner().as_ref();
    inner.is::<BoundedOutput>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_growing_function_is_found_and_wrapped() {
        let ctx = SessionContext::new();
        let pool: Arc<dyn MemoryPool> = Arc::new(
            datafusion::execution::memory_pool::GreedyMemoryPool::new(1 << 20),
        );
        bound_growing_functions(&ctx, &pool).unwrap();
        for (name, _) in GROWING {
            let udf = ctx.udf(name).unwrap();
            assert!(is_wrapper(&udf), "{name}");
        }
    }

    #[tokio::test]
    async fn a_call_beyond_the_pool_fails_before_it_allocates() {
        let ctx = SessionContext::new();
        let pool: Arc<dyn MemoryPool> = Arc::new(
            datafusion::execution::memory_pool::GreedyMemoryPool::new(1 << 20),
        );
        bound_growing_functions(&ctx, &pool).unwrap();
        let error = ctx
            .sql("SELECT length(repeat(CAST(value AS VARCHAR), 10000000)) FROM range(1, 3)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(
            matches!(
                error.find_root(),
                datafusion::error::DataFusionError::ResourcesExhausted(_)
            ),
            "{error}"
        );
        // Small calls run as before.
        let answer = ctx
            .sql("SELECT repeat('ab', 3) AS r")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(answer[0].column(0).as_ref().len(), 1);
    }
}
