//! Claims (Core 5): the full standard claim set and custom claims, scope→claims mapping (configurable,
//! custom scopes too), and the `claims` request parameter (Core 5.5) for the ID Token and UserInfo.

use crate::common;

use common::{Browser, CHALLENGE, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, query, urlencode};
use openidconnect::core::{CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, JsonWebKeySetUrl, Nonce};
use oxid::model::ClientAuthMethod;
use serde_json::{Value, json};

/// An OP (with a custom `groups` scope) where alice has further claims, and a confidential client.
async fn setup() -> (TestOp, String) {
    let op = TestOp::start_with(|c| {
        c.scope_claims.insert("groups".into(), vec!["groups".into()]);
    })
    .await;
    let mut alice = op.add_user("alice").await;
    for (name, value) in [
        ("nickname", json!("Ali")),
        ("birthdate", json!("1990-04-01")),
        ("picture", json!("https://img.example/alice.png")),
        ("name#fr", json!("Alice l'Exemple")),
        ("groups", json!(["admins", "staff"])),
    ] {
        alice.claims.insert(name.into(), value);
    }
    assert!(op.store.set_user_claims("alice", &alice.claims).await.unwrap());
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    (op, secret.unwrap())
}

fn authorize_url(op: &TestOp, scope: &str, extra: &str) -> String {
    format!(
        "{}/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope={}&state=st4te&nonce=n0nce\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        op.issuer,
        urlencode(REDIRECT_URI),
        urlencode(scope)
    )
}

fn claims_param(value: Value) -> String {
    format!("&claims={}", urlencode(&value.to_string()))
}

/// Verifies an ID Token against the OP's JWKS with the `openidconnect` crate; returns its claims and
/// the raw payload (for claims the crate does not model).
async fn verified(op: &TestOp, id_token: &str) -> (CoreIdTokenClaims, Value) {
    let jwks_url = JsonWebKeySetUrl::new(op.url("/jwks.json")).unwrap();
    let http = openidconnect::reqwest::Client::new();
    let jwks = CoreJsonWebKeySet::fetch_async(&jwks_url, &http).await.unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new("webapp".into()),
        IssuerUrl::new(op.issuer.clone()).unwrap(),
        jwks,
    );
    let token: CoreIdToken = id_token.parse().unwrap();
    let claims = token.claims(&verifier, &Nonce::new("n0nce".into())).expect("the ID Token verifies").clone();
    (claims, common::jwt_payload(id_token))
}

