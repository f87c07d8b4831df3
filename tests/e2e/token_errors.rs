//! Token endpoint rules (RFC 6749 4.1.3, 5.2, 6; RFC 7523; RFC 7636) and UserInfo errors (RFC 6750).

use crate::common;

use common::{Browser, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, query};
use josekit::jws::{self, JwsHeader};
use oxid::model::ClientAuthMethod;
use serde_json::json;

async fn code_for(op: &TestOp, client_id: &str) -> String {
    let callback = Browser::new(op).sign_in(&op.authorize_url(client_id, ""), "alice").await;
    query(&callback)["code"].clone()
}

async fn setup() -> (TestOp, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    (op, secret.unwrap())
}

fn assert_oauth_error(status: reqwest::StatusCode, body: &serde_json::Value, expected_status: u16, error: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
}

async fn userinfo_status(op: &TestOp, access_token: &str) -> u16 {
    common::userinfo(op, access_token).await.status().as_u16()
}

#[tokio::test]
async fn a_code_works_once_and_its_reuse_revokes_what_it_issued() {
    let (op, secret) = setup().await;
    let code = code_for(&op, "webapp").await;
    let first = exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await;
    assert_eq!(first.headers()["cache-control"], "no-store", "RFC 6749 5.1");
    let (status, tokens) = json(first).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&op, access).await, 200);

    let (status, body) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");
    // RFC 6749 4.1.2: the tokens issued from the code are revoked.
    assert_eq!(userinfo_status(&op, access).await, 401);
}

