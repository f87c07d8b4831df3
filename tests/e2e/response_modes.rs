//! Response modes for the code flow: query (default), fragment, and form_post (OAuth 2.0 Form Post
//! Response Mode), for codes and for errors.

use crate::common;

use base64::Engine;
use common::{Browser, PASSWORD, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, query};
use oxid::model::ClientAuthMethod;

async fn setup() -> (TestOp, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    (op, secret.unwrap())
}

/// The hidden fields of a form_post page.
fn fields(page: &common::Page) -> std::collections::HashMap<String, String> {
    ["code", "state", "iss", "error", "error_description"]
        .iter()
        .filter(|n| page.body.contains(&format!("name=\"{n}\"")))
        .map(|n| (n.to_string(), page.hidden(n)))
        .collect()
}

#[tokio::test]
async fn form_post_delivers_the_code_in_an_auto_submitting_form() {
    let (op, secret) = setup().await;
    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", "&response_mode=form_post")).await).await;
    let page = b.follow(b.submit_login(&login, "alice", PASSWORD).await).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = common::unescape(&page.body);
    assert!(body.contains(&format!("<form method=\"post\" action=\"{REDIRECT_URI}\">")), "{body}");
    assert!(page.body.contains("<button type=\"submit\">"), "a button for browsers without JavaScript");
    assert_eq!(page.headers["cache-control"], "no-store");
    let f = fields(&page);
    assert_eq!(f["state"], "st4te");
    assert_eq!(f["iss"], op.issuer);
    // The CSP allows exactly the page's own script (by hash) and posting only to the redirect URI.
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    let script = page.body.split("<script>").nth(1).unwrap().split("</script>").next().unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(oxid::crypto::sha256(script.as_bytes()));
    assert!(csp.contains(&format!("script-src 'sha256-{hash}'")), "{csp}");
    assert!(csp.contains(&format!("form-action {REDIRECT_URI}")), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"));
    // The code redeems like any other.
    let (status, tokens) = json(exchange_code(&op, "webapp", &secret, &f["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn form_post_carries_errors_too() {
    let (op, _) = setup().await;
    let page = Browser::new(&op).get(&op.authorize_url("webapp", "&response_mode=form_post&prompt=none")).await;
    assert_eq!(page.status, 200);
    let f = fields(&page);
    assert_eq!(f["error"], "login_required");
    assert_eq!(f["state"], "st4te");
    assert!(!f.contains_key("code"));
}

#[tokio::test]
async fn fragment_mode_puts_the_response_after_the_hash() {
    let (op, _) = setup().await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let page = b.get(&op.authorize_url("webapp", "&response_mode=fragment")).await;
    let location = page.location.unwrap();
    let (base, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(base, REDIRECT_URI);
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(fragment.as_bytes()).into_owned().collect();
    assert!(params.contains_key("code"));
    assert_eq!(params["state"], "st4te");
}

#[tokio::test]
async fn an_unknown_response_mode_is_an_error_in_the_default_mode() {
    let (op, _) = setup().await;
    let page = Browser::new(&op).get(&op.authorize_url("webapp", "&response_mode=web_message")).await;
    let q = query(page.location.as_deref().unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "st4te");
}

#[tokio::test]
async fn discovery_advertises_the_response_modes() {
    let (op, _) = setup().await;
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["response_modes_supported"], serde_json::json!(["query", "fragment", "form_post"]));
}