async fn userinfo(op: &TestOp, access_token: &str) -> Value {
    let (status, body) = json(common::userinfo(op, access_token).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn sign_in_and_redeem(op: &TestOp, secret: &str, browser: &Browser, url: &str) -> Value {
    let callback = browser.sign_in(url, "alice").await;
    let code = query(&callback).get("code").cloned().unwrap_or_else(|| panic!("no code: {callback}"));
    let (status, tokens) = json(exchange_code(op, "webapp", secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// Core 5.4: `profile` releases the whole standard profile set, language-tagged forms included (5.2);
/// a configured custom scope releases its claims; nothing is sent as null.
#[tokio::test]
async fn scopes_release_the_standard_and_custom_claims() {
    let (op, secret) = setup().await;
    let url = authorize_url(&op, "openid profile groups", "");
    let tokens = sign_in_and_redeem(&op, &secret, &Browser::new(&op), &url).await;
    let info = userinfo(&op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], "sub-alice");
    assert_eq!(info["nickname"], "Ali");
    assert_eq!(info["birthdate"], "1990-04-01");
    assert_eq!(info["picture"], "https://img.example/alice.png");
    assert_eq!(info["name"], "alice Example");
    assert_eq!(info["name#fr"], "Alice l'Exemple");
    assert_eq!(info["preferred_username"], "alice");
    assert!(info["updated_at"].is_i64());
    assert_eq!(info["groups"], json!(["admins", "staff"]));
    assert!(info.get("email").is_none(), "email scope not asked for");
    assert!(info.as_object().unwrap().values().all(|v| !v.is_null()), "no nulls (Core 5.3.2): {info}");

    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert!(doc["scopes_supported"].as_array().unwrap().contains(&json!("groups")));
    for claim in ["groups", "nickname", "birthdate", "zoneinfo", "middle_name"] {
        assert!(doc["claims_supported"].as_array().unwrap().contains(&json!(claim)), "{claim}");
    }
    assert_eq!(doc["claims_parameter_supported"], true);
}

/// Core 5.5: individual claims for the ID Token and for UserInfo, consented to one by one, and
/// honoured again after a refresh.
#[tokio::test]
async fn claims_parameter_adds_claims_to_the_id_token_and_userinfo() {
    let (op, secret) = setup().await;
    let b = Browser::new(&op);
    let request = json!({
        "id_token": {"email": {"essential": true}, "nickname": null, "acr": {"values": ["urn:oxid:acr:password"]}},
        "userinfo": {"birthdate": {"essential": true}, "picture": null},
        "something_else": {"ignored": true}
    });
    let url = authorize_url(&op, "openid offline_access", &format!("{}&prompt=consent", claims_param(request)));
    let login = b.follow(b.get(&url).await).await;
    let consent = b.follow(b.submit_login(&login, "alice", common::PASSWORD).await).await;
    // The consent page names what is asked for one by one.
    for claim in ["birthdate", "email", "nickname", "picture"] {
        assert!(consent.body.contains(claim), "{claim} on the consent page:\n{}", consent.body);
    }
    let callback = b.follow(b.submit_consent(&consent, "allow").await).await.location.unwrap();
    let code = query(&callback)["code"].clone();
    let (status, tokens) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");

    let (claims, raw) = verified(&op, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(raw["nickname"], "Ali");
    assert!(raw.get("birthdate").is_none(), "asked for UserInfo only");
    let info = userinfo(&op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["birthdate"], "1990-04-01");
    assert_eq!(info["picture"], "https://img.example/alice.png");
    assert!(info.get("email").is_none() && info.get("nickname").is_none(), "asked for the ID Token only: {info}");

    // The same claims after a refresh (the request belongs to the grant).
    let refreshed = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("webapp", Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let (status, refreshed) = json(refreshed).await;
    assert_eq!(status, 200, "{refreshed}");
    let payload = common::jwt_payload(refreshed["id_token"].as_str().unwrap());
    assert_eq!(payload["email"], "alice@example.com");
    assert_eq!(userinfo(&op, refreshed["access_token"].as_str().unwrap()).await["birthdate"], "1990-04-01");

    // Remembered consent covers these claims now, but not a new one.
    let again = authorize_url(
        &op,
        "openid",
        &format!("{}&prompt=none", claims_param(json!({"userinfo": {"birthdate": null}}))),
    );
    assert!(query(&b.get(&again).await.location.unwrap()).contains_key("code"));
    let more =
        authorize_url(&op, "openid", &format!("{}&prompt=none", claims_param(json!({"userinfo": {"gender": null}}))));
    assert_eq!(query(&b.get(&more).await.location.unwrap())["error"], "consent_required");
}

/// Core 5.5.1.1 with OpenID Connect Core Unmet Authentication Requirements 1.0: an essential `acr` the
/// OP cannot provide fails; Core 5.5.1: `sub` with a value asks for that user; bad JSON is refused.
#[tokio::test]
async fn claims_parameter_errors() {
    let (op, _) = setup().await;
    let b = Browser::new(&op);
    let error = |url: String| {
        let b = &b;
        async move {
            let location = b.get(&url).await.location.unwrap();
            assert!(location.starts_with(REDIRECT_URI), "{location}");
            let q = query(&location);
            assert_eq!(q["state"], "st4te");
            q["error"].clone()
        }
    };
    let essential_acr = claims_param(json!({"id_token": {"acr": {"essential": true, "values": ["urn:example:mfa"]}}}));
    assert_eq!(error(authorize_url(&op, "openid", &essential_acr)).await, "unmet_authentication_requirements");
    for bad in ["[1]", "{\"userinfo\": 3}", "{\"id_token\": {\"email\": true}}", "not json"] {
        let url = authorize_url(&op, "openid", &format!("&claims={}", urlencode(bad)));
        assert_eq!(error(url).await, "invalid_request", "{bad}");
    }
    // A voluntary acr request the OP cannot meet is not an error: the ID Token says what was done.
    let voluntary = claims_param(json!({"id_token": {"acr": {"values": ["urn:example:mfa"]}}}));
    let login = b.follow(b.get(&authorize_url(&op, "openid", &voluntary)).await).await;
    assert!(login.body.contains("name=\"password\""));

    // `sub` naming someone other than the signed-in user: login_required under prompt=none.
    b.sign_in(&authorize_url(&op, "openid", ""), "alice").await;
    let other = claims_param(json!({"id_token": {"sub": {"value": "sub-bob"}}}));
    assert_eq!(error(authorize_url(&op, "openid", &format!("{other}&prompt=none"))).await, "login_required");
    let me = claims_param(json!({"id_token": {"sub": {"value": "sub-alice"}}}));
    let location = b.get(&authorize_url(&op, "openid", &format!("{me}&prompt=none"))).await.location.unwrap();
    assert!(query(&location).contains_key("code"), "{location}");
}

/// Core 5.2 `claims_locales`: each claim once, untagged, in the first requested language the user has
/// it in; the preference belongs to the grant, so UserInfo honours it too.
#[tokio::test]
async fn claims_locales_choose_the_language_of_claim_values() {
    let (op, secret) = setup().await;
    let b = Browser::new(&op);
    let params = format!("&claims_locales=de%20fr{}", claims_param(json!({"id_token": {"name": null}})));
    let tokens = sign_in_and_redeem(&op, &secret, &b, &authorize_url(&op, "openid profile", &params)).await;
    let (_, id_token) = verified(&op, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(id_token["name"], "Alice l'Exemple", "no German form; the French one, untagged");
    let info = userinfo(&op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["name"], "Alice l'Exemple");
    assert_eq!(info["nickname"], "Ali", "claims without a French form as stored");
    assert!(info.get("name#fr").is_none(), "one language, so no tagged forms: {info}");
}

/// The operator names the `acr` a password login achieves; an essential request for it is met and
/// the ID Token carries it (Core 5.5.1.1), and discovery lists it.
#[tokio::test]
async fn configured_acr_meets_an_essential_request() {
    let op = TestOp::start_with(|c| c.password_acr = "urn:example:loa:1".into()).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let essential = claims_param(json!({"id_token": {"acr": {"essential": true, "values": ["urn:example:loa:1"]}}}));
    let url = authorize_url(&op, "openid", &essential);
    let tokens = sign_in_and_redeem(&op, &secret.unwrap(), &Browser::new(&op), &url).await;
    let (claims, _) = verified(&op, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("urn:example:loa:1"));
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    assert_eq!(doc["acr_values_supported"], json!(["urn:example:loa:1", "urn:oxid:acr:mfa"]));
}

/// `acr_values` asks for the acr claim voluntarily (Core 3.1.2.1, 5.5.1.1): a level the OP does not
/// have is no error; the sign-in goes on and the ID Token names the level actually reached.
#[tokio::test]
async fn acr_values_is_voluntary_and_answered_with_the_level_reached() {
    let op = TestOp::start_with(|c| c.password_acr = "urn:example:loa:1".into()).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let secret = secret.unwrap();
    for asked in ["urn%3Aexample%3Aloa%3A3%20urn%3Aexample%3Aloa%3A2", "urn%3Aexample%3Aloa%3A1"] {
        let url = authorize_url(&op, "openid", &format!("&acr_values={asked}"));
        let tokens = sign_in_and_redeem(&op, &secret, &Browser::new(&op), &url).await;
        let (claims, _) = verified(&op, tokens["id_token"].as_str().unwrap()).await;
        assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("urn:example:loa:1"), "{asked}");
    }
}
