//! HTTP: the router, shared state, and the cross-cutting layers (limits, headers, request ids).

mod account;
mod accounts;
mod authorization_response;
mod authorize;
mod check_session;
mod ciba;
mod client_auth;
pub mod connections;
mod cookies;
mod device;
mod discovery;
mod dpop;
mod email_verification;
mod initiate_login;
mod interaction;
mod introspection;
pub mod issuance;
mod logout;
mod mailed_link;
mod mfa;
mod par;
mod params;
mod passkeys;
mod password_reset;
mod registration;
mod reply;
mod request_object;
mod revocation;
mod signup;
mod token;
mod userinfo;
mod webfinger;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::fetch::Fetcher;
use crate::jose::decryption::DecryptionKeys;
use crate::jose::{Shared, SharedKeyRing};
use crate::mail::Mailer;
use crate::model::{Client, ClientId, Clock, EndedSession, ResourceServer, Timestamp, User};
use crate::passkeys::Passkeys;
use crate::protocol::claims::ScopeClaims;
use crate::store::cache::TtlCache;
use crate::store::{Store, StoreResult};
use crate::ui::Pages;

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub keys: SharedKeyRing,
    pub pages: Pages,
    /// The discovery document, serialized once (it only changes with the configuration).
    pub discovery_json: Bytes,
    pub token_endpoint: String,
    /// The issuer's path (`/oxid` for `https://id.example.com/oxid`; empty at the root): every route and
    /// every link of the OP's own pages lives under it.
    pub base_path: String,
    /// What each scope releases (Core 5.4 plus configuration).
    pub scope_claims: ScopeClaims,
    /// The secret salt of pairwise subject identifiers (Core 8.1), shared by every node.
    pub pairwise_salt: String,
    /// The key CSRF tokens are MACs under, shared by every node.
    pub csrf_key: Vec<u8>,
    /// For documents clients point to: JWK Sets, request objects.
    pub fetcher: Fetcher,
    /// Decrypts request objects encrypted to the OP (Core 6.1); refreshed with the signing keys.
    pub decryption: Shared<DecryptionKeys>,
    /// What expiry is judged by.
    pub clock: Clock,
    /// Wakes this node's Back-Channel Logout delivery when a logout here queued notifications (other
    /// nodes' notifications are found by polling).
    pub logout_delivery: Arc<tokio::sync::Notify>,
    /// Sends password-reset and email-verification mail; none without `smtp_url` (those pages are off).
    pub mailer: Option<Arc<Mailer>>,
    /// The WebAuthn relying party; none when the issuer's host is an IP address and `webauthn_rp_id`
    /// is not set (passkeys are then off).
    pub passkeys: Option<Arc<Passkeys>>,
    /// Clients, resource servers and users read recently (see `store::cache` for how changes reach a
    /// node).
    clients: TtlCache<ClientId, Client>,
    resources: TtlCache<String, ResourceServer>,
    users: TtlCache<String, User>,
}

pub type SharedState = Arc<AppState>;

