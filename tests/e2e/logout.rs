//! Logout: RP-Initiated Logout 1.0 at the end-session endpoint, what a logout ends, Back-Channel Logout
//! 1.0 delivery through the outbox (retries, a hanging RP, a restart, two nodes), session_state
//! (Session Management 1.0), and the session commands.

use crate::common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Browser, Page, TestOp, VERIFIER, exchange_code, json, jwt_payload, query};
use oxid::model::{ClientAuthMethod, LogoutUri};
use oxid::store::SessionsToEnd;
use serde_json::Value;

const GOODBYE: &str = "http://127.0.0.1:9/goodbye";

/// A relying party's logout endpoints: records every request, answers with the queued statuses (then
/// 200), or never answers while `hang` is set.
#[derive(Clone, Default)]
pub(crate) struct TestRp {
    hits: Arc<Mutex<Vec<Hit>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Debug)]
pub(crate) struct Hit {
    path: String,
    query: String,
    body: String,
}

impl TestRp {
    pub(crate) async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        (Self::serve(listener), base)
    }

    fn serve(listener: tokio::net::TcpListener) -> Self {
        let rp = Self::default();
        let shared = rp.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
            let rp = shared.clone();
            async move {
                rp.hits.lock().unwrap().push(Hit {
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or_default().to_owned(),
                    body,
                });
                if rp.hang.load(std::sync::atomic::Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let status = rp.statuses.lock().unwrap().pop_front().unwrap_or(200);
                (axum::http::StatusCode::from_u16(status).unwrap(), "")
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        rp
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `n` requests have arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..100 {
            if self.hits().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.hits()
    }

    /// The Logout Tokens received.
    pub(crate) fn logout_tokens(&self) -> Vec<String> {
        self.hits()
            .iter()
            .filter_map(|h| form_urlencoded::parse(h.body.as_bytes()).find(|(k, _)| k == "logout_token"))
            .map(|(_, v)| v.into_owned())
            .collect()
    }
}

/// An OP with `alice` and a client `webapp` that registered a post-logout redirect and a back-channel
/// logout URI on `rp`.
pub(crate) async fn op_with_rp(rp: &str) -> (TestOp, String) {
    op_with_rp_in(TestOp::start().await, rp).await
}

async fn op_with_rp_in(op: TestOp, rp: &str) -> (TestOp, String) {
    op.add_user("alice").await;
    let backchannel = format!("{rp}/backchannel");
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, move |c| {
            c.skip_consent = true;
            c.metadata.post_logout_redirect_uris = vec![GOODBYE.parse().unwrap()];
            c.metadata.backchannel_logout =
                Some(LogoutUri { uri: backchannel.parse().unwrap(), session_required: true });
        })
        .await;
    (op, secret.unwrap())
}

/// Signs `b` in to `webapp` (with `extra` authorization parameters) and returns the token response and
/// the authorization response's parameters.
pub(crate) async fn sign_in(
    op: &TestOp,
    b: &Browser,
    secret: &str,
    extra: &str,
) -> (Value, std::collections::HashMap<String, String>) {
    let callback = query(&b.sign_in(&op.authorize_url("webapp", extra), "alice").await);
    let (status, tokens) = json(exchange_code(op, "webapp", secret, &callback["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    (tokens, callback)
}

/// Whether the browser still has a session: a prompt=none request is answered with a code.
pub(crate) async fn signed_in(op: &TestOp, b: &Browser) -> bool {
    let page = b.get(&op.authorize_url("webapp", "&prompt=none")).await;
    let location = page.location.expect("prompt=none always redirects");
    let answer = query(&location);
    assert!(answer.contains_key("code") || answer["error"] == "login_required", "{location}");
    answer.contains_key("code")
}

pub(crate) async fn refresh(op: &TestOp, secret: &str, tokens: &Value) -> u16 {
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    let r = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(secret)).form(&form).send();
    r.await.unwrap().status().as_u16()
}

pub(crate) fn logout_url(op: &TestOp, params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    op.url(&format!("/logout?{query}"))
}

/// An error page: 400, no redirect anywhere.
fn assert_error_page(page: &Page, says: &str) {
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none(), "never a redirect: {:?}", page.location);
    assert!(page.body.contains(says), "{says:?} not in {}", page.body);
}

#[tokio::test]
async fn logout_with_an_id_token_hint_ends_the_session_and_returns_with_state() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (tokens, callback) = sign_in(&op, &b, &secret, "").await;
    // Session Management 1.0 3: every authorization response carries session_state.
    let session_state = &callback["session_state"];
    assert!(
        session_state.split_once('.').is_some_and(|(h, salt)| h.len() == 64 && !salt.is_empty()),
        "{session_state}"
    );
    assert!(signed_in(&op, &b).await);

    let hint = tokens["id_token"].as_str().unwrap();
    let page = b
        .get(&logout_url(&op, &[("id_token_hint", hint), ("post_logout_redirect_uri", GOODBYE), ("state", "bye1")]))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("http://127.0.0.1:9/goodbye?state=bye1"));

    // What the logout ended (Back-Channel Logout 2.7): the session and the tokens issued through it
    // (without offline_access oxid issues no refresh token).
    assert!(!signed_in(&op, &b).await, "prompt=none now answers login_required");
    assert!(tokens.get("refresh_token").is_none());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(common::userinfo(&op, access).await.status(), 401);
}

