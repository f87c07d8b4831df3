//! What one iteration of each scenario does, as an RP and a browser would, with every response checked.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::StatusCode;
use josekit::jwk::JwkSet;
use josekit::jws::{self, JwsVerifier};
use oxid::crypto;
use oxid::model::SigningAlg;
use oxid::protocol::id_token::half_hash;
use serde::Deserialize;

use crate::conn::Conn;
use crate::server::{CLIENT_ID, CLIENT_SECRET, JWT_RESOURCE, PASSWORD, REDIRECT_URI, USERNAME};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Discovery,
    Jwks,
    ClientCredentials,
    /// `client_credentials` for a resource server that takes RFC 9068 JWT access tokens (one RS256
    /// signature more than the opaque token).
    JwtAccessToken,
    /// RFC 7662 introspection of an opaque access token by the client holding it.
    Introspection,
    Refresh,
    CodeFlow,
    Login,
}

/// What every worker shares: where the OP is, how to authenticate, and its keys.
pub struct Target {
    pub addr: SocketAddr,
    issuer: String,
    basic: String,
    verifiers: HashMap<String, Box<dyn JwsVerifier>>,
}

/// Per-worker state carried between iterations.
pub enum WorkerState {
    Nothing,
    /// `Cookie` header value holding a signed-in session.
    Session(String),
    RefreshToken(String),
    AccessToken(String),
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    id_token: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    nonce: Option<String>,
    at_hash: Option<String>,
}

impl Target {
    pub async fn discover(addr: SocketAddr, issuer: String) -> anyhow::Result<Self> {
        let mut conn = Conn::new(addr);
        let jwks = conn.get("/jwks.json", &[]).await?.expect(StatusCode::OK)?;
        let set = JwkSet::from_bytes(&jwks.body)?;
        let mut verifiers: HashMap<String, Box<dyn JwsVerifier>> = HashMap::new();
        for jwk in set.keys() {
            if jwk.algorithm() == Some("RS256") {
                let kid = jwk.key_id().context("JWKS key without kid")?.to_owned();
                verifiers.insert(kid, Box::new(jws::RS256.verifier_from_jwk(jwk)?));
            }
        }
        ensure!(!verifiers.is_empty(), "no RS256 key in the JWKS");
        let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
        Ok(Self { addr, issuer, basic, verifiers })
    }

    /// Checks an ID Token as an RP must (Core 3.1.3.7): signature, iss, aud, exp, nonce, at_hash.
    fn verify_id_token(&self, token: &str, nonce: Option<&str>, access_token: &str) -> anyhow::Result<String> {
        let (payload, _) = jws::deserialize_compact_with_selector(token, |header| {
            Ok(header.key_id().and_then(|kid| self.verifiers.get(kid)).map(|v| v.as_ref()))
        })?;
        let claims: IdClaims = serde_json::from_slice(&payload)?;
        ensure!(claims.iss == self.issuer, "wrong iss");
        ensure!(claims.aud == CLIENT_ID, "wrong aud");
        ensure!(claims.exp > oxid::model::now(), "expired ID Token");
        ensure!(claims.nonce.as_deref() == nonce, "wrong nonce");
        ensure!(claims.at_hash.as_deref() == Some(&*half_hash(SigningAlg::RS256, access_token)), "wrong at_hash");
        Ok(claims.sub)
    }
}

fn authorize_path(scope: &str, state: &str, nonce: &str, verifier: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(crypto::sha256(verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    format!("/authorize?{query}")
}

fn hidden(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).with_context(|| format!("no {name} in the page"))? + marker.len();
    let end = html[start..].find('"').context("unterminated value")? + start;
    Ok(html[start..end].to_owned())
}

fn query_param(location: &str, name: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(location)?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no {name} in {location}"))
}

/// A password login from a fresh browser, ending in a code; returns the session cookie.
async fn password_login(conn: &mut Conn) -> anyhow::Result<String> {
    let verifier = crypto::random_token();
    let to_login =
        conn.get(&authorize_path("openid", "s", "n", &verifier), &[]).await?.expect(StatusCode::SEE_OTHER)?;
    let page = conn.get(to_login.location()?, &[]).await?.expect(StatusCode::OK)?;
    let csrf_cookie = format!("oxid_csrf={}", page.cookie("oxid_csrf").context("no CSRF cookie")?);
    let html = std::str::from_utf8(&page.body)?;
    let (request, token) = (hidden(html, "request")?, hidden(html, "csrf_token")?);
    let form = [("request", request.as_str()), ("csrf_token", &token), ("username", USERNAME), ("password", PASSWORD)];
    let logged_in =
        conn.post_form("/login", &[("cookie", &csrf_cookie)], &form).await?.expect(StatusCode::SEE_OTHER)?;
    let session = format!("oxid_session={}", logged_in.cookie("oxid_session").context("no session cookie")?);
    let back = conn.get(logged_in.location()?, &[("cookie", &session)]).await?.expect(StatusCode::SEE_OTHER)?;
    ensure!(back.location()?.starts_with(REDIRECT_URI), "login did not end at the client");
    Ok(session)
}

/// authorize (with a session) -> code -> token -> ID Token verified; returns the tokens.
async fn code_flow(target: &Target, conn: &mut Conn, session: &str, scope: &str) -> anyhow::Result<Tokens> {
    let verifier = crypto::random_token();
    let nonce = crypto::random_token();
    let redirect = conn.get(&authorize_path(scope, "st", &nonce, &verifier), &[("cookie", session)]).await?;
    let location = redirect.expect(StatusCode::SEE_OTHER)?.location()?.to_owned();
    ensure!(query_param(&location, "state")? == "st", "state mismatch");
    let code = query_param(&location, "code")?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &verifier),
    ];
    let reply = conn.post_form("/token", &[("authorization", &target.basic)], &form).await?.expect(StatusCode::OK)?;
    let tokens: Tokens = serde_json::from_slice(&reply.body)?;
    let id_token = tokens.id_token.as_deref().context("no ID Token")?;
    target.verify_id_token(id_token, Some(&nonce), &tokens.access_token)?;
    Ok(tokens)
}

