//! How protocol outcomes become HTTP responses: error pages, error redirects, JSON errors, pages.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::crypto;
use crate::model::{RedirectUri, ResponseMode};
use crate::protocol::authorize::ErrorRedirect;
use crate::protocol::{ErrorCode, OAuthError};
use crate::store::StoreError;
use crate::ui::Locale;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// For everything but pages: nothing may be loaded, framed or submitted.
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// For oxid's own pages: its stylesheet and its one script (passkeys), forms posting to itself, never
/// framed (clickjacking).
/// `form-action` is left open because Chromium applies it to the redirect back to the client after
/// the consent form is submitted.
const PAGE_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The `Cache-Control` for anything carrying tokens or personal data (RFC 6749 5.1).
pub const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

/// An HTML page of ours with its security headers.
pub fn page(state: &AppState, status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    // Every page links under the issuer's path: a parsed URL path (percent-encoded, no quotes or angle
    // brackets), so it needs no HTML escaping, which would spell its slashes as `&#x2f;`.
    let base = minijinja::Value::from_safe_string(state.base_path.clone());
    // `mail`: whether the pages reached by mailed links (password reset) are on.
    let ctx = minijinja::context! { base => base, mail => state.mailer.is_some(), ..ctx };
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

/// Lets a page of ours show images from `origin` too (a client's logo on the consent page).
pub fn allow_images_from(response: &mut Response, origin: &str) {
    let csp = PAGE_CSP.replace("img-src 'self'", &format!("img-src 'self' {origin}"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// An error shown to the user, not redirected (Core 3.1.2.6 for untrusted client or redirect_uri).
pub fn error_page(state: &AppState, error: &OAuthError) -> Response {
    error_page_with(state, error, None, state.pages.default_locale())
}

/// An error page in the language `locale` (a page reached with `ui_locales` or `Accept-Language`).
pub fn error_page_in(state: &AppState, error: &OAuthError, locale: &Locale) -> Response {
    error_page_with(state, error, None, locale)
}

/// An error page that speaks to the person first (the catalogue text `explanation`), with the
/// developer's description as a smaller detail.
pub fn explained_error_page(state: &AppState, error: &OAuthError, explanation: &str) -> Response {
    error_page_with(state, error, Some(explanation), state.pages.default_locale())
}

fn error_page_with(state: &AppState, error: &OAuthError, explanation: Option<&str>, locale: &Locale) -> Response {
    let status = match error.code {
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    // Descriptions are for developers, in English; the rest of the page is in `locale`.
    let ctx = minijinja::context! {
        error => error.code.as_str(),
        description => &*error.description,
        explanation => explanation.map(|key| locale.text(key)),
        t => locale.messages(),
        lang => &locale.tag,
    };
    page(state, status, "error.html", ctx)
}

/// A `303 See Other` to one of the OP's own pages, `path` under the issuer's path.
pub fn see_other_within(state: &AppState, path: &str) -> Response {
    see_other(&format!("{}{path}", state.base_path))
}

/// A `303 See Other` redirect (RFC 9700 4.12: never 307, which would replay a POSTed password).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect target").into_response(),
    }
}

/// The script that submits a form_post page; allowed by its hash in the page's CSP, nothing else runs.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

/// Delivers an authorization response (code or error) to the client in its response mode. `iss` is
/// always added (RFC 9207).
pub fn authorization_response(
    state: &AppState,
    redirect_uri: &RedirectUri,
    mode: ResponseMode,
    params: &[(&str, &str)],
) -> Response {
    let params: Vec<(&str, &str)> = params.iter().copied().chain([("iss", state.config.issuer.as_str())]).collect();
    let params = &params;
    match mode {
        ResponseMode::Query => see_other(&redirect_uri.with_query(params)),
        ResponseMode::Fragment => see_other(&redirect_uri.with_fragment(params)),
        // OAuth 2.0 Form Post Response Mode 2: an auto-submitting form, with a button for browsers
        // without JavaScript; never cached, never framed, and only able to post to this redirect URI.
        ResponseMode::FormPost => {
            let script_hash = STANDARD.encode(crypto::sha256(FORM_POST_SCRIPT.as_bytes()));
            let csp = format!(
                "default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'self'; form-action {}; \
                 frame-ancestors 'none'; base-uri 'none'",
                redirect_uri.csp_source()
            );
            let fields: Vec<_> = params.iter().map(|&(name, value)| minijinja::context! { name, value }).collect();
            let locale = state.pages.default_locale();
            let ctx = minijinja::context! {
                action => redirect_uri.as_str(),
                fields,
                script => FORM_POST_SCRIPT,
                t => locale.messages(),
                lang => &locale.tag,
            };
            let mut response = page(state, StatusCode::OK, "form_post.html", ctx);
            if let Ok(csp) = HeaderValue::from_str(&csp) {
                response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
            }
            response
        }
    }
}

/// Sends an authorization error back to the client: `error`, `error_description`, `state`
/// (RFC 6749 4.1.2.1) and `iss` (RFC 9207).
pub fn error_redirect(state: &AppState, e: &ErrorRedirect) -> Response {
    let mut params = vec![("error", e.error.code.as_str()), ("error_description", &*e.error.description)];
    if let Some(s) = &e.state {
        params.push(("state", s));
    }
    authorization_response(state, &e.redirect_uri, e.response_mode, &params)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// A JSON error from the token endpoint (RFC 6749 5.2): 401 with `WWW-Authenticate` for
/// invalid_client, 500 for server_error, otherwise 400.
/// A JSON answer that carries tokens or facts about them: never cached (RFC 6749 5.1, RFC 7662 2.2).
pub fn json_no_store(body: impl serde::Serialize) -> Response {
    ([NO_STORE, (header::PRAGMA, "no-cache")], axum::Json(body)).into_response()
}

/// The answer of an endpoint: its JSON, or its error as OAuth errors are given (RFC 6749 5.2).
pub fn json_or_error(result: Result<impl serde::Serialize, OAuthError>) -> Response {
    match result {
        Ok(body) => json_no_store(body),
        Err(e) => json_error(&e),
    }
}

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

/// RFC 6750 3: a bearer token's challenge, with the error when there was a token (3.1).
pub fn bearer_challenge(status: StatusCode, error: Option<&OAuthError>) -> Response {
    let value = match error {
        None => "Bearer realm=\"oxid\"".to_owned(),
        Some(e) => format!(
            "Bearer realm=\"oxid\", error=\"{}\", error_description=\"{}\"",
            e.code.as_str(),
            e.description.replace(['"', '\\'], "'")
        ),
    };
    let mut response = (status, [NO_STORE]).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// A form whose CSRF token does not hold (expired, or posted from another site).
pub fn form_expired() -> OAuthError {
    OAuthError::invalid_request("the form has expired or did not come from this site; go back and try again")
}

/// Logs a storage failure (never the request's secrets) and reports a generic server error.
pub fn internal(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "store operation failed");
    OAuthError::server_error()
}
