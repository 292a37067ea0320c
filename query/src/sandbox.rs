//! The read-only SQL sandbox (DESIGN.md invariant 5): analysts' SQL can read the warehouse
//! tables and nothing else, and cannot change anything, exhaust memory or run forever.
//!
//! Three fences, each enough on its own for what it guards:
//! 1. [`check`] parses with DataFusion's own parser and accepts exactly one query
//!    (`SELECT`, `WITH`, `VALUES`, or `EXPLAIN` of one), naming what it refused and why;
//!    table references that look like files or URLs are refused too.
//! 2. `run` plans with DDL, DML and statements disallowed ([`SQLOptions`]), so a plan
//!    that would write, copy or reconfigure fails even if the parse check missed it.
//! 3. The session has no URL tables, a bounded memory pool, a time limit and a row cap
//!    (see [`crate::QueryOptions`]).

use std::ops::ControlFlow;
use std::time::Duration;

use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectNamePart, Select, Statement as SqlStatement, Visit, Visitor,
};
use futures::StreamExt;

use crate::{QueryAnswer, QueryError};

const ONLY_QUERIES: &str =
    "the SQL interface is read-only: send one SELECT, WITH, VALUES or EXPLAIN query";

/// Limits applied to one query run through [`run`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryLimits {
    /// Wall-clock limit from planning to the last row; the query is cancelled after it.
    pub timeout: Duration,
    /// Rows returned at most; more rows set [`QueryAnswer::truncated`].
    pub max_rows: usize,
}

/// The planner options every user query is planned with: no DDL (`CREATE`, `DROP`), no DML
/// (`INSERT`, `UPDATE`, `DELETE`, `COPY`), no statements (`SET`, transactions, `PREPARE`).
pub fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Accepts `sql` only if it is exactly one read-only query; otherwise returns
/// [`QueryError::Refused`] with the reason.
pub fn check(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(QueryError::from)?;
    let mut statements = statements.into_iter();
    let (Some(statement), None) = (statements.next(), statements.next()) else {
        return Err(match sql.trim().is_empty() {
            true => QueryError::refused(format!("the SQL is empty; {ONLY_QUERIES}")),
            false => QueryError::refused(format!(
                "more than one statement; {ONLY_QUERIES}, without a second statement after ';'"
            )),
        });
    };
    check_statement(&statement)
}

fn check_statement(statement: &DfStatement) -> Result<(), QueryError> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Query(_) => check_relations(inner),
            SqlStatement::Explain { statement, .. } => match statement.as_ref() {
                SqlStatement::Query(_) => check_relations(statement),
                other => Err(not_a_query(&other.to_string())),
            },
            other => Err(not_a_query(&other.to_string())),
        },
        DfStatement::Explain(explain) => check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(not_a_query("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(not_a_query("COPY")),
        DfStatement::Reset(_) => Err(not_a_query("RESET")),
    }
}

/// Names the refused statement by its leading keywords (`CREATE TABLE`, `INSERT`, ...).
fn not_a_query(statement_text: &str) -> QueryError {
    let words: Vec<&str> = statement_text.split_whitespace().take(6).collect();
    let kind = match words.first().map(|word| word.to_ascii_uppercase()) {
        Some(first)
            if ["CREATE", "DROP", "ALTER", "SHOW", "TRUNCATE"].contains(&first.as_str()) =>
        {
            let mut kind = first;
            for word in words.iter().skip(1) {
                let word = word.to_ascii_uppercase();
                let is_keyword = word.chars().all(|c| c.is_ascii_alphabetic());
                if !is_keyword {
                    break;
                }
                kind.push(' ');
                kind.push_str(&word);
                if ![
                    "OR",
                    "REPLACE",
                    "EXTERNAL",
                    "TEMPORARY",
                    "TEMP",
                    "UNBOUNDED",
                ]
                .contains(&word.as_str())
                {
                    break;
                }
            }
            kind
        }
        Some(first) => first,
        None => "this statement".to_string(),
    };
    QueryError::refused(format!("{kind} is not allowed; {ONLY_QUERIES}"))
}

fn check_relations(statement: &SqlStatement) -> Result<(), QueryError> {
    match statement.visit(&mut ReadOnlyGuard) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(reason) => Err(QueryError::refused(reason)),
    }
}

/// Walks a parsed query for what a plain SELECT can still smuggle in.
struct ReadOnlyGuard;

