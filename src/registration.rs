//! Registration steps beyond the pure rules (`protocol::registration`), shared by every way a client is
//! registered: what needs the network (the sector identifier, software statements' issuers' keys) and
//! the client's secret.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::crypto;
use crate::fetch::Fetcher;
use crate::jose::client_keys;
use crate::model::{Client, ClientAuthMethod, SubjectType, Timestamp};
use crate::protocol::{ErrorCode, OAuthError, subject};

/// Core 8.1: settles the sector a pairwise client's subjects are computed for, fetching its
/// `sector_identifier_uri` (a JSON array of URIs that must list every redirect URI).
pub async fn settle_sector_identifier(client: &mut Client, fetcher: &Fetcher) -> Result<(), String> {
    let metadata = &mut client.metadata;
    if metadata.subject_type != SubjectType::Pairwise {
        if metadata.sector_identifier_uri.is_some() {
            return Err("a sector_identifier_uri is only used with pairwise subjects".into());
        }
        metadata.sector_identifier = None;
        return Ok(());
    }
    let listed = match &metadata.sector_identifier_uri {
        Some(uri) => {
            let listed: Vec<String> = fetcher.json(uri).await.map_err(|e| format!("sector_identifier_uri: {e}"))?;
            Some((uri.as_str(), listed))
        }
        None => None,
    };
    let sector = subject::sector_identifier(&client.redirect_uris, listed.as_ref().map(|(u, l)| (*u, l.as_slice())))?;
    client.metadata.sector_identifier = Some(sector);
    Ok(())
}

/// Gives `client` a secret if its method uses one (`given`, or a new random one); returns the secret to
/// show once. Stored as a fast hash, so a given secret must carry enough entropy on its own.
pub fn attach_secret(client: &mut Client, given: Option<String>) -> Result<Option<String>, String> {
    if !client.auth_method.uses_secret() {
        if given.is_some() {
            return Err(format!("a {} client has no secret", client.auth_method));
        }
        client.secret_hash = None;
        client.secret_for_jwt = None;
        return Ok(None);
    }
    let secret = match given {
        Some(s) if s.len() < 32 => return Err("a client secret must be at least 32 characters".into()),
        Some(s) => s,
        None => crypto::random_client_secret(),
    };
    client.secret_hash = Some(crypto::token_hash(&secret));
    client.secret_for_jwt = (client.auth_method == ClientAuthMethod::ClientSecretJwt).then(|| secret.clone());
    Ok(Some(secret))
}

fn invalid_statement(problem: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidSoftwareStatement, format!("software_statement: {problem}"))
}

/// RFC 7591 2.3: the metadata of a request with a `software_statement`, a JWT signed by an issuer the
/// operator trusts (`trusted`: issuer to the URL of its JWK Set). The statement's claims win over the
/// same fields in the request. A statement from another issuer is `unapproved_software_statement`; a
/// malformed, expired or badly signed one `invalid_software_statement`.
pub async fn apply_software_statement(
    mut doc: Map<String, Value>,
    trusted: &BTreeMap<String, String>,
    fetcher: &Fetcher,
    now: Timestamp,
) -> Result<Map<String, Value>, OAuthError> {
    let Some(statement) = doc.remove("software_statement") else { return Ok(doc) };
    let Value::String(statement) = statement else { return Err(invalid_statement("must be a JWT")) };
    let claims = |jwt: &str| -> Option<Map<String, Value>> {
        let payload = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?;
        serde_json::from_slice(&payload).ok()
    };
    let unverified = claims(&statement).ok_or_else(|| invalid_statement("must be a JWT"))?;
    let issuer = unverified.get("iss").and_then(Value::as_str).ok_or_else(|| invalid_statement("has no iss"))?;
    let Some(jwks_uri) = trusted.get(issuer) else {
        return Err(OAuthError::new(
            ErrorCode::UnapprovedSoftwareStatement,
            format!("software_statement: {issuer} is not a trusted issuer"),
        ));
    };
    let jwks = fetcher.get_cached(jwks_uri).await.map_err(|e| {
        tracing::warn!(issuer, error = %e, "the software statement issuer's keys are unavailable");
        invalid_statement("its issuer's keys are unavailable")
    })?;
    let verifiers = client_keys::verifiers(&String::from_utf8_lossy(&jwks)).map_err(invalid_statement)?;
    let payload =
        client_keys::verify(&statement, &verifiers).ok_or_else(|| invalid_statement("its signature is invalid"))?;
    let verified: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| invalid_statement("its claims are not a JSON object"))?;
    if verified.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp <= now) {
        return Err(invalid_statement("has expired"));
    }
    for (name, value) in verified {
        if !["iss", "iat", "exp", "nbf", "jti", "aud"].contains(&name.as_str()) {
            doc.insert(name, value);
        }
    }
    Ok(doc)
}
