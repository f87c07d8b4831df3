//! ID Token contents (Core 2, 3.1.3.6) and the `at_hash` / `c_hash` values.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::crypto;
use crate::model::{SigningAlg, Timestamp};

/// The claims of an ID Token. Optional ones are left out when absent.
#[derive(Debug, Serialize)]
pub struct IdTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: Timestamp,
    pub iat: Timestamp,
    pub auth_time: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    pub acr: &'a str,
    pub amr: &'a [String],
    /// Core 2: the party to which the ID Token was issued.
    pub azp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// Core 3.3.2.11: the hash of the code issued alongside (hybrid flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    /// Front-Channel Logout 1.0 3 / Back-Channel Logout 1.0 2.1: the browser session.
    pub sid: &'a str,
    /// User claims released in the ID Token itself (Core 5.4, 5.5).
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

/// Core 3.1.3.6 `at_hash` (and 3.3.2.11 `c_hash`): the left half of the hash of the ASCII token, using
/// the hash of the JWS algorithm, base64url encoded. Ed25519 signs with SHA-512.
pub fn half_hash(alg: SigningAlg, token: &str) -> String {
    match alg {
        SigningAlg::RS256 | SigningAlg::ES256 | SigningAlg::PS256 => {
            crypto::b64url(&crypto::sha256(token.as_bytes())[..16])
        }
        // Ed25519 hashes with SHA-512 (Core 3.1.3.6: the hash of the signature algorithm).
        SigningAlg::EdDSA | SigningAlg::Ed25519 => crypto::b64url(&crypto::sha512(token.as_bytes())[..32]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_core_example() {
        // Core Appendix A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" -> at_hash
        // "77QmUPtjPfzWtF2AnpK9RQ" (RS256).
        assert_eq!(
            half_hash(SigningAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(half_hash(SigningAlg::EdDSA, "x").len(), 43);
    }
}
