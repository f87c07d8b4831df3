//! End to end: a real RP library (`openidconnect`) signs in against a real oxid over HTTP.

use crate::common;

use common::{Browser, REDIRECT_URI, TestOp, query};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse, reqwest,
};
use oxid::model::{ClientAuthMethod, SigningAlg};

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn rp_http() -> reqwest::Client {
    reqwest::ClientBuilder::new().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs `alice` in to a confidential client whose ID Tokens use `alg`; checks everything an RP checks.
async fn full_sign_in(alg: SigningAlg) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) =
        op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.id_token_signed_response_alg = alg).await;
    let http = rp_http();

    // Discovery 1.0 4: the RP learns every endpoint from the issuer.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(op.issuer.clone()).unwrap(), &http).await.unwrap();
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new("webapp".into()), secret.map(ClientSecret::new))
            .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        // Core 11: offline access is asked for with prompt=consent.
        .add_prompt(CoreAuthPrompt::Consent)
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::new(&op);
    let callback = browser.sign_in(auth_url.as_str(), "alice").await;
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");
    let params = query(&callback);
    assert_eq!(params["state"], *csrf.secret(), "state is returned unchanged (RFC 6749 4.1.2)");
    assert_eq!(params["iss"], op.issuer, "RFC 9207 iss");

    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID Token (Core 3.1.3.3)");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("ID Token verifies against the JWKS, with our nonce");
    assert_eq!(claims.subject().as_str(), "sub-alice");
    assert_eq!(claims.issuer().as_str(), op.issuer);
    assert!(claims.auth_time().is_some(), "auth_time");
    assert!(claims.auth_context_ref().is_some(), "acr");
    assert!(claims.auth_method_refs().is_some_and(|a| !a.is_empty()), "amr");
    assert_eq!(claims.authorized_party().map(|a| a.as_str()), Some("webapp"), "azp");
    let header = id_token.to_string().split('.').next().map(str::to_owned).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&base64_url(&header)).unwrap();
    assert_eq!(header["alg"], alg.as_str(), "the client's id_token_signed_response_alg");
    let expected_hash = claims.access_token_hash().expect("at_hash (Core 3.1.3.6)");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(*expected_hash, actual);

    // UserInfo (Core 5.3): the same subject, and the claims the scopes allow.
    let info: CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.unwrap();
    assert_eq!(info.subject().as_str(), "sub-alice");
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    // offline_access gave a refresh token; refreshing rotates it and keeps the subject.
    let refresh = tokens.refresh_token().expect("a refresh token for offline_access (Core 11)").clone();
    let refreshed = client.exchange_refresh_token(&refresh).unwrap().request_async(&http).await.unwrap();
    let new_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(new_refresh.secret(), refresh.secret());
    let refreshed_id = refreshed.id_token().expect("an ID Token on refresh (Core 12.2)");
    let refreshed_claims = refreshed_id.claims(&verifier, |_: Option<&Nonce>| Ok(())).unwrap();
    assert_eq!(refreshed_claims.subject().as_str(), "sub-alice");
    assert_eq!(refreshed_claims.auth_time(), claims.auth_time(), "auth_time is that of the original login");
    let _: CoreUserInfoClaims =
        client.user_info(refreshed.access_token().clone(), None).unwrap().request_async(&http).await.unwrap();

    // A second sign-in in the same browser: the session and the remembered consent skip both pages.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let page = browser.get(auth_url.as_str()).await;
    let location = page.location.expect("a redirect straight back to the client");
    assert!(location.starts_with(REDIRECT_URI) && query(&location).contains_key("code"), "{location}");
}

#[tokio::test]
async fn sign_in_with_rs256() {
    full_sign_in(SigningAlg::RS256).await;
}

#[tokio::test]
async fn sign_in_with_es256() {
    full_sign_in(SigningAlg::ES256).await;
}

#[tokio::test]
async fn sign_in_with_eddsa() {
    full_sign_in(SigningAlg::EdDSA).await;
}

