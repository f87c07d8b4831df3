//! Minting what the authorization and token endpoints hand out: access tokens (random, stored hashed)
//! and signed ID Tokens (Core 2). Both endpoints go through here so the two can never disagree.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{SharedState, client_auth};
use crate::crypto;
use crate::jose::encryption;
use crate::model::{
    AccessToken, Authentication, ClaimsRequest, Client, Encryption, ResourceServer, ScopeSet, TokenFormat, User,
};
use crate::protocol::authorize::AuthorizationRequest;
use crate::protocol::id_token::{IdTokenClaims, half_hash};
use crate::protocol::{ErrorCode, OAuthError, Params};
use serde::Serialize;

/// The record of a new access token for `user_id` (None: the client itself); `for_audience` or
/// `opaque_token` makes the token once its lifetime is known.
pub fn access_token(
    state: &SharedState,
    client: &Client,
    user_id: Option<&str>,
    scope: ScopeSet,
    grant_id: Option<&str>,
    claims: Option<&ClaimsRequest>,
) -> AccessToken {
    AccessToken {
        client_id: client.id.clone(),
        user_id: user_id.map(str::to_owned),
        scope,
        grant_id: grant_id.map(str::to_owned),
        expires_at: state.now() + state.config.access_token_lifetime as i64,
        claims: claims.filter(|c| !c.userinfo.is_empty() || !c.locales.is_empty()).cloned(),
        jkt: None,
        audience: Vec::new(),
        issued_at: Some(state.now()),
    }
}

/// A new opaque access token for `record`, in the order of its expiry (`crypto::expiring_token`).
pub fn opaque_token(record: &AccessToken) -> String {
    crypto::expiring_token(record.expires_at)
}

/// RFC 8707: the resource servers an access token is for. `asked` (the token request's `resource`) must
/// be one of `authorized` (the grant's; `None`: any registered resource, for the client's own tokens)
/// and registered; without it, every authorized resource, or else the `default_resource` setting.
pub async fn audience(
    state: &SharedState,
    authorized: Option<&[String]>,
    asked: Option<&str>,
) -> Result<Vec<Arc<ResourceServer>>, OAuthError> {
    let target = |why: &'static str| OAuthError::new(ErrorCode::InvalidTarget, why);
    let wanted: Vec<&str> = match (asked, authorized) {
        (Some(asked), Some(authorized)) if !authorized.iter().any(|r| r == asked) => {
            return Err(target("resource was not authorized for this grant"));
        }
        (Some(asked), _) => vec![asked],
        (None, Some(authorized)) if !authorized.is_empty() => authorized.iter().map(String::as_str).collect(),
        // Nothing named: the operator's default audience, if any.
        (None, _) => state.config.default_resource.iter().map(String::as_str).collect(),
    };
    let mut resources = Vec::with_capacity(wanted.len());
    for identifier in wanted {
        match state.resource(identifier).await.map_err(super::reply::internal)? {
            Some(resource) => resources.push(resource),
            None => return Err(target("resource is not a registered resource server")),
        }
    }
    Ok(resources)
}

/// RFC 8707 at the authorization endpoint: every `resource` must be a registered resource server, and
/// the scopes a resource defines are granted only when it is asked for (validation drops scopes the OP
/// itself does not know; those of the named resources come back here).
pub async fn resolve_resources(
    state: &SharedState,
    params: &Params,
    request: &mut AuthorizationRequest,
) -> Result<(), OAuthError> {
    let asked = params.get("scope").and_then(|s| ScopeSet::parse(s).ok()).unwrap_or_default();
    for identifier in &request.resources {
        let Some(resource) = state.resource(identifier).await.map_err(super::reply::internal)? else {
            return Err(OAuthError::new(ErrorCode::InvalidTarget, "resource is not a registered resource server"));
        };
        let defined = asked.clone().retain(|s| resource.scopes.contains(s));
        request.scope = request.scope.union(&defined);
    }
    Ok(())
}

/// The scope of a token for `audience` out of a grant for `authorized` resources: the scopes that the
/// other authorized resources define are theirs, not this token's.
pub async fn scope_for_audience(
    state: &SharedState,
    scope: ScopeSet,
    authorized: Option<&[String]>,
    audience: &[Arc<ResourceServer>],
) -> Result<ScopeSet, OAuthError> {
    let mut scope = scope;
    for other in authorized.unwrap_or_default().iter().filter(|r| !audience.iter().any(|a| a.identifier == **r)) {
        if let Some(resource) = state.resource(other).await.map_err(super::reply::internal)? {
            let theirs_only = resource.scopes.clone().retain(|s| !audience.iter().any(|a| a.scopes.contains(s)));
            scope = scope.retain(|s| !theirs_only.contains(s));
        }
    }
    Ok(scope)
}

/// RFC 9068 2.2: the claims of a JWT access token.
#[derive(Serialize)]
struct JwtAccessToken<'a> {
    iss: &'a str,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
    client_id: &'a str,
    iat: i64,
    jti: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a [String]>,
    /// RFC 9449 6.1: the DPoP key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<serde_json::Value>,
    /// RFC 8693 4.1: who acts for the subject (a token exchange's delegation).
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<serde_json::Value>,
}

