//! The login and consent pages in a real browser: Debian's headless Chromium, driven over WebDriver.
//! Needs `chromium` and `chromedriver` on PATH (`scripts/test` installs them on Debian).

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{PASSWORD, TestOp, VERIFIER, query};
use fantoccini::{ClientBuilder, Locator};
use oxid::model::ClientAuthMethod;

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_chromedriver() -> (Driver, String) {
    let port = free_port();
    // Wrapped at once, so the process is killed and reaped on every path.
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (Debian: apt-get install chromium chromium-driver)"),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{url}/status")).await.is_ok() {
            return (driver, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

/// A stand-in RP callback page, so the browser's last navigation lands somewhere real.
pub(crate) async fn start_callback_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // GET for query responses; POST echoes a form_post response's body.
    let app = axum::Router::new()
        .route("/cb", axum::routing::get(|| async { "signed in" }).post(|body: String| async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://127.0.0.1:{}/cb", addr.port())
}

/// An OP with `alice` and a client `webapp` whose redirect URI is a live callback page. Returns the
/// client's secret, the callback URL and the authorization URL with `extra` parameters.
async fn op_with_live_client(extra: &str) -> (TestOp, String, String, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let callback = start_callback_server().await;
    let cb = callback.clone();
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, move |c| c.redirect_uris = vec![cb.parse().unwrap()])
        .await;
    let url = op
        .authorize_url("webapp", extra)
        .replace(&common::urlencode(common::REDIRECT_URI), &common::urlencode(&callback));
    (op, secret.unwrap(), callback, url)
}

/// Waits (up to 10 s) until the browser's URL starts with `prefix`; returns the URL it ended at.
pub(crate) async fn wait_until_at(browser: &fantoccini::Client, prefix: &str) -> String {
    let mut landed = String::new();
    for _ in 0..100 {
        landed = browser.current_url().await.unwrap().to_string();
        if landed.starts_with(prefix) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    landed
}

/// A headless Chromium session; keep the driver and profile alive as long as the client.
pub(crate) async fn start_browser() -> (Driver, fantoccini::Client, tempfile::TempDir) {
    start_browser_with(&[], serde_json::json!({})).await
}

/// A headless Chromium that lets pages of one site use cookies of another in iframes, as Session
/// Management's check_session_iframe needs (browsers that block third-party cookies break it).
async fn start_browser_with_third_party_cookies() -> (Driver, fantoccini::Client, tempfile::TempDir) {
    let prefs = serde_json::json!({ "profile.cookie_controls_mode": 0 });
    start_browser_with(&["--disable-features=ThirdPartyStoragePartitioning"], prefs).await
}

async fn start_browser_with(
    extra_args: &[&str],
    prefs: serde_json::Value,
) -> (Driver, fantoccini::Client, tempfile::TempDir) {
    let (driver, driver_url) = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .chain(extra_args)
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": args,
            "prefs": prefs,
        }),
    );
    // chromedriver speaks plain HTTP on loopback: no TLS connector needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser =
        ClientBuilder::new(connector).capabilities(caps).connect(&driver_url).await.expect("a Chromium session");
    (driver, browser, profile)
}