#[tokio::test]
async fn an_expired_hint_still_names_the_session() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    op.advance_clock(2 * 3600); // past the ID Token's exp, within the session's life
    assert!(signed_in(&op, &b).await);
    let hint = tokens["id_token"].as_str().unwrap();
    let page = b.get(&logout_url(&op, &[("id_token_hint", hint), ("post_logout_redirect_uri", GOODBYE)])).await;
    assert_eq!(page.location.as_deref(), Some(GOODBYE));
    assert!(!signed_in(&op, &b).await);
}

#[tokio::test]
async fn without_a_hint_the_user_confirms_with_a_csrf_protected_form() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    sign_in(&op, &b, &secret, "").await;

    // A bare GET (a link or image on any page) never logs out: it asks.
    let url = logout_url(&op, &[("client_id", "webapp"), ("post_logout_redirect_uri", GOODBYE), ("state", "s2")]);
    let confirm = b.get(&url).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Sign out?") && confirm.body.contains("alice"), "{}", confirm.body);
    assert!(signed_in(&op, &b).await, "not signed out by asking");

    // The form without its CSRF token (or from another browser) does nothing.
    let fields = [("client_id", "webapp"), ("post_logout_redirect_uri", GOODBYE), ("state", "s2")];
    let forged = b.post(&op.url("/logout/confirm"), &fields).await;
    assert_error_page(&forged, "form has expired");
    let other = Browser::new(&op);
    let csrf = confirm.hidden("csrf_token");
    let mut with_token = fields.to_vec();
    with_token.push(("csrf_token", &csrf));
    assert_error_page(&other.post(&op.url("/logout/confirm"), &with_token).await, "form has expired");
    assert!(signed_in(&op, &b).await);

    let done = b.post(&op.url("/logout/confirm"), &with_token).await;
    assert_eq!(done.location.as_deref(), Some("http://127.0.0.1:9/goodbye?state=s2"));
    assert!(!signed_in(&op, &b).await);

    // Without a registered redirect: the signed-out page.
    let page = b.get(&logout_url(&op, &[])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out."), "{}", page.body);
}

