//! Client-Initiated Backchannel Authentication (CIBA Core 1.0), poll and ping: a client asks for a
//! user by hint, the user approves or denies on their account page, the client polls (or is pinged)
//! and gets its tokens once; every refusal of CIBA 13.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{Browser, PASSWORD, TestOp, json, jwt_payload};
use oxid::model::{CibaDelivery, ClientAuthMethod, GrantType};
use serde_json::Value;

const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

async fn op_with_client(delivery: CibaDelivery) -> (TestOp, String) {
    let op = TestOp::start_with(|c| c.fetch_allow_loopback = true).await;
    op.add_user("alice").await;
    op.add_user("bob").await;
    let (_, secret) = op
        .add_client("desk", ClientAuthMethod::ClientSecretBasic, move |c| {
            c.grant_types = vec![GrantType::Ciba];
            c.metadata.response_types.clear();
            c.metadata.ciba = Some(delivery);
        })
        .await;
    (op, secret.unwrap())
}

async fn ask(op: &TestOp, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(op.url("/bc-authorize"))
        .basic_auth("desk", Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn poll(op: &TestOp, secret: &str, auth_req_id: &str) -> (u16, Value) {
    let form = [("grant_type", CIBA_GRANT), ("auth_req_id", auth_req_id)];
    let response = reqwest::Client::new().post(op.url("/token")).basic_auth("desk", Some(secret)).form(&form).send();
    let (status, body) = json(response.await.unwrap()).await;
    (status.as_u16(), body)
}

/// `username` signs in on the account page and answers the request listed there, or `forced` (the
/// form of the page, posted with another request's id).
async fn answer_as(op: &TestOp, username: &str, decision: &str, forced: Option<&str>) -> common::Page {
    let b = Browser::new(op);
    let page = b.get("/account").await;
    let csrf = page.hidden("csrf_token");
    b.post("/account/login", &[("csrf_token", &csrf), ("username", username), ("password", PASSWORD)]).await;
    let page = b.get("/account").await;
    let listed = page.body.contains("name=\"request\"").then(|| page.hidden("request"));
    if let Some(id) = forced.map(str::to_owned).or(listed) {
        b.post("/account/requests/decide", &[("csrf_token", &csrf), ("request", &id), ("decision", decision)]).await;
    }
    page
}

async fn answer(op: &TestOp, username: &str, decision: &str) -> common::Page {
    answer_as(op, username, decision, None).await
}

#[tokio::test]
async fn poll_mode_approved_on_the_account_page() {
    let (op, secret) = op_with_client(CibaDelivery::Poll).await;
    let discovery: Value =
        reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["backchannel_authentication_endpoint"], op.url("/bc-authorize"));
    assert_eq!(discovery["backchannel_token_delivery_modes_supported"], serde_json::json!(["poll", "ping"]));

    let form = [("scope", "openid email"), ("login_hint", "alice"), ("binding_message", "Till 7: 4711")];
    let (status, asked) = ask(&op, &secret, &form).await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!((asked["expires_in"].as_i64(), asked["interval"].as_i64()), (Some(300), Some(5)));
    let id = asked["auth_req_id"].as_str().unwrap();
    assert_eq!(poll(&op, &secret, id).await.1["error"], "authorization_pending");

    // Bob sees nothing to answer, and cannot answer for alice; she sees the request with its message.
    let bobs = answer_as(&op, "bob", "allow", Some(&oxid::crypto::token_hash(id))).await;
    assert!(!bobs.body.contains("Till 7"));
    op.advance_clock(6);
    assert_eq!(poll(&op, &secret, id).await.1["error"], "authorization_pending");
    let alices = answer(&op, "alice", "allow").await;
    assert!(alices.body.contains("Till 7: 4711") && alices.body.contains("desk app"), "{}", alices.body);
    op.advance_clock(6);
    let (status, tokens) = poll(&op, &secret, id).await;
    assert_eq!(status, 200, "{tokens}");
    let alice = op.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(jwt_payload(tokens["id_token"].as_str().unwrap())["sub"], alice.id.as_str());
    op.advance_clock(6);
    assert_eq!(poll(&op, &secret, id).await.1["error"], "invalid_grant", "tokens once");

    // An id_token_hint names the user too; a denial is access_denied.
    let (_, asked) =
        ask(&op, &secret, &[("scope", "openid"), ("id_token_hint", tokens["id_token"].as_str().unwrap())]).await;
    let id = asked["auth_req_id"].as_str().unwrap();
    answer(&op, "alice", "deny").await;
    assert_eq!(poll(&op, &secret, id).await.1["error"], "access_denied");
    // Unanswered until it expires.
    let (_, asked) =
        ask(&op, &secret, &[("scope", "openid"), ("login_hint", "alice"), ("requested_expiry", "30")]).await;
    assert_eq!(asked["expires_in"], 30);
    op.advance_clock(31);
    assert_eq!(poll(&op, &secret, asked["auth_req_id"].as_str().unwrap()).await.1["error"], "expired_token");
}

#[tokio::test]
async fn bad_requests_get_ciba_errors() {
    let (op, secret) = op_with_client(CibaDelivery::Poll).await;
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("scope", "openid"), ("login_hint", "nobody")], "unknown_user_id"),
        (&[("scope", "openid"), ("login_hint", "alice"), ("id_token_hint", "x")], "invalid_request"),
        (&[("scope", "openid"), ("login_hint_token", "x")], "invalid_request"),
        (&[("scope", "openid")], "invalid_request"),
        (&[("scope", "email"), ("login_hint", "alice")], "invalid_scope"),
        (
            &[("scope", "openid"), ("login_hint", "alice"), ("binding_message", &"x".repeat(101))],
            "invalid_binding_message",
        ),
        (&[("scope", "openid"), ("login_hint", "alice"), ("requested_expiry", "100000")], "invalid_request"),
    ];
    for (form, error) in cases {
        let (status, body) = ask(&op, &secret, form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{form:?}: {body}");
    }
    // A foreign ID Token is no hint.
    let (_, body) = ask(&op, &secret, &[("scope", "openid"), ("id_token_hint", "e30.e30.")]).await;
    assert_eq!(body["error"], "unknown_user_id");
    // Not a CIBA client; no client authentication.
    let (_, other) = op.add_client("web", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let refused = reqwest::Client::new()
        .post(op.url("/bc-authorize"))
        .basic_auth("web", other.as_deref())
        .form(&[("scope", "openid"), ("login_hint", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(json(refused).await.1["error"], "unauthorized_client");
    let anonymous = reqwest::Client::new()
        .post(op.url("/bc-authorize"))
        .form(&[("client_id", "desk"), ("scope", "openid"), ("login_hint", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn ping_mode_tells_the_client_then_it_fetches_the_tokens() {
    let pings: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://127.0.0.1:{}/ciba-ping", listener.local_addr().unwrap().port());
    let recorded = pings.clone();
    let app = axum::Router::new().route(
        "/ciba-ping",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let recorded = recorded.clone();
            async move {
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                recorded.lock().unwrap().push((auth, serde_json::from_str(&body).unwrap()));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (op, secret) = op_with_client(CibaDelivery::Ping { notification_endpoint: endpoint }).await;

    // CIBA 7.1: a ping-mode request carries the client's notification token.
    let (status, body) = ask(&op, &secret, &[("scope", "openid"), ("login_hint", "alice")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let form = [("scope", "openid"), ("login_hint", "alice"), ("client_notification_token", "notify-me-8f3a")];
    let (_, asked) = ask(&op, &secret, &form).await;
    let id = asked["auth_req_id"].as_str().unwrap();
    answer(&op, "alice", "allow").await;
    for _ in 0..50 {
        if !pings.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let received = pings.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one ping");
    assert_eq!(received[0].0, "Bearer notify-me-8f3a");
    assert_eq!(received[0].1["auth_req_id"], id);
    let (status, tokens) = poll(&op, &secret, id).await;
    assert_eq!(status, 200, "{tokens}");
}
