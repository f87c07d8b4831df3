//! The `client_credentials` grant (RFC 6749 4.4): a token for the client itself; confidential clients only.

use super::TokenResponse;
use crate::crypto;
use crate::http::{SharedState, issuance};
use crate::model::{Client, ScopeSet};
use crate::protocol::{ErrorCode, OAuthError, Params};

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "public clients cannot use client_credentials"));
    }
    let scope = ScopeSet::parse(params.get("scope").unwrap_or_default())
        .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
    // Scopes about an end-user make no sense without one.
    let scope = ["openid", "offline_access", "profile", "email", "address", "phone"]
        .iter()
        .fold(scope, |s, user_scope| s.without(user_scope));
    let (access_token, record) = issuance::access_token(state, client, None, scope, &crypto::random_token(), None);
    issuance::store_tokens(state, &access_token, &record, None).await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.config.access_token_lifetime,
        refresh_token: None,
        id_token: None,
        scope: record.scope.to_string(),
    })
}
