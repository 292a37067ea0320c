//! `vaxlake sql`: one read-only query over the warehouse.

use anyhow::Result;

use crate::cli::{ClusterArg, Format, WarehouseArg};
use crate::repeat::repeated;

/// Runs `vaxlake sql`: the answer on stdout, a note on stderr when it was cut at the row
/// limit.
pub async fn run(
    warehouse: WarehouseArg,
    cluster: ClusterArg,
    query: String,
    format: Format,
    repeat: u32,
) -> Result<()> {
    let wh = vaxlake_query::Warehouse::open(
        &warehouse.warehouse,
        cluster.query_options(vaxlake_query::QueryOptions::default()),
    )
    .await?;
    let answer = repeated(repeat, 4, || async {
        Ok::<_, anyhow::Error>(wh.sql(&query).await?)
    })
    .await?;
    let text = answer.render(format.output())?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    if answer.truncated {
        eprintln!("note: the answer was cut at the row limit");
    }
    Ok(())
}
