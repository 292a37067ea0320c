//! The read-only SQL sandbox (DESIGN.md invariant 5): analysts' SQL can read the warehouse
//! tables and nothing else, and cannot change anything, exhaust memory or run forever.
//!
//! Three fences, each enough on its own for what it guards:
//! 1. [`check`] parses with DataFusion's own parser and accepts exactly one query
//!    (`SELECT`, `WITH`, `VALUES`, or `EXPLAIN` of one), naming what it refused and why;
//!    table references that look like files or URLs are refused too, and so is a statement
//!    nested in a query (`WITH x AS (INSERT ...)`). Before parsing, it bounds the size of the
//!    query ([`MAX_TOKENS`], [`MAX_OPERATORS`]): a chain of 3 000 `+` or `UNION ALL` overflowed
//!    the stack (parsing, planning or merely dropping the syntax tree is recursive) and
//!    aborted the process.
//! 2. `run` plans with DDL, DML and statements disallowed ([`SQLOptions`]), so a plan
//!    that would write, copy or reconfigure fails even if the parse check missed it.
//! 3. The session has no URL tables, a bounded memory pool (which also bounds the answer
//!    collected and functions like `repeat` whose output dwarfs their input, see
//!    `crate::bounded`), a time limit and a row cap (see [`crate::QueryOptions`]).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::TaskContext;
use datafusion::execution::{SendableRecordBatchStream, SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectNamePart, Select, Statement as SqlStatement, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;
use url::Url;

use crate::output::QueryStream;
use crate::query_memory::QueryPool;
use crate::{QueryAnswer, QueryError};

const ONLY_QUERIES: &str =
    "the SQL interface is read-only: send one SELECT, WITH, VALUES or EXPLAIN query";

/// Words, numbers, literals and symbols one query may hold. Far above what people write
/// (an `IN` list of 20 000 keys fits); it bounds the work and memory of planning a query
/// before anything is planned.
pub const MAX_TOKENS: usize = 100_000;

/// Operators (`+`, `AND`, `||`, `UNION`, `JOIN`, `::`, ...) one query may hold. Each one can
/// add a level to the syntax tree, and the parser, the planner and the tree's destructor all
/// recurse through those levels: 3 000 overflowed the stack of a server thread (the process
/// aborted), 1 000 planned fine in a debug build.
pub const MAX_OPERATORS: usize = 1_000;

/// Tables, views, CTE references and table functions one query may name. A comma join or a
/// chain of CTEs is flat in the syntax tree but one plan level per name, as deep as the
/// operators above.
pub const MAX_RELATIONS: usize = 256;

/// Limits applied to one query run through [`run`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryLimits {
    /// Wall-clock limit from planning to the last row; the query is cancelled after it.
    pub timeout: Duration,
    /// Rows returned at most; more rows set [`QueryAnswer::truncated`].
    pub max_rows: usize,
    /// The warehouse's memory limit (see [`crate::QueryOptions::memory_limit`]), from which
    /// the limits of answers and values below follow.
    pub memory_limit: usize,
    /// Memory this one query may hold of the warehouse's pool (see [`QueryPool`]).
    pub query_memory_limit: usize,
}

impl QueryLimits {
    /// Bytes of Arrow data the answer may hold: a quarter of the memory limit (and at most
    /// half the query's own), since the answer also counts against the pool while it is
    /// collected, and encoding it (JSON, CSV) takes a few times as much again.
    pub fn max_answer_bytes(&self) -> usize {
        (self.memory_limit / 4).min(self.query_memory_limit / 2)
    }

    /// Bytes one value in the plan may hold (a literal, or what constant folding made of
    /// `repeat('x', 10000000)`): a batch of `batch_size` rows copies it into every row, so
    /// it is bounded by the memory limit over the batch size (256 KiB at the defaults).
    pub fn max_value_bytes(&self, batch_size: usize) -> usize {
        self.memory_limit / batch_size.max(1)
    }
}

