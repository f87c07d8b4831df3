//! Verifying JWTs signed by a client with the public keys it registered (a JWK Set), used for
//! `private_key_jwt` assertions and for request objects.

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{self, JwsVerifier};
use serde::Deserialize;

use super::keys;
use crate::model::SigningAlg;

/// One verifier per usable (key, algorithm) pair in `jwks`; keys oxid cannot use are skipped.
pub fn verifiers(jwks: &str) -> Result<Vec<Box<dyn JwsVerifier>>, &'static str> {
    let set = JwkSet::from_bytes(jwks).map_err(|_| "the client's keys are unreadable")?;
    let mut out = Vec::new();
    for jwk in set.keys() {
        // A key marked for encryption only does not verify signatures (RFC 7517 4.2).
        if jwk.key_use().is_some_and(|u| u != "sig") {
            continue;
        }
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

/// The payload of `jwt` if one of `verifiers` accepts its signature, choosing by `alg` and `kid`.
pub fn verify(jwt: &str, verifiers: &[Box<dyn JwsVerifier>]) -> Option<Vec<u8>> {
    let (payload, _) = jws::deserialize_compact_with_selector(jwt, |header| {
        let alg = header.algorithm();
        let kid = header.key_id();
        Ok(verifiers
            .iter()
            .find(|v| Some(v.algorithm().name()) == alg && (kid.is_none() || v.key_id().is_none() || v.key_id() == kid))
            .map(|v| v.as_ref()))
    })
    .ok()?;
    Some(payload)
}

/// Tolerated clock difference between client and OP, in seconds.
pub const CLOCK_SKEW: i64 = 60;

/// A JWT `aud` claim: one audience or several (RFC 7519 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn names(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}
