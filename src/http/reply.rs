//! How protocol outcomes become HTTP responses: error pages, error redirects, JSON errors, pages.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::protocol::authorize::ErrorRedirect;
use crate::protocol::{ErrorCode, OAuthError};
use crate::store::StoreError;

/// For everything but pages: nothing may be loaded, framed or submitted.
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// For oxid's own pages: its stylesheet, forms posting to itself, never framed (clickjacking).
/// `form-action` is left open because Chromium applies it to the redirect back to the client after
/// the consent form is submitted.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The `Cache-Control` for anything carrying tokens or personal data (RFC 6749 5.1).
pub const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

/// An HTML page of ours with its security headers.
pub fn page(state: &AppState, status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    match state.pages.render(template, ctx) {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, PAGE_CSP), NO_STORE],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, template, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

/// An error shown to the user, not redirected (Core 3.1.2.6 for untrusted client or redirect_uri).
pub fn error_page(state: &AppState, error: &OAuthError) -> Response {
    let status = match error.code {
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let ctx = minijinja::context! { error => error.code.as_str(), description => &*error.description };
    page(state, status, "error.html", ctx)
}

/// A `303 See Other` redirect (RFC 9700 4.12: never 307, which would replay a POSTed password).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect target").into_response(),
    }
}

/// Sends an authorization error back to the client: `error`, `error_description`, `state`
/// (RFC 6749 4.1.2.1) and `iss` (RFC 9207).
pub fn error_redirect(issuer: &str, e: &ErrorRedirect) -> Response {
    let mut params = vec![("error", e.error.code.as_str()), ("error_description", &*e.error.description)];
    if let Some(state) = &e.state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    see_other(&e.redirect_uri.with_query(&params))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// A JSON error from the token endpoint (RFC 6749 5.2): 401 with `WWW-Authenticate` for
/// invalid_client, 500 for server_error, otherwise 400.
pub fn json_error(error: &OAuthError) -> Response {
    let status = match error.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = ErrorBody { error: error.code.as_str(), error_description: &error.description };
    let mut response = (status, [NO_STORE, (header::PRAGMA, "no-cache")], axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oxid\""));
    }
    response
}

/// Logs a storage failure (never the request's secrets) and reports a generic server error.
pub fn internal(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "store operation failed");
    OAuthError::server_error()
}
