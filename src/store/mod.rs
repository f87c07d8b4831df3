//! Storage: narrow traits, one per kind of record, and one implementation per backend.
//!
//! Handlers and protocol code see only these traits; all SQL lives in the backend modules. Secrets
//! (codes, tokens, session ids) are handed to the store already hashed.

mod postgres;
mod queries;
mod sqlite;

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::claims::ClaimsRequest;

use crate::types::{
    ClientAuthMethod, ClientId, Encryption, GrantType, RedirectUri, RequestObjectAlg, ResponseType, ScopeSet,
    SigningAlg, SubjectType,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Lists and records are stored as JSON text in both backends.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

/// Unix time in seconds.
pub type Timestamp = i64;

pub fn now() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// Hash of the client secret (see `crypto::token_hash`); None for public clients and
    /// private_key_jwt clients.
    pub secret_hash: Option<String>,
    /// The secret itself, kept only for `client_secret_jwt`, whose HMAC needs it (Core 9).
    pub secret_for_jwt: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub auth_method: ClientAuthMethod,
    pub id_token_signed_response_alg: SigningAlg,
    /// The client's public keys (JWK Set JSON) for `private_key_jwt`.
    pub jwks: Option<String>,
    pub skip_consent: bool,
    pub created_at: Timestamp,
    pub metadata: ClientMetadata,
}

/// Registration metadata (Dynamic Registration 1.0 2) beyond what every client has; stored as one JSON
/// object so that a new field needs only a serde default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    /// The response types the client may use (Registration 2 `response_types`; default `code`).
    pub response_types: Vec<ResponseType>,
    /// Registration 2 `default_max_age`: `max_age` for requests that do not give one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u32>,
    /// Core 8: `public` or `pairwise` subject identifiers.
    pub subject_type: SubjectType,
    /// Registration 2 `sector_identifier_uri`, as registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// The sector pairwise subjects are computed for (Core 8.1), settled at registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_identifier: Option<String>,
    /// Registration 2 `jwks_uri`: where the client publishes its keys (instead of inline `jwks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Registration 2 `request_object_signing_alg`: when set, request objects must use it; `none` is
    /// accepted only when registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<RequestObjectAlg>,
    /// Registration 2 `request_uris`: the only `request_uri` values accepted (Core 6.2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_uris: Vec<String>,
    /// Registration 2 `id_token_encrypted_response_alg`/`_enc`: ID Tokens signed, then encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_encryption: Option<Encryption>,
    /// Registration 2 `userinfo_signed_response_alg`: UserInfo as a JWT signed with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<SigningAlg>,
    /// Registration 2 `userinfo_encrypted_response_alg`/`_enc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_encryption: Option<Encryption>,
    /// Registration 2 `initiate_login_uri`: where a third party starts a login at the client (Core 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
}

impl Default for ClientMetadata {
    fn default() -> Self {
        Self {
            response_types: vec![ResponseType::Code],
            default_max_age: None,
            subject_type: SubjectType::Public,
            sector_identifier_uri: None,
            sector_identifier: None,
            jwks_uri: None,
            request_object_signing_alg: None,
            request_uris: Vec::new(),
            id_token_encryption: None,
            userinfo_signed_response_alg: None,
            userinfo_encryption: None,
            initiate_login_uri: None,
        }
    }
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn allows_response_type(&self, response_type: ResponseType) -> bool {
        self.metadata.response_types.contains(&response_type)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The stable, never reassigned subject identifier (Core 2 `sub`).
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    /// Core 5.1.1 address claim, as a JSON object.
    pub address: Option<String>,
    /// Further claims by name: the rest of Core 5.1, language-tagged forms (Core 5.2, `name#fr`) and
    /// custom claims.
    pub claims: Map<String, Value>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    /// A fresh subject identifier: random, so it reveals nothing and is never reassigned.
    pub fn new_id() -> String {
        crate::crypto::random_token()[..22].to_owned()
    }
}

/// A signed-in browser (server side; the cookie holds a random id whose hash is `id_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub id_hash: String,
    /// The session id given to RPs in the `sid` claim (Front-Channel Logout 1.0 / Back-Channel 2.1).
    pub sid: String,
    pub user_id: String,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub acr: String,
    pub expires_at: Timestamp,
}