#[tokio::test]
async fn bad_logout_requests_get_an_error_page_in_the_users_language() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    op.add_client("other", ClientAuthMethod::ClientSecretBasic, |c| {
        c.metadata.post_logout_redirect_uris = vec!["http://127.0.0.1:9/other-bye".parse().unwrap()];
    })
    .await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    let hint = tokens["id_token"].as_str().unwrap();

    // An ID Token not signed by this OP (here: its signature altered).
    let mut forged = hint.to_owned();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let page = b.get(&logout_url(&op, &[("id_token_hint", &forged), ("post_logout_redirect_uri", GOODBYE)])).await;
    assert_error_page(&page, "not an ID Token issued by this OP");
    assert_error_page(&b.get(&logout_url(&op, &[("id_token_hint", "not.a.jwt")])).await, "not an ID Token");
    // A redirect the client did not register, another client's, or one without a client.
    let unregistered = [("id_token_hint", hint), ("post_logout_redirect_uri", "http://127.0.0.1:9/goodbye/")];
    assert_error_page(&b.get(&logout_url(&op, &unregistered)).await, "not registered");
    let others = [("id_token_hint", hint), ("post_logout_redirect_uri", "http://127.0.0.1:9/other-bye")];
    assert_error_page(&b.get(&logout_url(&op, &others)).await, "not registered");
    assert_error_page(&b.get(&logout_url(&op, &[("post_logout_redirect_uri", GOODBYE)])).await, "needs id_token_hint");
    // A client_id that is not the hint's audience; an unknown client.
    let disagreeing = [("id_token_hint", hint), ("client_id", "other")];
    assert_error_page(&b.get(&logout_url(&op, &disagreeing)).await, "not the audience");
    assert_error_page(&b.get(&logout_url(&op, &[("client_id", "nobody")])).await, "unknown client_id");
    // Oversized parameters.
    let long = "x".repeat(5000);
    assert_error_page(&b.get(&logout_url(&op, &[("state", &long)])).await, "too long");
    // In the user's language.
    let german = [("client_id", "nobody"), ("ui_locales", "de")];
    let page = b.get(&logout_url(&op, &german)).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("lang=\"de\""), "{}", page.body);
    // None of these logged the user out.
    assert!(signed_in(&op, &b).await);
}

#[tokio::test]
async fn offline_access_outlives_the_session() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let url = op.authorize_url("webapp", "&prompt=consent").replace("scope=openid", "scope=openid%20offline_access");
    let code = query(&b.sign_in(&url, "alice").await)["code"].clone();
    let (_, offline) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    let (online, _) = sign_in(&op, &b, &secret, "").await;

    let hint = online["id_token"].as_str().unwrap();
    b.get(&logout_url(&op, &[("id_token_hint", hint)])).await;
    assert!(!signed_in(&op, &b).await);
    let access = |t: &Value| t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(common::userinfo(&op, &access(&online)).await.status(), 401, "the session's grant ended");
    assert_eq!(common::userinfo(&op, &access(&offline)).await.status(), 200, "offline_access outlives the session");
    assert_eq!(refresh(&op, &secret, &offline).await, 200);

    // Unless the operator says otherwise.
    let (_rp, rp_base) = TestRp::start().await;
    let strict = TestOp::start_with(|c| c.logout_revokes_offline_access = true).await;
    let (op, secret) = op_with_rp_in(strict, &rp_base).await;
    let b = Browser::new(&op);
    let code = query(&b.sign_in(&url.replace(&op_base(&url), &op.nodes[0]), "alice").await)["code"].clone();
    let (_, offline) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    b.get(&logout_url(&op, &[("id_token_hint", offline["id_token"].as_str().unwrap())])).await;
    assert_eq!(refresh(&op, &secret, &offline).await, 400, "logout_revokes_offline_access");
}

/// The scheme, host and port of `url`.
fn op_base(url: &str) -> String {
    url::Url::parse(url).unwrap().origin().ascii_serialization()
}

/// Verifies a Logout Token against the OP's JWKS (Back-Channel Logout 2.6) and returns its claims.
pub(crate) async fn verified_logout_token(op: &TestOp, token: &str) -> Value {
    use josekit::jws::JwsVerifier;
    let jwks = reqwest::get(op.url("/jwks.json")).await.unwrap().text().await.unwrap();
    let jwks = josekit::jwk::JwkSet::from_bytes(jwks.as_bytes()).unwrap();
    let header = josekit::jwt::decode_header(token).unwrap();
    let kid = header.claim("kid").and_then(Value::as_str).unwrap().to_owned();
    let jwk = jwks.get(&kid)[0];
    let verifier = josekit::jws::RS256.verifier_from_jwk(jwk).unwrap();
    assert_eq!(verifier.algorithm().name(), "RS256");
    let (payload, header) = josekit::jwt::decode_with_verifier(token, &verifier).expect("signed by the OP");
    assert_eq!(header.token_type(), Some("logout+jwt"));
    serde_json::to_value(payload.claims_set()).unwrap()
}

