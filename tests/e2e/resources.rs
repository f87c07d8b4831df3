//! Tokens for resource servers: resource indicators (RFC 8707) through the code flow, refresh and
//! client credentials; RFC 9068 JWT access tokens verified against the JWKS; introspection by the
//! resource servers a token is for, as JSON and as a signed JWT (RFC 9701); revocation of a JWT.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Browser, REDIRECT_URI, TestOp, VERIFIER, exchange_code, json, query};
use josekit::jwk::JwkSet;
use josekit::jws;
use oxid::model::{ClientAuthMethod, ResourceServer, TokenFormat};
use serde_json::{Value, json};

const API: &str = "https://api.example.com";
const REPORTS: &str = "https://reports.example.com/v1";
const API_SECRET: &str = "the-api-introspection-secret-0123456789";
const REPORTS_SECRET: &str = "the-reports-introspection-secret-98765";

async fn op_with_resources() -> (TestOp, String) {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    for (identifier, scope, format, secret) in [
        (API, "api.read", TokenFormat::Opaque, API_SECRET),
        (REPORTS, "reports.read", TokenFormat::Jwt, REPORTS_SECRET),
    ] {
        let resource = ResourceServer {
            identifier: identifier.into(),
            name: identifier.into(),
            scopes: scope.parse().unwrap(),
            token_format: format,
            signing_alg: oxid::model::SigningAlg::RS256,
            access_token_lifetime: Some(600),
            secret_hash: Some(oxid::crypto::token_hash(secret)),
            jwks: None,
            created_at: oxid::model::now(),
        };
        op.store.insert_resource(&resource).await.unwrap();
    }
    let (_, secret) = op
        .add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| {
            c.skip_consent = true;
            c.metadata.scope = "reports.read".parse().unwrap();
        })
        .await;
    (op, secret.unwrap())
}

/// RFC 6749 2.3.1: the identifier is form-urlencoded before it goes into Basic.
fn basic(identifier: &str, secret: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(identifier.as_bytes()).collect();
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn introspect_as(
    op: &TestOp,
    identifier: &str,
    secret: &str,
    token: &str,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(op.url("/introspect"))
        .header("Authorization", basic(identifier, secret))
        .form(&[("token", token)]);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    request.send().await.unwrap()
}

/// Verifies an RS256 JWT of the OP against its JWKS and checks its `typ`; returns the claims.
async fn verified(op: &TestOp, jwt: &str, typ: &str) -> Value {
    verified_with(op, jwt, typ, "RS256").await
}

/// The same for a JWT signed with `alg`.
async fn verified_with(op: &TestOp, jwt: &str, typ: &str, alg: &str) -> Value {
    let jwks = reqwest::get(op.url("/jwks.json")).await.unwrap().text().await.unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some(typ), Some(alg)), "{header}");
    let set = JwkSet::from_bytes(&jwks).unwrap();
    let key = set.get(header["kid"].as_str().unwrap())[0];
    let verifier: Box<dyn jws::JwsVerifier> = match alg {
        "ES256" => Box::new(jws::ES256.verifier_from_jwk(key).unwrap()),
        _ => Box::new(jws::RS256.verifier_from_jwk(key).unwrap()),
    };
    let (payload, _) = jws::deserialize_compact(jwt, verifier.as_ref()).expect("signed by the OP");
    serde_json::from_slice(&payload).unwrap()
}

async fn refresh(op: &TestOp, secret: &str, refresh_token: &str, resource: &str) -> (u16, Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("resource", resource)];
    let response = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(secret)).form(&form).send();
    let (status, body) = json(response.await.unwrap()).await;
    (status.as_u16(), body)
}

/// Alice signs in to webapp for both resources (RFC 8707 2: `resource` is repeatable; their scopes are
/// granted because they are named); the code is redeemed for the API alone (one resource per token
/// request). The token endpoint's answer.
async fn sign_in_for_both(op: &TestOp, secret: &str) -> (reqwest::StatusCode, Value) {
    let b = Browser::new(op);
    let resources =
        format!("&resource={}&resource={}&prompt=consent", common::urlencode(API), common::urlencode(REPORTS));
    let url = op
        .authorize_url("webapp", &resources)
        .replace("scope=openid%20email%20profile", "scope=openid%20offline_access%20api.read%20reports.read");
    let code = query(&b.sign_in(&url, "alice").await)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("resource", API),
    ];
    let response = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(secret)).form(&form).send();
    json(response.await.unwrap()).await
}

