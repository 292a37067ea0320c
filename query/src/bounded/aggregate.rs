//! Aggregates that keep their input count the text they keep.
//!
//! `array_agg` keeps every input array it is given and tells the memory pool their size
//! with Arrow's `get_slice_memory_size`. For string views (`Utf8View`, which DataFusion uses
//! for `CAST(x AS VARCHAR)` and for text read from Parquet) that counts the 16-byte views
//! only, never the text buffers they point into: `array_agg` over 200-byte strings held
//! 900 MB while the pool believed 64 MiB. [`ViewAccounted`] wraps such an aggregate and adds
//! the bytes of the out-of-line view values it was given to what the accumulator reports,
//! so the pool sees the real size and the query fails cleanly at the limit.
//!
//! The upstream fix belongs in arrow-rs (`ArrayData::get_slice_memory_size` skips the
//! variadic buffers of view arrays); this wrapper can go when it lands.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::{
    AggregateFunction, AggregateFunctionParams, WindowFunctionParams,
};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator,
    Operator, ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};

/// The aggregates that keep their input arrays, by registered name.
pub(super) const KEEPING: &[&str] = &["array_agg"];

/// An aggregate whose accumulators add the text of the string views they keep to their
/// reported size (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct ViewAccounted {
    pub(super) inner: UdfEq<Arc<dyn AggregateUDFImpl>>,
}

impl ViewAccounted {
    pub(super) fn wrap(inner: Arc<dyn AggregateUDFImpl>) -> AggregateUDF {
        AggregateUDF::new_from_impl(ViewAccounted {
            inner: inner.into(),
        })
    }
}

impl AggregateUDFImpl for ViewAccounted {
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountedAccumulator::new(
            self.inner.accumulator(acc_args)?,
        )))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountedAccumulator::new(
            self.inner.create_sliding_accumulator(args)?,
        )))
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(CountedGroupsAccumulator {
            inner: self.inner.create_groups_accumulator(args)?,
            view_bytes: 0,
            groups: 0,
        }))
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let inner = Arc::clone(&*self.inner);
        Ok(inner.with_beneficial_ordering(beneficial_ordering)?.map(
            |inner| -> Arc<dyn AggregateUDFImpl> {
                Arc::new(ViewAccounted {
                    inner: inner.into(),
                })
            },
        ))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.reverse_expr() {
            ReversedUDAF::Reversed(udaf) => {
                ReversedUDAF::Reversed(Arc::new(Self::wrap(Arc::clone(udaf.inner()))))
            }
            other => other,
        }
    }

    // Everything else is the wrapped aggregate's own.

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.schema_name(params)
    }

    fn human_display(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.human_display(params)
    }

    fn window_function_schema_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.window_function_schema_name(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.display_name(params)
    }

    fn window_function_display_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.window_function_display_name(params)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        self.inner
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}

/// An accumulator that reports the view text it was given on top of its own size.
#[derive(Debug)]
struct CountedAccumulator {
    inner: Box<dyn Accumulator>,
    view_bytes: usize,
}

impl CountedAccumulator {
    fn new(inner: Box<dyn Accumulator>) -> Self {
        CountedAccumulator {
            inner,
            view_bytes: 0,
        }
    }
}

impl Accumulator for CountedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.view_bytes += values.iter().map(|a| view_bytes(a)).sum::<usize>();
        self.inner.update_batch(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.view_bytes += states.iter().map(|a| view_bytes(a)).sum::<usize>();
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let gone = values.iter().map(|a| view_bytes(a)).sum::<usize>();
        self.view_bytes = self.view_bytes.saturating_sub(gone);
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn size(&self) -> usize {
        self.inner.size() + self.view_bytes
    }
}

/// The same for grouped aggregation. Emitting the first `n` groups releases their share,
/// estimated as an even split of the text over the groups seen.
struct CountedGroupsAccumulator {
    inner: Box<dyn GroupsAccumulator>,
    view_bytes: usize,
    groups: usize,
}

impl CountedGroupsAccumulator {
    fn emitted(&mut self, emit_to: EmitTo) {
        match emit_to {
            EmitTo::All => {
                self.view_bytes = 0;
                self.groups = 0;
            }
            EmitTo::First(n) => {
                let n = n.min(self.groups);
                if self.groups > 0 {
                    let kept = self.groups - n;
                    self.view_bytes =
                        (self.view_bytes as u128 * kept as u128 / self.groups as u128) as usize;
                    self.groups = kept;
                }
            }
        }
    }
}

