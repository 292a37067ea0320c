//! What `vaxlake coverage` and `vaxlake effectiveness` both need before they answer: the
//! warehouse opened for reading and the checked suppression threshold.

use anyhow::{bail, Result};
use vaxlake_query::coverage::Suppression;
use vaxlake_query::{QueryOptions, Warehouse};

use crate::cli::{ClusterArg, WarehouseArg};

/// Opens `warehouse` with the default query options (on `cluster` when given) and turns `--suppression-threshold` into
/// a [`Suppression`], refusing 0 first so a bad flag fails before any table is read.
pub async fn open(
    warehouse: &WarehouseArg,
    cluster: &ClusterArg,
    threshold: u64,
) -> Result<(Warehouse, Suppression)> {
    if threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let wh = Warehouse::open(
        &warehouse.warehouse,
        cluster.query_options(QueryOptions::default()),
    )
    .await?;
    Ok((wh, Suppression { threshold }))
}