impl Visitor for ReadOnlyGuard {
    type Break = String;

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        for part in &relation.0 {
            let looks_like_location = match part {
                ObjectNamePart::Identifier(ident) => {
                    ident.quote_style == Some('\'') || ident.value.contains(['/', '\\', ':', '~'])
                }
                ObjectNamePart::Function(_) => true,
            };
            if looks_like_location {
                return ControlFlow::Break(format!(
                    "{relation} is not a warehouse table; queries may read only the warehouse's \
                     tables and views by name, never files or URLs"
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        match &select.into {
            Some(into) => ControlFlow::Break(format!(
                "SELECT ... INTO {} would create a table; {ONLY_QUERIES}",
                into.name
            )),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Plans and runs one checked query on `ctx` within `limits`. Planning uses
/// [`sql_options`] (the same as `SessionContext::sql_with_options`, but a plan refused by
/// the options is reported as [`QueryError::Refused`] rather than as a SQL error).
pub(crate) async fn run(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryAnswer, QueryError> {
    check(sql)?;
    match tokio::time::timeout(limits.timeout, plan_and_collect(ctx, sql, limits.max_rows)).await {
        Ok(answer) => answer,
        // Dropping the future drops the record batch stream, which cancels the plan's tasks.
        Err(_elapsed) => Err(QueryError::Timeout(limits.timeout)),
    }
}

async fn plan_and_collect(
    ctx: &SessionContext,
    sql: &str,
    max_rows: usize,
) -> Result<QueryAnswer, QueryError> {
    let plan = ctx.state().create_logical_plan(sql).await?;
    sql_options()
        .verify_plan(&plan)
        .map_err(|error| QueryError::refused(format!("{}; {ONLY_QUERIES}", error.message())))?;
    // EXPLAIN must stay the root of its plan; its few rows are capped by the loop below.
    let is_explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
    let mut frame = ctx.execute_logical_plan(plan).await?;
    if !is_explain {
        // One row past the cap tells "exactly max_rows" from "more"; the limit lets the
        // engine stop early (a sort becomes a top-k) instead of producing every row.
        frame = frame.limit(0, Some(max_rows.saturating_add(1)))?;
    }
    let mut stream = frame.execute_stream().await?;
    let schema = stream.schema();

    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            batches.push(batch.slice(0, room));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    batches.retain(|batch| batch.num_rows() > 0);
    Ok(QueryAnswer {
        schema,
        batches,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sql: &str) -> String {
        match check(sql) {
            Err(QueryError::Refused(reason)) => reason,
            other => panic!("expected {sql:?} to be refused, got {other:?}"),
        }
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "select * from vaccinations where sex = 'female'",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "VALUES (1, 'a'), (2, 'b')",
            "EXPLAIN SELECT count(*) FROM vaccinations",
            "EXPLAIN ANALYZE SELECT 1",
            "SELECT 1;",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM (SELECT 1) AS t JOIN vaccines ON true",
        ] {
            check(sql).unwrap_or_else(|error| panic!("{sql:?} refused: {error}"));
        }
    }

    #[test]
    fn writes_and_settings_are_refused_by_name() {
        let cases = [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            (
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE OR REPLACE VIEW",
            ),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/tmp/x'",
                "CREATE EXTERNAL TABLE",
            ),
            ("INSERT INTO vaccinations VALUES (1)", "INSERT"),
            ("UPDATE vaccinations SET sex = 'x'", "UPDATE"),
            ("DELETE FROM vaccinations", "DELETE"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("COPY vaccinations TO '/tmp/x.parquet'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("DROP TABLE vaccinations", "DROP TABLE"),
            ("DROP VIEW antigen_doses", "DROP VIEW"),
            ("EXPLAIN CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SHOW TABLES", "SHOW TABLES"),
        ];
        for (sql, kind) in cases {
            let reason = refusal(sql);
            assert!(
                reason.starts_with(&format!("{kind} is not allowed")),
                "{sql:?}: {reason}"
            );
        }
    }

    #[test]
    fn several_statements_and_empty_text_are_refused() {
        assert!(refusal("SELECT 1; SELECT 2").contains("more than one statement"));
        assert!(refusal("SELECT 1; DROP TABLE vaccinations").contains("more than one statement"));
        assert!(refusal("  ").contains("empty"));
    }

    #[test]
    fn files_and_urls_are_not_tables() {
        for sql in [
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM 'file:///tmp/x.parquet'",
            "SELECT * FROM \"/etc/passwd\"",
            "SELECT * FROM 's3://bucket/x.parquet'",
            "SELECT * FROM vaccinations v JOIN '/etc/hosts' h ON true",
            "SELECT * FROM vaccinations WHERE person_key IN (SELECT * FROM 'x.csv')",
            "WITH a AS (SELECT * FROM 'data.parquet') SELECT * FROM a",
            "EXPLAIN SELECT * FROM '/etc/passwd'",
        ] {
            assert!(
                refusal(sql).contains("not a warehouse table"),
                "{sql:?} should be refused as a file reference"
            );
        }
    }

    #[test]
    fn select_into_is_refused() {
        assert!(refusal("SELECT 1 INTO t").contains("would create a table"));
    }

    #[test]
    fn syntax_errors_are_sql_errors() {
        assert!(matches!(check("SELEC 1"), Err(QueryError::Sql(_))));
    }
}
