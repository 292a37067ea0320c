//! `vaxlake token` and `vaxlake audit`: the operator's side of access control.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use vaxlake_query::api::auth::{new_token, user_entry, Role};
use vaxlake_query::audit::{read, AuditFilter};

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

/// Runs `vaxlake token ...`.
pub fn token(command: TokenCommand) -> Result<()> {
    let TokenCommand::New {
        name,
        role,
        project,
    } = command;
    let role: Role = role.parse()?;
    let (token, hash) = new_token();
    // Checked (and written by the TOML serializer) before the token is shown.
    let entry = user_entry(&name, role, project.as_deref(), &hash)?;
    eprintln!("token for {name} (shown once; give it to the user over a secure channel):");
    println!("{token}");
    eprintln!();
    eprintln!("add to the auth file of `vaxlake serve --auth FILE`:");
    eprint!("{entry}");
    Ok(())
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
    pub warehouse: crate::WarehouseArg,
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

/// Runs `vaxlake audit`: the same rows as `/api/audit`.
pub async fn audit(args: AuditArgs) -> Result<()> {
    let root = vaxlake_ingest::warehouse_url(&args.warehouse.warehouse)?;
    let answer = read(
        &root,
        &AuditFilter {
            user: args.user,
            endpoint: args.endpoint,
            outcome: args.outcome,
            since: args.since,
            limit: Some(args.limit),
        },
    )
    .await?;
    match args.format {
        AuditFormat::Table => println!("{}", answer.to_table()?),
        AuditFormat::Csv => print!("{}", String::from_utf8(answer.to_csv()?)?),
        AuditFormat::Json => println!("{}", serde_json::to_string(&answer.to_json()?)?),
    }
    if answer.truncated {
        eprintln!(
            "only the newest {} rows are shown; raise --limit for more",
            answer.num_rows()
        );
    }
    Ok(())
}
