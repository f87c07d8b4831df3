//! JWT client assertions: `client_secret_jwt` and `private_key_jwt` (Core 9, RFC 7523 3).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::client_keys::{self, Audience, CLOCK_SKEW};
use crate::crypto::{self, HmacHash};
use crate::model::{Client, ClientAuthMethod, Timestamp};

/// Why an assertion was refused; reported to the client as `invalid_client`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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

/// The longest an assertion may be valid for, in seconds (Authlib signs for an hour by default).
const MAX_ASSERTION_LIFETIME: i64 = 86_400;

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

/// The `alg` of a JWS's (unverified) header.
fn header_alg(jws: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
    }
    let header = URL_SAFE_NO_PAD.decode(jws.split('.').next()?).ok()?;
    serde_json::from_slice::<Header>(&header).ok().map(|h| h.alg)
}

/// The payload of a `client_secret_jwt` assertion whose HMAC (HS256, HS384 or HS512) under `secret` is
/// right. Checked here rather than by the JOSE library so that the MAC is compared in constant time.
fn verify_hmac(assertion: &str, secret: &[u8]) -> Result<Vec<u8>, AssertionError> {
    let invalid = AssertionError("client assertion signature is invalid");
    let (signed, signature) = assertion.rsplit_once('.').ok_or(invalid.clone())?;
    let (header, payload) = signed.split_once('.').ok_or(invalid.clone())?;
    let header: HmacHeader =
        URL_SAFE_NO_PAD.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or(invalid.clone())?;
    let hash = match header.alg.as_str() {
        "HS256" => HmacHash::Sha256,
        "HS384" => HmacHash::Sha384,
        "HS512" => HmacHash::Sha512,
        _ => return Err(AssertionError("client_secret_jwt assertions are signed with HS256, HS384 or HS512")),
    };
    // RFC 7518 3.2: the key must be at least as long as the hash output.
    if secret.len() < hash.output_len() {
        return Err(AssertionError("the client secret is too short for this HMAC algorithm"));
    }
    let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid.clone())?;
    if !crypto::constant_time_eq(&crypto::hmac(hash, secret, signed.as_bytes()), &given) {
        return Err(invalid);
    }
    URL_SAFE_NO_PAD.decode(payload).map_err(|_| AssertionError("client assertion claims are malformed"))
}

#[derive(Deserialize)]
struct HmacHeader {
    alg: String,
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
    // Registration 2 `token_endpoint_auth_signing_alg`: assertions signed otherwise are refused.
    if let Some(required) = client.metadata.token_endpoint_auth_signing_alg {
        if header_alg(assertion).as_deref() != Some(required.as_str()) {
            return Err(AssertionError("client assertion is not signed with the registered algorithm"));
        }
    }
    let payload = match client.auth_method {
        ClientAuthMethod::ClientSecretJwt => {
            let secret = client.secret_for_jwt.as_deref().ok_or(AssertionError("client has no secret"))?;
            verify_hmac(assertion, secret.as_bytes())?
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let jwks = jwks.ok_or(AssertionError("client has no registered keys"))?;
            let verifiers = client_keys::verifiers(jwks).map_err(AssertionError)?;
            client_keys::verify(assertion, &verifiers).ok_or(AssertionError("client assertion signature is invalid"))?
        }
        _ => return Err(AssertionError("client does not authenticate with a JWT")),
    };
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
    // Saturating: `exp` and `nbf` come from the client and may be any i64.
    if exp.saturating_add(CLOCK_SKEW) <= now {
        return Err(AssertionError("client assertion has expired"));
    }
    // RFC 7523 3 item 4: an `exp` unreasonably far ahead is refused; it also bounds how long the
    // `jti` must be remembered.
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME) {
        return Err(AssertionError("client assertion exp is too far in the future"));
    }
    if claims.nbf.is_some_and(|nbf| nbf.saturating_sub(CLOCK_SKEW) > now) {
        return Err(AssertionError("client assertion is not yet valid"));
    }
    let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256);
    let jti = jti.ok_or(AssertionError("client assertion jti is required"))?;
    Ok(VerifiedAssertion { jti, exp: exp.saturating_add(CLOCK_SKEW) })
}

