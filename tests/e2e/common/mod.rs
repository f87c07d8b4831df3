//! Test support: a real oxid server on an ephemeral port with its own SQLite file, and a cookie-keeping
//! HTTP client that fills in the login and consent forms the way a browser would.
#![allow(dead_code)]

use std::sync::Arc;

use oxid::config::Config;
use oxid::model::{Client, ClientAuthMethod, Clock, GrantType, SigningAlg, SigningKey, User};
use oxid::store::Store;
use oxid::{crypto, password, server};
use reqwest::StatusCode;
use tokio::sync::oneshot;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
pub const PASSWORD: &str = "correct horse battery staple";
/// An S256 challenge and its verifier (RFC 7636 Appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub struct TestOp {
    /// The issuer: the first node's address, standing in for a load balancer's.
    pub issuer: String,
    /// Every node's base URL; all serve the same issuer from the same database.
    pub nodes: Vec<String>,
    pub store: Arc<dyn Store>,
    /// The database the nodes share, for the `oxid` command line.
    pub database_url: String,
    clock: Clock,
    config: Config,
    _dir: tempfile::TempDir,
    stops: Vec<oneshot::Sender<()>>,
}

impl TestOp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_cluster(1, adjust).await
    }

    /// Starts `nodes` servers sharing one database and one issuer. Their start-up (key generation
    /// included) runs concurrently, as when several nodes boot at once.
    pub async fn start_cluster(nodes: usize, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut listeners = Vec::new();
        for _ in 0..nodes {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let bases: Vec<String> =
            listeners.iter().map(|l| format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())).collect();
        // Client documents (JWK Sets, request objects, sector identifiers) are served on loopback here.
        let mut config = Config {
            issuer: bases[0].clone(),
            database_url: test_database_url(dir.path()).await,
            fetch_allow_loopback: true,
            ..Config::default()
        };
        adjust(&mut config);
        // Each node has its own connection pool, as separate processes would.
        let mut stores = Vec::new();
        for _ in 0..nodes {
            stores.push(server::open_store(&config).await.unwrap());
        }
        // One node: keys made once per test process. Several: each node makes its own at start, as
        // real nodes do, and they must settle on one set.
        if nodes == 1 {
            seed_keys(stores[0].as_ref()).await;
        }
        let clock = Clock::adjustable();
        let stops = launch(&config, &stores, listeners, &clock).await;
        Self {
            issuer: config.issuer.clone(),
            nodes: bases,
            store: stores.remove(0),
            database_url: config.database_url.clone(),
            clock,
            config,
            _dir: dir,
            stops,
        }
    }

    /// Stops every node (in-flight requests finish) and starts as many new ones on the same database,
    /// as after a restart; they serve on new ports under the same issuer.
    pub async fn restart(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        let mut listeners = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..self.nodes.len() {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
            stores.push(server::open_store(&self.config).await.unwrap());
        }
        self.nodes = listeners.iter().map(|l| format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())).collect();
        self.stops = launch(&self.config, &stores, listeners, &self.clock).await;
    }

    /// Moves every node's clock `seconds` forward (expiry without waiting).
    pub fn advance_clock(&self, seconds: i64) {
        self.clock.advance(seconds);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.nodes[0])
    }

    pub async fn add_user(&self, username: &str) -> User {
        let now = oxid::model::now();
        let user = User {
            id: format!("sub-{username}"),
            username: username.into(),
            password_hash: password::hash(PASSWORD.into()).await.unwrap(),
            email: Some(format!("{username}@example.com")),
            email_verified: true,
            name: Some(format!("{username} Example")),
            given_name: Some(username.into()),
            family_name: Some("Example".into()),
            created_at: now,
            updated_at: now,
            ..User::default()
        };
        self.store.insert_user(&user).await.unwrap();
        user
    }

    /// Registers a client; returns it and its secret (if its method uses one).
    pub async fn add_client(
        &self,
        id: &str,
        method: ClientAuthMethod,
        adjust: impl FnOnce(&mut Client),
    ) -> (Client, Option<String>) {
        let secret = matches!(
            method,
            ClientAuthMethod::ClientSecretBasic
                | ClientAuthMethod::ClientSecretPost
                | ClientAuthMethod::ClientSecretJwt
        )
        .then(crypto::random_token);
        let mut client = Client {
            id: id.parse().unwrap(),
            name: format!("{id} app"),
            secret_hash: secret.as_deref().map(crypto::token_hash),
            secret_for_jwt: secret.clone().filter(|_| method == ClientAuthMethod::ClientSecretJwt),
            redirect_uris: vec![REDIRECT_URI.parse().unwrap()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials],
            auth_method: method,
            id_token_signed_response_alg: SigningAlg::RS256,
            jwks: None,
            skip_consent: false,
            created_at: oxid::model::now(),
            metadata: Default::default(),
        };
        if method == ClientAuthMethod::None {
            client.grant_types.retain(|g| *g != GrantType::ClientCredentials);
        }
        adjust(&mut client);
        self.store.insert_client(&client).await.unwrap();
        (client, secret)
    }

    /// The standard authorization URL for `client_id` with PKCE, plus `extra` query parameters.
    pub fn authorize_url(&self, client_id: &str, extra: &str) -> String {
        format!(
            "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20email%20profile\
             &state=st4te&nonce=n0nce&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
            self.nodes[0],
            urlencode(REDIRECT_URI)
        )
    }
}

