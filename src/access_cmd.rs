//! `vaxlake token` and `vaxlake audit`: the operator's side of access control.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use vaxlake_query::api::auth::{new_token, Role};
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
    match (role, &project) {
        (Role::Researcher, None) => anyhow::bail!("a researcher needs --project"),
        (Role::Researcher, Some(_)) | (_, None) => {}
        (_, Some(_)) => anyhow::bail!("only researchers have a --project"),
    }
    if name.is_empty() || name.contains(['"', '\\', '\n']) {
        anyhow::bail!("--name must be non-empty, without quotes, backslashes or line breaks");
    }
    let (token, hash) = new_token();
    eprintln!("token for {name} (shown once; give it to the user over a secure channel):");
    println!("{token}");
    eprintln!();
    eprintln!("add to the auth file of `vaxlake serve --auth FILE`:");
    let mut entry = format!(
        "[[user]]\nname = \"{name}\"\nrole = \"{}\"\ntoken_blake3 = \"{hash}\"\n",
        role.as_str()
    );
    if let Some(project) = project {
        entry.push_str(&format!("project = \"{project}\"\n"));
    }
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
    /// ok, refused, unauthenticated, forbidden, throttled or error.
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
    Ok(())
}
