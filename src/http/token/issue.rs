//! What the user-facing grants (`authorization_code`, `refresh_token`) share: the tokens issued for one
//! grant by a user to a client.

use std::sync::Arc;

use super::{TokenResponse, invalid_grant};
use crate::crypto;
use crate::http::issuance::{self, IdTokenContents};
use crate::http::{SharedState, reply};
use crate::jose::dpop::Proof;
use crate::model::{
    AccessToken, AuditEvent, AuditKind, Authentication, ClaimsRequest, Client, GrantType, Issuance, RefreshToken,
    ScopeSet, User,
};
use crate::protocol::OAuthError;
use crate::protocol::claims;
use crate::store::{NewTokens, Spent};

/// The grant's user, unless the account has since been disabled or deleted.
pub(super) async fn active_user(state: &SharedState, user_id: &str) -> Result<Arc<User>, OAuthError> {
    match state.user(user_id).await.map_err(reply::internal)? {
        Some(user) if !user.disabled => Ok(user),
        _ => Err(invalid_grant("the user is no longer active")),
    }
}

/// What the tokens being issued stand for: one grant by a user to the client.
pub(super) struct Grant<'a> {
    pub user: &'a User,
    pub scope: ScopeSet,
    pub id: &'a str,
    pub auth: &'a Authentication,
    pub nonce: Option<&'a str>,
    /// The `claims` request parameter of the original authorization (Core 5.5).
    pub claims: Option<&'a ClaimsRequest>,
    /// RFC 8707: the resources the grant was authorized for; None where requests name none up front
    /// (the decoupled flows), so a token request may name any registered one.
    pub resources: Option<&'a [String]>,
}

/// Records that a reused code or refresh token of `client` revoked its grant (RFC 9700 4.14.2).
pub(super) async fn audit_reuse(state: &SharedState, client: &Client, what: &str) {
    let detail = format!("a used {what} was presented again; every token of its grant is revoked");
    let event = AuditEvent::new(state.now(), AuditKind::GrantRevokedOnReuse, detail).client(client.id.as_str());
    crate::audit::record(state.store.as_ref(), event).await;
}

/// Stores the tokens of an exchange, spending `spent` in the same transaction: nothing is answered
/// before it is committed, and on failure nothing has changed.
pub(super) async fn store(
    state: &SharedState,
    client: &Client,
    spent: Option<Spent<'_>>,
    access: (&str, &AccessToken),
    refresh: Option<(&str, &RefreshToken)>,
) -> Result<(), OAuthError> {
    let access_hash = crypto::token_hash(access.0);
    let tokens = NewTokens { access: (&access_hash, access.1), refresh };
    match state.store.issue_tokens(spent, &tokens).await.map_err(reply::internal)? {
        Issuance::Issued => Ok(()),
        Issuance::Replayed => {
            let (what, message) = match spent {
                Some(Spent::Code(_)) => ("authorization code", super::authorization_code::CODE_REUSED),
                _ => ("refresh token", super::refresh_token::REFRESH_REUSED),
            };
            audit_reuse(state, client, what).await;
            Err(invalid_grant(message))
        }
        Issuance::Unknown => Err(invalid_grant("the code or refresh token is no longer valid")),
        // The grant was revoked (its code was replayed) while this request was in flight.
        Issuance::Revoked => Err(invalid_grant("the grant has been revoked")),
    }
}

/// Issues an access token with `access_scope`, a refresh token (for `offline_access`, Core 11) and an
/// ID Token, spending the code or refresh token presented.
pub(super) async fn issue(
    state: &SharedState,
    client: &Client,
    grant: Grant<'_>,
    access_scope: ScopeSet,
    spent: Spent<'_>,
    proof: Option<&Proof>,
    asked_resource: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let user = grant.user;
    let audience = issuance::audience(state, grant.resources, asked_resource).await?;
    let access_scope = issuance::scope_for_audience(state, access_scope, grant.resources, &audience).await?;
    let mut access = issuance::access_token(state, client, Some(&user.id), access_scope, Some(grant.id), grant.claims);
    access.jkt = proof.map(|p| p.jkt.clone());
    let (access_token, access) =
        issuance::for_audience(state, client, access, &audience, Some((&user.id, Some(grant.auth))), None)?;
    let refresh_token = (grant.scope.contains("offline_access") && client.allows_grant(GrantType::RefreshToken))
        .then(crypto::ordered_token);
    let refresh = refresh_token.as_ref().map(|t| {
        let record = RefreshToken {
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scope: grant.scope.clone(),
            grant_id: grant.id.to_owned(),
            auth: grant.auth.clone(),
            expires_at: state.now() + state.config.refresh_token_lifetime as i64,
            claims: grant.claims.cloned(),
            // RFC 9449 5: a public client's refresh token is bound to its key (a confidential client's
            // is bound to its credentials already).
            jkt: proof.filter(|_| client.is_public()).map(|p| p.jkt.clone()),
            resources: grant.resources.unwrap_or_default().to_vec(),
        };
        (crypto::token_hash(t), record)
    });
    let id_token = if grant.scope.contains("openid") {
        let contents = IdTokenContents {
            auth: grant.auth,
            nonce: grant.nonce,
            access_token: Some(&access_token),
            code: None,
            claims: claims::id_token_claims(user, std::iter::empty(), grant.claims),
        };
        Some(issuance::id_token(state, client, user, contents).await?)
    } else {
        None
    };
    let refresh = refresh.as_ref().map(|(h, r)| (h.as_str(), r));
    store(state, client, Some(spent), (&access_token, &access), refresh).await?;
    Ok(TokenResponse {
        access_token,
        token_type: super::token_type(proof),
        expires_in: super::expires_in(state, access.expires_at),
        refresh_token,
        id_token,
        scope: access.scope.to_string(),
        issued_token_type: None,
    })
}