#[cfg(test)]
mod tests {
    use josekit::jws::{self, JwsHeader};
    use serde_json::{Value, json};

    use super::*;
    use crate::model::{GrantType, SigningAlg};

    const TOKEN_ENDPOINT: &str = "https://op.example/token";
    const NOW: Timestamp = 1_800_000_000;

    fn hmac_client(secret: &str) -> Client {
        Client {
            id: "hmac".parse().unwrap(),
            name: "HMAC".into(),
            secret_hash: None,
            secret_for_jwt: Some(secret.to_owned()),
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            auth_method: ClientAuthMethod::ClientSecretJwt,
            id_token_signed_response_alg: SigningAlg::RS256,
            jwks: None,
            skip_consent: false,
            created_at: 0,
            metadata: Default::default(),
        }
    }

    fn claims() -> Value {
        json!({"iss": "hmac", "sub": "hmac", "aud": TOKEN_ENDPOINT, "jti": "j1", "exp": NOW + 60})
    }

    fn sign(alg: &str, secret: &str, claims: &Value) -> String {
        let signer = match alg {
            "HS256" => jws::HS256.signer_from_bytes(secret),
            "HS384" => jws::HS384.signer_from_bytes(secret),
            _ => jws::HS512.signer_from_bytes(secret),
        }
        .unwrap();
        jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), &signer).unwrap()
    }

    fn check(client: &Client, assertion: &str) -> Result<VerifiedAssertion, AssertionError> {
        verify(assertion, client, None, &[TOKEN_ENDPOINT], NOW)
    }

    #[test]
    fn every_advertised_hmac_works_with_a_generated_secret() {
        let secret = crypto::random_client_secret();
        let client = hmac_client(&secret);
        for alg in ["HS256", "HS384", "HS512"] {
            assert_eq!(check(&client, &sign(alg, &secret, &claims())).unwrap().jti, "j1", "{alg}");
        }
        // A changed MAC, a MAC under another secret, a truncated MAC.
        let good = sign("HS256", &secret, &claims());
        let flipped = format!("{}{}", &good[..good.len() - 1], if good.ends_with('A') { 'B' } else { 'A' });
        let other = sign("HS256", &crypto::random_client_secret(), &claims());
        for bad in [flipped, other, good[..good.len() - 10].to_owned(), "a.b".into(), "a.b.c".into()] {
            assert!(check(&client, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_shorter_than_the_hash_is_refused_rfc_7518_3_2() {
        let secret = crypto::random_token(); // 43 bytes: enough for HS256 only
        let client = hmac_client(&secret);
        assert!(check(&client, &sign("HS256", &secret, &claims())).is_ok());
        for (alg, hash) in [("HS384", HmacHash::Sha384), ("HS512", HmacHash::Sha512)] {
            // Made by hand: josekit refuses to sign with so short a key, and the OP must refuse to verify.
            let signed = format!(
                "{}.{}",
                crypto::b64url(json!({"alg": alg}).to_string().as_bytes()),
                crypto::b64url(claims().to_string().as_bytes())
            );
            let mac = crypto::b64url(&crypto::hmac(hash, secret.as_bytes(), signed.as_bytes()));
            let err = check(&client, &format!("{signed}.{mac}")).unwrap_err();
            assert_eq!(err, AssertionError("the client secret is too short for this HMAC algorithm"), "{alg}");
        }
    }

    #[test]
    fn extreme_exp_and_nbf_neither_overflow_nor_pass() {
        let secret = crypto::random_client_secret();
        let client = hmac_client(&secret);
        let with = |name: &str, value: i64| {
            let mut c = claims();
            c[name] = json!(value);
            check(&client, &sign("HS256", &secret, &c))
        };
        assert_eq!(with("exp", i64::MAX).unwrap_err(), AssertionError("client assertion exp is too far in the future"));
        assert_eq!(with("exp", i64::MIN).unwrap_err(), AssertionError("client assertion has expired"));
        assert_eq!(with("nbf", i64::MAX).unwrap_err(), AssertionError("client assertion is not yet valid"));
        assert!(with("nbf", i64::MIN).is_ok());
        assert_eq!(with("exp", NOW + 86_400).unwrap().exp, NOW + 86_400 + CLOCK_SKEW);
    }
}
