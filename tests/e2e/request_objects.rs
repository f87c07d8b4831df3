//! Request objects (Core 6, RFC 9101): by value (`request`) and by reference (`request_uri`), signed
//! with the client's keys (inline or at its `jwks_uri`) or unsigned where the client registered `none`;
//! their values win over the query's (Core 6.3.3); every check has its negative case.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Browser, CHALLENGE, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, query, urlencode};
use josekit::jws::{self, JwsHeader};
use oxid::model::{ClientAuthMethod, RequestObjectAlg};
use serde_json::{Value, json};

struct ClientKey {
    signer: jws::alg::ecdsa::EcdsaJwsSigner,
    jwks: String,
}

fn client_key() -> ClientKey {
    let pair = jws::ES256.generate_key_pair().unwrap();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("rp-1");
    public.set_key_use("sig");
    let mut signer = jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap();
    signer.set_key_id("rp-1");
    ClientKey { signer, jwks: json!({"keys": [Value::Object(public.as_ref().clone())]}).to_string() }
}

/// Hardening 13 (RFC 9101 6.1, 6.2): when every parameter is inside the object (as node openid-client
/// sends it) and the object fails verification, the error is `invalid_request_object`, on a page: the
/// redirect_uri inside cannot be trusted.
#[tokio::test]
async fn a_failing_object_carrying_the_only_redirect_uri_is_an_error_page() {
    let (op, _, _) = setup().await;
    let forged = sign(&client_key(), &request_claims(&op, "rp"));
    let url = format!("{}/authorize?client_id=rp&request={forged}", op.issuer);
    let page = Browser::new(&op).get(&url).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("invalid_request_object"), "{}", page.body);
    assert!(page.body.contains("signature"), "{}", page.body);
}

/// A request object signed without a `kid`, as node openid-client does for a client with one key.
#[tokio::test]
async fn a_request_object_without_kid_is_accepted() {
    let (op, key, secret) = setup().await;
    let mut kidless = key.signer.clone();
    kidless.remove_key_id();
    let jwt = jws::serialize_compact(request_claims(&op, "rp").to_string().as_bytes(), &JwsHeader::new(), &kidless);
    let url = authorize_url(&op, "rp", &format!("&request={}", jwt.unwrap()));
    sign_in_with_object(&op, "rp", &secret, &url).await;
}

fn sign(key: &ClientKey, claims: &Value) -> String {
    jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), &key.signer).unwrap()
}

fn unsigned(claims: &Value) -> String {
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// The request an RP would put in its request object.
fn request_claims(op: &TestOp, client_id: &str) -> Value {
    json!({
        "iss": client_id,
        "aud": op.issuer,
        "exp": oxid::model::now() + 300,
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "from-the-object",
        "nonce": "object-nonce",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "max_age": 3600,
        "claims": {"id_token": {"email": null}},
    })
}

/// The query that carries a request object: OAuth 2.0 still needs response_type and client_id
/// (Core 6.1), and its other values lose to the object's.
fn authorize_url(op: &TestOp, client_id: &str, extra: &str) -> String {
    format!(
        "{}/authorize?response_type=code&client_id={client_id}&scope=openid&state=from-the-query\
         &redirect_uri={}{extra}",
        op.issuer,
        urlencode(REDIRECT_URI)
    )
}

async fn serve(path: &'static str, body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(path, axum::routing::get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}{path}")
}

async fn setup() -> (TestOp, ClientKey, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let key = client_key();
    let jwks = key.jwks.clone();
    let (_, secret) = op
        .add_client("rp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.jwks = Some(jwks);
            c.skip_consent = true;
        })
        .await;
    (op, key, secret.unwrap())
}

