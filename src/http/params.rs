//! The request parameters of an endpoint that takes them by query (GET) or form body (POST).

use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::protocol::{OAuthError, Params};

/// Parameters from the query string of a GET, or the form body of a POST. Parsing failures are kept
/// for the handler, which knows how its endpoint reports them.
pub struct RequestParams(pub Result<Params, OAuthError>);

/// Whether reading the body failed because it stopped arriving (`RequestBodyTimeoutLayer`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

pub fn is_form(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

impl<S: Send + Sync> FromRequest<S> for RequestParams {
    /// A body that stopped arriving (RFC 9110 15.5.9): 408, and the connection is closed.
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let query = req.uri().query().unwrap_or_default();
            return Ok(Self(Params::parse(query.as_bytes())));
        }
        if !is_form(req.headers()) {
            return Ok(Self(Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"))));
        }
        Ok(Self(match Bytes::from_request(req, state).await {
            Ok(body) => Params::parse(&body),
            Err(e) if timed_out(&e) => {
                let close = [(header::CONNECTION, "close")];
                return Err(
                    (StatusCode::REQUEST_TIMEOUT, close, "the request body did not arrive in time").into_response()
                );
            }
            Err(_) => Err(OAuthError::invalid_request("the request body is too large or unreadable")),
        }))
    }
}
