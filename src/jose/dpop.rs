//! DPoP proofs (RFC 9449 4): a JWT the client signs with a key it holds, whose public half travels in
//! the header; a token bound to that key (by its RFC 7638 thumbprint) is useless without it.

use josekit::jwk::Jwk;
use josekit::jws::{self, JwsHeader};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys;
use crate::crypto;
use crate::model::{SigningAlg, Timestamp};

/// The JWS algorithms accepted for proofs (`dpop_signing_alg_values_supported`): asymmetric only.
pub const ALGORITHMS: [SigningAlg; 4] = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::PS256, SigningAlg::EdDSA];
/// How far a proof's `iat` may lie from the OP's clock, in seconds (RFC 9449 11.1: a short window).
pub const IAT_WINDOW: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProof(pub &'static str);

/// What a valid proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url): what tokens are bound to.
    pub jkt: String,
    pub jti: String,
    pub iat: Timestamp,
    pub nonce: Option<String>,
}

/// What the proof must be for: the request's method and URL (without query and fragment), and the
/// access token presented with it (its `ath`, RFC 9449 4.2), if any.
pub struct Expected<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub access_token: Option<&'a str>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// RFC 7638: the SHA-256 thumbprint of a public JWK, over its required members in lexicographic order.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for member in members {
        canonical.insert((*member).to_owned(), Value::String(jwk.get(*member)?.as_str()?.to_owned()));
    }
    // serde_json's map is ordered by key (no `preserve_order`), and strings are written without spaces.
    let json = serde_json::to_string(&canonical).ok()?;
    Some(crypto::b64url(&crypto::sha256(json.as_bytes())))
}

