//! The warehouse as DataFusion sees it: one session per set of table versions, rebuilt when
//! the ingest commits a newer version, and swapped in whole so a query never mixes versions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ballista::prelude::SessionContextExt;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::{DeltaTable, DeltaTableBuilder};
use url::Url;

use vaxlake_catalog::OrderSecret;

use crate::bounded::bound_growing_functions;
use crate::cooperative::cooperative_row_multipliers;
use crate::order_secret::read_order_secret;
use crate::reference::ReferenceTables;
use crate::sandbox::{self, QueryLimits};
use crate::views::create_views;
use crate::window_memory::accounted_windows;
use crate::{QueryAnswer, QueryError, QueryStream};

/// Delta tables registered when present under the warehouse root, by directory name: the
/// catalogue's tables opened to analysts and its views (`vaxlake_catalog::analyst_tables`).
/// An allow-list rather than "every directory": tables added later (audit, keys, extracts)
/// must be opened to analysts on purpose. `antigen_doses`, once the ingest materialises
/// it, replaces the view of the same name.
pub static DEFAULT_TABLES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| vaxlake_catalog::analyst_tables().collect());

/// The audit trail's table under the warehouse root: written by the server, read by
/// operators and by the extract stage (who created an extract). Never among
/// [`DEFAULT_TABLES`]: analysts' SQL does not see who asked what.
pub const AUDIT_TABLE: &str = "audit";

/// How the warehouse runs queries. Start from [`QueryOptions::default`] and change what
/// you need with the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueryOptions {
    /// Memory all running queries may hold together, in bytes; sorts, aggregates and joins
    /// spill to the OS temporary directory beyond their share; other operators, the answer
    /// being collected and functions such as `repeat` fail with
    /// [`QueryError::ResourcesExhausted`]. One answer may hold at most a quarter of it,
    /// since encoding it as JSON or CSV takes a few times more. Default 2 GiB.
    pub memory_limit: usize,
    /// Memory one SQL query (`/api/sql`, `vaxlake sql`) may hold of `memory_limit`, in bytes,
    /// so that one query cannot starve the others (dashboards, coverage): beyond it the query
    /// spills or fails as above. `None` (the default): half of `memory_limit`.
    pub query_memory_limit: Option<usize>,
    /// Bytes all running queries may spill to the temporary directory together; beyond it
    /// a query fails with [`QueryError::ResourcesExhausted`] instead of filling the disk.
    /// Default 16 GiB.
    pub spill_limit: u64,
    /// Time one query may take before it is cancelled. Default 60 s.
    pub query_timeout: Duration,
    /// Rows one query returns at most. Default 100 000.
    pub max_rows: usize,
    /// Parallelism of one query. Default: the number of cores.
    pub target_partitions: usize,
    /// How often, at most, a query checks the tables for a newer Delta version. Default 1 s.
    pub refresh_interval: Duration,
    /// Delta tables looked for under the root. Default [`DEFAULT_TABLES`].
    pub tables: Vec<String>,
    /// A Ballista scheduler (`df://HOST:PORT`) to run the queries on, instead of this
    /// process (see [`crate::cluster`]). Default `None`.
    pub cluster: Option<String>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            memory_limit: 2 << 30,
            query_memory_limit: None,
            spill_limit: 16 << 30,
            query_timeout: Duration::from_secs(60),
            max_rows: 100_000,
            target_partitions: std::thread::available_parallelism().map_or(1, usize::from),
            refresh_interval: Duration::from_secs(1),
            tables: DEFAULT_TABLES.iter().map(|name| name.to_string()).collect(),
            cluster: None,
        }
    }
}

impl QueryOptions {
    /// See [`QueryOptions::memory_limit`].
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// See [`QueryOptions::query_memory_limit`].
    pub fn with_query_memory_limit(mut self, bytes: usize) -> Self {
        self.query_memory_limit = Some(bytes);
        self
    }

    /// See [`QueryOptions::spill_limit`].
    pub fn with_spill_limit(mut self, bytes: u64) -> Self {
        self.spill_limit = bytes;
        self
    }

