//! Every flag of `vaxlake`: the clap definitions, apart from what the commands do (in
//! `commands/`), so that the whole command line reads in one file and `--help` is decided here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "vaxlake",
    version,
    about = "Analytics and pseudonymisation warehouse for national vaccination data"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: a large variant (serve's flags) costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Write a deterministic synthetic registry export (FHIR NDJSON, COVID CSV, population, cases).
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Residents to simulate (670000 is Luxembourg's scale).
        #[arg(long, default_value_t = 670_000)]
        persons: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Validate, pseudonymise and load a source into the warehouse.
    Ingest {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// fhir:DIR, csv:FILE, population:FILE or cases:FILE.
        #[arg(long)]
        source: String,
        #[command(flatten)]
        key: KeyArg,
        /// Rows per Delta commit (bounds memory: about 1.6 GiB peak at 500k).
        #[arg(long, default_value_t = 500_000)]
        batch_rows: usize,
        /// Originating system named in the event keys of a csv: or postgres: source.
        #[arg(long, default_value = "covid19")]
        csv_source_system: String,
        /// postgres: sources: the registry relation to read (CONTRACTS.md default).
        #[arg(long)]
        table: Option<String>,
        /// postgres: sources: keep pulling every --every seconds until SIGINT/SIGTERM, which
        /// finish the batch in hand and exit 0.
        #[arg(long)]
        follow: bool,
        /// Seconds between polls with --follow (at least 1).
        #[arg(
            long,
            default_value_t = 60,
            requires = "follow",
            value_parser = poll_seconds
        )]
        every: u64,
    },
    /// What the warehouse holds and how far it is behind the registry: table versions and
    /// last commits, the postgres: watermark and lag, quarantine counts by reason.
    Status {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// A postgres: source, to show the watermark and the lag behind it.
        #[arg(long)]
        source: Option<String>,
        /// The registry relation of --source.
        #[arg(long)]
        table: Option<String>,
    },
    /// Run one read-only SQL query over the warehouse.
    Sql {
        #[command(flatten)]
        warehouse: WarehouseArg,
        #[command(flatten)]
        cluster: ClusterArg,
        /// The query.
        query: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Run the query this many times and report each run's time on stderr (benchmarks).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
    },
    /// Serve the HTTP API (and, later, the dashboards).
    Serve(ServeArgs),
    /// Run a node of an Apache DataFusion Ballista cluster that `sql`, `coverage`,
    /// `effectiveness` and `serve` use with --cluster (docs/scaling.md).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Vaccination coverage: one indicator and cohort, a curve, dropout, timeliness, or the
    /// whole indicator table (definitions in docs/coverage.md).
    Coverage(CoverageArgs),
    /// Vaccine effectiveness by the cohort method (Mantel-Haenszel over age bands, crude
    /// beside it, screening method as a cross-check), or rates by vaccination status.
    Effectiveness(EffectivenessArgs),
    /// Generate a national-scale registry (or reuse it), ingest it and serve it on 127.0.0.1:8080.
    Demo {
        /// Where the demo keeps its export, key and warehouse.
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
        #[arg(long, default_value_t = 670_000)]
        persons: u64,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Compact small Parquet files and delete files no version within the retention uses;
    /// safe while ingest and queries run.
    Maintain {
        #[command(flatten)]
        warehouse: WarehouseArg,
        /// Keep files removed less than this many hours ago (readers of older versions).
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
        /// Report what would be vacuumed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Skip compaction.
        #[arg(long)]
        no_compact: bool,
        /// Skip vacuum.
        #[arg(long)]
        no_vacuum: bool,
    },
    /// Bearer tokens for `serve --auth`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit trail of API requests (operators).
    Audit(AuditArgs),
    /// Researcher extracts: create, approve (four eyes), verify, list, expire.
    Extract {
        #[command(subcommand)]
        command: ExtractCommand,
    },
    /// Key management.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Write a new random master key (mode 600) to FILE.
    New {
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-key every table of the warehouse to the current key + a fresh one (from `key new`),
    /// one Delta version per table; NEW then holds the key chain to ingest with.
    Rotate(RotateArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Aggregate cells with a count between 1 and N-1 are withheld (CONTRACTS.md).
    #[arg(long, default_value_t = 8)]
    pub suppression_threshold: u64,
    /// A postgres: registry whose watermark and lag `/api/health` shows operators.
    #[arg(long)]
    pub source: Option<String>,
    /// The registry relation of --source.
    #[arg(long, requires = "source")]
    pub table: Option<String>,
    /// Users and token hashes (TOML, CONTRACTS.md Access). Without it the server answers
    /// everyone and binds to loopback only.
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow browsers on this origin to call the API (CORS); repeatable. Off by default.
    #[arg(long)]
    pub cors_origin: Vec<String>,
    /// Seconds a connection has to send its request headers.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a whole request may take (a SQL answer, also to be taken by its client).
    #[arg(long, default_value_t = 300)]
    pub request_timeout_secs: u64,
    /// Connections open at once; more are closed on arrival (keep it below `ulimit -n`).
    #[arg(long, default_value_t = vaxlake_server::api::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Bytes of a request's start line and headers; more is answered 431 (at least 8192).
    #[arg(long, default_value_t = vaxlake_server::api::DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// Seconds a request body has to arrive whole after its headers.
    #[arg(long, default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Seconds a client may take nothing of its answer before its connection is closed.
    #[arg(long, default_value_t = 60)]
    pub send_timeout_secs: u64,
    /// Also answer Arrow Flight SQL (ADBC, pandas, polars) on this address; off by default.
    /// Same tokens, sandbox, audit and TLS as the HTTP API; loopback only without --auth.
    #[arg(long, value_name = "ADDR")]
    pub flight_listen: Option<std::net::SocketAddr>,
    /// Also answer the PostgreSQL protocol (psql, DBeaver, R, psycopg) on this address; off
    /// by default. Database `vaxlake`, user = the auth file's name, password = the token
    /// (SCRAM-SHA-256); needs --auth; TLS-only when --tls-cert is given.
    #[arg(long, value_name = "ADDR", requires = "auth")]
    pub pg_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub query_limits: QueryLimitArgs,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

impl ServeArgs {
    /// `vaxlake serve --warehouse WAREHOUSE --listen LISTEN` with every other flag at its
    /// default (what `vaxlake demo` serves with).
    pub fn new(warehouse: String, listen: std::net::SocketAddr) -> Self {
        ServeArgs {
            warehouse: WarehouseArg { warehouse },
            listen,
            suppression_threshold: 8,
            source: None,
            table: None,
            auth: None,
            tls_cert: None,
            tls_key: None,
            cors_origin: Vec::new(),
            header_timeout_secs: 10,
            request_timeout_secs: 300,
            max_connections: vaxlake_server::api::DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: vaxlake_server::api::DEFAULT_MAX_HEADER_BYTES,
            body_timeout_secs: 30,
            send_timeout_secs: 60,
            flight_listen: None,
            pg_listen: None,
            query_limits: QueryLimitArgs::default(),
            cluster: ClusterArg::default(),
        }
    }
}

#[derive(Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// Indicator name from sql/reference/indicators.csv (DTP3, MCV1, FLU65, ...).
    #[arg(long, required_unless_present_any = ["all", "list"])]
    pub indicator: Option<String>,
    /// Birth year (season start year for seasonal, calendar year for age-band indicators),
    /// or consecutive birth years pooled, e.g. 2022-2024 (birth-cohort coverage only).
    #[arg(long, required_unless_present_any = ["all", "list"])]
    pub cohort: Option<vaxlake_query::coverage::CohortSpan>,
    /// Count doses given before this age in months instead of the indicator's default.
    #[arg(long)]
    pub age_months: Option<u32>,
    /// One row per commune, canton or sex (plus the national total).
    #[arg(long)]
    pub by: Option<vaxlake_query::coverage::Breakdown>,
    /// Cumulative coverage by age in months.
    #[arg(long, conflicts_with_all = ["dropout_from", "timeliness", "all", "list"])]
    pub curve: bool,
    /// Oldest age on the curve (default twice the indicator's age, at most 240).
    #[arg(long, requires = "curve")]
    pub max_age_months: Option<u32>,
    /// Dropout from this indicator's dose to --indicator's (e.g. DTP1 to DTP3).
    #[arg(long, conflicts_with_all = ["timeliness", "all", "list"])]
    pub dropout_from: Option<String>,
    /// Median age at the dose and the share given on schedule.
    #[arg(long, conflicts_with_all = ["all", "list"])]
    pub timeliness: bool,
    /// Every indicator x cohort x breakdown in one table.
    #[arg(long, conflicts_with = "list")]
    pub all: bool,
    /// The indicator catalogue.
    #[arg(long)]
    pub list: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Aggregate cells with a count between 1 and N-1 are withheld (CONTRACTS.md).
    #[arg(long, default_value_t = 8)]
    pub suppression_threshold: u64,
    /// Answer this many times and report each run's time on stderr (the first run reads the
    /// warehouse, the others come from the cache; benchmarks).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

#[derive(Args)]
pub struct EffectivenessArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// Antigen (lower case, as in CONTRACTS.md), e.g. influenza.
    #[arg(long)]
    pub antigen: String,
    /// ICD-10 code or prefix of the disease, e.g. J10 or J1.
    #[arg(long)]
    pub disease: String,
    /// First day of the study period (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub from: String,
    /// Last day of the study period (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub to: String,
    /// Days after the dose before a person counts as vaccinated.
    #[arg(long, default_value_t = 14)]
    pub lag_days: u32,
    /// Which dose makes a person vaccinated.
    #[arg(long, default_value_t = 1)]
    pub dose: u32,
    /// Per age band (`age_band`) beside the overall estimate.
    #[arg(long)]
    pub by: Option<String>,
    /// Count only doses given on or after this day (seasonal antigens: the 1 September
    /// before --from unless given).
    #[arg(long)]
    pub doses_since: Option<String>,
    /// any, hospitalised or died.
    #[arg(long, default_value = "any")]
    pub outcome: vaxlake_query::effectiveness::Outcome,
    /// Notifications of one person and disease within this many days of the episode's
    /// first count once (0: every notification counts).
    #[arg(long, default_value_t = vaxlake_query::effectiveness::DEFAULT_EPISODE_DAYS)]
    pub episode_days: u32,
    /// Cases per 100,000 person-years by status, month and age band instead of VE.
    #[arg(long)]
    pub rates: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Case counts between 1 and N-1 are withheld (CONTRACTS.md).
    #[arg(long, default_value_t = 8)]
    pub suppression_threshold: u64,
    /// Answer this many times and report each run's time on stderr (benchmarks).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

#[derive(Args)]
pub struct WarehouseArg {
    /// Warehouse root: a local path or an object-store URL.
    #[arg(long)]
    pub warehouse: String,
}

// Where the queries run. (A plain comment: a doc comment on a flattened struct would be clap
// help text.)
#[derive(Args, Debug, Default, Clone)]
pub struct ClusterArg {
    /// Run the queries on a Ballista cluster (`vaxlake cluster scheduler`) instead of in this
    /// process; the sandbox checks them here first.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
}

impl ClusterArg {
    /// `options` with the cluster given on the command line.
    pub fn query_options(
        &self,
        options: vaxlake_query::QueryOptions,
    ) -> vaxlake_query::QueryOptions {
        match &self.cluster {
            Some(cluster) => options.with_cluster(cluster.clone()),
            None => options,
        }
    }
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Ballista's scheduler, with vaxlake's codec and functions. It has no authentication:
    /// run it on a network only the warehouse's servers and executors reach.
    Scheduler {
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: std::net::SocketAddr,
        /// Host name executors and clients use to reach this scheduler (default: the listen
        /// address).
        #[arg(long)]
        external_host: Option<String>,
    },
    /// A Ballista executor: runs the scheduler's tasks, reading the warehouse's Parquet files
    /// from object storage with the standard AWS environment (AWS_ENDPOINT_URL, ...).
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Tasks run at once (default: the number of cores).
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Address the executor binds to.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// Port of its Flight service (shuffle reads); its gRPC service takes PORT+1.
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Host name the scheduler and the other executors use to reach it (default: --bind-host).
        #[arg(long)]
        external_host: Option<String>,
        /// Directory for shuffle files and spills (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<String>,
        /// Memory all its tasks may hold, in MiB (default: Ballista's share of the machine's).
        #[arg(long, value_name = "MIB")]
        memory_limit_mb: Option<u64>,
    },
}

#[derive(Args)]
pub struct KeyArg {
    /// File holding the 32-byte master key as 64 hex characters.
    #[arg(long, env = "VAXLAKE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl Format {
    /// The output module's format of the same name.
    pub fn output(self) -> vaxlake_query::output::Format {
        match self {
            Format::Table => vaxlake_query::output::Format::Table,
            Format::Csv => vaxlake_query::output::Format::Csv,
            Format::Json => vaxlake_query::output::Format::Json,
        }
    }
}

/// `--every`: whole seconds, at least 1 (0 would poll the registry back to back).
pub fn poll_seconds(text: &str) -> std::result::Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("the poll interval must be at least 1 second".into()),
        Ok(seconds) => Ok(seconds),
        Err(_) => Err(format!("{text:?} is not a whole number of seconds")),
    }
}

