//! The `refresh_token` grant (RFC 6749 6), with rotation and reuse detection (RFC 9700 4.14.2): every
//! refresh consumes the token and issues a new one; presenting a consumed token revokes the grant.

use super::issue::{Grant, active_user, issue};
use super::{TokenResponse, invalid_grant, required};
use crate::crypto;
use crate::http::{SharedState, reply};
use crate::model::{Client, RefreshRotation, ScopeSet, now};
use crate::protocol::{ErrorCode, OAuthError, Params};

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let token = required(params, "refresh_token")?;
    let hash = crypto::token_hash(token);
    let asked = params
        .get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
    // RFC 6749 6: the new access token may have narrower scope, never wider. Checked before rotating,
    // so a mistaken request does not consume the token.
    if let Some(asked) = &asked {
        let current = state.store.refresh_token(&hash, &client.id, now()).await.map_err(reply::internal)?;
        if current.is_some_and(|t| !asked.is_subset(&t.scope)) {
            return Err(OAuthError::new(ErrorCode::InvalidScope, "scope exceeds the original grant"));
        }
    }
    let old = match state.store.rotate_refresh_token(&hash, &client.id, now()).await.map_err(reply::internal)? {
        RefreshRotation::Rotated(old) => old,
        RefreshRotation::Replayed => {
            return Err(invalid_grant("refresh token was already used; the grant has been revoked"));
        }
        RefreshRotation::Unknown => return Err(invalid_grant("refresh token is invalid or expired")),
    };
    let access_scope = asked.unwrap_or_else(|| old.scope.clone());
    let user = active_user(state, &old.user_id).await?;
    let grant = Grant {
        user: &user,
        scope: old.scope,
        id: &old.grant_id,
        auth: &old.auth,
        nonce: None,
        claims: old.claims.as_ref(),
    };
    issue(state, client, grant, access_scope).await
}