#[tokio::test]
async fn resource_indicators_through_the_code_flow_and_refresh() {
    let (op, secret) = op_with_resources().await;
    let (status, tokens) = sign_in_for_both(&op, &secret).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["scope"].as_str().unwrap().contains("api.read"), "{tokens}");
    assert!(
        !tokens["scope"].as_str().unwrap().contains("reports.read"),
        "the other resource's scope is not this token's"
    );
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 1, "the API takes opaque tokens");
    // The API sees it (its audience); the reports server does not; wrong credentials are 401.
    let (_, seen) = json(introspect_as(&op, API, API_SECRET, access, None).await).await;
    assert_eq!((seen["active"].as_bool(), &seen["aud"]), (Some(true), &json!([API])), "{seen}");
    let (_, foreign) = json(introspect_as(&op, REPORTS, REPORTS_SECRET, access, None).await).await;
    assert_eq!(foreign, json!({"active": false}));
    assert_eq!(introspect_as(&op, API, "wrong", access, None).await.status(), 401);

    // A refresh narrows to the other authorized resource, which takes RFC 9068 JWTs.
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = refresh(&op, &secret, refresh_token, REPORTS).await;
    assert_eq!(status, 200, "{refreshed}");
    let jwt = refreshed["access_token"].as_str().unwrap();
    let claims = verified(&op, jwt, "at+jwt").await;
    let alice = op.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(
        (&claims["aud"], &claims["sub"], &claims["client_id"]),
        (&json!(REPORTS), &json!(alice.id), &json!("webapp"))
    );
    assert_eq!(claims["iss"], op.issuer);
    for claim in ["exp", "iat", "jti", "scope", "auth_time", "acr", "amr"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600, "the resource's lifetime");
    // The JWT is recorded: the reports server can introspect it (with its jti, iat and nbf).
    let (_, seen) = json(introspect_as(&op, REPORTS, REPORTS_SECRET, jwt, None).await).await;
    assert_eq!(seen["active"], true);
    assert_eq!((&seen["jti"], &seen["iat"], &seen["nbf"]), (&claims["jti"], &claims["iat"], &claims["iat"]), "{seen}");
    // A resource the grant was not authorized for is invalid_target.
    let (status, body) =
        refresh(&op, &secret, refreshed["refresh_token"].as_str().unwrap(), "https://other.example").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));

    // An unregistered resource at the authorization endpoint: invalid_target to the client.
    let b = Browser::new(&op);
    let page = b.get(&op.authorize_url("webapp", "&resource=https%3A%2F%2Funknown.example")).await;
    assert_eq!(query(&page.location.unwrap())["error"], "invalid_target");
    let page = b.get(&op.authorize_url("webapp", "&resource=not-a-uri")).await;
    assert_eq!(query(&page.location.unwrap())["error"], "invalid_target");
    // Without the resource, its scope is not granted.
    let url = op.authorize_url("webapp", "").replace("scope=openid%20email%20profile", "scope=openid%20api.read");
    let code = query(&b.sign_in(&url, "alice").await)["code"].clone();
    let (_, tokens) = json(exchange_code(&op, "webapp", &secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(tokens["scope"], "openid");
}

#[tokio::test]
async fn jwt_access_tokens_for_a_client_introspected_as_jwt_and_revoked() {
    let (op, secret) = op_with_resources().await;
    let form = [("grant_type", "client_credentials"), ("resource", REPORTS), ("scope", "reports.read")];
    let response = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(&form).send();
    let (status, tokens) = json(response.await.unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let jwt = tokens["access_token"].as_str().unwrap();
    let claims = verified(&op, jwt, "at+jwt").await;
    assert_eq!((&claims["sub"], &claims["aud"]), (&json!("webapp"), &json!(REPORTS)), "the client acts for itself");

    // RFC 9701: a signed introspection answer for the resource server.
    let response = introspect_as(&op, REPORTS, REPORTS_SECRET, jwt, Some("application/token-introspection+jwt")).await;
    assert_eq!(response.headers()["content-type"], "application/token-introspection+jwt");
    let answer = verified(&op, &response.text().await.unwrap(), "token-introspection+jwt").await;
    assert_eq!((&answer["aud"], &answer["iss"]), (&json!(REPORTS), &json!(op.issuer)));
    assert_eq!(answer["token_introspection"]["active"], true);
    assert_eq!(answer["token_introspection"]["client_id"], "webapp");

    // Revoked by the client (RFC 7009): inactive for the resource server.
    let revoked = reqwest::Client::new()
        .post(op.url("/revoke"))
        .basic_auth("webapp", Some(&secret))
        .form(&[("token", jwt)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (_, after) = json(introspect_as(&op, REPORTS, REPORTS_SECRET, jwt, None).await).await;
    assert_eq!(after, json!({"active": false}));
    // An unknown resource at the token endpoint.
    let form = [("grant_type", "client_credentials"), ("resource", "https://unknown.example")];
    let response = reqwest::Client::new().post(op.url("/token")).basic_auth("webapp", Some(&secret)).form(&form).send();
    let (status, body) = json(response.await.unwrap()).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_target")));
}

/// RFC 8693: a gateway the operator allowed trades alice's access token for the API for one to the
/// reports server, acting for her (`act`); the new token dies with the original grant.
#[tokio::test]
async fn token_exchange_with_delegation() {
    let (op, secret) = op_with_resources().await;
    let (_, gateway_secret) = op
        .add_client("gateway", ClientAuthMethod::ClientSecretBasic, |c| {
            c.grant_types = vec![oxid::model::GrantType::TokenExchange];
            c.metadata.response_types.clear();
        })
        .await;
    let gateway_secret = gateway_secret.unwrap();
    let (_, tokens) = sign_in_for_both(&op, &secret).await;
    let subject = tokens["access_token"].as_str().unwrap();

    let exchange = |client: &'static str, client_secret: String, extra: Vec<(&'static str, String)>| {
        let op_url = op.url("/token");
        async move {
            let mut form = vec![("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_owned())];
            if !extra.iter().any(|(k, _)| *k == "subject_token_type") {
                form.push(("subject_token_type", "urn:ietf:params:oauth:token-type:access_token".to_owned()));
            }
            form.extend(extra);
            let response =
                reqwest::Client::new().post(op_url).basic_auth(client, Some(client_secret)).form(&form).send();
            let (status, body) = json(response.await.unwrap()).await;
            (status.as_u16(), body)
        }
    };
    let (status, exchanged) = exchange(
        "gateway",
        gateway_secret.clone(),
        vec![("subject_token", subject.to_owned()), ("resource", REPORTS.to_owned()), ("scope", "openid".to_owned())],
    )
    .await;
    assert_eq!(status, 200, "{exchanged}");
    assert_eq!(exchanged["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert!(exchanged.get("refresh_token").is_none());
    let jwt = exchanged["access_token"].as_str().unwrap();
    let claims = verified(&op, jwt, "at+jwt").await;
    let alice = op.store.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(
        (&claims["sub"], &claims["aud"], &claims["scope"]),
        (&json!(alice.id), &json!(REPORTS), &json!("openid"))
    );
    assert_eq!(claims["act"], json!({"sub": "gateway"}), "the gateway acts for alice");
    assert_eq!(claims["client_id"], "gateway");

    // Refusals (RFC 8693 2.2.2): a client not allowed to exchange; more scope than the subject's; an
    // unknown target; an inactive or foreign subject token.
    let (status, body) = exchange(
        "webapp",
        secret.clone(),
        vec![("subject_token", subject.to_owned()), ("resource", REPORTS.to_owned())],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    // The API token's own api.read is the API's: it is not carried to the reports server.
    let wider = vec![
        ("subject_token", subject.to_owned()),
        ("resource", REPORTS.to_owned()),
        ("scope", "openid api.read".to_owned()),
    ];
    assert_eq!(exchange("gateway", gateway_secret.clone(), wider).await.1["error"], "invalid_scope");
    let nowhere = vec![("subject_token", subject.to_owned()), ("resource", "https://nowhere.example".to_owned())];
    assert_eq!(exchange("gateway", gateway_secret.clone(), nowhere).await.1["error"], "invalid_target");
    let made_up = vec![("subject_token", "made-up".to_owned()), ("resource", REPORTS.to_owned())];
    assert_eq!(exchange("gateway", gateway_secret.clone(), made_up).await.1["error"], "invalid_request");
    let id_token = vec![
        ("subject_token", tokens["id_token"].as_str().unwrap().to_owned()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token".to_owned()),
        ("resource", REPORTS.to_owned()),
    ];
    let (status, body) = exchange("gateway", gateway_secret.clone(), id_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "webapp's ID Token is not the gateway's"
    );
    assert!(body["error_description"].as_str().unwrap().contains("another client"), "{body}");

    // Revoking the original grant (its refresh token) ends the exchanged token too.
    let revoked = reqwest::Client::new()
        .post(op.url("/revoke"))
        .basic_auth("webapp", Some(&secret))
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (_, after) = json(introspect_as(&op, REPORTS, REPORTS_SECRET, jwt, None).await).await;
    assert_eq!(after, json!({"active": false}));
}

/// The operator's default audience (`default_resource`) for requests that name none, and a resource
/// whose JWT access tokens are signed with ES256.
#[tokio::test]
async fn a_default_audience_and_a_resource_with_its_own_algorithm() {
    let op = TestOp::start_with(|c| c.default_resource = Some(REPORTS.into())).await;
    let resource = ResourceServer {
        identifier: REPORTS.into(),
        name: "Reports".into(),
        scopes: "reports.read".parse().unwrap(),
        token_format: TokenFormat::Jwt,
        signing_alg: oxid::model::SigningAlg::ES256,
        access_token_lifetime: None,
        secret_hash: None,
        jwks: None,
        created_at: oxid::model::now(),
    };
    op.store.insert_resource(&resource).await.unwrap();
    let (_, secret) = op
        .add_client("svc", ClientAuthMethod::ClientSecretBasic, |c| c.metadata.scope = "reports.read".parse().unwrap())
        .await;
    let response = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth("svc", secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send();
    let (status, tokens) = json(response.await.unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verified_with(&op, tokens["access_token"].as_str().unwrap(), "at+jwt", "ES256").await;
    assert_eq!(claims["aud"], REPORTS);
}

/// A resource server that introspects with signed assertions (RFC 7523) instead of a secret.
#[tokio::test]
async fn a_resource_server_introspects_with_a_signed_assertion() {
    let op = TestOp::start().await;
    let pair = jws::ES256.generate_key_pair().unwrap();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("rs-1");
    let resource = ResourceServer {
        identifier: API.into(),
        name: "API".into(),
        scopes: "api.read".parse().unwrap(),
        token_format: TokenFormat::Opaque,
        signing_alg: oxid::model::SigningAlg::RS256,
        access_token_lifetime: None,
        secret_hash: None,
        jwks: Some(json!({"keys": [Value::Object(public.as_ref().clone())]}).to_string()),
        created_at: oxid::model::now(),
    };
    op.store.insert_resource(&resource).await.unwrap();
    let (_, secret) = op
        .add_client("svc", ClientAuthMethod::ClientSecretBasic, |c| c.metadata.scope = "api.read".parse().unwrap())
        .await;
    let form = [("grant_type", "client_credentials"), ("resource", API)];
    let response =
        reqwest::Client::new().post(op.url("/token")).basic_auth("svc", secret.as_deref()).form(&form).send();
    let (_, tokens) = json(response.await.unwrap()).await;
    let token = tokens["access_token"].as_str().unwrap();
    let mut signer = jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap();
    signer.set_key_id("rs-1");
    let assertion = |jti: &str| {
        let now = oxid::model::now();
        let claims = json!({"iss": API, "sub": API, "aud": op.url("/introspect"), "jti": jti, "exp": now + 60});
        jws::serialize_compact(claims.to_string().as_bytes(), &jws::JwsHeader::new(), &signer).unwrap()
    };
    let introspect = |assertion: String| {
        reqwest::Client::new()
            .post(op.url("/introspect"))
            .form(&[
                ("token", token),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
    };
    let first = assertion("a1");
    let (status, seen) = json(introspect(first.clone()).await.unwrap()).await;
    assert_eq!((status.as_u16(), &seen["active"], &seen["aud"]), (200, &json!(true), &json!([API])), "{seen}");
    assert_eq!(introspect(first).await.unwrap().status(), 401, "an assertion works once");
}