#[tokio::test]
async fn the_code_is_bound_to_redirect_uri_pkce_and_client() {
    let (op, secret) = setup().await;
    let (_, other_secret) =
        op.add_client("other", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let http = reqwest::Client::new();

    let code = code_for(&op, "webapp").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1:9/other"),
        ("code_verifier", VERIFIER),
    ];
    let (s, b) =
        json(http.post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(&form).send().await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");

    let code = code_for(&op, "webapp").await;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
    let (s, b) = json(exchange_code(&op, "webapp", &secret, &code, Some(wrong)).await).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");

    let code = code_for(&op, "webapp").await;
    let (s, b) = json(exchange_code(&op, "webapp", &secret, &code, None).await).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");

    let code = code_for(&op, "webapp").await;
    let (s, b) = json(exchange_code(&op, "other", &other_secret.unwrap(), &code, Some(VERIFIER)).await).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");

    let (s, b) = json(exchange_code(&op, "webapp", &secret, "made-up-code", Some(VERIFIER)).await).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
}

#[tokio::test]
async fn pkce_downgrade_is_refused() {
    // A confidential client that sent no challenge cannot present a verifier (RFC 9700 2.1.1).
    let (op, secret) = setup().await;
    let url = op
        .authorize_url("webapp", "")
        .replace(&format!("&code_challenge={}&code_challenge_method=S256", common::CHALLENGE), "");
    let callback = Browser::new(&op).sign_in(&url, "alice").await;
    let code = query(&callback)["code"].clone();
    let (s, b) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let op = TestOp::start_with(|c| c.code_lifetime = 30).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let code = code_for(&op, "webapp").await;
    op.advance_clock(30);
    let (s, b) = json(exchange_code(&op, "webapp", &secret.unwrap(), &code, Some(VERIFIER)).await).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
    assert!(b["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn bad_client_authentication_is_401_with_www_authenticate() {
    let (op, secret) = setup().await;
    let http = reqwest::Client::new();
    let code = code_for(&op, "webapp").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    for (id, pw) in [("webapp", "wrong-secret"), ("nobody", secret.as_str())] {
        let r = http.post(op.url("/token")).basic_auth(id, Some(pw)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"), "RFC 6749 5.2");
        let (s, b) = json(r).await;
        assert_oauth_error(s, &b, 401, "invalid_client");
    }
    // A registered client_secret_basic client may not switch to client_secret_post.
    let mut post_form = form.to_vec();
    post_form.extend([("client_id", "webapp"), ("client_secret", secret.as_str())]);
    let (s, b) = json(http.post(op.url("/token")).form(&post_form).send().await.unwrap()).await;
    assert_oauth_error(s, &b, 401, "invalid_client");
    // No authentication at all.
    let (s, b) = json(http.post(op.url("/token")).form(&form).send().await.unwrap()).await;
    assert_oauth_error(s, &b, 401, "invalid_client");
    // Two methods at once (RFC 6749 2.3).
    let (s, b) =
        json(http.post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(&post_form).send().await.unwrap())
            .await;
    assert_oauth_error(s, &b, 400, "invalid_request");
}

#[tokio::test]
async fn malformed_token_requests_get_spec_errors() {
    let (op, secret) = setup().await;
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, &'static str)>| {
        http.post(op.url("/token")).basic_auth("webapp", Some(secret.clone())).form(&form).send()
    };
    let (s, b) = json(post(vec![("code", "x")]).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_request");
    let (s, b) = json(post(vec![("grant_type", "password"), ("username", "a")]).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "unsupported_grant_type");
    let (s, b) = json(post(vec![("grant_type", "authorization_code")]).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_request");
    // Repeated parameter (RFC 6749 3.2).
    let r = http
        .post(op.url("/token"))
        .basic_auth("webapp", Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_oauth_error(s, &b, 400, "invalid_request");
    // JSON instead of a form.
    let r = http.post(op.url("/token")).json(&json!({"grant_type": "client_credentials"})).send().await.unwrap();
    let (s, b) = json(r).await;
    assert_oauth_error(s, &b, 400, "invalid_request");
    // Oversized body: a 4xx, never a 500.
    let big = format!("grant_type=client_credentials&junk={}", "x".repeat(200_000));
    let r = http
        .post(op.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // Wrong method.
    assert_eq!(http.get(op.url("/token")).send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn client_credentials_for_confidential_clients() {
    let op = TestOp::start().await;
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.metadata.scope = "api.read api.write".parse().unwrap();
        })
        .await;
    let secret = secret.unwrap();
    let http = reqwest::Client::new();
    let cc = |form: &'static [(&'static str, &'static str)]| {
        http.post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(form).send()
    };
    let form = &[("grant_type", "client_credentials"), ("scope", "api.read openid")];
    let (s, b) = json(cc(form).await.unwrap()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["scope"], "api.read", "user scopes are not granted without a user");
    assert!(b.get("refresh_token").is_none() && b.get("id_token").is_none());
    // The token is for the client, not a user: UserInfo refuses it (RFC 6750 3.1 insufficient_scope).
    assert_eq!(userinfo_status(&op, b["access_token"].as_str().unwrap()).await, 403);
    // RFC 6749 3.3: no scope parameter means the registered default; a scope not registered is refused.
    let (s, b) = json(cc(&[("grant_type", "client_credentials")]).await.unwrap()).await;
    assert_eq!((s.as_u16(), b["scope"].as_str()), (200, Some("api.read api.write")), "{b}");
    let (s, b) = json(cc(&[("grant_type", "client_credentials"), ("scope", "api.read admin")]).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_scope");
    // A client not registered for the grant.
    let (_, s2) = op
        .add_client("nocc", ClientAuthMethod::ClientSecretBasic, |c| {
            c.grant_types.retain(|g| g.as_str() != "client_credentials")
        })
        .await;
    let (s, b) =
        json(http.post(op.url("/token")).basic_auth("nocc", s2.as_deref()).form(form).send().await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "unauthorized_client");
}

#[tokio::test]
async fn refresh_rotation_scope_and_reuse_detection() {
    let (op, secret) = setup().await;
    let http = reqwest::Client::new();
    let url = op.authorize_url("webapp", "&prompt=consent").replace("scope=openid", "scope=openid%20offline_access");
    let code = query(&Browser::new(&op).sign_in(&url, "alice").await)["code"].clone();
    let (_, first) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String, scope: Option<&str>| {
        let mut form = vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", rt)];
        if let Some(scope) = scope {
            form.push(("scope", scope.to_owned()));
        }
        http.post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(&form).send()
    };
    // Wider scope than granted is refused, and does not burn the token (RFC 6749 6).
    let (s, b) = json(refresh(rt1.clone(), Some("openid email phone")).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_scope");
    // Narrower scope is fine.
    let (s, second) = json(refresh(rt1.clone(), Some("openid email")).await.unwrap()).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["scope"], "email openid");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "rotation");
    assert_eq!(userinfo_status(&op, second["access_token"].as_str().unwrap()).await, 200);
    // Replaying rt1 is detected; the family (rt2 and its access token) is revoked (RFC 9700 4.14.2).
    let (s, b) = json(refresh(rt1, None).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
    let (s, b) = json(refresh(rt2, None).await.unwrap()).await;
    assert_oauth_error(s, &b, 400, "invalid_grant");
    assert_eq!(userinfo_status(&op, second["access_token"].as_str().unwrap()).await, 401);
    assert_eq!(userinfo_status(&op, first["access_token"].as_str().unwrap()).await, 401);
}

fn assertion_claims(op: &TestOp, client_id: &str, jti: &str) -> serde_json::Value {
    let now = oxid::model::now();
    json!({"iss": client_id, "sub": client_id, "aud": op.url("/token"), "jti": jti, "exp": now + 60, "iat": now})
}

#[tokio::test]
async fn private_key_jwt_is_verified_and_replay_protected() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let key_pair = jws::ES256.generate_key_pair().unwrap();
    let mut public = key_pair.to_jwk_public_key();
    public.set_key_id("k1");
    let jwks = json!({"keys": [serde_json::Value::Object(public.as_ref().clone())]}).to_string();
    op.add_client("pkjwt", ClientAuthMethod::PrivateKeyJwt, |c| {
        c.jwks = Some(jwks);
        c.skip_consent = true;
    })
    .await;
    let mut signer = jws::ES256.signer_from_der(key_pair.to_der_private_key()).unwrap();
    signer.set_key_id("k1");
    let sign = |claims: serde_json::Value| {
        jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), &signer).unwrap()
    };
    let http = reqwest::Client::new();
    let token = |assertion: String| {
        http.post(op.url("/token"))
            .form(&[
                ("grant_type", "client_credentials".to_owned()),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
                ("client_assertion", assertion),
            ])
            .send()
    };
    let good = sign(assertion_claims(&op, "pkjwt", "jti-1"));
    let (s, b) = json(token(good.clone()).await.unwrap()).await;
    assert_eq!(s, 200, "{b}");
    // RFC 7523 3 item 7: the same jti again is a replay.
    let (s, b) = json(token(good).await.unwrap()).await;
    assert_oauth_error(s, &b, 401, "invalid_client");

    let mut wrong_aud = assertion_claims(&op, "pkjwt", "jti-2");
    wrong_aud["aud"] = json!("https://someone-else.example/token");
    let (s, b) = json(token(sign(wrong_aud)).await.unwrap()).await;
    assert_oauth_error(s, &b, 401, "invalid_client");

    // RFC 7523 3: iss and sub are the client, jti is present, exp is future and nbf past.
    let with = |name: &str, value: serde_json::Value| {
        let mut claims = assertion_claims(&op, "pkjwt", &format!("jti-{name}"));
        claims[name] = value;
        claims
    };
    let mut without_jti = assertion_claims(&op, "pkjwt", "unused");
    without_jti.as_object_mut().unwrap().remove("jti");
    let cases = [
        ("expired", with("exp", json!(oxid::model::now() - 3600)), "client assertion has expired"),
        ("another iss", with("iss", json!("someone-else")), "iss and sub must be the client_id"),
        ("no jti", without_jti, "jti is required"),
        ("a future nbf", with("nbf", json!(oxid::model::now() + 3600)), "not yet valid"),
    ];
    for (what, claims, why) in cases {
        let (s, b) = json(token(sign(claims)).await.unwrap()).await;
        assert_oauth_error(s, &b, 401, "invalid_client");
        assert!(b["error_description"].as_str().unwrap().contains(why), "{what}: {b}");
    }
    // A sub naming another client is that client's assertion, signed with the wrong key.
    op.add_client("victim", ClientAuthMethod::PrivateKeyJwt, |c| c.jwks = Some(other_jwks())).await;
    let (s, b) = json(token(sign(with("sub", json!("victim")))).await.unwrap()).await;
    assert_oauth_error(s, &b, 401, "invalid_client");

    // Hardening 12 (RFC 7515 4.1.4): without a kid, as node openid-client and Authlib sign with one key.
    let kidless = jws::ES256.signer_from_der(key_pair.to_der_private_key()).unwrap();
    let claims = assertion_claims(&op, "pkjwt", "jti-kidless");
    let assertion = jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), &kidless).unwrap();
    let (s, b) = json(token(assertion).await.unwrap()).await;
    assert_eq!(s, 200, "{b}");

    // Signed by another key.
    let other = jws::ES256.generate_key_pair().unwrap();
    let mut other_signer = jws::ES256.signer_from_der(other.to_der_private_key()).unwrap();
    other_signer.set_key_id("k1");
    let forged = jws::serialize_compact(
        assertion_claims(&op, "pkjwt", "jti-4").to_string().as_bytes(),
        &JwsHeader::new(),
        &other_signer,
    )
    .unwrap();
    let (s, b) = json(token(forged).await.unwrap()).await;
    assert_oauth_error(s, &b, 401, "invalid_client");

    // alg=none and garbage.
    let none = format!("eyJhbGciOiJub25lIn0.{}.", common_b64(&assertion_claims(&op, "pkjwt", "jti-5").to_string()));
    for bad in [none, "garbage".to_owned(), "a.b.c".to_owned()] {
        let (s, b) = json(token(bad).await.unwrap()).await;
        assert_oauth_error(s, &b, 401, "invalid_client");
    }
}

/// A JWK Set with a key nobody in the test holds.
fn other_jwks() -> String {
    let public = jws::ES256.generate_key_pair().unwrap().to_jwk_public_key();
    json!({"keys": [serde_json::Value::Object(public.as_ref().clone())]}).to_string()
}

fn common_b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn client_secret_jwt_and_post() {
    let op = TestOp::start().await;
    let (_, secret) = op.add_client("hmac", ClientAuthMethod::ClientSecretJwt, |_| {}).await;
    let secret = secret.unwrap();
    let signer = jws::HS256.signer_from_bytes(secret.as_bytes()).unwrap();
    let assertion =
        jws::serialize_compact(assertion_claims(&op, "hmac", "h-1").to_string().as_bytes(), &JwsHeader::new(), &signer)
            .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(op.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_eq!(s, 200, "{b}");

    let (_, post_secret) = op.add_client("poster", ClientAuthMethod::ClientSecretPost, |_| {}).await;
    let r = http
        .post(op.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "poster"),
            ("client_secret", &post_secret.unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn userinfo_bearer_rules() {
    let (op, secret) = setup().await;
    let code = code_for(&op, "webapp").await;
    let (_, tokens) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();

    // No token: 401 with a bare challenge (RFC 6750 3.1).
    let r = http.get(op.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    // Bad token: invalid_token.
    let r = http.get(op.url("/userinfo")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    // POST with the token in the form body (RFC 6750 2.2).
    let r = http.post(op.url("/userinfo")).form(&[("access_token", access)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, claims) = json(r).await;
    assert_eq!(claims["sub"], "sub-alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "alice Example");
    // Both header and body: invalid_request.
    let r = http.post(op.url("/userinfo")).bearer_auth(access).form(&[("access_token", access)]).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn an_expired_access_token_is_invalid() {
    let op = TestOp::start_with(|c| c.access_token_lifetime = 600).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let code = code_for(&op, "webapp").await;
    let (_, tokens) = json(exchange_code(&op, "webapp", &secret.unwrap(), &code, Some(VERIFIER)).await).await;
    let access_token = tokens["access_token"].as_str().unwrap();
    // The test clock moves on with real time too: a second boundary may pass between issuing and the
    // check, so "just before expiry" leaves that second of slack.
    op.advance_clock(598);
    assert_eq!(userinfo_status(&op, access_token).await, 200, "valid until its lifetime is over");
    op.advance_clock(2);
    assert_eq!(userinfo_status(&op, access_token).await, 401);
}

/// Tokens of a fresh grant with `offline_access` (so with a refresh token), signed in by `b`.
async fn offline_grant(op: &TestOp, secret: &str, b: &Browser) -> serde_json::Value {
    let url = op.authorize_url("webapp", "&prompt=consent").replace("scope=openid", "scope=openid%20offline_access");
    let code = query(&b.sign_in(&url, "alice").await)["code"].clone();
    let (status, tokens) = json(exchange_code(op, "webapp", secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens
}

async fn refresh_at(op: &TestOp, client: &str, secret: &str, token: &serde_json::Value) -> (u16, serde_json::Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", token["refresh_token"].as_str().unwrap())];
    let r = reqwest::Client::new().post(op.url("/token")).basic_auth(client, Some(secret)).form(&form).send().await;
    let (status, body) = json(r.unwrap()).await;
    (status.as_u16(), body)
}

/// Hardening 3 / RFC 9700 4.14.2: a refresh whose writes fail changes nothing. The old token is spent
/// in the same transaction that stores the new ones, so it still works once the store does; before,
/// it was burnt and the client's retry revoked the whole grant as a replay.
#[tokio::test]
async fn a_refresh_that_fails_to_store_leaves_the_old_token_usable() {
    let (op, secret) = setup().await;
    let tokens = offline_grant(&op, &secret, &Browser::new(&op)).await;
    op.refuse_writes("refresh_tokens", "INSERT").await;
    let (status, body) = refresh_at(&op, "webapp", &secret, &tokens).await;
    assert_eq!((status, body["error"].as_str()), (500, Some("server_error")), "{body}");
    op.allow_writes("refresh_tokens").await;
    let (status, body) = refresh_at(&op, "webapp", &secret, &tokens).await;
    assert_eq!(status, 200, "the retry succeeds: {body}");
    assert_eq!(userinfo_status(&op, body["access_token"].as_str().unwrap()).await, 200);
}

/// RFC 6749 6: a refresh token is bound to its client; another client presenting it gets
/// `invalid_grant`, and the token stays good for its own client.
#[tokio::test]
async fn a_refresh_token_of_another_client_is_refused() {
    let (op, secret) = setup().await;
    let (_, other) = op.add_client("other", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let tokens = offline_grant(&op, &secret, &Browser::new(&op)).await;
    let (status, body) = refresh_at(&op, "other", &other.unwrap(), &tokens).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(refresh_at(&op, "webapp", &secret, &tokens).await.0, 200);
}

/// Review 10: a rotation racing a replay of the grant's older token. Whatever the interleaving, once
/// the replay has revoked the grant no token of it may stay alive (on PostgreSQL the two transactions
/// take the grant's lock in turn).
#[tokio::test]
async fn a_rotation_racing_a_replay_leaves_nothing_alive() {
    let (op, secret) = setup().await;
    let b = Browser::new(&op);
    for _ in 0..20 {
        let first = offline_grant(&op, &secret, &b).await;
        let (status, second) = refresh_at(&op, "webapp", &secret, &first).await;
        assert_eq!(status, 200, "{second}");
        // Replay the spent first token while rotating the live second one.
        let (replay, rotation) =
            tokio::join!(refresh_at(&op, "webapp", &secret, &first), refresh_at(&op, "webapp", &secret, &second));
        assert_eq!(replay.1["error"], "invalid_grant", "{replay:?}");
        let survivors = [Some(&second), (rotation.0 == 200).then_some(&rotation.1)];
        for tokens in survivors.into_iter().flatten() {
            assert_eq!(userinfo_status(&op, tokens["access_token"].as_str().unwrap()).await, 401, "{tokens}");
            assert_eq!(refresh_at(&op, "webapp", &secret, tokens).await.1["error"], "invalid_grant");
        }
    }
}