    /// See [`QueryOptions::query_timeout`].
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// See [`QueryOptions::max_rows`].
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = max_rows;
        self
    }

    /// See [`QueryOptions::target_partitions`].
    pub fn with_target_partitions(mut self, partitions: usize) -> Self {
        self.target_partitions = partitions.max(1);
        self
    }

    /// See [`QueryOptions::refresh_interval`].
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// See [`QueryOptions::tables`].
    pub fn with_tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// See [`QueryOptions::cluster`]; checked when the warehouse opens.
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    fn limits(&self) -> QueryLimits {
        QueryLimits {
            timeout: self.query_timeout,
            max_rows: self.max_rows,
            memory_limit: self.memory_limit,
            query_memory_limit: self
                .query_memory_limit
                .unwrap_or(self.memory_limit / 2)
                .min(self.memory_limit),
        }
    }
}

/// The pseudonymised warehouse, ready for SQL: every Delta table present under the root
/// (see [`DEFAULT_TABLES`]), the reference tables `vaccines`, `vaccine_antigens` and
/// `communes`, and the views of `sql/views/` (`antigen_doses`). Every query goes through
/// the read-only sandbox. Cheap to clone; clones share one session and one memory pool.
///
/// ```no_run
/// # async fn example() -> Result<(), vaxlake_query::QueryError> {
/// use vaxlake_query::{QueryOptions, Warehouse};
/// let warehouse = Warehouse::open("/srv/vaxlake", QueryOptions::default()).await?;
/// let answer = warehouse.sql("SELECT count(*) AS doses FROM vaccinations").await?;
/// print!("{}", String::from_utf8_lossy(&answer.to_csv()?));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Warehouse {
    inner: Arc<Inner>,
}

struct Inner {
    root: Url,
    options: QueryOptions,
    /// Shared by every session snapshot: one memory pool for all queries.
    runtime: Arc<RuntimeEnv>,
    reference: ReferenceTables,
    current: RwLock<Arc<Snapshot>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

/// A session with every table registered at one version each, and the warehouse's
/// complement-order secret as of then.
pub(crate) struct Snapshot {
    pub ctx: SessionContext,
    pub versions: BTreeMap<String, i64>,
    /// Each table's Delta log, to read what a commit added (the coverage engine keeps its
    /// counts from the files added since the version it last read).
    pub logs: BTreeMap<String, deltalake::logstore::LogStoreRef>,
    /// `None` for a warehouse without one yet (the coverage engine then takes complements
    /// in the public order, and says so). Once read it is kept: the ingest never replaces it.
    pub order_secret: Option<OrderSecret>,
}

struct RefreshState {
    tables: BTreeMap<String, DeltaTable>,
    last_checked: Instant,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("root", &self.inner.root.as_str())
            .field("versions", &self.versions())
            .finish()
    }
}

