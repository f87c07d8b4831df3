//! Two-step sign-in: an authenticator app (TOTP, RFC 6238) set up on the account page with codes this
//! test computes, then asked for after the password; recovery codes; `amr` and `acr` in the ID Token.

use crate::common;

use common::{Browser, PASSWORD, Page, TestOp, VERIFIER, exchange_code, json, jwt_payload, query};
use oxid::model::ClientAuthMethod;
use totp_rs::{Algorithm, Secret, TOTP};

/// The code an authenticator app shows for `secret` at `seconds_ahead` of the real time (the servers'
/// clock is moved by the same amount).
fn code(secret: &str, seconds_ahead: u64) -> String {
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        1,
        30,
        Secret::Encoded(secret.into()).to_bytes().unwrap(),
        None,
        String::new(),
    );
    totp.generate(oxid::model::now() as u64 + seconds_ahead)
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body.find(start).unwrap_or_else(|| panic!("no {start} in\n{body}")) + start.len();
    &body[from..from + body[from..].find(end).unwrap()]
}

async fn account_login(b: &Browser) {
    let page = b.get("/account").await;
    let csrf = page.hidden("csrf_token");
    b.post("/account/login", &[("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)]).await;
}

/// The password step of a sign-in to webapp; the page it leads to.
async fn password_step(op: &TestOp, b: &Browser) -> Page {
    let page = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    b.follow(b.submit_login(&page, "alice", PASSWORD).await).await
}

async fn second_step(b: &Browser, page: &Page, code: &str) -> Page {
    b.post("/login/second-factor", &[("csrf_token", &page.hidden("csrf_token")), ("code", code)]).await
}

#[tokio::test]
async fn an_authenticator_app_is_asked_for_after_the_password() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let secret = secret.unwrap();

    // Set up on the account page: scan (here: read the key), confirm with a code.
    let me = Browser::new(&op);
    account_login(&me).await;
    let account = me.get("/account").await;
    assert!(account.body.contains("Sign-in asks only for your password."));
    let setup = me.post("/account/totp/begin", &[("csrf_token", &account.hidden("csrf_token"))]).await;
    assert!(setup.body.contains("<svg"), "a QR code drawn in the page");
    let key = between(&setup.body, "<code id=\"totp-secret\">", "</code>").to_owned();
    let wrong =
        me.post("/account/totp/confirm", &[("csrf_token", &setup.hidden("csrf_token")), ("code", "000000")]).await;
    assert_eq!(wrong.status, 400);
    let done = me
        .post("/account/totp/confirm", &[("csrf_token", &setup.hidden("csrf_token")), ("code", &code(&key, 0))])
        .await;
    let codes: Vec<String> =
        done.body.split("<li><code>").skip(1).map(|s| s[..s.find('<').unwrap()].to_owned()).collect();
    assert_eq!(codes.len(), 10, "{}", done.body);

    // A sign-in now asks for the code after the password.
    let b = Browser::new(&op);
    let page = password_step(&op, &b).await;
    assert!(page.body.contains("action=\"/login/second-factor\""), "{}", page.body);
    assert_eq!(second_step(&b, &page, "123456").await.status, 401);
    // The code of the step used to confirm was spent: the next step's.
    op.advance_clock(30);
    let next = code(&key, 30);
    let location = b.follow(second_step(&b, &page, &next).await).await.location.unwrap();
    let (status, tokens) =
        json(exchange_code(&op, "webapp", &secret, &query(&location)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]), "RFC 8176");
    assert_eq!(claims["acr"], "urn:oxid:acr:mfa");

    // The same code again, in another sign-in: refused. A recovery code works, once.
    let other = Browser::new(&op);
    let page = password_step(&op, &other).await;
    assert_eq!(second_step(&other, &page, &next).await.status, 401, "a code works once");
    let recovered = other.follow(second_step(&other, &page, &codes[0].to_uppercase()).await).await;
    assert!(recovered.location.is_some_and(|l| l.starts_with(common::REDIRECT_URI)), "{}", recovered.body);
    let third = Browser::new(&op);
    let page = password_step(&op, &third).await;
    assert_eq!(second_step(&third, &page, &codes[0]).await.status, 401, "a recovery code works once");
    let account = me.get("/account").await;
    assert!(account.body.contains("Recovery codes left: 9"), "{}", account.body);

    // The operator sees it (`oxid user mfa show`); turned off on the account page, the password is enough
    // again; `oxid user mfa reset` (a lost phone) also ends the user's sessions.
    let cli = |args: &[&str]| String::from_utf8(crate::cli::oxid(&op.database_url, args, None).stdout).unwrap();
    let shown = cli(&["user", "mfa", "show", "alice"]);
    assert!(shown.contains("authenticator_app: on") && shown.contains("recovery_codes_left: 9"), "{shown}");
    me.post("/account/totp/remove", &[("csrf_token", &account.hidden("csrf_token"))]).await;
    assert!(cli(&["user", "mfa", "show", "alice"]).contains("authenticator_app: off"));
    let fourth = Browser::new(&op);
    let page = password_step(&op, &fourth).await;
    assert!(page.location.is_some_and(|l| l.starts_with(common::REDIRECT_URI)), "no second step: {}", page.body);
    assert!(cli(&["user", "mfa", "reset", "alice"]).contains("session(s) ended"));
    assert!(me.get("/account").await.body.contains("action=\"/account/login\""), "signed out by the reset");
    // A second step without the password's cookie is refused.
    let stranger = Browser::new(&op);
    assert_eq!(stranger.get("/login/second-factor").await.status, 400);
}

/// Step-up (Core 3.1.2.1 `acr_values`, 5.5.1.1 essential `acr`): a session signed in with the password
/// alone is asked for the second factor, within the same session, when a client asks for its `acr`.
#[tokio::test]
async fn a_client_asking_for_the_second_factor_steps_the_session_up() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_user("bob").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let secret = secret.unwrap();
    let redeem = |location: String| {
        let (op, secret) = (&op, secret.clone());
        async move {
            let (status, tokens) =
                json(exchange_code(op, "webapp", &secret, &query(&location)["code"], Some(VERIFIER)).await).await;
            assert_eq!(status, 200, "{tokens}");
            jwt_payload(tokens["id_token"].as_str().unwrap())
        }
    };
    // Signed in with the password; the authenticator is set up afterwards, in the same session.
    let b = Browser::new(&op);
    let first = redeem(b.sign_in(&op.authorize_url("webapp", ""), "alice").await).await;
    assert_eq!(first["acr"], "urn:oxid:acr:password");
    let account = b.get("/account").await;
    let setup = b.post("/account/totp/begin", &[("csrf_token", &account.hidden("csrf_token"))]).await;
    let key = between(&setup.body, "<code id=\"totp-secret\">", "</code>").to_owned();
    b.post("/account/totp/confirm", &[("csrf_token", &setup.hidden("csrf_token")), ("code", &code(&key, 0))]).await;

    // The client prefers the second factor's acr: the same session is asked for a code, not a login.
    let asked = b.follow(b.get(&op.authorize_url("webapp", "&acr_values=urn:oxid:acr:mfa")).await).await;
    assert!(asked.body.contains("action=\"/login/second-factor\""), "{}", asked.body);
    assert!(!asked.body.contains("name=\"password\""));
    op.advance_clock(30);
    let location = b.follow(second_step(&b, &asked, &code(&key, 30)).await).await.location.unwrap();
    let stepped = redeem(location).await;
    assert_eq!(stepped["acr"], "urn:oxid:acr:mfa");
    assert_eq!(stepped["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(stepped["sid"], first["sid"], "the same session, stepped up");
    // prompt=none now gets the stepped-up session.
    let silent =
        redeem(b.get(&op.authorize_url("webapp", "&acr_values=urn:oxid:acr:mfa&prompt=none")).await.location.unwrap())
            .await;
    assert_eq!(silent["acr"], "urn:oxid:acr:mfa");

    // Bob has no second factor: a voluntary wish gets the password's level; an essential one is unmet.
    let bobs = Browser::new(&op);
    let voluntary =
        redeem(bobs.sign_in(&op.authorize_url("webapp", "&acr_values=urn:oxid:acr:mfa"), "bob").await).await;
    assert_eq!(voluntary["acr"], "urn:oxid:acr:password");
    let essential = common::urlencode(r#"{"id_token":{"acr":{"essential":true,"value":"urn:oxid:acr:mfa"}}}"#);
    let page = bobs.get(&op.authorize_url("webapp", &format!("&claims={essential}"))).await;
    assert_eq!(query(&page.location.unwrap())["error"], "unmet_authentication_requirements");
}

/// Second factors are changed only soon after a login: later, the account page asks for the password
/// again first.
#[tokio::test]
async fn changing_second_factors_needs_a_recent_login() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let me = Browser::new(&op);
    account_login(&me).await;
    op.advance_clock(601);
    let account = me.get("/account").await;
    let later = me.post("/account/totp/begin", &[("csrf_token", &account.hidden("csrf_token"))]).await;
    assert!(later.body.contains("enter your password again") && later.body.contains("action=\"/account/login\""));
    assert!(!later.body.contains("<svg"));
    account_login(&me).await;
    let account = me.get("/account").await;
    let setup = me.post("/account/totp/begin", &[("csrf_token", &account.hidden("csrf_token"))]).await;
    assert!(setup.body.contains("<svg"), "{}", setup.body);
}

/// A client that requires the second factor's acr (`client add --require-acr`): a user without one sets
/// it up during the sign-in, which then goes on with the second factor's acr.
#[tokio::test]
async fn a_required_second_factor_is_set_up_during_the_sign_in() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.skip_consent = true;
            c.metadata.required_acr = Some("urn:oxid:acr:mfa".into());
        })
        .await;
    let b = Browser::new(&op);
    let setup = password_step(&op, &b).await;
    assert!(
        setup.body.contains("<svg") && setup.body.contains("name=\"request\""),
        "{} {:?} {}",
        setup.status,
        setup.location,
        setup.body
    );
    let key = between(&setup.body, "<code id=\"totp-secret\">", "</code>").to_owned();
    let form =
        [("csrf_token", setup.hidden("csrf_token")), ("request", setup.hidden("request")), ("code", code(&key, 0))];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let codes = b.post("/account/totp/confirm", &form).await;
    assert!(codes.body.contains("recovery") || codes.body.contains("Recovery"), "{}", codes.body);
    let resume = common::unescape(between(&codes.body, "<a href=\"", "\" id=\"continue\""));
    let location = b.follow(b.get(&resume).await).await.location.unwrap();
    let (status, tokens) =
        json(exchange_code(&op, "webapp", &secret.unwrap(), &query(&location)["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (&claims["acr"], &claims["amr"]),
        (&serde_json::json!("urn:oxid:acr:mfa"), &serde_json::json!(["pwd", "otp", "mfa"]))
    );
}
