//! What one connection sees: the warehouse's session with `pg_catalog` added (rebuilt when
//! a table gets a new version), and the client settings it `SET`, which are its own and
//! change nothing on the server.

use std::collections::{BTreeMap, HashMap};

use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use vaxlake_query::{QueryError, Warehouse};

/// The server version clients are told (psql and drivers adapt their catalog queries to
/// it); the catalog is `datafusion-pg-catalog`'s PostgreSQL 16 one.
pub(crate) const SERVER_VERSION: &str = "16.6 (vaxlake)";

/// The warehouse's sessions with `pg_catalog`, one per set of table versions.
pub(crate) struct PgSessions {
    cache: tokio::sync::Mutex<Option<(BTreeMap<String, i64>, SessionContext)>>,
}

impl PgSessions {
    pub(crate) fn new() -> Self {
        PgSessions {
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The session of the warehouse's current table versions, with `pg_catalog`.
    pub(crate) async fn context(
        &self,
        warehouse: &Warehouse,
    ) -> Result<SessionContext, QueryError> {
        warehouse.refresh_if_due().await;
        let versions = warehouse.versions();
        let mut cache = self.cache.lock().await;
        if let Some((cached, ctx)) = cache.as_ref() {
            if *cached == versions {
                return Ok(ctx.clone());
            }
        }
        let ctx = warehouse.session_copy()?;
        let catalog = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        setup_pg_catalog(&ctx, &catalog, EmptyContextProvider)
            .map_err(|error| QueryError::from(*error))?;
        *cache = Some((versions, ctx.clone()));
        Ok(ctx)
    }
}

/// The settings a connection has `SET` (lower-case names), answered by `SHOW`.
#[derive(Debug, Default)]
pub(crate) struct ClientSettings(std::sync::Mutex<HashMap<String, String>>);

impl ClientSettings {
    pub(crate) fn set(&self, name: &str, value: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), value);
    }

    /// What `SHOW name` answers: what the connection set, else the server's fixed value;
    /// `None` for a setting PostgreSQL would not know either.
    pub(crate) fn show(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        if let Some(value) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&name) {
            return Some(value.clone());
        }
        let fixed = match name.as_str() {
            "server_version" => SERVER_VERSION,
            "server_version_num" => "160006",
            "server_encoding" | "client_encoding" => "UTF8",
            "datestyle" => "ISO, MDY",
            "intervalstyle" => "postgres",
            "timezone" => "UTC",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "transaction_isolation" | "default_transaction_isolation" => "read committed",
            "transaction_read_only" | "default_transaction_read_only" => "on",
            "search_path" => "public",
            "max_identifier_length" => "63",
            "is_superuser" => "off",
            "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric"
            | "lc_time" => "C",
            "application_name" => "",
            "extra_float_digits" => "1",
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
            _ => return None,
        };
        Some(fixed.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_answers_what_the_connection_set_else_the_servers_value() {
        let settings = ClientSettings::default();
        assert_eq!(settings.show("DateStyle").as_deref(), Some("ISO, MDY"));
        settings.set("DateStyle", "German".into());
        assert_eq!(settings.show("datestyle").as_deref(), Some("German"));
        assert_eq!(
            settings.show("transaction_read_only").as_deref(),
            Some("on")
        );
        assert_eq!(settings.show("no_such_setting"), None);
    }
}
