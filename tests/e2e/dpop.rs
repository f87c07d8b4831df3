//! DPoP (RFC 9449): tokens bound to a key the client holds, made here; proofs checked at the token
//! endpoint and at UserInfo (method, URL, token hash, replay, nonce), bound codes and refresh tokens,
//! a bound token refused as a bearer token.

use crate::common;

use common::{Browser, REDIRECT_URI, TestOp, VERIFIER, json, query};
use josekit::jws::{self, JwsHeader};
use oxid::model::ClientAuthMethod;
use serde_json::{Map, Value, json};

/// A client's DPoP key and the proofs it makes.
struct DpopKey {
    signer: jws::alg::ecdsa::EcdsaJwsSigner,
    jwk: Map<String, Value>,
}

impl DpopKey {
    fn new() -> Self {
        let pair = jws::ES256.generate_key_pair().unwrap();
        let jwk = pair.to_jwk_public_key().as_ref().clone();
        Self { signer: jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap(), jwk }
    }

    fn thumbprint(&self) -> String {
        oxid::jose::dpop::thumbprint(&self.jwk).unwrap()
    }

    /// A proof for `htm` `htu`, with the access token's hash and the server nonce when given.
    fn proof(&self, htm: &str, htu: &str, access_token: Option<&str>, nonce: Option<&str>) -> String {
        let mut claims =
            json!({"jti": oxid::crypto::random_token(), "htm": htm, "htu": htu, "iat": oxid::model::now()});
        if let Some(token) = access_token {
            claims["ath"] = json!(oxid::crypto::b64url(&oxid::crypto::sha256(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let mut header = JwsHeader::new();
        header.set_token_type("dpop+jwt");
        header.set_claim("jwk", Some(Value::Object(self.jwk.clone()))).unwrap();
        jws::serialize_compact(claims.to_string().as_bytes(), &header, &self.signer).unwrap()
    }
}

async fn token_request(op: &TestOp, form: &[(&str, &str)], proof: Option<String>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(op.url("/token")).form(form);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn userinfo(op: &TestOp, scheme: &str, token: &str, proof: Option<String>) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().get(op.url("/userinfo")).header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

fn dpop_error(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_public_clients_tokens_are_bound_from_code_to_refresh_and_userinfo() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_client("app", ClientAuthMethod::None, |c| c.skip_consent = true).await;
    let key = DpopKey::new();
    let discovery: Value =
        reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(discovery["dpop_signing_alg_values_supported"].as_array().unwrap().contains(&json!("ES256")));

    // RFC 9449 10: dpop_jkt binds the code to the key.
    let url = op
        .authorize_url("app", &format!("&dpop_jkt={}", key.thumbprint()))
        .replace("scope=openid%20email%20profile", "scope=openid%20offline_access&prompt=consent");
    let b = Browser::new(&op);
    let code = query(&b.sign_in(&url, "alice").await)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", "app"),
    ];
    let token_url = op.url("/token");
    let (status, body) = json(token_request(&op, &form, None).await).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "the bound code needs a proof"
    );
    let other = DpopKey::new();
    let (status, _) = json(token_request(&op, &form, Some(other.proof("POST", &token_url, None, None))).await).await;
    assert_eq!(status, 400, "a proof of another key");
    let (status, tokens) = json(token_request(&op, &form, Some(key.proof("POST", &token_url, None, None))).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap();

    // UserInfo: the DPoP scheme with a proof of the key for this request and token.
    let userinfo_url = op.url("/userinfo");
    let ok = userinfo(&op, "DPoP", access, Some(key.proof("GET", &userinfo_url, Some(access), None))).await;
    assert_eq!(ok.status(), 200);
    // Bound token as a bearer token (downgrade): refused, with a DPoP challenge.
    let downgraded = userinfo(&op, "Bearer", access, None).await;
    assert_eq!(downgraded.status(), 401);
    assert!(dpop_error(&downgraded).starts_with("DPoP error=\"invalid_token\""), "{}", dpop_error(&downgraded));
    // A replayed proof, one for another URL, one without the token's hash, one of another key.
    let proof = key.proof("GET", &userinfo_url, Some(access), None);
    assert_eq!(userinfo(&op, "DPoP", access, Some(proof.clone())).await.status(), 200);
    let replayed = userinfo(&op, "DPoP", access, Some(proof)).await;
    assert_eq!(replayed.status(), 401);
    assert!(dpop_error(&replayed).contains("invalid_dpop_proof") && dpop_error(&replayed).contains("algs="));
    for bad in [
        key.proof("GET", &op.url("/token"), Some(access), None),
        key.proof("GET", &userinfo_url, None, None),
        key.proof("POST", &userinfo_url, Some(access), None),
        other.proof("GET", &userinfo_url, Some(access), None),
    ] {
        assert_eq!(userinfo(&op, "DPoP", access, Some(bad)).await.status(), 401);
    }
    assert_eq!(userinfo(&op, "DPoP", access, None).await.status(), 401, "no proof");

    // RFC 9449 5: the public client's refresh token is bound too.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "app")];
    let (status, body) = json(token_request(&op, &form, None).await).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_dpop_proof")));
    let (status, _) = json(token_request(&op, &form, Some(other.proof("POST", &token_url, None, None))).await).await;
    assert_eq!(status, 400);
    let (status, refreshed) =
        json(token_request(&op, &form, Some(key.proof("POST", &token_url, None, None))).await).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["token_type"], "DPoP");
}

#[tokio::test]
async fn server_nonces_work_on_every_node() {
    let op = TestOp::start_cluster(2, |c| c.dpop_nonce_required = true).await;
    let (_, secret) =
        op.add_client("svc", ClientAuthMethod::ClientSecretBasic, |c| c.metadata.scope = "api".parse().unwrap()).await;
    let secret = secret.unwrap();
    let key = DpopKey::new();
    let request = |node: usize, proof: String| {
        reqwest::Client::new()
            .post(format!("{}/token", op.nodes[node]))
            .basic_auth("svc", Some(&secret))
            .header("DPoP", proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let token_url = op.url("/token");
    // Without the nonce: use_dpop_nonce, and the nonce to use (RFC 9449 8).
    let first = request(0, key.proof("POST", &token_url, None, None)).await.unwrap();
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let (status, body) = json(first).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("use_dpop_nonce")));
    // With it, on the other node too.
    let (status, tokens) = json(request(1, key.proof("POST", &token_url, None, Some(&nonce))).await.unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let (status, _) = json(request(0, key.proof("POST", &token_url, None, Some("made-up"))).await.unwrap()).await;
    assert_eq!(status, 400);

    // Introspection tells a resource server the key (RFC 9449 6.2).
    let introspected: Value = reqwest::Client::new()
        .post(op.url("/introspect"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"]["jkt"], key.thumbprint());
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_no_bearer_tokens() {
    let op = TestOp::start().await;
    let (_, secret) =
        op.add_client("svc", ClientAuthMethod::ClientSecretBasic, |c| c.metadata.dpop_bound_access_tokens = true).await;
    let response = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("svc", secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_dpop_proof")));
    // A malformed proof, and two proofs at once, are refused too.
    let twice = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("svc", secret.as_deref())
        .header("DPoP", "x")
        .header("DPoP", "y")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    let key = DpopKey::new();
    let ok = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("svc", secret.as_deref())
        .header("DPoP", key.proof("POST", &op.url("/token"), None, None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
