//! Implicit and hybrid flows (Core 3.2, 3.3; OAuth 2.0 Multiple Response Type Encoding Practices),
//! checked with the `openidconnect` crate as the RP: every response type, fragment delivery, `nonce`,
//! `at_hash`, `c_hash`, and the rules that refuse what a client may not do.

use crate::common;

use common::{Browser, REDIRECT_URI, TestOp, exchange_code, fragment, json, query, urlencode};
use openidconnect::core::{
    CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCodeHash, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, RedirectUrl, reqwest,
};
use oxid::model::{ClientAuthMethod, ResponseType, SigningAlg};

type Rp = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

fn rp_http() -> reqwest::Client {
    reqwest::ClientBuilder::new().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// An OP with `alice` and a client allowed every response type, signing with `alg`.
async fn setup(alg: SigningAlg) -> (TestOp, Rp, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.skip_consent = true;
            c.id_token_signed_response_alg = alg;
            c.metadata.response_types = ResponseType::ALL.to_vec();
        })
        .await;
    let secret = secret.unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(op.issuer.clone()).unwrap(), &rp_http()).await.unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("webapp".into()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
    (op, client, secret)
}

fn authorize_url(op: &TestOp, response_type: &str, extra: &str) -> String {
    format!(
        "{}/authorize?response_type={}&client_id=webapp&redirect_uri={}&scope=openid%20email&state=st4te{extra}",
        op.issuer,
        urlencode(response_type),
        urlencode(REDIRECT_URI)
    )
}

/// Verifies an ID Token the way an RP must (Core 3.2.2.11): signature against the JWKS, iss, aud,
/// exp, and our nonce.
fn verify(id_token: &str, verifier: &CoreIdTokenVerifier<'_>, nonce: &str) -> (CoreIdToken, CoreIdTokenClaims) {
    let token: CoreIdToken = id_token.parse().expect("a JWT");
    let claims = token.claims(verifier, &Nonce::new(nonce.into())).expect("the ID Token verifies").clone();
    (token, claims)
}

/// Signs in with `response_type` (its space-separated values, as an RP writes them) and checks the whole
/// response against Core 3.2.2.5 / 3.3.2.5. What is expected comes from the values themselves, not from
/// oxid's own parsing of them.
async fn flow(alg: SigningAlg, response_type: &str) {
    let values: Vec<&str> = response_type.split(' ').collect();
    let (has_code, has_token, has_id_token) =
        (values.contains(&"code"), values.contains(&"token"), values.contains(&"id_token"));
    let (op, client, secret) = setup(alg).await;
    let http = rp_http();
    let verifier = client.id_token_verifier();
    let url = authorize_url(&op, response_type, "&nonce=n-0S6_WzA2Mj");
    let callback = Browser::new(&op).sign_in(&url, "alice").await;
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");
    // Multiple Response Type Encoding Practices 3, 5: fragment by default for every type with tokens.
    assert!(!callback.contains('?'), "nothing in the query: {callback}");
    let p = fragment(&callback);
    assert_eq!(p["state"], "st4te");
    assert_eq!(p["iss"], op.issuer, "RFC 9207");
    assert_eq!(p.contains_key("code"), has_code, "{p:?}");
    assert_eq!(p.contains_key("access_token"), has_token, "{p:?}");
    assert_eq!(p.contains_key("id_token"), has_id_token, "{p:?}");

    if has_token {
        assert_eq!(p["token_type"], "Bearer");
        assert!(p["expires_in"].parse::<u64>().unwrap() > 0);
        // The access token from the authorization endpoint works at UserInfo.
        let info: CoreUserInfoClaims = client
            .user_info(AccessToken::new(p["access_token"].clone()), None)
            .unwrap()
            .request_async(&http)
            .await
            .unwrap();
        assert_eq!(info.subject().as_str(), "sub-alice");
    }

    if let Some(id_token) = p.get("id_token") {
        let (token, claims) = verify(id_token, &verifier, "n-0S6_WzA2Mj");
        assert_eq!(claims.subject().as_str(), "sub-alice");
        let (signing_alg, key) = (token.signing_alg().unwrap(), token.signing_key(&verifier).unwrap());
        assert_eq!(serde_json::to_value(signing_alg).unwrap(), alg.as_str());
        // Core 3.2.2.10 / 3.3.2.11: at_hash whenever an access token comes with the ID Token.
        match p.get("access_token") {
            Some(at) => {
                let expected = AccessTokenHash::from_token(&AccessToken::new(at.clone()), signing_alg, key).unwrap();
                assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash");
            }
            None => assert!(claims.access_token_hash().is_none()),
        }
        // Core 3.3.2.11: c_hash whenever a code comes with the ID Token.
        match p.get("code") {
            Some(code) => {
                let code = openidconnect::AuthorizationCode::new(code.clone());
                let expected = AuthorizationCodeHash::from_code(&code, signing_alg, key).unwrap();
                assert_eq!(claims.code_hash(), Some(&expected), "c_hash");
            }
            None => assert!(claims.code_hash().is_none()),
        }
        // Core 5.4: with no access token, the scopes' claims are in the ID Token itself.
        let email = claims.email().map(|e| e.as_str());
        if has_token {
            assert_eq!(email, None, "claims come from UserInfo when there is an access token");
        } else {
            assert_eq!(email, Some("alice@example.com"));
        }
    }

    if let Some(code) = p.get("code") {
        // Core 3.3.3: the code redeems at the token endpoint; the ID Token has the same subject.
        let (status, tokens) = json(exchange_code(&op, "webapp", &secret, code, None).await).await;
        assert_eq!(status, 200, "{tokens}");
        let (_, claims) = verify(tokens["id_token"].as_str().unwrap(), &verifier, "n-0S6_WzA2Mj");
        assert_eq!(claims.subject().as_str(), "sub-alice");
    }
}