pub async fn prepare(scenario: Scenario, target: &Target, conn: &mut Conn) -> anyhow::Result<WorkerState> {
    Ok(match scenario {
        Scenario::CodeFlow => WorkerState::Session(password_login(conn).await?),
        Scenario::Refresh => {
            let session = password_login(conn).await?;
            let tokens = code_flow(target, conn, &session, "openid offline_access").await?;
            WorkerState::RefreshToken(tokens.refresh_token.context("no refresh token")?)
        }
        Scenario::Introspection => {
            let form = [("grant_type", "client_credentials"), ("scope", "api")];
            let r =
                conn.post_form("/token", &[("authorization", &target.basic)], &form).await?.expect(StatusCode::OK)?;
            let tokens: Tokens = serde_json::from_slice(&r.body)?;
            WorkerState::AccessToken(tokens.access_token)
        }
        _ => WorkerState::Nothing,
    })
}

/// One iteration. Any deviation from the expected protocol outcome is an error.
pub async fn run_once(
    scenario: Scenario,
    target: &Target,
    conn: &mut Conn,
    state: &mut WorkerState,
) -> anyhow::Result<()> {
    match (scenario, state) {
        (Scenario::Discovery, _) => {
            let r = conn.get("/.well-known/openid-configuration", &[]).await?.expect(StatusCode::OK)?;
            ensure!(r.body.starts_with(b"{\"issuer\""), "not a discovery document");
        }
        (Scenario::Jwks, _) => {
            let r = conn.get("/jwks.json", &[]).await?.expect(StatusCode::OK)?;
            ensure!(r.body.starts_with(b"{\"keys\""), "not a JWKS");
        }
        (Scenario::ClientCredentials, _) => {
            let form = [("grant_type", "client_credentials"), ("scope", "api")];
            let r =
                conn.post_form("/token", &[("authorization", &target.basic)], &form).await?.expect(StatusCode::OK)?;
            let tokens: Tokens = serde_json::from_slice(&r.body)?;
            ensure!(tokens.access_token.len() == 43, "odd access token");
        }
        (Scenario::JwtAccessToken, _) => {
            let form = [("grant_type", "client_credentials"), ("scope", "api"), ("resource", JWT_RESOURCE)];
            let r =
                conn.post_form("/token", &[("authorization", &target.basic)], &form).await?.expect(StatusCode::OK)?;
            let tokens: Tokens = serde_json::from_slice(&r.body)?;
            ensure!(tokens.access_token.split('.').count() == 3, "not a JWT access token");
        }
        (Scenario::Introspection, WorkerState::AccessToken(token)) => {
            let form = [("token", token.as_str())];
            let r = conn
                .post_form("/introspect", &[("authorization", &target.basic)], &form)
                .await?
                .expect(StatusCode::OK)?;
            let answer: serde_json::Value = serde_json::from_slice(&r.body)?;
            ensure!(answer["active"] == true && answer["scope"] == "api", "token not active: {answer}");
        }
        (Scenario::Refresh, WorkerState::RefreshToken(refresh)) => {
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
            let r =
                conn.post_form("/token", &[("authorization", &target.basic)], &form).await?.expect(StatusCode::OK)?;
            let tokens: Tokens = serde_json::from_slice(&r.body)?;
            target.verify_id_token(tokens.id_token.as_deref().context("no ID Token")?, None, &tokens.access_token)?;
            *refresh = tokens.refresh_token.context("refresh token not rotated")?;
        }
        (Scenario::CodeFlow, WorkerState::Session(session)) => {
            let tokens = code_flow(target, conn, session, "openid email").await?;
            let bearer = format!("Bearer {}", tokens.access_token);
            let info = conn.get("/userinfo", &[("authorization", &bearer)]).await?.expect(StatusCode::OK)?;
            let claims: serde_json::Value = serde_json::from_slice(&info.body)?;
            ensure!(claims["email"] == "bench@example.com", "userinfo lacks the email claim");
        }
        (Scenario::Login, _) => {
            password_login(conn).await?;
        }
        _ => bail!("worker state does not fit the scenario"),
    }
    Ok(())
}
