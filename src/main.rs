//! `vaxlake`: the command-line program. Only wiring: every stage lives in its own crate.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use vaxlake_ingest::{IngestOptions, Source};
use vaxlake_pseudonymize::MasterKey;

mod access_cmd;
mod extract_cmd;
mod key_cmd;
mod query_limits;
mod status;

#[derive(Parser)]
#[command(
    name = "vaxlake",
    version,
    about = "Analytics and pseudonymisation warehouse for national vaccination data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        command: access_cmd::TokenCommand,
    },
    /// The audit trail of API requests (operators).
    Audit(access_cmd::AuditArgs),
    /// Researcher extracts: create, approve (four eyes), verify, list, expire.
    Extract {
        #[command(subcommand)]
        command: extract_cmd::ExtractCommand,
    },
    /// Key management.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Write a new random master key (mode 600) to FILE.
    New {
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-key every table of the warehouse to the current key + a fresh one (from `key new`),
    /// one Delta version per table; NEW then holds the key chain to ingest with.
    Rotate(key_cmd::RotateArgs),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    warehouse: WarehouseArg,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Aggregate cells with a count between 1 and N-1 are withheld (CONTRACTS.md).
    #[arg(long, default_value_t = 8)]
    suppression_threshold: u64,
    /// A postgres: registry whose watermark and lag `/api/health` shows operators.
    #[arg(long)]
    source: Option<String>,
    /// The registry relation of --source.
    #[arg(long, requires = "source")]
    table: Option<String>,
    /// Users and token hashes (TOML, CONTRACTS.md Access). Without it the server answers
    /// everyone and binds to loopback only.
    #[arg(long)]
    auth: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow browsers on this origin to call the API (CORS); repeatable. Off by default.
    #[arg(long)]
    cors_origin: Vec<String>,
    /// Seconds a connection has to send its request headers.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a whole request may take.
    #[arg(long, default_value_t = 300)]
    request_timeout_secs: u64,
    #[command(flatten)]
    query_limits: query_limits::QueryLimitArgs,
}

impl ServeArgs {
    fn new(warehouse: String, listen: std::net::SocketAddr) -> Self {
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
            query_limits: query_limits::QueryLimitArgs::default(),
        }
    }
}

