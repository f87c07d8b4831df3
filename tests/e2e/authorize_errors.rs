//! Authorization endpoint error handling (Core 3.1.2.6, RFC 6749 4.1.2.1) and prompt/max_age rules.

use crate::common;

use common::{Browser, CHALLENGE, REDIRECT_URI, TestOp, query, urlencode};
use oxid::model::ClientAuthMethod;

async fn op_with_client() -> TestOp {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    op.add_client("spa", ClientAuthMethod::None, |_| {}).await;
    op
}

/// Asserts the response redirects to the client with `error` (and the request's state and iss).
fn assert_redirected_error(op: &TestOp, page: &common::Page, error: &str) {
    let location =
        page.location.as_deref().unwrap_or_else(|| panic!("expected a redirect, got {}: {}", page.status, page.body));
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let q = query(location);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{location}");
    assert!(q.contains_key("error_description"));
    assert_eq!(q.get("state").map(String::as_str), Some("st4te"));
    assert_eq!(q.get("iss"), Some(&op.issuer), "RFC 9207");
}

fn assert_error_page(page: &common::Page) {
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none(), "must not redirect");
    assert!(page.body.contains("invalid_request"), "{}", page.body);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn unknown_client_or_bad_redirect_uri_is_shown_not_redirected() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    // Unknown client.
    assert_error_page(&b.get(&op.authorize_url("nobody", "")).await);
    // Missing client_id.
    assert_error_page(&b.get(&format!("{}/authorize?response_type=code&scope=openid", op.issuer)).await);
    // Unregistered redirect_uri, and one that merely starts with a registered one (exact match).
    for evil in ["https://evil.example/cb", "http://127.0.0.1:9/callback/../x", "http://127.0.0.1:9/callbackx"] {
        let url = op.authorize_url("webapp", "").replace(&urlencode(REDIRECT_URI), &urlencode(evil));
        assert_error_page(&b.get(&url).await);
    }
    // Missing redirect_uri (Core 3.1.2.1: REQUIRED).
    let url = op.authorize_url("webapp", "").replace(&format!("&redirect_uri={}", urlencode(REDIRECT_URI)), "");
    assert_error_page(&b.get(&url).await);
    // Repeated parameters (RFC 6749 3.1) cannot be trusted to name the client.
    assert_error_page(&b.get(&op.authorize_url("webapp", "&client_id=webapp")).await);
}

#[tokio::test]
async fn other_errors_redirect_with_state_and_iss() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let cases = [
        (
            // (Bare `token` is refused too, in the fragment: tests/e2e/implicit_hybrid.rs.)
            op.authorize_url("webapp", "").replace("response_type=code", "response_type=code%20bogus"),
            "unsupported_response_type",
        ),
        (op.authorize_url("webapp", "").replace("response_type=code&", ""), "invalid_request"),
        (op.authorize_url("webapp", "").replace("scope=openid%20email%20profile", "scope=email"), "invalid_scope"),
        (op.authorize_url("webapp", "&prompt=none%20login"), "invalid_request"),
        (op.authorize_url("webapp", "&prompt=bogus"), "invalid_request"),
        (op.authorize_url("webapp", "&max_age=abc"), "invalid_request"),
        (op.authorize_url("webapp", "&response_mode=web_message"), "invalid_request"),
        (op.authorize_url("webapp", "&request=eyJ.x.y"), "invalid_request_object"),
        (op.authorize_url("webapp", "&request_uri=https%3A%2F%2Frp%2Fr"), "invalid_request_uri"),
        (op.authorize_url("webapp", "&id_token_hint=not.a.jwt"), "invalid_request"),
        (op.authorize_url("webapp", "&display=hologram"), "invalid_request"),
        // PKCE: plain is refused (RFC 7636 4.3 / RFC 9700 2.1.1), malformed challenges too.
        (op.authorize_url("webapp", "").replace("S256", "plain"), "invalid_request"),
        (op.authorize_url("webapp", "").replace("&code_challenge_method=S256", ""), "invalid_request"),
        (op.authorize_url("webapp", "").replace(CHALLENGE, "short"), "invalid_request"),
    ];
    for (url, error) in cases {
        assert_redirected_error(&op, &b.get(&url).await, error);
    }
}

