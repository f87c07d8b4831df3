//! Signed and encrypted responses (Core 10.2, Registration 2): ID Tokens signed then encrypted to the
//! client's key, and UserInfo as a signed and/or encrypted JWT (Core 5.3.2), each decrypted here with
//! the client's private key and verified against the OP's JWKS.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Browser, TestOp, VERIFIER, exchange_code, fragment, json, query};
use josekit::jwe;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws;
use oxid::model::{ContentEncryption, Encryption, KeyEncryptionAlg, ResponseType, SigningAlg};
use serde_json::{Value, json};

/// The client's encryption keys: an RSA and an EC P-256 key, private halves kept here.
struct ClientKeys {
    rsa: Jwk,
    ec: Jwk,
}

impl ClientKeys {
    fn new() -> Self {
        let mut rsa = Jwk::generate_rsa_key(2048).unwrap();
        rsa.set_key_id("enc-rsa");
        rsa.set_key_use("enc");
        let mut ec = Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256).unwrap();
        ec.set_key_id("enc-ec");
        ec.set_key_use("enc");
        Self { rsa, ec }
    }

    fn public_jwks(&self) -> String {
        let public = |k: &Jwk| {
            let mut public = k.to_public_key().unwrap();
            public.set_key_id(k.key_id().unwrap());
            public.set_key_use("enc");
            Value::Object(public.as_ref().clone())
        };
        json!({"keys": [public(&self.rsa), public(&self.ec)]}).to_string()
    }

    fn decrypt(&self, jwe_compact: &str, alg: KeyEncryptionAlg) -> (Vec<u8>, josekit::jwe::JweHeader) {
        assert_eq!(jwe_compact.split('.').count(), 5, "a JWE: {jwe_compact}");
        let decrypter: Box<dyn jwe::JweDecrypter> = match alg {
            KeyEncryptionAlg::RsaOaep => Box::new(jwe::RSA_OAEP.decrypter_from_jwk(&self.rsa).unwrap()),
            KeyEncryptionAlg::RsaOaep256 => Box::new(jwe::RSA_OAEP_256.decrypter_from_jwk(&self.rsa).unwrap()),
            KeyEncryptionAlg::EcdhEs => Box::new(jwe::ECDH_ES.decrypter_from_jwk(&self.ec).unwrap()),
            KeyEncryptionAlg::EcdhEsA128kw => Box::new(jwe::ECDH_ES_A128KW.decrypter_from_jwk(&self.ec).unwrap()),
            KeyEncryptionAlg::EcdhEsA256kw => Box::new(jwe::ECDH_ES_A256KW.decrypter_from_jwk(&self.ec).unwrap()),
        };
        jwe::deserialize_compact(jwe_compact, decrypter.as_ref()).expect("decrypts with the client's key")
    }
}

