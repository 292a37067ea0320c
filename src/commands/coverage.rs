//! `vaxlake coverage`: coverage, curves, dropout, timeliness and the indicator table.

use anyhow::{bail, Result};

use crate::cli::{CoverageArgs, Format};
use crate::repeat::repeated;

/// Runs `vaxlake coverage`.
pub async fn run(args: CoverageArgs) -> Result<()> {
    use vaxlake_query::coverage::{self as cov, CoverageEngine, Suppression};
    if args.suppression_threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let wh = vaxlake_query::Warehouse::open(
        &args.warehouse.warehouse,
        vaxlake_query::QueryOptions::default(),
    )
    .await?;
    let engine = CoverageEngine::new(
        wh,
        Suppression {
            threshold: args.suppression_threshold,
        },
    )?;
    let format = match args.format {
        Format::Table => cov::Format::Table,
        Format::Csv => cov::Format::Csv,
        Format::Json => cov::Format::Json,
    };
    if args.list {
        let list = engine.indicators();
        let answer = serde_json::json!({ "rows": list["indicators"] });
        let shown = if args.format == Format::Json {
            &list
        } else {
            &answer
        };
        print!("{}", cov::render(shown, format)?);
        return Ok(());
    }
    let answer = repeated(args.repeat, 6, || coverage_answer(&engine, &args)).await?;
    print!("{}", cov::render(&answer, format)?);
    Ok(())
}

/// One answer of `vaxlake coverage` (everything but --list).
async fn coverage_answer(
    engine: &vaxlake_query::coverage::CoverageEngine,
    args: &CoverageArgs,
) -> Result<std::sync::Arc<serde_json::Value>> {
    use vaxlake_query::coverage as cov;
    if args.all {
        return Ok(engine.table().await?);
    }
    let (Some(indicator), Some(cohort)) = (args.indicator.clone(), args.cohort) else {
        bail!("--indicator and --cohort are required (or --all, or --list)");
    };
    let answer = if args.curve {
        engine
            .curve(&cov::CurveQuery {
                indicator,
                cohort,
                max_age_months: args.max_age_months,
            })
            .await?
    } else if let Some(from) = args.dropout_from.clone() {
        engine
            .dropout(&cov::DropoutQuery {
                from,
                to: indicator,
                cohort,
                age_months: args.age_months,
                by: args.by,
            })
            .await?
    } else if args.timeliness {
        engine
            .timeliness(&cov::TimelinessQuery {
                indicator,
                cohort,
                by: args.by,
            })
            .await?
    } else {
        engine
            .coverage(&cov::CoverageQuery {
                indicator,
                cohort,
                age_months: args.age_months,
                by: args.by,
            })
            .await?
    };
    Ok(answer)
}