#[tokio::test]
async fn public_clients_must_use_pkce() {
    let op = op_with_client().await;
    let url =
        op.authorize_url("spa", "").replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), "");
    assert_redirected_error(&op, &Browser::new(&op).get(&url).await, "invalid_request");
}

#[tokio::test]
async fn post_to_authorize_works_like_get() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let url = op.authorize_url("webapp", "");
    let (_, q) = url.split_once('?').unwrap();
    let form: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let page = b.post("/authorize", &form).await;
    assert!(page.location.unwrap().starts_with("/login?request="));
}

#[tokio::test]
async fn prompt_none_without_session_is_login_required() {
    let op = op_with_client().await;
    let page = Browser::new(&op).get(&op.authorize_url("webapp", "&prompt=none")).await;
    assert_redirected_error(&op, &page, "login_required");
}

#[tokio::test]
async fn prompt_none_with_session_but_no_consent_is_consent_required() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    let consent = b.follow(b.submit_login(&login, "alice", common::PASSWORD).await).await;
    assert!(consent.body.contains("Allow access"), "{}", consent.body);
    let page = b.get(&op.authorize_url("webapp", "&prompt=none")).await;
    assert_redirected_error(&op, &page, "consent_required");
}

#[tokio::test]
async fn prompt_none_with_session_and_consent_issues_a_code() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let page = b.get(&op.authorize_url("webapp", "&prompt=none")).await;
    let q = query(page.location.as_deref().unwrap());
    assert!(q.contains_key("code"), "{q:?}");
    assert_eq!(q["state"], "st4te");
}

#[tokio::test]
async fn prompt_login_and_max_age_zero_force_a_new_login() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    for extra in ["&prompt=login", "&max_age=0"] {
        let page = b.follow(b.get(&op.authorize_url("webapp", extra)).await).await;
        assert!(page.body.contains("name=\"password\""), "{extra}: expected the login form");
        let done = b.follow(b.submit_login(&page, "alice", common::PASSWORD).await).await;
        let q = query(done.location.as_deref().unwrap());
        assert!(q.contains_key("code"), "{extra}: after login, a code (not another login): {q:?}");
    }
}

#[tokio::test]
async fn prompt_consent_asks_again_and_deny_is_access_denied() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=consent")).await).await;
    assert!(page.body.contains("name=\"decision\""), "consent page expected");
    let denied = b.submit_consent(&page, "deny").await;
    assert_redirected_error(&op, &denied, "access_denied");
}

#[tokio::test]
async fn consent_for_more_scopes_is_asked_again() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("webapp", "").replace("%20email%20profile", ""), "alice").await;
    let page = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    assert!(page.body.contains("See your email address"), "consent lists the new scopes in words");
}

#[tokio::test]
async fn id_token_hint_for_another_user_requires_login() {
    let op = op_with_client().await;
    op.add_user("mallory").await;
    let (_, secret) = op.add_client("hinted", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let b = Browser::new(&op);
    // Get an ID Token for alice.
    let callback = b.sign_in(&op.authorize_url("hinted", ""), "alice").await;
    let code = query(&callback)["code"].clone();
    let (_, tokens) =
        common::json(common::exchange_code(&op, "hinted", &secret.unwrap(), &code, Some(common::VERIFIER)).await).await;
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    // Same user: prompt=none succeeds.
    let page = b.get(&op.authorize_url("hinted", &format!("&prompt=none&id_token_hint={hint}"))).await;
    assert!(query(page.location.as_deref().unwrap()).contains_key("code"));
    // Another browser signed in as mallory: the hint names someone else.
    let other = Browser::new(&op);
    other.sign_in(&op.authorize_url("hinted", ""), "mallory").await;
    let page = other.get(&op.authorize_url("hinted", &format!("&prompt=none&id_token_hint={hint}"))).await;
    assert_redirected_error(&op, &page, "login_required");
}

#[tokio::test]
async fn login_hint_prefills_the_form() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "&login_hint=alice%40example.com")).await).await;
    assert!(page.body.contains("value=\"alice@example.com\""), "{}", page.body);
}

