//! Revocation (RFC 7009) and introspection (RFC 7662) for the client that holds the token.

use crate::common;

use common::{Browser, TestOp, VERIFIER, exchange_code, json, query};
use oxid::model::ClientAuthMethod;
use serde_json::Value;

async fn setup() -> (TestOp, String, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let (_, other) = op.add_client("other", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    (op, secret.unwrap(), other.unwrap())
}

async fn tokens(op: &TestOp, secret: &str) -> Value {
    let url = op.authorize_url("webapp", "&prompt=consent").replace("scope=openid", "scope=openid%20offline_access");
    let code = query(&Browser::new(op).sign_in(&url, "alice").await)["code"].clone();
    let (status, tokens) = json(exchange_code(op, "webapp", secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn post(op: &TestOp, path: &str, client: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value, String) {
    let r = reqwest::Client::new().post(op.url(path)).basic_auth(client, Some(secret)).form(form).send().await;
    let r = r.unwrap();
    let status = r.status().as_u16();
    let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), challenge)
}

async fn userinfo_status(op: &TestOp, tokens: &Value) -> u16 {
    common::userinfo(op, tokens["access_token"].as_str().unwrap()).await.status().as_u16()
}

#[tokio::test]
async fn introspection_tells_the_holder_and_nobody_else() {
    let (op, secret, other) = setup().await;
    let t = tokens(&op, &secret).await;
    let access = t["access_token"].as_str().unwrap();
    let (status, body, _) = post(&op, "/introspect", "webapp", &secret, &[("token", access)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!((body["client_id"].as_str(), body["username"].as_str()), (Some("webapp"), Some("alice")));
    assert_eq!((body["sub"].as_str(), body["token_type"].as_str()), (Some("sub-alice"), Some("Bearer")));
    assert_eq!(body["iss"], op.issuer.as_str());
    assert!(body["scope"].as_str().unwrap().contains("openid") && body["exp"].as_i64().unwrap() > 0);
    let refresh = t["refresh_token"].as_str().unwrap();
    let (_, body, _) = post(&op, "/introspect", "webapp", &secret, &[("token", refresh)]).await;
    assert_eq!((body["active"].as_bool(), body["token_type"].as_str()), (Some(true), Some("refresh_token")));

    // RFC 7662 2.2: unknown, foreign and expired tokens are all just inactive, with nothing else.
    let inactive = serde_json::json!({"active": false});
    assert_eq!(post(&op, "/introspect", "other", &other, &[("token", access)]).await.1, inactive, "foreign");
    assert_eq!(post(&op, "/introspect", "webapp", &secret, &[("token", "nope")]).await.1, inactive, "unknown");
    op.advance_clock(3600);
    assert_eq!(post(&op, "/introspect", "webapp", &secret, &[("token", access)]).await.1, inactive, "expired");

    // Client authentication is required (RFC 7662 2.1): 401 with a challenge.
    let (status, body, challenge) = post(&op, "/introspect", "webapp", "wrong", &[("token", access)]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(challenge.starts_with("Basic"), "{challenge}");
    let (status, body, _) = post(&op, "/introspect", "webapp", &secret, &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn revoking_an_access_token_ends_it_alone() {
    let (op, secret, other) = setup().await;
    let t = tokens(&op, &secret).await;
    let access = t["access_token"].as_str().unwrap();
    // Another client's revocation of it is a 200 that changes nothing (RFC 7009 2.1, 2.2).
    let (status, _, _) = post(&op, "/revoke", "other", &other, &[("token", access)]).await;
    assert_eq!(status, 200);
    assert_eq!(userinfo_status(&op, &t).await, 200);
    let (status, _, _) =
        post(&op, "/revoke", "webapp", &secret, &[("token", access), ("token_type_hint", "refresh_token")]).await;
    assert_eq!(status, 200, "the hint is only a hint");
    assert_eq!(userinfo_status(&op, &t).await, 401);
    // The refresh token lives on.
    let form = [("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())];
    let (status, body, _) = post(&op, "/token", "webapp", &secret, &form).await;
    assert_eq!(status, 200, "{body}");
    // Unknown tokens too: 200.
    assert_eq!(post(&op, "/revoke", "webapp", &secret, &[("token", "garbage")]).await.0, 200);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_grant() {
    let (op, secret, _) = setup().await;
    let t = tokens(&op, &secret).await;
    let refresh = t["refresh_token"].as_str().unwrap();
    let (status, _, _) = post(&op, "/revoke", "webapp", &secret, &[("token", refresh)]).await;
    assert_eq!(status, 200);
    assert_eq!(userinfo_status(&op, &t).await, 401, "its grant's access tokens go with it (RFC 7009 2.1)");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, body, _) = post(&op, "/token", "webapp", &secret, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // Bad client authentication: 401 invalid_client with a challenge.
    let (status, body, challenge) = post(&op, "/revoke", "webapp", "wrong", &[("token", refresh)]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(!challenge.is_empty());
}

#[tokio::test]
async fn discovery_advertises_both_endpoints() {
    let op = TestOp::start().await;
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["revocation_endpoint"], format!("{}/revoke", op.issuer));
    assert_eq!(doc["introspection_endpoint"], format!("{}/introspect", op.issuer));
    let methods = doc["introspection_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(!methods.contains(&"none".into()) && methods.contains(&"client_secret_basic".into()));
}