/// Refuses a plan holding a value larger than `max_bytes` (see
/// [`QueryLimits::max_value_bytes`]): `SELECT repeat('x', 10000000) FROM generate_series(1,
/// 10000)` folds to a 10 MB literal that each batch would copy 8 192 times.
fn check_values(plan: &LogicalPlan, max_bytes: usize) -> Result<(), QueryError> {
    let mut largest = 0usize;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                if let Expr::Literal(value, _) = expr {
                    largest = largest.max(value.size());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match largest > max_bytes {
        true => Err(QueryError::ResourcesExhausted(format!(
            "one value of {} KiB would be copied into every row of a batch; at most {} KiB \
             per value",
            largest >> 10,
            max_bytes >> 10
        ))),
        false => Ok(()),
    }
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
    check_size(sql)?;
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

/// Refuses a query with more than [`MAX_TOKENS`] tokens or [`MAX_OPERATORS`] operators,
/// counted by DataFusion's own tokenizer (so operators inside string literals and comments
/// do not count). Text that does not tokenize is left to the parser to report.
fn check_size(sql: &str) -> Result<(), QueryError> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|token| !matches!(token, Token::Whitespace(_)))
        .collect();
    if tokens.len() > MAX_TOKENS {
        return Err(QueryError::refused(format!(
            "the query is too long ({} words and symbols; at most {MAX_TOKENS}); \
             split it into smaller queries",
            tokens.len()
        )));
    }
    let operators = tokens.iter().filter(|token| is_operator(token)).count();
    if operators > MAX_OPERATORS {
        return Err(QueryError::refused(format!(
            "the query is too complex ({operators} operators such as +, AND, ||, UNION or \
             JOIN; at most {MAX_OPERATORS}); split it into smaller queries or use IN (...) \
             instead of chains of OR"
        )));
    }
    Ok(())
}

/// Whether `token` joins two expressions or queries (and so may deepen the syntax tree).
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(word) => matches!(
            word.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::REGEXP
                | Keyword::RLIKE
                | Keyword::BETWEEN
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::DIV
                | Keyword::OVERLAPS
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::MINUS
                | Keyword::JOIN
        ),
        Token::EOF
        | Token::Whitespace(_)
        | Token::Comma
        | Token::LParen
        | Token::RParen
        | Token::RBracket
        | Token::LBrace
        | Token::RBrace
        | Token::Period
        | Token::Colon
        | Token::SemiColon
        | Token::Number(..)
        | Token::Placeholder(_) => false,
        // Literals of every kind print starting with a quote, a letter (N'', X'', E'') or $.
        other => !other
            .to_string()
            .starts_with(|c: char| c.is_alphanumeric() || matches!(c, '\'' | '"' | '`' | '$')),
    }
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

/// Names the refused statement by its leading keywords (`CREATE TABLE`, `INSERT`, ...),
/// never by the names or values that follow them.
fn not_a_query(statement_text: &str) -> QueryError {
    /// Words that name what a statement creates, drops or shows.
    const OBJECT_WORDS: &[&str] = &[
        "TABLE",
        "TABLES",
        "VIEW",
        "VIEWS",
        "SCHEMA",
        "SCHEMAS",
        "DATABASE",
        "DATABASES",
        "CATALOG",
        "FUNCTION",
        "FUNCTIONS",
        "INDEX",
        "COLUMNS",
        "ALL",
        "VARIABLE",
        "VARIABLES",
        "ROLE",
        "USER",
        "SEQUENCE",
        "TYPE",
        "MACRO",
        "SECRET",
        "STAGE",
        "TRIGGER",
        "PROCEDURE",
        "POLICY",
        "EXTENSION",
        "CONNECTOR",
        "SERVER",
    ];
    /// Words that may stand between the verb and the object word.
    const MODIFIERS: &[&str] = &[
        "OR",
        "REPLACE",
        "EXTERNAL",
        "TEMPORARY",
        "TEMP",
        "UNBOUNDED",
        "MATERIALIZED",
        "GLOBAL",
        "LOCAL",
    ];
    let mut words = statement_text
        .split_whitespace()
        .map(|word| word.to_ascii_uppercase());
    let kind = match words.next() {
        Some(first) if ["CREATE", "DROP", "ALTER", "SHOW"].contains(&first.as_str()) => {
            let mut kind = first;
            for word in words.take(5) {
                if OBJECT_WORDS.contains(&word.as_str()) {
                    kind.push(' ');
                    kind.push_str(&word);
                    break;
                }
                if !MODIFIERS.contains(&word.as_str()) {
                    break;
                }
                kind.push(' ');
                kind.push_str(&word);
            }
            kind
        }
        Some(first) if first.chars().all(|c| c.is_ascii_alphabetic()) => first,
        Some(_) | None => "this statement".to_string(),
    };
    QueryError::refused(format!("{kind} is not allowed; {ONLY_QUERIES}"))
}

