//! `vaxlake coverage`: coverage, curves, dropout, timeliness and the indicator table.

use anyhow::{bail, Result};
use vaxlake_query::coverage::{self as cov, CoverageEngine};
use vaxlake_query::output::{render, Format};

use crate::cli::CoverageArgs;
use crate::repeat::repeated;

/// Runs `vaxlake coverage`.
pub async fn run(args: CoverageArgs) -> Result<()> {
    let (wh, suppression) =
        super::suppressed::open(&args.warehouse, &args.cluster, args.suppression_threshold).await?;
    let engine = CoverageEngine::new(wh, suppression)?;
    let format = args.format.output();
    if args.list {
        print!("{}", render(&engine.indicators(), format)?);
        return Ok(());
    }
    print!("{}", coverage_answer(&engine, &args, format).await?);
    Ok(())
}

/// One answer of `vaxlake coverage` (everything but --list), answered `--repeat` times and
/// printed as `format`.
async fn coverage_answer(
    engine: &CoverageEngine,
    args: &CoverageArgs,
    format: Format,
) -> Result<String> {
    let repeat = args.repeat;
    if args.all {
        let answer = repeated(repeat, 6, || async { Ok(engine.table().await?) }).await?;
        return Ok(render(answer.as_ref(), format)?);
    }
    let (Some(indicator), Some(span)) = (args.indicator.clone(), args.cohort) else {
        bail!("--indicator and --cohort are required (or --all, or --list)");
    };
    let single_year_only = args.curve || args.dropout_from.is_some() || args.timeliness;
    if span.is_pooled() && single_year_only {
        bail!("pooled cohorts ({span}) apply to coverage itself; curves, dropout and timeliness take one birth year");
    }
    let cohort = span.first;
    let text = if args.curve {
        let query = cov::CurveQuery {
            indicator,
            cohort,
            max_age_months: args.max_age_months,
        };
        let answer = repeated(repeat, 6, || async { Ok(engine.curve(&query).await?) }).await?;
        render(answer.as_ref(), format)?
    } else if let Some(from) = args.dropout_from.clone() {
        let query = cov::DropoutQuery {
            from,
            to: indicator,
            cohort,
            age_months: args.age_months,
            by: args.by,
        };
        let answer = repeated(repeat, 6, || async { Ok(engine.dropout(&query).await?) }).await?;
        render(answer.as_ref(), format)?
    } else if args.timeliness {
        let query = cov::TimelinessQuery {
            indicator,
            cohort,
            by: args.by,
        };
        let answer = repeated(repeat, 6, || async { Ok(engine.timeliness(&query).await?) }).await?;
        render(answer.as_ref(), format)?
    } else {
        let query = cov::CoverageQuery {
            indicator,
            cohort: span,
            age_months: args.age_months,
            by: args.by,
        };
        let answer = repeated(repeat, 6, || async { Ok(engine.coverage(&query).await?) }).await?;
        render(answer.as_ref(), format)?
    };
    Ok(text)
}
