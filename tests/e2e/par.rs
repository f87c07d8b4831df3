//! Pushed Authorization Requests (RFC 9126): the request pushed with client authentication, the browser
//! sent with the one-time `request_uri`, on one node or another; reuse, expiry, another client's
//! reference and required PAR refused.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    Browser, CHALLENGE, REDIRECT_URI, TestOp, VERIFIER, exchange_code, exchange_code_at, json, jwt_payload, query,
};
use oxid::model::{ClientAuthMethod, RequestObjectAlg};
use serde_json::{Value, json};

/// The parameters of a code flow request, as a client pushes them.
fn request(client_id: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client_id.to_owned()),
        ("redirect_uri", REDIRECT_URI.to_owned()),
        ("scope", "openid email".to_owned()),
        ("state", "pushed-state".to_owned()),
        ("nonce", "pushed-nonce".to_owned()),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ];
    form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    form
}

/// Pushes `form` to `node` as `client_id` with client_secret_basic; returns the status and JSON answer.
async fn push(node: &str, client_id: &str, secret: &str, form: &[(&str, String)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{node}/par"))
        .basic_auth(client_id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn authorize_url(node: &str, client_id: &str, request_uri: &str) -> String {
    format!("{node}/authorize?client_id={client_id}&request_uri={}", common::urlencode(request_uri))
}

async fn op_with_client(adjust: impl FnOnce(&mut oxid::model::Client) + Send + 'static) -> (TestOp, String) {
    let op = TestOp::start_cluster(2, |_| {}).await;
    op.add_user("alice").await;
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, move |c| {
            c.skip_consent = true;
            adjust(c);
        })
        .await;
    (op, secret.unwrap())
}

#[tokio::test]
async fn a_pushed_request_signs_in_once_on_any_node() {
    let (op, secret) = op_with_client(|_| {}).await;
    let discovery: Value =
        reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["pushed_authorization_request_endpoint"], op.url("/par"));
    assert_eq!(discovery["require_pushed_authorization_requests"], false);

    let (status, pushed) = push(&op.nodes[0], "webapp", &secret, &request("webapp", &[])).await;
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().unwrap();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{request_uri}");
    assert_eq!(pushed["expires_in"], 60);

    // Used on the other node; the query's own parameters (here a different scope) are ignored (RFC 9126 4).
    let url = format!("{}&scope=openid%20phone", authorize_url(&op.nodes[1], "webapp", request_uri));
    let b = Browser::for_issuer(&op.nodes[1]);
    let callback = query(&b.sign_in(&url, "alice").await);
    assert_eq!(callback["state"], "pushed-state");
    let (status, tokens) = json(exchange_code(&op, "webapp", &secret, &callback["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "email openid", "the pushed scope, not the query's");
    assert_eq!(jwt_payload(tokens["id_token"].as_str().unwrap())["nonce"], "pushed-nonce");

    // Once only, on either node.
    for node in &op.nodes {
        let page = Browser::for_issuer(node).get(&authorize_url(node, "webapp", request_uri)).await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("invalid_request_uri"), "{}", page.body);
    }
}

#[tokio::test]
async fn bad_pushes_and_references_are_refused() {
    let (op, secret) = op_with_client(|_| {}).await;
    let node = &op.nodes[0];
    // No client authentication: 401.
    let anonymous =
        reqwest::Client::new().post(format!("{node}/par")).form(&request("webapp", &[])).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // RFC 9126 2.1: no request_uri inside; the request is validated at once (a JSON error, never a redirect).
    let nested = push(node, "webapp", &secret, &request("webapp", &[("request_uri", "https://rp.example/r")])).await;
    assert_eq!((nested.0, nested.1["error"].as_str()), (400, Some("invalid_request")));
    let mut bad_redirect = request("webapp", &[]);
    bad_redirect[2].1 = "https://attacker.example/cb".into();
    let refused = push(node, "webapp", &secret, &bad_redirect).await;
    assert_eq!((refused.0, refused.1["error"].as_str()), (400, Some("invalid_request")), "{}", refused.1);
    let no_pkce: Vec<_> =
        request("webapp", &[]).into_iter().filter(|(k, _)| !k.starts_with("code_challenge")).collect();
    assert_eq!(push(node, "webapp", &secret, &no_pkce).await.0, 201, "PKCE stays optional for confidential clients");
    let other_client = push(node, "webapp", &secret, &request("someone-else", &[])).await;
    assert_eq!(other_client.0, 400);

    // Another client's reference is refused (and spent).
    let (_, other_secret) =
        op.add_client("other", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let (_, pushed) = push(node, "other", other_secret.as_deref().unwrap(), &request("other", &[])).await;
    let stolen = Browser::new(&op).get(&authorize_url(node, "webapp", pushed["request_uri"].as_str().unwrap())).await;
    assert_eq!(stolen.status, 400);
    assert!(stolen.body.contains("invalid_request_uri"));
    // Expired after its 60 seconds.
    let (_, pushed) = push(node, "webapp", &secret, &request("webapp", &[])).await;
    op.advance_clock(61);
    let late = Browser::new(&op).get(&authorize_url(node, "webapp", pushed["request_uri"].as_str().unwrap())).await;
    assert_eq!(late.status, 400);
    // A made-up reference.
    let made_up = Browser::new(&op).get(&authorize_url(node, "webapp", "urn:ietf:params:oauth:request_uri:nope")).await;
    assert_eq!(made_up.status, 400);
}

#[tokio::test]
async fn a_client_that_requires_par_cannot_skip_it() {
    let (op, _) = op_with_client(|c| c.metadata.require_pushed_authorization_requests = true).await;
    // Front-channel request: refused to the client's redirect URI (RFC 9126 5).
    let page = Browser::new(&op).get(&op.authorize_url("webapp", "")).await;
    let location = page.location.expect("a redirect with the error");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(query(&location)["error"], "invalid_request");
    // Pushed: fine, with a request object inside (unsigned, as this client registered).
    let (op2, secret2) = op_with_client(|c| {
        c.metadata.require_pushed_authorization_requests = true;
        c.metadata.request_object_signing_alg = Some(RequestObjectAlg::None);
    })
    .await;
    let claims = json!({"client_id": "webapp", "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid",
        "nonce": "from-object", "code_challenge": CHALLENGE, "code_challenge_method": "S256"});
    let object =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let form = vec![("client_id", "webapp".to_owned()), ("request", object)];
    let (status, pushed) = push(&op2.nodes[0], "webapp", &secret2, &form).await;
    assert_eq!(status, 201, "{pushed}");
    let b = Browser::new(&op2);
    let callback = query(
        &b.sign_in(&authorize_url(&op2.nodes[0], "webapp", pushed["request_uri"].as_str().unwrap()), "alice").await,
    );
    let (status, tokens) =
        json(exchange_code_at(&op2.nodes[1], "webapp", &secret2, &callback["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(jwt_payload(tokens["id_token"].as_str().unwrap())["nonce"], "from-object");
}
