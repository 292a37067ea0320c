//! Who is calling and what their role may do (CONTRACTS.md, Access): the users and their
//! tokens ([`users`]), browser sessions ([`sessions`]), who may use which path ([`rules`],
//! over the route table of `crate::api::routes`), the middleware that refuses
//! ([`middleware`]) and the sign-in page ([`login`]).

pub(crate) mod login;
pub(crate) mod middleware;
pub mod rules;
pub(crate) mod sessions;
pub mod throttle;
pub mod users;

pub use crate::postgres::scram_verifier;
pub(crate) use middleware::authorize;
pub use middleware::Caller;
pub use rules::{access, Access};
pub(crate) use sessions::Sessions;
pub use sessions::{SESSION_COOKIE, SESSION_LIFETIME};
pub use throttle::Throttle;
pub use users::{new_token, user_entry, AuthConfig, AuthError, Role, User};
