//! Dynamic Client Registration (OpenID Connect Dynamic Client Registration 1.0, RFC 7591) and its
//! management (RFC 7592): clients registered over HTTP, by the `openidconnect` crate and by hand, then
//! used for sign-ins; every policy; every refusal.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Browser, REDIRECT_URI, TestOp, VERIFIER, exchange_code, fragment, json, jwt_payload, query};
use josekit::jws::{self, JwsHeader};
use openidconnect::core::{CoreClientAuthMethod, CoreClientRegistrationRequest, CoreGrantType, CoreResponseType};
use openidconnect::registration::EmptyAdditionalClientMetadata;
use openidconnect::{AccessToken, RedirectUrl, RegistrationUrl, ResponseTypes};
use oxid::config::RegistrationPolicy;
use oxid::model::InitialAccessToken;
use serde_json::{Value, json};

/// Makes an initial access token (as `oxid registration token create` does) and returns it.
async fn initial_access_token(op: &TestOp, uses: Option<u32>, expires_at: Option<i64>) -> String {
    let token = oxid::crypto::random_token();
    let made = InitialAccessToken {
        id: token[..8].to_owned(),
        token_hash: oxid::crypto::token_hash(&token),
        created_at: oxid::model::now(),
        expires_at,
        uses_left: uses,
    };
    op.store.insert_initial_access_token(&made).await.unwrap();
    token
}