/// Prepares and serves one node per store and listener (concurrently, as nodes booting at once);
/// returns what stops each.
async fn launch(
    config: &Config,
    stores: &[Arc<dyn Store>],
    listeners: Vec<tokio::net::TcpListener>,
    clock: &Clock,
) -> Vec<oneshot::Sender<()>> {
    // The servers' warnings and errors, shown with a failing test's output (the test harness keeps a
    // passing test's output to itself).
    let only_oxid = tracing_subscriber::filter::Targets::new().with_target("oxid", tracing::Level::WARN);
    let output = tracing_subscriber::fmt::layer().with_test_writer();
    let _ = tracing_subscriber::registry().with(only_oxid).with(output).try_init();
    let mut starting = tokio::task::JoinSet::new();
    for store in stores {
        let (config, store, clock) = (config.clone(), store.clone(), clock.clone());
        starting.spawn(async move { server::prepare(config, store, clock).await.unwrap() });
    }
    let states = starting.join_all().await;
    let mut stops = Vec::new();
    for (state, listener) in states.into_iter().zip(listeners) {
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve(state, listener, async {
            let _ = stopped.await;
        }));
        stops.push(stop);
    }
    stops
}

/// The OP's keys, made once per test process (RSA key generation is the slowest part of a start).
struct TestKeys {
    signing: Vec<SigningKey>,
    decryption: Vec<(&'static str, String)>,
}

fn test_keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| TestKeys {
        signing: SigningAlg::ALL
            .iter()
            .map(|alg| oxid::jose::keys::generate(*alg, oxid::model::now()).unwrap())
            .collect(),
        decryption: oxid::key_management::DECRYPTION_KEY_NAMES
            .iter()
            .map(|(kind, name)| (*name, kind.generate().unwrap()))
            .collect(),
    })
}

/// Installs the test process's keys in a new store, so the server finds them instead of making its own.
async fn seed_keys(store: &dyn Store) {
    let keys = test_keys();
    for key in &keys.signing {
        store.install_signing_key(key, oxid::model::KeySuccession::First).await.unwrap();
    }
    for (name, jwk) in &keys.decryption {
        store.secret(name, jwk).await.unwrap();
    }
}

/// The database for one test: a new SQLite file in `dir` or, when `TEST_POSTGRES_URL` names a
/// PostgreSQL server (as `scripts/test` arranges), a new database on it.
pub async fn test_database_url(dir: &std::path::Path) -> String {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        return format!("sqlite://{}/oxid.db", dir.display());
    };
    use sqlx::{Connection, Executor};
    let name = format!("oxid_test_{}", hex(&crypto::sha256(crypto::random_token().as_bytes())[..8]));
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("the test PostgreSQL server is reachable");
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// `test_database_url` for tests that are not async.
pub fn test_database_url_blocking(dir: &std::path::Path) -> String {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test_database_url(dir))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A browser stand-in: keeps cookies, never follows redirects by itself.
pub struct Browser {
    pub http: reqwest::Client,
    issuer: String,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the hidden input `name` in the page's form.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start =
            self.body.find(&marker).unwrap_or_else(|| panic!("no {name} in page:\n{}", self.body)) + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        unescape(&self.body[start..end])
    }
}

/// Undoes the HTML escaping minijinja applies to attribute values.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Query parameters of a URL.
pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().into_owned().collect()
}

impl Browser {
    pub fn new(op: &TestOp) -> Self {
        Self::for_issuer(&op.nodes[0])
    }

