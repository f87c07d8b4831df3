//! Several accounts in one browser: the account chooser of `prompt=select_account` (Core 3.1.2.1), what
//! logout ends when a browser holds several accounts, and the account page (`/account`).

use crate::common;
use crate::logout::{TestRp, op_with_rp, sign_in, signed_in, verified_logout_token};

use std::collections::HashMap;

use common::{Browser, PASSWORD, Page, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, jwt_payload, query};
use oxid::model::{ClientAuthMethod, LogoutUri};
use serde_json::Value;

/// Signs `b` in as one more account (`prompt=login`, another username) and returns the ID Token's claims.
async fn add_account(op: &TestOp, b: &Browser, secret: &str, username: &str) -> Value {
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=login")).await).await;
    let page = b.follow(b.submit_login(&page, username, PASSWORD).await).await;
    id_token_claims(op, secret, &page).await
}

/// The claims of the ID Token the code in `page`'s redirect to the client is exchanged for.
async fn id_token_claims(op: &TestOp, secret: &str, page: &Page) -> Value {
    let location = page.location.clone().unwrap_or_else(|| panic!("{} {}", page.status, page.body));
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let (status, tokens) =
        json(exchange_code(op, "webapp", secret, &query(&location)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    jwt_payload(tokens["id_token"].as_str().unwrap())
}

/// The subject a `prompt=none` request is answered for: the browser's active account.
async fn active_subject(op: &TestOp, b: &Browser, secret: &str) -> Value {
    id_token_claims(op, secret, &b.get(&op.authorize_url("webapp", "&prompt=none")).await).await["sub"].clone()
}

async fn chooser(op: &TestOp, b: &Browser, extra: &str) -> Page {
    let page = b.follow(b.get(&op.authorize_url("webapp", &format!("&prompt=select_account{extra}"))).await).await;
    assert!(page.body.contains("action=\"/select_account\""), "{}", page.body);
    page
}

async fn choose(b: &Browser, chooser: &Page, sid: Option<&str>) -> Page {
    let request = chooser.hidden("request");
    let csrf = chooser.hidden("csrf_token");
    let mut form = vec![("request", request.as_str()), ("csrf_token", csrf.as_str())];
    form.extend(sid.map(|sid| ("sid", sid)));
    b.post("/select_account", &form).await
}

#[tokio::test]
async fn the_account_chooser_switches_accounts_and_login_hint_preselects() {
    let (_rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    op.add_user("bob").await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    let alice = jwt_payload(tokens["id_token"].as_str().unwrap());
    let bob = add_account(&op, &b, &secret, "bob").await;
    assert_ne!(alice["sid"], bob["sid"], "two sessions in one browser");
    assert_eq!(active_subject(&op, &b, &secret).await, bob["sub"], "the last sign-in is the active account");

    // Both accounts are offered; login_hint preselects alice's.
    let page = chooser(&op, &b, "&login_hint=alice").await;
    assert!(page.body.contains("aria-current=\"true\">alice</button>"), "{}", page.body);
    assert!(page.body.contains(">bob</button>"));
    // Without a hint, the active account is preselected.
    assert!(chooser(&op, &b, "").await.body.contains("aria-current=\"true\">bob</button>"));

    // Choosing alice answers the flow for her (no password asked) and makes her the active account.
    let chosen = b.follow(choose(&b, &page, Some(alice["sid"].as_str().unwrap())).await).await;
    let claims = id_token_claims(&op, &secret, &chosen).await;
    assert_eq!((&claims["sub"], &claims["sid"]), (&alice["sub"], &alice["sid"]));
    assert_eq!(active_subject(&op, &b, &secret).await, alice["sub"]);

    // "Use another account": the login form of the same flow.
    let page = chooser(&op, &b, "").await;
    let another = choose(&b, &page, None).await;
    assert!(another.location.as_deref().unwrap().starts_with("/login?request="), "{:?}", another.location);
    // A session that is not this browser's cannot be chosen: the chooser again.
    let other = Browser::new(&op);
    let (elsewhere, _) = sign_in(&op, &other, &secret, "").await;
    let elsewhere = jwt_payload(elsewhere["id_token"].as_str().unwrap());
    let refused = choose(&b, &page, Some(elsewhere["sid"].as_str().unwrap())).await;
    assert!(refused.location.as_deref().unwrap().starts_with("/select_account?request="), "{:?}", refused.location);
    // A pick without the form's CSRF token is refused.
    let forged = b.post("/select_account", &[("request", &page.hidden("request")), ("sid", "x")]).await;
    assert_eq!(forged.status, 400);
    // prompt=login after the chooser still asks for the password.
    let page = chooser(&op, &b, "%20login").await;
    let next = b.follow(choose(&b, &page, Some(bob["sid"].as_str().unwrap())).await).await;
    assert!(next.body.contains("name=\"password\""), "{}", next.body);
}

#[tokio::test]
async fn the_least_recent_of_too_many_accounts_is_signed_out() {
    let (rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    let alice = jwt_payload(tokens["id_token"].as_str().unwrap());
    // The active account and four others fit.
    for name in ["bob", "carol", "dave", "erin"] {
        op.add_user(name).await;
        add_account(&op, &b, &secret, name).await;
    }
    let page = chooser(&op, &b, "").await;
    assert_eq!(page.body.matches("name=\"sid\"").count(), 5);
    assert!(rp.hits().is_empty());
    // A sixth ends alice's session, as a logout would: her RP is told.
    op.add_user("frank").await;
    add_account(&op, &b, &secret, "frank").await;
    assert_eq!(rp.wait_for(1).await.len(), 1);
    assert_eq!(verified_logout_token(&op, &rp.logout_tokens()[0]).await["sid"], alice["sid"]);
    let page = chooser(&op, &b, "").await;
    assert_eq!(page.body.matches("name=\"sid\"").count(), 5);
    assert!(!page.body.contains(">alice</button>"));
}

#[tokio::test]
async fn logout_ends_the_hinted_account_or_with_confirmation_all() {
    let (rp, rp_base) = TestRp::start().await;
    let (op, secret) = op_with_rp(&rp_base).await;
    op.add_user("bob").await;
    let b = Browser::new(&op);
    let (tokens, _) = sign_in(&op, &b, &secret, "").await;
    let alice = jwt_payload(tokens["id_token"].as_str().unwrap());
    let bob = add_account(&op, &b, &secret, "bob").await;

    // The hint names alice's session (not the active one): it ends at once, bob stays signed in.
    let hint = tokens["id_token"].as_str().unwrap();
    let page = b.get(&crate::logout::logout_url(&op, &[("id_token_hint", hint)])).await;
    assert_eq!(page.status, 200, "the signed-out page");
    assert_eq!(rp.wait_for(1).await.len(), 1);
    assert_eq!(verified_logout_token(&op, &rp.logout_tokens()[0]).await["sid"], alice["sid"]);
    assert_eq!(active_subject(&op, &b, &secret).await, bob["sub"]);

    // logout_hint names bob's account (RP-Initiated Logout 2): the user confirms signing him out alone.
    let alice = add_account(&op, &b, &secret, "alice").await;
    let page = b.get(&crate::logout::logout_url(&op, &[("logout_hint", "bob")])).await;
    assert!(page.body.contains("<strong>bob</strong>"), "{}", page.body);
    let csrf = page.hidden("csrf_token");
    let done = b.post("/logout/confirm", &[("csrf_token", &csrf), ("logout_hint", "bob")]).await;
    assert_eq!(done.status, 200);
    assert_eq!(rp.wait_for(2).await.len(), 2);
    assert_eq!(verified_logout_token(&op, &rp.logout_tokens()[1]).await["sid"], bob["sid"]);
    assert_eq!(active_subject(&op, &b, &secret).await, alice["sub"]);

    // Without a hint the user confirms, for every account of the browser.
    add_account(&op, &b, &secret, "bob").await;
    let page = b.get(&op.url("/logout")).await;
    assert!(page.body.contains("alice, bob") || page.body.contains("bob, alice"), "{}", page.body);
    let csrf = page.hidden("csrf_token");
    let done = b.post("/logout/confirm", &[("csrf_token", &csrf)]).await;
    assert_eq!(done.status, 200);
    assert_eq!(rp.wait_for(4).await.len(), 4, "both sessions' notifications");
    assert!(!signed_in(&op, &b).await);
    assert!(chooser_is_gone(&op, &b).await);
}

/// Whether prompt=select_account finds no account left (the login form instead).
async fn chooser_is_gone(op: &TestOp, b: &Browser) -> bool {
    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=select_account")).await).await;
    page.body.contains("name=\"password\"")
}

/// The hidden input `name` of the first form after `marker` on the page.
fn hidden_after(page: &Page, marker: &str, name: &str) -> String {
    let at = page.body.find(marker).unwrap_or_else(|| panic!("no {marker} in\n{}", page.body));
    let field = format!("name=\"{name}\" value=\"");
    let start = page.body[at..].find(&field).unwrap() + at + field.len();
    let end = page.body[start..].find('"').unwrap() + start;
    common::unescape(&page.body[start..end])
}

#[tokio::test]
async fn the_account_page_ends_sessions_and_revokes_apps() {
    let (rp, rp_base) = TestRp::start().await;
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_user("bob").await;
    let backchannel = format!("{rp_base}/backchannel");
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, move |c| {
            c.metadata.backchannel_logout =
                Some(LogoutUri { uri: backchannel.parse().unwrap(), session_required: true });
        })
        .await;
    let secret = secret.unwrap();

    // Signed out: the page is a login form of its own.
    let me = Browser::new(&op);
    let page = me.get("/account").await;
    assert!(page.body.contains("action=\"/account/login\""), "{}", page.body);
    let csrf = page.hidden("csrf_token");
    let wrong = me.post("/account/login", &[("csrf_token", &csrf), ("username", "alice"), ("password", "nope")]).await;
    assert_eq!(wrong.status, 401);
    let login =
        me.post("/account/login", &[("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(login.location.as_deref(), Some("/account"));

    // Alice also signed in to webapp on another device, with offline access (consent given).
    let phone = Browser::new(&op);
    let url = op
        .authorize_url("webapp", "&prompt=consent")
        .replace("scope=openid%20email%20profile", "scope=openid%20offline_access");
    let callback = query(&phone.sign_in(&url, "alice").await);
    let (status, tokens) = json(exchange_code(&op, "webapp", &secret, &callback["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let phone_sid = jwt_payload(tokens["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    // Bob is signed in elsewhere: his session is not alice's to end.
    let bobs = Browser::new(&op);
    let bob_sid = jwt_payload(sign_in_as(&op, &bobs, &secret, "bob").await["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = me.get("/account").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(page.body.contains("<strong>alice</strong>"));
    assert_eq!(page.body.matches("name=\"sid\"").count(), 2, "both of alice's sessions, not bob's:\n{}", page.body);
    assert!(page.body.contains("This device"));
    assert!(page.body.contains("Apps: webapp app"), "the phone's session lists the app signed in through it");
    assert!(page.body.contains("Stay connected when you are not using it"), "the app's access:\n{}", page.body);
    let csrf = page.hidden("csrf_token");

    // Forged forms (no CSRF token) change nothing.
    let forged = me.post("/account/sessions/end", &[("sid", &phone_sid)]).await;
    assert_eq!(forged.status, 400);
    // Another user's session is not ended.
    me.post("/account/sessions/end", &[("csrf_token", &csrf), ("sid", &bob_sid)]).await;
    assert!(is_signed_in(&op, &bobs).await);

    // Ending the phone's session signs it out, and the app is told (Back-Channel Logout).
    let ended = me.post("/account/sessions/end", &[("csrf_token", &csrf), ("sid", &phone_sid)]).await;
    assert_eq!(ended.location.as_deref(), Some("/account"));
    assert_eq!(rp.wait_for(1).await.len(), 1);
    assert_eq!(verified_logout_token(&op, &rp.logout_tokens()[0]).await["sid"], phone_sid.as_str());
    let prompt_none = phone.get(&op.authorize_url("webapp", "&prompt=none")).await;
    assert_eq!(query(&prompt_none.location.unwrap())["error"], "login_required");
    // Offline access outlives the session (Core 11)...
    let refresh_with = |token: String| {
        let form = [("grant_type", "refresh_token".to_owned()), ("refresh_token", token)];
        reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(&form).send()
    };
    let (status, rotated) =
        json(refresh_with(tokens["refresh_token"].as_str().unwrap().to_owned()).await.unwrap()).await;
    assert_eq!(status, 200, "{rotated}");

    // ...until alice removes the app's access: its refresh tokens die, and it must ask again.
    let page = me.get("/account").await;
    let client_id = hidden_after(&page, "/account/apps/revoke", "client_id");
    assert_eq!(client_id, "webapp");
    let revoked = me.post("/account/apps/revoke", &[("csrf_token", &csrf), ("client_id", &client_id)]).await;
    assert_eq!(revoked.location.as_deref(), Some("/account"));
    // The rotated (live, unused) refresh token now fails: the grant is revoked, not merely reused.
    let (status, body) = json(refresh_with(rotated["refresh_token"].as_str().unwrap().to_owned()).await.unwrap()).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let page = me.get("/account").await;
    assert!(page.body.contains("No app has access to your account."), "{}", page.body);
    let again = me.follow(me.get(&op.authorize_url("webapp", "")).await).await;
    assert!(again.body.contains("name=\"decision\""), "consent is asked again");

    // Ending this device's own session signs the browser out.
    let page = me.get("/account").await;
    let own = hidden_after(&page, "This device", "sid");
    me.post("/account/sessions/end", &[("csrf_token", &csrf), ("sid", &own)]).await;
    assert!(me.get("/account").await.body.contains("action=\"/account/login\""));
    let events = op.store.audit_events(None, 0, 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == oxid::model::AuditKind::ConsentRevoked));
}

async fn sign_in_as(op: &TestOp, b: &Browser, secret: &str, username: &str) -> Value {
    let callback: HashMap<String, String> = query(&b.sign_in(&op.authorize_url("webapp", ""), username).await);
    json(exchange_code(op, "webapp", secret, &callback["code"], Some(VERIFIER)).await).await.1
}

async fn is_signed_in(op: &TestOp, b: &Browser) -> bool {
    let page = b.get(&op.authorize_url("webapp", "&prompt=none")).await;
    query(&page.location.unwrap()).contains_key("code")
}

/// The account page changes the password: the current one is required (and throttled as at login); the
/// new one is checked; every session ends with it, this one too.
#[tokio::test]
async fn the_password_is_changed_on_the_account_page() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let me = Browser::new(&op);
    let page = me.get("/account").await;
    let csrf = page.hidden("csrf_token");
    me.post("/account/login", &[("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)]).await;
    let change = |current: &'static str, new: &'static str, repeat: &'static str| {
        let (me, csrf) = (&me, csrf.clone());
        async move {
            let form = [
                ("csrf_token", csrf.as_str()),
                ("current_password", current),
                ("new_password", new),
                ("new_password_repeat", repeat),
            ];
            me.post("/account/password", &form).await
        }
    };
    let new = "a brand new passphrase 2026";
    assert_eq!(change("wrong password", new, new).await.status, 400, "the current password is required");
    assert_eq!(change(PASSWORD, new, "something else").await.status, 400);
    assert_eq!(change(PASSWORD, "short", "short").await.status, 400);
    assert!(me.get("/account").await.body.contains("<strong>alice</strong>"), "still signed in");
    let done = change(PASSWORD, new, new).await;
    assert_eq!(done.location.as_deref(), Some("/account"));
    assert!(me.get("/account").await.body.contains("action=\"/account/login\""), "signed out everywhere");
    let other = Browser::new(&op);
    let page = other.get("/account").await;
    let csrf = page.hidden("csrf_token");
    let old =
        other.post("/account/login", &[("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(old.status, 401);
    let ok = other.post("/account/login", &[("csrf_token", &csrf), ("username", "alice"), ("password", new)]).await;
    assert_eq!(ok.location.as_deref(), Some("/account"));
}