#[tokio::test]
async fn form_post_response_is_submitted_by_chromium() {
    let (_op, _, callback, url) = op_with_live_client("&response_mode=form_post").await;
    let (_driver, browser, _profile) = start_browser().await;
    browser.goto(&url).await.unwrap();
    browser.find(Locator::Id("username")).await.unwrap().send_keys("alice").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("button[value=allow]")).await.unwrap().click().await.unwrap();
    // The form_post page submits itself (its script is allowed by the CSP hash) to the client.
    let mut posted = String::new();
    for _ in 0..100 {
        if browser.current_url().await.unwrap().as_str().starts_with(&callback) {
            posted = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
            if posted.contains("code=") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(posted.contains("code=") && posted.contains("state=st4te"), "the client received: {posted:?}");
    browser.close().await.unwrap();
}

#[tokio::test]
async fn login_and_consent_pages_work_in_chromium() {
    let (op, secret, callback, url) = op_with_live_client("").await;
    let (_driver, browser, _profile) = start_browser().await;
    browser.goto(&url).await.unwrap();
    assert!(browser.title().await.unwrap().starts_with("Sign in"));
    // The username field has focus on arrival (keyboard users can type at once).
    let focused = browser.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("username"));

    // A wrong password shows the generic message on the same page.
    focused.send_keys("alice").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys("wrong password").await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let alert = browser.wait().for_element(Locator::Css("[role=alert]")).await.unwrap();
    assert_eq!(alert.text().await.unwrap(), "Incorrect username or password.");

    // The username is kept; type the right password and sign in.
    let username = browser.find(Locator::Id("username")).await.unwrap();
    assert_eq!(username.prop("value").await.unwrap().as_deref(), Some("alice"));
    browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();

    // Consent: the scopes in words, then Allow. (Clicks return before navigation ends: wait for it.)
    let scopes = browser.wait().for_element(Locator::Css("ul.scopes")).await.unwrap();
    assert!(browser.title().await.unwrap().starts_with("Allow access"));
    let listed = scopes.text().await.unwrap();
    assert!(listed.contains("See your email address"), "{listed}");
    browser.find(Locator::Css("button[value=allow]")).await.unwrap().click().await.unwrap();

    // Back at the client with a code that redeems.
    let landed = wait_until_at(&browser, &callback).await;
    assert!(landed.starts_with(&callback), "{landed}");
    let code = query(&landed)["code"].clone();
    browser.close().await.unwrap();

    let r = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("webapp", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// prompt=create in Chromium: the sign-up page, a typed-in mismatch corrected, then consent and back
/// to the client.
#[tokio::test]
async fn sign_up_page_works_in_chromium() {
    let (op, _, callback, url) = op_with_live_client("&prompt=create").await;
    let (_driver, browser, _profile) = start_browser().await;
    browser.goto(&url).await.unwrap();
    let fill = |id: &'static str, text: &'static str| {
        let browser = browser.clone();
        async move {
            let field = browser.find(Locator::Id(id)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(text).await.unwrap();
        }
    };
    fill("username", "grace").await;
    fill("email", "grace@example.com").await;
    fill("password", "grace's long password").await;
    fill("password_confirm", "a different one").await;
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let error = browser.wait().for_element(Locator::Css("[role=alert]")).await.unwrap().text().await.unwrap();
    assert!(error.contains("do not match"), "{error}");
    // The form kept what was typed, except the passwords.
    let username = browser.find(Locator::Id("username")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(username.as_deref(), Some("grace"));
    fill("password", "grace's long password").await;
    fill("password_confirm", "grace's long password").await;
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("button[value=allow]")).await.unwrap().click().await.unwrap();
    let landed = wait_until_at(&browser, &callback).await;
    assert!(query(&landed).contains_key("code"), "{landed}");
    assert!(op.store.user_by_username("grace").await.unwrap().is_some());
    browser.close().await.unwrap();
}

/// The RP page of Session Management 1.0 4.1 on another site (127.0.0.2): it embeds the OP's
/// check_session_iframe and asks it every 300 ms about the session_state it was given; the answer
/// becomes the page's title.
fn check_session_rp_page(op_origin: &str, client_id: &str) -> String {
    format!(
        r#"<!doctype html><title>waiting</title><body><script>
var ss=new URLSearchParams(location.search).get('session_state');
var f=document.createElement('iframe');f.src='{op_origin}/session/check';document.body.appendChild(f);
window.addEventListener('message',function(e){{if(e.origin==='{op_origin}')document.title=e.data}});
f.onload=function(){{setInterval(function(){{f.contentWindow.postMessage('{client_id} '+ss,'{op_origin}')}},300)}};
</script></body>"#
    )
}

async fn wait_for_title(browser: &fantoccini::Client, title: &str) -> String {
    let mut seen = String::new();
    for _ in 0..100 {
        seen = browser.title().await.unwrap();
        if seen == title {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// Logout in Chromium: an RP on another site sees `unchanged` from check_session_iframe, then
/// `changed` once the user signs out; the signed-out page loads both RPs' front-channel logout
/// iframes (with iss and sid for the one that asked).
#[tokio::test]
async fn logout_reaches_rps_through_the_browser() {
    use oxid::model::LogoutUri;
    let op = TestOp::start().await;
    op.add_user("alice").await;
    // The RPs' pages, on another site than the OP.
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let rp_site = format!("http://127.0.0.2:{}", listener.local_addr().unwrap().port());
    let page = check_session_rp_page(&op.nodes[0], "webapp");
    let app = axum::Router::new()
        .route("/cb", axum::routing::get(move || async move { axum::response::Html(page) }))
        .route("/cb2", axum::routing::get(|| async { "signed in" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Where each RP is told of the logout (front channel), recording what it receives.
    let hits: [std::sync::Arc<std::sync::Mutex<Vec<String>>>; 2] = Default::default();
    let mut front = Vec::new();
    for recorded in &hits {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        front.push(format!("http://127.0.0.1:{}/logout", listener.local_addr().unwrap().port()));
        let recorded = recorded.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().unwrap().push(uri.query().unwrap_or_default().to_owned());
                "logged out"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    for (id, cb, uri, session_required) in [("webapp", "/cb", &front[0], true), ("second", "/cb2", &front[1], false)] {
        let (redirect, uri) = (format!("{rp_site}{cb}"), uri.clone());
        op.add_client(id, ClientAuthMethod::ClientSecretBasic, move |c| {
            c.redirect_uris = vec![redirect.parse().unwrap()];
            c.skip_consent = true;
            c.metadata.frontchannel_logout = Some(LogoutUri { uri: uri.parse().unwrap(), session_required });
        })
        .await;
    }
    let authorize = |client: &str, cb: &str| {
        op.authorize_url(client, "")
            .replace(&common::urlencode(common::REDIRECT_URI), &common::urlencode(&format!("{rp_site}{cb}")))
    };

    let (_driver, browser, _profile) = start_browser_with_third_party_cookies().await;
    browser.goto(&authorize("webapp", "/cb")).await.unwrap();
    browser.find(Locator::Id("username")).await.unwrap().send_keys("alice").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let landed = wait_until_at(&browser, &format!("{rp_site}/cb")).await;
    assert!(query(&landed).contains_key("session_state"), "{landed}");
    assert_eq!(wait_for_title(&browser, "unchanged").await, "unchanged", "the iframe reads the OP's state");
    // A message that is not `client_id session_state` is answered `error` (Session Management 1.0 3.2).
    let script = format!(
        "var done=arguments[arguments.length-1];\
         window.addEventListener('message',function(e){{if(e.data==='error')done(e.data)}});\
         document.querySelector('iframe').contentWindow.postMessage('not-a-session-state','{}');",
        op.nodes[0]
    );
    let answer = browser.execute_async(&script, Vec::new()).await.unwrap();
    assert_eq!(answer, serde_json::json!("error"));
    let rp_window = browser.window().await.unwrap();

    // In another window: the second RP signs in through the same session, then the user signs out.
    let other = browser.new_window(true).await.unwrap();
    browser.switch_to_window(other.handle).await.unwrap();
    browser.goto(&authorize("second", "/cb2")).await.unwrap();
    wait_until_at(&browser, &format!("{rp_site}/cb2")).await;
    browser.goto(&op.url("/logout")).await.unwrap();
    browser.wait().for_element(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("iframe.logout-frame")).await.unwrap();
    for _ in 0..100 {
        if hits.iter().all(|h| !h.lock().unwrap().is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = hits[0].lock().unwrap().clone();
    let second = hits[1].lock().unwrap().clone();
    assert_eq!(first.len(), 1, "{first:?}");
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(first[0].as_bytes()).into_owned().collect();
    assert_eq!(params.get("iss"), Some(&op.issuer));
    assert!(params.get("sid").is_some_and(|s| !s.is_empty()), "{params:?}");
    assert_eq!(second, vec![String::new()], "no iss/sid for the RP that did not ask");

    // The first RP's page learns of it through check_session_iframe.
    browser.switch_to_window(rp_window).await.unwrap();
    assert_eq!(wait_for_title(&browser, "changed").await, "changed");
    browser.close().await.unwrap();
}

/// Several accounts in Chromium: the account chooser (login_hint's account has the focus) switches to
/// alice without a password; her account page ends the session she has on another device.
#[tokio::test]
async fn account_chooser_and_account_page_in_chromium() {
    let (op, secret, callback, url) = op_with_live_client("").await;
    op.add_user("bob").await;
    let (_driver, browser, _profile) = start_browser().await;
    let sign_in = |url: String, username: &'static str| {
        let browser = browser.clone();
        let callback = callback.clone();
        async move {
            browser.goto(&url).await.unwrap();
            browser.wait().for_element(Locator::Id("username")).await.unwrap().send_keys(username).await.unwrap();
            browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
            browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
            browser.wait().for_element(Locator::Css("button[value=allow]")).await.unwrap().click().await.unwrap();
            assert!(wait_until_at(&browser, &callback).await.starts_with(&callback));
        }
    };
    sign_in(url.clone(), "alice").await;
    sign_in(format!("{url}&prompt=login"), "bob").await;

    // The chooser lists both; login_hint=alice has the focus; choosing goes back to the client.
    browser.goto(&format!("{url}&prompt=select_account&login_hint=alice")).await.unwrap();
    browser.wait().for_element(Locator::Css("ul.accounts")).await.unwrap();
    assert!(browser.title().await.unwrap().starts_with("Choose an account"));
    let focused = browser.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "alice");
    focused.click().await.unwrap();
    let landed = wait_until_at(&browser, &callback).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &query(&landed)["code"]),
        ("redirect_uri", &callback),
        ("code_verifier", VERIFIER),
    ];
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("webapp", Some(&secret))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = op.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(common::jwt_payload(tokens["id_token"].as_str().unwrap())["sub"], alice.id.as_str());

    // Alice is also signed in on another device.
    let phone = common::Browser::new(&op);
    phone.sign_in(&url, "alice").await;
    let phone_sessions = op.store.sessions(Some(&alice.id), oxid::model::now(), 10).await.unwrap();
    assert_eq!(phone_sessions.len(), 2);

    // Her account page lists both sessions; she ends the phone's.
    browser.goto(&op.url("/account")).await.unwrap();
    browser.wait().for_element(Locator::Css("ul.sessions")).await.unwrap();
    assert!(browser.title().await.unwrap().starts_with("Your account"));
    let this_device =
        browser.find(Locator::XPath("//li[contains(., 'This device')]//input[@name='sid']")).await.unwrap();
    let own_sid = this_device.attr("value").await.unwrap().unwrap();
    let other_sid = phone_sessions.iter().map(|s| s.sid.clone()).find(|sid| *sid != own_sid).unwrap();
    let end = format!("//input[@name='sid'][@value='{other_sid}']/following-sibling::button");
    browser.find(Locator::XPath(&end)).await.unwrap().click().await.unwrap();
    for _ in 0..100 {
        if browser.find_all(Locator::Css("ul.sessions > li")).await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.find_all(Locator::Css("ul.sessions > li")).await.unwrap().len(), 1);
    let answer = phone.get(&format!("{url}&prompt=none")).await;
    assert_eq!(query(&answer.location.unwrap())["error"], "login_required", "the phone is signed out");
    browser.close().await.unwrap();
}

/// Registration 2.1 in Chromium: a registered client's consent page shows its name, logo and links in
/// the user's language, and that the operator did not vouch for it.
#[tokio::test]
async fn a_registered_clients_consent_page_in_english_and_german() {
    let (op, _, callback, _) = op_with_live_client("").await;
    let token = oxid::crypto::random_token();
    let made = oxid::model::InitialAccessToken {
        id: token[..8].to_owned(),
        token_hash: oxid::crypto::token_hash(&token),
        created_at: oxid::model::now(),
        expires_at: None,
        uses_left: None,
    };
    op.store.insert_initial_access_token(&made).await.unwrap();
    let doc = serde_json::json!({
        "redirect_uris": [callback],
        "client_name": "Photo Shop",
        "client_name#de": "Fotoladen",
        "logo_uri": "https://shop.example/logo.png",
        "policy_uri": "https://shop.example/privacy",
        "policy_uri#de": "https://shop.example/datenschutz",
        "tos_uri": "https://shop.example/terms",
    });
    let answer: serde_json::Value = reqwest::Client::new()
        .post(op.url("/register"))
        .bearer_auth(&token)
        .json(&doc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = answer["client_id"].as_str().unwrap().to_owned();
    let url = op
        .authorize_url(&client_id, "")
        .replace(&common::urlencode(common::REDIRECT_URI), &common::urlencode(&callback));
    let (_driver, browser, _profile) = start_browser().await;
    for (locale, name, policy, privacy_text, notice) in [
        ("en", "Photo Shop", "https://shop.example/privacy", "Privacy policy", "registered itself"),
        ("de", "Fotoladen", "https://shop.example/datenschutz", "Datenschutzerklärung", "selbst registriert"),
    ] {
        browser.goto(&format!("{url}&ui_locales={locale}")).await.unwrap();
        if browser.find(Locator::Id("username")).await.is_ok() {
            browser.find(Locator::Id("username")).await.unwrap().send_keys("alice").await.unwrap();
            browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
            browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
        }
        // The consent page (its Allow button), not the login page's lead that is still going away.
        browser.wait().for_element(Locator::Css("button[value=allow]")).await.unwrap();
        let lead = browser.find(Locator::Css("p.lead")).await.unwrap().text().await.unwrap();
        assert!(lead.starts_with(name), "{locale}: {lead}");
        let logo = browser.find(Locator::Css("img.logo")).await.unwrap();
        assert_eq!(logo.attr("src").await.unwrap().as_deref(), Some("https://shop.example/logo.png"));
        let link = browser.find(Locator::LinkText(privacy_text)).await.unwrap();
        assert_eq!(link.attr("href").await.unwrap().as_deref(), Some(policy));
        assert!(browser.find(Locator::Css("a[href='https://shop.example/terms']")).await.is_ok());
        let shown = browser.find(Locator::Css("p.notice")).await.unwrap().text().await.unwrap();
        assert!(shown.contains(notice), "{locale}: {shown}");
    }
    browser.close().await.unwrap();
}

/// RFC 8628 in Chromium: the user opens the verification page, signs in, types the code the device
/// shows (in lower case, without the dash), checks it and allows; the device's next poll gets tokens.
#[tokio::test]
async fn a_device_is_connected_through_chromium() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_client("tv", ClientAuthMethod::None, |c| {
        c.grant_types = vec![oxid::model::GrantType::DeviceCode];
        c.metadata.response_types.clear();
    })
    .await;
    let asked: serde_json::Value = reqwest::Client::new()
        .post(op.url("/device_authorization"))
        .form(&[("client_id", "tv"), ("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_code = asked["user_code"].as_str().unwrap().to_owned();
    let (_driver, browser, _profile) = start_browser().await;
    browser.goto(asked["verification_uri"].as_str().unwrap()).await.unwrap();
    browser.wait().for_element(Locator::Id("username")).await.unwrap().send_keys("alice").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let field = browser.wait().for_element(Locator::Id("user_code")).await.unwrap();
    assert_eq!(browser.active_element().await.unwrap().attr("id").await.unwrap().as_deref(), Some("user_code"));
    field.send_keys(&user_code.replace('-', "").to_lowercase()).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let shown = browser.wait().for_element(Locator::Css("strong.code")).await.unwrap().text().await.unwrap();
    assert_eq!(shown, user_code, "the page shows the code to compare with the device's");
    browser.find(Locator::Css("button[value=allow]")).await.unwrap().click().await.unwrap();
    let status = browser.wait().for_element(Locator::Css("[role=status]")).await.unwrap().text().await.unwrap();
    assert!(status.contains("connected"), "{status}");
    browser.close().await.unwrap();

    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", asked["device_code"].as_str().unwrap()),
        ("client_id", "tv"),
    ];
    let response = reqwest::Client::new().post(op.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