// `vaxlake token` and `vaxlake audit`.

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a fresh random bearer token (once: it is stored nowhere) and the auth-file
    /// entry holding its BLAKE3 hash.
    New {
        /// The user's name, as recorded in the audit.
        #[arg(long)]
        name: String,
        /// analyst, ministry, researcher or operator.
        #[arg(long)]
        role: String,
        /// Researchers: the one project whose extracts they may fetch.
        #[arg(long)]
        project: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    /// Only this user's requests.
    #[arg(long)]
    pub user: Option<String>,
    /// Only requests to this endpoint (e.g. /api/sql).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// ok, refused, unauthenticated, forbidden, throttled, error or aborted (no answer: the
    /// client went away).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Requests at or after this time (RFC 3339) or date (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Newest first, at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    pub format: AuditFormat,
}

// `vaxlake extract`.

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Parquet,
    Csv,
}

#[derive(Subcommand)]
pub enum ExtractCommand {
    /// Write the extract a spec describes (pending until another operator approves it);
    /// prints its id.
    Create {
        #[command(flatten)]
        warehouse: WarehouseArg,
        #[arg(long)]
        spec: PathBuf,
        /// The operator creating it.
        #[arg(long)]
        by: String,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
        format: FormatArg,
        /// Days until the extract is deleted.
        #[arg(long, default_value_t = 90)]
        expires_days: u32,
    },
    /// Release an extract: by an operator other than its creator.
    Approve {
        #[command(flatten)]
        warehouse: WarehouseArg,
        id: String,
        #[arg(long)]
        by: String,
    },
    /// Re-check every file of an extract against its manifest.
    Verify { dir: PathBuf },
    /// The extracts of the warehouse (of one project with --project).
    List {
        #[command(flatten)]
        warehouse: WarehouseArg,
        #[arg(long)]
        project: Option<String>,
    },
    /// Delete the extracts past their expiry.
    Expire {
        #[command(flatten)]
        warehouse: WarehouseArg,
    },
}

