//! Minting what the authorization and token endpoints hand out: access tokens (random, stored hashed)
//! and signed ID Tokens (Core 2). Both endpoints go through here so the two can never disagree.

use serde_json::{Map, Value};

use super::{SharedState, client_auth};
use crate::crypto;
use crate::jose::encryption;
use crate::model::{AccessToken, Authentication, ClaimsRequest, Client, Encryption, ScopeSet, User};
use crate::protocol::OAuthError;
use crate::protocol::id_token::{IdTokenClaims, half_hash};

/// A new access token and its record, for `user_id` (None: the client itself).
pub fn access_token(
    state: &SharedState,
    client: &Client,
    user_id: Option<&str>,
    scope: ScopeSet,
    grant_id: &str,
    claims: Option<&ClaimsRequest>,
) -> (String, AccessToken) {
    let record = AccessToken {
        client_id: client.id.clone(),
        user_id: user_id.map(str::to_owned),
        scope,
        grant_id: grant_id.to_owned(),
        expires_at: state.now() + state.config.access_token_lifetime as i64,
        claims: claims.filter(|c| !c.userinfo.is_empty() || !c.locales.is_empty()).cloned(),
        jkt: None,
    };
    (crypto::random_token(), record)
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
