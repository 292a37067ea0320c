//! Window functions hold their input in memory without asking the pool.
//!
//! DataFusion 55 counts sorts, aggregates and joins against the memory pool, but neither
//! window operator does: `WindowAggExec` keeps every row of its input partition until the
//! input ends (`sum(value) OVER ()` over `generate_series(1, 300000000)` grew the server from
//! 130 MiB to 6.9 GiB while the query's limit was 1 GiB), and `BoundedWindowAggExec` keeps
//! the rows its frames still need (`lag(x, 100000000)`, `ROWS BETWEEN 100000000 PRECEDING`).
//!
//! [`accounted_windows`] wraps each window operator so that the rows it holds count against
//! the query's pool: every batch that enters reserves its size, and every batch that leaves
//! releases the share of the held bytes its rows stand for (a window emits each input row
//! exactly once). Rows in, minus rows out, is what the operator holds, whichever of the two it
//! is and whatever its frames; beyond the pool the query fails with "resources exhausted"
//! before the memory is taken. The estimate counts each batch's own slice of its buffers, so
//! batches cut from one larger buffer are not counted as the whole buffer each.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, RecordBatch};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::wrap_nodes::WrapNodes;

/// Physical optimiser rule wrapping every window operator in [`Accounted`]; runs last.
pub(crate) fn accounted_windows() -> WrapNodes {
    WrapNodes::new(
        "accounted_windows",
        |node| matches!(node.name(), "WindowAggExec" | "BoundedWindowAggExec"),
        |window| Arc::new(Accounted::window(window)),
    )
}

/// One side of a window operator's account (see the module doc): the window itself, whose
/// output pays rows back, or, at execution, its input, which reserves each batch as it
/// enters. One plan node for both: they differ only in what their stream does.
#[derive(Debug)]
pub(crate) struct Accounted {
    child: Arc<dyn ExecutionPlan>,
    side: Side,
}

#[derive(Debug, Clone)]
enum Side {
    /// Above the window (`child` is the window operator).
    Window,
    /// Between the window and its input (`child` is the input), for one execution.
    Input(Arc<Ledger>),
}

impl Accounted {
    fn window(window: Arc<dyn ExecutionPlan>) -> Self {
        Accounted {
            child: window,
            side: Side::Window,
        }
    }

    /// The window's rows in, minus its rows out, reserved in `context`'s pool.
    fn execute_window(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let reservation = MemoryConsumer::new(format!("window rows held[{partition}]"))
            .register(context.memory_pool());
        let ledger = Arc::new(Ledger {
            held: Mutex::new(Held {
                reservation,
                rows: 0,
            }),
        });
        let [input] = self.child.children()[..] else {
            return Err(DataFusionError::Internal(
                "a window operator has one input".into(),
            ));
        };
        let fed = Arc::new(Accounted {
            child: Arc::clone(input),
            side: Side::Input(Arc::clone(&ledger)),
        });
        // The same window over the same input, fed through the ledger: its properties are the
        // input's, so the window's own need not be computed again.
        let window = Arc::clone(&self.child).replace_children(
            vec![fed],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
        )?;
        let output = window.execute(partition, context)?;
        let schema = output.schema();
        let paid = output.map(move |batch| {
            if let Ok(batch) = &batch {
                ledger.released(batch.num_rows());
            }
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, paid)))
    }
}