#[tokio::test]
async fn sign_in_with_ps256() {
    full_sign_in(SigningAlg::PS256).await;
}

/// A public client (a SPA or native app) authenticates with `none` and must use PKCE.
#[tokio::test]
async fn public_client_with_pkce() {
    let op = TestOp::start().await;
    op.add_user("bob").await;
    op.add_client("spa", ClientAuthMethod::None, |c| c.skip_consent = true).await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(op.issuer.clone()).unwrap(), &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("spa".into()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
        .set_auth_type(openidconnect::AuthType::RequestBody);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let callback = Browser::new(&op).sign_in(auth_url.as_str(), "bob").await;
    let code = query(&callback)["code"].clone();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens.id_token().unwrap().claims(&client.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), "sub-bob");
    assert!(tokens.refresh_token().is_none(), "no offline_access, no refresh token");
}

/// Core 11: `offline_access` yields a refresh token only with `prompt=consent`, or once the user has
/// allowed offline access before, or for a client trusted to skip consent; otherwise it is ignored.
#[tokio::test]
async fn offline_access_needs_consent() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let (_, trusted_secret) =
        op.add_client("trusted", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let b = Browser::new(&op);
    let url = |client: &str, extra: &str| {
        op.authorize_url(client, extra).replace("scope=openid%20email%20profile", "scope=openid%20offline_access")
    };
    let refresh_token = |client: &'static str, secret: String, callback: String| {
        let op = &op;
        async move {
            let code = query(&callback)["code"].clone();
            let (status, tokens) =
                common::json(common::exchange_code(op, client, &secret, &code, Some(common::VERIFIER)).await).await;
            assert_eq!(status, 200, "{tokens}");
            tokens.get("refresh_token").and_then(|t| t.as_str()).map(str::to_owned)
        }
    };
    let secret = secret.unwrap();

    // Without prompt=consent: the consent page does not offer offline access, and none is granted.
    let login = b.follow(b.get(&url("webapp", "")).await).await;
    let consent = b.follow(b.submit_login(&login, "alice", common::PASSWORD).await).await;
    assert!(consent.body.contains("name=\"decision\""), "{}", consent.body);
    assert!(!consent.body.contains("Stay connected"), "{}", consent.body);
    let callback = b.follow(b.submit_consent(&consent, "allow").await).await.location.unwrap();
    assert_eq!(refresh_token("webapp", secret.clone(), callback).await, None);

    // With prompt=consent: asked for and granted.
    let consent = b.follow(b.get(&url("webapp", "&prompt=consent")).await).await;
    assert!(consent.body.contains("Stay connected"), "{}", consent.body);
    let callback = b.follow(b.submit_consent(&consent, "allow").await).await.location.unwrap();
    assert!(refresh_token("webapp", secret.clone(), callback).await.is_some());

    // Remembered: offline access was allowed before, so no prompt is needed now.
    let callback = b.get(&url("webapp", "&prompt=none")).await.location.unwrap();
    assert!(refresh_token("webapp", secret, callback).await.is_some());

    // A first-party client trusted to skip consent.
    let callback = b.get(&url("trusted", "")).await.location.unwrap();
    assert!(refresh_token("trusted", trusted_secret.unwrap(), callback).await.is_some());
}

/// Registration 2 `default_max_age`: a request without `max_age` gets the client's default; 0 means
/// every sign-in needs a fresh login, and `auth_time` shows it (Core 3.1.2.1).
#[tokio::test]
async fn client_default_max_age_forces_fresh_logins() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op.add_client("strict", ClientAuthMethod::ClientSecretBasic, |c| {
        c.skip_consent = true;
        c.metadata.default_max_age = Some(0);
    })
    .await;
    op.add_client("relaxed", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let b = Browser::new(&op);
    b.sign_in(&op.authorize_url("relaxed", ""), "alice").await;
    // The session satisfies the relaxed client at once, but not the strict one.
    assert!(query(&b.get(&op.authorize_url("relaxed", "")).await.location.unwrap()).contains_key("code"));
    let page = b.follow(b.get(&op.authorize_url("strict", "")).await).await;
    assert!(page.body.contains("name=\"password\""), "a fresh login: {}", page.body);
    // An explicit max_age wins over the default.
    let page = b.get(&op.authorize_url("strict", "&max_age=3600")).await;
    assert!(query(&page.location.unwrap()).contains_key("code"));
}

