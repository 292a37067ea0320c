//! `vaxlake effectiveness`: vaccine effectiveness, or rates by vaccination status.

use anyhow::Result;
use vaxlake_query::effectiveness::{EffectivenessEngine, EffectivenessQuery};
use vaxlake_query::output::{render, Format};

use crate::cli::EffectivenessArgs;
use crate::repeat::repeated;

/// Runs `vaxlake effectiveness`.
pub async fn run(args: EffectivenessArgs) -> Result<()> {
    let (wh, suppression) =
        super::suppressed::open(&args.warehouse, &args.cluster, args.suppression_threshold).await?;
    let engine = EffectivenessEngine::new(wh, suppression)?;
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
        episode_days: Some(args.episode_days),
    };
    let format = args.format.output();
    let text = if args.rates {
        let answer = repeated(args.repeat, 6, || async { Ok(engine.rates(&query).await?) }).await?;
        render(answer.as_ref(), format)?
    } else {
        let answer = repeated(args.repeat, 6, || async {
            Ok(engine.effectiveness(&query).await?)
        })
        .await?;
        // JSON is the API's body; a table or CSV has one line per estimate.
        match format {
            Format::Json => render(answer.as_ref(), format)?,
            Format::Csv | Format::Table => render(&answer.estimates(), format)?,
        }
    };
    print!("{text}");
    Ok(())
}
