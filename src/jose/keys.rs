//! The OP's signing keys: generation, the in-memory key ring (signers parsed once), and the JWKS.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use josekit::jwk::Jwk;
use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{self, JwsHeader, JwsSigner, JwsVerifier};
use serde::Serialize;

use crate::crypto;
use crate::model::{SigningAlg, SigningKey, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key error: {0}")]
    Jose(#[from] josekit::JoseError),
    #[error("no current signing key for {0}")]
    Missing(SigningAlg),
}

/// Generates a new key for `alg` (RSA keys are 2048 bits, EdDSA is Ed25519).
pub fn generate(alg: SigningAlg, now: Timestamp) -> Result<SigningKey, KeyError> {
    let mut private: Jwk = match alg {
        SigningAlg::RS256 => jws::RS256.generate_key_pair(2048)?.to_jwk_key_pair(),
        SigningAlg::PS256 => jws::PS256.generate_key_pair(2048)?.to_jwk_key_pair(),
        SigningAlg::ES256 => jws::ES256.generate_key_pair()?.to_jwk_key_pair(),
        SigningAlg::EdDSA | SigningAlg::Ed25519 => jws::EdDSA.generate_key_pair(EdCurve::Ed25519)?.to_jwk_key_pair(),
    };
    let kid = format!("{}-{}", alg.as_str().to_ascii_lowercase(), &crypto::random_token()[..16]);
    private.set_key_id(&kid);
    private.set_key_use("sig");
    private.set_algorithm(alg.as_str());
    // to_public_key keeps only the key material; the JWKS entry needs kid, use and alg too.
    let mut public = private.to_public_key()?;
    public.set_key_id(&kid);
    public.set_key_use("sig");
    public.set_algorithm(alg.as_str());
    Ok(SigningKey {
        kid,
        alg,
        private_jwk: private.to_string(),
        public_jwk: public.to_string(),
        created_at: now,
        retired_at: None,
        activates_at: now,
    })
}

fn signer(alg: SigningAlg, jwk: &Jwk) -> Result<Box<dyn JwsSigner>, josekit::JoseError> {
    Ok(match alg {
        SigningAlg::RS256 => Box::new(jws::RS256.signer_from_jwk(jwk)?),
        SigningAlg::PS256 => Box::new(jws::PS256.signer_from_jwk(jwk)?),
        SigningAlg::ES256 => Box::new(jws::ES256.signer_from_jwk(jwk)?),
        SigningAlg::EdDSA => Box::new(jws::EdDSA.signer_from_jwk(jwk)?),
        SigningAlg::Ed25519 => Box::new(Ed25519Signer(Box::new(jws::EdDSA.signer_from_jwk(&as_eddsa(jwk))?))),
    })
}

pub(crate) fn verifier(alg: SigningAlg, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, josekit::JoseError> {
    Ok(match alg {
        SigningAlg::RS256 => Box::new(jws::RS256.verifier_from_jwk(jwk)?),
        SigningAlg::PS256 => Box::new(jws::PS256.verifier_from_jwk(jwk)?),
        SigningAlg::ES256 => Box::new(jws::ES256.verifier_from_jwk(jwk)?),
        SigningAlg::EdDSA => Box::new(jws::EdDSA.verifier_from_jwk(jwk)?),
        SigningAlg::Ed25519 => Box::new(Ed25519Verifier(Box::new(jws::EdDSA.verifier_from_jwk(&as_eddsa(jwk))?))),
    })
}

/// The same key named with the polymorphic `EdDSA`, the only name josekit knows.
fn as_eddsa(jwk: &Jwk) -> Jwk {
    let mut jwk = jwk.clone();
    jwk.set_algorithm("EdDSA");
    jwk
}

/// RFC 9864 `Ed25519`: EdDSA over Ed25519 under its fully-specified name. josekit signs and verifies
/// the bytes; these wrappers only put the name in the header (and match it), which no JOSE crate in
/// use here does yet.
#[derive(Debug, Clone, Copy)]
struct Ed25519Name;

impl jws::JwsAlgorithm for Ed25519Name {
    fn name(&self) -> &str {
        "Ed25519"
    }

    fn box_clone(&self) -> Box<dyn jws::JwsAlgorithm> {
        Box::new(*self)
    }
}

#[derive(Debug, Clone)]
struct Ed25519Signer(Box<dyn JwsSigner>);

impl JwsSigner for Ed25519Signer {
    fn algorithm(&self) -> &dyn jws::JwsAlgorithm {
        &Ed25519Name
    }

    fn key_id(&self) -> Option<&str> {
        self.0.key_id()
    }

    fn signature_len(&self) -> usize {
        self.0.signature_len()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, josekit::JoseError> {
        self.0.sign(message)
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

#[derive(Debug, Clone)]
struct Ed25519Verifier(Box<dyn JwsVerifier>);

impl JwsVerifier for Ed25519Verifier {
    fn algorithm(&self) -> &dyn jws::JwsAlgorithm {
        &Ed25519Name
    }

    fn key_id(&self) -> Option<&str> {
        self.0.key_id()
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), josekit::JoseError> {
        self.0.verify(message, signature)
    }

    fn box_clone(&self) -> Box<dyn JwsVerifier> {
        Box::new(self.clone())
    }
}

/// The keys in use, parsed once: one current signer per algorithm, verifiers for every published key,
/// and the JWKS document serialized ahead of time.
pub struct KeyRing {
    current: HashMap<SigningAlg, Box<dyn JwsSigner>>,
    verifiers: HashMap<String, Box<dyn JwsVerifier>>,
    jwks_json: bytes::Bytes,
}

#[derive(Serialize)]
struct Jwks<'a> {
    keys: Vec<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Whether an older key of the same algorithm was succeeded by `key` (retired when it activates).
fn has_predecessor(keys: &[SigningKey], key: &SigningKey) -> bool {
    keys.iter().any(|k| k.alg == key.alg && k.kid != key.kid && k.retired_at.is_some())
}

impl KeyRing {
    /// Builds the ring from stored keys. Retired keys stay published for `publish_after_retire` seconds,
    /// so tokens they signed can still be verified until they expire. `encryption_keys` (public JWKs
    /// with `use` `enc`) are published beside them.
    pub fn from_keys(
        keys: &[SigningKey],
        now: Timestamp,
        publish_after_retire: i64,
        encryption_keys: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<Self, KeyError> {
        let mut current = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for key in keys {
            if key.retired_at.is_some_and(|t| t + publish_after_retire <= now) {
                continue;
            }
            // Published from the moment it is installed, before it signs (advance publication).
            let public = Jwk::from_bytes(&key.public_jwk)?;
            verifiers.insert(key.kid.clone(), verifier(key.alg, &public)?);
            published.push(public);
            if key.is_active(now) {
                current.insert(key.alg, signer(key.alg, &Jwk::from_bytes(&key.private_jwk)?)?);
            }
        }
        // An algorithm's first key signs as soon as it is known, even to a node whose clock runs behind
        // the one that made it: there is no older key to sign instead, and it is already published.
        for key in keys {
            if key.retired_at.is_none() && !current.contains_key(&key.alg) && !has_predecessor(keys, key) {
                current.insert(key.alg, signer(key.alg, &Jwk::from_bytes(&key.private_jwk)?)?);
            }
        }
        let jwks = Jwks { keys: published.iter().map(|k| k.as_ref()).chain(encryption_keys).collect() };
        let jwks_json = serde_json::to_vec(&jwks).expect("JWKS serializes").into();
        Ok(Self { current, verifiers, jwks_json })
    }

    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }

    /// Signs `claims` as a JWT with the current key for `alg` (RFC 7515 compact serialization).
    pub fn sign<T: Serialize>(&self, alg: SigningAlg, claims: &T) -> Result<String, KeyError> {
        self.sign_typed(alg, "JWT", claims)
    }

    /// Signs `claims` with the header `typ` naming what kind of JWT it is (RFC 8725 3.11), so that it
    /// cannot be taken for another kind.
    pub fn sign_typed<T: Serialize>(&self, alg: SigningAlg, typ: &str, claims: &T) -> Result<String, KeyError> {
        let signer = self.current.get(&alg).ok_or(KeyError::Missing(alg))?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        Ok(jws::serialize_compact(&payload, &header, signer.as_ref())?)
    }

    /// Verifies a JWS signed by one of this OP's published keys and returns its payload.
    pub fn verify_own(&self, token: &str) -> Result<Vec<u8>, josekit::JoseError> {
        let (payload, _) = jws::deserialize_compact_with_selector(token, |header| {
            Ok(header.key_id().and_then(|kid| self.verifiers.get(kid)).map(|v| v.as_ref()))
        })?;
        Ok(payload)
    }
}

/// A key set shared by request handlers and replaced whole when keys change (rotation on any node):
/// a request holds the set it started with.
pub struct Shared<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Shared<T> {
    pub fn new(keys: T) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(keys))))
    }

    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, keys: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}

/// The signing keys as handlers see them.
pub type SharedKeyRing = Shared<KeyRing>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies_and_is_published() {
        let keys: Vec<_> = SigningAlg::ALL.iter().map(|a| generate(*a, 100).unwrap()).collect();
        let ring = KeyRing::from_keys(&keys, 100, 3600, &[]).unwrap();
        for alg in SigningAlg::ALL {
            let jwt = ring.sign(*alg, &serde_json::json!({"sub": "x"})).unwrap();
            assert_eq!(ring.verify_own(&jwt).unwrap(), br#"{"sub":"x"}"#);
            let header =
                jws::JwsHeader::from_bytes(&crate::crypto::b64url_decode(jwt.split('.').next().unwrap()).unwrap())
                    .unwrap();
            assert_eq!(header.algorithm(), Some(alg.as_str()), "the header names the algorithm (RFC 9864)");
        }
        let jwks: serde_json::Value = serde_json::from_slice(&ring.jwks_json()).unwrap();
        let published = jwks["keys"].as_array().unwrap();
        assert_eq!(published.len(), SigningAlg::ALL.len());
        for k in published {
            assert!(k["kid"].is_string() && k["alg"].is_string());
            assert_eq!(k["use"], "sig");
            assert!(k.get("d").is_none(), "private parts must never be published");
        }
    }

    /// Hardening 21: a rotated-in key is published at once and signs only from its activation; its
    /// predecessor signs until then and stays published afterwards.
    #[test]
    fn a_new_key_is_published_before_it_signs() {
        let old = generate(SigningAlg::ES256, 0).unwrap();
        let mut new = generate(SigningAlg::ES256, 1000).unwrap();
        new.activates_at = 2000;
        let mut old_retiring = old.clone();
        old_retiring.retired_at = Some(2000);
        let keys = [old_retiring, new.clone()];
        let kid_of = |ring: &KeyRing| {
            let jwt = ring.sign(SigningAlg::ES256, &serde_json::json!({})).unwrap();
            let header = crate::crypto::b64url_decode(jwt.split('.').next().unwrap()).unwrap();
            jws::JwsHeader::from_bytes(&header).unwrap().key_id().unwrap().to_owned()
        };
        let before = KeyRing::from_keys(&keys, 1500, 3600, &[]).unwrap();
        let jwks = String::from_utf8_lossy(&before.jwks_json()).into_owned();
        assert!(jwks.contains(&new.kid) && jwks.contains(&old.kid), "both published ahead: {jwks}");
        assert_eq!(kid_of(&before), old.kid, "the old key signs until the new one activates");
        let after = KeyRing::from_keys(&keys, 2000, 3600, &[]).unwrap();
        assert_eq!(kid_of(&after), new.kid);
        assert!(String::from_utf8_lossy(&after.jwks_json()).contains(&old.kid), "still published after");
    }

    /// Nodes' clocks differ: a node whose clock is a second behind the node that made an algorithm's first
    /// key still signs with it (it used to have no current key until its next refresh: a 500).
    #[test]
    fn a_first_key_signs_at_once_on_a_node_whose_clock_is_behind() {
        let first = generate(SigningAlg::ES256, 1001).unwrap();
        let ring = KeyRing::from_keys(std::slice::from_ref(&first), 1000, 3600, &[]).unwrap();
        assert!(ring.sign(SigningAlg::ES256, &serde_json::json!({})).is_ok());
        // A successor waiting for its activation does not: its predecessor signs until then.
        let mut old = generate(SigningAlg::ES256, 0).unwrap();
        old.retired_at = Some(2000);
        let mut new = generate(SigningAlg::ES256, 1000).unwrap();
        new.activates_at = 2000;
        let ring = KeyRing::from_keys(&[old.clone(), new.clone()], 3000, 0, &[]).unwrap();
        assert!(ring.sign(SigningAlg::ES256, &serde_json::json!({})).is_ok(), "the successor after activation");
        let ring = KeyRing::from_keys(&[new], 1500, 0, &[]).unwrap();
        assert!(ring.sign(SigningAlg::ES256, &serde_json::json!({})).is_ok(), "a lone unretired key signs");
    }

    #[test]
    fn retired_keys_stay_published_for_the_window_only() {
        let mut old = generate(SigningAlg::ES256, 0).unwrap();
        old.retired_at = Some(1000);
        let new = generate(SigningAlg::ES256, 1000).unwrap();
        let keys = [old.clone(), new];
        let ring = KeyRing::from_keys(&keys, 1500, 3600, &[]).unwrap();
        assert!(String::from_utf8_lossy(&ring.jwks_json()).contains(&old.kid));
        let ring = KeyRing::from_keys(&keys, 5000, 3600, &[]).unwrap();
        assert!(!String::from_utf8_lossy(&ring.jwks_json()).contains(&old.kid));
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let keys = [generate(SigningAlg::RS256, 0).unwrap()];
        let ring = KeyRing::from_keys(&keys, 0, 60, &[]).unwrap();
        let jwt = ring.sign(SigningAlg::RS256, &serde_json::json!({"sub": "a"})).unwrap();
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = crypto::b64url(br#"{"sub":"b"}"#);
        parts[1] = &forged;
        assert!(ring.verify_own(&parts.join(".")).is_err());
        assert!(ring.verify_own("garbage").is_err());
    }
}
