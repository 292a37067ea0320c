//! Makes runaway joins cancellable.
//!
//! DataFusion yields to the tokio scheduler when its leaves (scans) use up their budget. A
//! join can turn one input batch into millions of output batches without reading its
//! inputs again, so a cross join of two big tables never yields: the query timeout cannot
//! fire, timers stall, and the server stops answering (measured: a 300 ms timeout fired
//! after 12–27 s on 2 cores). Wrapping every join (and unnest, the other row multiplier)
//! in [`CooperativeExec`] charges the budget per output batch, so such a plan yields every
//! few batches and the timeout cancels it within milliseconds.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;

/// Physical optimiser rule wrapping joins and unnests in [`CooperativeExec`]; runs last.
#[derive(Debug, Default)]
pub(crate) struct CooperativeRowMultipliers;

impl CooperativeRowMultipliers {
    fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
        let name = plan.name();
        name.contains("Join") || name == "UnnestExec"
    }
}

impl PhysicalOptimizerRule for CooperativeRowMultipliers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if Self::multiplies_rows(node.as_ref()) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "cooperative_row_multipliers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