/// Verifies a JWS against the OP's published keys; returns its claims.
async fn verify_with_op_keys(op: &TestOp, jwt: &str) -> Value {
    let jwks = reqwest::get(op.url("/jwks.json")).await.unwrap().text().await.unwrap();
    let set = JwkSet::from_bytes(&jwks).unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    let key = set.get(header["kid"].as_str().unwrap())[0];
    let verifier: Box<dyn jws::JwsVerifier> = match header["alg"].as_str().unwrap() {
        "RS256" => Box::new(jws::RS256.verifier_from_jwk(key).unwrap()),
        "ES256" => Box::new(jws::ES256.verifier_from_jwk(key).unwrap()),
        other => panic!("unexpected alg {other}"),
    };
    let (payload, _) = jws::deserialize_compact(jwt, verifier.as_ref()).expect("signed by the OP");
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn encrypted_id_token_and_signed_encrypted_userinfo() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let keys = ClientKeys::new();
    let jwks = keys.public_jwks();
    let id_token_enc = Encryption { alg: KeyEncryptionAlg::RsaOaep256, enc: ContentEncryption::A256Gcm };
    let userinfo_enc = Encryption { alg: KeyEncryptionAlg::EcdhEsA128kw, enc: ContentEncryption::A128CbcHs256 };
    let (_, secret) = op
        .add_client("secretive", oxid::model::ClientAuthMethod::ClientSecretBasic, |c| {
            c.skip_consent = true;
            c.jwks = Some(jwks);
            c.metadata.id_token_encryption = Some(id_token_enc);
            c.metadata.userinfo_signed_response_alg = Some(SigningAlg::ES256);
            c.metadata.userinfo_encryption = Some(userinfo_enc);
        })
        .await;
    let callback = Browser::new(&op).sign_in(&op.authorize_url("secretive", ""), "alice").await;
    let (status, tokens) =
        json(exchange_code(&op, "secretive", &secret.unwrap(), &query(&callback)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");

    // The ID Token: a JWE to the client's RSA key, around a JWT signed by the OP (Core 10.2).
    let (inner, header) = keys.decrypt(tokens["id_token"].as_str().unwrap(), KeyEncryptionAlg::RsaOaep256);
    assert_eq!(header.content_type(), Some("JWT"), "nested JWT");
    assert_eq!(header.content_encryption(), Some("A256GCM"));
    assert_eq!(header.key_id(), Some("enc-rsa"));
    let claims = verify_with_op_keys(&op, std::str::from_utf8(&inner).unwrap()).await;
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("sub-alice"), Some("secretive")));
    assert_eq!(claims["nonce"], "n0nce");
    assert!(claims["at_hash"].is_string());

    // UserInfo: application/jwt, encrypted to the EC key, signed ES256 inside, with iss and aud.
    let response = common::userinfo(&op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwt");
    let body = response.text().await.unwrap();
    let (inner, header) = keys.decrypt(&body, KeyEncryptionAlg::EcdhEsA128kw);
    assert_eq!(header.content_type(), Some("JWT"));
    let info = verify_with_op_keys(&op, std::str::from_utf8(&inner).unwrap()).await;
    assert_eq!(info["sub"], "sub-alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["iss"], op.issuer, "Core 5.3.2");
    assert_eq!(info["aud"], "secretive");
}

/// Encrypted ID Tokens from the authorization endpoint too (implicit), and UserInfo encrypted without
/// a signature: the JWE holds the JSON claims.
#[tokio::test]
async fn implicit_encrypted_id_token_and_encrypted_only_userinfo() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let keys = ClientKeys::new();
    let jwks = keys.public_jwks();
    op.add_client("spa", oxid::model::ClientAuthMethod::ClientSecretBasic, |c| {
        c.skip_consent = true;
        c.jwks = Some(jwks);
        c.metadata.response_types = vec![ResponseType::IdTokenToken];
        c.metadata.id_token_encryption =
            Some(Encryption { alg: KeyEncryptionAlg::EcdhEs, enc: ContentEncryption::A128Gcm });
        c.metadata.userinfo_encryption =
            Some(Encryption { alg: KeyEncryptionAlg::RsaOaep, enc: ContentEncryption::A256CbcHs512 });
    })
    .await;
    let url = op.authorize_url("spa", "").replace("response_type=code", "response_type=id_token%20token");
    let p = fragment(&Browser::new(&op).sign_in(&url, "alice").await);
    let (inner, _) = keys.decrypt(&p["id_token"], KeyEncryptionAlg::EcdhEs);
    let claims = verify_with_op_keys(&op, std::str::from_utf8(&inner).unwrap()).await;
    assert_eq!(claims["nonce"], "n0nce");
    assert!(claims["at_hash"].is_string());

    let body = common::userinfo(&op, &p["access_token"]).await.text().await.unwrap();
    let (inner, header) = keys.decrypt(&body, KeyEncryptionAlg::RsaOaep);
    assert_eq!(header.content_type(), None, "not a nested JWT");
    let info: Value = serde_json::from_slice(&inner).unwrap();
    assert_eq!(info["sub"], "sub-alice");
}

/// A client registered for encryption without a usable key gets a clear error, never a 500.
#[tokio::test]
async fn encryption_without_a_key_is_a_clear_error() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op
        .add_client("keyless", oxid::model::ClientAuthMethod::ClientSecretBasic, |c| {
            c.skip_consent = true;
            c.metadata.id_token_encryption =
                Some(Encryption { alg: KeyEncryptionAlg::RsaOaep, enc: ContentEncryption::A128Gcm });
        })
        .await;
    let callback = Browser::new(&op).sign_in(&op.authorize_url("keyless", ""), "alice").await;
    let (status, body) =
        json(exchange_code(&op, "keyless", &secret.unwrap(), &query(&callback)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");

    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    for (name, value) in [
        ("id_token_encryption_alg_values_supported", "RSA-OAEP-256"),
        ("id_token_encryption_enc_values_supported", "A128CBC-HS256"),
        ("userinfo_signing_alg_values_supported", "ES256"),
        ("userinfo_encryption_alg_values_supported", "ECDH-ES+A128KW"),
        ("userinfo_encryption_enc_values_supported", "A256GCM"),
    ] {
        assert!(doc[name].as_array().unwrap().contains(&json!(value)), "{name}");
    }
}