#[tokio::test]
async fn id_token() {
    flow(SigningAlg::RS256, "id_token").await;
}

#[tokio::test]
async fn id_token_token() {
    flow(SigningAlg::ES256, "id_token token").await;
}

#[tokio::test]
async fn code_id_token() {
    flow(SigningAlg::RS256, "code id_token").await;
}

#[tokio::test]
async fn code_token() {
    flow(SigningAlg::PS256, "code token").await;
}

#[tokio::test]
async fn code_id_token_token() {
    flow(SigningAlg::EdDSA, "code id_token token").await;
}

#[tokio::test]
async fn response_type_values_in_any_order() {
    // Multiple Response Type Encoding Practices 5: the order of the values does not matter.
    let (op, _, _) = setup(SigningAlg::RS256).await;
    let callback = Browser::new(&op).sign_in(&authorize_url(&op, "token id_token code", "&nonce=n"), "alice").await;
    let p = fragment(&callback);
    assert!(p.contains_key("code") && p.contains_key("id_token") && p.contains_key("access_token"), "{p:?}");
}

/// OAuth 2.0 Multiple Response Type Encoding Practices 4: `none` returns only state (and iss), in the
/// query, after the user has authorized.
#[tokio::test]
async fn none_returns_no_credentials() {
    let (op, _, _) = setup(SigningAlg::RS256).await;
    let callback = Browser::new(&op).sign_in(&authorize_url(&op, "none", ""), "alice").await;
    let p = query(&callback);
    assert_eq!(p["state"], "st4te");
    assert_eq!(p["iss"], op.issuer);
    assert!(!p.contains_key("code") && !callback.contains('#'), "{callback}");
}

/// Hybrid responses can be posted too (Form Post Response Mode 2).
#[tokio::test]
async fn hybrid_in_form_post() {
    let (op, client, _) = setup(SigningAlg::RS256).await;
    let b = Browser::new(&op);
    let url = authorize_url(&op, "code id_token", "&nonce=n1&response_mode=form_post");
    let login = b.follow(b.get(&url).await).await;
    let page = b.follow(b.submit_login(&login, "alice", common::PASSWORD).await).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let verifier = client.id_token_verifier();
    let (token, claims) = verify(&page.hidden("id_token"), &verifier, "n1");
    let code = openidconnect::AuthorizationCode::new(page.hidden("code"));
    let expected =
        AuthorizationCodeHash::from_code(&code, token.signing_alg().unwrap(), token.signing_key(&verifier).unwrap());
    assert_eq!(claims.code_hash(), Some(&expected.unwrap()), "c_hash of the posted code");
    assert_eq!(page.hidden("state"), "st4te");
}

