//! `--repeat N` of `sql`, `coverage` and `effectiveness`: the benchmarks time each run.

use anyhow::Result;
use std::future::Future;

/// Answers `repeat` times (at least once) and returns the last answer. With more than one
/// run, each run's time goes to stderr as `run=N seconds=S` with `decimals` decimals, the
/// line the benchmarks read.
pub async fn repeated<T, F, A>(repeat: u32, decimals: usize, mut answer: F) -> Result<T>
where
    F: FnMut() -> A,
    A: Future<Output = Result<T>>,
{
    let mut last = None;
    for run in 1..=repeat.max(1) {
        let started = std::time::Instant::now();
        last = Some(answer().await?);
        if repeat > 1 {
            eprintln!(
                "run={run} seconds={:.decimals$}",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(last.expect("at least one run"))
}
