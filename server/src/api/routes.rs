//! The route table: every path the server answers, with its method, who may use it and its
//! handler, in one place (as ROAPI's `api/routes.rs`). The router ([`router_with`]) and the
//! permission rules ([`crate::auth::access`]) are both built from it, so no route can go
//! without a rule and no rule without a route.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use super::audit_layer::audit_request;
use super::guard::{guard, Guard};
use super::{audit, coverage, effectiveness, extracts, health, openapi, pages, sql};
use super::{ApiError, ApiState, ServeOptions};
use crate::auth::rules::{ANALYSIS, ANALYSTS, EXTRACTS, OPERATORS};
use crate::auth::{self, login, Access};
use crate::dashboards;

/// One row of the route table. `{name}` in a path matches one segment, as in axum.
pub struct Route {
    pub path: &'static str,
    pub method: MethodFilter,
    /// Who may use the path (every method of a path has the same rule).
    pub access: Access,
    /// The handler, on `method`.
    handler: fn(MethodFilter) -> MethodRouter<Arc<ApiState>>,
}

impl Route {
    /// The method's name in lower case, as an OpenAPI description keys it.
    pub fn method_name(&self) -> &'static str {
        [
            (MethodFilter::GET, "get"),
            (MethodFilter::POST, "post"),
            (MethodFilter::PUT, "put"),
            (MethodFilter::DELETE, "delete"),
            (MethodFilter::PATCH, "patch"),
        ]
        .into_iter()
        .find(|(filter, _)| *filter == self.method)
        .map_or("other", |(_, name)| name)
    }
}

/// `route!(GET "/path", ACCESS => handler)`: one row of [`ROUTES`].
macro_rules! route {
    ($method:ident $path:literal, $access:expr => $handler:path) => {
        Route {
            path: $path,
            method: MethodFilter::$method,
            access: $access,
            handler: |method| on(method, $handler),
        }
    };
}

/// Every route of the server (CONTRACTS.md, Access): a route is added here, never with
/// `Router::route` alone.
pub const ROUTES: &[Route] = &[
    route!(GET "/api/health", Access::Open => health::health),
    route!(GET "/api/openapi.json", Access::Open => openapi::openapi_json),
    route!(POST "/api/sql", ANALYSTS => sql::sql),
    route!(GET "/api/coverage", ANALYSIS => coverage::coverage),
    route!(GET "/api/coverage/indicators", ANALYSIS => coverage::indicators),
    route!(GET "/api/coverage/curve", ANALYSIS => coverage::curve),
    route!(GET "/api/coverage/dropout", ANALYSIS => coverage::dropout),
    route!(GET "/api/coverage/timeliness", ANALYSIS => coverage::timeliness),
    route!(GET "/api/coverage/flags", ANALYSIS => pages::coverage_flags),
    route!(GET "/api/coverage/invalid_doses", ANALYSIS => pages::invalid_doses),
    route!(GET "/api/effectiveness", ANALYSIS => effectiveness::effectiveness),
    route!(GET "/api/effectiveness/rates", ANALYSIS => effectiveness::rates),
    route!(GET "/api/freshness", ANALYSIS => pages::freshness),
    route!(GET "/api/geography", ANALYSIS => pages::geography),
    route!(GET "/api/audit", OPERATORS => audit::audit),
    route!(GET "/api/status", OPERATORS => pages::status),
    route!(GET "/api/status/quarantine", OPERATORS => pages::quarantine),
    route!(GET "/api/status/ingests", OPERATORS => pages::ingests),
    route!(GET "/api/extracts", EXTRACTS => extracts::list),
    route!(GET "/api/extracts/{project}/{id}/{file}", EXTRACTS => extracts::download),
    route!(GET "/login", Access::Open => login::login_page),
    route!(POST "/login", Access::Open => login::login),
    route!(GET "/logout", Access::Open => login::logout_link),
    route!(POST "/logout", Access::Open => login::logout),
];

/// The dashboards' files, which the router's fallback serves from the files built into the
/// binary (`scripts/build-dashboards` writes exactly these into `dashboards/dist/`).
pub const PAGES: &[(&str, Access)] = &[
    ("/", ANALYSIS),
    ("/index.html", ANALYSIS),
    ("/app.js", ANALYSIS),
    ("/app.css", ANALYSIS),
    ("/favicon.svg", ANALYSIS),
    ("/licenses.txt", ANALYSIS),
    ("/dashboards/{file}", ANALYSIS),
];

/// The API's routes with the default [`ServeOptions`] (see [`router_with`]).
pub fn router(state: Arc<ApiState>) -> Router {
    router_with(state, &ServeOptions::default())
        .expect("the default options have no CORS origin to refuse")
}

/// The API's routes, to serve alone ([`super::serve`]) or merged with the dashboards' router, with
/// the request timeout and CORS origins of `options`. Every request goes through the audit
/// (outermost, so that refusals, CORS preflights and timed-out or abandoned requests are
/// recorded too), then CORS, the request timeout, the guard against rebinding and cross-site
/// writes ([`super::guard`]), the auth and the body limit. The routes
/// are exactly those of [`ROUTES`], each with its access rule; the dashboards' files
/// ([`PAGES`]) are the fallback.
pub fn router_with(state: Arc<ApiState>, options: &ServeOptions) -> std::io::Result<Router> {
    let max_body_bytes = state.max_body_bytes;
    let mut app = Router::new();
    // Rows of one path with different methods merge into one route.
    for route in ROUTES {
        app = app.route(route.path, (route.handler)(route.method));
    }
    let timeout = options.request_timeout;
    let mut app = app
        .fallback(dashboards::asset)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(from_fn_with_state(state.clone(), auth::authorize))
        .layer(from_fn_with_state(
            (
                state.clone(),
                Guard {
                    cors_origins: Arc::new(options.cors_origins.clone()),
                },
            ),
            guard,
        ))
        .layer(from_fn(move |request: Request, next: Next| {
            request_timeout(timeout, request, next)
        }));
    if !options.cors_origins.is_empty() {
        let origins = options
            .cors_origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("not a valid CORS origin: {origin:?}"),
                    )
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT]),
        );
    }
    Ok(app
        .layer(from_fn_with_state(state.clone(), audit_request))
        .with_state(state))
}

/// 405, with the JSON reason of every other error (axum adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not answer {method}", uri.path()),
    )
}

/// Answers 503 with a JSON reason when the request is not answered within `limit` (the
/// handler's future is dropped, which cancels its query).
async fn request_timeout(limit: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request was not answered within {} s; try again later or ask for less",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row is one (path, method), its path's rule is its own, and every path has one
    /// rule whatever the method (the auth refuses by path, before the method is looked at).
    #[test]
    fn every_route_has_a_rule_and_a_handler() {
        let mut seen = Vec::new();
        for route in ROUTES {
            assert!(
                !seen.contains(&(route.path, route.method)),
                "{} {:?} listed twice",
                route.path,
                route.method
            );
            seen.push((route.path, route.method));
            assert_eq!(
                auth::access(route.path),
                Some(route.access),
                "{}",
                route.path
            );
            let _ = (route.handler)(route.method);
        }
        for (path, _) in PAGES {
            assert!(
                !path.starts_with("/api/"),
                "{path}: pages are not API routes"
            );
        }
    }

    #[test]
    fn the_router_builds_from_the_table() {
        // Two rows of one path with the same method would make axum panic here.
        let _ = ROUTES
            .iter()
            .fold(Router::<Arc<ApiState>>::new(), |app, route| {
                app.route(route.path, (route.handler)(route.method))
            });
    }
}