/// How and when the user authenticated, carried from the browser session into the code and every
/// token of the grant (Core 2: `auth_time`, `acr`, `amr`; `sid` for logout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Authentication {
    pub sid: String,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub acr: String,
}

impl BrowserSession {
    pub fn authentication(&self) -> Authentication {
        Authentication {
            sid: self.sid.clone(),
            auth_time: self.auth_time,
            amr: self.amr.clone(),
            acr: self.acr.clone(),
        }
    }
}

/// An authorization request waiting for the user (login or consent), stored so that any node can
/// continue it.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub id: String,
    pub client_id: ClientId,
    /// The validated request, serialized by the protocol layer.
    pub request_json: String,
    /// The `sid` of a session created by a login during this flow.
    pub login_sid: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What an authorization code stands for (Core 3.1.2.5); stored under the hash of the code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CodeGrant {
    pub client_id: ClientId,
    pub user_id: String,
    pub redirect_uri: RedirectUri,
    pub scope: ScopeSet,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The `claims` request parameter (Core 5.5), for the ID Token and UserInfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsRequest>,
    #[serde(flatten)]
    pub auth: Authentication,
    /// All tokens issued from this code share this id, so a replayed code revokes them (RFC 6749 4.1.2).
    pub grant_id: String,
    pub expires_at: Timestamp,
}

/// The outcome of redeeming an authorization code.
#[derive(Debug)]
pub enum CodeRedemption {
    Redeemed(Box<CodeGrant>),
    /// The code was used before; the grant it started has been revoked.
    Replayed,
    Unknown,
}

/// An access token, stored under its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    pub client_id: ClientId,
    /// None for `client_credentials` tokens, which act for the client itself.
    pub user_id: Option<String>,
    pub scope: ScopeSet,
    pub grant_id: String,
    pub expires_at: Timestamp,
    /// The grant's claims request: the UserInfo claims asked for one by one and their languages.
    pub claims: Option<ClaimsRequest>,
}

/// A refresh token, stored under its hash. All rotations of one grant share `grant_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub client_id: ClientId,
    pub user_id: String,
    pub scope: ScopeSet,
    pub grant_id: String,
    pub auth: Authentication,
    pub expires_at: Timestamp,
    /// The grant's `claims` request (Core 5.5), honoured again on every refresh.
    pub claims: Option<ClaimsRequest>,
}

/// What a user has allowed a client: scopes, and claims requested one by one (Core 5.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consent {
    pub scope: ScopeSet,
    pub claims: BTreeSet<String>,
}

#[derive(Debug)]
pub enum RefreshRotation {
    Rotated(Box<RefreshToken>),
    /// The token had already been rotated: the whole grant is now revoked (RFC 9700 4.14.2).
    Replayed,
    Unknown,
}

