//! Running the warehouse's queries on an Apache DataFusion Ballista cluster
//! (`--cluster df://HOST:PORT`): the session a [`crate::Warehouse`] builds then plans as usual
//! (sandbox, views, limits on the plan) and hands the logical plan to the scheduler, which
//! plans it into stages for the executors.
//!
//! What travels with a plan: each Delta table as the files of its pinned version
//! ([`PinnedTable`]) and each reference table by name ([`ReferenceTable`]: the scheduler is
//! the same vaxlake binary, with the same reference files compiled in). [`ClusterCodec`] writes
//! and reads both; the scheduler and executors (crate `vaxlake-cluster`) are started with it.
//! Executors read the Parquet files from the object store themselves ([`ObjectStores`]).

mod codec;
mod pinned;
mod stores;

pub use codec::ClusterCodec;
pub use pinned::PinnedTable;
pub use stores::ObjectStores;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
    SessionConfigExt,
};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{AggregateUDF, Expr, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

use crate::QueryError;

/// `config` made a Ballista client's: the cluster codec (over the reference tables the
/// warehouse already loaded), and Ballista's settings.
pub(crate) fn client_config(
    config: SessionConfig,
    reference: &crate::reference::ReferenceTables,
) -> SessionConfig {
    config
        .upgrade_for_ballista()
        .with_ballista_logical_extension_codec(Arc::new(ClusterCodec::with_reference(
            reference.clone(),
        )))
}

/// The configuration the scheduler gives every session: Ballista's, the cluster codec, and
/// the Parquet settings of the embedded engine (filters evaluated inside the reader).
pub fn server_config() -> Result<SessionConfig, QueryError> {
    Ok(SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(ClusterCodec::new()?))
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true))
}

/// The object stores of a scheduler's or executor's sessions, one per process.
pub fn runtime(stores: Arc<ObjectStores>) -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_object_store_registry(stores)
        .build_arc()
}

/// The session the scheduler plans in and the executors take their functions from:
/// DataFusion's and Ballista's functions and the warehouse views' own (`latest_by`, the dose
/// validity window), which a plan names and the other side must know.
pub fn server_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Result<SessionState> {
    let ViewFunctions {
        aggregates,
        windows,
    } = view_functions()
        .map_err(|error| datafusion::common::DataFusionError::Configuration(error.to_string()))?;
    let mut aggregate_functions = ballista_aggregate_functions();
    aggregate_functions.extend(aggregates);
    let mut window_functions = ballista_window_functions();
    window_functions.extend(windows);
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(aggregate_functions)
        .with_window_functions(window_functions)
        .build())
}

/// The functions the views of `sql/views/` use (see `views.rs`).
struct ViewFunctions {
    aggregates: Vec<Arc<AggregateUDF>>,
    windows: Vec<Arc<WindowUDF>>,
}

fn view_functions() -> Result<ViewFunctions, QueryError> {
    let rules = vaxlake_catalog::validity::DoseRules::builtin()?;
    Ok(ViewFunctions {
        aggregates: vec![Arc::new(crate::latest::latest_by_udaf())],
        windows: vec![Arc::new(crate::validity_window::dose_validity_udwf(
            Arc::new(rules),
        ))],
    })
}

/// One of the reference tables (`vaccines`, `vaccine_antigens`, `communes`): sent to the
/// cluster by name, found there in the binary's own reference data.
#[derive(Debug)]
pub struct ReferenceTable {
    name: String,
    inner: Arc<dyn TableProvider>,
}

impl ReferenceTable {
    pub fn new(name: &str, inner: Arc<dyn TableProvider>) -> ReferenceTable {
        ReferenceTable {
            name: name.to_string(),
            inner,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait]
impl TableProvider for ReferenceTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }
}

/// Parses `df://HOST:PORT` (the form CONTRACTS.md gives) into the scheduler's address.
pub fn scheduler_address(url: &str) -> std::result::Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("cluster '{url}': {error}"))?;
    if parsed.scheme() != "df" {
        return Err(format!("cluster '{url}': expected df://HOST:PORT"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("cluster '{url}': expected df://HOST:PORT"))?;
    let port = parsed.port().unwrap_or(50050);
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls() {
        assert_eq!(
            scheduler_address("df://127.0.0.1:50050").unwrap(),
            "127.0.0.1:50050"
        );
        assert_eq!(scheduler_address("df://sched").unwrap(), "sched:50050");
        assert!(scheduler_address("http://sched:1").is_err());
        assert!(scheduler_address("sched:1").is_err());
    }
}
