//! Issue 13: passkeys in a real browser. Headless Chromium with a WebDriver virtual authenticator (a
//! CTAP2 platform authenticator that holds discoverable credentials and verifies the user) adds a
//! passkey on the account page, signs in with it alone, is asked for it after a password, and
//! removes it. The OP's issuer is on `localhost`: WebAuthn has no relying party ids that are IP
//! addresses.

use crate::browser::{start_browser, start_callback_server, wait_until_at};
use crate::common;

use common::{Browser, PASSWORD, TestOp, VERIFIER, jwt_payload, query};
use fantoccini::Locator;
use oxid::model::ClientAuthMethod;

/// WebDriver's "Add Virtual Authenticator" (WebAuthn Level 2, 11.3), which fantoccini has no method for.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let options = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(options.to_string()))
    }
}

/// WebDriver's "Set User Verified" (WebAuthn Level 2, 11.7): whether the authenticator's user
/// verification (its PIN or biometric) succeeds from now on.
#[derive(Debug)]
struct SetUserVerified(String, bool);

impl fantoccini::wd::WebDriverCompatibleCommand for SetUserVerified {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator/{}/uv", session.unwrap_or_default(), self.0))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(serde_json::json!({ "isUserVerified": self.1 }).to_string()))
    }
}

/// Clicks the button `id` once its form is shown (passkey forms are hidden until the page's script
/// has found WebAuthn).
async fn click(browser: &fantoccini::Client, id: &str) {
    let shown = format!("form:not([hidden]) #{id}");
    let Ok(element) = browser.wait().for_element(Locator::Css(&shown)).await else {
        let url = browser.current_url().await.unwrap();
        panic!("no #{id} at {url}:\n{}", browser.source().await.unwrap());
    };
    element.click().await.unwrap();
}

