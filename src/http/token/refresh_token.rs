//! The `refresh_token` grant (RFC 6749 6), with rotation and reuse detection (RFC 9700 4.14.2): every
//! refresh consumes the token and issues a new one; presenting a consumed token revokes the grant.

use super::issue::{Grant, active_user, issue};
use super::{TokenResponse, invalid_grant, require_key, required};
use crate::crypto;
use crate::http::{SharedState, reply};
use crate::jose::dpop::Proof;
use crate::model::{Client, Lookup, ScopeSet};
use crate::protocol::{ErrorCode, OAuthError, Params};
use crate::store::Spent;

pub(super) const REFRESH_REUSED: &str = "refresh token was already used; the grant has been revoked";

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let hash = crypto::token_hash(required(params, "refresh_token")?);
    let asked = params
        .get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
    let now = state.now();
    // Another client's token is unknown here (RFC 6749 6: bound to the client it was issued to).
    let old = match state.store.refresh_token(&hash, &client.id, now).await.map_err(reply::internal)? {
        Lookup::Live(old) => old,
        Lookup::Spent { grant_id } => {
            state.store.revoke_grant(&grant_id).await.map_err(reply::internal)?;
            super::issue::audit_reuse(state, client, "refresh token").await;
            return Err(invalid_grant(REFRESH_REUSED));
        }
        Lookup::Unknown => return Err(invalid_grant("refresh token is invalid or expired")),
    };
    // RFC 6749 6: the new access token may have narrower scope, never wider. Checked before anything is
    // spent, so a mistaken request does not consume the token.
    if asked.as_ref().is_some_and(|asked| !asked.is_subset(&old.scope)) {
        return Err(OAuthError::new(ErrorCode::InvalidScope, "scope exceeds the original grant"));
    }
    // RFC 9449 5: a bound refresh token is used only with a proof of its key.
    require_key(proof, old.jkt.as_deref())?;
    let access_scope = asked.unwrap_or_else(|| old.scope.clone());
    let user = active_user(state, &old.user_id).await?;
    let grant = Grant {
        user: &user,
        scope: old.scope,
        id: &old.grant_id,
        auth: &old.auth,
        nonce: None,
        claims: old.claims.as_ref(),
        resources: Some(&old.resources),
    };
    // Rotation: the old token is spent in the same transaction that stores the new ones, so a failure
    // leaves it usable, and a concurrent use of it revokes the grant.
    let spent = Spent::RefreshToken { hash: &hash, client_id: &client.id, now };
    issue(state, client, grant, access_scope, spent, proof, params.get("resource")).await
}
