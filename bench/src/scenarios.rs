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

use crate::conn::{Conn, Reply};
use crate::form;
use crate::server::{JWT_RESOURCE, REDIRECT_URI};

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

/// The client and user the scenarios act as.
pub struct Client {
    pub id: String,
    pub secret: String,
    pub username: String,
    pub password: String,
    pub client_credentials_scope: String,
}

/// What every worker shares: where the OP is (its endpoints, from discovery), how to authenticate,
/// and its keys.
pub struct Target {
    addr: SocketAddr,
    issuer: String,
    /// `"issuer":"…"` as the discovery document has it.
    issuer_member: String,
    client: Client,
    basic: String,
    /// Paths (with any query) of the OP's endpoints on `addr`.
    discovery_path: String,
    authorization_path: String,
    token_path: String,
    userinfo_path: String,
    jwks_path: String,
    introspection_path: Option<String>,
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

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
}

/// The path and query of `url`, which must be on `issuer`'s host: the load goes to one address.
fn path_on(issuer: &url::Url, url: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(url)?;
    ensure!(url.origin() == issuer.origin(), "{url} is not on the issuer's host");
    Ok(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    })
}

impl Target {
    pub async fn discover(issuer: &str, client: Client) -> anyhow::Result<Self> {
        let base = url::Url::parse(issuer)?;
        ensure!(base.scheme() == "http", "the load generator speaks plain HTTP (loopback)");
        let addr = *base.socket_addrs(|| Some(80))?.first().context("the issuer's host does not resolve")?;
        let discovery_path = format!("{}/.well-known/openid-configuration", base.path().trim_end_matches('/'));
        let mut conn = Conn::new(addr);
        let reply = conn.get(&discovery_path, &[]).await?.expect(StatusCode::OK)?;
        let meta: Discovery = serde_json::from_slice(&reply.body).context("discovery document")?;
        ensure!(meta.issuer == issuer, "discovery names issuer {}, not {issuer}", meta.issuer);
        let jwks_path = path_on(&base, &meta.jwks_uri)?;
        let jwks = conn.get(&jwks_path, &[]).await?.expect(StatusCode::OK)?;
        let set = JwkSet::from_bytes(&jwks.body)?;
        let mut verifiers: HashMap<String, Box<dyn JwsVerifier>> = HashMap::new();
        for jwk in set.keys() {
            let rs256 = jwk.algorithm().map_or(jwk.key_type() == "RSA", |alg| alg == "RS256");
            if rs256 && jwk.key_use().is_none_or(|u| u == "sig") {
                let kid = jwk.key_id().context("JWKS key without kid")?.to_owned();
                verifiers.insert(kid, Box::new(jws::RS256.verifier_from_jwk(jwk)?));
            }
        }
        ensure!(!verifiers.is_empty(), "no RSA signing key in the JWKS");
        let basic = format!("Basic {}", STANDARD.encode(format!("{}:{}", client.id, client.secret)));
        Ok(Self {
            addr,
            issuer_member: format!("\"issuer\":{}", serde_json::Value::from(meta.issuer.as_str())),
            issuer: meta.issuer,
            basic,
            discovery_path,
            authorization_path: path_on(&base, &meta.authorization_endpoint)?,
            token_path: path_on(&base, &meta.token_endpoint)?,
            userinfo_path: path_on(&base, &meta.userinfo_endpoint)?,
            jwks_path,
            introspection_path: meta.introspection_endpoint.map(|e| path_on(&base, &e)).transpose()?,
            client,
            verifiers,
        })
    }

    pub fn connection(&self) -> Conn {
        Conn::new(self.addr)
    }

    /// Checks an ID Token as an RP must (Core 3.1.3.7): signature, iss, aud, exp, the nonce sent (none
    /// on a refresh, Core 12.2, where it is not checked), at_hash when present (optional in the code flow).
    fn verify_id_token(&self, token: &str, nonce: Option<&str>, access_token: &str) -> anyhow::Result<String> {
        let (payload, _) = jws::deserialize_compact_with_selector(token, |header| {
            Ok(header.key_id().and_then(|kid| self.verifiers.get(kid)).map(|v| v.as_ref()))
        })?;
        let claims: IdClaims = serde_json::from_slice(&payload)?;
        ensure!(claims.iss == self.issuer, "wrong iss");
        ensure!(claims.aud == self.client.id, "wrong aud");
        ensure!(claims.exp > oxid::model::now(), "expired ID Token");
        if nonce.is_some() {
            ensure!(claims.nonce.as_deref() == nonce, "wrong nonce");
        }
        if let Some(at_hash) = &claims.at_hash {
            ensure!(*at_hash == half_hash(SigningAlg::RS256, access_token), "wrong at_hash");
        }
        Ok(claims.sub)
    }

