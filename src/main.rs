//! `vaxlake`: the command-line program. Only wiring: every stage lives in its own crate, the
//! flags in `cli`, what each command does in `commands`.

use anyhow::Result;
use clap::Parser;
use std::io::IsTerminal;

mod cli;
mod commands;
mod key_file;
mod logging;
mod panic_hook;
mod progress;
mod repeat;
mod signal;

use cli::{Cli, Command, KeyCommand};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(logging::log_filter())
        .init();
    panic_hook::install();
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
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, each said once: deltalake's and object_store's
/// messages already end with their sources, which `{:#}` would repeat after them (a full
/// disk's "No space left on device" came out six times).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate { out, persons, seed } => commands::generate::run(&out, persons, seed),
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
            commands::ingest::run(
                warehouse,
                source,
                key,
                batch_rows,
                csv_source_system,
                table,
                follow,
                every,
            )
            .await
        }
        Command::Status {
            warehouse,
            source,
            table,
        } => commands::status::run(&warehouse.warehouse, source.as_deref(), table.as_deref()).await,
        Command::Sql {
            warehouse,
            cluster,
            query,
            format,
            repeat,
        } => commands::sql::run(warehouse, cluster, query, format, repeat).await,
        Command::Cluster { command } => commands::cluster::run(command).await,
        Command::Serve(args) => commands::serve::run(args).await,
        Command::Coverage(args) => commands::coverage::run(args).await,
        Command::Maintain {
            warehouse,
            retention_hours,
            dry_run,
            no_compact,
            no_vacuum,
        } => {
            commands::maintain::run(warehouse, retention_hours, dry_run, no_compact, no_vacuum)
                .await
        }
        Command::Effectiveness(args) => commands::effectiveness::run(args).await,
        Command::Demo {
            dir,
            persons,
            listen,
        } => commands::demo::run(&dir, persons, listen).await,
        Command::Token { command } => commands::access::token(command),
        Command::Audit(args) => commands::access::audit(args).await,
        Command::Extract { command } => commands::extract::run(command).await,
        Command::Key {
            command: KeyCommand::Rotate(args),
        } => commands::key::rotate(args).await,
        Command::Key {
            command: KeyCommand::New { out },
        } => commands::key::new(&out),
    }
}