#[tokio::test]
async fn the_rp_receives_a_verifiable_logout_token() {
    let (rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    let id_token = jwt_payload(tokens["id_token"].as_str().unwrap());
    b.get(&logout_url(&op, &[("id_token_hint", tokens["id_token"].as_str().unwrap())])).await;

    let hits = rp.wait_for(1).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].path.as_str(), hits[0].query.as_str()), ("/backchannel", ""), "POSTed as a form");
    let claims = verified_logout_token(&op, &rp.logout_tokens()[0]).await;
    assert_eq!(claims["iss"], op.issuer.as_str());
    assert_eq!(claims["aud"], "webapp");
    assert_eq!(claims["sub"], id_token["sub"]);
    assert_eq!(claims["sid"], id_token["sid"], "the session the ID Token was issued in");
    assert_eq!(claims["events"], serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert!(claims.get("nonce").is_none(), "never a nonce (Back-Channel Logout 2.4)");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(exp > iat && exp - iat <= 120);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rp.hits().len(), 1, "delivered once");
    assert!(op.store.logout_notifications(false, 10).await.unwrap().is_empty(), "the outbox is empty");
}

#[tokio::test]
async fn a_failing_rp_is_retried_and_a_refusing_one_given_up() {
    let (rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    rp.statuses.lock().unwrap().push_back(500);
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    b.get(&logout_url(&op, &[("id_token_hint", tokens["id_token"].as_str().unwrap())])).await;
    assert_eq!(rp.wait_for(1).await.len(), 1);
    // The failure is recorded just after the RP answered.
    let mut pending = Vec::new();
    for _ in 0..50 {
        pending = op.store.logout_notifications(false, 10).await.unwrap();
        if pending.first().is_some_and(|n| n.attempts > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((pending.len(), pending[0].attempts), (1, 1), "{pending:?}");
    assert_eq!(pending[0].last_error.as_deref(), Some("the client answered 500"));
    // The next attempt is due after the backoff.
    op.advance_clock(6);
    assert_eq!(rp.wait_for(2).await.len(), 2);
    for _ in 0..50 {
        if op.store.logout_notifications(false, 10).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(op.store.logout_notifications(false, 10).await.unwrap().is_empty(), "delivered on the retry");

    // An RP that refuses the token (400) would refuse it again: given up, listed, counted.
    rp.statuses.lock().unwrap().push_back(400);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    b.get(&logout_url(&op, &[("id_token_hint", tokens["id_token"].as_str().unwrap())])).await;
    assert_eq!(rp.wait_for(3).await.len(), 3);
    let mut failed = Vec::new();
    for _ in 0..50 {
        failed = op.store.logout_notifications(true, 10).await.unwrap();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.len(), 1);
    assert!(failed[0].failed_at.is_some());
    let metrics = reqwest::get(op.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("oxid_logout_notifications_undeliverable_total"), "{metrics}");
    op.advance_clock(3600);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rp.hits().len(), 3, "never tried again");
}

#[tokio::test]
async fn a_hanging_rp_does_not_hold_up_the_users_logout() {
    let (rp, rp_base) = TestRp::start().await;
    rp.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    let url = logout_url(
        &op,
        &[("id_token_hint", tokens["id_token"].as_str().unwrap()), ("post_logout_redirect_uri", GOODBYE)],
    );
    // The RP never answers; the user's logout does not wait for it (the browser gives up after 3 s).
    let response = b.http.get(&url).timeout(Duration::from_secs(3)).send().await.expect("answered without waiting");
    assert_eq!(response.status(), 303);
    assert_eq!(rp.wait_for(1).await.len(), 1, "the notification went out meanwhile");
    assert!(!signed_in(&op, &b).await);
}

#[tokio::test]
async fn a_restarted_server_delivers_what_was_left_undelivered() {
    // The RP's port is known but nothing listens yet: every attempt fails to connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rp_base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let (mut op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    b.get(&logout_url(&op, &[("id_token_hint", tokens["id_token"].as_str().unwrap())])).await;
    for _ in 0..50 {
        if op.store.logout_notifications(false, 10).await.unwrap().first().is_some_and(|n| n.attempts > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(op.store.logout_notifications(false, 10).await.unwrap()[0].attempts, 1);

    op.restart().await;
    let rp = TestRp::serve(tokio::net::TcpListener::bind(rp_base.trim_start_matches("http://")).await.unwrap());
    op.advance_clock(6);
    assert_eq!(rp.wait_for(1).await.len(), 1, "delivered by the restarted server");
    verified_logout_token(&op, &rp.logout_tokens()[0]).await;
}

#[tokio::test]
async fn with_two_nodes_each_notification_arrives_once() {
    let (rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp_in(TestOp::start_cluster(2, |_| {}).await, &rp_base).await;
    // Eight sessions, ended from outside the servers (as `oxid session end` does): both nodes find
    // the notifications by polling, at the same time.
    let mut sids = Vec::new();
    for _ in 0..8 {
        let b = Browser::new(&op);
        let (tokens, _) = sign_in(&op, &b, &secret, "").await;
        sids.push(jwt_payload(tokens["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned());
    }
    for sid in &sids {
        let logout = oxid::config::Config::default().logout(oxid::model::now());
        let ended = op.store.end_sessions(SessionsToEnd::Sid(sid), logout).await.unwrap();
        assert_eq!(ended.len(), 1);
    }
    rp.wait_for(8).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut received: Vec<String> =
        rp.logout_tokens().iter().map(|t| jwt_payload(t)["sid"].as_str().unwrap().to_owned()).collect();
    received.sort();
    sids.sort();
    assert_eq!(received, sids, "each session's notification exactly once");
}

#[tokio::test]
async fn disabling_a_user_tells_their_clients() {
    let (rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    sign_in(&op, &b, &secret, "").await;
    op.store.disable_user("alice", oxid::config::Config::default().logout(oxid::model::now())).await.unwrap();
    assert_eq!(rp.wait_for(1).await.len(), 1);
    assert!(!signed_in(&op, &b).await);
}

#[tokio::test]
async fn a_new_login_keeps_the_same_users_session() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (first, _) = sign_in(&op, &b, &secret, "").await;
    // prompt=login: the same user again, a new cookie id, the same session for the RPs.
    let (again, _) = sign_in(&op, &b, &secret, "&prompt=login").await;
    let sid = |t: &Value| jwt_payload(t["id_token"].as_str().unwrap())["sid"].clone();
    assert_eq!(sid(&first), sid(&again));
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(common::userinfo(&op, access).await.status(), 200, "the RP's grant is still there");
}

#[tokio::test]
async fn discovery_advertises_logout() {
    let op = TestOp::start().await;
    let doc: Value = reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["end_session_endpoint"], format!("{}/logout", op.issuer));
    assert_eq!(doc["check_session_iframe"], format!("{}/session/check", op.issuer));
    for flag in [
        "frontchannel_logout_supported",
        "frontchannel_logout_session_supported",
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
    ] {
        assert_eq!(doc[flag], true, "{flag}");
    }
    // The iframe may be framed by any RP; the OP's other pages may not.
    let iframe = reqwest::get(op.url("/session/check")).await.unwrap();
    assert!(iframe.headers().get("x-frame-options").is_none());
    assert!(iframe.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors *"));
    let login = reqwest::get(op.url("/logout")).await.unwrap();
    assert_eq!(login.headers()["x-frame-options"], "DENY");
}

/// What a session records of its grants is swept with it, once it has expired (and not before).
#[tokio::test]
async fn an_expired_session_is_swept_with_its_grants() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    sign_in(&op, &b, &secret, "").await;
    sign_in(&op, &b, &secret, "").await;
    let count = |name: &'static str| {
        let store = op.store.clone();
        async move { store.stats().await.unwrap().0.into_iter().find(|(t, _)| *t == name).unwrap().1 }
    };
    assert_eq!((count("sessions").await, count("session_grants").await), (1, 2));
    let config = oxid::config::Config::default(); // sessions last 12 hours, expired rows are kept an hour
    let now = oxid::model::now();
    oxid::server::sweep(op.store.as_ref(), &config, now + 12 * 3600, None).await.unwrap();
    assert_eq!((count("sessions").await, count("session_grants").await), (1, 2), "still live");
    oxid::server::sweep(op.store.as_ref(), &config, now + 13 * 3600 + 60, None).await.unwrap();
    assert_eq!((count("sessions").await, count("session_grants").await), (0, 0));
}
