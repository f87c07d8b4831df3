//! Encrypting responses to a client (Core 10.2): a JWE to one of the client's registered public keys.
//! Signed content is nested (sign, then encrypt, with `cty` `JWT`).

use josekit::jwe::{self, JweEncrypter, JweHeader};
use josekit::jwk::{Jwk, JwkSet};

use crate::model::{ContentEncryption, Encryption, KeyEncryptionAlg};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct EncryptionError(pub &'static str);

fn encrypter(alg: KeyEncryptionAlg, jwk: &Jwk) -> Option<Box<dyn JweEncrypter>> {
    let usable = |key_type: &str| jwk.key_type() == key_type;
    Some(match alg {
        KeyEncryptionAlg::RsaOaep if usable("RSA") => Box::new(jwe::RSA_OAEP.encrypter_from_jwk(jwk).ok()?),
        KeyEncryptionAlg::RsaOaep256 if usable("RSA") => Box::new(jwe::RSA_OAEP_256.encrypter_from_jwk(jwk).ok()?),
        KeyEncryptionAlg::EcdhEs if usable("EC") || usable("OKP") => {
            Box::new(jwe::ECDH_ES.encrypter_from_jwk(jwk).ok()?)
        }
        KeyEncryptionAlg::EcdhEsA128kw if usable("EC") || usable("OKP") => {
            Box::new(jwe::ECDH_ES_A128KW.encrypter_from_jwk(jwk).ok()?)
        }
        KeyEncryptionAlg::EcdhEsA256kw if usable("EC") || usable("OKP") => {
            Box::new(jwe::ECDH_ES_A256KW.encrypter_from_jwk(jwk).ok()?)
        }
        _ => return None,
    })
}

/// Encrypts `payload` to the first key in `jwks` usable for `encryption` (a key for `enc` use, or
/// without a stated use, whose `alg` if stated matches). `nested_jwt` marks a signed JWT inside.
pub fn encrypt(
    payload: &[u8],
    nested_jwt: bool,
    encryption: Encryption,
    jwks: &str,
) -> Result<String, EncryptionError> {
    let set = JwkSet::from_bytes(jwks).map_err(|_| EncryptionError("the client's keys are unreadable"))?;
    let (jwk, encrypter) = set
        .keys()
        .into_iter()
        .filter(|k| k.key_use().is_none_or(|u| u == "enc"))
        .filter(|k| k.algorithm().is_none_or(|a| a == encryption.alg.as_str()))
        .find_map(|k| encrypter(encryption.alg, k).map(|e| (k, e)))
        .ok_or(EncryptionError("the client has no key for its registered encryption algorithm"))?;
    let mut header = JweHeader::new();
    header.set_content_encryption(encryption.enc.as_str());
    if let Some(kid) = jwk.key_id() {
        header.set_key_id(kid);
    }
    if nested_jwt {
        header.set_content_type("JWT");
    }
    jwe::serialize_compact(payload, &header, encrypter.as_ref()).map_err(|e| {
        tracing::warn!(error = %e, "JWE encryption failed");
        EncryptionError("encryption to the client's key failed")
    })
}

/// What discovery advertises.
pub fn algorithms() -> Vec<&'static str> {
    KeyEncryptionAlg::ALL.iter().map(|a| a.as_str()).collect()
}

pub fn content_encryptions() -> Vec<&'static str> {
    ContentEncryption::ALL.iter().map(|e| e.as_str()).collect()
}