/// Hardening 14 (RFC 9864): `Ed25519`, the fully-specified name, beside `EdDSA`: advertised, used in
/// the ID Token's header, and the signature checks out against the key the JWKS publishes for it.
#[tokio::test]
async fn sign_in_with_ed25519() {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.id_token_signed_response_alg = SigningAlg::Ed25519;
            c.skip_consent = true;
        })
        .await;
    let (_, doc) = common::json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    let algs = doc["id_token_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.contains(&"Ed25519".into()) && algs.contains(&"EdDSA".into()), "{algs:?}");

    let code = query(&Browser::new(&op).sign_in(&op.authorize_url("webapp", ""), "alice").await)["code"].clone();
    let (_, tokens) =
        common::json(common::exchange_code(&op, "webapp", &secret.unwrap(), &code, Some(common::VERIFIER)).await).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let header: serde_json::Value = serde_json::from_slice(&base64_url(id_token.split('.').next().unwrap())).unwrap();
    assert_eq!(header["alg"], "Ed25519");
    let jwks: serde_json::Value = reqwest::get(op.url("/jwks.json")).await.unwrap().json().await.unwrap();
    let key =
        jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("the key is published");
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("Ed25519"))
    );
    // The signature is plain Ed25519 (RFC 8032) over the signing input.
    let (signed, signature) = id_token.rsplit_once('.').unwrap();
    let public = openssl::pkey::PKey::public_key_from_raw_bytes(
        &base64_url(key["x"].as_str().unwrap()),
        openssl::pkey::Id::ED25519,
    )
    .unwrap();
    let mut verifier = openssl::sign::Verifier::new_without_digest(&public).unwrap();
    assert!(verifier.verify_oneshot(&base64_url(signature), signed.as_bytes()).unwrap());
}

/// Hardening 17 (Discovery 4): an issuer with a path is served under it, discovery included, and a
/// whole sign-in works through it (as behind a proxy that forwards `/oxid/…`).
#[tokio::test]
async fn an_issuer_with_a_path_is_served_under_it() {
    let op = TestOp::start_with(|c| c.issuer = format!("{}/oxid", c.issuer)).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let secret = secret.unwrap();
    assert!(op.issuer.ends_with("/oxid"));
    let http = rp_http();
    // The RP library discovers it (it checks that the document names the same issuer).
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(op.issuer.clone()).unwrap(), &http).await.unwrap();
    assert_eq!(metadata.token_endpoint().unwrap().as_str(), format!("{}/token", op.issuer));
    assert_eq!(http.get(op.url("/.well-known/openid-configuration")).send().await.unwrap().status(), 404);

    let browser = Browser::for_issuer(&op.issuer);
    let authorize = op.authorize_url("webapp", "").replace(&op.nodes[0], &op.issuer);
    let login = browser.follow(browser.get(&authorize).await).await;
    assert!(login.body.contains("action=\"/oxid/login\""), "{}", login.body);
    assert!(login.body.contains("href=\"/oxid/assets/oxid.css\""));
    let callback = browser.follow(browser.submit_login(&login, "alice", common::PASSWORD).await).await;
    let location = callback.location.unwrap_or_else(|| panic!("{} {}", callback.status, callback.body));
    let code = query(&location)["code"].clone();
    let (status, tokens) =
        common::json(common::exchange_code_at(&op.issuer, "webapp", &secret, &code, Some(common::VERIFIER)).await)
            .await;
    assert_eq!(status, 200, "{tokens}");
    let info = http.get(format!("{}/userinfo", op.issuer)).bearer_auth(tokens["access_token"].as_str().unwrap());
    assert_eq!(info.send().await.unwrap().status(), 200);
}
