//! Storage: narrow traits, one per kind of record, and one implementation per backend.
//!
//! Handlers see only these traits and the `model` types they carry; all SQL lives in the backend modules. Secrets
//! (codes, tokens, session ids) are handed to the store already hashed.

pub mod cache;
mod postgres;
mod postgres_batch;
mod queries;
mod sqlite;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{
    AccessToken, AuditEvent, BrowserSession, Client, ClientId, CodeGrant, Consent, ConsentedApp,
    DecoupledAuthorization, DecoupledPoll, EndedSession, InitialAccessToken, Issuance, KeySuccession,
    LogoutNotification, Lookup, PendingAuthorization, Ping, RefreshToken, ResourceServer, SigningKey, StoredPasskey,
    Timestamp, Totp, User, UserDecision,
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
    #[error("{0}")]
    Io(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a user's tokens end with (each statement takes the username), besides their sessions.
const USER_TOKEN_REVOCATIONS: [&str; 3] = [
    queries::DELETE_USER_ACCESS_TOKENS,
    queries::DELETE_USER_REFRESH_TOKENS,
    queries::DELETE_USER_DECOUPLED_AUTHORIZATIONS,
];

/// Which sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum SessionsToEnd<'a> {
    /// The session with this `sid`.
    Sid(&'a str),
    /// The session whose cookie id hashes to this.
    IdHash(&'a str),
    /// Every session of the user with this id.
    User(&'a str),
    /// Every session of the user with this username.
    Username(&'a str),
}

/// What ending a session does besides deleting it: the grants made through it end (all but
/// `offline_access` ones, unless `revoke_offline`; Back-Channel Logout 2.7), and every client signed in
/// through it gets a Back-Channel Logout notification, tried until `give_up_at`.
#[derive(Debug, Clone, Copy)]
pub struct Logout {
    pub now: Timestamp,
    pub revoke_offline: bool,
    pub give_up_at: Timestamp,
}

/// A login: the new session, and the browser's previous one it replaces. The same user's previous
/// session (same `sid`) keeps what was granted through it; another user's ends as by `logout`.
pub struct SessionStart<'a> {
    pub session: &'a BrowserSession,
    /// A session of the browser this one replaces: the same user's earlier one when it has the same
    /// `sid` (it continues under the new cookie id), else one the browser no longer keeps (it ends, as a
    /// logout would).
    pub replaced: Option<&'a BrowserSession>,
    pub logout: Logout,
    /// The flow the login happened in (it then satisfies `prompt=login` and `max_age`).
    pub pending_id: Option<&'a str>,
}

/// Lists and records are stored as JSON text in both backends.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
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

/// Which second factors `remove_second_factors` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorsToRemove {
    /// The authenticator app and its recovery codes (the user turns it off).
    AuthenticatorApp,
    /// Those and every passkey (an operator's reset).
    All,
}

/// Second factors: TOTP, recovery codes and passkeys.
#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn totp(&self, user_id: &str) -> StoreResult<Option<Totp>>;
    /// Keeps a new secret to be confirmed; false if the user already has a confirmed one.
    async fn begin_totp(&self, user_id: &str, secret: &str) -> StoreResult<bool>;
    /// Accepts the code of time `step` once (confirming the secret at `now` if needed); false when
    /// that step or a later one was used already.
    async fn use_totp_step(&self, user_id: &str, step: i64, now: Timestamp) -> StoreResult<bool>;
    /// Replaces the user's recovery codes (by hash), in one transaction.
    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()>;
    /// Uses a recovery code once; false if it is not (or no longer) one of the user's.
    async fn use_recovery_code(&self, user_id: &str, hash: &str) -> StoreResult<bool>;
    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u32>;
    /// Removes the user's second factors, in one transaction; false if there were none.
    async fn remove_second_factors(&self, user_id: &str, which: FactorsToRemove) -> StoreResult<bool>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user_id: &str) -> StoreResult<Vec<StoredPasskey>>;
    async fn passkey(&self, credential_id: &str) -> StoreResult<Option<StoredPasskey>>;
    /// `Conflict` if the credential is registered already.
    async fn insert_passkey(&self, passkey: &StoredPasskey) -> StoreResult<()>;
    /// Records a use: the credential as it is after it (its signature counter) and when.
    async fn passkey_used(&self, credential_id: &str, credential: &str, now: Timestamp) -> StoreResult<()>;
    /// Removes one of the user's passkeys; false if the user has no such passkey.
    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> StoreResult<bool>;
}

/// Resource servers (RFC 8707).
#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn insert_resource(&self, resource: &ResourceServer) -> StoreResult<()>;
    async fn resource(&self, identifier: &str) -> StoreResult<Option<ResourceServer>>;
    async fn resources(&self) -> StoreResult<Vec<ResourceServer>>;
    async fn delete_resource(&self, identifier: &str) -> StoreResult<bool>;
}