    pub fn for_issuer(issuer: &str) -> Self {
        let http =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, issuer: issuer.to_owned() }
    }

    /// A path as the OP writes it in a Location or link (from the host's root, so including the
    /// issuer's own path), made absolute.
    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            url::Url::parse(&self.issuer).unwrap().join(url).unwrap().into()
        } else {
            url.to_owned()
        }
    }

    async fn page(response: reqwest::Response) -> reqwest::Result<Page> {
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers.get("location").map(|v| v.to_str().unwrap().to_owned());
        Ok(Page { status, location, body: response.text().await?, headers })
    }

    pub async fn get(&self, url: &str) -> Page {
        self.try_get(url).await.unwrap()
    }

    /// A GET that may fail to connect (a server being killed, for one).
    pub async fn try_get(&self, url: &str) -> reqwest::Result<Page> {
        Self::page(self.http.get(self.absolute(url)).send().await?).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        Self::page(self.http.post(self.absolute(url)).form(form).send().await.unwrap()).await.unwrap()
    }

    /// Follows redirects within the OP until one leaves it (to the client) or a page is shown.
    pub async fn follow(&self, mut page: Page) -> Page {
        while let Some(loc) = page.location.clone() {
            if !loc.starts_with('/') && !loc.starts_with(&self.issuer) {
                break;
            }
            page = self.get(&loc).await;
        }
        page
    }

    /// Submits the login form on `page` (which must be the login page).
    pub async fn submit_login(&self, page: &Page, username: &str, password: &str) -> Page {
        let request = page.hidden("request");
        let csrf = page.hidden("csrf_token");
        self.post(
            &format!("{}/login", self.issuer),
            &[("request", &request), ("csrf_token", &csrf), ("username", username), ("password", password)],
        )
        .await
    }

    pub async fn submit_consent(&self, page: &Page, decision: &str) -> Page {
        let request = page.hidden("request");
        let csrf = page.hidden("csrf_token");
        let form = [("request", request.as_str()), ("csrf_token", &csrf), ("decision", decision)];
        self.post(&format!("{}/consent", self.issuer), &form).await
    }

    /// Runs the whole interaction for `authorize_url`: login if asked, consent if asked; returns the
    /// redirect to the client (its Location).
    pub async fn sign_in(&self, authorize_url: &str, username: &str) -> String {
        let mut page = self.follow(self.get(authorize_url).await).await;
        if page.body.contains("name=\"password\"") {
            page = self.follow(self.submit_login(&page, username, PASSWORD).await).await;
        }
        if page.body.contains("name=\"decision\"") {
            page = self.follow(self.submit_consent(&page, "allow").await).await;
        }
        page.location.unwrap_or_else(|| panic!("no redirect to the client; page was {}:\n{}", page.status, page.body))
    }
}

/// Exchanges a code at the token endpoint with client_secret_basic.
pub async fn exchange_code(
    op: &TestOp,
    client_id: &str,
    secret: &str,
    code: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    exchange_code_at(&op.nodes[0], client_id, secret, code, verifier).await
}

/// Exchanges a code at the token endpoint of the server at `base`, with client_secret_basic.
pub async fn exchange_code_at(
    base: &str,
    client_id: &str,
    secret: &str,
    code: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT_URI)];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let url = format!("{base}/token");
    reqwest::Client::new().post(url).basic_auth(client_id, Some(secret)).form(&form).send().await.unwrap()
}

pub async fn json(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}")))
}

/// Fragment parameters of a URL (Multiple Response Type Encoding Practices 2.1).
pub fn fragment(url: &str) -> std::collections::HashMap<String, String> {
    let fragment = url.split_once('#').map(|(_, f)| f).unwrap_or_default();
    form_urlencoded::parse(fragment.as_bytes()).into_owned().collect()
}

/// GET /userinfo with a bearer token.
pub async fn userinfo(op: &TestOp, access_token: &str) -> reqwest::Response {
    reqwest::Client::new().get(op.url("/userinfo")).bearer_auth(access_token).send().await.unwrap()
}

/// The JSON payload of a compact JWS, unverified (for claims the test checks after a verification
/// elsewhere, or where the signature is not the point).
pub fn jwt_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a compact JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

impl TestOp {
    /// Runs SQL on the nodes' database from outside the server (the test's own connection).
    async fn execute_sql(&self, statements: &[String]) {
        use sqlx::{Connection, Executor};
        if self.database_url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&self.database_url).await.unwrap();
            for sql in statements {
                conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap();
            }
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.database_url).await.unwrap();
            for sql in statements {
                conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.unwrap();
            }
        }
    }

    /// Makes the database refuse every `operation` (INSERT, UPDATE or DELETE) on `table` until
    /// `allow_writes`: a real write failure in the middle of a request's transaction, as a full disk
    /// or a lost connection would cause.
    pub async fn refuse_writes(&self, table: &str, operation: &str) {
        let trigger = format!("oxid_test_refuse_{table}");
        let statements = if self.database_url.starts_with("postgres") {
            vec![
                "CREATE OR REPLACE FUNCTION oxid_test_refuse() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION 'write refused by the test'; END $$ LANGUAGE plpgsql"
                    .to_owned(),
                format!(
                    "CREATE TRIGGER {trigger} BEFORE {operation} ON {table} FOR EACH ROW EXECUTE FUNCTION oxid_test_refuse()"
                ),
            ]
        } else {
            vec![format!(
                "CREATE TRIGGER {trigger} BEFORE {operation} ON {table} BEGIN SELECT RAISE(ABORT, 'write refused by the test'); END"
            )]
        };
        self.execute_sql(&statements).await;
    }

    pub async fn allow_writes(&self, table: &str) {
        let on = if self.database_url.starts_with("postgres") { format!(" ON {table}") } else { String::new() };
        self.execute_sql(&[format!("DROP TRIGGER oxid_test_refuse_{table}{on}")]).await;
    }
}