// `vaxlake key rotate`.

#[derive(Args)]
pub struct RotateArgs {
    /// Warehouse root: a local path or an object-store URL.
    #[arg(long)]
    pub warehouse: String,
    /// The key file the warehouse was written with (a key, or the chain of a past rotation).
    #[arg(long, env = "VAXLAKE_KEY_FILE")]
    pub key_file: PathBuf,
    /// A fresh key made by `vaxlake key new`; replaced by the rotated key chain, which is the
    /// key file to ingest with from then on.
    #[arg(long)]
    pub new_key_file: PathBuf,
}

// `serve`'s flags for the SQL sandbox's limits (DESIGN.md invariant 5). Each one left out
// keeps the library's default (`QueryOptions::default`, `DEFAULT_MAX_CONCURRENT_QUERIES`), so
// operators change only what their machine needs and tests can set small limits. (A plain
// comment: a doc comment on a flattened struct would be clap help text.)
#[derive(Args, Debug, Default, Clone)]
pub struct QueryLimitArgs {
    /// Memory all running queries may hold together, in MiB (default 2048). Sorts,
    /// aggregates and joins spill to disk beyond it; other queries fail with 503.
    #[arg(long, value_name = "MIB")]
    pub memory_limit_mb: Option<usize>,
    /// Memory one SQL query may hold of that, in MiB (default half of it), so that one query
    /// cannot starve the others; beyond it the query spills or fails with 503.
    #[arg(long, value_name = "MIB")]
    pub query_memory_limit_mb: Option<usize>,
    /// Disk all running queries may spill to together, in MiB (default 16384).
    #[arg(long, value_name = "MIB")]
    pub spill_limit_mb: Option<u64>,
    /// Milliseconds a query may run before it is cancelled with 503 (default 60000).
    #[arg(long, value_name = "MS")]
    pub query_timeout_ms: Option<u64>,
    /// Rows one answer holds at most; more set `truncated` (default 100000).
    #[arg(long, value_name = "ROWS")]
    pub max_rows: Option<usize>,
    /// SQL queries running at once; more are answered 429 (default 4).
    #[arg(long, value_name = "N")]
    pub max_concurrent_queries: Option<usize>,
}