impl GroupsAccumulator for CountedGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.view_bytes += values.iter().map(|a| view_bytes(a)).sum::<usize>();
        self.groups = self.groups.max(total_num_groups);
        self.inner
            .update_batch(values, group_indices, opt_filter, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.view_bytes += values.iter().map(|a| view_bytes(a)).sum::<usize>();
        self.groups = self.groups.max(total_num_groups);
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emitted(emit_to);
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.emitted(emit_to);
        self.inner.state(emit_to)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size() + self.view_bytes
    }
}

/// Bytes of view values stored outside their 16-byte views (longer than 12 bytes) in the
/// rows of `array`, nested lists and structs included. Other arrays count 0: their sizes
/// are already right.
fn view_bytes(array: &dyn Array) -> usize {
    match array.data_type() {
        DataType::Utf8View => array.as_string_view().total_buffer_bytes_used(),
        DataType::BinaryView => array.as_binary_view().total_buffer_bytes_used(),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[list.len()] as usize);
            view_bytes(&list.values().slice(start, end - start))
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[list.len()] as usize);
            view_bytes(&list.values().slice(start, end - start))
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list();
            let size = list.value_length() as usize;
            view_bytes(&list.values().slice(list.offset() * size, list.len() * size))
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|column| view_bytes(column))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, ListArray, StringViewArray};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::Field;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::error::DataFusionError;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn context(pool_bytes: usize, bounded: bool) -> SessionContext {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(pool_bytes));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        if bounded {
            super::super::bound_growing_functions(&ctx, &pool).unwrap();
        }
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    /// 500,000 texts of 207 bytes: about 100 MB kept, 8 MB of it views.
    const KEEPS_TEXT: &str = "SELECT cardinality(array_agg(concat(CAST(value AS VARCHAR), \
        repeat('x', 200)))) AS n FROM generate_series(100000, 599999)";

    #[tokio::test]
    async fn array_agg_of_views_is_stopped_at_the_pool() {
        // Unwrapped, the pool believes the views alone and lets 100 MB through 16 MiB.
        let answer = run(&context(16 << 20, false), KEEPS_TEXT).await.unwrap();
        assert!(answer.contains("500000"), "{answer}");

        let error = run(&context(16 << 20, true), KEEPS_TEXT).await.unwrap_err();
        assert!(
            matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)),
            "{error}"
        );
        // With room for the text, the wrapped aggregate answers the same.
        let answer = run(&context(512 << 20, true), KEEPS_TEXT).await.unwrap();
        assert!(answer.contains("500000"), "{answer}");
    }

    #[tokio::test]
    async fn wrapped_array_agg_answers_like_the_original() {
        let queries = [
            "SELECT array_agg(s) AS a FROM (SELECT CAST(value % 7 AS VARCHAR) || '-long-enough-text' AS s FROM generate_series(1, 20))",
            "SELECT array_agg(DISTINCT s ORDER BY s DESC) AS a FROM (SELECT arrow_cast(CAST(value % 5 AS VARCHAR) || '-long-enough-text', 'Utf8View') AS s FROM generate_series(1, 30))",
            "SELECT g, array_agg(s ORDER BY s) AS a FROM (SELECT value % 3 AS g, arrow_cast(CAST(value AS VARCHAR) || '-long-enough-text', 'Utf8View') AS s FROM generate_series(1, 12)) GROUP BY g ORDER BY g",
            "SELECT value, array_agg(CAST(value AS VARCHAR)) OVER (ORDER BY value ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS a FROM generate_series(1, 6) ORDER BY value",
            "SELECT array_agg(value ORDER BY value DESC) AS a FROM generate_series(1, 5)",
        ];
        let plain = context(256 << 20, false);
        let bounded = context(256 << 20, true);
        for sql in queries {
            let expected = run(&plain, sql).await.unwrap();
            assert_eq!(run(&bounded, sql).await.unwrap(), expected, "{sql}");
        }
        let plan = run(&bounded, &format!("EXPLAIN {}", queries[2]))
            .await
            .unwrap();
        assert!(plan.contains("array_agg"), "{plan}");
    }

    #[test]
    fn view_bytes_count_out_of_line_text_of_the_slice_only() {
        let long = "x".repeat(100);
        let views = StringViewArray::from(vec![Some("short"), Some(long.as_str()), None]);
        assert_eq!(view_bytes(&views), 100);
        assert_eq!(view_bytes(&views.slice(0, 1)), 0);
        assert_eq!(view_bytes(&Int64Array::from(vec![1, 2])), 0);

        let values: ArrayRef = Arc::new(StringViewArray::from(vec![
            long.as_str(),
            long.as_str(),
            "a",
        ]));
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Utf8View, true)),
            OffsetBuffer::new(vec![0, 2, 3].into()),
            values,
            None,
        );
        assert_eq!(view_bytes(&list), 200);
        assert_eq!(view_bytes(&list.slice(1, 1)), 0);
    }
}