/// Makes an access token for `audience` (RFC 8707): its record's audience and lifetime, and, for a
/// resource server that asked for them, an RFC 9068 JWT (`typ: at+jwt`, signed with the OP's key for
/// the resource's algorithm) in place of the opaque token. `user` is the subject and, when known, how they authenticated
/// (None for the client's own tokens); `act` the delegation of a token exchange (RFC 8693 4.1). The token is stored under its hash either way, so revocation and
/// introspection work alike.
pub fn for_audience(
    state: &SharedState,
    client: &Client,
    mut record: AccessToken,
    audience: &[Arc<ResourceServer>],
    user: Option<(&str, Option<&Authentication>)>,
    act: Option<serde_json::Value>,
) -> Result<(String, AccessToken), OAuthError> {
    record.audience = audience.iter().map(|r| r.identifier.clone()).collect();
    let [resource] = audience else { return Ok((opaque_token(&record), record)) };
    let now = state.now();
    if let Some(lifetime) = resource.access_token_lifetime {
        record.expires_at = now + lifetime as i64;
    }
    if resource.token_format != TokenFormat::Jwt {
        return Ok((opaque_token(&record), record));
    }
    let subject = user.map(|(user_id, _)| state.subject(client, user_id));
    let claims = JwtAccessToken {
        iss: &state.config.issuer,
        exp: record.expires_at,
        aud: &resource.identifier,
        sub: subject.as_deref().unwrap_or(client.id.as_str()),
        client_id: client.id.as_str(),
        iat: now,
        // Ordered, so the token is stored in the order of its expiry (`crypto::token_hash`).
        jti: crypto::expiring_token(record.expires_at),
        scope: record.scope.to_string(),
        auth_time: user.and_then(|(_, auth)| auth).map(|auth| auth.auth_time),
        acr: user.and_then(|(_, auth)| auth).map(|auth| auth.acr.as_str()),
        amr: user.and_then(|(_, auth)| auth).map(|auth| auth.amr.as_slice()),
        cnf: record.jkt.as_ref().map(|jkt| serde_json::json!({"jkt": jkt})),
        act,
    };
    let jwt = state.keys.get().sign_typed(resource.signing_alg, "at+jwt", &claims).map_err(|e| {
        tracing::error!(error = %e, "access token signing failed");
        OAuthError::server_error()
    })?;
    Ok((jwt, record))
}

/// What goes into one ID Token besides what the client, user and configuration determine.
pub struct IdTokenContents<'a> {
    pub auth: &'a Authentication,
    pub nonce: Option<&'a str>,
    /// The access token issued alongside, for `at_hash` (Core 3.1.3.6, 3.2.2.10, 3.3.2.11).
    pub access_token: Option<&'a str>,
    /// The code issued alongside, for `c_hash` (Core 3.3.2.11).
    pub code: Option<&'a str>,
    /// User claims carried in the ID Token itself (Core 5.4 when no access token is issued).
    pub claims: Map<String, Value>,
}

/// Signs an ID Token for `user` with the client's `id_token_signed_response_alg`, then encrypts it if
/// the client registered ID Token encryption (Core 10.2).
pub async fn id_token(
    state: &SharedState,
    client: &Client,
    user: &User,
    contents: IdTokenContents<'_>,
) -> Result<String, OAuthError> {
    let now = state.now();
    let alg = client.id_token_signed_response_alg;
    let subject = state.subject(client, &user.id);
    let claims = IdTokenClaims {
        iss: &state.config.issuer,
        sub: &subject,
        aud: client.id.as_str(),
        exp: now + state.config.id_token_lifetime as i64,
        iat: now,
        auth_time: contents.auth.auth_time,
        nonce: contents.nonce,
        acr: &contents.auth.acr,
        amr: &contents.auth.amr,
        azp: client.id.as_str(),
        at_hash: contents.access_token.map(|t| half_hash(alg, t)),
        c_hash: contents.code.map(|c| half_hash(alg, c)),
        sid: &contents.auth.sid,
        claims: contents.claims,
    };
    let signed = state.keys.get().sign(alg, &claims).map_err(|e| {
        tracing::error!(error = %e, "ID Token signing failed");
        OAuthError::server_error()
    })?;
    match client.metadata.id_token_encryption {
        Some(encryption) => encrypt_to_client(state, client, signed.as_bytes(), true, encryption).await,
        None => Ok(signed),
    }
}

/// Encrypts `payload` to the client's registered key (Core 10.2).
pub async fn encrypt_to_client(
    state: &SharedState,
    client: &Client,
    payload: &[u8],
    nested_jwt: bool,
    encryption: Encryption,
) -> Result<String, OAuthError> {
    let cannot = |why: String| OAuthError::invalid_request(format!("cannot encrypt to the client: {why}"));
    let jwks = client_auth::client_jwks(state, client).await.map_err(|e| cannot(e.to_string()))?;
    let jwks = jwks.ok_or_else(|| cannot("it has no registered keys".into()))?;
    encryption::encrypt(payload, nested_jwt, encryption, &jwks).map_err(|e| cannot(e.0.into()))
}
