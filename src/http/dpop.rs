//! DPoP at the HTTP edge (RFC 9449): the proof a request carries, checked once (signature, method, URL,
//! time, token hash, server nonce, replay on any node), and the answers DPoP errors get.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{SharedState, reply};
use crate::crypto::{self, HmacHash};
use crate::jose::dpop::{self, Expected, IAT_WINDOW, Proof};
use crate::protocol::{ErrorCode, OAuthError};

pub const DPOP: HeaderName = HeaderName::from_static("dpop");
const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// Seconds one server nonce is current; the previous one is accepted too (RFC 9449 8: rotated).
const NONCE_PERIOD: i64 = 300;

fn invalid(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, description)
}

/// The server nonce of the period holding `at`: a MAC under the key every node shares, so any node
/// issues and accepts the same nonces.
fn nonce_at(state: &SharedState, at: i64) -> String {
    let message = format!("dpop-nonce.{}", at.div_euclid(NONCE_PERIOD));
    crypto::b64url(&crypto::hmac(HmacHash::Sha256, &state.csrf_key, message.as_bytes()))
}

fn nonce_is_current(state: &SharedState, nonce: &str) -> bool {
    let now = state.now();
    [now, now - NONCE_PERIOD]
        .iter()
        .any(|at| crypto::constant_time_eq(nonce_at(state, *at).as_bytes(), nonce.as_bytes()))
}

/// The DPoP proof of a request to `htu` with method `htm` (and `access_token` when one is presented),
/// or None when it carries none. Checked as RFC 9449 4.3 says; its `jti` is remembered (across nodes)
/// until the proof could no longer be accepted, so a proof works once.
pub async fn proof(
    state: &SharedState,
    headers: &HeaderMap,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
) -> Result<Option<Proof>, OAuthError> {
    let mut values = headers.get_all(DPOP).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(invalid("one DPoP header only"));
    }
    let value = value.to_str().map_err(|_| invalid("the DPoP proof is not a valid JWT"))?;
    let now = state.now();
    let proof = dpop::verify(value, &Expected { htm, htu, access_token }, now).map_err(|e| invalid(e.0))?;
    if state.config.dpop_nonce_required && !proof.nonce.as_deref().is_some_and(|n| nonce_is_current(state, n)) {
        return Err(OAuthError::new(ErrorCode::UseDpopNonce, "the DPoP proof must carry the server's nonce"));
    }
    let key = format!("dpop:{}", crypto::token_hash(&format!("{}.{}", proof.jkt, proof.jti)));
    if !state.store.first_use(&key, proof.iat + IAT_WINDOW + 1, now).await.map_err(reply::internal)? {
        return Err(invalid("the DPoP proof was used before"));
    }
    Ok(Some(proof))
}

/// Adds the current server nonce to a response, when nonces are required (RFC 9449 8).
pub fn with_nonce(state: &SharedState, mut response: Response) -> Response {
    if state.config.dpop_nonce_required {
        if let Ok(value) = HeaderValue::from_str(&nonce_at(state, state.now())) {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
    }
    response
}

/// A protected resource's answer to a failed DPoP request (RFC 9449 7.1): 401 with a `DPoP`
/// challenge naming the error and the accepted algorithms.
pub fn challenge(state: &SharedState, error: &OAuthError) -> Response {
    let algs: Vec<&str> = dpop::ALGORITHMS.iter().map(|a| a.as_str()).collect();
    let value = format!(
        "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
        error.code.as_str(),
        error.description.replace(['"', '\\'], "'"),
        algs.join(" ")
    );
    let mut response = (StatusCode::UNAUTHORIZED, [reply::NO_STORE]).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    with_nonce(state, response)
}