/// The OP's own keys: signing keys (rotated, refreshed from the store), request object decryption keys,
/// and the secrets every node shares.
pub struct OpKeys {
    pub signing: SharedKeyRing,
    pub decryption: Shared<DecryptionKeys>,
    /// The salt of pairwise subject identifiers (Core 8.1).
    pub pairwise_salt: String,
    /// The key of CSRF tokens.
    pub csrf_key: String,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>, keys: OpKeys, pages: Pages, clock: Clock) -> Self {
        let OpKeys { signing: keys, decryption, pairwise_salt, csrf_key } = keys;
        let scope_claims = ScopeClaims::new(&config.scope_claims);
        let discovery_json = discovery::document(&config, &scope_claims, &pages.tags());
        let token_endpoint = format!("{}/token", config.issuer);
        let base_path =
            url::Url::parse(&config.issuer).map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default();
        let fetcher = Fetcher::new(config.fetch_allow_loopback);
        let record_cache_ttl = config.record_cache_ttl as i64;
        // The configuration was validated when it was loaded: a mailer that cannot be made is none.
        let mailer = Mailer::from_config(&config).ok().flatten().map(Arc::new);
        let passkeys = Passkeys::from_config(&config).ok().flatten().map(Arc::new);
        Self {
            mailer,
            passkeys,
            clients: TtlCache::new(record_cache_ttl),
            resources: TtlCache::new(record_cache_ttl),
            users: TtlCache::new(record_cache_ttl),
            config,
            store,
            keys,
            decryption,
            pages,
            discovery_json,
            token_endpoint,
            base_path,
            scope_claims,
            pairwise_salt,
            csrf_key: csrf_key.into_bytes(),
            fetcher,
            clock,
            logout_delivery: Arc::default(),
        }
    }

    /// Has this node deliver the notifications that ending `ended` queued, now rather than at its
    /// next poll.
    pub fn logout_notifications_queued(&self, ended: &[EndedSession]) {
        if ended.iter().any(|e| !e.clients.is_empty()) {
            self.logout_delivery.notify_one();
        }
    }

    /// The OP browser state for the session `sid` (Session Management 1.0 3): a MAC of it, so the
    /// cookie's script-readable value reveals nothing and every node computes the same.
    pub fn browser_state(&self, sid: &str) -> String {
        let mac = crate::crypto::hmac(
            crate::crypto::HmacHash::Sha256,
            &self.csrf_key,
            format!("browser-state.{sid}").as_bytes(),
        );
        crate::crypto::b64url(&mac)
    }

    /// The client `id`, from this node's cache or the store.
    pub async fn client(&self, id: &ClientId) -> StoreResult<Option<Arc<Client>>> {
        self.clients.get_or_load(id, self.now(), self.store.client(id)).await
    }

    /// After a change to the client `id` made through this node: the next read sees it.
    pub fn forget_client(&self, id: &ClientId) {
        self.clients.forget(id);
    }

    /// The resource server `identifier`, from this node's cache or the store.
    pub async fn resource(&self, identifier: &str) -> StoreResult<Option<Arc<ResourceServer>>> {
        self.resources.get_or_load(identifier, self.now(), self.store.resource(identifier)).await
    }

    /// The user `id` for the token paths (ID Tokens, UserInfo, introspection), from this node's cache or
    /// the store. A change made elsewhere shows within `record_cache_ttl`; that is safe for whether the
    /// user is disabled because disabling deletes, in the same transaction, everything a token could be
    /// issued or answered from (sessions, codes, tokens, approved device and CIBA requests). Pages that
    /// show or change the account, and sign-ins, read the store.
    pub async fn user(&self, id: &str) -> StoreResult<Option<Arc<User>>> {
        self.users.get_or_load(id, self.now(), self.store.user(id)).await
    }

    /// After a change to the user `id` made through this node: the next read sees it.
    pub fn forget_user(&self, id: &str) {
        self.users.forget(id);
    }

    /// The client's address: the peer's, or behind a trusted proxy the one `X-Forwarded-For` names
    /// (see `Config::client_ip`).
    pub fn client_ip(&self, peer: std::net::IpAddr, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        self.config.client_ip(peer, forwarded)
    }

    /// The current time, by the server's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The `sub` `client` sees for the user `user_id` (Core 8).
    pub fn subject(&self, client: &crate::model::Client, user_id: &str) -> String {
        crate::protocol::subject::subject_for(client, user_id, &self.pairwise_salt)
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: SharedState) -> Router {
    let max_body = state.config.max_body_bytes;
    let body_read_timeout = Duration::from_secs(state.config.body_read_timeout);
    let base_path = state.base_path.clone();
    // The pages reached by mailed links; without a mailer each says it is off (one check, here).
    let mail_pages = Router::new()
        .route("/account/email/verify", post(email_verification::request))
        .route("/email/verify", get(email_verification::confirm_page).post(email_verification::verify))
        .route("/password/forgot", get(password_reset::forgot_page).post(password_reset::forgot_submit))
        .route("/password/reset", get(password_reset::reset_page).post(password_reset::reset_submit))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), mailed_link::only_with_mail));
    let routes = Router::new()
        .merge(mail_pages)
        .route("/.well-known/openid-configuration", get(discovery::configuration))
        .route("/jwks.json", get(discovery::jwks))
        .route("/.well-known/webfinger", get(webfinger::webfinger))
        .route("/authorize", get(authorize::authorize).post(authorize::authorize))
        .route("/authorize/resume", get(authorize::resume))
        .route("/login", get(interaction::login_page).post(interaction::login_submit))
        .route("/consent", get(interaction::consent_page).post(interaction::consent_submit))
        .route("/select_account", get(accounts::chooser_page).post(accounts::choose))
        .route("/account", get(account::page))
        .route("/account/login", post(account::login))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/apps/revoke", post(account::revoke_app))
        .route("/account/requests/decide", post(account::decide_request))
        .route("/account/password", post(account::change_password))
        .route("/login/second-factor", get(mfa::second_factor_page).post(mfa::second_factor_submit))
        .route("/login/enrol", get(mfa::enrol))
        .route("/account/totp/begin", post(mfa::begin))
        .route("/account/totp/confirm", post(mfa::confirm))
        .route("/account/totp/remove", post(mfa::remove))
        .route("/account/recovery-codes", post(mfa::regenerate))
        .route("/account/passkeys/new", post(passkeys::begin))
        .route("/account/passkeys/add", post(passkeys::add))
        .route("/account/passkeys/remove", post(passkeys::remove))
        .route("/signup", get(signup::signup_page).post(signup::signup_submit))
        .route("/initiate-login/{client_id}", get(initiate_login::initiate_login))
        .route("/token", post(token::token))
        .route("/revoke", post(revocation::revoke))
        .route("/par", post(par::push))
        .route("/device_authorization", post(device::authorize_device))
        .route("/bc-authorize", post(ciba::backchannel_authentication))
        .route("/device", get(device::verification_page).post(device::enter_code))
        .route("/device/login", post(device::login))
        .route("/device/decide", post(device::decide))
        .route("/register", post(registration::register))
        .route("/register/{client_id}", get(registration::read).put(registration::replace).delete(registration::delete))
        .route("/introspect", post(introspection::introspect))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/logout", get(logout::end_session).post(logout::end_session))
        .route("/logout/confirm", post(logout::confirm))
        .route("/assets/oxid.css", get(stylesheet))
        .route("/assets/passkeys.js", get(passkey_script))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .route("/metrics", get(|| async { crate::telemetry::render() }))
        .route_layer(axum::middleware::from_fn(crate::telemetry::track_requests))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(state.clone())
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"));
    // Framed by relying parties' pages on their own sites (Session Management 1.0 3.2): no
    // X-Frame-Options; its own CSP allows any ancestor.
    let framed = Router::new()
        .route("/session/check", get(check_session::iframe))
        .route_layer(axum::middleware::from_fn(crate::telemetry::track_requests))
        .with_state(state);
    let routes = routes.merge(framed);
    // An issuer with a path (`https://id.example.com/oxid`) is served under that path (Discovery 4:
    // the configuration is at the issuer plus `/.well-known/openid-configuration`).
    let routes = if base_path.is_empty() { routes } else { Router::new().nest(&base_path, routes) };
    routes
        .layer(DefaultBodyLimit::max(max_body))
        // A body that stops arriving ends the request with 408 (see `params::RequestParams`).
        .layer(RequestBodyTimeoutLayer::new(body_read_timeout))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(header::CONTENT_SECURITY_POLICY, reply::DEFAULT_CSP))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // Only the path: query strings can carry codes and tokens, which are never logged.
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Sets a header on every response unless the handler set its own.
fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// How long a readiness probe waits for the store: a probe must answer quickly even when the database
/// does not (the connection pool alone would wait 5 s).
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when the store takes a write (a full disk or a read-only database is not ready); a load
/// balancer stops sending traffic to a node that is not.
async fn readiness(axum::extract::State(state): axum::extract::State<SharedState>) -> impl IntoResponse {
    match tokio::time::timeout(READINESS_TIMEOUT, state.store.check_write()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the store does not take writes");
            (StatusCode::SERVICE_UNAVAILABLE, "store does not take writes")
        }
        Err(_) => {
            tracing::warn!("the store did not answer within {READINESS_TIMEOUT:?}");
            (StatusCode::SERVICE_UNAVAILABLE, "store does not answer")
        }
    }
}

async fn passkey_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        crate::ui::PASSKEY_SCRIPT,
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        crate::ui::STYLESHEET,
    )
}