fn check_relations(statement: &SqlStatement) -> Result<(), QueryError> {
    match statement.visit(&mut ReadOnlyGuard::default()) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

/// Walks a parsed query for what a plain SELECT can still smuggle in.
#[derive(Default)]
struct ReadOnlyGuard {
    relations: usize,
}

impl Visitor for ReadOnlyGuard {
    type Break = QueryError;

    /// The query itself, and any statement nested in it (`WITH x AS (INSERT ...)`, which
    /// the planner would otherwise report only as "not implemented").
    fn pre_visit_statement(&mut self, statement: &SqlStatement) -> ControlFlow<QueryError> {
        match statement {
            SqlStatement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(not_a_query(&other.to_string())),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<QueryError> {
        self.relations += 1;
        if self.relations > MAX_RELATIONS {
            return ControlFlow::Break(QueryError::refused(format!(
                "the query names more than {MAX_RELATIONS} tables, views or table functions; \
                 split it into smaller queries"
            )));
        }
        for part in &relation.0 {
            let looks_like_location = match part {
                ObjectNamePart::Identifier(ident) => {
                    ident.quote_style == Some('\'') || ident.value.contains(['/', '\\', ':', '~'])
                }
                ObjectNamePart::Function(_) => true,
            };
            if looks_like_location {
                return ControlFlow::Break(QueryError::refused(format!(
                    "{relation} is not a warehouse table; queries may read only the warehouse's \
                     tables and views by name, never files or URLs"
                )));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<QueryError> {
        match &select.into {
            Some(into) => ControlFlow::Break(QueryError::refused(format!(
                "SELECT ... INTO {} would create a table; {ONLY_QUERIES}",
                into.name
            ))),
            None => ControlFlow::Continue(()),
        }
    }
}

/// Plans and runs one checked query on `ctx` within `limits`. Planning uses
/// [`sql_options`] (the same as `SessionContext::sql_with_options`, but a plan refused by
/// the options is reported as [`QueryError::Refused`] rather than as a SQL error).
/// Where the warehouse lives (`root`) is the operators' business: EXPLAIN's file lists and
/// error messages show `<warehouse>/` instead.
pub(crate) async fn run(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
    root: &Url,
) -> Result<QueryAnswer, QueryError> {
    check(sql)?;
    let hide = RootHider::new(root);
    match tokio::time::timeout(limits.timeout, plan_and_collect(ctx, sql, limits)).await {
        Ok(Ok(answer)) => hide.in_answer(answer),
        Ok(Err(error)) => Err(hide.in_error(error)),
        // Dropping the future drops the record batch stream, which cancels the plan's tasks.
        Err(_elapsed) => Err(QueryError::Timeout(limits.timeout)),
    }
}

/// [`run`] for the doors that stream (Flight SQL, PostgreSQL wire): the same checks, plan
/// and limits, but the rows are handed on batch by batch as the plan makes them instead of
/// being collected, so the answer's size is bounded by the row cap alone and the memory by
/// the query's pool share. The time limit counts from here to the last row.
pub(crate) async fn run_stream(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
    root: &Url,
) -> Result<QueryStream, QueryError> {
    check(sql)?;
    let hide = RootHider::new(root);
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let stream = match tokio::time::timeout_at(deadline, plan_stream(ctx, sql, limits)).await {
        Ok(Ok((stream, _pool))) => stream,
        Ok(Err(error)) => return Err(hide.in_error(error)),
        Err(_elapsed) => return Err(QueryError::Timeout(limits.timeout)),
    };
    let explain = is_explain_schema(&stream.schema());
    Ok(QueryStream::new(
        stream,
        limits.max_rows,
        deadline,
        limits.timeout,
        match explain {
            true => Some(Box::new(move |batch| hide.in_batch(batch))),
            false => None,
        },
    ))
}

/// What a query would answer, planned but not run: what Flight SQL's `FlightInfo` and the
/// PostgreSQL door's `Describe` announce before the rows are fetched.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    /// The columns.
    pub schema: SchemaRef,
    /// The types of the parameters `$1`, `$2`, ... in order; `None` where the planner
    /// cannot tell from the query.
    pub parameters: Vec<Option<DataType>>,
}

/// Plans a checked query on `ctx` without running it (see [`PlannedQuery`]).
pub(crate) async fn plan(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
    root: &Url,
) -> Result<PlannedQuery, QueryError> {
    check(sql)?;
    let hide = RootHider::new(root);
    let planned = async {
        let state = query_state(ctx, limits);
        let plan = logical_plan(&state, sql).await?;
        let mut parameters: Vec<(usize, Option<DataType>)> = plan
            .get_parameter_types()?
            .into_iter()
            .filter_map(|(name, kind)| {
                let index = name.strip_prefix('$')?.parse::<usize>().ok()?;
                Some((index, kind))
            })
            .collect();
        parameters.sort_by_key(|(index, _)| *index);
        // The columns as the rows will carry them: the physical plan's (nullability can
        // differ from the logical plan's, and Flight SQL clients compare the two). A query
        // with parameters cannot be planned physically until they are bound.
        let schema = match parameters.is_empty() {
            true => {
                let optimized = state.optimize(&plan)?;
                state
                    .query_planner()
                    .create_physical_plan(&optimized, &state)
                    .await?
                    .schema()
            }
            false => Arc::new(plan.schema().as_arrow().clone()),
        };
        let count = parameters.last().map_or(0, |(index, _)| *index);
        let mut ordered = vec![None; count];
        for (index, kind) in parameters {
            if index >= 1 {
                ordered[index - 1] = kind;
            }
        }
        Ok::<_, QueryError>(PlannedQuery {
            schema,
            parameters: ordered,
        })
    };
    match tokio::time::timeout(limits.timeout, planned).await {
        Ok(result) => result.map_err(|error| hide.in_error(error)),
        Err(_elapsed) => Err(QueryError::Timeout(limits.timeout)),
    }
}

/// Whether a schema is EXPLAIN's (the only answer whose text may name the warehouse root).
fn is_explain_schema(schema: &Schema) -> bool {
    let names: Vec<&str> = schema
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .collect();
    names == ["plan_type", "plan"]
}

/// Replaces the warehouse's location by `<warehouse>/` in text shown to analysts.
struct RootHider {
    /// The spellings of the root, longest first: the URL, its path, and the path without
    /// its leading slash (object store paths, as scans print them).
    spellings: Vec<String>,
}

impl RootHider {
    const PLACEHOLDER: &'static str = "<warehouse>/";

    fn new(root: &Url) -> Self {
        let path = root.path();
        let mut spellings = vec![
            root.as_str().to_string(),
            path.to_string(),
            path.trim_start_matches('/').to_string(),
        ];
        spellings.retain(|spelling| spelling.len() > 1);
        RootHider { spellings }
    }

    fn in_text(&self, text: &str) -> String {
        self.spellings
            .iter()
            .fold(text.to_string(), |text, spelling| {
                text.replace(spelling.as_str(), Self::PLACEHOLDER)
            })
    }

    fn in_error(&self, error: QueryError) -> QueryError {
        match error {
            QueryError::Sql(reason) => QueryError::Sql(self.in_text(&reason)),
            other => other,
        }
    }

    /// An answer with the root hidden in its text columns; only EXPLAIN's answer (columns
    /// `plan_type` and `plan`) is rewritten, never the rows of a table.
    fn in_answer(&self, mut answer: QueryAnswer) -> Result<QueryAnswer, QueryError> {
        if !is_explain_schema(&answer.schema) {
            return Ok(answer);
        }
        for batch in &mut answer.batches {
            *batch = self.in_batch(batch)?;
        }
        Ok(answer)
    }

    /// One batch of EXPLAIN's answer with the root hidden in its text.
    fn in_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
        let columns = batch
            .columns()
            .iter()
            .map(|column| {
                let text = arrow::compute::cast(column, &DataType::Utf8)?;
                let hidden: StringArray = text
                    .as_string::<i32>()
                    .iter()
                    .map(|value| value.map(|value| self.in_text(value)))
                    .collect();
                arrow::compute::cast(&hidden, column.data_type())
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

/// The session of one query: the warehouse's tables, views and functions over a runtime
/// whose pool is this query's share of the warehouse's pool.
fn query_state(ctx: &SessionContext, limits: QueryLimits) -> SessionState {
    let shared = ctx.runtime_env();
    let runtime = Arc::new(RuntimeEnv {
        memory_pool: Arc::new(QueryPool::new(
            shared.memory_pool.clone(),
            limits.query_memory_limit,
        )),
        ..shared.as_ref().clone()
    });
    SessionStateBuilder::new_from_existing(ctx.state())
        .with_runtime_env(runtime)
        .build()
}

/// The logical plan of a checked query, refused if the planner options find it writes.
async fn logical_plan(state: &SessionState, sql: &str) -> Result<LogicalPlan, QueryError> {
    let plan = state.create_logical_plan(sql).await?;
    sql_options()
        .verify_plan(&plan)
        .map_err(|error| QueryError::refused(format!("{}; {ONLY_QUERIES}", error.message())))?;
    Ok(plan)
}

/// Plans a checked query and starts it: the stream of its rows, capped one row past
/// `max_rows` (so a caller can tell "exactly max_rows" from "more"), and the query's memory
/// pool (its share of the warehouse's).
async fn plan_stream(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
) -> Result<(SendableRecordBatchStream, Arc<dyn MemoryPool>), QueryError> {
    let max_rows = limits.max_rows;
    let state = query_state(ctx, limits);
    let plan = logical_plan(&state, sql).await?;
    // EXPLAIN must stay the root of its plan; its few rows are capped by the caller.
    let is_explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
    let plan = match is_explain {
        true => plan,
        // The limit lets the engine stop early (a sort becomes a top-k) instead of
        // producing every row.
        false => LogicalPlanBuilder::from(plan)
            .limit(0, Some(max_rows.saturating_add(1)))?
            .build()?,
    };
    // Optimised here rather than inside `create_physical_plan`, to look at the values
    // constant folding made before anything runs.
    let plan = state.optimize(&plan)?;
    check_values(&plan, limits.max_value_bytes(state.config().batch_size()))?;
    let physical = state
        .query_planner()
        .create_physical_plan(&plan, &state)
        .await?;
    let stream = execute_stream(physical, Arc::new(TaskContext::from(&state)))?;
    Ok((stream, state.runtime_env().memory_pool.clone()))
}

async fn plan_and_collect(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryAnswer, QueryError> {
    let max_rows = limits.max_rows;
    let (mut stream, pool) = plan_stream(ctx, sql, limits).await?;
    let schema = stream.schema();

    // The rows collected count against the pool like any operator's memory: a capped
    // number of rows can still be wide (`SELECT repeat('x', 1000000) FROM ...`).
    let answer_memory = MemoryConsumer::new("the answer").register(&pool);
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let mut batch = batch.map_err(without_values)?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            batch = batch.slice(0, room);
            truncated = true;
        }
        // All the buffers, even of a slice: the slice keeps them alive. (The sliced size
        // of a string view column leaves out the strings themselves.)
        let bytes = batch.get_array_memory_size();
        if answer_memory.size() + bytes > limits.max_answer_bytes() {
            return Err(QueryError::ResourcesExhausted(format!(
                "the answer would exceed {} MiB",
                limits.max_answer_bytes() >> 20
            )));
        }
        answer_memory.try_grow(bytes)?;
        rows += batch.num_rows();
        batches.push(batch);
        if truncated {
            break;
        }
    }
    batches.retain(|batch| batch.num_rows() > 0);
    Ok(QueryAnswer {
        schema,
        batches,
        truncated,
    })
}

/// An error raised while rows are read, with every quoted stretch blanked out: Arrow's
/// cast and parse errors quote the value that failed (`Cannot cast string '<a pseudonym>'
/// to value of Int32 type`), and answers and logs carry reasons, never rows. Regular
/// expressions built from columns (`regexp_like(x, lot_number || '(')`) are blanked too: the
/// regex crate prints the pattern that does not parse, unquoted.
pub(crate) fn without_values(error: datafusion::error::DataFusionError) -> QueryError {
    match QueryError::from(error) {
        QueryError::Sql(reason) => QueryError::Sql(blank_regex_patterns(&blank_quoted(&reason))),
        other => other,
    }
}

/// `text` with the pattern of each regex syntax error left out. The regex crate writes the
/// pattern (with a caret line under it) between `regex parse error:` and a last line
/// `error: <what is wrong>`; everything up to that last line goes, so a pattern holding
/// `error: ` itself is left out too.
fn blank_regex_patterns(text: &str) -> String {
    const START: &str = "regex parse error:";
    let Some(start) = text.find(START) else {
        return text.to_string();
    };
    let after = &text[start + START.len()..];
    let mut out = text[..start].to_string();
    out.push_str("regex parse error (the pattern is not shown: it may hold stored values)");
    if let Some(what) = after.rfind("\nerror: ") {
        let line = after[what + 1..].lines().next().unwrap_or_default();
        out.push_str("; ");
        out.push_str(line);
    }
    out
}

/// `text` with whatever stands between single quotes replaced by `…`.
fn blank_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match (c, quoted) {
            ('\'', false) => {
                out.push_str("'…");
                quoted = true;
            }
            ('\'', true) => {
                out.push('\'');
                quoted = false;
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_errors_do_not_show_the_pattern() {
        let message = "Arrow error: Compute error: Regular expression did not compile: Syntax(\n\
                       ~~~~~~~~~~~~~~~~~~~~\nregex parse error:\n    MB3997(\n          ^\n\
                       error: unclosed group\n~~~~~~~~~~~~~~~~~~~~\n)";
        let shown = blank_regex_patterns(message);
        assert!(!shown.contains("MB3997"), "{shown}");
        assert!(shown.contains("error: unclosed group"), "{shown}");
        assert!(shown.starts_with("Arrow error: Compute error"), "{shown}");
        assert_eq!(blank_regex_patterns("no regex here"), "no regex here");
    }

    #[tokio::test]
    async fn a_pattern_built_from_stored_values_is_not_quoted_back() {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        let schema = Arc::new(Schema::new(vec![Field::new("lot", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![
                "MB3997",
                "9880d2b12d3881a2",
            ]))],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("t", batch).unwrap();
        let limits = QueryLimits {
            timeout: Duration::from_secs(30),
            max_rows: 100,
            memory_limit: 1 << 30,
            query_memory_limit: 1 << 29,
        };
        let root = Url::parse("file:///srv/wh/").unwrap();
        for sql in [
            "SELECT regexp_like('a', lot || '(') FROM t",
            "SELECT regexp_replace('a', lot || '[', 'x') FROM t",
            "SELECT CAST(lot AS INT) FROM t",
        ] {
            let error = run(&ctx, sql, limits, &root).await.unwrap_err().to_string();
            for value in ["MB3997", "9880d2b12d3881a2"] {
                assert!(!error.contains(value), "{sql}: {error}");
            }
        }
    }

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
    fn the_warehouse_location_is_hidden() {
        let hide = RootHider::new(&Url::parse("file:///srv/wh/").unwrap());
        assert_eq!(
            hide.in_text("file_groups={[srv/wh/vaccinations/a.parquet]} at /srv/wh/x"),
            "file_groups={[<warehouse>/vaccinations/a.parquet]} at <warehouse>/x"
        );
    }

    #[test]
    fn values_in_errors_are_blanked() {
        assert_eq!(
            blank_quoted("Cannot cast string 'Wiltz' to value of Int32 type"),
            "Cannot cast string '…' to value of Int32 type"
        );
        assert_eq!(blank_quoted("no quotes"), "no quotes");
        assert_eq!(blank_quoted("open 'quote"), "open '…");
    }

    #[test]
    fn oversized_queries_are_refused_before_parsing() {
        let chain = format!("SELECT 1{}", "+1".repeat(MAX_OPERATORS + 1));
        assert!(refusal(&chain).contains("too complex"));
        let unions = vec!["SELECT 1"; MAX_OPERATORS + 2].join(" UNION ALL ");
        assert!(refusal(&unions).contains("too complex"));
        let long = format!("SELECT 1 WHERE 1 IN ({})", vec!["1"; MAX_TOKENS].join(","));
        assert!(refusal(&long).contains("too long"));
        // Operators inside literals and comments do not count.
        let quoted = format!("SELECT '{}' /* {} */", "+".repeat(5_000), "+".repeat(5_000));
        check(&quoted).unwrap();
        let tables = vec!["vaccinations"; MAX_RELATIONS + 1].join(", ");
        assert!(refusal(&format!("SELECT 1 FROM {tables}")).contains("more than"));
    }

    #[test]
    fn statements_nested_in_a_query_are_refused() {
        assert!(refusal(
            "WITH x AS (INSERT INTO vaccinations SELECT * FROM vaccinations) SELECT 1"
        )
        .starts_with("INSERT is not allowed"));
    }

    #[test]
    fn refusals_name_the_statement_not_its_arguments() {
        assert!(refusal("TRUNCATE vaccinations").starts_with("TRUNCATE is not allowed"));
        assert!(refusal("SHOW datafusion.runtime.temp_directory").starts_with("SHOW is not"));
        assert!(refusal("DROP TABLE IF EXISTS secret_name").starts_with("DROP TABLE is not"));
    }

    #[test]
    fn syntax_errors_are_sql_errors() {
        assert!(matches!(check("SELEC 1"), Err(QueryError::Sql(_))));
    }
}