impl Warehouse {
    /// Opens the warehouse at `root` (a local path, `file://` or object-store URL) and
    /// registers what is there. A root without tables (a fresh warehouse) opens too, with
    /// only the reference tables; tables appear once the ingest has written them.
    pub async fn open(root: &str, options: QueryOptions) -> Result<Warehouse, QueryError> {
        // deltalake's `s3` feature: without its handlers it does not know `s3://` URLs.
        deltalake::aws::register_handlers(None);
        let root_url = resolve_root(root)?;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::OsTmpDirectory)
                    .with_max_temp_directory_size(options.spill_limit),
            )
            .build_arc()?;
        let reference = ReferenceTables::load()?;

        let mut tables = BTreeMap::new();
        for name in &options.tables {
            let url = table_url(&root_url, name)?;
            if table_exists(&url).await? {
                tables.insert(name.clone(), load_table(&url).await?);
            }
        }
        let order_secret = read_order_secret(&root_url).await?;
        let snapshot =
            build_snapshot(&options, &runtime, &reference, &tables, order_secret).await?;
        tracing::info!(root = %root_url, versions = ?snapshot.versions, "warehouse opened");

        Ok(Warehouse {
            inner: Arc::new(Inner {
                root: root_url,
                options,
                runtime,
                reference,
                current: RwLock::new(Arc::new(snapshot)),
                refresh: tokio::sync::Mutex::new(RefreshState {
                    tables,
                    last_checked: Instant::now(),
                }),
            }),
        })
    }

    /// The root the tables are read from, as a URL.
    pub fn root(&self) -> &Url {
        &self.inner.root
    }

    /// The key-id properties of every ingest table present under the root
    /// (`vaxlake_catalog::keys`), read from their newest versions, in
    /// `vaxlake_catalog::warehouse_tables` order: what `vaxlake_catalog::check_keys` needs.
    pub async fn stored_keys(&self) -> Result<Vec<vaxlake_catalog::StoredKey>, QueryError> {
        let mut stored = Vec::new();
        for table in vaxlake_catalog::warehouse_tables() {
            let url = table_url(&self.inner.root, table.name)?;
            if table_exists(&url).await? {
                let delta = load_table(&url).await?;
                let snapshot = delta
                    .snapshot()
                    .map_err(|error| QueryError::warehouse(&url, error))?;
                stored.push(vaxlake_catalog::StoredKey::read(
                    table.name,
                    snapshot.metadata().configuration(),
                ));
            }
        }
        Ok(stored)
    }

    /// The options the warehouse was opened with.
    pub fn options(&self) -> &QueryOptions {
        &self.inner.options
    }

    /// The Delta version of each registered table, as of the last refresh: what answers
    /// are computed from, and what caches key on.
    pub fn versions(&self) -> BTreeMap<String, i64> {
        self.snapshot().versions.clone()
    }

    /// Runs one read-only query (see [`crate::sandbox`]) against the newest table
    /// versions, within the configured time limit and row cap.
    pub async fn sql(&self, sql: &str) -> Result<QueryAnswer, QueryError> {
        // Refuse before touching storage: a refused query costs nothing.
        sandbox::check(sql)?;
        self.refresh_if_due().await;
        let snapshot = self.snapshot();
        sandbox::run(
            &snapshot.ctx,
            sql,
            self.inner.options.limits(),
            &self.inner.root,
        )
        .await
    }

    /// [`Warehouse::sql`] for the doors that stream (Flight SQL, PostgreSQL wire): the same
    /// checks and limits, the rows handed on as the plan makes them (see [`QueryStream`]).
    pub async fn sql_stream(&self, sql: &str) -> Result<QueryStream, QueryError> {
        // Refuse before touching storage, as `sql` does.
        sandbox::check(sql)?;
        self.refresh_if_due().await;
        self.sql_stream_in(&self.snapshot().ctx, sql).await
    }

    /// A copy of the current session (tables at their versions, views, functions) with a
    /// catalog list of its own, for a door that adds to it (the PostgreSQL door's
    /// `pg_catalog`) without touching what every other query sees. Queries on it go
    /// through [`Warehouse::sql_stream_in`] and [`Warehouse::plan_in`], the same sandbox.
    pub fn session_copy(&self) -> Result<SessionContext, QueryError> {
        let snapshot = self.snapshot();
        let state = snapshot.ctx.state();
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        for name in state.catalog_list().catalog_names() {
            let Some(shared) = state.catalog_list().catalog(&name) else {
                continue;
            };
            let catalog = Arc::new(MemoryCatalogProvider::new());
            for schema in shared.schema_names() {
                if let Some(provider) = shared.schema(&schema) {
                    catalog.register_schema(&schema, provider)?;
                }
            }
            catalogs.register_catalog(name, catalog);
        }
        let state = SessionStateBuilder::new_from_existing(state)
            .with_catalog_list(catalogs)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// [`Warehouse::sql_stream`] on a session from [`Warehouse::session_copy`].
    pub async fn sql_stream_in(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<QueryStream, QueryError> {
        sandbox::run_stream(ctx, sql, self.inner.options.limits(), &self.inner.root).await
    }

    /// The columns of `sql` and the types of its parameters (`$1`, `$2`, ... in order;
    /// `None` where the planner cannot tell), checked and planned on `ctx` but not run.
    pub async fn plan_in(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<crate::sandbox::PlannedQuery, QueryError> {
        sandbox::plan(ctx, sql, self.inner.options.limits(), &self.inner.root).await
    }

    /// The columns `sql` would answer with, checked and planned but not run.
    pub async fn sql_schema(&self, sql: &str) -> Result<arrow::datatypes::SchemaRef, QueryError> {
        sandbox::check(sql)?;
        self.refresh_if_due().await;
        Ok(self.plan_in(&self.snapshot().ctx, sql).await?.schema)
    }

    /// Looks for newer Delta versions (and tables that appeared) now, and swaps in a new
    /// session if any. Returns whether anything changed.
    pub async fn refresh(&self) -> Result<bool, QueryError> {
        let mut state = self.inner.refresh.lock().await;
        self.refresh_locked(&mut state).await
    }

    /// [`Warehouse::refresh`] at most once per `refresh_interval`; a failed check is
    /// logged and the current versions keep being served. Public for servers, which call it
    /// before answering about table versions, so that a burst of requests checks the store
    /// once rather than once each.
    pub async fn refresh_if_due(&self) {
        let mut state = self.inner.refresh.lock().await;
        if state.last_checked.elapsed() < self.inner.options.refresh_interval {
            return;
        }
        if let Err(error) = self.refresh_locked(&mut state).await {
            tracing::warn!(%error, "could not check the warehouse for new table versions");
        }
    }

    /// The session of the current table versions, for engines inside this crate.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn refresh_locked(&self, state: &mut RefreshState) -> Result<bool, QueryError> {
        let inner = &self.inner;
        state.last_checked = Instant::now();
        let mut tables = state.tables.clone();
        let mut changed = Vec::new();
        for name in &inner.options.tables {
            let url = table_url(&inner.root, name)?;
            match tables.get_mut(name) {
                Some(table) => {
                    let latest = table
                        .get_latest_version()
                        .await
                        .map_err(|error| QueryError::warehouse(&url, error))?;
                    if table.version() != Some(latest) {
                        table
                            .update_incremental(None)
                            .await
                            .map_err(|error| QueryError::warehouse(&url, error))?;
                        changed.push(name.as_str());
                    }
                }
                None => {
                    if table_exists(&url).await? {
                        tables.insert(name.clone(), load_table(&url).await?);
                        changed.push(name.as_str());
                    }
                }
            }
        }
        // A warehouse without a secret gets one from its next ingest (before that ingest's
        // first commit) or from `vaxlake maintain`: look for it until it is there, so that
        // every door switches to it within a refresh interval of the others.
        let current = self.snapshot();
        let order_secret = match &current.order_secret {
            Some(secret) => Some(secret.clone()),
            None => read_order_secret(&inner.root).await?,
        };
        let secret_appeared = current.order_secret.is_none() && order_secret.is_some();
        if secret_appeared {
            tracing::info!("the warehouse's complement-order secret is there now");
        }
        if changed.is_empty() {
            if secret_appeared {
                let snapshot = Snapshot {
                    ctx: current.ctx.clone(),
                    versions: current.versions.clone(),
                    logs: current.logs.clone(),
                    order_secret,
                };
                *inner
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
            }
            return Ok(secret_appeared);
        }
        // A key rotation commits its tables one after the other (ingest/src/rekey.rs): until
        // its last commit some tables hold pseudonyms under the new key and some under the
        // old, and a join across them would silently match nothing. Answers keep coming from
        // the versions registered until every table carries the same key again.
        if let Some(key_ids) = mixed_key_ids(&tables) {
            tracing::info!(%key_ids, "a key rotation is under way: new table versions held back until every table carries the new key");
            return Ok(false);
        }
        let snapshot = build_snapshot(
            &inner.options,
            &inner.runtime,
            &inner.reference,
            &tables,
            order_secret,
        )
        .await?;
        tracing::info!(tables = ?changed, versions = ?snapshot.versions, "new table versions registered");
        *inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        state.tables = tables;
        Ok(true)
    }
}

/// `table=key id, ...` when the tables carry more than one key id (a key rotation between
/// its first and its last commit), `None` when they agree.
fn mixed_key_ids(tables: &BTreeMap<String, DeltaTable>) -> Option<String> {
    let ids: BTreeMap<&str, String> = tables
        .iter()
        .filter_map(|(name, table)| {
            let snapshot = table.snapshot().ok()?;
            let id = vaxlake_catalog::key_id(snapshot.metadata().configuration())?;
            Some((name.as_str(), id.to_string()))
        })
        .collect();
    let distinct: std::collections::BTreeSet<&String> = ids.values().collect();
    (distinct.len() > 1).then(|| {
        ids.iter()
            .map(|(table, id)| format!("{table}={id}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// A local path becomes an absolute `file://` URL (without creating anything: opening a
/// warehouse must not write); a URL is kept, with a trailing slash so tables join under it.
fn resolve_root(root: &str) -> Result<Url, QueryError> {
    // One-letter schemes are Windows drive letters, not URLs.
    if let Ok(mut url) = Url::parse(root) {
        if url.scheme().len() > 1 {
            if url.scheme() == "file" {
                let path = url
                    .to_file_path()
                    .map_err(|()| QueryError::warehouse(root, "not a local file URL"))?;
                return resolve_root(&path.to_string_lossy());
            }
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            return Ok(url);
        }
    }
    let path = std::path::absolute(root).map_err(|error| QueryError::warehouse(root, error))?;
    let path = path.canonicalize().unwrap_or(path);
    Url::from_directory_path(&path)
        .map_err(|()| QueryError::warehouse(root, "cannot be turned into a file URL"))
}

fn table_url(root: &Url, name: &str) -> Result<Url, QueryError> {
    root.join(&format!("{name}/"))
        .map_err(|error| QueryError::warehouse(root, error))
}

/// Whether a Delta table is at `url`: a `stat` of `_delta_log` on the local file system, a
/// listing of the log on object storage. Public for crates that keep tables of their own
/// under the warehouse root (the server's audit trail).
pub async fn table_exists(url: &Url) -> Result<bool, QueryError> {
    if let Ok(dir) = url.to_file_path() {
        return Ok(dir.join("_delta_log").is_dir());
    }
    let table = DeltaTableBuilder::from_url(url.clone())
        .and_then(DeltaTableBuilder::build)
        .map_err(|error| QueryError::warehouse(url, error))?;
    table
        .verify_deltatable_existence()
        .await
        .map_err(|error| QueryError::warehouse(url, error))
}

async fn load_table(url: &Url) -> Result<DeltaTable, QueryError> {
    deltalake::open_table(url.clone())
        .await
        .map_err(|error| QueryError::warehouse(url, error))
}

async fn build_snapshot(
    options: &QueryOptions,
    runtime: &Arc<RuntimeEnv>,
    reference: &ReferenceTables,
    tables: &BTreeMap<String, DeltaTable>,
    order_secret: Option<OrderSecret>,
) -> Result<Snapshot, QueryError> {
    let config = SessionConfig::new()
        .with_target_partitions(options.target_partitions)
        .with_information_schema(true)
        // Row-level filtering inside the Parquet reader: coverage and effectiveness filter
        // on antigen, cohort and dates, so most rows never need decoding.
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true);
    let ctx = match &options.cluster {
        None => {
            let state = SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(runtime.clone())
                .with_default_features()
                .with_physical_optimizer_rule(Arc::new(cooperative_row_multipliers()))
                .with_physical_optimizer_rule(Arc::new(accounted_windows()))
                .build();
            let ctx = SessionContext::new_with_state(state);
            bound_growing_functions(&ctx, &runtime.memory_pool)?;
            ctx
        }
        // The plan is made here (sandbox, views) and run by the cluster's executors, under
        // their own memory limits: the growing-function bounds of this process do not travel
        // (see docs/scaling.md).
        Some(cluster) => {
            crate::cluster::scheduler_address(cluster).map_err(QueryError::Unavailable)?;
            let state = SessionStateBuilder::new()
                .with_config(crate::cluster::client_config(config, reference))
                .with_runtime_env(runtime.clone())
                .with_default_features()
                .build();
            SessionContext::remote_with_state(cluster, state).await?
        }
    };

    for (name, table) in &reference.tables {
        match options.cluster {
            None => ctx.register_table(*name, table.clone())?,
            Some(_) => ctx.register_table(
                *name,
                Arc::new(crate::cluster::ReferenceTable::new(name, table.clone())),
            )?,
        };
    }
    let mut versions = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for (name, table) in tables {
        logs.insert(name.clone(), table.log_store());
        let provider = table
            .table_provider()
            .await
            .map_err(|error| QueryError::warehouse(table.table_url(), error))?;
        match options.cluster {
            None => ctx.register_table(name.as_str(), provider)?,
            Some(_) => {
                let pinned = crate::cluster::PinnedTable::of(table, provider.schema())?;
                ctx.register_table(name.as_str(), Arc::new(pinned))?
            }
        };
        let version = table.version().unwrap_or_default();
        versions.insert(name.clone(), i64::try_from(version).unwrap_or(i64::MAX));
    }
    create_views(&ctx).await?;
    Ok(Snapshot {
        ctx,
        versions,
        logs,
        order_secret,
    })
}
