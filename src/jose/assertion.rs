//! JWT client assertions: `client_secret_jwt` and `private_key_jwt` (Core 9, RFC 7523 3).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::{self, JwsVerifier};
use serde::Deserialize;

use super::client_keys;
use crate::model::{Client, ClientAuthMethod, Timestamp};

use super::client_keys::{Audience, CLOCK_SKEW};

/// Why an assertion was refused; reported to the client as `invalid_client`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AssertionError(pub &'static str);

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

/// What the caller still has to check: that `jti` is used only once before `exp`.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: Timestamp,
}

/// Reads the claimed client (`sub`, RFC 7523 3 item 2) before verification, to find its keys.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    claims.sub
}

fn verifiers_for(client: &Client, jwks: Option<&str>) -> Result<Vec<Box<dyn JwsVerifier>>, AssertionError> {
    match client.auth_method {
        ClientAuthMethod::ClientSecretJwt => {
            let secret = client.secret_for_jwt.as_deref().ok_or(AssertionError("client has no secret"))?;
            // RFC 7518 3.2: the key must be at least as long as the hash, so a 43-character secret
            // serves HS256 only.
            let verifiers: Vec<Box<dyn JwsVerifier>> = [&jws::HS256, &jws::HS384, &jws::HS512]
                .into_iter()
                .filter_map(|alg| alg.verifier_from_bytes(secret).ok())
                .map(|v| Box::new(v) as Box<dyn JwsVerifier>)
                .collect();
            if verifiers.is_empty() {
                return Err(AssertionError("client secret is too short for HMAC"));
            }
            Ok(verifiers)
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let jwks = jwks.ok_or(AssertionError("client has no registered keys"))?;
            client_keys::verifiers(jwks).map_err(AssertionError)
        }
        _ => Err(AssertionError("client does not authenticate with a JWT")),
    }
}

/// Verifies a client assertion for `client` (whose public keys are `jwks`): signature, `iss` = `sub` =
/// client_id, `aud` naming one of `audiences` (the token endpoint or the issuer, Core 9), `exp` in the
/// future, `nbf` past, `jti` present.
pub fn verify(
    assertion: &str,
    client: &Client,
    jwks: Option<&str>,
    audiences: &[&str],
    now: Timestamp,
) -> Result<VerifiedAssertion, AssertionError> {
    let verifiers = verifiers_for(client, jwks)?;
    let payload =
        client_keys::verify(assertion, &verifiers).ok_or(AssertionError("client assertion signature is invalid"))?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|_| AssertionError("client assertion claims are malformed"))?;
    let id = client.id.as_str();
    if claims.iss.as_deref() != Some(id) || claims.sub.as_deref() != Some(id) {
        return Err(AssertionError("client assertion iss and sub must be the client_id"));
    }
    if !claims.aud.as_ref().is_some_and(|aud| audiences.iter().any(|a| aud.names(a))) {
        return Err(AssertionError("client assertion aud must name the token endpoint"));
    }
    let exp = claims.exp.ok_or(AssertionError("client assertion exp is required"))?;
    if exp + CLOCK_SKEW <= now {
        return Err(AssertionError("client assertion has expired"));
    }
    if claims.nbf.is_some_and(|nbf| nbf - CLOCK_SKEW > now) {
        return Err(AssertionError("client assertion is not yet valid"));
    }
    let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256);
    let jti = jti.ok_or(AssertionError("client assertion jti is required"))?;
    Ok(VerifiedAssertion { jti, exp: exp + CLOCK_SKEW })
}
