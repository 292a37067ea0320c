//! `vaxlake cluster scheduler | executor`: the nodes of the Ballista cluster that `--cluster`
//! sends queries to (crate `vaxlake-cluster`). Only wiring: flags into options.

use anyhow::Result;
use vaxlake_cluster::{ExecutorOptions, SchedulerOptions};

use crate::cli::ClusterCommand;

/// Runs a scheduler or an executor until the process is stopped.
pub async fn run(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Scheduler {
            listen,
            external_host,
        } => {
            if !listen.ip().is_loopback() {
                tracing::warn!(%listen, "the scheduler has no authentication: keep this address on a network only vaxlake's servers and executors reach");
            }
            vaxlake_cluster::run_scheduler(SchedulerOptions {
                listen,
                external_host,
            })
            .await?
        }
        ClusterCommand::Executor {
            scheduler,
            concurrent_tasks,
            bind_host,
            port,
            external_host,
            work_dir,
            memory_limit_mb,
        } => {
            vaxlake_cluster::run_executor(ExecutorOptions {
                scheduler,
                concurrent_tasks,
                bind_host,
                port,
                external_host,
                work_dir,
                memory_limit: memory_limit_mb.map(|mib| mib.saturating_mul(1 << 20)),
            })
            .await?
        }
    }
    Ok(())
}
