//! Token revocation (RFC 7009): a client gives back an access or refresh token it holds.
//!
//! Revoking a refresh token revokes its whole grant, the access tokens issued with it included (RFC 7009
//! 2.1); revoking an access token revokes that token. A token that is unknown, expired or another client's
//! is left alone and the answer is the same 200 (RFC 7009 2.2), so the endpoint tells nothing about tokens.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::params::RequestParams;
use super::{SharedState, client_auth, reply};
use crate::crypto;
use crate::model::Lookup;
use crate::protocol::{OAuthError, Params};

pub async fn revoke(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    match handle(&state, &headers, params).await {
        Ok(()) => (StatusCode::OK, [reply::NO_STORE, (header::PRAGMA, "no-cache")]).into_response(),
        Err(e) => reply::json_error(&e),
    }
}

async fn handle(
    state: &SharedState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<(), OAuthError> {
    let params = params?;
    // Client authentication as at the token endpoint (RFC 7009 2.1); public clients name themselves.
    let client = client_auth::authenticate(state, headers, &params).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let hash = crypto::token_hash(token);
    // `token_type_hint` only orders the lookups; both kinds are tried either way (RFC 7009 2.1).
    let refresh_first = params.get("token_type_hint") == Some("refresh_token");
    let id = &client.id;
    let done = refresh_first && revoke_refresh_token(state, id, &hash).await.map_err(reply::internal)?;
    let done = done || revoke_access_token(state, id, &hash).await.map_err(reply::internal)?;
    if !done && !refresh_first {
        revoke_refresh_token(state, id, &hash).await.map_err(reply::internal)?;
    }
    Ok(())
}

/// Revokes the grant of `client`'s refresh token `hash`; false if it is not one.
async fn revoke_refresh_token(
    state: &SharedState,
    client: &crate::model::ClientId,
    hash: &str,
) -> Result<bool, crate::store::StoreError> {
    match state.store.refresh_token(hash, client, state.now()).await? {
        Lookup::Live(token) => state.store.revoke_grant(&token.grant_id).await.map(|()| true),
        Lookup::Spent { grant_id } => state.store.revoke_grant(&grant_id).await.map(|()| true),
        Lookup::Unknown => Ok(false),
    }
}

/// Revokes `client`'s access token `hash`; false if it is not one.
async fn revoke_access_token(
    state: &SharedState,
    client: &crate::model::ClientId,
    hash: &str,
) -> Result<bool, crate::store::StoreError> {
    match state.store.access_token(hash, state.now()).await? {
        Some(token) if &token.client_id == client => state.store.delete_access_token(hash).await.map(|()| true),
        _ => Ok(false),
    }
}
