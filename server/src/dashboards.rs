//! The ministry's dashboards, compiled into the binary: `GET /` and every file that
//! `scripts/build-dashboards` writes into `dashboards/dist/`, with a same-origin content
//! security policy. Before the first build the pages say how to build them.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// The built dashboards, `../dashboards/dist` (relative to this crate). Release builds carry
/// the files; debug builds read them from disk, so a rebuilt front end shows without
/// recompiling. Before the first `scripts/build-dashboards` the folder is missing and the
/// pages say how to build them (`allow_missing`): nothing is written into the source tree.
#[derive(rust_embed::RustEmbed)]
#[folder = "../dashboards/dist/"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vaxlake</title></head><body><main><h1>vaxlake</h1><p>The dashboards are not built into this binary. Run <code>scripts/build-dashboards</code>, then rebuild vaxlake. The API answers meanwhile: <a href=\"/api/health\">/api/health</a>.</p></main></body></html>";

/// `GET /` and every dashboard file.
pub(crate) async fn asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Assets::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            let mut response = file.data.into_owned().into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&mime) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            // Same-origin everything: the page may load nothing from elsewhere.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
                ),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        None if path == "index.html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, format!("no page /{path}")).into_response(),
    }
}

/// The paths of the dashboard files built into the binary (for the rule check of
/// [`crate::api::PAGES`]).
#[cfg(test)]
pub(crate) fn asset_paths() -> Vec<String> {
    Assets::iter().map(|path| path.into_owned()).collect()
}