/// The URL as `htu` compares it (RFC 9449 4.3 item 9): without query and fragment.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Verifies a DPoP proof (RFC 9449 4.3): a `dpop+jwt` signed with an accepted asymmetric algorithm by
/// the public key in its header, for this method and URL, issued within the window, with the
/// presented token's hash. Replay (`jti`) and the server nonce are the caller's to check.
pub fn verify(proof: &str, expected: &Expected<'_>, now: Timestamp) -> Result<Proof, InvalidProof> {
    let malformed = InvalidProof("the DPoP proof is not a valid JWT");
    let header_part = proof.split('.').next().ok_or(malformed.clone())?;
    let header = JwsHeader::from_bytes(&crypto::b64url_decode(header_part).ok_or(malformed.clone())?)
        .map_err(|_| malformed.clone())?;
    if header.token_type() != Some("dpop+jwt") {
        return Err(InvalidProof("the DPoP proof's typ must be dpop+jwt"));
    }
    let alg: SigningAlg = header
        .algorithm()
        .and_then(|a| a.parse().ok())
        .filter(|a| ALGORITHMS.contains(a))
        .ok_or(InvalidProof("the DPoP proof's alg is not supported"))?;
    let jwk_map = match header.claim("jwk") {
        Some(Value::Object(map)) => map.clone(),
        _ => return Err(InvalidProof("the DPoP proof has no jwk")),
    };
    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|private| jwk_map.contains_key(*private)) {
        return Err(InvalidProof("the DPoP proof's jwk holds a private key"));
    }
    let jkt = thumbprint(&jwk_map).ok_or(InvalidProof("the DPoP proof's jwk is not a usable public key"))?;
    let jwk = Jwk::from_map(jwk_map).map_err(|_| InvalidProof("the DPoP proof's jwk is not a usable public key"))?;
    let verifier = keys::verifier(alg, &jwk).map_err(|_| InvalidProof("the DPoP proof's jwk does not fit its alg"))?;
    let (payload, _) = jws::deserialize_compact(proof, verifier.as_ref())
        .map_err(|_| InvalidProof("the DPoP proof's signature is invalid"))?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| malformed)?;
    let jti =
        claims.jti.filter(|j| !j.is_empty() && j.len() <= 256).ok_or(InvalidProof("the DPoP proof needs a jti"))?;
    if claims.htm.as_deref() != Some(expected.htm) {
        return Err(InvalidProof("the DPoP proof's htm is not this request's method"));
    }
    if claims.htu.as_deref().map(without_query) != Some(without_query(expected.htu)) {
        return Err(InvalidProof("the DPoP proof's htu is not this request's URL"));
    }
    let iat = claims.iat.ok_or(InvalidProof("the DPoP proof needs an iat"))?;
    if (iat - now).abs() > IAT_WINDOW {
        return Err(InvalidProof("the DPoP proof's iat is outside the accepted window"));
    }
    if let Some(token) = expected.access_token {
        let ath = crypto::b64url(&crypto::sha256(token.as_bytes()));
        if claims.ath.as_deref() != Some(ath.as_str()) {
            return Err(InvalidProof("the DPoP proof's ath is not the access token's hash"));
        }
    }
    Ok(Proof { jkt, jti, iat, nonce: claims.nonce })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> (jws::alg::ecdsa::EcdsaJwsSigner, Map<String, Value>) {
        let pair = jws::ES256.generate_key_pair().unwrap();
        let public = pair.to_jwk_public_key().as_ref().clone();
        (jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap(), public)
    }

    fn proof(signer: &dyn jws::JwsSigner, jwk: &Map<String, Value>, typ: &str, claims: Value) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_claim("jwk", Some(Value::Object(jwk.clone()))).unwrap();
        jws::serialize_compact(claims.to_string().as_bytes(), &header, signer).unwrap()
    }

    const HTU: &str = "https://op.example/token";

    fn expected(token: Option<&str>) -> Expected<'_> {
        Expected { htm: "POST", htu: HTU, access_token: token }
    }

    #[test]
    fn rfc_7638_thumbprint_example() {
        // RFC 7638 3.1's RSA key and its thumbprint.
        let jwk = json!({"kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(thumbprint(jwk.as_object().unwrap()).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn a_proof_is_checked_against_the_request() {
        let (signer, jwk) = key();
        let claims = |htm: &str, htu: &str, iat: i64| json!({"jti": "j1", "htm": htm, "htu": htu, "iat": iat});
        let good = proof(&signer, &jwk, "dpop+jwt", claims("POST", "https://op.example/token?x=1", 1000));
        let verified = verify(&good, &expected(None), 1010).unwrap();
        assert_eq!(verified.jkt, thumbprint(&jwk).unwrap());
        let refused = |p: &str, token: Option<&str>| verify(p, &expected(token), 1000).unwrap_err().0;
        assert!(refused(&proof(&signer, &jwk, "JWT", claims("POST", HTU, 1000)), None).contains("typ"));
        assert!(refused(&proof(&signer, &jwk, "dpop+jwt", claims("GET", HTU, 1000)), None).contains("htm"));
        assert!(
            refused(&proof(&signer, &jwk, "dpop+jwt", claims("POST", "https://op.example/other", 1000)), None)
                .contains("htu")
        );
        assert!(refused(&proof(&signer, &jwk, "dpop+jwt", claims("POST", HTU, 800)), None).contains("iat"));
        // The access token's hash must be there when a token is presented.
        assert!(refused(&good, Some("token")).contains("ath"));
        let ath = crypto::b64url(&crypto::sha256(b"token"));
        let with_ath =
            proof(&signer, &jwk, "dpop+jwt", json!({"jti": "j2", "htm": "POST", "htu": HTU, "iat": 1000, "ath": ath}));
        assert!(verify(&with_ath, &expected(Some("token")), 1000).is_ok());
        // Signed by another key than the one in the header.
        let (other, _) = key();
        assert!(refused(&proof(&other, &jwk, "dpop+jwt", claims("POST", HTU, 1000)), None).contains("signature"));
        // A symmetric key or a private one in the header.
        let mut private = jwk.clone();
        private.insert("d".into(), json!("c2VjcmV0"));
        assert!(refused(&proof(&signer, &private, "dpop+jwt", claims("POST", HTU, 1000)), None).contains("private"));
    }
}