/// POSTs `doc` to the registration endpoint, with `token` as the bearer when given.
async fn register(op: &TestOp, token: Option<&str>, doc: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(op.url("/register")).json(doc);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_refused(answer: &(u16, Value), error: &str, field: &str) {
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert_eq!(answer.1["error"], error, "{}", answer.1);
    assert!(answer.1["error_description"].as_str().unwrap().contains(field), "{}", answer.1);
}

async fn op_with_alice() -> TestOp {
    let op = TestOp::start().await;
    op.add_user("alice").await;
    op
}

#[tokio::test]
async fn the_openidconnect_crate_registers_a_client_that_then_signs_in() {
    let op = op_with_alice().await;
    let token = initial_access_token(&op, Some(1), None).await;
    let discovery: Value =
        reqwest::get(op.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["registration_endpoint"], op.url("/register"));

    let http = reqwest::ClientBuilder::new().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let registered = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(REDIRECT_URI.to_owned()).unwrap()],
        EmptyAdditionalClientMetadata {},
    )
    .set_initial_access_token(Some(AccessToken::new(token.clone())))
    .set_response_types(Some(vec![ResponseTypes::new(vec![CoreResponseType::Code])]))
    .set_grant_types(Some(vec![CoreGrantType::AuthorizationCode, CoreGrantType::RefreshToken]))
    .set_token_endpoint_auth_method(Some(CoreClientAuthMethod::ClientSecretBasic))
    .register_async(&RegistrationUrl::new(op.url("/register")).unwrap(), &http)
    .await
    .expect("registered");
    let client_id = registered.client_id().as_str().to_owned();
    let secret = registered.client_secret().expect("a secret for client_secret_basic").secret().to_owned();
    assert!(registered.registration_access_token().is_some());
    assert_eq!(registered.registration_client_uri().unwrap().as_str(), op.url(&format!("/register/{client_id}")));

    // The new client signs alice in (consent asked: the operator did not vouch for it).
    let b = Browser::new(&op);
    let callback = query(&b.sign_in(&op.authorize_url(&client_id, ""), "alice").await);
    let (status, tokens) = json(exchange_code(&op, &client_id, &secret, &callback["code"], Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(jwt_payload(tokens["id_token"].as_str().unwrap())["aud"], client_id.as_str());

    // The token had one use.
    let again = register(&op, Some(&token), &json!({"redirect_uris": [REDIRECT_URI]})).await;
    assert_eq!(again.0, 401);
}

/// Registers `doc` with a fresh token; returns the answer's JSON.
async fn registered(op: &TestOp, doc: Value) -> Value {
    let token = initial_access_token(op, None, None).await;
    let (status, answer) = register(op, Some(&token), &doc).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

#[tokio::test]
async fn registered_clients_use_every_response_type_and_auth_method() {
    let op = op_with_alice().await;
    let https_cb = "https://rp.example/cb";
    // Every response type (Multiple Response Types), with the grants they need.
    let every = registered(
        &op,
        json!({
            "redirect_uris": [https_cb],
            "response_types": ["code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"],
            "grant_types": ["authorization_code", "implicit"],
            "client_name": "Every Flow",
        }),
    )
    .await;
    assert_eq!(every["grant_types"], json!(["authorization_code", "implicit"]));
    let id = every["client_id"].as_str().unwrap();
    let b = Browser::new(&op);
    for response_type in ["code id_token", "id_token token", "id_token"] {
        let url = op
            .authorize_url(id, "")
            .replace("response_type=code", &format!("response_type={}", common::urlencode(response_type)))
            .replace(&common::urlencode(REDIRECT_URI), &common::urlencode(https_cb));
        let location = b.sign_in(&url, "alice").await;
        assert!(fragment(&location).contains_key("id_token"), "{response_type}: {location}");
    }

    // client_secret_post, a public client with PKCE, client_secret_jwt, private_key_jwt.
    let post =
        registered(&op, json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "client_secret_post"}))
            .await;
    let (id, secret) = (post["client_id"].as_str().unwrap(), post["client_secret"].as_str().unwrap());
    let code = query(&b.sign_in(&op.authorize_url(id, ""), "alice").await)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", id),
        ("client_secret", secret),
    ];
    let (status, tokens) = json(reqwest::Client::new().post(op.url("/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{tokens}");

    let public = registered(&op, json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"})).await;
    assert!(public.get("client_secret").is_none(), "a public client gets no secret");
    let id = public["client_id"].as_str().unwrap();
    let code = query(&b.sign_in(&op.authorize_url(id, ""), "alice").await)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", id),
    ];
    assert_eq!(reqwest::Client::new().post(op.url("/token")).form(&form).send().await.unwrap().status(), 200);

    // private_key_jwt with its keys inline and a registered signing algorithm, which is enforced.
    let pair = jws::ES256.generate_key_pair().unwrap();
    let mut public_key = pair.to_jwk_public_key();
    public_key.set_key_id("k1");
    let keyed = registered(
        &op,
        json!({
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [Value::Object(public_key.as_ref().clone())]},
        }),
    )
    .await;
    let id = keyed["client_id"].as_str().unwrap();
    let mut signer = jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap();
    signer.set_key_id("k1");
    let now = oxid::model::now();
    let claims = json!({"iss": id, "sub": id, "aud": op.url("/token"), "jti": "j1", "exp": now + 60});
    let assertion = jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), &signer).unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, body) = json(reqwest::Client::new().post(op.url("/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");

    // client_secret_jwt registered for HS256: an HS512 assertion is refused.
    let hmac = registered(
        &op,
        json!({
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_jwt",
            "token_endpoint_auth_signing_alg": "HS256",
        }),
    )
    .await;
    let (id, secret) = (hmac["client_id"].as_str().unwrap(), hmac["client_secret"].as_str().unwrap());
    let mac = |alg: &str| {
        let claims = json!({"iss": id, "sub": id, "aud": op.url("/token"), "jti": alg, "exp": now + 60});
        let signer: Box<dyn jws::JwsSigner> = match alg {
            "HS256" => Box::new(jws::HS256.signer_from_bytes(secret.as_bytes()).unwrap()),
            _ => Box::new(jws::HS512.signer_from_bytes(secret.as_bytes()).unwrap()),
        };
        jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), signer.as_ref()).unwrap()
    };
    for (alg, expected) in [("HS512", 401), ("HS256", 200)] {
        let assertion = mac(alg);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ];
        let status = reqwest::Client::new().post(op.url("/token")).form(&form).send().await.unwrap().status();
        assert_eq!(status, expected, "{alg}");
    }
}