impl DisplayAs for Accounted {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

impl ExecutionPlan for Accounted {
    fn name(&self) -> &str {
        match self.side {
            Side::Window => "AccountedWindow",
            Side::Input(_) => "LedgerInput",
        }
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.child.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.child]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "{} has one child",
                self.name()
            )));
        }
        Ok(Arc::new(Accounted {
            child: children.swap_remove(0),
            side: self.side.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Side::Input(ledger) = &self.side else {
            return self.execute_window(partition, context);
        };
        let input = self.child.execute(partition, context)?;
        let schema = input.schema();
        let ledger = Arc::clone(ledger);
        let counted = input.map(move |batch| {
            let batch = batch?;
            ledger.entered(&batch)?;
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }
}

/// The bytes a window operator holds, as rows in minus rows out.
#[derive(Debug)]
struct Ledger {
    held: Mutex<Held>,
}

#[derive(Debug)]
struct Held {
    reservation: MemoryReservation,
    rows: usize,
}

impl Ledger {
    /// Reserves `batch`'s size as it enters the window, or refuses it.
    fn entered(&self, batch: &RecordBatch) -> Result<()> {
        let bytes = slice_bytes(batch);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.reservation.try_grow(bytes)?;
        held.rows += batch.num_rows();
        Ok(())
    }

    /// Releases the share of the held bytes that `rows` rows leaving the window stand for.
    fn released(&self, rows: usize) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.rows == 0 {
            return;
        }
        let rows = rows.min(held.rows);
        let bytes = (held.reservation.size() as u128 * rows as u128 / held.rows as u128) as usize;
        held.reservation.shrink(bytes);
        held.rows -= rows;
    }
}

/// The memory of `batch`'s own rows: a slice of a larger array counts its part, not the
/// whole buffer (which `get_array_memory_size` would report for each slice).
fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn context(pool_bytes: usize) -> (SessionContext, Arc<dyn MemoryPool>) {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(pool_bytes));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()
            .unwrap();
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(accounted_windows()))
            .build();
        (SessionContext::new_with_state(state), pool)
    }

    async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    /// The first row's columns of an answer, as integers.
    fn first_row(batches: &[RecordBatch]) -> Vec<i64> {
        let batch = batches.iter().find(|b| b.num_rows() > 0).unwrap();
        batch
            .columns()
            .iter()
            .map(|column| {
                let column =
                    arrow::compute::cast(column, &arrow::datatypes::DataType::Int64).unwrap();
                column
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_window_over_everything_stops_at_the_pool() {
        let (ctx, pool) = context(64 << 20);
        // 10M rows of 8 bytes, held whole by `OVER ()`: 80 MB against a 64 MiB pool. Refused
        // by the window's own reservation, before the memory is taken.
        let error = run(
            &ctx,
            "SELECT max(s) FROM (SELECT sum(value) OVER () AS s FROM generate_series(1, 10000000))",
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("Resources exhausted"), "{error}");
        assert!(error.contains("window rows held"), "{error}");
        assert_eq!(
            pool.reserved(),
            0,
            "everything given back after the failure"
        );
    }

    #[tokio::test]
    async fn windows_that_hold_little_run_and_answer_right() {
        let (ctx, pool) = context(64 << 20);
        let plan = run(
            &ctx,
            "EXPLAIN SELECT sum(value) OVER () FROM generate_series(1, 10)",
        )
        .await
        .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(text.contains("AccountedWindow"), "{text}");

        // A running sum and a partitioned row number over a million rows: their rows leave as
        // fast as they come, so the rows held never add up to the pool.
        let batches = run(
            &ctx,
            "SELECT max(s), max(r), count(*) FROM (SELECT \
               sum(value) OVER (ORDER BY value ROWS UNBOUNDED PRECEDING) AS s, \
               row_number() OVER (PARTITION BY value % 1000 ORDER BY value) AS r \
             FROM generate_series(1, 1000000))",
        )
        .await
        .unwrap();
        // sum(1..1e6) = 1e6 * (1e6 + 1) / 2; each residue class has 1000 rows.
        assert_eq!(first_row(&batches), vec![500_000_500_000, 1000, 1_000_000]);
        let whole = run(
            &ctx,
            "SELECT DISTINCT sum(value) OVER () FROM generate_series(1, 1000)",
        )
        .await
        .unwrap();
        assert_eq!(first_row(&whole), vec![500_500]);
        assert_eq!(pool.reserved(), 0, "every reservation given back");
    }

    #[test]
    fn rows_leaving_give_back_their_share() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let ledger = Ledger {
            held: Mutex::new(Held {
                reservation: MemoryConsumer::new("w").register(&pool),
                rows: 0,
            }),
        };
        let batch = RecordBatch::try_from_iter([(
            "v",
            Arc::new(arrow::array::Int64Array::from_iter_values(0..1000)) as arrow::array::ArrayRef,
        )])
        .unwrap();
        ledger.entered(&batch).unwrap();
        // A slice counts its own rows, not the buffer it shares.
        ledger.entered(&batch.slice(0, 100)).unwrap();
        assert_eq!(pool.reserved(), 8000 + 800);
        ledger.released(550);
        assert_eq!(pool.reserved(), 4400);
        ledger.released(10_000);
        assert_eq!(pool.reserved(), 0);
        // Beyond the pool: refused, nothing counted.
        let big = RecordBatch::try_from_iter([(
            "v",
            Arc::new(arrow::array::Int64Array::from_iter_values(0..200_000))
                as arrow::array::ArrayRef,
        )])
        .unwrap();
        assert!(ledger.entered(&big).is_err());
        assert_eq!(pool.reserved(), 0);
    }
}
