//! The token endpoint (RFC 6749 3.2, Core 3.1.3): one function per grant type.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::issuance::{self, IdTokenContents};
use super::params::RequestParams;
use super::{SharedState, client_auth, reply};
use crate::crypto;
use crate::protocol::claims::{self, ClaimsRequest};
use crate::protocol::{ErrorCode, OAuthError, Params, pkce};
use crate::store::{Authentication, Client, CodeRedemption, RefreshRotation, RefreshToken, User, now};
use crate::types::{GrantType, ScopeSet};

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
}

pub async fn token(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    match handle(&state, &headers, params).await {
        Ok(body) => ([reply::NO_STORE, (header::PRAGMA, "no-cache")], axum::Json(body)).into_response(),
        Err(e) => reply::json_error(&e),
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
    let issued = match grant {
        GrantType::AuthorizationCode => authorization_code(state, &client, &params).await,
        GrantType::RefreshToken => refresh_token(state, &client, &params).await,
        GrantType::ClientCredentials => client_credentials(state, &client, &params).await,
    }?;
    crate::telemetry::token_issued(grant.as_str());
    Ok(issued)
}

/// RFC 6749 4.1.3 and Core 3.1.3.2.
async fn authorization_code(
    state: &SharedState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = required(params, "code")?;
    let grant = match state.store.redeem_code(&crypto::token_hash(code)).await.map_err(reply::internal)? {
        CodeRedemption::Redeemed(grant) => grant,
        // RFC 6749 4.1.2: a reused code is refused, and what it issued is revoked (done by the store).
        CodeRedemption::Replayed => return Err(invalid_grant("authorization code was already used")),
        CodeRedemption::Unknown => return Err(invalid_grant("authorization code is invalid")),
    };
    if grant.expires_at <= now() {
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
    let user = active_user(state, &grant.user_id).await?;
    let access_scope = grant.scope.clone();
    let grant = Grant {
        user: &user,
        scope: grant.scope,
        id: &grant.grant_id,
        auth: &grant.auth,
        nonce: grant.nonce.as_deref(),
        claims: grant.claims.as_ref(),
    };
    issue(state, client, grant, access_scope).await
}

/// RFC 6749 6, with rotation and reuse detection (RFC 9700 4.14.2).
async fn refresh_token(state: &SharedState, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
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

/// RFC 6749 4.4: a token for the client itself; confidential clients only.
async fn client_credentials(
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

async fn active_user(state: &SharedState, user_id: &str) -> Result<User, OAuthError> {
    match state.store.user(user_id).await.map_err(reply::internal)? {
        Some(user) if !user.disabled => Ok(user),
        _ => Err(invalid_grant("the user is no longer active")),
    }
}

/// What the tokens being issued stand for: one grant by a user to the client.
struct Grant<'a> {
    user: &'a User,
    scope: ScopeSet,
    id: &'a str,
    auth: &'a Authentication,
    nonce: Option<&'a str>,
    /// The `claims` request parameter of the original authorization (Core 5.5).
    claims: Option<&'a ClaimsRequest>,
}

/// Issues an access token with `access_scope`, a refresh token (for `offline_access`, Core 11) and an
/// ID Token.
async fn issue(
    state: &SharedState,
    client: &Client,
    grant: Grant<'_>,
    access_scope: ScopeSet,
) -> Result<TokenResponse, OAuthError> {
    let user = grant.user;
    let (access_token, access) =
        issuance::access_token(state, client, Some(&user.id), access_scope, grant.id, grant.claims);
    let refresh_token = (grant.scope.contains("offline_access") && client.allows_grant(GrantType::RefreshToken))
        .then(crypto::random_token);
    let refresh = refresh_token.as_ref().map(|t| {
        let record = RefreshToken {
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scope: grant.scope.clone(),
            grant_id: grant.id.to_owned(),
            auth: grant.auth.clone(),
            expires_at: now() + state.config.refresh_token_lifetime as i64,
            claims: grant.claims.cloned(),
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
    issuance::store_tokens(state, &access_token, &access, refresh.as_ref().map(|(h, r)| (h.as_str(), r))).await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.config.access_token_lifetime,
        refresh_token,
        id_token,
        scope: access.scope.to_string(),
    })
}
