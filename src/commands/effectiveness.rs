//! `vaxlake effectiveness`: vaccine effectiveness, or rates by vaccination status.

use anyhow::{bail, Result};

use crate::cli::{EffectivenessArgs, Format};
use crate::repeat::repeated;

/// Runs `vaxlake effectiveness`.
pub async fn run(args: EffectivenessArgs) -> Result<()> {
    use vaxlake_query::coverage::{render, Format as Rendered, Suppression};
    use vaxlake_query::effectiveness::{EffectivenessEngine, EffectivenessQuery};
    if args.suppression_threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let wh = vaxlake_query::Warehouse::open(
        &args.warehouse.warehouse,
        vaxlake_query::QueryOptions::default(),
    )
    .await?;
    let engine = EffectivenessEngine::new(
        wh,
        Suppression {
            threshold: args.suppression_threshold,
        },
    )?;
    let query = EffectivenessQuery {
        antigen: args.antigen,
        disease: args.disease,
        from: args.from,
        to: args.to,
        lag_days: Some(args.lag_days),
        dose: Some(args.dose),
        by: args.by,
        doses_since: args.doses_since,
        outcome: Some(args.outcome),
    };
    let answer = repeated(args.repeat, 6, || async {
        Ok::<_, anyhow::Error>(if args.rates {
            engine.rates(&query).await?
        } else {
            engine.effectiveness(&query).await?
        })
    })
    .await?;
    let format = match args.format {
        Format::Json => {
            print!("{}", render(&answer, Rendered::Json)?);
            return Ok(());
        }
        Format::Csv => Rendered::Csv,
        Format::Table => Rendered::Table,
    };
    if args.rates {
        print!("{}", render(&answer, format)?);
        return Ok(());
    }
    // A table: the Mantel-Haenszel and crude estimates, then one line per age band.
    let mut rows = Vec::new();
    for (name, estimate) in [
        ("overall (MH)", &answer["overall"]),
        ("crude", &answer["crude"]),
    ] {
        let mut row = estimate.clone();
        if let Some(map) = row.as_object_mut() {
            map.insert("estimate".into(), serde_json::json!(name));
            map.remove("estimator");
            map.remove("screening");
        }
        rows.push(row);
    }
    for band in answer["rows"].as_array().into_iter().flatten() {
        let mut row = band.clone();
        if let Some(map) = row.as_object_mut() {
            let label = map.remove("age_band").unwrap_or_default();
            map.insert("estimate".into(), label);
            map.remove("screening");
        }
        rows.push(row);
    }
    print!("{}", render(&serde_json::json!({ "rows": rows }), format)?);
    Ok(())
}