#[derive(Args)]
struct CoverageArgs {
    #[command(flatten)]
    warehouse: WarehouseArg,
    /// Indicator name from sql/reference/indicators.csv (DTP3, MCV1, FLU65, ...).
    #[arg(long, required_unless_present_any = ["all", "list"])]
    indicator: Option<String>,
    /// Birth year (season start year for seasonal, calendar year for age-band indicators).
    #[arg(long, required_unless_present_any = ["all", "list"])]
    cohort: Option<i32>,
    /// Count doses given before this age in months instead of the indicator's default.
    #[arg(long)]
    age_months: Option<u32>,
    /// One row per commune, canton or sex (plus the national total).
    #[arg(long)]
    by: Option<vaxlake_query::coverage::Breakdown>,
    /// Cumulative coverage by age in months.
    #[arg(long, conflicts_with_all = ["dropout_from", "timeliness", "all", "list"])]
    curve: bool,
    /// Oldest age on the curve (default twice the indicator's age, at most 240).
    #[arg(long, requires = "curve")]
    max_age_months: Option<u32>,
    /// Dropout from this indicator's dose to --indicator's (e.g. DTP1 to DTP3).
    #[arg(long, conflicts_with_all = ["timeliness", "all", "list"])]
    dropout_from: Option<String>,
    /// Median age at the dose and the share given on schedule.
    #[arg(long, conflicts_with_all = ["all", "list"])]
    timeliness: bool,
    /// Every indicator x cohort x breakdown in one table.
    #[arg(long, conflicts_with = "list")]
    all: bool,
    /// The indicator catalogue.
    #[arg(long)]
    list: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Aggregate cells with a count between 1 and N-1 are withheld (CONTRACTS.md).
    #[arg(long, default_value_t = 8)]
    suppression_threshold: u64,
    /// Answer this many times and report each run's time on stderr (the first run reads the
    /// warehouse, the others come from the cache; benchmarks).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[derive(Args)]
struct EffectivenessArgs {
    #[command(flatten)]
    warehouse: WarehouseArg,
    /// Antigen (lower case, as in CONTRACTS.md), e.g. influenza.
    #[arg(long)]
    antigen: String,
    /// ICD-10 code or prefix of the disease, e.g. J10 or J1.
    #[arg(long)]
    disease: String,
    /// First day of the study period (YYYY-MM-DD, inclusive).
    #[arg(long)]
    from: String,
    /// Last day of the study period (YYYY-MM-DD, inclusive).
    #[arg(long)]
    to: String,
    /// Days after the dose before a person counts as vaccinated.
    #[arg(long, default_value_t = 14)]
    lag_days: u32,
    /// Which dose makes a person vaccinated.
    #[arg(long, default_value_t = 1)]
    dose: u32,
    /// Per age band (`age_band`) beside the overall estimate.
    #[arg(long)]
    by: Option<String>,
    /// Count only doses given on or after this day (seasonal antigens: the 1 September
    /// before --from unless given).
    #[arg(long)]
    doses_since: Option<String>,
    /// any, hospitalised or died.
    #[arg(long, default_value = "any")]
    outcome: vaxlake_query::effectiveness::Outcome,
    /// Cases per 100,000 person-years by status, month and age band instead of VE.
    #[arg(long)]
    rates: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Case counts between 1 and N-1 are withheld (CONTRACTS.md).
    #[arg(long, default_value_t = 8)]
    suppression_threshold: u64,
    /// Answer this many times and report each run's time on stderr (benchmarks).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[derive(Args)]
pub(crate) struct WarehouseArg {
    /// Warehouse root: a local path or an object-store URL.
    #[arg(long)]
    pub(crate) warehouse: String,
}

#[derive(Args)]
struct KeyArg {
    /// File holding the 32-byte master key as 64 hex characters.
    #[arg(long, env = "VAXLAKE_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// `VAXLAKE_LOG` (tracing's filter syntax) or vaxlake's info default. Whatever is asked for,
/// the SQL parser and planner stay at warnings: at debug level they print every literal of
/// a query, and an analyst may type an identity into one.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAXLAKE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,vaxlake=info,vaxlake_ingest=info,vaxlake_query=info,buoyant_kernel::snapshot::builder=off,deltalake_core::operations::merge=error")
    });
    [
        "sqlparser=warn",
        "datafusion_sql=warn",
        "datafusion_optimizer=warn",
        "tokio_postgres=info",
    ]
    .into_iter()
    .filter_map(|directive| directive.parse().ok())
    .fold(filter, |filter, directive| filter.add_directive(directive))
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(log_filter())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate { out, persons, seed } => {
            let manifest = generate(&out, persons, seed)?;
            println!("{}", serde_json::to_string(&manifest)?);
            Ok(())
        }
        Command::Ingest {
            warehouse,
            source,
            key,
            batch_rows,
            csv_source_system,
            table,
            follow,
            every,
        } => {
            let key = load_key(key.key_file.as_deref())?;
            let stop = vaxlake_ingest::StopFlag::default();
            let options = IngestOptions::default()
                .with_batch_rows(batch_rows)
                .with_csv_source_system(csv_source_system)
                .with_progress(std::io::stderr().is_terminal() && !follow)
                .with_stop(stop.clone());
            let mut source = Source::parse(&source)?;
            if let Some(table) = table {
                source = source.with_table(&table)?;
            }
            if follow {
                return follow_registry(&warehouse.warehouse, &source, &key, &options, every, stop)
                    .await;
            }
            ingest_source(&warehouse.warehouse, &source, &key, &options).await
        }
        Command::Status {
            warehouse,
            source,
            table,
        } => status(&warehouse.warehouse, source.as_deref(), table.as_deref()).await,
        Command::Sql {
            warehouse,
            query,
            format,
            repeat,
        } => {
            let wh = vaxlake_query::Warehouse::open(
                &warehouse.warehouse,
                vaxlake_query::QueryOptions::default(),
            )
            .await?;
            let mut answer = None;
            for run in 1..=repeat.max(1) {
                let started = std::time::Instant::now();
                answer = Some(wh.sql(&query).await?);
                if repeat > 1 {
                    eprintln!("run={run} seconds={:.4}", started.elapsed().as_secs_f64());
                }
            }
            let answer = answer.expect("at least one run");
            let text = match format {
                Format::Table => answer.to_table()?,
                Format::Csv => String::from_utf8(answer.to_csv()?)?,
                Format::Json => answer.to_json()?.to_string(),
            };
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            if answer.truncated {
                eprintln!("note: the answer was cut at the row limit");
            }
            Ok(())
        }
        Command::Serve(args) => serve(args).await,
        Command::Coverage(args) => coverage(args).await,
        Command::Maintain {
            warehouse,
            retention_hours,
            dry_run,
            no_compact,
            no_vacuum,
        } => {
            let options = vaxlake_ingest::MaintainOptions::default()
                .with_retention_hours(retention_hours)
                .with_dry_run(dry_run)
                .with_compact(!no_compact)
                .with_vacuum(!no_vacuum);
            let report = vaxlake_ingest::maintain(&warehouse.warehouse, &options).await?;
            for table in &report.tables {
                println!(
                    "{} version {} -> {}: files {} -> {} (compaction +{} -{}{}), vacuumed {} files, {} bytes{}",
                    table.table,
                    table.version_before,
                    table.version,
                    table.files_before,
                    table.files_after,
                    table.compaction_files_added,
                    table.compaction_files_removed,
                    table
                        .compaction_skipped
                        .as_deref()
                        .map(|why| format!(", compaction skipped: {why}"))
                        .unwrap_or_default(),
                    table.vacuumed_files.len(),
                    table.vacuumed_bytes,
                    if report.dry_run { " (dry run)" } else { "" }
                );
            }
            Ok(())
        }
        Command::Effectiveness(args) => effectiveness(args).await,
        Command::Demo {
            dir,
            persons,
            listen,
        } => demo(&dir, persons, listen).await,
        Command::Token { command } => access_cmd::token(command),
        Command::Audit(args) => access_cmd::audit(args).await,
        Command::Extract { command } => extract_cmd::run(command).await,
        Command::Key {
            command: KeyCommand::Rotate(args),
        } => key_cmd::rotate(args).await,
        Command::Key {
            command: KeyCommand::New { out },
        } => {
            write_new_key(&out)?;
            println!(
                "wrote a new master key to {} (mode 600); keep it secret and backed up",
                out.display()
            );
            Ok(())
        }
    }
}

