//! The token endpoint (RFC 6749 3.2, Core 3.1.3): it authenticates the client, checks that the client may
//! use the grant type, and hands the request to that grant's module. Each grant keeps its own rules and
//! store calls, so a new grant is a new file and one arm of `dispatch`.

mod authorization_code;
mod client_credentials;
mod decoupled;
mod exchange;
mod issue;
mod refresh_token;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::params::RequestParams;
use super::{SharedState, client_auth, dpop, reply};
use crate::jose::dpop::Proof;
use crate::model::{Client, GrantType};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// RFC 6749 5.1 (and Core 3.1.3.3 for `id_token`).
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    scope: String,
    /// RFC 8693 2.2.1: what kind of token a token exchange issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

/// Seconds until `expires_at` (RFC 6749 5.1 `expires_in`).
fn expires_in(state: &SharedState, expires_at: i64) -> u64 {
    u64::try_from(expires_at - state.now()).unwrap_or(0)
}

pub async fn token(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    dpop::with_nonce(&state, reply::json_or_error(handle(&state, &headers, params).await))
}

/// RFC 9449 5: `DPoP` for a token bound to the proof's key, else `Bearer`.
fn token_type(bound_to: Option<&Proof>) -> &'static str {
    if bound_to.is_some() { "DPoP" } else { "Bearer" }
}

/// A proof of the key `jkt` is required (a bound code or refresh token, RFC 9449 5, 10).
fn require_key(proof: Option<&Proof>, jkt: Option<&str>) -> Result<(), OAuthError> {
    match jkt {
        Some(jkt) if proof.map(|p| p.jkt.as_str()) != Some(jkt) => Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "a DPoP proof of the key this grant is bound to is required",
        )),
        _ => Ok(()),
    }
}

fn invalid_grant(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

fn required<'a>(params: &'a Params, name: &'static str) -> Result<&'a str, OAuthError> {
    params.get(name).ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}

async fn handle(
    state: &SharedState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<TokenResponse, OAuthError> {
    let params = params?;
    let grant_type = required(&params, "grant_type")?;
    let client = client_auth::authenticate(state, headers, &params).await?;
    let grant: GrantType =
        grant_type.parse().map_err(|_| OAuthError::new(ErrorCode::UnsupportedGrantType, "unsupported grant_type"))?;
    if !client.allows_grant(grant) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "client may not use this grant type"));
    }
    let proof = dpop::proof(state, headers, "POST", &state.token_endpoint, None).await?;
    if proof.is_none() && client.metadata.dpop_bound_access_tokens {
        return Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this client's tokens must be DPoP-bound: send a DPoP proof",
        ));
    }
    let issued = dispatch(state, &client, grant, &params, proof.as_ref()).await?;
    crate::telemetry::token_issued(grant.as_str());
    Ok(issued)
}

async fn dispatch(
    state: &SharedState,
    client: &Client,
    grant: GrantType,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    match grant {
        GrantType::AuthorizationCode => authorization_code::exchange(state, client, params, proof).await,
        GrantType::RefreshToken => refresh_token::exchange(state, client, params, proof).await,
        GrantType::ClientCredentials => client_credentials::exchange(state, client, params, proof).await,
        GrantType::DeviceCode => decoupled::exchange(state, client, params, proof, "device_code").await,
        GrantType::Ciba => decoupled::exchange(state, client, params, proof, "auth_req_id").await,
        GrantType::TokenExchange => exchange::exchange(state, client, params, proof).await,
    }
}