#[tokio::test]
async fn expired_or_unknown_interaction_is_an_error_page() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let page = b.get("/login?request=doesnotexist").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired or is unknown"));
    // Without the request parameter at all: a 4xx, never a 500.
    assert!(b.get("/login").await.status.is_client_error());
}

/// Core 3.1.2.6 `registration_not_supported`: the `registration` parameter (Core 7.2.1) is refused.
#[tokio::test]
async fn the_registration_parameter_is_not_supported() {
    let op = op_with_client().await;
    let page = Browser::new(&op).get(&op.authorize_url("webapp", "&registration=%7B%7D")).await;
    assert_redirected_error(&op, &page, "registration_not_supported");
}

/// RFC 6749 4.1.2.1 `unauthorized_client`: a code for a client that may not use the code grant, even
/// when `code` is among its response types.
#[tokio::test]
async fn a_code_for_a_client_without_the_code_grant_is_unauthorized() {
    let op = op_with_client().await;
    op.add_client("nocode", ClientAuthMethod::ClientSecretBasic, |c| {
        c.grant_types.retain(|g| *g != oxid::model::GrantType::AuthorizationCode);
    })
    .await;
    let page = Browser::new(&op).get(&op.authorize_url("nocode", "")).await;
    assert_redirected_error(&op, &page, "unauthorized_client");
    assert!(query(page.location.as_deref().unwrap())["error_description"].contains("authorization code"));
}

/// Core 11: offline access means a refresh token, so a client that may not refresh gets none, and the
/// granted scope says so.
#[tokio::test]
async fn offline_access_is_dropped_for_a_client_that_cannot_refresh() {
    let op = op_with_client().await;
    let (_, secret) = op
        .add_client("norefresh", ClientAuthMethod::ClientSecretBasic, |c| {
            c.grant_types.retain(|g| *g != oxid::model::GrantType::RefreshToken);
            c.skip_consent = true;
        })
        .await;
    let url = op.authorize_url("norefresh", "&prompt=consent").replace("scope=openid", "scope=openid%20offline_access");
    let code = query(&Browser::new(&op).sign_in(&url, "alice").await)["code"].clone();
    let secret = secret.unwrap();
    let exchange = common::exchange_code(&op, "norefresh", &secret, &code, Some(common::VERIFIER));
    let (status, tokens) = common::json(exchange.await).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert!(!tokens["scope"].as_str().unwrap().contains("offline_access"), "{tokens}");
}

/// A nonce is bounded (512 characters): longer is `invalid_request`, the limit itself is fine.
#[tokio::test]
async fn the_nonce_length_is_bounded() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let with_nonce =
        |n: usize| op.authorize_url("webapp", "").replace("nonce=n0nce", &format!("nonce={}", "n".repeat(n)));
    assert_redirected_error(&op, &b.get(&with_nonce(513)).await, "invalid_request");
    assert!(b.get(&with_nonce(512)).await.location.unwrap().starts_with("/login?request="));
}