/// Signs in with `url` and redeems the code; the request object's state, nonce and claims must show.
async fn sign_in_with_object(op: &TestOp, client_id: &str, secret: &str, url: &str) {
    let callback = Browser::new(op).sign_in(url, "alice").await;
    let q = query(&callback);
    assert_eq!(q["state"], "from-the-object", "the object's value wins (Core 6.3.3)");
    let (status, tokens) = json(exchange_code(op, client_id, secret, &q["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = common::jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["nonce"], "object-nonce");
    assert_eq!(claims["email"], "alice@example.com", "the object's claims parameter was honoured");
}

#[tokio::test]
async fn signed_request_object_by_value() {
    let (op, key, secret) = setup().await;
    let jwt = sign(&key, &request_claims(&op, "rp"));
    sign_in_with_object(&op, "rp", &secret, &authorize_url(&op, "rp", &format!("&request={jwt}"))).await;
}

#[tokio::test]
async fn request_object_by_reference_with_keys_at_a_jwks_uri() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let key = client_key();
    let jwks_uri = serve("/jwks.json", key.jwks.clone()).await;
    let request_uri = serve("/request.jwt", sign(&key, &request_claims(&op, "rp"))).await;
    let registered = request_uri.clone();
    let (_, secret) = op
        .add_client("rp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.metadata.jwks_uri = Some(jwks_uri);
            c.metadata.request_uris = vec![registered];
            c.skip_consent = true;
        })
        .await;
    let secret = secret.unwrap();
    let url = authorize_url(&op, "rp", &format!("&request_uri={}", urlencode(&request_uri)));
    sign_in_with_object(&op, "rp", &secret, &url).await;
    // Core 6.2: the fragment (a content hash, say) is not part of the comparison with the registration.
    let with_fragment = format!("{request_uri}#sha256-of-the-object");
    let url = authorize_url(&op, "rp", &format!("&request_uri={}", urlencode(&with_fragment)));
    sign_in_with_object(&op, "rp", &secret, &url).await;

    // Core 6.2: only registered request_uris are fetched.
    let other = serve("/other.jwt", sign(&key, &request_claims(&op, "rp"))).await;
    let page = Browser::new(&op).get(&authorize_url(&op, "rp", &format!("&request_uri={}", urlencode(&other)))).await;
    assert_eq!(query(&page.location.unwrap())["error"], "invalid_request_uri");
}

#[tokio::test]
async fn unsigned_request_objects_only_where_registered() {
    let (op, _, _) = setup().await;
    let (_, secret) = op
        .add_client("plain", ClientAuthMethod::ClientSecretBasic, |c| {
            c.metadata.request_object_signing_alg = Some(RequestObjectAlg::None);
            c.skip_consent = true;
        })
        .await;
    let jwt = unsigned(&request_claims(&op, "plain"));
    sign_in_with_object(&op, "plain", &secret.unwrap(), &authorize_url(&op, "plain", &format!("&request={jwt}"))).await;
    // The client with keys did not register `none`.
    let jwt = unsigned(&request_claims(&op, "rp"));
    let page = Browser::new(&op).get(&authorize_url(&op, "rp", &format!("&request={jwt}"))).await;
    assert_eq!(query(&page.location.unwrap())["error"], "invalid_request_object");
}

/// Each rule of Core 6.3 / RFC 9101 6.3, reported as `invalid_request_object` at the redirect_uri with
/// the query's state (the object's cannot be trusted).
#[tokio::test]
async fn bad_request_objects_are_refused() {
    let (op, key, secret) = setup().await;
    let other_key = client_key();
    let good = request_claims(&op, "rp");
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let cases = [
        ("a signature by another key", sign(&other_key, &good)),
        ("a wrong aud", sign(&key, &with("aud", json!("https://someone-else.example")))),
        ("a wrong iss", sign(&key, &with("iss", json!("other-client")))),
        ("an expired object", sign(&key, &with("exp", json!(oxid::model::now() - 3600)))),
        ("an exp at the smallest i64", sign(&key, &with("exp", json!(i64::MIN)))),
        ("an nbf in the future", sign(&key, &with("nbf", json!(oxid::model::now() + 3600)))),
        ("an nbf at the largest i64", sign(&key, &with("nbf", json!(i64::MAX)))),
        ("a mismatched client_id", sign(&key, &with("client_id", json!("other-client")))),
        ("a mismatched response_type", sign(&key, &with("response_type", json!("code id_token")))),
        ("garbage", "not.a.jwt".to_owned()),
        ("an encrypted object", "a.b.c.d.e".to_owned()),
    ];
    let b = Browser::new(&op);
    for (what, jwt) in cases {
        let page = b.get(&authorize_url(&op, "rp", &format!("&request={jwt}"))).await;
        let location = page.location.unwrap_or_else(|| panic!("{what}: {}", page.body));
        assert!(location.starts_with(REDIRECT_URI), "{what}: {location}");
        let q = query(&location);
        assert_eq!(q["error"], "invalid_request_object", "{what}");
        assert_eq!(q["state"], "from-the-query", "{what}");
    }
    // The extremes the other way are merely valid (no overflow).
    let mut extremes = good.clone();
    extremes["exp"] = json!(i64::MAX);
    extremes["nbf"] = json!(i64::MIN);
    let far = sign(&key, &extremes);
    sign_in_with_object(&op, "rp", &secret, &authorize_url(&op, "rp", &format!("&request={far}"))).await;
    // request and request_uri together.
    let jwt = sign(&key, &good);
    let page = b.get(&authorize_url(&op, "rp", &format!("&request={jwt}&request_uri=https%3A%2F%2Fx"))).await;
    assert_eq!(query(&page.location.unwrap())["error"], "invalid_request");
    // An unregistered redirect_uri, even inside a valid object, is never redirected to.
    let evil = sign(&key, &with("redirect_uri", json!("https://evil.example/cb")));
    let page = b.get(&authorize_url(&op, "rp", &format!("&request={evil}"))).await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
}

/// Registration 2 `request_object_signing_alg`: an object signed with another algorithm is refused, even
/// when the signature itself is good.
#[tokio::test]
async fn the_registered_algorithm_is_enforced() {
    let op = TestOp::start().await;
    let key = client_key(); // ES256
    let jwks = key.jwks.clone();
    op.add_client("rs-only", ClientAuthMethod::ClientSecretBasic, |c| {
        c.jwks = Some(jwks);
        c.metadata.request_object_signing_alg = Some(RequestObjectAlg::Signed(oxid::model::SigningAlg::RS256));
    })
    .await;
    let jwt = sign(&key, &request_claims(&op, "rs-only"));
    let page = Browser::new(&op).get(&authorize_url(&op, "rs-only", &format!("&request={jwt}"))).await;
    let q = query(&page.location.unwrap());
    assert_eq!(q["error"], "invalid_request_object");
    assert!(q["error_description"].contains("registered algorithm"), "{q:?}");
}

#[tokio::test]
async fn discovery_advertises_request_objects() {
    let op = TestOp::start().await;
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["request_parameter_supported"], true);
    assert_eq!(doc["request_uri_parameter_supported"], true);
    assert_eq!(doc["require_request_uri_registration"], true);
    let algs = doc["request_object_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.contains(&json!("RS256")) && algs.contains(&json!("none")));
}

/// Core 6.1: a request object signed, then encrypted to one of the OP's encryption keys (published in
/// its JWKS with `use` `enc`), with or without a `kid`.
#[tokio::test]
async fn encrypted_request_objects() {
    use josekit::jwe::{self, JweHeader};
    use josekit::jwk::{Jwk, JwkSet};
    let (op, key, secret) = setup().await;
    let jwks = reqwest::get(op.url("/jwks.json")).await.unwrap().text().await.unwrap();
    let jwks = JwkSet::from_bytes(&jwks).unwrap();
    let enc_key = |kty: &str| -> Jwk {
        jwks.keys().into_iter().find(|k| k.key_use() == Some("enc") && k.key_type() == kty).cloned().unwrap()
    };
    let signed = sign(&key, &request_claims(&op, "rp"));
    let mut header = JweHeader::new();
    header.set_content_encryption("A256GCM");
    header.set_content_type("JWT");
    let rsa = jwe::serialize_compact(
        signed.as_bytes(),
        &header,
        &jwe::RSA_OAEP_256.encrypter_from_jwk(&enc_key("RSA")).unwrap(),
    )
    .unwrap();
    sign_in_with_object(&op, "rp", &secret, &authorize_url(&op, "rp", &format!("&request={rsa}"))).await;

    let mut ec_key = enc_key("EC");
    let mut map = ec_key.as_ref().clone();
    map.remove("kid");
    ec_key = Jwk::from_map(map).unwrap();
    let mut header = JweHeader::new();
    header.set_content_encryption("A128CBC-HS256");
    let ec =
        jwe::serialize_compact(signed.as_bytes(), &header, &jwe::ECDH_ES.encrypter_from_jwk(&ec_key).unwrap()).unwrap();
    sign_in_with_object(&op, "rp", &secret, &authorize_url(&op, "rp", &format!("&request={ec}"))).await;

    // Encrypted to someone else's key, or with an unsigned object inside for this client: refused.
    let stranger = Jwk::generate_rsa_key(2048).unwrap().to_public_key().unwrap();
    let elsewhere =
        jwe::serialize_compact(signed.as_bytes(), &header, &jwe::RSA_OAEP.encrypter_from_jwk(&stranger).unwrap())
            .unwrap();
    let inner_unsigned = unsigned(&request_claims(&op, "rp"));
    let unsigned_inside =
        jwe::serialize_compact(inner_unsigned.as_bytes(), &header, &jwe::ECDH_ES.encrypter_from_jwk(&ec_key).unwrap())
            .unwrap();
    let b = Browser::new(&op);
    for jwt in [elsewhere, unsigned_inside] {
        let page = b.get(&authorize_url(&op, "rp", &format!("&request={jwt}"))).await;
        assert_eq!(query(&page.location.unwrap())["error"], "invalid_request_object");
    }
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert!(doc["request_object_encryption_alg_values_supported"].as_array().unwrap().contains(&json!("RSA-OAEP-256")));
}

/// By default the OP fetches nothing from its own machine or network (SSRF): a request_uri on loopback is
/// refused unless `fetch_allow_loopback` is set (as in the other tests here).
#[tokio::test]
async fn loopback_request_uris_are_not_fetched_by_default() {
    let op = TestOp::start_with(|c| c.fetch_allow_loopback = false).await;
    let key = client_key();
    let request_uri = serve("/request.jwt", sign(&key, &request_claims(&op, "rp"))).await;
    let registered = request_uri.clone();
    let jwks = key.jwks.clone();
    op.add_client("rp", ClientAuthMethod::ClientSecretBasic, |c| {
        c.jwks = Some(jwks);
        c.metadata.request_uris = vec![registered];
    })
    .await;
    let page =
        Browser::new(&op).get(&authorize_url(&op, "rp", &format!("&request_uri={}", urlencode(&request_uri)))).await;
    let q = query(&page.location.unwrap());
    assert_eq!(q["error"], "invalid_request_uri");
    assert!(q["error_description"].contains("https"), "{}", q["error_description"]);
}
