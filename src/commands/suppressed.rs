//! What `vaxlake coverage` and `vaxlake effectiveness` both need before they answer: the
//! warehouse opened for reading and the checked suppression threshold.

use anyhow::{bail, Result};
use vaxlake_query::coverage::Suppression;
use vaxlake_query::{QueryOptions, Warehouse};

use crate::cli::WarehouseArg;

/// Opens `warehouse` with the default query options and turns `--suppression-threshold` into
/// a [`Suppression`], refusing 0 first so a bad flag fails before any table is read.
pub async fn open(warehouse: &WarehouseArg, threshold: u64) -> Result<(Warehouse, Suppression)> {
    if threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let wh = Warehouse::open(&warehouse.warehouse, QueryOptions::default()).await?;
    Ok((wh, Suppression { threshold }))
}