/// Core 5.5.1: `sub` in the claims parameter names a user; an `id_token_hint` naming another one
/// makes the request contradictory.
#[tokio::test]
async fn id_token_hint_and_claims_sub_naming_different_users_is_invalid() {
    let op = op_with_client().await;
    let (_, secret) = op.add_client("hinted", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let b = Browser::new(&op);
    let code = query(&b.sign_in(&op.authorize_url("hinted", ""), "alice").await)["code"].clone();
    let (_, tokens) =
        common::json(common::exchange_code(&op, "hinted", &secret.unwrap(), &code, Some(common::VERIFIER)).await).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let claims = |sub: &str| urlencode(&format!(r#"{{"id_token":{{"sub":{{"value":"{sub}"}}}}}}"#));
    let url = op.authorize_url("hinted", &format!("&id_token_hint={hint}&claims={}", claims("sub-mallory")));
    assert_redirected_error(&op, &b.get(&url).await, "invalid_request");
    // The same user in both is consistent: the signed-in alice gets a code.
    let url = op.authorize_url("hinted", &format!("&id_token_hint={hint}&claims={}", claims("sub-alice")));
    assert!(query(&b.get(&url).await.location.unwrap()).contains_key("code"));
}

/// `require_pkce_for_all_clients` (RFC 9700 2.1.1): confidential clients need PKCE too.
#[tokio::test]
async fn pkce_can_be_required_of_every_client() {
    let without_pkce = |op: &TestOp| {
        op.authorize_url("webapp", "").replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), "")
    };
    let op = op_with_client().await;
    let page = Browser::new(&op).get(&without_pkce(&op)).await;
    assert!(page.location.unwrap().starts_with("/login?request="), "optional for confidential clients by default");
    let op = TestOp::start_with(|c| c.require_pkce_for_all_clients = true).await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    assert_redirected_error(&op, &Browser::new(&op).get(&without_pkce(&op)).await, "invalid_request");
}

/// Core 3.1.2.1 `prompt=select_account`: the account chooser when signed in, the login form when not;
/// it cannot be combined with `none`. (The chooser itself: `accounts.rs`.)
#[tokio::test]
async fn prompt_select_account_shows_the_account_chooser() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=select_account")).await).await;
    assert!(page.body.contains("name=\"password\""), "nobody to choose: sign in\n{}", page.body);
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=select_account")).await).await;
    assert!(page.body.contains("action=\"/select_account\"") && page.body.contains(">alice</button>"), "{}", page.body);
    let page = b.get(&op.authorize_url("webapp", "&prompt=none%20select_account")).await;
    assert_redirected_error(&op, &page, "invalid_request");
}

/// Hardening 4: a NUL byte (or another control character) in a query or form value is a 400 at the
/// edge on both backends (PostgreSQL cannot store NUL: it used to answer 500).
#[tokio::test]
async fn control_characters_are_refused_at_the_edge() {
    let op = op_with_client().await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    let (request, csrf) = (login.hidden("request"), login.hidden("csrf_token"));
    // Like a repeated parameter: the request cannot be read, so it is not trusted to name a redirect.
    assert_error_page(&b.get(&op.authorize_url("webapp", "&login_hint=a%00b")).await);
    for path in ["/login", "/consent", "/signup"] {
        let form = [("request", request.as_str()), ("csrf_token", &csrf), ("username", "al\0ice"), ("password", "x")];
        let page = b.post(path, &form).await;
        assert_eq!(page.status, 400, "{path}: {}", page.body);
        assert!(page.body.contains("control characters"), "{path}: {}", page.body);
    }
    for path in ["/authorize/resume?request=a%00b", "/login?request=%00", "/consent?request=x%00y"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 400, "{path}: {}", page.body);
    }
}

/// Hardening 6: what a request makes the OP keep while the user signs in is bounded: long values are
/// refused, and one address can leave only so many requests waiting (then `temporarily_unavailable`).
#[tokio::test]
async fn unauthenticated_state_is_bounded() {
    let op = TestOp::start_with(|c| c.pending_requests_per_ip = 3).await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let b = Browser::new(&op);
    for (name, max) in [("login_hint", 256), ("ui_locales", 256), ("claims_locales", 256)] {
        let page = b.get(&op.authorize_url("webapp", &format!("&{name}={}", "a".repeat(max + 1)))).await;
        assert_redirected_error(&op, &page, "invalid_request");
        assert!(query(page.location.as_deref().unwrap())["error_description"].contains(name));
    }
    let long_state = op.authorize_url("webapp", "").replace("state=st4te", &format!("state={}", "s".repeat(2049)));
    let location = b.get(&long_state).await.location.unwrap();
    assert_eq!(query(&location)["error"], "invalid_request");

    for _ in 0..3 {
        assert!(b.get(&op.authorize_url("webapp", "")).await.location.unwrap().starts_with("/login?request="));
    }
    let page = b.get(&op.authorize_url("webapp", "")).await;
    assert_redirected_error(&op, &page, "temporarily_unavailable");
}
