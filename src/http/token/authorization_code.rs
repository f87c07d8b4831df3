//! The `authorization_code` grant (RFC 6749 4.1.3, Core 3.1.3.2): a code is redeemed once, by the client
//! it was issued to, with the same redirect URI and the PKCE verifier of its challenge.

use super::issue::{Grant, active_user, issue};
use super::{TokenResponse, invalid_grant, require_key, required};
use crate::crypto;
use crate::http::{SharedState, reply};
use crate::jose::dpop::Proof;
use crate::model::{Client, Lookup};
use crate::protocol::{OAuthError, Params, pkce};
use crate::store::Spent;

pub(super) const CODE_REUSED: &str = "authorization code was already used";

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let hash = crypto::token_hash(required(params, "code")?);
    let grant = match state.store.code(&hash).await.map_err(reply::internal)? {
        Lookup::Live(grant) => grant,
        // RFC 6749 4.1.2: a reused code is refused, and what it issued is revoked.
        Lookup::Spent { grant_id } => {
            state.store.revoke_grant(&grant_id).await.map_err(reply::internal)?;
            super::issue::audit_reuse(state, client, "authorization code").await;
            return Err(invalid_grant(CODE_REUSED));
        }
        Lookup::Unknown => return Err(invalid_grant("authorization code is invalid")),
    };
    if grant.expires_at <= state.now() {
        return Err(invalid_grant("authorization code has expired"));
    }
    if grant.client_id != client.id {
        return Err(invalid_grant("authorization code was issued to another client"));
    }
    if params.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&grant.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce::verify_s256(verifier, challenge) => {}
        (Some(_), _) => return Err(invalid_grant("PKCE verification failed")),
        // RFC 9700 2.1.1: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => return Err(invalid_grant("code_verifier given but no code_challenge was sent")),
        (None, None) => {}
    }
    // RFC 9449 10: a code asked for with dpop_jkt is redeemed only with a proof of that key.
    require_key(proof, grant.dpop_jkt.as_deref())?;
    let user = active_user(state, &grant.user_id).await?;
    let access_scope = grant.scope.clone();
    let grant = Grant {
        user: &user,
        scope: grant.scope,
        id: &grant.grant_id,
        auth: &grant.auth,
        nonce: grant.nonce.as_deref(),
        claims: grant.claims.as_ref(),
        resources: Some(&grant.resources),
    };
    // The code is spent in the same transaction that stores the tokens (a concurrent redemption
    // of the same code loses, and revokes the grant).
    issue(state, client, grant, access_scope, Spent::Code(&hash), proof, params.get("resource")).await
}
