//! `prompt=create` (Initiating User Registration via OpenID Connect 1.0): the sign-up page, the new
//! account signed in and the flow completed, the form's rules, and the server with sign-up turned off.

use crate::common;

use common::{Browser, Page, TestOp, VERIFIER, exchange_code, json, query};
use oxid::model::ClientAuthMethod;

const NEW_PASSWORD: &str = "a brand new password";

async fn setup(adjust: impl FnOnce(&mut oxid::config::Config)) -> (TestOp, String) {
    let op = TestOp::start_with(adjust).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    (op, secret.unwrap())
}

async fn submit_signup(b: &Browser, page: &Page, fields: &[(&str, &str)]) -> Page {
    let request = page.hidden("request");
    let csrf = page.hidden("csrf_token");
    let mut form = vec![("request", request.as_str()), ("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post("/signup", &form).await
}

fn new_account<'a>(username: &'a str, password: &'a str, confirm: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", username),
        ("name", "Carol Example"),
        ("email", "carol@example.com"),
        ("password", password),
        ("password_confirm", confirm),
    ]
}

#[tokio::test]
async fn prompt_create_signs_up_and_completes_the_flow() {
    let (op, secret) = setup(|_| {}).await;
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=create")).await).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Create an account") && page.body.contains("name=\"password_confirm\""),
        "{}",
        page.body
    );
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));

    let consent = b.follow(submit_signup(&b, &page, &new_account("carol", NEW_PASSWORD, NEW_PASSWORD)).await).await;
    assert!(consent.body.contains("name=\"decision\""), "signed in, on to consent: {}", consent.body);
    let callback = b.follow(b.submit_consent(&consent, "allow").await).await.location.unwrap();
    let (status, tokens) =
        json(exchange_code(&op, "webapp", &secret, &query(&callback)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let (_, info) = json(common::userinfo(&op, tokens["access_token"].as_str().unwrap()).await).await;
    assert_eq!(info["preferred_username"], "carol");
    assert_eq!(info["email"], "carol@example.com");
    assert_eq!(info["name"], "Carol Example");

    // The new account signs in like any other.
    let other = Browser::new(&op);
    let login = other.follow(other.get(&op.authorize_url("webapp", "")).await).await;
    let after = other.follow(other.submit_login(&login, "carol", NEW_PASSWORD).await).await;
    let callback = after.location.unwrap_or_else(|| panic!("back to the client (consent remembered): {}", after.body));
    assert!(query(&callback).contains_key("code"));

    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert!(doc["prompt_values_supported"].as_array().unwrap().contains(&serde_json::json!("create")));
}

#[tokio::test]
async fn the_login_page_links_to_sign_up() {
    let (op, _) = setup(|_| {}).await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    let request = login.hidden("request");
    assert!(common::unescape(&login.body).contains(&format!("href=\"/signup?request={request}\"")), "{}", login.body);
    let page = b.get(&format!("/signup?request={request}")).await;
    let consent = b.follow(submit_signup(&b, &page, &new_account("dave", NEW_PASSWORD, NEW_PASSWORD)).await).await;
    assert!(consent.body.contains("name=\"decision\""), "{}", consent.body);
}

#[tokio::test]
async fn sign_up_rules() {
    let (op, _) = setup(|c| c.signup_max_per_ip = 3).await;
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=create")).await).await;
    let cases = [
        (new_account("alice", NEW_PASSWORD, NEW_PASSWORD), "username is taken"),
        (new_account("erin", NEW_PASSWORD, "something else"), "do not match"),
        (new_account("erin", "short", "short"), "8 to 1024 characters"),
        (new_account("two words", NEW_PASSWORD, NEW_PASSWORD), "without spaces"),
        // RFC 8265: one canonical form, so `ALICE` is alice's name; no invisible or look-alike names.
        (new_account("ALICE", NEW_PASSWORD, NEW_PASSWORD), "username is taken"),
        (new_account("er\u{200b}in", NEW_PASSWORD, NEW_PASSWORD), "without spaces"),
        (new_account("p\u{0430}ypal", NEW_PASSWORD, NEW_PASSWORD), "without spaces"),
        (new_account("", NEW_PASSWORD, NEW_PASSWORD), "without spaces"),
    ];
    for (fields, message) in cases {
        let again = submit_signup(&b, &page, &fields).await;
        assert_eq!(again.status, 400, "{message}");
        assert!(again.body.contains(message), "{message}: {}", again.body);
        assert!(!again.body.contains(NEW_PASSWORD), "the password is never echoed");
    }
    let mut bad_email = new_account("erin", NEW_PASSWORD, NEW_PASSWORD);
    bad_email[2] = ("email", "not-an-address");
    assert_eq!(submit_signup(&b, &page, &bad_email).await.status, 400);

    // A form without its CSRF token is refused (and creates nothing).
    let forged = b
        .post(
            "/signup",
            &[
                ("request", &page.hidden("request")),
                ("username", "mallory"),
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, 400);
    assert!(op.store.user_by_username("mallory").await.unwrap().is_none());

    // Three attempts per IP in the window here. The two taken usernames above counted (no probing for
    // usernames beyond the bound); the mistakes caught before any work did not. So one account
    // succeeds, and the next attempt is refused.
    assert_eq!(submit_signup(&b, &page, &new_account("erin", NEW_PASSWORD, NEW_PASSWORD)).await.status, 303);
    let b2 = Browser::new(&op);
    let page2 = b2.follow(b2.get(&op.authorize_url("webapp", "&prompt=create")).await).await;
    let refused = submit_signup(&b2, &page2, &new_account("frank", NEW_PASSWORD, NEW_PASSWORD)).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("Too many accounts"), "{}", refused.body);
}

#[tokio::test]
async fn sign_up_can_be_turned_off() {
    let (op, _) = setup(|c| c.self_registration = false).await;
    let b = Browser::new(&op);
    let location = b.get(&op.authorize_url("webapp", "&prompt=create")).await.location.unwrap();
    let q = query(&location);
    assert_eq!(q["error"], "invalid_request", "a prompt value the OP does not offer");
    assert_eq!(q["state"], "st4te");
    let login = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    assert!(!login.body.contains("/signup"), "no link");
    let page = b.get(&format!("/signup?request={}", login.hidden("request"))).await;
    assert_eq!(page.status, 400);
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert!(!doc["prompt_values_supported"].as_array().unwrap().contains(&serde_json::json!("create")));
}

/// The per-IP sign-up bound holds when many sign-ups arrive at once.
#[tokio::test]
async fn the_sign_up_bound_holds_against_a_concurrent_burst() {
    let (op, _) = setup(|c| c.signup_max_per_ip = 4).await;
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=create")).await).await;
    let (request, csrf) = (page.hidden("request"), page.hidden("csrf_token"));
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..30 {
        let username = format!("burst{i}");
        let form = [
            ("request", request.clone()),
            ("csrf_token", csrf.clone()),
            ("username", username),
            ("password", NEW_PASSWORD.to_owned()),
            ("password_confirm", NEW_PASSWORD.to_owned()),
        ];
        let (http, url) = (b.http.clone(), op.url("/signup"));
        posts.spawn(async move { http.post(url).form(&form).send().await.unwrap().status().as_u16() });
    }
    let created = posts.join_all().await.into_iter().filter(|s| *s == 303).count();
    assert!((1..=4).contains(&created), "{created} accounts created");
    let users = op.store.users().await.unwrap();
    assert_eq!(users.iter().filter(|u| u.username.starts_with("burst")).count(), created);
}
