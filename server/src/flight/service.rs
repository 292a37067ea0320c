//! The Flight SQL calls vaxlake answers: statements and prepared statements (a query
//! planned, then fetched), the server's `SqlInfo`, and the handshake. Everything that
//! would write (updates, ingest, transactions, Substrait plans) is refused by the trait's
//! defaults or here, in the audit like every statement.
//!
//! A statement's ticket is its SQL text: fetching it checks the caller and the sandbox
//! again, so a ticket is worth nothing without a token that may run it.

use std::pin::Pin;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetSqlInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use axum::http::StatusCode;
use futures::{Stream, StreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{presented, Presented};
use crate::auth::Caller;
use crate::sql_door::{AuditedRows, Refusal, SqlDoor};

/// What the audit's `method` column says for each kind of call.
const PLAN: &str = "FLIGHT GetFlightInfo";
const FETCH: &str = "FLIGHT DoGet";
const PREPARE: &str = "FLIGHT CreatePreparedStatement";
const UPDATE: &str = "FLIGHT DoPut";
const HANDSHAKE: &str = "FLIGHT Handshake";

/// A read-only SQL interface says so to clients that ask (ADBC's `GetInfo`, JDBC).
static SQL_INFO: std::sync::LazyLock<SqlInfoData> = std::sync::LazyLock::new(|| {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "vaxlake");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow format version of the IPC messages (Schema.fbs, MetadataVersion V5).
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder
        .build()
        .expect("the SqlInfo table is built from constants")
});

type FlightDataStream =
    Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// The Flight SQL service over one [`SqlDoor`].
pub(crate) struct FlightSqlDoor {
    door: SqlDoor,
}

impl FlightSqlDoor {
    pub(crate) fn new(door: SqlDoor) -> Self {
        FlightSqlDoor { door }
    }

    /// The caller of `request` if they may run SQL; a refused caller is audited (without
    /// their statement) under `method`.
    fn caller<T>(&self, request: &Request<T>, method: &str) -> Result<Caller, Status> {
        let admitted = match presented(request.metadata()) {
            Presented::None => self.door.admit(None),
            Presented::Bearer(token) => self.door.admit(Some(&token)),
            // Basic is for the handshake; on other calls it is taken as that token too.
            Presented::Basic { name, token } => self.door.admit_named(&name, &token),
            Presented::Malformed => self.door.admit(Some("")),
        };
        admitted.map_err(|refusal| {
            let caller = refusal.caller.clone().unwrap_or(Caller::Anonymous);
            self.door
                .audit(&caller, method, None)
                .finish(refusal.status, None);
            status_of(refusal)
        })
    }

    /// The columns of `sql`, checked and planned, or the refusal (audited with the text).
    async fn plan(&self, caller: &Caller, sql: &str) -> Result<SchemaRef, Status> {
        match self.door.state().warehouse().sql_schema(sql).await {
            Ok(schema) => Ok(schema),
            Err(error) => {
                let refusal = Refusal::from(error);
                self.door
                    .audit(caller, PLAN, Some(sql))
                    .finish(refusal.status, None);
                Err(status_of(refusal))
            }
        }
    }