    fn authorize_path(&self, scope: &str, state: &str, nonce: &str, verifier: &str, prompt: Option<&str>) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(crypto::sha256(verifier.as_bytes()));
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs([
            ("response_type", "code"),
            ("client_id", &self.client.id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        if let Some(prompt) = prompt {
            query.append_pair("prompt", prompt);
        }
        let separator = if self.authorization_path.contains('?') { '&' } else { '?' };
        format!("{}{separator}{}", self.authorization_path, query.finish())
    }

    /// A relative or absolute URL the OP sent the browser to, as a path on its address.
    fn own_path(&self, location: &str) -> anyhow::Result<String> {
        if location.starts_with('/') {
            return Ok(location.to_owned());
        }
        path_on(&url::Url::parse(&self.issuer)?, location)
    }

    async fn token(&self, conn: &mut Conn, form: &[(&str, &str)]) -> anyhow::Result<Tokens> {
        let r =
            conn.post_form(&self.token_path, &[("authorization", &self.basic)], form).await?.expect(StatusCode::OK)?;
        let tokens: Tokens = serde_json::from_slice(&r.body)?;
        ensure!(!tokens.access_token.is_empty(), "empty access token");
        Ok(tokens)
    }
}

fn query_param(location: &str, name: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(location)?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no {name} in {location}"))
}

/// What the code_flow scenario asks for (and its sign-in consents to).
const CODE_FLOW_SCOPE: &str = "openid email";

/// A browser's cookies for the OP (one host; paths and expiry are not needed for these flows).
#[derive(Default)]
struct CookieJar(Vec<(String, String)>);

impl CookieJar {
    fn take_from(&mut self, reply: &Reply) {
        for value in reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let Some((name, value)) = value.split(';').next().and_then(|pair| pair.split_once('=')) else { continue };
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }
}

/// Signs a fresh browser in from the authorization request `path` through whatever forms the OP shows
/// (see `form::fill`), until it is sent back to the client; returns its cookies and that redirect.
async fn browser_sign_in(target: &Target, conn: &mut Conn, path: &str) -> anyhow::Result<(String, String)> {
    let mut jar = CookieJar::default();
    let mut reply = conn.get(path, &[]).await?;
    for _ in 0..12 {
        jar.take_from(&reply);
        if reply.status.is_redirection() {
            let location = reply.location()?.to_owned();
            if location.starts_with(REDIRECT_URI) {
                return Ok((jar.header(), location));
            }
            reply = conn.get(&target.own_path(&location)?, &[("cookie", &jar.header())]).await?;
            continue;
        }
        let page = reply.expect(StatusCode::OK)?;
        let html = std::str::from_utf8(&page.body)?;
        let (action, fields) = form::fill(html, &target.client.username, &target.client.password)?;
        let action = target.own_path(&action)?;
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        reply = conn.post_form(&action, &[("cookie", &jar.header())], &fields).await?;
    }
    bail!("the sign-in did not come back to the client")
}

/// A password login from a fresh browser for `scope` (consented to when asked), ending in a code;
/// returns the browser's cookies.
async fn password_login(target: &Target, conn: &mut Conn, scope: &str) -> anyhow::Result<String> {
    let verifier = crypto::random_token();
    let path = target.authorize_path(scope, "s", "n", &verifier, None);
    let (cookies, location) = browser_sign_in(target, conn, &path).await?;
    ensure!(query_param(&location, "code").is_ok(), "the sign-in ended without a code: {location}");
    Ok(cookies)
}

/// authorize (with a session) -> code -> token -> ID Token verified; returns the tokens.
async fn code_flow(target: &Target, conn: &mut Conn, session: &str, scope: &str) -> anyhow::Result<Tokens> {
    let verifier = crypto::random_token();
    let nonce = crypto::random_token();
    let path = target.authorize_path(scope, "st", &nonce, &verifier, None);
    let redirect = conn.get(&path, &[("cookie", session)]).await?;
    ensure!(redirect.status.is_redirection(), "expected a redirect, got {}", redirect.status);
    let location = redirect.location()?.to_owned();
    ensure!(query_param(&location, "state")? == "st", "state mismatch");
    let code = query_param(&location, "code")?;
    code_exchange(target, conn, &code, &verifier, &nonce).await
}

async fn code_exchange(
    target: &Target,
    conn: &mut Conn,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> anyhow::Result<Tokens> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    let tokens = target.token(conn, &form).await?;
    let id_token = tokens.id_token.as_deref().context("no ID Token")?;
    target.verify_id_token(id_token, Some(nonce), &tokens.access_token)?;
    Ok(tokens)
}

fn client_credentials_form(target: &Target) -> Vec<(&str, &str)> {
    let mut form = vec![("grant_type", "client_credentials")];
    if !target.client.client_credentials_scope.is_empty() {
        form.push(("scope", &target.client.client_credentials_scope));
    }
    form
}

pub async fn prepare(scenario: Scenario, target: &Target, conn: &mut Conn) -> anyhow::Result<WorkerState> {
    Ok(match scenario {
        Scenario::CodeFlow => WorkerState::Session(password_login(target, conn, CODE_FLOW_SCOPE).await?),
        Scenario::Refresh => {
            // offline_access is granted only with prompt=consent (Core 11), whatever the OP remembers.
            let (verifier, nonce) = (crypto::random_token(), crypto::random_token());
            let path = target.authorize_path("openid offline_access", "s", &nonce, &verifier, Some("consent"));
            let (_, location) = browser_sign_in(target, conn, &path).await?;
            let tokens = code_exchange(target, conn, &query_param(&location, "code")?, &verifier, &nonce).await?;
            WorkerState::RefreshToken(tokens.refresh_token.context("no refresh token")?)
        }
        Scenario::Introspection => {
            WorkerState::AccessToken(target.token(conn, &client_credentials_form(target)).await?.access_token)
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
            // Cheap checks: the load generator must cost far less than the server for these.
            let r = conn.get(&target.discovery_path, &[]).await?.expect(StatusCode::OK)?;
            let body = std::str::from_utf8(&r.body)?;
            ensure!(body.starts_with('{') && body.contains(&target.issuer_member), "not this OP's discovery document");
        }
        (Scenario::Jwks, _) => {
            let r = conn.get(&target.jwks_path, &[]).await?.expect(StatusCode::OK)?;
            ensure!(r.body.starts_with(b"{\"keys\":[{"), "not a JWKS");
        }
        (Scenario::ClientCredentials, _) => {
            target.token(conn, &client_credentials_form(target)).await?;
        }
        (Scenario::JwtAccessToken, _) => {
            let mut form = client_credentials_form(target);
            form.push(("resource", JWT_RESOURCE));
            let tokens = target.token(conn, &form).await?;
            ensure!(tokens.access_token.split('.').count() == 3, "not a JWT access token");
        }
        (Scenario::Introspection, WorkerState::AccessToken(token)) => {
            let path = target.introspection_path.as_deref().context("the OP has no introspection endpoint")?;
            let form = [("token", token.as_str())];
            let r = conn.post_form(path, &[("authorization", &target.basic)], &form).await?.expect(StatusCode::OK)?;
            let answer: serde_json::Value = serde_json::from_slice(&r.body)?;
            ensure!(answer["active"] == true, "token not active: {answer}");
        }
        (Scenario::Refresh, WorkerState::RefreshToken(refresh)) => {
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
            let tokens = target.token(conn, &form).await?;
            target.verify_id_token(tokens.id_token.as_deref().context("no ID Token")?, None, &tokens.access_token)?;
            // oxid rotates every refresh token (RFC 9700 4.14.2); an OP that does not keeps the old one.
            if let Some(rotated) = tokens.refresh_token {
                *refresh = rotated;
            }
        }
        (Scenario::CodeFlow, WorkerState::Session(session)) => {
            let tokens = code_flow(target, conn, session, CODE_FLOW_SCOPE).await?;
            let bearer = format!("Bearer {}", tokens.access_token);
            let info = conn.get(&target.userinfo_path, &[("authorization", &bearer)]).await?.expect(StatusCode::OK)?;
            let claims: serde_json::Value = serde_json::from_slice(&info.body)?;
            let email = format!("{}@example.com", target.client.username);
            ensure!(claims["email"] == email.as_str(), "userinfo lacks the email claim");
        }
        (Scenario::Login, _) => {
            password_login(target, conn, "openid").await?;
        }
        _ => bail!("worker state does not fit the scenario"),
    }
    Ok(())
}
