//! Signing in through the PostgreSQL door: TLS first when the server has a certificate,
//! the database `vaxlake`, then SCRAM-SHA-256 of the user's token against the auth file's
//! verifier, then the role check (the roles allowed `/api/sql`). Each refusal is a FATAL
//! error with PostgreSQL's code and a reason a person can act on, and is audited.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, StartupHandler,
};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::scram::{ScramError, ScramVerifier, ServerFirst, MECHANISM};
use super::session::{ClientSettings, SERVER_VERSION};
use crate::auth::Caller;
use crate::sql_door::SqlDoor;

/// The only database name the door answers to (CONTRACTS.md).
pub(crate) const DATABASE: &str = "vaxlake";
const METHOD: &str = "POSTGRES connect";

enum State {
    /// Waiting for the startup message.
    Start,
    /// SASL offered; waiting for the client's first SCRAM message.
    Offered {
        user: String,
        verifier: ScramVerifier,
    },
    /// The server's first SCRAM message sent; waiting for the proof.
    Challenged {
        user: String,
        exchange: ServerFirst,
    },
    Done,
}

/// One connection's sign-in (a new one per connection: it holds the exchange's state).
pub(crate) struct Startup {
    door: SqlDoor,
    require_tls: bool,
    /// Keys the decoy verifiers of unknown users (see [`ScramVerifier::decoy`]).
    decoy_secret: Arc<[u8; 32]>,
    /// Shared by every connection, so that each gets its own process id for cancel keys.
    pids: Arc<pgwire::api::RandomPidSecretKeyGenerator>,
    state: tokio::sync::Mutex<State>,
}

impl Startup {
    pub(crate) fn new(
        door: SqlDoor,
        require_tls: bool,
        decoy_secret: Arc<[u8; 32]>,
        pids: Arc<pgwire::api::RandomPidSecretKeyGenerator>,
    ) -> Self {
        Startup {
            door,
            require_tls,
            decoy_secret,
            pids,
            state: tokio::sync::Mutex::new(State::Start),
        }
    }

    /// A FATAL refusal, audited (without a user: they did not prove who they are).
    fn refuse(&self, status: StatusCode, code: &str, message: String) -> PgWireError {
        self.door
            .audit(&Caller::Anonymous, METHOD, None)
            .finish(status, None);
        tracing::info!(code, reason = %message, "postgres sign-in refused");
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".into(),
            code.into(),
            message,
        )))
    }

    fn parameters(user: &str) -> DefaultServerParameterProvider {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_string();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        parameters.time_zone = "UTC".to_string();
        parameters.session_authorization = Some(user.to_string());
        parameters
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.state.lock().await;
        match (std::mem::replace(&mut *state, State::Done), message) {
            (State::Start, PgWireFrontendMessage::Startup(startup)) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.require_tls && !client.is_secure() {
                    return Err(self.refuse(
                        StatusCode::UNAUTHORIZED,
                        "28000",
                        "this server accepts TLS connections only: connect with sslmode=require \
                         (or verify-full with the server's certificate)"
                            .into(),
                    ));
                }
                let metadata = client.metadata();
                let user = metadata.get("user").cloned().unwrap_or_default();
                if user.is_empty() {
                    return Err(self.refuse(
                        StatusCode::UNAUTHORIZED,
                        "28000",
                        "a user name is required: the auth file's name".into(),
                    ));
                }
                let database = metadata
                    .get("database")
                    .cloned()
                    .unwrap_or_else(|| user.clone());
                if database != DATABASE {
                    return Err(self.refuse(
                        StatusCode::NOT_FOUND,
                        "3D000",
                        format!(
                            "database \"{database}\" does not exist; connect to \"{DATABASE}\""
                        ),
                    ));
                }
                let known = self
                    .door
                    .state()
                    .auth
                    .as_ref()
                    .and_then(|config| config.user(&user))
                    .and_then(|user| user.scram().cloned());
                // Unknown users get the same exchange as everyone, against a decoy.
                let verifier =
                    known.unwrap_or_else(|| ScramVerifier::decoy(&user, &self.decoy_secret));
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![MECHANISM.to_string()],
                    )))
                    .await?;
                *state = State::Offered { user, verifier };
            }
            (
                State::Offered { user, verifier },
                PgWireFrontendMessage::PasswordMessageFamily(message),
            ) => {
                let initial = message.into_sasl_initial_response()?;
                if initial.auth_method != MECHANISM {
                    return Err(self.refuse(
                        StatusCode::UNAUTHORIZED,
                        "28000",
                        format!("only {MECHANISM} is offered"),
                    ));
                }
                let data = initial.data.unwrap_or_default();
                let (exchange, server_first) =
                    ServerFirst::new(&data, verifier).map_err(|error| {
                        self.refuse(
                            StatusCode::UNAUTHORIZED,
                            "28000",
                            scram_reason(&error, &user),
                        )
                    })?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first.into_bytes().into()),
                    ))
                    .await?;
                *state = State::Challenged { user, exchange };
            }
            (
                State::Challenged { user, exchange },
                PgWireFrontendMessage::PasswordMessageFamily(message),
            ) => {
                let response = message.into_sasl_response()?;
                let server_final = exchange.finish(&response.data).map_err(|error| {
                    self.refuse(
                        StatusCode::UNAUTHORIZED,
                        "28P01",
                        scram_reason(&error, &user),
                    )
                })?;
                // The proof holds: the user is who they say. Now the role.
                let caller = match self.door.admit_signed_in(&user) {
                    Ok(caller) => caller,
                    Err(refusal) => {
                        let caller = refusal.caller.clone().unwrap_or(Caller::Anonymous);
                        self.door
                            .audit(&caller, METHOD, None)
                            .finish(refusal.status, None);
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            "42501".into(),
                            refusal.reason,
                        ))));
                    }
                };
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(server_final.into_bytes().into()),
                    ))
                    .await?;
                self.door
                    .audit(&caller, METHOD, None)
                    .finish(StatusCode::OK, None);
                client.session_extensions().insert(caller);
                client
                    .session_extensions()
                    .insert(ClientSettings::default());
                client
                    .session_extensions()
                    .insert(super::handler::CursorSchemas::default());
                let (pid, secret) =
                    pgwire::api::PidSecretKeyGenerator::generate(self.pids.as_ref(), client);
                client.set_pid_and_secret_key(pid, secret);
                finish_authentication(client, &Self::parameters(&user)).await?;
            }
            (_, _) => {
                return Err(self.refuse(
                    StatusCode::UNAUTHORIZED,
                    "08P01",
                    "unexpected message while signing in".into(),
                ));
            }
        }
        Ok(())
    }
}

fn scram_reason(error: &ScramError, user: &str) -> String {
    match error {
        ScramError::WrongProof => format!("password authentication failed for user \"{user}\""),
        ScramError::ChannelBindingRequired => {
            "channel binding (SCRAM-SHA-256-PLUS) is not offered; connect with channel_binding=prefer or disable".into()
        }
        ScramError::Malformed(what) => format!("malformed SCRAM message: {what}"),
    }
}
