//! The statements of a signed-in connection, by the simple and the extended query
//! protocol: queries through the sandbox (streamed, audited), cursors over them
//! (`DECLARE`/`FETCH`/`CLOSE`, as psycopg's server-side cursors use), and the session
//! statements clients send on connect (`SET`, `SHOW`, `BEGIN`/`COMMIT`), answered without
//! changing anything. Every other statement is judged by the sandbox, so it is refused
//! with the same reason `/api/sql` gives.

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use axum::http::StatusCode;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, CloseCursor, Expr, FetchDirection, Statement, Value,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{stream, Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use vaxlake_query::QueryError;

use super::session::{ClientSettings, PgSessions};
use super::startup::Startup;
use crate::auth::Caller;
use crate::sql_door::{AuditedRows, SqlDoor};

const QUERY: &str = "POSTGRES Query";
const EXECUTE: &str = "POSTGRES Execute";

/// A statement as parsed for the extended protocol (and classified for both).
#[derive(Debug, Clone)]
pub(crate) struct PgStatement {
    /// What the client sent, for the audit and for the sandbox's judgement of statements
    /// that are not queries.
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A query (rewritten for DataFusion by the PostgreSQL-compatibility parser), with its
    /// columns and parameter types once planned. Without a statement, the client's text
    /// itself, as `/api/sql` takes it: what the PostgreSQL parser cannot read or what is
    /// not a query, which the sandbox then refuses with `/api/sql`'s reason.
    Query {
        statement: Option<Box<Statement>>,
        planned: Option<Planned>,
    },
    Declare {
        name: String,
        query: Box<Statement>,
    },
    Fetch {
        name: String,
        count: Option<usize>,
        /// The cursor's columns, when it was declared before this was parsed.
        schema: Option<SchemaRef>,
    },
    Close(Option<String>),
    /// A declared cursor, as its portal holds it.
    Cursor(SchemaRef),
    Set(Option<(String, String)>),
    Show(String),
    Begin,
    Commit,
    Rollback,
    /// `COPY`, in or out: refused (see docs/clients.md).
    Copy,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO` (psycopg's nested transactions): the tag.
    Savepoint(&'static str),
    Discard,
}

impl Kind {
    /// The client's text, judged by the sandbox as `/api/sql` would.
    fn as_sent() -> Kind {
        Kind::Query {
            statement: None,
            planned: None,
        }
    }

    /// Statements about the session rather than the data (answered, never audited).
    fn is_session(&self) -> bool {
        matches!(
            self,
            Kind::Set(_)
                | Kind::Show(_)
                | Kind::Begin
                | Kind::Commit
                | Kind::Rollback
                | Kind::Discard
        )
    }
}

#[derive(Debug, Clone)]
struct Planned {
    schema: SchemaRef,
    parameters: Vec<Option<DataType>>,
}

fn classify(statement: Statement) -> Kind {
    match statement {
        Statement::Query(_) | Statement::Explain { .. } => Kind::Query {
            statement: Some(Box::new(statement)),
            planned: None,
        },
        Statement::Declare { ref stmts } => match stmts.as_slice() {
            [declare] => match (declare.names.first(), &declare.for_query) {
                (Some(name), Some(query)) => Kind::Declare {
                    name: name.value.clone(),
                    query: Box::new(Statement::Query(query.clone())),
                },
                _ => Kind::as_sent(),
            },
            _ => Kind::as_sent(),
        },
        Statement::Fetch {
            name, direction, ..
        } => {
            let count = match direction {
                FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(Some(1)),
                FetchDirection::Count { limit }
                | FetchDirection::Forward { limit: Some(limit) } => match &limit.value {
                    Value::Number(text, _) => text.parse().ok().map(Some),
                    _ => None,
                },
                FetchDirection::All | FetchDirection::ForwardAll => Some(None),
                _ => None,
            };
            match count {
                Some(count) => Kind::Fetch {
                    name: name.value,
                    count,
                    schema: None,
                },
                None => Kind::as_sent(),
            }
        }
        Statement::Close { cursor } => Kind::Close(match cursor {
            CloseCursor::All => None,
            CloseCursor::Specific { name } => Some(name.value),
        }),
        // The engine's own settings are the server's: refused in the sandbox's words.
        Statement::Set(datafusion::sql::sqlparser::ast::Set::SingleAssignment {
            ref variable,
            ..
        }) if is_engine_setting(&variable.to_string()) => Kind::as_sent(),
        Statement::ShowVariable { ref variable }
            if variable.first().is_none_or(|first| {
                first.value.eq_ignore_ascii_case("all") || is_engine_setting(&first.value)
            }) =>
        {
            Kind::as_sent()
        }
        Statement::Set(set) => Kind::Set(match set {
            datafusion::sql::sqlparser::ast::Set::SingleAssignment {
                variable, values, ..
            } => Some((
                variable.to_string(),
                values
                    .iter()
                    .map(|value| match value {
                        Expr::Value(v) => match &v.value {
                            Value::SingleQuotedString(text) => text.clone(),
                            other => other.to_string(),
                        },
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            _ => None,
        }),
        Statement::ShowVariable { variable } => Kind::Show(
            variable
                .iter()
                .map(|ident| ident.value.clone())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Statement::StartTransaction { .. } => Kind::Begin,
        Statement::Commit { .. } => Kind::Commit,
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Kind::Savepoint("ROLLBACK"),
        Statement::Rollback { .. } => Kind::Rollback,
        Statement::Savepoint { .. } => Kind::Savepoint("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Kind::Savepoint("RELEASE"),
        Statement::Discard { .. } => Kind::Discard,
        Statement::Copy { .. } => Kind::Copy,
        _ => Kind::as_sent(),
    }
}

/// Whether `name` is one of DataFusion's settings (`datafusion.execution.batch_size`): the
/// server's, never a client's to set or read.
fn is_engine_setting(name: &str) -> bool {
    name.trim_matches('"')
        .to_ascii_lowercase()
        .starts_with("datafusion")
}

/// The handlers of every connection; the startup handler is new per connection.
pub(crate) struct Handlers {
    door: SqlDoor,
    require_tls: bool,
    decoy_secret: Arc<[u8; 32]>,
    pids: Arc<pgwire::api::RandomPidSecretKeyGenerator>,
    queries: Arc<Queries>,
}

impl Handlers {
    pub(crate) fn new(door: SqlDoor, require_tls: bool) -> Self {
        let mut decoy_secret = [0u8; 32];
        rand::fill(&mut decoy_secret);
        let parser = Arc::new(Parser {
            door: door.clone(),
            sessions: Arc::new(PgSessions::new()),
            sql: PostgresCompatibilityParser::new(),
        });
        Handlers {
            queries: Arc::new(Queries {
                door: door.clone(),
                parser,
            }),
            door,
            require_tls,
            decoy_secret: Arc::new(decoy_secret),
            pids: Arc::new(pgwire::api::RandomPidSecretKeyGenerator::default()),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(Startup::new(
            self.door.clone(),
            self.require_tls,
            self.decoy_secret.clone(),
            self.pids.clone(),
        ))
    }
}

/// Parses and plans for the extended protocol.
pub(crate) struct Parser {
    door: SqlDoor,
    sessions: Arc<PgSessions>,
    sql: PostgresCompatibilityParser,
}

impl Parser {
    /// The statements of `text`, classified; `None` when the PostgreSQL parser cannot read
    /// it (the sandbox then judges the text, as `/api/sql` would).
    fn parse(&self, text: &str) -> Option<Vec<Kind>> {
        self.sql
            .parse(text)
            .ok()
            .map(|statements| statements.into_iter().map(classify).collect())
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut kinds = self.parse(sql).unwrap_or_else(|| vec![Kind::as_sent()]);
        if kinds.len() > 1 {
            // One statement per message, and the sandbox's words for it.
            kinds = vec![Kind::as_sent()];
        }
        let Some(mut kind) = kinds.pop() else {
            return Ok(None);
        };
        if let Kind::Fetch { name, schema, .. } = &mut kind {
            *schema = client
                .session_extensions()
                .get::<CursorSchemas>()
                .and_then(|cursors| cursors.get(name));
        }
        if let Kind::Query { statement, planned } = &mut kind {
            let warehouse = self.door.state().warehouse();
            let text = match statement {
                Some(statement) => statement.to_string(),
                None => sql.to_string(),
            };
            let result = match refused_as_sent(sql) {
                Some(error) => Err(error),
                None => match self.sessions.context(warehouse).await {
                    Ok(ctx) => warehouse.plan_in(&ctx, &text).await,
                    Err(error) => Err(error),
                },
            };
            match result {
                Ok(plan) => {
                    *planned = Some(Planned {
                        schema: plan.schema,
                        parameters: plan.parameters,
                    })
                }
                Err(error) => {
                    let caller = caller_of(client);
                    let (status, info) = error_info(&error);
                    self.door
                        .audit(&caller, EXECUTE, Some(sql))
                        .finish(status, None);
                    return Err(PgWireError::UserError(Box::new(info)));
                }
            }
        }
        Ok(Some(PgStatement {
            text: sql.to_string(),
            kind,
        }))
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(match &statement.kind {
            Kind::Query {
                planned: Some(planned),
                ..
            } => planned
                .parameters
                .iter()
                .map(|kind| {
                    kind.as_ref()
                        .and_then(|kind| arrow_pg::datatypes::into_pg_type(kind).ok())
                        .unwrap_or(Type::UNKNOWN)
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    fn get_result_schema(
        &self,
        statement: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &statement.kind {
            Kind::Query {
                planned: Some(planned),
                ..
            } => fields(
                &planned.schema,
                format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            Kind::Show(name) => Ok(show_fields(name)),
            // A cursor's rows were encoded as text when it was declared.
            Kind::Cursor(schema)
            | Kind::Fetch {
                schema: Some(schema),
                ..
            } => fields(schema, &Format::UnifiedText, None),
            _ => Ok(Vec::new()),
        }
    }
}

/// The simple and extended query handlers of every connection.
pub(crate) struct Queries {
    door: SqlDoor,
    parser: Arc<Parser>,
}

impl Queries {
    /// Runs one classified statement; `text` is its SQL as the client sent it (or as the
    /// parser printed it, for one of several statements in one message).
    async fn run<C>(
        &self,
        client: &mut C,
        kind: Kind,
        text: &str,
        method: &str,
        parameters: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        match kind {
            Kind::Query { statement, .. } => {
                let rewritten = statement.is_some();
                let sql = match statement {
                    Some(statement) => substitute(*statement, parameters)?,
                    None => text.to_string(),
                };
                let rows = self.rows(client, &sql, text, method, rewritten).await?;
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                Ok(Response::Query(response(rows, format, options)?))
            }
            Kind::Declare { name, query } => {
                let sql = substitute(*query, parameters)?;
                let rows = self.rows(client, &sql, text, method, false).await?;
                let schema = rows.schema();
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                let answer = response(rows, &Format::UnifiedText, options)?;
                let store = portals(client)?;
                if let Some(cursors) = client.session_extensions().get::<CursorSchemas>() {
                    cursors.put(&name, schema.clone());
                }
                let statement = Arc::new(StoredStatement::new(
                    name.clone(),
                    PgStatement {
                        text: text.to_string(),
                        kind: Kind::Cursor(schema),
                    },
                    Vec::new(),
                ));
                let portal = Portal::new_cursor(name, statement);
                portal.start(answer).await;
                store.put_portal(Arc::new(portal));
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            Kind::Fetch { name, count, .. } => {
                let store = portals(client)?;
                let portal = store
                    .get_portal(&name)
                    .and_then(|entry| entry.value().cloned())
                    .ok_or_else(|| {
                        user_error("34000", format!("cursor \"{name}\" does not exist"))
                    })?;
                let fetched = portal.fetch(count.unwrap_or(0)).await?;
                let mut answer = fetched.response;
                answer.set_command_tag("FETCH");
                Ok(Response::Query(answer))
            }
            Kind::Close(name) => {
                let store = portals(client)?;
                let cursors = client.session_extensions().get::<CursorSchemas>();
                match name {
                    Some(name) => {
                        store.rm_portal(&name);
                        if let Some(cursors) = cursors {
                            cursors.remove(&name);
                        }
                    }
                    None => store.clear_portals(),
                }
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
            Kind::Set(assignment) => {
                if let (Some((name, value)), Some(settings)) = (
                    assignment,
                    client.session_extensions().get::<ClientSettings>(),
                ) {
                    settings.set(&name, value);
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Kind::Show(name) => {
                let value = client
                    .session_extensions()
                    .get::<ClientSettings>()
                    .and_then(|settings| settings.show(&name))
                    .ok_or_else(|| {
                        user_error(
                            "42704",
                            format!("unrecognized configuration parameter \"{name}\""),
                        )
                    })?;
                let fields = Arc::new(show_fields(&name));
                let mut encoder = pgwire::api::results::DataRowEncoder::new(fields.clone());
                encoder.encode_field(&Some(value))?;
                let row = encoder.take_row();
                Ok(Response::Query(QueryResponse::new(
                    fields,
                    stream::iter([Ok(row)]),
                )))
            }
            Kind::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Kind::Commit => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Kind::Rollback => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Kind::Savepoint(tag) => Ok(Response::Execution(Tag::new(tag))),
            Kind::Copy => {
                // Refused rather than answered read-only: COPY TO STDOUT would be a second
                // output path to keep within the sandbox's row cap and audit.
                // The sandbox's words when it refuses (as `/api/sql` would answer).
                let error = refused_as_sent(text).unwrap_or_else(|| {
                    QueryError::Refused(
                    "COPY is not allowed; the SQL interface is read-only: send one SELECT, WITH, \
                     VALUES or EXPLAIN query (psql's \\copy is COPY too: use \\o FILE with \
                     --csv, or /api/sql with Accept: text/csv)"
                                .into(),
                        )
                });
                let (status, info) = error_info(&error);
                self.door
                    .audit(&caller_of(client), method, Some(text))
                    .finish(status, None);
                Err(PgWireError::UserError(Box::new(info)))
            }
            Kind::Discard => Ok(Response::Execution(Tag::new("DISCARD ALL"))),
            Kind::Cursor(_) => Err(user_error("34000", "a cursor is read with FETCH".into())),
        }
    }

    /// `sql` run in the sandbox on the connection's session, with a permit and an audit
    /// row (holding the client's `text`). With `as_sent`, the client's text is judged first,
    /// so that a refusal has `/api/sql`'s words.
    async fn rows<C>(
        &self,
        client: &C,
        sql: &str,
        text: &str,
        method: &str,
        as_sent: bool,
    ) -> PgWireResult<AuditedRows>
    where
        C: ClientInfo,
    {
        let caller = caller_of(client);
        let audit = self.door.audit(&caller, method, Some(text));
        let permit = match self.door.permit() {
            Ok(permit) => permit,
            Err(refusal) => {
                audit.finish(refusal.status, None);
                return Err(user_error("53300", refusal.reason));
            }
        };
        let warehouse = self.door.state().warehouse();
        let stream = match as_sent.then(|| refused_as_sent(text)).flatten() {
            Some(error) => Err(error),
            None => match self.parser.sessions.context(warehouse).await {
                Ok(ctx) => warehouse.sql_stream_in(&ctx, sql).await,
                Err(error) => Err(error),
            },
        };
        match stream {
            Ok(stream) => Ok(AuditedRows::new(stream, audit, permit)),
            Err(error) => {
                let (status, info) = error_info(&error);
                audit.finish(status, None);
                Err(PgWireError::UserError(Box::new(info)))
            }
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let parsed = self.parser.sql.parse(query).ok();
        let statements: Vec<(Kind, String)> = match parsed {
            Some(statements) if statements.len() == 1 => statements
                .into_iter()
                .map(|statement| (classify(statement), query.to_string()))
                .collect(),
            Some(statements) => {
                let statements: Vec<(Kind, String)> = statements
                    .into_iter()
                    .map(|statement| {
                        let text = statement.to_string();
                        (classify(statement), text)
                    })
                    .collect();
                // Session statements may ride along (`SET ...; SELECT ...`), but one
                // message holds at most one statement about the data, as at `/api/sql`.
                match statements
                    .iter()
                    .filter(|(kind, _)| !kind.is_session())
                    .count()
                {
                    0 | 1 => statements,
                    _ => vec![(Kind::as_sent(), query.to_string())],
                }
            }
            None => vec![(Kind::as_sent(), query.to_string())],
        };
        let mut responses = Vec::with_capacity(statements.len());
        for (kind, text) in statements {
            let no_parameters = ParamValues::List(Vec::new());
            match self
                .run(
                    client,
                    kind,
                    &text,
                    QUERY,
                    &no_parameters,
                    &Format::UnifiedText,
                )
                .await
            {
                Ok(response) => responses.push(response),
                // PostgreSQL stops at the first failing statement of a message.
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = PgStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement;
        let inferred: Vec<DataType> = match &statement.kind {
            Kind::Query {
                planned: Some(planned),
                ..
            } => planned
                .parameters
                .iter()
                // A parameter the planner cannot type is taken as text, which DataFusion
                // coerces where it is compared or cast.
                .map(|kind| kind.clone().unwrap_or(DataType::Utf8))
                .collect(),
            _ => vec![DataType::Utf8; portal.parameter_len()],
        };
        let inferred: Vec<Option<&DataType>> = inferred.iter().map(Some).collect();
        let parameters = arrow_pg::datatypes::df::deserialize_parameters(portal, &inferred)?;
        self.run(
            client,
            statement.kind.clone(),
            &statement.text,
            EXECUTE,
            &parameters,
            &portal.result_column_format,
        )
        .await
    }
}

/// The columns of a connection's declared cursors, by name (for describing `FETCH`).
#[derive(Debug, Default)]
pub(crate) struct CursorSchemas(std::sync::Mutex<std::collections::HashMap<String, SchemaRef>>);

impl CursorSchemas {
    fn put(&self, name: &str, schema: SchemaRef) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), schema);
    }

    fn get(&self, name: &str) -> Option<SchemaRef> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn remove(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// The sandbox's refusal of the client's text, if it refuses it: the same words
/// `/api/sql` answers, whatever the PostgreSQL-compatibility rewrite makes of the text.
fn refused_as_sent(text: &str) -> Option<QueryError> {
    match vaxlake_query::sandbox::check(text) {
        Err(error @ QueryError::Refused(_)) => Some(error),
        _ => None,
    }
}

/// The connection's portal store, where cursors live.
fn portals<C>(client: &C) -> PgWireResult<&MemPortalStore<PgStatement>>
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore,
{
    client
        .portal_store()
        .as_any()
        .downcast_ref::<MemPortalStore<PgStatement>>()
        .ok_or_else(|| {
            user_error(
                "XX000",
                "cursors are not available on this connection".into(),
            )
        })
}

/// Who is connected (set by the sign-in; anonymous cannot happen after it).
fn caller_of<C: ClientInfo + ?Sized>(client: &C) -> Caller {
    client
        .session_extensions()
        .get::<Caller>()
        .map(|caller| (*caller).clone())
        .unwrap_or(Caller::Anonymous)
}

fn fields(
    schema: &SchemaRef,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format, options)
}

fn show_fields(name: &str) -> Vec<FieldInfo> {
    vec![FieldInfo::new(
        name.to_ascii_lowercase(),
        None,
        None,
        Type::TEXT,
        pgwire::api::results::FieldFormat::Text,
    )]
}

/// The rows of `rows` as PostgreSQL data rows, encoded as they arrive.
fn response(
    rows: AuditedRows,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields(&rows.schema(), format, Some(options))?);
    let encoding = fields.clone();
    let data = rows.flat_map(move |batch| {
        let encoded: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> = match batch {
            Ok(batch) => Box::new(arrow_pg::datatypes::encode_recordbatch(
                encoding.clone(),
                batch,
            )),
            Err(error) => Box::new(std::iter::once(Err(PgWireError::UserError(Box::new(
                error_info(&error).1,
            ))))),
        };
        stream::iter(encoded)
    });
    Ok(QueryResponse::new(fields, data))
}

/// A query with its parameters written in as literals, printed for the sandbox. The values
/// replace `$n` in the syntax tree, never in the text, so a value cannot become SQL.
fn substitute(mut statement: Statement, parameters: &ParamValues) -> PgWireResult<String> {
    let values: Vec<ScalarValue> = match parameters {
        ParamValues::List(values) => values.iter().map(|value| value.value.clone()).collect(),
        ParamValues::Map(_) => {
            return Err(user_error(
                "42P02",
                "named parameters are not supported".into(),
            ))
        }
    };
    let mut failure = None;
    let _ = visit_expressions_mut(&mut statement, |expr| {
        if let Expr::Value(value) = expr {
            if let Value::Placeholder(name) = &value.value {
                let index = name
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| (1..=values.len()).contains(n));
                match index.map(|n| literal(&values[n - 1])) {
                    Some(Ok(literal)) => *expr = literal,
                    Some(Err(error)) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                    None => {
                        failure =
                            Some(user_error("42P02", format!("there is no parameter {name}")));
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(statement.to_string()),
    }
}

/// A parameter's value as a SQL literal expression.
fn literal(value: &ScalarValue) -> PgWireResult<Expr> {
    if value.is_null() {
        return Ok(Expr::value(Value::Null));
    }
    let number = |text: String| Ok(Expr::value(Value::Number(text, false)));
    let typed = |text: String, kind: &str| -> PgWireResult<Expr> {
        let sql = format!("CAST('{text}' AS {kind})");
        datafusion::sql::sqlparser::parser::Parser::new(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
        )
        .try_with_sql(&sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|error| user_error("22P02", format!("a parameter could not be read: {error}")))
    };
    match value {
        ScalarValue::Boolean(Some(b)) => Ok(Expr::value(Value::Boolean(*b))),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => number(value.to_string()),
        ScalarValue::Float32(Some(f)) if f.is_finite() => number(value.to_string()),
        ScalarValue::Float64(Some(f)) if f.is_finite() => number(value.to_string()),
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => {
            Ok(Expr::value(Value::SingleQuotedString(text.clone())))
        }
        // Dates and times print as digits, dashes, colons, a dot and a T: safe to quote.
        ScalarValue::Date32(Some(_)) => typed(value.to_string(), "DATE"),
        ScalarValue::TimestampSecond(Some(_), _)
        | ScalarValue::TimestampMillisecond(Some(_), _)
        | ScalarValue::TimestampMicrosecond(Some(_), _)
        | ScalarValue::TimestampNanosecond(Some(_), _) => {
            let text = value.to_string();
            if !text
                .chars()
                .all(|c| c.is_ascii_digit() || "-:.T +".contains(c))
            {
                return Err(user_error(
                    "22P02",
                    "a timestamp parameter could not be read".into(),
                ));
            }
            typed(text, "TIMESTAMP")
        }
        other => Err(user_error(
            "0A000",
            format!("parameters of type {} are not supported", other.data_type()),
        )),
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// The audit status and the PostgreSQL error of a failed statement; the message is the one
/// `/api/sql` answers (digits redacted), the SQLSTATE PostgreSQL's nearest.
fn error_info(error: &QueryError) -> (StatusCode, ErrorInfo) {
    let status = crate::api::query_error_status(error);
    let code = match error {
        QueryError::Refused(_) => "42501",
        QueryError::Sql(_) | QueryError::Invalid(_) => "42601",
        QueryError::Unavailable(_) => "42P01",
        QueryError::Timeout(_) => "57014",
        QueryError::ResourcesExhausted(_) => "53200",
        QueryError::Warehouse { .. } | QueryError::Format(_) => "XX000",
    };
    let message = crate::audit::redact_digits(&error.to_string());
    (status, ErrorInfo::new("ERROR".into(), code.into(), message))
}
