//! `vaxlake token` and `vaxlake audit`: the operator's side of access control.

use anyhow::Result;
use vaxlake_server::audit::{read, AuditFilter};
use vaxlake_server::auth::{new_token, scram_verifier, user_entry, Role};

use crate::cli::{AuditArgs, AuditFormat, TokenCommand};

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
    // The PostgreSQL door's SCRAM verifier of the same token (never the token itself).
    let scram = scram_verifier(&token);
    let entry = user_entry(&name, role, project.as_deref(), &hash, Some(&scram))?;
    eprintln!("token for {name} (shown once; give it to the user over a secure channel):");
    println!("{token}");
    eprintln!();
    eprintln!("add to the auth file of `vaxlake serve --auth FILE`:");
    eprint!("{entry}");
    Ok(())
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
            max_text: None,
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