/// A `resource_servers` row as both backends read it.
pub(crate) struct ResourceRow {
    pub identifier: String,
    pub name: String,
    pub scopes: String,
    pub token_format: String,
    pub access_token_lifetime: Option<i64>,
    pub secret_hash: Option<String>,
    pub created_at: Timestamp,
    pub signing_alg: String,
    pub jwks: Option<String>,
}

impl ResourceRow {
    pub fn into_resource(self) -> StoreResult<ResourceServer> {
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("resource_servers.{what}: {e}"));
        Ok(ResourceServer {
            identifier: self.identifier,
            name: self.name,
            scopes: self.scopes.parse().map_err(|e| corrupt("scopes", &e))?,
            token_format: self.token_format.parse().map_err(|e| corrupt("token_format", &e))?,
            signing_alg: self.signing_alg.parse().map_err(|e| corrupt("signing_alg", &e))?,
            access_token_lifetime: self.access_token_lifetime.and_then(|s| u64::try_from(s).ok()),
            secret_hash: self.secret_hash,
            jwks: self.jwks,
            created_at: self.created_at,
        })
    }
}

/// The device authorization grant (RFC 8628).
#[async_trait]
pub trait DecoupledStore: Send + Sync {
    /// Stores a new device authorization; `Conflict` if its user code is taken (make another).
    async fn insert_decoupled_authorization(&self, device: &DecoupledAuthorization) -> StoreResult<()>;
    /// The pending, live authorization with this (normalized) user code.
    async fn pending_device_authorization(
        &self,
        user_code: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DecoupledAuthorization>>;
    /// Records the user's decision (approved or denied) on a pending, live authorization; false if it
    /// was not pending any more.
    async fn decide_device_authorization(
        &self,
        user_code: &str,
        decision: &UserDecision,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// The CIBA requests waiting for `user_id`'s decision.
    async fn backchannel_requests_for(&self, user_id: &str, now: Timestamp)
    -> StoreResult<Vec<DecoupledAuthorization>>;
    /// `user_id`'s decision on a CIBA request addressed to them (by its code's hash); the request, if it
    /// was pending.
    async fn decide_backchannel_request(
        &self,
        code_hash: &str,
        user_id: &str,
        decision: &UserDecision,
        now: Timestamp,
    ) -> StoreResult<Option<DecoupledAuthorization>>;
    /// A device's poll (RFC 8628 3.5), recorded: polls closer than the interval are answered with
    /// `SlowDown` and lengthen the interval by `slow_down_by` seconds.
    async fn poll_decoupled_authorization(
        &self,
        code_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
        slow_down_by: i64,
    ) -> StoreResult<DecoupledPoll>;
}

/// Dynamic registration (RFC 7591, RFC 7592): initial access tokens and registered clients.
#[async_trait]
pub trait RegistrationStore: Send + Sync {
    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()>;
    async fn initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>>;
    async fn revoke_initial_access_token(&self, id: &str) -> StoreResult<bool>;
    /// Whether the token with this hash may register a client now.
    async fn initial_access_token_usable(&self, token_hash: &str, now: Timestamp) -> StoreResult<bool>;
    /// Stores a registered client, spending one use of the initial access token `spending` (by hash)
    /// in the same transaction; false, with nothing written, when that token is no longer usable.
    async fn register_client(&self, client: &Client, spending: Option<&str>, now: Timestamp) -> StoreResult<bool>;
    /// Replaces a registered client's metadata and credentials (RFC 7592 2.2).
    async fn replace_client(&self, client: &Client) -> StoreResult<()>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// The users whose email address is `email`, compared without regard to case (a few at most).
    async fn users_by_email(&self, email: &str) -> StoreResult<Vec<User>>;
    /// Marks the user's email address verified, if it is still `email`.
    async fn verify_email(&self, id: &str, email: &str, now: Timestamp) -> StoreResult<bool>;
    /// Sets a new password and ends the user's sessions (and, with `revoke_tokens`, their access and
    /// refresh tokens), in one transaction.
    async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
        revoke_tokens: bool,
        logout: Logout,
    ) -> StoreResult<bool>;
    async fn set_user_claims(&self, username: &str, claims: &Map<String, Value>) -> StoreResult<bool>;
    /// Gives the user `id` another username; `Conflict` if it is taken.
    async fn rename_user(&self, id: &str, username: &str) -> StoreResult<()>;
    /// Disables the user, ending their sessions and tokens.
    async fn disable_user(&self, username: &str, logout: Logout) -> StoreResult<bool>;
    /// Deletes the user and everything issued to them (sessions, consents, tokens).
    async fn delete_user(&self, username: &str, logout: Logout) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// In one transaction: replaces the browser's previous session (a new cookie id every login: no
    /// session fixation), starts the new one, and records on the flow that the user logged in during
    /// it. Returns the sessions that ended.
    async fn start_session(&self, start: &SessionStart<'_>) -> StoreResult<Vec<EndedSession>>;
    async fn session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<BrowserSession>>;
    /// Live sessions, newest first, at most `limit`; of one user when `user_id` is given.
    async fn sessions(&self, user_id: Option<&str>, now: Timestamp, limit: u32) -> StoreResult<Vec<BrowserSession>>;
    /// The clients signed in through the session `sid`.
    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<ClientId>>;
    /// Ends sessions as `logout` says, in one transaction; returns what ended.
    async fn end_sessions(&self, which: SessionsToEnd<'_>, logout: Logout) -> StoreResult<Vec<EndedSession>>;
}

/// The outbox of Back-Channel Logout notifications (Back-Channel Logout 2.5), shared by the nodes.
#[async_trait]
pub trait LogoutOutbox: Send + Sync {
    /// Claims up to `limit` notifications that are due at `now`, for `lease` seconds: no other node
    /// takes them meanwhile.
    async fn claim_logout_notifications(
        &self,
        now: Timestamp,
        lease: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutNotification>>;
    /// Done with: delivered, or not wanted (the client has no back-channel logout URI any more).
    async fn delete_logout_notification(&self, id: i64) -> StoreResult<()>;
    /// An attempt failed with `error`: tried again at `retry_at`, or given up at `now` when None.
    async fn logout_notification_failed(
        &self,
        id: i64,
        retry_at: Option<Timestamp>,
        now: Timestamp,
        error: &str,
    ) -> StoreResult<()>;
    /// Notifications not yet delivered, oldest first (only those given up, with `undeliverable_only`).
    async fn logout_notifications(&self, undeliverable_only: bool, limit: u32) -> StoreResult<Vec<LogoutNotification>>;
}

#[async_trait]
pub trait InteractionStore: Send + Sync {
    async fn insert_pending(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    async fn pending(&self, id: &str, now: Timestamp) -> StoreResult<Option<PendingAuthorization>>;
    async fn delete_pending(&self, id: &str) -> StoreResult<()>;
    /// Records the account the user chose on the account chooser during the flow `id`.
    async fn choose_account(&self, id: &str, sid: &str) -> StoreResult<()>;
    /// Keeps a pushed authorization request (RFC 9126) under the hash of its request_uri.
    async fn push_request(
        &self,
        uri_hash: &str,
        client_id: &ClientId,
        params_json: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// Takes a pushed request, once: its client and parameters, if it is live and was not taken before.
    async fn take_pushed_request(&self, uri_hash: &str, now: Timestamp) -> StoreResult<Option<(ClientId, String)>>;
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn consent(&self, user_id: &str, client_id: &ClientId) -> StoreResult<Option<Consent>>;
    async fn consented_apps(&self, user_id: &str) -> StoreResult<Vec<ConsentedApp>>;
    /// Revokes everything the user gave the client, in one transaction: the consent, and every grant
    /// (codes, access and refresh tokens, offline ones too). False when there was nothing.
    async fn revoke_app(&self, user_id: &str, client_id: &ClientId) -> StoreResult<bool>;
}

/// A grant made through a browser session: it ends with the session unless it is `offline`
/// (Back-Channel Logout 2.7), and the session's clients are told when it ends.
#[derive(Debug, Clone, Copy)]
pub struct SessionGrant<'a> {
    pub sid: &'a str,
    pub grant_id: &'a str,
    /// Granted `offline_access` (Core 11): it outlives the session.
    pub offline: bool,
}

/// What an approved authorization request leaves behind (Core 3.1.2.5), written in one transaction.
pub struct Approval<'a> {
    pub user_id: &'a str,
    pub client_id: &'a ClientId,
    /// The session the request was approved in.
    pub session: SessionGrant<'a>,
    /// Consent given on this request, remembered for the next ones.
    pub consent: Option<&'a Consent>,
    /// The flow that is now complete.
    pub pending_id: Option<&'a str>,
    /// A code, under its hash.
    pub code: Option<(&'a str, &'a CodeGrant)>,
    /// An access token from the authorization endpoint, under its hash.
    pub access_token: Option<(&'a str, &'a AccessToken)>,
}

/// What a token request spends.
#[derive(Debug, Clone, Copy)]
pub enum Spent<'a> {
    /// An authorization code, by its hash.
    Code(&'a str),
    /// An approved decoupled authorization (RFC 8628 device code, CIBA auth_req_id), by its code's hash.
    /// Spent once; a lost race is not a replay (two polls at once), so it revokes nothing.
    Decoupled(&'a str),
    /// A refresh token of `client_id`, by its hash; live only until `now`.
    RefreshToken { hash: &'a str, client_id: &'a ClientId, now: Timestamp },
}

/// The tokens of one grant to store: an access token and optionally a refresh token, under their hashes.
pub struct NewTokens<'a> {
    pub access: (&'a str, &'a AccessToken),
    pub refresh: Option<(&'a str, &'a RefreshToken)>,
}

/// Codes and tokens. Every write of one grant is one transaction: what a request spends and what it
/// issues commit together, before the response, or not at all.
#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn approve(&self, approval: &Approval<'_>) -> StoreResult<()>;
    /// What the code stood for, without spending it.
    async fn code(&self, code_hash: &str) -> StoreResult<Lookup<CodeGrant>>;
    /// A refresh token of `client_id`, without spending it (another client's token is `Unknown`).
    async fn refresh_token(
        &self,
        refresh_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
    ) -> StoreResult<Lookup<RefreshToken>>;
    /// Spends `spent` (if any) and stores `tokens`, in one transaction. A code or refresh token already
    /// spent revokes its grant (`Replayed`); a grant revoked meanwhile gets nothing (`Revoked`).
    async fn issue_tokens(&self, spent: Option<Spent<'_>>, tokens: &NewTokens<'_>) -> StoreResult<Issuance>;
    async fn access_token(&self, access_hash: &str, now: Timestamp) -> StoreResult<Option<AccessToken>>;
    /// Revokes one access token (RFC 7009), leaving the rest of its grant.
    async fn delete_access_token(&self, access_hash: &str) -> StoreResult<()>;
    /// Revokes every token of the grant, now and in the future.
    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Installs `key` as the successor the `succession` names, atomically: the predecessor retires when
    /// `key` activates. False when the succession did not apply (another node was first).
    async fn install_signing_key(&self, key: &SigningKey, succession: KeySuccession<'_>) -> StoreResult<bool>;
    async fn delete_keys_retired_before(&self, before: Timestamp) -> StoreResult<u64>;
}

/// One-time-use values, such as client assertion `jti`s (RFC 7523 3, item 7).
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `key` until `expires_at`; false if it was already recorded.
    async fn first_use(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<bool>;
}

/// Attempt counters in a fixed window, keyed by account or client IP (logins, sign-ups).
///
/// An attempt is reserved before the work it bounds (a password check) and counts from then on, so
/// concurrent requests can never evaluate more than the limit within a window, on any node.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one attempt for `key` if fewer than `limit` were counted in the current window (a new
    /// window of `window` seconds starts when the last one has ended); false, counting nothing, if not.
    async fn reserve_attempt(&self, key: &str, now: Timestamp, window: i64, limit: u32) -> StoreResult<bool>;
    /// Gives back one reserved attempt (it succeeded, so it is not held against the key).
    async fn release_attempt(&self, key: &str) -> StoreResult<()>;
    /// Forgets every attempt of `key`.
    async fn clear_attempts(&self, key: &str) -> StoreResult<()>;
}

/// Named secrets shared by every node.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret `name`; stores `candidate` first if there is none yet (first node wins).
    async fn secret(&self, name: &str, candidate: &str) -> StoreResult<String>;
    /// The secret `name`, if one was stored.
    async fn existing_secret(&self, name: &str) -> StoreResult<Option<String>>;
    /// Stores `value` as the secret `name`, replacing any (key rotation).
    async fn replace_secret(&self, name: &str, value: &str) -> StoreResult<()>;
}

/// Whose audit events: by username (events of failed logins have no user id), and by id when the
/// account exists (events recorded before a rename).
#[derive(Debug, Clone, Copy)]
pub struct AuditedUser<'a> {
    pub username: &'a str,
    pub user_id: Option<&'a str>,
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events from `since` on, oldest first, at most `limit`; with `user` only that user's.
    async fn audit_events(
        &self,
        user: Option<AuditedUser<'_>>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// Forgets events older than `before` (retention); returns how many.
    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64>;
}

/// Up to when the sweeper deletes rows.
#[derive(Debug, Clone, Copy)]
pub struct SweepCutoffs {
    /// Rows that expired before this.
    pub expired_before: Timestamp,
    /// Revoked grants revoked before this (any of their tokens could be presented until then).
    pub revoked_before: Timestamp,
    /// Logout notifications given up before this (kept for the operator as long as audit events).
    pub failed_before: Timestamp,
}

impl SweepCutoffs {
    fn of(&self, table: &str) -> Timestamp {
        match table {
            "revoked_grants" => self.revoked_before,
            "logout_notifications" => self.failed_before,
            _ => self.expired_before,
        }
    }
}

/// Keeping storage bounded: expired rows go, a small batch at a time.
#[async_trait]
pub trait SweepStore: Send + Sync {
    /// Deletes up to `batch` rows per table that are past their cutoff; returns the rows deleted per
    /// table.
    async fn sweep(&self, cutoffs: SweepCutoffs, batch: u32) -> StoreResult<Vec<(&'static str, u64)>>;
    /// Hands the space of deleted rows back (SQLite: checkpoints and truncates the WAL).
    async fn compact(&self) -> StoreResult<()>;
    /// Row counts per table, and the database's size in bytes.
    async fn stats(&self) -> StoreResult<(Vec<(&'static str, i64)>, i64)>;
}

/// Readiness: the store answers and takes a write.
#[async_trait]
pub trait Health: Send + Sync {
    async fn check_write(&self) -> StoreResult<()>;
}

/// Everything the server needs from a backend.
pub trait Store:
    Health
    + ClientStore
    + MfaStore
    + ResourceStore
    + DecoupledStore
    + RegistrationStore
    + UserStore
    + SessionStore
    + LogoutOutbox
    + InteractionStore
    + ConsentStore
    + GrantStore
    + KeyStore
    + ReplayStore
    + ThrottleStore
    + SecretStore
    + AuditStore
    + SweepStore
{
}

impl<T> Store for T where
    T: Health
        + ClientStore
        + MfaStore
        + ResourceStore
        + DecoupledStore
        + RegistrationStore
        + UserStore
        + SessionStore
        + LogoutOutbox
        + InteractionStore
        + ConsentStore
        + GrantStore
        + KeyStore
        + ReplayStore
        + ThrottleStore
        + SecretStore
        + AuditStore
        + SweepStore
{
}

/// A device authorization's decision as stored: its status and, when approved, the user and how they
/// authenticated.
pub(crate) fn decision_status(decision: &UserDecision) -> (&'static str, Option<&str>, Option<String>) {
    match decision {
        UserDecision::Pending => ("pending", None, None),
        UserDecision::Approved { user_id, auth } => ("approved", Some(user_id.as_str()), Some(to_json(auth))),
        UserDecision::Denied => ("denied", None, None),
    }
}

/// A `decoupled_authorizations` row as both backends read it.
pub(crate) struct DecoupledRow {
    pub code_hash: String,
    pub user_code: Option<String>,
    pub client_id: String,
    pub scope: String,
    pub grant_id: String,
    pub expires_at: Timestamp,
    pub interval: i64,
    pub status: String,
    pub user_id: Option<String>,
    pub auth: Option<String>,
    pub binding_message: Option<String>,
    pub notification_token: Option<String>,
    pub ping_auth_req_id: Option<String>,
}

impl DecoupledRow {
    /// The authorization, or None once its tokens were issued (`used`).
    pub fn into_authorization(self) -> StoreResult<Option<DecoupledAuthorization>> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("decoupled_authorizations.{what}: {e}"))
        };
        // A CIBA request names its user from the start; a device's is whoever approves it.
        let for_user = if self.user_code.is_none() { self.user_id.clone() } else { None };
        let decision = match (self.status.as_str(), self.user_id, self.auth) {
            ("pending", _, _) => UserDecision::Pending,
            ("denied", _, _) => UserDecision::Denied,
            ("approved", Some(user_id), Some(auth)) => {
                UserDecision::Approved { user_id, auth: serde_json::from_str(&auth).map_err(|e| corrupt("auth", &e))? }
            }
            _ => return Ok(None),
        };
        Ok(Some(DecoupledAuthorization {
            code_hash: self.code_hash,
            user_code: self.user_code,
            for_user,
            client_id: self.client_id.parse().map_err(|e| corrupt("client_id", &e))?,
            scope: self.scope.parse().map_err(|e| corrupt("scope", &e))?,
            grant_id: self.grant_id,
            expires_at: self.expires_at,
            interval: self.interval,
            decision,
            binding_message: self.binding_message,
            ping: self
                .notification_token
                .zip(self.ping_auth_req_id)
                .map(|(client_notification_token, auth_req_id)| Ping { client_notification_token, auth_req_id }),
        }))
    }
}

/// What a poll finds, given the stored authorization (None: used) and when it was last polled; and
/// whether it came too soon (the interval grows).
pub(crate) fn decoupled_poll(
    device: Option<DecoupledAuthorization>,
    last_polled_at: Option<Timestamp>,
    now: Timestamp,
) -> (DecoupledPoll, bool) {
    let Some(device) = device else { return (DecoupledPoll::Unknown, false) };
    if device.expires_at <= now {
        return (DecoupledPoll::Expired, false);
    }
    let too_soon = last_polled_at.is_some_and(|last| now < last + device.interval);
    if too_soon { (DecoupledPoll::SlowDown, true) } else { (DecoupledPoll::Waiting(Box::new(device)), false) }
}
