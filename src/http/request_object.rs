//! Request objects at the authorization endpoint (Core 6, RFC 9101): fetching a `request_uri`, then
//! verifying and merging the object into the request's parameters.

use super::{SharedState, client_auth};
use crate::jose::request_object;
use crate::model::Client;
use crate::protocol::authorize::{self, Rejection};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// Core 6: merges the request object given by value (`request`) or by reference (`request_uri`) into
/// the request's parameters, its values winning (Core 6.3.3).
pub(super) async fn with_request_object(
    state: &SharedState,
    params: Params,
    client: Option<&Client>,
) -> Result<Params, Rejection> {
    // An unknown client is reported by validation, before anything is fetched.
    let Some(client) = client else { return Ok(params) };
    let fail = |code, description: String| authorize::reject(&params, Some(client), OAuthError::new(code, description));
    let jwt = match (params.get("request"), params.get("request_uri")) {
        (None, None) => return Ok(params),
        (Some(_), Some(_)) => {
            return Err(fail(ErrorCode::InvalidRequest, "request and request_uri cannot be used together".into()));
        }
        (Some(jwt), None) => jwt.to_owned(),
        (None, Some(uri)) => {
            // Core 6.2: only URIs the client registered, compared without their fragment.
            let without_fragment = |u: &str| u.split('#').next().unwrap_or_default().to_owned();
            if !client.metadata.request_uris.iter().any(|r| without_fragment(r) == without_fragment(uri)) {
                return Err(fail(ErrorCode::InvalidRequestUri, "request_uri is not registered for this client".into()));
            }
            let body = state.fetcher.get(uri).await.map_err(|e| {
                fail(ErrorCode::InvalidRequestUri, format!("the request object could not be fetched: {e}"))
            })?;
            String::from_utf8(body.to_vec())
                .map_err(|_| fail(ErrorCode::InvalidRequestUri, "the request object is not text".into()))?
                .trim()
                .to_owned()
        }
    };
    let jwks = client_auth::client_jwks(state, client)
        .await
        .map_err(|e| fail(ErrorCode::InvalidRequestObject, format!("the client's keys are unavailable: {e}")))?;
    let decryption = state.decryption.get();
    let op = (state.config.issuer.as_str(), decryption.as_ref());
    let claims = request_object::verify(&jwt, client, jwks.as_deref(), op, state.now())
        .map_err(|e| fail(ErrorCode::InvalidRequestObject, e.0.to_owned()))?;
    params.clone().with_request_object(claims).map_err(|e| fail(ErrorCode::InvalidRequestObject, e.to_owned()))
}