fn load_key(path: Option<&Path>) -> Result<MasterKey> {
    let Some(path) = path else {
        bail!("no master key: pass --key-file FILE or set VAXLAKE_KEY_FILE (create one with `vaxlake key new --out FILE`)");
    };
    Ok(MasterKey::load(path)?)
}

fn write_new_key(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create key file {} (it must not exist yet)",
                path.display()
            )
        })?;
    writeln!(f, "{}", MasterKey::generate_hex())?;
    Ok(())
}

fn generate(out: &Path, persons: u64, seed: u64) -> Result<vaxlake_generate::Manifest> {
    let started = std::time::Instant::now();
    let options = vaxlake_generate::GenerateOptions { persons, seed };
    let manifest = vaxlake_generate::generate(&options, out)?;
    eprintln!(
        "generated {persons} persons in {:.1}s under {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(manifest)
}

async fn ingest(
    warehouse: &str,
    source: &str,
    key: &MasterKey,
    options: &IngestOptions,
) -> Result<()> {
    let source = Source::parse(source)?;
    ingest_source(warehouse, &source, key, options).await
}

async fn ingest_source(
    warehouse: &str,
    source: &Source,
    key: &MasterKey,
    options: &IngestOptions,
) -> Result<()> {
    let started = std::time::Instant::now();
    let report = vaxlake_ingest::ingest(warehouse, source, key, options).await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        inserted = report.inserted,
        updated = report.updated,
        deleted = report.deleted,
        unchanged = report.unchanged,
        "ingest done"
    );
    println!(
        "read={} accepted={} quarantined={}",
        report.read, report.accepted, report.quarantined
    );
    Ok(())
}

/// `--every`: whole seconds, at least 1 (0 would poll the registry back to back).
fn poll_seconds(text: &str) -> std::result::Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("the poll interval must be at least 1 second".into()),
        Ok(seconds) => Ok(seconds),
        Err(_) => Err(format!("{text:?} is not a whole number of seconds")),
    }
}

