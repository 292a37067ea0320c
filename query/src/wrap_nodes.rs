//! A physical optimiser rule that wraps every plan node of one kind in another node: joins in
//! cooperative scheduling ([`crate::cooperative`]), window operators in memory accounting
//! ([`crate::window_memory`]). Both run last, after DataFusion's own rules have placed the
//! nodes they wrap.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Wraps each node `wraps` accepts in what `wrap` makes of it.
#[derive(Debug)]
pub(crate) struct WrapNodes {
    name: &'static str,
    wraps: fn(&dyn ExecutionPlan) -> bool,
    wrap: fn(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan>,
}

impl WrapNodes {
    pub(crate) fn new(
        name: &'static str,
        wraps: fn(&dyn ExecutionPlan) -> bool,
        wrap: fn(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan>,
    ) -> Self {
        WrapNodes { name, wraps, wrap }
    }
}

impl PhysicalOptimizerRule for WrapNodes {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if (self.wraps)(node.as_ref()) {
                Ok(Transformed::yes((self.wrap)(node)))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        self.name
    }

    fn schema_check(&self) -> bool {
        true
    }
}