async fn error_in_fragment(op: &TestOp, url: &str) -> (String, String) {
    let b = Browser::new(op);
    let page = b.get(url).await;
    let location = page.location.unwrap_or_else(|| panic!("an error redirect, got {}: {}", page.status, page.body));
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let p = fragment(&location);
    assert_eq!(p.get("state").map(String::as_str), Some("st4te"), "{location}");
    (p["error"].clone(), p.get("error_description").cloned().unwrap_or_default())
}

#[tokio::test]
async fn implicit_and_hybrid_errors_go_in_the_fragment() {
    let (op, _, _) = setup(SigningAlg::RS256).await;
    // Core 3.2.2.1 / 3.3.2.11: nonce is required when the ID Token comes from the authorization endpoint.
    for rt in ["id_token", "id_token token", "code id_token", "code id_token token"] {
        let (error, description) = error_in_fragment(&op, &authorize_url(&op, rt, "")).await;
        assert_eq!(error, "invalid_request", "{rt}");
        assert!(description.contains("nonce"), "{description}");
    }
    // ... but not for `code token`, whose ID Token comes from the token endpoint (Core 3.3.2.11).
    let b = Browser::new(&op);
    let page = b.follow(b.get(&authorize_url(&op, "code token", "")).await).await;
    assert!(page.body.contains("name=\"password\""), "the login page: {}", page.body);

    // Multiple Response Type Encoding Practices 2.1: tokens never travel in a query.
    let (error, _) =
        error_in_fragment(&op, &authorize_url(&op, "id_token token", "&nonce=n&response_mode=query")).await;
    assert_eq!(error, "invalid_request");
    // Bare `token` is not offered (RFC 9700 2.1.2); its error still goes in the fragment.
    let (error, _) = error_in_fragment(&op, &authorize_url(&op, "token", "")).await;
    assert_eq!(error, "unsupported_response_type");
    // prompt=none without a session: login_required, in the fragment.
    let (error, _) = error_in_fragment(&op, &authorize_url(&op, "code id_token", "&nonce=n&prompt=none")).await;
    assert_eq!(error, "login_required");
}

/// A client uses only its registered response types (Registration 2 `response_types`; RFC 6749 4.1.2.1).
#[tokio::test]
async fn unregistered_response_type_is_unauthorized_client() {
    let op = TestOp::start().await;
    op.add_client("codeonly", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let url = authorize_url(&op, "code id_token", "&nonce=n").replace("client_id=webapp", "client_id=codeonly");
    let (error, _) = error_in_fragment(&op, &url).await;
    assert_eq!(error, "unauthorized_client");
}

/// A replayed code revokes everything its grant issued, including the access token that came with it
/// from the authorization endpoint (RFC 6749 4.1.2, Core 3.3).
#[tokio::test]
async fn code_replay_revokes_the_front_channel_access_token() {
    let (op, client, secret) = setup(SigningAlg::RS256).await;
    let callback = Browser::new(&op).sign_in(&authorize_url(&op, "code token", ""), "alice").await;
    let p = fragment(&callback);
    let userinfo = |token: String| {
        let req = client.user_info(AccessToken::new(token), None).unwrap();
        async move { req.request_async(&rp_http()).await.map(|_: CoreUserInfoClaims| ()) }
    };
    assert!(userinfo(p["access_token"].clone()).await.is_ok());
    let (status, _) = json(exchange_code(&op, "webapp", &secret, &p["code"], None).await).await;
    assert_eq!(status, 200);
    let (status, body) = json(exchange_code(&op, "webapp", &secret, &p["code"], None).await).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")));
    let revoked = common::userinfo(&op, &p["access_token"]).await;
    assert_eq!(revoked.status(), 401, "revoked with the grant");
}

#[tokio::test]
async fn discovery_advertises_every_response_type() {
    let op = TestOp::start().await;
    let (_, doc) = json(reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap()).await;
    let types: Vec<&str> =
        doc["response_types_supported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for rt in ["code", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "none"] {
        assert!(types.contains(&rt), "{rt}");
    }
    assert!(doc["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "implicit"));
}