/// `ingest --follow`: pulls until caught up, waits `every` seconds, and again, until SIGINT
/// or SIGTERM (which let the batch in hand commit, then exit 0). Database errors that may pass
/// (I/O, a lost connection, a timeout) are retried with exponential backoff (1 s to 60 s);
/// one retrying cannot fix (`SourceRefused`: authentication, a missing relation or column,
/// privileges, the connection string) and anything else stop the program with its reason.
async fn follow_registry(
    warehouse: &str,
    source: &Source,
    key: &MasterKey,
    options: &IngestOptions,
    every: u64,
    stop: vaxlake_ingest::StopFlag,
) -> Result<()> {
    if !matches!(source, Source::Postgres(_)) {
        bail!("--follow needs a postgres: source");
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.stop();
        });
    }
    let pause = |seconds: u64| {
        let stop = stop.clone();
        async move {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
            while std::time::Instant::now() < until && !stop.stopped() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let (mut read, mut accepted, mut quarantined) = (0u64, 0u64, 0u64);
    let mut backoff = 1u64;
    while !stop.stopped() {
        match vaxlake_ingest::ingest(warehouse, source, key, options).await {
            Ok(report) => {
                backoff = 1;
                read += report.read;
                accepted += report.accepted;
                quarantined += report.quarantined;
                if report.read > 0 {
                    tracing::info!(
                        read = report.read,
                        quarantined = report.quarantined,
                        watermark = ?report.watermark,
                        "pulled from the registry"
                    );
                }
                pause(every).await;
            }
            Err(vaxlake_ingest::IngestError::Source(reason)) => {
                tracing::warn!(%reason, retry_in_seconds = backoff, "registry database unavailable; retrying");
                pause(backoff).await;
                backoff = (backoff * 2).min(60);
            }
            Err(vaxlake_ingest::IngestError::SourceRefused(reason)) => {
                bail!("{reason} (not retried)");
            }
            Err(error) => return Err(error.into()),
        }
    }
    tracing::info!("stopped on signal");
    println!("read={read} accepted={accepted} quarantined={quarantined}");
    Ok(())
}

/// `vaxlake status`: one line per fact, for operators and scripts.
async fn status(warehouse: &str, source: Option<&str>, table: Option<&str>) -> Result<()> {
    let wh =
        vaxlake_query::Warehouse::open(warehouse, vaxlake_query::QueryOptions::default()).await?;
    let registry = source
        .map(|source| status::registry_source(source, table))
        .transpose()?;
    for line in status::StatusReport::read(&wh, registry.as_ref())
        .await?
        .lines()
    {
        println!("{line}");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

async fn serve(args: ServeArgs) -> Result<()> {
    use vaxlake_query::api::{
        auth::AuthConfig, router_with, serve_with, ApiState, ServeOptions, TlsFiles,
    };
    use vaxlake_query::coverage::Suppression;
    let ServeArgs {
        warehouse: WarehouseArg { warehouse },
        listen,
        suppression_threshold: threshold,
        source,
        table,
        auth,
        tls_cert,
        tls_key,
        cors_origin,
        header_timeout_secs,
        request_timeout_secs,
        query_limits,
    } = args;
    if threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let registry = source
        .as_deref()
        .map(|source| status::registry_source(source, table.as_deref()))
        .transpose()?;
    let auth = auth.as_deref().map(AuthConfig::load).transpose()?;
    if auth.is_none() && !listen.ip().is_loopback() {
        bail!("without --auth, serve binds to loopback only (got {listen}); give --auth FILE (see `vaxlake token new`) to serve other hosts");
    }
    let tls = match (tls_cert, tls_key) {
        (Some(certificate), Some(key)) => Some(TlsFiles { certificate, key }),
        _ => None,
    };
    let wh = vaxlake_query::Warehouse::open(
        &warehouse,
        query_limits.query_options(vaxlake_query::QueryOptions::default()),
    )
    .await?;
    let audit = vaxlake_query::audit::AuditLog::start(wh.root())?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    match &auth {
        Some(config) => eprintln!(
            "serving {warehouse} on {scheme}://{listen}/ for {} users (--auth)",
            config.users().len()
        ),
        None => eprintln!(
            "serving {warehouse} on {scheme}://{listen}/ (unauthenticated: loopback only)"
        ),
    }
    let operator_status = {
        let wh = wh.clone();
        let registry = registry.map(std::sync::Arc::new);
        std::sync::Arc::new(move || {
            let wh = wh.clone();
            let registry = registry.clone();
            Box::pin(async move {
                status::StatusReport::read(&wh, registry.as_deref())
                    .await
                    .map(|report| report.to_json())
                    .map_err(|error| format!("{error:#}"))
            }) as vaxlake_query::api::StatusFuture
        })
    };
    let mut state = query_limits
        .api_state(ApiState::new(wh))
        .with_suppression(Suppression { threshold })
        .with_operator_status(operator_status)
        .with_tls(tls.is_some())
        .with_audit(audit.clone());
    if let Some(config) = auth {
        state = state.with_auth(config);
    }
    if let Ok(root) = state.warehouse().root().to_file_path() {
        let dir = root.join("extracts");
        extract_cmd::expire_in_background(dir.clone(), std::time::Duration::from_secs(3600));
        state = state.with_extracts(std::sync::Arc::new(extract_cmd::Shelf { dir }));
    }
    let state = std::sync::Arc::new(state);
    state.warm_in_background(std::time::Duration::from_secs(5));
    let options = ServeOptions {
        tls,
        header_timeout: std::time::Duration::from_secs(header_timeout_secs.max(1)),
        request_timeout: std::time::Duration::from_secs(request_timeout_secs.max(1)),
        cors_origins: cors_origin,
        ..ServeOptions::default()
    };
    // The request timeout and CORS sit inside the audit, which records their answers too.
    let app = router_with(state, &options)?;
    let served = serve_with(listener, app, &options, shutdown_signal()).await;
    // Every request answered is recorded before the process exits.
    audit.close().await;
    served?;
    Ok(())
}

async fn coverage(args: CoverageArgs) -> Result<()> {
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
    let mut answer = None;
    for run in 1..=args.repeat.max(1) {
        let started = std::time::Instant::now();
        answer = Some(coverage_answer(&engine, &args).await?);
        if args.repeat > 1 {
            eprintln!("run={run} seconds={:.6}", started.elapsed().as_secs_f64());
        }
    }
    let answer = answer.expect("at least one run");
    print!("{}", cov::render(&answer, format)?);
    Ok(())
}

async fn effectiveness(args: EffectivenessArgs) -> Result<()> {
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
    let mut answer = None;
    for run in 1..=args.repeat.max(1) {
        let started = std::time::Instant::now();
        answer = Some(if args.rates {
            engine.rates(&query).await?
        } else {
            engine.effectiveness(&query).await?
        });
        if args.repeat > 1 {
            eprintln!("run={run} seconds={:.6}", started.elapsed().as_secs_f64());
        }
    }
    let answer = answer.expect("at least one run");
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

async fn demo(dir: &Path, persons: u64, listen: std::net::SocketAddr) -> Result<()> {
    let export = dir.join("export");
    let warehouse = dir.join("warehouse");
    let key_path = dir.join("master.key");
    std::fs::create_dir_all(dir)?;
    let manifest_path = export.join("manifest.json");
    let reuse = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|m| m["persons"].as_u64() == Some(persons));
    if reuse {
        eprintln!("reusing the registry export in {}", export.display());
    } else {
        eprintln!(
            "generating a synthetic registry of {persons} persons in {} ...",
            export.display()
        );
        generate(&export, persons, 1)?;
    }
    if !key_path.exists() {
        write_new_key(&key_path)?;
        eprintln!("created a master key at {} (mode 600)", key_path.display());
    }
    let key = MasterKey::load(&key_path)?;
    let wh = warehouse.to_string_lossy().into_owned();
    if warehouse.join("vaccinations").join("_delta_log").exists() && reuse {
        eprintln!("reusing the warehouse in {}", warehouse.display());
    } else {
        if warehouse.exists() {
            std::fs::remove_dir_all(&warehouse)?;
        }
        let options = IngestOptions::default().with_progress(std::io::stderr().is_terminal());
        for source in [
            format!("fhir:{}", export.join("fhir").display()),
            format!("csv:{}", export.join("registry.csv").display()),
            format!("population:{}", export.join("population.csv").display()),
            format!("cases:{}", export.join("cases.csv").display()),
        ] {
            eprintln!("ingesting {source}");
            ingest(&wh, &source, &key, &options).await?;
        }
    }
    eprintln!();
    eprintln!("vaxlake demo is ready.");
    eprintln!("  API health:   curl http://{listen}/api/health");
    eprintln!(
        "  SQL over HTTP: curl -s http://{listen}/api/sql -H 'content-type: application/json' -d '{{\"sql\":\"SELECT antigen, count(*) FROM antigen_doses GROUP BY antigen ORDER BY 2 DESC\"}}'"
    );
    eprintln!(
        "  Coverage:     curl 'http://{listen}/api/coverage?indicator=DTP3&cohort=2023&by=canton'"
    );
    eprintln!(
        "  Effectiveness: curl 'http://{listen}/api/effectiveness?antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30&by=age_band'"
    );
    eprintln!(
        "  SQL here:     vaxlake sql --warehouse {} \"SELECT canton, count(*) AS doses FROM vaccinations GROUP BY canton ORDER BY doses DESC\"",
        warehouse.display()
    );
    eprintln!("Press Ctrl-C to stop.");
    serve(ServeArgs::new(wh, listen)).await
}
