//! JWT client assertions: `client_secret_jwt` and `private_key_jwt` (Core 9, RFC 7523 3).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{self, JwsVerifier};
use serde::Deserialize;

use super::keys;
use crate::store::{Client, Timestamp};
use crate::types::{ClientAuthMethod, SigningAlg};

/// Tolerated clock difference between client and OP, in seconds.
const CLOCK_SKEW: i64 = 60;

/// Why an assertion was refused; reported to the client as `invalid_client`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AssertionError(pub &'static str);

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

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

fn verifiers_for(client: &Client) -> Result<Vec<Box<dyn JwsVerifier>>, AssertionError> {
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
            let jwks = client.jwks.as_deref().ok_or(AssertionError("client has no registered keys"))?;
            let set = JwkSet::from_bytes(jwks).map_err(|_| AssertionError("client keys are unreadable"))?;
            let mut out = Vec::new();
            for jwk in set.keys() {
                for alg in algorithms_for(jwk) {
                    let mut jwk = jwk.clone();
                    jwk.set_algorithm(alg.as_str());
                    if let Ok(v) = keys::verifier(alg, &jwk) {
                        out.push(v);
                    }
                }
            }
            Ok(out)
        }
        _ => Err(AssertionError("client does not authenticate with a JWT")),
    }
}

fn algorithms_for(jwk: &Jwk) -> Vec<SigningAlg> {
    if let Some(alg) = jwk.algorithm() {
        return alg.parse().into_iter().collect();
    }
    match (jwk.key_type(), jwk.curve()) {
        ("RSA", _) => vec![SigningAlg::RS256, SigningAlg::PS256],
        ("EC", Some("P-256")) => vec![SigningAlg::ES256],
        ("OKP", Some("Ed25519")) => vec![SigningAlg::EdDSA],
        _ => vec![],
    }
}

/// Verifies a client assertion for `client`: signature, `iss` = `sub` = client_id, `aud` naming one of
/// `audiences` (the token endpoint or the issuer, Core 9), `exp` in the future, `nbf` past, `jti` present.
pub fn verify(
    assertion: &str,
    client: &Client,
    audiences: &[&str],
    now: Timestamp,
) -> Result<VerifiedAssertion, AssertionError> {
    let verifiers = verifiers_for(client)?;
    let (payload, _) = jws::deserialize_compact_with_selector(assertion, |header| {
        let alg = header.algorithm();
        let kid = header.key_id();
        Ok(verifiers
            .iter()
            .find(|v| Some(v.algorithm().name()) == alg && (kid.is_none() || v.key_id().is_none() || v.key_id() == kid))
            .map(|v| v.as_ref()))
    })
    .map_err(|_| AssertionError("client assertion signature is invalid"))?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|_| AssertionError("client assertion claims are malformed"))?;
    let id = client.id.as_str();
    if claims.iss.as_deref() != Some(id) || claims.sub.as_deref() != Some(id) {
        return Err(AssertionError("client assertion iss and sub must be the client_id"));
    }
    let aud_ok = match &claims.aud {
        Some(Audience::One(a)) => audiences.contains(&a.as_str()),
        Some(Audience::Many(list)) => list.iter().any(|a| audiences.contains(&a.as_str())),
        None => false,
    };
    if !aud_ok {
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
