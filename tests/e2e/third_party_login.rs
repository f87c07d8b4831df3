//! Third-party initiated login (Core 4): the OP sends the browser to the client's `initiate_login_uri`
//! with `iss`, `login_hint` and `target_link_uri`; the client's own request then prefills the login.

use crate::common;

use common::{Browser, TestOp, query};
use oxid::model::ClientAuthMethod;

const INITIATE: &str = "https://rp.example/start-login";

#[tokio::test]
async fn the_op_initiates_a_login_at_the_client() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| {
        c.metadata.initiate_login_uri = Some(INITIATE.into());
    })
    .await;
    op.add_client("plain", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let b = Browser::new(&op);

    let target = "https://rp.example/reports?id=7";
    let page = b.get(&format!("/initiate-login/webapp?target_link_uri={}", common::urlencode(target))).await;
    assert_eq!(page.status, 303);
    let location = page.location.unwrap();
    assert!(location.starts_with(INITIATE), "{location}");
    let q = query(&location);
    assert_eq!(q["iss"], op.issuer, "Core 4: iss is REQUIRED");
    assert_eq!(q["target_link_uri"], target);
    assert!(!q.contains_key("login_hint"), "nobody is signed in and no hint was given");

    // The client answers with an ordinary request carrying the hint; the login form is prefilled.
    let hinted = b.get("/initiate-login/webapp?login_hint=alice").await.location.unwrap();
    assert_eq!(query(&hinted)["login_hint"], "alice");
    let login = b.follow(b.get(&op.authorize_url("webapp", "&login_hint=alice")).await).await;
    assert!(login.body.contains("value=\"alice\""), "{}", login.body);

    // Signed in, the OP still passes no hint of its own: any client with an initiate_login_uri could
    // send the browser here and learn who is signed in.
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let signed_in = b.get("/initiate-login/webapp").await.location.unwrap();
    assert!(!query(&signed_in).contains_key("login_hint"), "{signed_in}");

    // Only clients that registered an initiate_login_uri.
    assert_eq!(b.get("/initiate-login/plain").await.status, 404);
    assert_eq!(b.get("/initiate-login/nobody").await.status, 404);
    let long = "x".repeat(3000);
    assert_eq!(b.get(&format!("/initiate-login/webapp?login_hint={long}")).await.status, 400);
}
