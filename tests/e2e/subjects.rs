//! Subject identifier types (Core 8): public, and pairwise per sector (Core 8.1), with the sector taken
//! from the redirect URIs' host or from a fetched `sector_identifier_uri` document.

use crate::common;

use common::{Browser, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, query};
use oxid::fetch::Fetcher;
use oxid::model::{ClientAuthMethod, SubjectType};
use oxid::registration::settle_sector_identifier;
use serde_json::Value;

/// Serves `document` at `http://localhost:PORT/sector.json`; returns that URL.
async fn serve_sector_document(document: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app =
        axum::Router::new().route("/sector.json", axum::routing::get(move || async move { axum::Json(document) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://localhost:{port}/sector.json")
}

/// A client registered the way `oxid client add` does it: the sector settled by the registration rules.
async fn pairwise_client(op: &TestOp, id: &str, sector_identifier_uri: Option<String>) -> Result<String, String> {
    let (mut client, secret) = op.add_client(id, ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    op.store.delete_client(&client.id).await.unwrap();
    client.metadata.subject_type = SubjectType::Pairwise;
    client.metadata.sector_identifier_uri = sector_identifier_uri;
    settle_sector_identifier(&mut client, &Fetcher::new(true)).await?;
    op.store.insert_client(&client).await.unwrap();
    Ok(secret.unwrap())
}

/// The `sub` of the ID Token and of UserInfo for a sign-in of alice at `client`; they must agree.
async fn subject(op: &TestOp, browser: &Browser, client: &str, secret: &str) -> String {
    let callback = browser.sign_in(&op.authorize_url(client, ""), "alice").await;
    let (status, tokens) =
        json(exchange_code(op, client, secret, &query(&callback)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = common::jwt_payload(tokens["id_token"].as_str().unwrap());
    let (_, info) = json(common::userinfo(op, tokens["access_token"].as_str().unwrap()).await).await;
    assert_eq!(info["sub"], claims["sub"], "UserInfo and the ID Token agree (Core 5.3.2)");
    claims["sub"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn pairwise_subjects_are_stable_per_sector_and_differ_across_sectors() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, public_secret) =
        op.add_client("public", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    // Two clients of the sector 127.0.0.1 (their redirect URIs' host).
    let a1 = pairwise_client(&op, "a1", None).await.unwrap();
    let a2 = pairwise_client(&op, "a2", None).await.unwrap();
    // One whose sector is the host of its sector_identifier_uri, which lists its redirect URI.
    let uri = serve_sector_document(serde_json::json!([REDIRECT_URI, "https://other.example/cb"])).await;
    let b1 = pairwise_client(&op, "b1", Some(uri)).await.unwrap();

    let browser = Browser::new(&op);
    assert_eq!(subject(&op, &browser, "public", public_secret.as_deref().unwrap()).await, "sub-alice");
    let first = subject(&op, &browser, "a1", &a1).await;
    assert_ne!(first, "sub-alice", "pairwise hides the user's id");
    assert_eq!(subject(&op, &browser, "a1", &a1).await, first, "stable across sign-ins");
    assert_eq!(subject(&op, &browser, "a2", &a2).await, first, "the same within a sector");
    let other_sector = subject(&op, &browser, "b1", &b1).await;
    assert_ne!(other_sector, first, "different across sectors");
    assert_ne!(other_sector, "sub-alice");

    // An id_token_hint carries the pairwise sub, and it is recognised (Core 3.1.2.1).
    let callback = browser.sign_in(&op.authorize_url("a1", ""), "alice").await;
    let (_, tokens) = json(exchange_code(&op, "a1", &a1, &query(&callback)["code"], Some(VERIFIER)).await).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let page = browser.get(&op.authorize_url("a1", &format!("&prompt=none&id_token_hint={hint}"))).await;
    assert!(query(&page.location.unwrap()).contains_key("code"));

    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["public", "pairwise"]));
}

/// Core 8.1: the sector_identifier_uri document must list every redirect URI; it must be reachable
/// and be a JSON array.
#[tokio::test]
async fn sector_identifier_uri_is_checked_at_registration() {
    let op = TestOp::start().await;
    let missing = serve_sector_document(serde_json::json!(["https://other.example/cb"])).await;
    let err = pairwise_client(&op, "c1", Some(missing)).await.unwrap_err();
    assert!(err.contains(REDIRECT_URI), "{err}");
    let not_a_list = serve_sector_document(serde_json::json!({"redirect_uris": [REDIRECT_URI]})).await;
    for (uri, expected) in [
        (not_a_list, "not the JSON expected"),
        ("http://127.0.0.1:9/nothing-here".to_owned(), "fetch failed"),
        ("http://sector.example/s.json".to_owned(), "only https URLs are fetched"),
    ] {
        let err = pairwise_client(&op, "c2", Some(uri.clone())).await.unwrap_err();
        assert!(err.contains(expected), "{uri}: {err}");
    }
}
