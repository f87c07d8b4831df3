//! The device authorization grant (RFC 8628): a device asks, the user signs in and decides on the
//! verification page, the device polls (pending, slow down, expired, denied) and gets its tokens once.

use crate::common;

use common::{Browser, PASSWORD, TestOp, json, jwt_payload};
use oxid::model::{ClientAuthMethod, GrantType};
use serde_json::Value;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn op_with_tv() -> TestOp {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_client("tv", ClientAuthMethod::None, |c| {
        c.grant_types = vec![GrantType::DeviceCode, GrantType::RefreshToken];
        c.metadata.response_types.clear();
    })
    .await;
    op
}

async fn ask(op: &TestOp, client_id: &str, scope: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(op.url("/device_authorization"))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn poll(op: &TestOp, client_id: &str, device_code: &str) -> (u16, Value) {
    let form = [("grant_type", DEVICE_GRANT), ("device_code", device_code), ("client_id", client_id)];
    let (status, body) = json(reqwest::Client::new().post(op.url("/token")).form(&form).send().await.unwrap()).await;
    (status.as_u16(), body)
}

/// Signs in on the verification page the complete URI leads to, and decides.
async fn approve(b: &Browser, verification_uri_complete: &str, decision: &str) -> common::Page {
    let page = b.get(verification_uri_complete).await;
    assert!(page.body.contains("action=\"/device/login\""), "{}", page.body);
    let csrf = page.hidden("csrf_token");
    let user_code = page.hidden("user_code");
    let form =
        [("csrf_token", csrf.as_str()), ("user_code", &user_code), ("username", "alice"), ("password", PASSWORD)];
    let page = b.follow(b.post("/device/login", &form).await).await;
    assert!(page.body.contains("name=\"decision\""), "{}", page.body);
    assert!(page.body.contains("tv app"), "the device's client is named");
    let csrf = page.hidden("csrf_token");
    let code = page.hidden("user_code");
    b.post("/device/decide", &[("csrf_token", &csrf), ("user_code", &code), ("decision", decision)]).await
}

#[tokio::test]
async fn a_device_polls_until_the_user_approves() {
    let op = op_with_tv().await;
    let discovery: Value =
        reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["device_authorization_endpoint"], op.url("/device_authorization"));
    assert!(discovery["grant_types_supported"].as_array().unwrap().contains(&Value::from(DEVICE_GRANT)));

    let (status, asked) = ask(&op, "tv", "openid offline_access").await;
    assert_eq!(status, 200, "{asked}");
    let user_code = asked["user_code"].as_str().unwrap();
    assert!(
        user_code.len() == 9 && user_code.chars().all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "base-20, dash-grouped: {user_code}"
    );
    assert_eq!(asked["verification_uri"], op.url("/device"));
    assert_eq!(asked["verification_uri_complete"], op.url(&format!("/device?user_code={user_code}")));
    assert_eq!((asked["expires_in"].as_i64(), asked["interval"].as_i64()), (Some(600), Some(5)));
    let device_code = asked["device_code"].as_str().unwrap();

    // RFC 8628 3.5: pending; polling faster than the interval is slow_down (and the interval grows).
    assert_eq!(poll(&op, "tv", device_code).await.1["error"], "authorization_pending");
    assert_eq!(poll(&op, "tv", device_code).await.1["error"], "slow_down");
    op.advance_clock(6);
    assert_eq!(poll(&op, "tv", device_code).await.1["error"], "slow_down", "the interval is now 10 seconds");
    // Each slow_down added 5 seconds: 15 now.
    op.advance_clock(14);
    assert_eq!(poll(&op, "tv", device_code).await.1["error"], "slow_down");
    op.advance_clock(21);
    assert_eq!(poll(&op, "tv", device_code).await.1["error"], "authorization_pending");
    // Another client's poll with this code finds nothing.
    assert_eq!(poll(&op, "someone-else", device_code).await.0, 401);

    let b = Browser::new(&op);
    let done = approve(&b, asked["verification_uri_complete"].as_str().unwrap(), "allow").await;
    assert!(done.body.contains("Your device is connected"), "{}", done.body);
    op.advance_clock(26);
    let (status, tokens) = poll(&op, "tv", device_code).await;
    assert_eq!(status, 200, "{tokens}");
    let alice = op.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(jwt_payload(tokens["id_token"].as_str().unwrap())["sub"], alice.id.as_str());
    assert!(tokens["refresh_token"].is_string(), "offline_access was asked for");
    assert_eq!(common::userinfo(&op, tokens["access_token"].as_str().unwrap()).await.status(), 200);
    // Once only.
    op.advance_clock(26);
    assert_eq!(poll(&op, "tv", device_code).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn denied_expired_and_guessed_codes() {
    let op = op_with_tv().await;
    let b = Browser::new(&op);
    let (_, asked) = ask(&op, "tv", "openid").await;
    approve(&b, asked["verification_uri_complete"].as_str().unwrap(), "deny").await;
    assert_eq!(poll(&op, "tv", asked["device_code"].as_str().unwrap()).await.1["error"], "access_denied");

    let (_, late) = ask(&op, "tv", "openid").await;
    op.advance_clock(601);
    assert_eq!(poll(&op, "tv", late["device_code"].as_str().unwrap()).await.1["error"], "expired_token");
    // The expired code is gone from the verification page too.
    let page = b.get(late["verification_uri_complete"].as_str().unwrap()).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("not valid"), "{}", page.body);

    // Guessing is bounded per address (RFC 8628 5.1); a found code does not count.
    let mut last = 0;
    for _ in 0..11 {
        last = b.get("/device?user_code=BCDF-GHJK").await.status.as_u16();
    }
    assert_eq!(last, 429);

    // A client without the grant may not ask (RFC 8628 3.2).
    op.add_client("web", ClientAuthMethod::None, |_| {}).await;
    let (status, body) = ask(&op, "web", "openid").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
}

/// Disabling the user ends the requests they approved: the device's next poll gets no tokens, even on a
/// node that still has the user in its cache (`record_cache_ttl`) from an earlier exchange (disabling
/// revokes the grants of the user's sessions and deletes their device and CIBA requests).
#[tokio::test]
async fn disabling_the_user_ends_what_they_approved() {
    let op = op_with_tv().await;
    for disabled in [false, true] {
        let (_, asked) = ask(&op, "tv", "openid").await;
        approve(&Browser::new(&op), asked["verification_uri_complete"].as_str().unwrap(), "allow").await;
        if disabled {
            let logout = oxid::config::Config::default().logout(oxid::model::now());
            assert!(op.store.disable_user("alice", logout).await.unwrap());
        }
        op.advance_clock(6);
        let (status, body) = poll(&op, "tv", asked["device_code"].as_str().unwrap()).await;
        match disabled {
            false => assert_eq!(status, 200, "{body}"),
            true => assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}"),
        }
    }
}