    /// `FlightInfo` announcing `sql`'s columns, with one endpoint whose ticket fetches them.
    async fn flight_info(
        &self,
        caller: &Caller,
        sql: &str,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.plan(caller, sql).await?;
        let ticket = TicketStatementQuery {
            statement_handle: sql.as_bytes().to_vec().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|error| Status::internal(error.to_string()))?
            .with_descriptor(descriptor)
            .with_endpoint(endpoint)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    /// Runs `sql` in the sandbox and streams its rows; the audit row is written when the
    /// last batch has gone (or the client went away).
    async fn fetch(&self, caller: Caller, sql: &str) -> Result<Response<FlightDataStream>, Status> {
        let audit = self.door.audit(&caller, FETCH, Some(sql));
        let permit = match self.door.permit() {
            Ok(permit) => permit,
            Err(refusal) => {
                audit.finish(refusal.status, None);
                return Err(status_of(refusal));
            }
        };
        let rows = match self.door.state().warehouse().sql_stream(sql).await {
            Ok(rows) => rows,
            Err(error) => {
                let refusal = Refusal::from(error);
                audit.finish(refusal.status, None);
                return Err(status_of(refusal));
            }
        };
        let rows = AuditedRows::new(rows, audit, permit);
        let schema = rows.schema();
        let batches = rows.flat_map(|item| {
            futures::stream::iter(match item {
                Ok(batch) => for_grpc(batch),
                Err(error) => vec![Err(FlightError::Tonic(Box::new(status_of(Refusal::from(
                    error,
                )))))],
            })
        });
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map(|item| item.map_err(Status::from));
        Ok(Response::new(Box::pin(data)))
    }
}

/// Bytes of Arrow data per Flight message, about: gRPC clients refuse messages over 16 MiB.
const MESSAGE_BYTES: usize = 2 << 20;

/// `batch` cut into batches of about [`MESSAGE_BYTES`], each holding only its own bytes.
/// A batch cut from a larger one (a scan's pages, the rows before the row cap) shares its
/// buffers, and the IPC writer sends whatever the cut points into: a 40-row answer of wide
/// rows went out as one 24 MB message, which ADBC refused.
fn for_grpc(batch: RecordBatch) -> Vec<Result<RecordBatch, FlightError>> {
    let bytes = batch.get_array_memory_size();
    let rows = batch.num_rows();
    if bytes <= MESSAGE_BYTES || rows == 0 {
        return vec![Ok(batch)];
    }
    let per_message = (rows * MESSAGE_BYTES / bytes).max(1);
    (0..rows)
        .step_by(per_message)
        .map(|start| compact(batch.slice(start, per_message.min(rows - start))))
        .collect()
}

/// `batch` with its string and binary views copied into buffers of their own (a slice of a
/// view column keeps every buffer of the whole, and the IPC writer sends them all; offset
/// columns are written sliced already).
fn compact(batch: RecordBatch) -> Result<RecordBatch, FlightError> {
    use arrow::array::{ArrayRef, AsArray};
    use arrow::datatypes::DataType;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => Arc::new(column.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(column.as_binary_view().gc()) as ArrayRef,
            _ => column.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The gRPC status of a refusal, its reason as the message.
fn status_of(refusal: Refusal) -> Status {
    let reason = refusal.reason;
    match refusal.status {
        StatusCode::UNAUTHORIZED => Status::unauthenticated(reason),
        StatusCode::FORBIDDEN => Status::permission_denied(reason),
        StatusCode::BAD_REQUEST => Status::invalid_argument(reason),
        StatusCode::NOT_FOUND => Status::not_found(reason),
        StatusCode::TOO_MANY_REQUESTS => Status::resource_exhausted(reason),
        StatusCode::SERVICE_UNAVAILABLE => Status::unavailable(reason),
        _ => Status::internal(reason),
    }
}

/// The SQL text a handle or ticket carries.
fn handle_sql(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle)
        .map_err(|_| Status::invalid_argument("the handle is not a statement of this server"))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlDoor {
    type FlightService = FlightSqlDoor;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let token = match presented(request.metadata()) {
            Presented::Bearer(token) => token,
            Presented::Basic { token, .. } => token,
            Presented::None | Presented::Malformed => String::new(),
        };
        let caller = self.caller(&request, HANDSHAKE)?;
        self.door
            .audit(&caller, HANDSHAKE, None)
            .finish(StatusCode::OK, None);
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(answer)])));
        if !token.is_empty() {
            let bearer = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::unauthenticated("the token is not valid"))?;
            response.metadata_mut().insert("authorization", bearer);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request, PLAN)?;
        self.flight_info(&caller, &query.query, request.into_inner())
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request, PLAN)?;
        let sql = handle_sql(&query.prepared_statement_handle)?.to_string();
        self.flight_info(&caller, &sql, request.into_inner()).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request, FETCH)?;
        let sql = handle_sql(&ticket.statement_handle)?.to_string();
        self.fetch(caller, &sql).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request, FETCH)?;
        let sql = handle_sql(&query.prepared_statement_handle)?.to_string();
        self.fetch(caller, &sql).await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request, PLAN)?;
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(query.into_builder(&SQL_INFO).schema().as_ref())
            .map_err(|error| Status::internal(error.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request, FETCH)?;
        let builder = query.into_builder(&SQL_INFO);
        let schema = builder.schema();
        let batch = builder.build();
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async { batch }))
            .map(|item| item.map_err(Status::from));
        Ok(Response::new(Box::pin(data)))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request, PREPARE)?;
        let schema = self.plan(&caller, &query.query).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|error: arrow::error::ArrowError| Status::internal(error.to_string()))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Nothing is held for a prepared statement: its handle is its text.
        self.caller(&request, PREPARE)?;
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request, UPDATE)?;
        let refusal = Refusal::new(
            StatusCode::BAD_REQUEST,
            "bound parameters are not supported through Flight SQL; write the values into the \
             query",
        );
        self.door
            .audit(&caller, UPDATE, None)
            .finish(refusal.status, None);
        Err(status_of(refusal))
    }

    async fn do_put_statement_update(
        &self,
        query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request, UPDATE)?;
        Err(self.refuse_update(&caller, &query.query))
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request, UPDATE)?;
        let sql = handle_sql(&query.prepared_statement_handle)?.to_string();
        Err(self.refuse_update(&caller, &sql))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl FlightSqlDoor {
    /// An update is refused with the sandbox's own reason (the statement is checked as a
    /// query, so the refusal names what it was), or as an update when it is a query.
    fn refuse_update(&self, caller: &Caller, sql: &str) -> Status {
        let refusal = match vaxlake_query::sandbox::check(sql) {
            Err(error) => Refusal::from(error),
            Ok(()) => Refusal::new(
                StatusCode::BAD_REQUEST,
                "the SQL interface is read-only: send queries as statements, not updates",
            ),
        };
        self.door
            .audit(caller, UPDATE, Some(sql))
            .finish(refusal.status, None);
        status_of(refusal)
    }
}
