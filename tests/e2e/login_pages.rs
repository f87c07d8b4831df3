//! The login and consent pages: CSRF, credentials, throttling, cookies and security headers.

use crate::common;

use common::{Browser, PASSWORD, TestOp};
use oxid::model::ClientAuthMethod;

async fn setup() -> TestOp {
    let op = TestOp::start_with(|c| {
        c.login_max_failures_per_account = 3;
        c.login_max_failures_per_ip = 6;
    })
    .await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    op
}

async fn login_page(op: &TestOp, b: &Browser) -> common::Page {
    let page = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    assert!(page.body.contains("name=\"password\""));
    page
}

#[tokio::test]
async fn pages_carry_security_headers_and_accessible_markup() {
    let op = setup().await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "clickjacking protection: {csp}");
    assert!(csp.contains("default-src 'none'"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(page.headers.contains_key("x-request-id"));
    // Labels tied to inputs; the document declares its language; no script needed.
    assert!(page.body.contains("<label for=\"username\">") && page.body.contains("id=\"username\""));
    assert!(page.body.contains("<label for=\"password\">") && page.body.contains("id=\"password\""));
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(!page.body.contains("<script"));
    // Without a login_hint the username field starts empty (not "None").
    assert!(page.body.contains("maxlength=\"128\" value=\"\""), "{}", page.body);
    assert!(page.body.contains("webapp app"), "the page names the client");
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let op = setup().await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    let request = page.hidden("request");
    for token in ["", "forged"] {
        let r = b
            .post(
                "/login",
                &[("request", &request), ("csrf_token", token), ("username", "alice"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.headers.get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().contains("oxid_session")));
    }
    // A token from one browser does not work in another (bound to the browser's cookie).
    let other = Browser::new(&op);
    let csrf = page.hidden("csrf_token");
    let r = other
        .post("/login", &[("request", &request), ("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, 400);

    // A cookie the attacker chose (cookie tossing) does not let them mint tokens: the token is a MAC
    // under a server-side key, not under the cookie (the old double-submit scheme is refused).
    let tossed = "A".repeat(43);
    let naive = oxid::crypto::b64url(&oxid::crypto::hmac(
        oxid::crypto::HmacHash::Sha256,
        tossed.as_bytes(),
        request.as_bytes(),
    ));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("request", request.as_str()), ("csrf_token", &naive), ("username", "alice"), ("password", PASSWORD)];
    let r = http.post(op.url("/login")).header("cookie", format!("oxid_csrf={tossed}")).form(&form).send().await;
    assert_eq!(r.unwrap().status(), 400);
}

/// Malformed CSRF cookies (empty, short, not base64url) are a 400 page on every form, never a dropped
/// connection or a 500.
#[tokio::test]
async fn malformed_csrf_cookies_are_a_400_page() {
    let op = setup().await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    let request = page.hidden("request");
    let csrf = page.hidden("csrf_token");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/login", "/consent", "/signup"] {
        for cookie in ["oxid_csrf=", "oxid_csrf=x", "oxid_csrf=%00%ff", "oxid_csrf=\"\"", "oxid_csrf"] {
            let form = [("request", request.as_str()), ("csrf_token", &csrf), ("username", "a"), ("password", "b")];
            let r = http.post(op.url(path)).header("cookie", cookie).form(&form).send().await;
            let r = r.unwrap_or_else(|e| panic!("{path} with {cookie:?}: {e}"));
            assert_eq!(r.status(), 400, "{path} with {cookie:?}");
            assert!(r.text().await.unwrap().contains("<html"), "{path} with {cookie:?}: an error page");
        }
    }
}

#[tokio::test]
async fn bad_credentials_get_one_generic_message() {
    let op = setup().await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    let wrong_password = b.submit_login(&page, "alice", "not the password").await;
    let unknown_user = b.submit_login(&page, "nobody", "not the password").await;
    for r in [&wrong_password, &unknown_user] {
        assert_eq!(r.status, 401);
        assert!(r.body.contains("Incorrect username or password."), "{}", r.body);
    }
    // The same page either way, apart from the echoed username: no user enumeration.
    assert_eq!(wrong_password.body.replace("value=\"alice\"", ""), unknown_user.body.replace("value=\"nobody\"", ""));
    // A disabled user cannot sign in, with the same message.
    op.store.disable_user("alice", oxid::config::Config::default().logout(oxid::model::now())).await.unwrap();
    let r = b.submit_login(&page, "alice", PASSWORD).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Incorrect username or password."));
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_ip() {
    let op = setup().await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    for _ in 0..3 {
        assert_eq!(b.submit_login(&page, "alice", "wrong password!").await.status, 401);
    }
    // The account is now locked for the window, even with the right password.
    let r = b.submit_login(&page, "alice", PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many failed sign-in attempts"));
    // Other accounts from this IP still work until the IP limit (6) is reached.
    for _ in 0..3 {
        assert_eq!(b.submit_login(&page, "someone", "wrong password!").await.status, 401);
    }
    op.add_user("carol").await;
    assert_eq!(b.submit_login(&page, "carol", PASSWORD).await.status, 429, "the IP is throttled now");
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_replaced_at_login() {
    let op = setup().await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    let r = b.submit_login(&page, "alice", PASSWORD).await;
    assert_eq!(r.status, 303);
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("oxid_session="));
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-http loopback issuer: no Secure flag");
    assert!(cookie.contains("Path=/"));
}

#[tokio::test]
async fn secure_cookies_for_https_issuers() {
    // Served on loopback, but configured with an https issuer (as behind a TLS-terminating proxy).
    let op = TestOp::start_with(|c| c.issuer = "https://login.example".into()).await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let b = Browser::new(&op);
    let page = b.follow(b.get(&op.authorize_url("webapp", "")).await).await;
    let cookies: Vec<&str> = page.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("__Host-oxid_csrf=")), "{cookies:?}");
    // The CSRF binding and the passkey ceremony (the issuer's host is a domain: passkeys are on).
    assert!(cookies.iter().any(|c| c.starts_with("__Host-oxid_passkey=")), "{cookies:?}");
    for cookie in cookies {
        // RFC 6265bis 4.1.3.2: `__Host-` cookies cannot be planted by a sibling subdomain.
        assert!(cookie.starts_with("__Host-") && cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_throttled() {
    let op = TestOp::start_with(|c| {
        c.login_max_failures_per_ip = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    let login = |from: &'static str, user: &'static str| {
        let form = [
            ("request", page.hidden("request")),
            ("csrf_token", page.hidden("csrf_token")),
            ("username", user.to_owned()),
            ("password", "wrong password!".to_owned()),
        ];
        b.http.post(op.url("/login")).header("x-forwarded-for", from).form(&form).send()
    };
    for user in ["u1", "u2"] {
        assert_eq!(login("203.0.113.1", user).await.unwrap().status(), 401);
    }
    assert_eq!(login("203.0.113.1", "u3").await.unwrap().status(), 429, "that client is throttled");
    assert_eq!(login("203.0.113.2", "u3").await.unwrap().status(), 401, "another client behind the proxy is not");
}

/// Posts the login form of `page` `n` times at once, each with the username `username(i)`; returns
/// the statuses.
async fn concurrent_logins(op: &TestOp, b: &Browser, n: usize, username: impl Fn(usize) -> String) -> Vec<u16> {
    let page = login_page(op, b).await;
    let (request, csrf) = (page.hidden("request"), page.hidden("csrf_token"));
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..n {
        let form = [
            ("request", request.clone()),
            ("csrf_token", csrf.clone()),
            ("username", username(i)),
            // The right password on the last one: it too must wait its turn behind the limit.
            ("password", if i == n - 1 { PASSWORD.to_owned() } else { format!("wrong password {i}") }),
        ];
        let http = b.http.clone();
        let url = op.url("/login");
        posts.spawn(async move { http.post(url).form(&form).send().await.unwrap().status().as_u16() });
    }
    posts.join_all().await
}

/// The limits hold under concurrency: an attempt is reserved before the password is checked, so a
/// burst sent at once has at most the limit checked (401 or 303), the rest refused unchecked (429).
#[tokio::test]
async fn throttles_hold_against_a_concurrent_burst() {
    let op = TestOp::start_with(|c| {
        c.login_max_failures_per_account = 5;
        c.login_max_failures_per_ip = 12;
    })
    .await;
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;

    let statuses = concurrent_logins(&op, &Browser::new(&op), 40, |_| "alice".into()).await;
    let first = statuses.iter().filter(|s| **s != 429).count();
    assert!((1..=5).contains(&first), "one account: {first} of 40 checked ({statuses:?})");
    assert!(statuses.iter().all(|s| [401, 303, 429].contains(s)), "{statuses:?}");

    // Many accounts from one IP: the per-IP limit on failures holds across both bursts. A success gives
    // its reservation back, so the first burst's right password (when it was checked) is not counted.
    let failed = |statuses: &[u16]| statuses.iter().filter(|s| **s == 401).count();
    let first_failed = failed(&statuses);
    let statuses = concurrent_logins(&op, &Browser::new(&op), 40, |i| format!("user{i}")).await;
    let second = statuses.iter().filter(|s| **s != 429).count();
    assert!(
        second >= 1 && first_failed + failed(&statuses) <= 12,
        "one IP: {first_failed} + {} failures checked ({statuses:?})",
        failed(&statuses)
    );
}

/// Review 9: a login whose writes fail changes nothing: the browser's previous session survives (the
/// old session is ended only in the transaction that starts the new one).
#[tokio::test]
async fn a_login_that_fails_to_store_keeps_the_previous_session() {
    let op = setup().await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let signed_in = || async {
        let page = b.get(&op.authorize_url("webapp", "&prompt=none")).await;
        common::query(&page.location.unwrap()).get("error").cloned()
    };
    assert_eq!(signed_in().await, None);

    let page = b.follow(b.get(&op.authorize_url("webapp", "&prompt=login")).await).await;
    op.refuse_writes("pending_authorizations", "UPDATE").await;
    let failed = b.submit_login(&page, "alice", PASSWORD).await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    op.allow_writes("pending_authorizations").await;
    assert_eq!(signed_in().await, None, "still signed in with the session from before");
}

/// Review 9: a consent whose writes fail changes nothing: the flow is still there, so the same form
/// can be sent again once the store works.
#[tokio::test]
async fn a_consent_that_fails_to_store_can_be_given_again() {
    let op = setup().await;
    let b = Browser::new(&op);
    let login = login_page(&op, &b).await;
    let consent = b.follow(b.submit_login(&login, "alice", PASSWORD).await).await;
    assert!(consent.body.contains("name=\"decision\""), "{}", consent.body);
    op.refuse_writes("authorization_codes", "INSERT").await;
    assert_eq!(b.submit_consent(&consent, "allow").await.status, 500);
    op.allow_writes("authorization_codes").await;
    let done = b.follow(b.submit_consent(&consent, "allow").await).await;
    let location = done.location.unwrap_or_else(|| panic!("{}: {}", done.status, done.body));
    assert!(common::query(&location).contains_key("code"), "{location}");
}

/// Hardening 20: the consent page lists signing in first, then the claims in a natural order (not the
/// alphabetical order of the scope names), staying connected last.
#[tokio::test]
async fn the_consent_page_lists_signing_in_first() {
    let op = setup().await;
    let b = Browser::new(&op);
    let url = op
        .authorize_url("webapp", "&prompt=consent")
        .replace("scope=openid%20email%20profile", "scope=phone%20email%20openid%20offline_access%20profile");
    let login = b.follow(b.get(&url).await).await;
    let consent = b.follow(b.submit_login(&login, "alice", PASSWORD).await).await;
    let at = |text: &str| consent.body.find(text).unwrap_or_else(|| panic!("{text} missing: {}", consent.body));
    let order = [
        "Sign you in with your account",
        "See your name and profile details",
        "See your email address",
        "See your phone number",
        "Stay connected when you are not using it",
    ];
    for pair in order.windows(2) {
        assert!(at(pair[0]) < at(pair[1]), "{} before {}", pair[0], pair[1]);
    }
}

/// Hardening 20: an unknown client gets a page that speaks to the person; the technical detail stays
/// small, for the developers.
#[tokio::test]
async fn the_unknown_client_page_speaks_to_a_person() {
    let op = setup().await;
    let page = Browser::new(&op).get(&op.authorize_url("nobody", "")).await;
    assert_eq!(page.status, 400);
    let alert = "role=\"alert\">The application that sent you here is not known to this sign-in service.</p>";
    assert!(page.body.contains(alert), "{}", page.body);
    assert!(page.body.contains("<small>Details for its developers: unknown client_id"), "{}", page.body);
}

/// Hardening 2 (RFC 8265 UsernameCaseMapped): one account whatever the case or width it is typed in,
/// and one throttle for it: failures as `ALICE` count against `alice`.
#[tokio::test]
async fn usernames_have_one_canonical_form_for_login_and_throttle() {
    let op = setup().await;
    for spelling in ["ALICE", "Ａｌｉｃｅ", " Alice "] {
        let b = Browser::new(&op);
        let page = login_page(&op, &b).await;
        assert_eq!(b.submit_login(&page, spelling, PASSWORD).await.status, 303, "{spelling:?}");
    }
    let b = Browser::new(&op);
    let page = login_page(&op, &b).await;
    for spelling in ["ALICE", "Alice", "alice"] {
        assert_eq!(b.submit_login(&page, spelling, "wrong password!").await.status, 401);
    }
    assert_eq!(b.submit_login(&page, "aLiCe", PASSWORD).await.status, 429, "the same account's throttle");
}
