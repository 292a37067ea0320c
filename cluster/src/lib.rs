//! vaxlake's Apache DataFusion Ballista cluster: `vaxlake cluster scheduler` and `vaxlake
//! cluster executor`. Ballista's own scheduler and executor processes, started with what a
//! vaxlake plan needs on the other side (see `vaxlake_query::cluster`): the codec that
//! carries pinned Delta snapshots and reference tables, the views' functions, and object
//! stores configured from the standard AWS environment, so each executor reads the
//! warehouse's Parquet files itself.
//!
//! The cluster holds no warehouse state: clients (`--cluster df://HOST:PORT`) pin table
//! versions and send them with each query, so any number of clients, on any warehouses the
//! executors can reach, share one cluster.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use vaxlake_query::cluster::{server_config, server_state, ClusterCodec, ObjectStores};

/// Why a scheduler or an executor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Query(#[from] vaxlake_query::QueryError),
    #[error("ballista: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Config(String),
}

/// Where a scheduler listens and how executors reach it.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub listen: SocketAddr,
    /// The host name executors and clients use for this scheduler; default: the listen
    /// address's IP.
    pub external_host: Option<String>,
}

/// Runs a scheduler until the process ends.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<(), ClusterError> {
    let session_config = server_config()?;
    let stores = Arc::new(ObjectStores::default());
    let runtime = vaxlake_query::cluster::runtime(stores)?;
    let mut config = SchedulerConfig::default()
        .with_override_config_producer(Arc::new(move || session_config.clone()))
        .with_override_session_builder(Arc::new(move |config| {
            server_state(config, runtime.clone())
        }));
    config.bind_host = options.listen.ip().to_string();
    config.bind_port = options.listen.port();
    config.external_host = options
        .external_host
        .unwrap_or_else(|| options.listen.ip().to_string());
    config.override_logical_codec = Some(Arc::new(ClusterCodec::new()?));
    // Tasks dealt to the executors in turn: each reads its share of the files from object
    // storage, which is what the cluster is for.
    config.task_distribution = TaskDistributionPolicy::RoundRobin;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    tracing::info!(listen = %options.listen, "vaxlake cluster scheduler");
    start_server(cluster, options.listen, Arc::new(config)).await?;
    Ok(())
}

/// What an executor offers and where it finds its scheduler.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// `HOST:PORT` of the scheduler.
    pub scheduler: String,
    /// Tasks run at once; default: the number of cores.
    pub concurrent_tasks: Option<usize>,
    /// Address the executor's Flight service (shuffle reads) binds to.
    pub bind_host: String,
    /// Port of the Flight service; the gRPC service takes the next one.
    pub port: u16,
    /// Host name the others use to reach this executor; default: `bind_host`.
    pub external_host: Option<String>,
    /// Directory for shuffle files and spills; default: a fresh temporary directory.
    pub work_dir: Option<String>,
    /// Memory all tasks of this executor may use, in bytes; default: Ballista's share of the
    /// machine's memory.
    pub memory_limit: Option<u64>,
}

/// Runs an executor until the process ends.
pub async fn run_executor(options: ExecutorOptions) -> Result<(), ClusterError> {
    let (scheduler_host, scheduler_port) = split_host_port(&options.scheduler)?;
    let stores = Arc::new(ObjectStores::default());
    let functions = {
        let runtime = vaxlake_query::cluster::runtime(stores.clone())?;
        BallistaFunctionRegistry::from(&server_state(server_config()?, runtime)?)
    };
    let session_config = server_config()?;
    let work_dir = options.work_dir.clone();
    let mut config = ExecutorProcessConfig {
        scheduler_host,
        scheduler_port,
        bind_host: options.bind_host.clone(),
        external_host: Some(options.external_host.unwrap_or(options.bind_host)),
        port: options.port,
        grpc_port: options.port.checked_add(1).ok_or_else(|| {
            ClusterError::Config("the executor needs two ports: PORT and PORT+1".into())
        })?,
        work_dir: options.work_dir,
        memory_pool_size: options.memory_limit,
        override_logical_codec: Some(Arc::new(ClusterCodec::new()?)),
        override_function_registry: Some(Arc::new(functions)),
        override_config_producer: Some(Arc::new(move || session_config.clone())),
        override_runtime_producer: Some(Arc::new(move |_config| {
            let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
            if let Some(dir) = &work_dir {
                runtime = runtime.with_temp_file_path(dir.clone());
            }
            runtime.build_arc()
        })),
        ..ExecutorProcessConfig::default()
    };
    if let Some(tasks) = options.concurrent_tasks {
        config.vcores = tasks.max(1);
    }
    tracing::info!(scheduler = %options.scheduler, port = config.port, tasks = config.vcores, "vaxlake cluster executor");
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

fn split_host_port(address: &str) -> Result<(String, u16), ClusterError> {
    let address = address.strip_prefix("df://").unwrap_or(address);
    let (host, port) = address.rsplit_once(':').ok_or_else(|| {
        ClusterError::Config(format!("scheduler '{address}': expected HOST:PORT"))
    })?;
    let port = port
        .parse()
        .map_err(|_| ClusterError::Config(format!("scheduler '{address}': bad port")))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses() {
        assert_eq!(
            split_host_port("127.0.0.1:50050").unwrap(),
            ("127.0.0.1".to_string(), 50050)
        );
        assert_eq!(
            split_host_port("df://sched:7").unwrap(),
            ("sched".to_string(), 7)
        );
        assert!(split_host_port("sched").is_err());
    }
}