/// A signing key. The private JWK stays in the store (the SQLite file is created mode 0600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub private_jwk: String,
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When the key stopped being the current key for its algorithm; None while current.
    pub retired_at: Option<Timestamp>,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn client(&self, id: &ClientId) -> StoreResult<Option<Client>>;
    async fn clients(&self) -> StoreResult<Vec<Client>>;
    async fn delete_client(&self, id: &ClientId) -> StoreResult<bool>;
    async fn set_client_secret(
        &self,
        id: &ClientId,
        secret_hash: &str,
        secret_for_jwt: Option<&str>,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    async fn set_password_hash(&self, username: &str, hash: &str) -> StoreResult<bool>;
    async fn set_user_claims(&self, username: &str, claims: &Map<String, Value>) -> StoreResult<bool>;
    async fn disable_user(&self, username: &str) -> StoreResult<bool>;
    /// Deletes the user and everything issued to them (sessions, consents, tokens).
    async fn delete_user(&self, username: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &BrowserSession) -> StoreResult<()>;
    async fn session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<BrowserSession>>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait InteractionStore: Send + Sync {
    async fn insert_pending(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    async fn pending(&self, id: &str, now: Timestamp) -> StoreResult<Option<PendingAuthorization>>;
    async fn delete_pending(&self, id: &str) -> StoreResult<()>;
    /// Records that the user logged in during this flow, with session `sid`.
    async fn set_pending_login(&self, id: &str, sid: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn consent(&self, user_id: &str, client_id: &ClientId) -> StoreResult<Option<Consent>>;
    async fn save_consent(&self, user_id: &str, client_id: &ClientId, consent: &Consent) -> StoreResult<()>;
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn insert_code(&self, code_hash: &str, grant: &CodeGrant) -> StoreResult<()>;
    /// Marks the code used and returns what it stood for, atomically; a second redemption revokes
    /// every token of the grant and reports `Replayed`.
    async fn redeem_code(&self, code_hash: &str) -> StoreResult<CodeRedemption>;
    /// Stores an access token and, optionally, a refresh token, in one transaction.
    async fn insert_tokens(
        &self,
        access_hash: &str,
        access: &AccessToken,
        refresh: Option<(&str, &RefreshToken)>,
    ) -> StoreResult<()>;
    async fn access_token(&self, access_hash: &str, now: Timestamp) -> StoreResult<Option<AccessToken>>;
    /// A live, unused refresh token of `client_id`, without consuming it.
    async fn refresh_token(
        &self,
        refresh_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
    ) -> StoreResult<Option<RefreshToken>>;
    /// Consumes a refresh token of `client_id` for rotation; reuse of a consumed token revokes the grant.
    async fn rotate_refresh_token(
        &self,
        refresh_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
    ) -> StoreResult<RefreshRotation>;
    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Makes `key` the current key for its algorithm and retires the previous one, atomically.
    /// With `only_if_none`, does nothing when a current key exists (several nodes starting at once).
    async fn install_signing_key(&self, key: &SigningKey, only_if_none: bool) -> StoreResult<bool>;
    async fn delete_keys_retired_before(&self, before: Timestamp) -> StoreResult<u64>;
}

/// One-time-use values, such as client assertion `jti`s (RFC 7523 3, item 7).
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `key` until `expires_at`; false if it was already recorded.
    async fn first_use(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<bool>;
}

/// Failed login counters in a fixed window, keyed by account or client IP.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    async fn failures(&self, key: &str, now: Timestamp) -> StoreResult<u32>;
    async fn record_failure(&self, key: &str, now: Timestamp, window: i64) -> StoreResult<()>;
    async fn clear_failures(&self, key: &str) -> StoreResult<()>;
}

/// Named secrets shared by every node.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret `name`; stores `candidate` first if there is none yet (first node wins).
    async fn secret(&self, name: &str, candidate: &str) -> StoreResult<String>;
    /// The secret `name`, if one was stored.
    async fn existing_secret(&self, name: &str) -> StoreResult<Option<String>>;
}

/// Reachability, for readiness checks.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
}

/// Everything the server needs from a backend.
pub trait Store:
    Health
    + ClientStore
    + UserStore
    + SessionStore
    + InteractionStore
    + ConsentStore
    + GrantStore
    + KeyStore
    + ReplayStore
    + ThrottleStore
    + SecretStore
{
}

impl<T> Store for T where
    T: Health
        + ClientStore
        + UserStore
        + SessionStore
        + InteractionStore
        + ConsentStore
        + GrantStore
        + KeyStore
        + ReplayStore
        + ThrottleStore
        + SecretStore
{
}
