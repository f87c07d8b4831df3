//! Verifying JWTs signed by a client with the public keys it registered (a JWK Set), used for
//! `private_key_jwt` assertions and for request objects.

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{self, JwsVerifier};
use serde::Deserialize;

use super::keys;
use crate::model::SigningAlg;

/// A client key ready to verify with one algorithm, and the `kid` it was published under.
pub struct ClientVerifier {
    kid: Option<String>,
    verifier: Box<dyn JwsVerifier>,
}

/// One verifier per usable (key, algorithm) pair in `jwks`; keys oxid cannot use are skipped.
pub fn verifiers(jwks: &str) -> Result<Vec<ClientVerifier>, &'static str> {
    let set = JwkSet::from_bytes(jwks).map_err(|_| "the client's keys are unreadable")?;
    let mut out = Vec::new();
    for jwk in set.keys() {
        // A key marked for encryption only does not verify signatures (RFC 7517 4.2).
        if jwk.key_use().is_some_and(|u| u != "sig") {
            continue;
        }
        let kid = jwk.key_id().map(str::to_owned);
        for alg in algorithms_for(jwk) {
            // The verifier itself carries no key id: the JOSE library would refuse a JWT without one,
            // and `kid` is optional (RFC 7515 4.1.4). It is matched here instead.
            let mut map = jwk.as_ref().clone();
            map.remove("kid");
            let Ok(mut jwk) = Jwk::from_map(map) else { continue };
            jwk.set_algorithm(alg.as_str());
            if let Ok(verifier) = keys::verifier(alg, &jwk) {
                out.push(ClientVerifier { kid: kid.clone(), verifier });
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
        ("OKP", Some("Ed25519")) => vec![SigningAlg::EdDSA, SigningAlg::Ed25519],
        _ => vec![],
    }
}

/// The payload of `jwt` if one of `verifiers` accepts its signature. The header's `alg` picks the
/// candidates, and its `kid`, when there is one, the key. Without a `kid` every key fitting the `alg`
/// is tried: Core 10.1 needs a `kid` only to tell keys apart, and common RP libraries (node
/// openid-client, Authlib, pyoidc) leave it out when the client has one key.
pub fn verify(jwt: &str, verifiers: &[ClientVerifier]) -> Option<Vec<u8>> {
    let header = jws::JwsHeader::from_bytes(&crate::crypto::b64url_decode(jwt.split('.').next()?)?).ok()?;
    let (alg, kid) = (header.algorithm()?, header.key_id());
    verifiers
        .iter()
        .filter(|v| v.verifier.algorithm().name() == alg)
        .filter(|v| kid.is_none() || v.kid.is_none() || v.kid.as_deref() == kid)
        .find_map(|v| jws::deserialize_compact(jwt, v.verifier.as_ref()).ok())
        .map(|(payload, _)| payload)
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

#[cfg(test)]
mod tests {
    use josekit::jws::{self, JwsHeader};
    use serde_json::json;

    use super::*;

    struct Key {
        signer: jws::alg::ecdsa::EcdsaJwsSigner,
        public: serde_json::Value,
    }

    fn key(kid: Option<&str>) -> Key {
        let pair = jws::ES256.generate_key_pair().unwrap();
        let mut public = pair.to_jwk_public_key();
        if let Some(kid) = kid {
            public.set_key_id(kid);
        }
        let signer = jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap();
        Key { signer, public: serde_json::Value::Object(public.as_ref().clone()) }
    }

    fn sign(key: &Key, kid: Option<&str>) -> String {
        let mut header = JwsHeader::new();
        if let Some(kid) = kid {
            header.set_key_id(kid);
        }
        jws::serialize_compact(br#"{"sub":"c"}"#, &header, &key.signer).unwrap()
    }

    fn set(keys: &[&Key]) -> Vec<ClientVerifier> {
        verifiers(&json!({"keys": keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>()}).to_string()).unwrap()
    }

    /// RFC 7515 4.1.4: `kid` is optional; a JWT without one is checked against every key that fits.
    #[test]
    fn a_jwt_without_kid_is_verified_against_the_keys_that_fit() {
        let (one, two) = (key(Some("k1")), key(Some("k2")));
        assert!(verify(&sign(&one, None), &set(&[&one])).is_some(), "one key, published with a kid");
        let bare = key(None);
        assert!(verify(&sign(&bare, None), &set(&[&bare])).is_some(), "one key, published without a kid");
        assert!(verify(&sign(&two, None), &set(&[&one, &two])).is_some(), "the second of two keys");
        assert!(verify(&sign(&two, Some("k2")), &set(&[&one, &two])).is_some());
        assert!(verify(&sign(&two, Some("k1")), &set(&[&one, &two])).is_none(), "the kid names the other key");
        assert!(verify(&sign(&key(None), None), &set(&[&one, &two])).is_none(), "nobody's key");
    }
}