#[tokio::test]
async fn registered_encryption_pairwise_subjects_and_request_objects() {
    let op = op_with_alice().await;
    let b = Browser::new(&op);
    // A JWE-encrypted ID Token to the client's RSA key.
    let rsa = josekit::jwk::Jwk::generate_rsa_key(2048).unwrap();
    let mut public = rsa.to_public_key().unwrap();
    public.set_key_id("enc");
    public.set_key_use("enc");
    let encrypted = registered(
        &op,
        json!({
            "redirect_uris": [REDIRECT_URI],
            "jwks": {"keys": [Value::Object(public.as_ref().clone())]},
            "id_token_encrypted_response_alg": "RSA-OAEP",
        }),
    )
    .await;
    assert_eq!(encrypted["id_token_encrypted_response_enc"], "A128CBC-HS256", "the default enc (Registration 2)");
    let (id, secret) = (encrypted["client_id"].as_str().unwrap(), encrypted["client_secret"].as_str().unwrap());
    let code = query(&b.sign_in(&op.authorize_url(id, ""), "alice").await)["code"].clone();
    let (status, tokens) = json(exchange_code(&op, id, secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let jwe_token = tokens["id_token"].as_str().unwrap();
    let decrypter = josekit::jwe::RSA_OAEP.decrypter_from_jwk(&rsa).unwrap();
    let (signed, _) = josekit::jwe::deserialize_compact(jwe_token, &decrypter).expect("encrypted to the client");
    let signed = String::from_utf8(signed).unwrap();
    assert_eq!(jwt_payload(&signed)["aud"], id);

    // Pairwise: the client sees its own subject for alice.
    let pairwise = registered(&op, json!({"redirect_uris": [REDIRECT_URI], "subject_type": "pairwise"})).await;
    assert_eq!(pairwise["subject_type"], "pairwise");
    let (id, secret) = (pairwise["client_id"].as_str().unwrap(), pairwise["client_secret"].as_str().unwrap());
    let code = query(&b.sign_in(&op.authorize_url(id, ""), "alice").await)["code"].clone();
    let (_, tokens) = json(exchange_code(&op, id, secret, &code, Some(VERIFIER)).await).await;
    let alice = op.store.user_by_username("alice").await.unwrap().unwrap();
    assert_ne!(jwt_payload(tokens["id_token"].as_str().unwrap())["sub"], alice.id.as_str());

    // An unsigned request object, allowed by registering request_object_signing_alg=none.
    let objects = registered(&op, json!({"redirect_uris": [REDIRECT_URI], "request_object_signing_alg": "none"})).await;
    let id = objects["client_id"].as_str().unwrap();
    let claims = json!({"client_id": id, "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid", "nonce": "n-obj"});
    let unsigned =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let url = format!("{}&request={unsigned}", op.authorize_url(id, ""));
    let callback = query(&b.sign_in(&url, "alice").await);
    assert!(callback.contains_key("code"), "{callback:?}");
}

#[tokio::test]
async fn a_registration_is_read_replaced_and_deleted_with_its_access_token() {
    let op = op_with_alice().await;
    let answer = registered(
        &op,
        json!({"redirect_uris": [REDIRECT_URI], "client_name": "First", "client_name#de": "Erster", "contacts": ["ops@rp.example"]}),
    )
    .await;
    let (id, secret) = (answer["client_id"].as_str().unwrap(), answer["client_secret"].as_str().unwrap());
    let uri = answer["registration_client_uri"].as_str().unwrap();
    let token = answer["registration_access_token"].as_str().unwrap();
    let http = reqwest::Client::new();

    // RFC 7592 2.1: read.
    let read = http.get(uri).bearer_auth(token).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["cache-control"], "no-store");
    let read: Value = read.json().await.unwrap();
    assert_eq!((&read["client_name"], &read["client_name#de"]), (&json!("First"), &json!("Erster")));
    // Without the token, with another client's, or with a made-up one: 401 alike.
    assert_eq!(http.get(uri).send().await.unwrap().status(), 401);
    let other = registered(&op, json!({"redirect_uris": [REDIRECT_URI]})).await;
    let foreign = http.get(uri).bearer_auth(other["registration_access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(foreign.status(), 401);
    assert!(foreign.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));

    // RFC 7592 2.2: replace (the whole document); the access token is rotated, the secret kept.
    let replaced = http
        .put(uri)
        .bearer_auth(token)
        .json(&json!({"client_id": id, "redirect_uris": [REDIRECT_URI, "https://rp.example/cb2"], "client_name": "Second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["client_name"], "Second");
    assert!(replaced.get("client_name#de").is_none(), "a replacement, not a merge");
    let new_token = replaced["registration_access_token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(http.get(uri).bearer_auth(token).send().await.unwrap().status(), 401, "the old token is spent");
    // The client still authenticates with its secret.
    let b = Browser::new(&op);
    let code = query(&b.sign_in(&op.authorize_url(id, ""), "alice").await)["code"].clone();
    let (status, tokens) = json(exchange_code(&op, id, secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    // A replacement must name the client, and pass the same rules.
    let unnamed =
        http.put(uri).bearer_auth(new_token).json(&json!({"redirect_uris": [REDIRECT_URI]})).send().await.unwrap();
    assert_eq!(unnamed.status(), 400);
    let invalid = http
        .put(uri)
        .bearer_auth(new_token)
        .json(&json!({"client_id": id, "redirect_uris": ["http://rp.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.json::<Value>().await.unwrap()["error"], "invalid_redirect_uri");

    // RFC 7592 2.3: delete; the client and its tokens are gone.
    let deleted = http.delete(uri).bearer_auth(new_token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(common::userinfo(&op, tokens["access_token"].as_str().unwrap()).await.status(), 401);
    let refused = reqwest::Client::new()
        .post(op.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(http.get(uri).bearer_auth(new_token).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_field_named() {
    let op = op_with_alice().await;
    let token = initial_access_token(&op, None, None).await;
    let cases = [
        (json!({"redirect_uris": ["http://rp.example/cb"]}), "invalid_redirect_uri", "redirect_uris"),
        (json!({"redirect_uris": ["https://rp.example/cb#x"]}), "invalid_redirect_uri", "redirect_uris"),
        (json!({}), "invalid_redirect_uri", "redirect_uris"),
        (
            json!({"redirect_uris": [REDIRECT_URI], "response_types": ["id_token"]}),
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "jwks_uri": "https://rp.example/j", "jwks": {"keys": [{"kty": "EC"}]}}),
            "invalid_client_metadata",
            "jwks",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "id_token_signed_response_alg": "HS256"}),
            "invalid_client_metadata",
            "id_token_signed_response_alg",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "logo_uri": "http://rp.example/logo.png"}),
            "invalid_client_metadata",
            "logo_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "sector_identifier_uri": "https://127.0.0.1:9/s", "subject_type": "pairwise"}),
            "invalid_client_metadata",
            "sector_identifier_uri",
        ),
        (json!({"redirect_uris": REDIRECT_URI}), "invalid_client_metadata", "redirect_uris"),
        (json!(["not", "an", "object"]), "invalid_client_metadata", "JSON object"),
    ];
    for (doc, error, field) in cases {
        assert_refused(&register(&op, Some(&token), &doc).await, error, field);
    }
    // Not JSON, and too large: 400 as well, never 500.
    let http = reqwest::Client::new();
    let not_json = http.post(op.url("/register")).bearer_auth(&token).body("redirect_uris=x").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let huge = json!({"redirect_uris": [REDIRECT_URI], "client_name": "x".repeat(100_000)});
    let too_large = http.post(op.url("/register")).bearer_auth(&token).json(&huge).send().await.unwrap();
    assert_eq!(too_large.status(), 400);

    // The initial access token (RFC 7591 3): missing, unknown, expired, used up or revoked.
    let ok = json!({"redirect_uris": [REDIRECT_URI]});
    let missing = http.post(op.url("/register")).json(&ok).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(register(&op, Some("made-up"), &ok).await.0, 401);
    let expired = initial_access_token(&op, None, Some(oxid::model::now() - 1)).await;
    assert_eq!(register(&op, Some(&expired), &ok).await.0, 401);
    let once = initial_access_token(&op, Some(1), None).await;
    assert_eq!(register(&op, Some(&once), &ok).await.0, 201);
    assert_eq!(register(&op, Some(&once), &ok).await.0, 401);
    let revoked = initial_access_token(&op, None, None).await;
    assert!(op.store.revoke_initial_access_token(&revoked[..8]).await.unwrap());
    assert_eq!(register(&op, Some(&revoked), &ok).await.0, 401);
}

#[tokio::test]
async fn the_policies_off_and_open() {
    let off = TestOp::start_with(|c| c.registration = RegistrationPolicy::Off).await;
    let discovery: Value =
        reqwest::get(off.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(discovery.get("registration_endpoint").is_none());
    assert_eq!(register(&off, None, &json!({"redirect_uris": [REDIRECT_URI]})).await.0, 404);

    // Open: no token needed; bounded per address.
    let open = TestOp::start_with(|c| {
        c.registration = RegistrationPolicy::Open;
        c.registration_max_per_ip = 2;
    })
    .await;
    let doc = json!({"redirect_uris": [REDIRECT_URI]});
    assert_eq!(register(&open, None, &doc).await.0, 201);
    assert_eq!(register(&open, None, &doc).await.0, 201);
    let third = register(&open, None, &doc).await;
    assert_eq!(third.0, 429, "{}", third.1);
}

/// A software statement issuer: its key signs statements; its JWK Set is served on loopback.
async fn statement_issuer() -> (jws::alg::ecdsa::EcdsaJwsSigner, String) {
    let pair = jws::ES256.generate_key_pair().unwrap();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("ss");
    let jwks = json!({"keys": [Value::Object(public.as_ref().clone())]}).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/jwks.json", listener.local_addr().unwrap().port());
    let app = axum::Router::new().route("/jwks.json", axum::routing::get(move || async move { jwks }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut signer = jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap();
    signer.set_key_id("ss");
    (signer, url)
}

#[tokio::test]
async fn software_statements_from_trusted_issuers_only() {
    let (signer, jwks_url) = statement_issuer().await;
    let (stranger, _) = statement_issuer().await;
    let url = jwks_url.clone();
    let op = TestOp::start_with(move |c| {
        c.fetch_allow_loopback = true;
        c.registration_trusted_software_issuers.insert("https://software.example".into(), url);
    })
    .await;
    let token = initial_access_token(&op, None, None).await;
    let statement = |signer: &dyn jws::JwsSigner, claims: Value| {
        jws::serialize_compact(claims.to_string().as_bytes(), &JwsHeader::new(), signer).unwrap()
    };
    let claims = json!({"iss": "https://software.example", "software_id": "shop-1", "client_name": "Shop (vetted)"});
    // Its claims win over the request's.
    let doc = json!({"redirect_uris": [REDIRECT_URI], "client_name": "Shop", "software_statement": statement(&signer, claims.clone())});
    let (status, answer) = register(&op, Some(&token), &doc).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!((&answer["client_name"], &answer["software_id"]), (&json!("Shop (vetted)"), &json!("shop-1")));

    // Signed by someone else: invalid. From an issuer not trusted: unapproved. Expired: invalid.
    let forged = json!({"redirect_uris": [REDIRECT_URI], "software_statement": statement(&stranger, claims)});
    assert_refused(&register(&op, Some(&token), &forged).await, "invalid_software_statement", "signature");
    let unknown = json!({"iss": "https://elsewhere.example", "software_id": "x"});
    let doc = json!({"redirect_uris": [REDIRECT_URI], "software_statement": statement(&signer, unknown)});
    assert_refused(&register(&op, Some(&token), &doc).await, "unapproved_software_statement", "elsewhere");
    let old = json!({"iss": "https://software.example", "exp": oxid::model::now() - 10});
    let doc = json!({"redirect_uris": [REDIRECT_URI], "software_statement": statement(&signer, old)});
    assert_refused(&register(&op, Some(&token), &doc).await, "invalid_software_statement", "expired");
    let doc = json!({"redirect_uris": [REDIRECT_URI], "software_statement": "not.a.jwt"});
    assert_refused(&register(&op, Some(&token), &doc).await, "invalid_software_statement", "software_statement");
}

#[tokio::test]
async fn native_apps_register_loopback_redirects_on_any_port() {
    let op = op_with_alice().await;
    let native = registered(
        &op,
        json!({"application_type": "native", "redirect_uris": ["http://127.0.0.1/callback", "com.example.app:/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let id = native["client_id"].as_str().unwrap();
    // RFC 8252 7.3: the app's port of the moment (REDIRECT_URI's 9) is accepted, and the code goes there.
    assert_eq!(REDIRECT_URI, "http://127.0.0.1:9/callback");
    let b = Browser::new(&op);
    let location = b.sign_in(&op.authorize_url(id, ""), "alice").await;
    assert!(location.starts_with("http://127.0.0.1:9/callback?code="), "{location}");
}
