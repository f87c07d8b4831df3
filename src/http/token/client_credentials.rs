//! The `client_credentials` grant (RFC 6749 4.4): a token for the client itself; confidential clients only.

use super::TokenResponse;
use crate::http::{SharedState, issuance};
use crate::jose::dpop::Proof;
use crate::model::{Client, ScopeSet};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// Scopes that ask for an end-user's claims or sessions.
const USER_SCOPES: &[&str] = &["openid", "offline_access", "profile", "email", "address", "phone"];

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "public clients cannot use client_credentials"));
    }
    let registered = &client.metadata.scope;
    let scope = match params.get("scope") {
        Some(asked) => {
            let asked =
                ScopeSet::parse(asked).map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
            // Scopes about an end-user make no sense without one: dropped, as before.
            USER_SCOPES.iter().fold(asked, |s, user_scope| s.without(user_scope))
        }
        // RFC 6749 3.3: without a scope parameter, the pre-defined default is what the client registered.
        None => registered.clone(),
    };
    // RFC 6749 5.2 `invalid_scope`: only the scopes registered for the client (RFC 7591 2 `scope`).
    if !scope.is_subset(registered) {
        return Err(OAuthError::new(ErrorCode::InvalidScope, "scope is not registered for this client"));
    }
    let mut record = issuance::access_token(state, client, None, scope, None, None);
    record.jkt = proof.map(|p| p.jkt.clone());
    // RFC 8707: a token for a registered resource server, if the client names one.
    let audience = issuance::audience(state, None, params.get("resource")).await?;
    let (access_token, record) = issuance::for_audience(state, client, record, &audience, None, None)?;
    super::issue::store(state, client, None, (&access_token, &record), None).await?;
    Ok(TokenResponse {
        access_token,
        token_type: super::token_type(proof),
        expires_in: super::expires_in(state, record.expires_at),
        refresh_token: None,
        id_token: None,
        scope: record.scope.to_string(),
        issued_token_type: None,
    })
}
