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

use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::wrap_nodes::WrapNodes;

/// Physical optimiser rule wrapping joins and unnests in [`CooperativeExec`]; runs last.
pub(crate) fn cooperative_row_multipliers() -> WrapNodes {
    WrapNodes::new("cooperative_row_multipliers", multiplies_rows, |node| {
        Arc::new(CooperativeExec::new(node))
    })
}

fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || name == "UnnestExec"
}
