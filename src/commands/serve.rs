//! `vaxlake serve`: the HTTP API over the warehouse, until a signal.

use anyhow::{bail, Context, Result};

use crate::cli::{ServeArgs, WarehouseArg};
use crate::signal::shutdown_signal;

/// Runs `vaxlake serve` (and the end of `vaxlake demo`).
pub async fn run(args: ServeArgs) -> Result<()> {
    use vaxlake_query::api::{
        auth::AuthConfig, router_with, serve_with, ApiState, ServeOptions, TlsFiles,
    };
    use vaxlake_query::coverage::Suppression;
    let ServeArgs {
        warehouse: WarehouseArg { warehouse },
        listen,
        suppression_threshold: threshold,
        source,
        table,
        auth,
        tls_cert,
        tls_key,
        cors_origin,
        header_timeout_secs,
        request_timeout_secs,
        query_limits,
    } = args;
    if threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let registry = source
        .as_deref()
        .map(|source| super::status::registry_source(source, table.as_deref()))
        .transpose()?;
    let auth = auth.as_deref().map(AuthConfig::load).transpose()?;
    if auth.is_none() && !listen.ip().is_loopback() {
        bail!("without --auth, serve binds to loopback only (got {listen}); give --auth FILE (see `vaxlake token new`) to serve other hosts");
    }
    let tls = match (tls_cert, tls_key) {
        (Some(certificate), Some(key)) => Some(TlsFiles { certificate, key }),
        _ => None,
    };
    let wh = vaxlake_query::Warehouse::open(
        &warehouse,
        query_limits.query_options(vaxlake_query::QueryOptions::default()),
    )
    .await?;
    let audit = vaxlake_query::audit::AuditLog::start(wh.root())?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    match &auth {
        Some(config) => eprintln!(
            "serving {warehouse} on {scheme}://{listen}/ for {} users (--auth)",
            config.users().len()
        ),
        None => eprintln!(
            "serving {warehouse} on {scheme}://{listen}/ (unauthenticated: loopback only)"
        ),
    }
    let operator_status = {
        let wh = wh.clone();
        let registry = registry.map(std::sync::Arc::new);
        std::sync::Arc::new(move || {
            let wh = wh.clone();
            let registry = registry.clone();
            Box::pin(async move {
                super::status::StatusReport::read(&wh, registry.as_deref())
                    .await
                    .map(|report| report.to_json())
                    .map_err(|error| format!("{error:#}"))
            }) as vaxlake_query::api::StatusFuture
        })
    };
    let mut state = query_limits
        .api_state(ApiState::new(wh))
        .with_suppression(Suppression { threshold })
        .with_operator_status(operator_status)
        .with_tls(tls.is_some())
        .with_audit(audit.clone());
    if let Some(config) = auth {
        state = state.with_auth(config);
    }
    if let Ok(root) = state.warehouse().root().to_file_path() {
        let dir = root.join("extracts");
        super::extract::expire_in_background(dir.clone(), std::time::Duration::from_secs(3600));
        state = state.with_extracts(std::sync::Arc::new(super::extract::Shelf { dir }));
    }
    let state = std::sync::Arc::new(state);
    state.warm_in_background(std::time::Duration::from_secs(5));
    let options = ServeOptions {
        tls,
        header_timeout: std::time::Duration::from_secs(header_timeout_secs.max(1)),
        request_timeout: std::time::Duration::from_secs(request_timeout_secs.max(1)),
        cors_origins: cors_origin,
        ..ServeOptions::default()
    };
    // The request timeout and CORS sit inside the audit, which records their answers too.
    let app = router_with(state, &options)?;
    let served = serve_with(listener, app, &options, shutdown_signal()).await;
    // Every request answered is recorded before the process exits.
    audit.close().await;
    served?;
    Ok(())
}