/// The page's text (empty while a navigation is under way).
async fn text(browser: &fantoccini::Client) -> String {
    match browser.find(Locator::Css("main")).await {
        Ok(main) => main.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The ID Token's claims for a code sent to `callback`.
async fn id_token_claims(op: &TestOp, secret: &str, code: &str, callback: &str) -> serde_json::Value {
    let form =
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", callback), ("code_verifier", VERIFIER)];
    let request = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(secret)).form(&form);
    let (status, tokens) = common::json(request.send().await.unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    jwt_payload(tokens["id_token"].as_str().unwrap())
}

/// An OP on `localhost` (adjusted by `adjust`) with `alice` and a trusted client `webapp` whose
/// redirect URI is a live page: the OP, the client's secret, that page's URL and an authorization URL.
async fn op_on_localhost(adjust: impl FnOnce(&mut oxid::config::Config)) -> (TestOp, String, String, String) {
    let op = TestOp::start_with(|c| {
        c.issuer = c.issuer.replace("127.0.0.1", "localhost");
        adjust(c);
    })
    .await;
    op.add_user("alice").await;
    let callback = start_callback_server().await;
    let cb = callback.clone();
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, move |c| {
            c.redirect_uris = vec![cb.parse().unwrap()];
            c.skip_consent = true;
        })
        .await;
    let authorize = op
        .authorize_url("webapp", "")
        .replace(&op.nodes[0], &op.issuer)
        .replace(&common::urlencode(common::REDIRECT_URI), &common::urlencode(&callback));
    (op, secret.unwrap(), callback, authorize)
}

/// Adds a passkey named "Laptop" on the account page, signing in with the password first.
async fn add_passkey(browser: &fantoccini::Client, op: &TestOp) {
    browser.goto(&format!("{}/account", op.issuer)).await.unwrap();
    password_login(browser).await;
    let new = Locator::Css("form[action$='/account/passkeys/new'] button");
    browser.wait().for_element(new).await.unwrap().click().await.unwrap();
    let name = browser.wait().for_element(Locator::Css("form:not([hidden]) #passkey-name")).await.unwrap();
    name.send_keys("Laptop").await.unwrap();
    click(browser, "passkey-create").await;
    browser.wait().for_element(Locator::Css("ul.passkeys")).await.unwrap();
}

async fn password_login(browser: &fantoccini::Client) {
    let Ok(username) = browser.wait().for_element(Locator::Id("username")).await else {
        let url = browser.current_url().await.unwrap();
        panic!("no login form at {url}:\n{}", browser.source().await.unwrap());
    };
    username.send_keys("alice").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    browser.find(Locator::Css("form:not(#passkey-form) button[type=submit]")).await.unwrap().click().await.unwrap();
}

#[tokio::test]
async fn a_passkey_is_added_signs_in_alone_and_after_a_password_and_is_removed() {
    let (op, secret, callback, authorize) = op_on_localhost(|_| {}).await;
    let (_, doc) = common::json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert!(doc["acr_values_supported"].as_array().unwrap().contains(&"urn:oxid:acr:phishing-resistant".into()));

    let (_driver, browser, _profile) = start_browser().await;
    let authenticator =
        browser.issue_cmd(AddVirtualAuthenticator).await.expect("chromedriver adds a virtual authenticator");
    let authenticator = authenticator.as_str().unwrap().to_owned();

    // Added on the account page, after signing in with the password, under a name.
    add_passkey(&browser, &op).await;
    let account = text(&browser).await;
    assert!(account.contains("Laptop") && account.contains("Last used: never"), "{account}");
    let stored = op.store.passkeys("sub-alice").await.unwrap();
    assert_eq!(stored.len(), 1);

    // Signed out, the login page signs in without a username or password: it offers the browser's
    // passkeys in the username field's autofill (conditional mediation), which this authenticator,
    // always consenting, answers at once.
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&authorize).await.unwrap();
    let landed = wait_until_at(&browser, &callback).await;
    let code = query(&landed).get("code").cloned().unwrap_or_else(|| panic!("signed in by passkey: {landed}"));
    let claims = id_token_claims(&op, &secret, &code, &callback).await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["hwk", "user", "mfa"]),
        "RFC 8176: key, presence, more than one factor"
    );
    assert_eq!(claims["acr"], "urn:oxid:acr:phishing-resistant");
    assert!(op.store.passkeys("sub-alice").await.unwrap()[0].last_used_at.is_some());

    // With a passkey, a password sign-in asks for it next (a second factor). While the authenticator
    // cannot verify the user, the autofill offer fails (user verification is required) and the
    // password form is used; then the passkey, verified again, is the second step.
    browser.issue_cmd(SetUserVerified(authenticator.clone(), false)).await.unwrap();
    // (Cookies are deleted for the page's site: the OP's, not the client's.)
    browser.goto(&format!("{}/healthz", op.issuer)).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&authorize).await.unwrap();
    password_login(&browser).await;
    browser.wait().for_element(Locator::Css("form:not([hidden]) #passkey-second-factor")).await.unwrap();
    browser.issue_cmd(SetUserVerified(authenticator, true)).await.unwrap();
    click(&browser, "passkey-second-factor").await;
    let landed = wait_until_at(&browser, &callback).await;
    let code = query(&landed)["code"].clone();
    let claims = id_token_claims(&op, &secret, &code, &callback).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "hwk", "user", "mfa"]));

    // Removed on the account page (the sign-in just now is recent enough).
    browser.goto(&format!("{}/account", op.issuer)).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("form[action$='/account/passkeys/remove'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // (The click returns before the page after it has loaded: wait for that page.)
    let mut page = String::new();
    for _ in 0..100 {
        page = text(&browser).await;
        if page.contains("You have no passkeys.") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(page.contains("You have no passkeys."), "{page}");
    assert!(op.store.passkeys("sub-alice").await.unwrap().is_empty());
    browser.close().await.unwrap();
}

/// What a passkey form posts without a ceremony of ours, or with an answer that is not one, is
/// refused with the login page's message (never a 500); an issuer on an IP address has no passkeys.
#[tokio::test]
async fn bad_passkey_answers_are_refused() {
    let op = TestOp::start_with(|c| c.issuer = c.issuer.replace("127.0.0.1", "localhost")).await;
    op.add_user("alice").await;
    let b = Browser::new(&op);
    let login = b.get("/account").await;
    assert!(login.body.contains("id=\"passkey-options\"") && login.body.contains("autocomplete=\"username webauthn\""));
    let csrf = login.hidden("csrf_token");
    for answer in ["", "{}", "not json", r#"{"id":"x","rawId":"eA","type":"public-key","response":{}}"#] {
        let page = b.post("/account/login", &[("csrf_token", &csrf), ("credential", answer)]).await;
        assert_eq!(page.status, 401, "{answer}");
        assert!(page.body.contains("The passkey could not be used."), "{}", page.body);
    }
    let plain = TestOp::start().await;
    let page = Browser::new(&plain).get("/account").await;
    assert!(!page.body.contains("passkey"), "no passkeys on 127.0.0.1");
    let (_, doc) = common::json(reqwest::get(plain.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["acr_values_supported"], serde_json::json!(["urn:oxid:acr:password", "urn:oxid:acr:mfa"]));
}

/// The code an authenticator app shows for `secret` now.
fn totp_code(secret: &str) -> String {
    let key = totp_rs::Secret::Encoded(secret.into()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, key, None, String::new());
    totp.generate(oxid::model::now() as u64)
}

/// Core 3.1.2.1 / 5.5.1.1 with the phishing-resistant level: a user with an authenticator app and a
/// passkey, asked for that level, is not let through with the app's code (the second step offers no
/// code field and refuses one); the same user's password-and-code session is stepped up, not let
/// through, when a client asks for the level later.
#[tokio::test]
async fn the_phishing_resistant_level_takes_a_passkey_not_a_code() {
    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let op = TestOp::start_with(|c| c.issuer = c.issuer.replace("127.0.0.1", "localhost")).await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let now = oxid::model::now();
    assert!(op.store.begin_totp("sub-alice", SECRET).await.unwrap());
    assert!(op.store.use_totp_step("sub-alice", 1, now).await.unwrap(), "confirmed with an old step");
    let passkey = oxid::model::StoredPasskey {
        credential_id: "a2V5".into(),
        user_id: "sub-alice".into(),
        name: "Laptop".into(),
        credential: "{}".into(),
        created_at: now,
        last_used_at: None,
    };
    op.store.insert_passkey(&passkey).await.unwrap();
    let level = format!("&acr_values={}", common::urlencode("urn:oxid:acr:phishing-resistant"));

    let b = Browser::new(&op);
    let login = b.follow(b.get(&op.authorize_url("webapp", &level)).await).await;
    let second = b.follow(b.submit_login(&login, "alice", PASSWORD).await).await;
    assert!(second.body.contains("second-factor") && !second.body.contains("name=\"code\""), "{}", second.body);
    let csrf = second.hidden("csrf_token");
    let refused = b.post("/login/second-factor", &[("csrf_token", &csrf), ("code", &totp_code(SECRET))]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("This application asks for a passkey"), "{}", refused.body);

    // Without the level, the code is the second step; asked for the level later, the session steps up.
    let c = Browser::new(&op);
    let login = c.follow(c.get(&op.authorize_url("webapp", "")).await).await;
    let second = c.follow(c.submit_login(&login, "alice", PASSWORD).await).await;
    assert!(second.body.contains("name=\"code\""), "{}", second.body);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let csrf = second.hidden("csrf_token");
    let done =
        c.follow(c.post("/login/second-factor", &[("csrf_token", &csrf), ("code", &totp_code(SECRET))]).await).await;
    assert!(done.location.as_deref().is_some_and(|l| l.contains("code=")), "{}", done.body);
    let stepped = c.follow(c.get(&op.authorize_url("webapp", &level)).await).await;
    assert!(stepped.location.is_none(), "not let through with a code: {:?}", stepped.location);
    assert!(stepped.body.contains("second-factor") && !stepped.body.contains("name=\"code\""), "{}", stepped.body);
}

/// A passkey's answer, caught in the page before it is posted, then sent by hand: with the origin in
/// its client data changed (refused: WebAuthn binds the answer to this site), as it is (signs in),
/// and again (refused: each ceremony is spent once). Refusals count against the account's throttle.
#[tokio::test]
async fn altered_and_replayed_passkey_answers_are_refused_and_counted() {
    let op = TestOp::start_with(|c| {
        c.issuer = c.issuer.replace("127.0.0.1", "localhost");
        c.login_max_failures_per_account = 2;
    })
    .await;
    op.add_user("alice").await;
    let (_driver, browser, _profile) = start_browser().await;
    let authenticator = browser.issue_cmd(AddVirtualAuthenticator).await.unwrap().as_str().unwrap().to_owned();
    add_passkey(&browser, &op).await;

    // Signed out, on the account page's login form, with the autofill offer failing meanwhile.
    browser.issue_cmd(SetUserVerified(authenticator.clone(), false)).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&format!("{}/account", op.issuer)).await.unwrap();
    browser.wait().for_element(Locator::Css("form:not([hidden]) #passkey-sign-in")).await.unwrap();
    browser.issue_cmd(SetUserVerified(authenticator, true)).await.unwrap();
    let keep = "HTMLFormElement.prototype.submit = function () { \
                window.caught = this.querySelector('input[name=credential]').value; };";
    browser.execute(keep, vec![]).await.unwrap();
    click(&browser, "passkey-sign-in").await;
    let mut answer = String::new();
    for _ in 0..100 {
        if let Some(caught) = browser.execute("return window.caught || null;", vec![]).await.unwrap().as_str() {
            answer = caught.to_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!answer.is_empty(), "the page produced an answer");
    let csrf = browser.find(Locator::Css("#passkey-form input[name=csrf_token]")).await.unwrap();
    let csrf = csrf.attr("value").await.unwrap().unwrap();
    let cookies: Vec<String> =
        browser.get_all_cookies().await.unwrap().iter().map(|c| format!("{}={}", c.name(), c.value())).collect();
    browser.close().await.unwrap();

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let post = |credential: String| {
        let request = http.post(format!("{}/account/login", op.nodes[0])).header("cookie", cookies.join("; "));
        request.form(&[("csrf_token", csrf.as_str()), ("credential", credential.as_str())]).send()
    };
    let mut altered: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let client_data = altered["response"]["clientDataJSON"].as_str().unwrap();
    let mut client_data: serde_json::Value =
        serde_json::from_slice(&oxid::crypto::b64url_decode(client_data).unwrap()).unwrap();
    client_data["origin"] = "https://evil.example".into();
    altered["response"]["clientDataJSON"] = oxid::crypto::b64url(client_data.to_string().as_bytes()).into();
    let refused = post(altered.to_string()).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().contains("The passkey could not be used."));
    let signed_in = post(answer.clone()).await.unwrap();
    assert_eq!(signed_in.status(), 303, "the answer as the authenticator gave it");
    let replayed = post(answer).await.unwrap();
    assert_eq!(replayed.status(), 401, "a ceremony is spent once");

    // Two refusals: the account's allowance (2) is used up, for passwords too.
    let b = Browser::new(&op);
    let page = b.get("/account").await;
    let form = [("csrf_token", page.hidden("csrf_token")), ("username", "alice".into()), ("password", PASSWORD.into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post("/account/login", &form).await.status, 429);
}

/// `require_passkey`: a user without a passkey who signs in with a password adds one then and there
/// (it is the session's second factor), and the sign-in goes on to the client at the passkey's level.
#[tokio::test]
async fn a_required_passkey_is_added_during_the_sign_in() {
    let (op, secret, callback, authorize) = op_on_localhost(|c| c.require_passkey = true).await;
    let (_driver, browser, _profile) = start_browser().await;
    browser.issue_cmd(AddVirtualAuthenticator).await.unwrap();
    browser.goto(&authorize).await.unwrap();
    password_login(&browser).await;
    click(&browser, "passkey-create").await;
    let landed = wait_until_at(&browser, &callback).await;
    let code = query(&landed).get("code").cloned().unwrap_or_else(|| panic!("back at the client: {landed}"));
    let claims = id_token_claims(&op, &secret, &code, &callback).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "hwk", "user", "mfa"]));
    assert_eq!(claims["acr"], "urn:oxid:acr:phishing-resistant");
    assert_eq!(op.store.passkeys("sub-alice").await.unwrap().len(), 1);
    browser.close().await.unwrap();

    // The operator lists it, and a reset (a lost device) removes it with the other factors.
    let cli = |args: &[&str]| String::from_utf8(crate::cli::oxid(&op.database_url, args, None).stdout).unwrap();
    assert!(cli(&["user", "mfa", "list", "alice"]).contains("passkey: Passkey ("), "named by default");
    assert!(cli(&["user", "mfa", "reset", "alice"]).contains("session(s) ended"));
    assert!(op.store.passkeys("sub-alice").await.unwrap().is_empty());
}
