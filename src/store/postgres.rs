//! The PostgreSQL backend, for several interchangeable nodes sharing one database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{FromRow, Row};

use super::postgres_batch::{self as batch, LoneAccessTokens, Lookups};
use super::queries as q;
use super::to_json;
use super::*;
use crate::model::{
    AuditKind, Authentication, ClientId, DecoupledAuthorization, DecoupledPoll, Device, InitialAccessToken,
    StoredPasskey, UserDecision, now,
};

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    lone_access_tokens: LoneAccessTokens,
    access_tokens: Lookups<AccessToken>,
    refresh_tokens: Lookups<(RefreshToken, bool)>,
    codes: Lookups<(CodeGrant, bool)>,
    sessions: Lookups<BrowserSession>,
    users: Lookups<User>,
}

fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn optional_json<T: DeserializeOwned>(column: &str, text: Option<&str>) -> StoreResult<Option<T>> {
    text.map(|t| from_json(column, t)).transpose()
}

fn parse<T: FromStr>(column: &str, text: &str) -> StoreResult<T> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("{column}: {text:?}")))
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn conflict_or(e: sqlx::Error) -> StoreError {
    if unique_violation(&e) { StoreError::Conflict } else { e.into() }
}

/// How long a pooled connection may sit idle and still be used without a check first.
const CHECK_CONNECTIONS_IDLE_FOR: Duration = Duration::from_secs(10);

impl PgStore {
    /// Connects to `url` (at most `pool_size` connections) and applies the embedded migrations (sqlx
    /// takes an advisory lock, so nodes starting together migrate once).
    pub async fn open(url: &str, pool_size: u32) -> StoreResult<Self> {
        use sqlx::Connection as _;
        use sqlx::postgres::{PgConnectOptions, PgConnection};
        let options = PgConnectOptions::from_str(url)?;
        // One connection first, so that an unreachable server is reported as what it is (refused, name
        // not found, authentication failed) with its address, not as the pool's "timed out". The URL's
        // password is not repeated.
        let address = format!("{}:{}", options.get_host(), options.get_port());
        let probe = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options)).await;
        match probe {
            Ok(Ok(conn)) => conn.close().await?,
            Ok(Err(e)) => return Err(StoreError::Io(format!("cannot connect to PostgreSQL at {address}: {e}"))),
            Err(_) => return Err(StoreError::Io(format!("PostgreSQL at {address} did not answer within 5 s"))),
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            // A connection is checked (a round trip) before use only after it idled a while, when a
            // database restart or a dropped idle connection may have ended it. Checking every time
            // added a round trip to each statement and transaction of every request.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_CONNECTIONS_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            lone_access_tokens: batch::lone_access_tokens(pool.clone()),
            access_tokens: batch::lookups(pool.clone(), q::ACCESS_TOKENS_PG, "token_hash", access_token_of),
            refresh_tokens: batch::lookups(pool.clone(), q::REFRESH_TOKENS_PG, "token_hash", |r| {
                Ok((refresh_from_row(r)?, r.try_get("used")?))
            }),
            codes: batch::lookups(pool.clone(), q::CODES_PG, "code_hash", |r| {
                Ok((from_json("authorization_codes.grant_json", r.try_get("grant_json")?)?, r.try_get("used")?))
            }),
            sessions: batch::lookups(pool.clone(), q::SESSIONS_PG, "id_hash", session_from_row),
            users: batch::lookups(pool.clone(), q::USERS_PG, "id", user_from_row),
            pool,
        })
    }

    /// A transaction holding the lock of one grant (`q::LOCK_GRANT`), begun in one round trip: `BEGIN`
    /// and the lock go as one simple-query message. That message carries no parameters, so the id is
    /// spelled into it, and only when it is made of the characters oxid's ids are (base64url; nothing
    /// to quote); any other takes a second round trip with the id bound.
    async fn begin_locked(&self, grant_id: &str) -> StoreResult<Tx> {
        if !grant_id.is_empty() && grant_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            let begin = format!("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('{grant_id}', 0))");
            return Ok(self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(q::LOCK_GRANT).bind(grant_id).execute(&mut *tx).await?;
        Ok(tx)
    }
}

#[derive(FromRow)]
struct ClientRow {
    id: String,
    name: String,
    secret_hash: Option<String>,
    secret_for_jwt: Option<String>,
    redirect_uris: String,
    grant_types: String,
    auth_method: String,
    id_token_signed_response_alg: String,
    jwks: Option<String>,
    skip_consent: bool,
    created_at: i64,
    metadata: String,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> StoreResult<Client> {
        Ok(Client {
            id: parse("clients.id", &r.id)?,
            name: r.name,
            secret_hash: r.secret_hash,
            secret_for_jwt: r.secret_for_jwt,
            redirect_uris: from_json("clients.redirect_uris", &r.redirect_uris)?,
            grant_types: from_json("clients.grant_types", &r.grant_types)?,
            auth_method: parse("clients.auth_method", &r.auth_method)?,
            id_token_signed_response_alg: parse("clients.alg", &r.id_token_signed_response_alg)?,
            jwks: r.jwks,
            skip_consent: r.skip_consent,
            created_at: r.created_at,
            metadata: from_json("clients.metadata", &r.metadata)?,
        })
    }
}

#[async_trait]
impl Health for PgStore {
    async fn check_write(&self) -> StoreResult<()> {
        crate::telemetry::timed("check_write", async move {
            sqlx::query(q::RECORD_HEALTH_CHECK).bind(now()).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ClientStore for PgStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        crate::telemetry::timed("insert_client", async move {
            save_client(q::INSERT_CLIENT, c).execute(&self.pool).await.map_err(conflict_or)?;
            Ok(())
        })
        .await
    }

    async fn client(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        crate::telemetry::timed("client", async move {
            let sql = q::CLIENT;
            let row: Option<ClientRow> = sqlx::query_as(sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
            row.map(Client::try_from).transpose()
        })
        .await
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        crate::telemetry::timed("clients", async move {
            let sql = q::CLIENTS;
            let rows: Vec<ClientRow> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
            rows.into_iter().map(Client::try_from).collect()
        })
        .await
    }

    async fn delete_client(&self, id: &ClientId) -> StoreResult<bool> {
        crate::telemetry::timed("delete_client", async move {
            let mut tx = self.pool.begin().await?;
            for sql in [q::DELETE_CLIENT_1, q::DELETE_CLIENT_2, q::DELETE_CLIENT_3, q::DELETE_CLIENT_4] {
                sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await?;
            }
            let done = sqlx::query(q::DELETE_CLIENT_5).bind(id.as_str()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn set_client_secret(&self, id: &ClientId, hash: &str, for_jwt: Option<&str>) -> StoreResult<bool> {
        crate::telemetry::timed("set_client_secret", async move {
            let done = sqlx::query(q::SET_CLIENT_SECRET)
                .bind(hash)
                .bind(for_jwt)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}

fn user_from_row(r: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        email: r.try_get("email")?,
        email_verified: r.try_get("email_verified")?,
        name: r.try_get("name")?,
        given_name: r.try_get("given_name")?,
        family_name: r.try_get("family_name")?,
        phone_number: r.try_get("phone_number")?,
        phone_number_verified: r.try_get("phone_number_verified")?,
        address: r.try_get("address")?,
        disabled: r.try_get("disabled")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        claims: from_json("users.claims", r.try_get("claims")?)?,
    })
}

/// A client written with `sql` (an insert, or the replacing upsert), which binds every column in order.
fn save_client<'a>(
    sql: &'static str,
    c: &'a Client,
) -> sqlx::query::Query<'a, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(&c.secret_for_jwt)
        .bind(to_json(&c.redirect_uris))
        .bind(to_json(&c.grant_types))
        .bind(c.auth_method.as_str())
        .bind(c.id_token_signed_response_alg.as_str())
        .bind(&c.jwks)
        .bind(c.skip_consent)
        .bind(c.created_at)
        .bind(to_json(&c.metadata))
}

fn decoupled_row(r: &PgRow) -> StoreResult<DecoupledRow> {
    Ok(DecoupledRow {
        code_hash: r.try_get("code_hash")?,
        user_code: r.try_get("user_code")?,
        client_id: r.try_get("client_id")?,
        scope: r.try_get("scope")?,
        grant_id: r.try_get("grant_id")?,
        expires_at: r.try_get("expires_at")?,
        interval: r.try_get("poll_interval")?,
        status: r.try_get("status")?,
        user_id: r.try_get("user_id")?,
        auth: r.try_get("auth")?,
        binding_message: r.try_get("binding_message")?,
        notification_token: r.try_get("notification_token")?,
        ping_auth_req_id: r.try_get("ping_auth_req_id")?,
    })
}

#[async_trait]
impl MfaStore for PgStore {
    async fn totp(&self, user_id: &str) -> StoreResult<Option<Totp>> {
        crate::telemetry::timed("totp", async move {
            let row: Option<(String, Option<i64>, i64)> =
                sqlx::query_as(q::TOTP).bind(user_id).fetch_optional(&self.pool).await?;
            Ok(row.map(|(secret, confirmed_at, last_step)| Totp {
                secret,
                confirmed: confirmed_at.is_some(),
                last_step,
            }))
        })
        .await
    }

    async fn begin_totp(&self, user_id: &str, secret: &str) -> StoreResult<bool> {
        crate::telemetry::timed("begin_totp", async move {
            let done = sqlx::query(q::BEGIN_TOTP).bind(user_id).bind(secret).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn use_totp_step(&self, user_id: &str, step: i64, now: Timestamp) -> StoreResult<bool> {
        crate::telemetry::timed("use_totp_step", async move {
            let done = sqlx::query(q::USE_TOTP_STEP).bind(step).bind(now).bind(user_id).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()> {
        crate::telemetry::timed("replace_recovery_codes", async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(q::DELETE_RECOVERY_CODES).bind(user_id).execute(&mut *tx).await?;
            for hash in hashes {
                sqlx::query(q::INSERT_RECOVERY_CODE).bind(user_id).bind(hash).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn use_recovery_code(&self, user_id: &str, hash: &str) -> StoreResult<bool> {
        crate::telemetry::timed("use_recovery_code", async move {
            let done = sqlx::query(q::USE_RECOVERY_CODE).bind(user_id).bind(hash).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u32> {
        crate::telemetry::timed("recovery_codes_left", async move {
            let (n,): (i64,) = sqlx::query_as(q::RECOVERY_CODES_LEFT).bind(user_id).fetch_one(&self.pool).await?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn remove_second_factors(&self, user_id: &str, which: FactorsToRemove) -> StoreResult<bool> {
        crate::telemetry::timed("remove_second_factors", async move {
            let mut tx = self.pool.begin().await?;
            let totp = sqlx::query(q::DELETE_TOTP).bind(user_id).execute(&mut *tx).await?.rows_affected();
            let codes = sqlx::query(q::DELETE_RECOVERY_CODES).bind(user_id).execute(&mut *tx).await?.rows_affected();
            let keys = match which {
                FactorsToRemove::All => {
                    sqlx::query(q::DELETE_PASSKEYS).bind(user_id).execute(&mut *tx).await?.rows_affected()
                }
                FactorsToRemove::AuthenticatorApp => 0,
            };
            tx.commit().await?;
            Ok(totp + codes + keys > 0)
        })
        .await
    }

    async fn passkeys(&self, user_id: &str) -> StoreResult<Vec<StoredPasskey>> {
        crate::telemetry::timed("passkeys", async move {
            let rows = sqlx::query(q::PASSKEYS).bind(user_id).fetch_all(&self.pool).await?;
            rows.iter().map(passkey_from_row).collect()
        })
        .await
    }

    async fn passkey(&self, credential_id: &str) -> StoreResult<Option<StoredPasskey>> {
        crate::telemetry::timed("passkey", async move {
            let row = sqlx::query(q::PASSKEY).bind(credential_id).fetch_optional(&self.pool).await?;
            row.as_ref().map(passkey_from_row).transpose()
        })
        .await
    }

    async fn insert_passkey(&self, p: &StoredPasskey) -> StoreResult<()> {
        crate::telemetry::timed("insert_passkey", async move {
            sqlx::query(q::INSERT_PASSKEY)
                .bind(&p.credential_id)
                .bind(&p.user_id)
                .bind(&p.name)
                .bind(&p.credential)
                .bind(p.created_at)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
            Ok(())
        })
        .await
    }

    async fn passkey_used(&self, credential_id: &str, credential: &str, now: Timestamp) -> StoreResult<()> {
        crate::telemetry::timed("passkey_used", async move {
            sqlx::query(q::PASSKEY_USED).bind(credential).bind(now).bind(credential_id).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> StoreResult<bool> {
        crate::telemetry::timed("delete_passkey", async move {
            let done = sqlx::query(q::DELETE_PASSKEY).bind(user_id).bind(credential_id).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}

fn passkey_from_row(r: &PgRow) -> StoreResult<StoredPasskey> {
    Ok(StoredPasskey {
        credential_id: r.try_get("credential_id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        credential: r.try_get("credential")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn resource_row(r: &PgRow) -> StoreResult<ResourceRow> {
    Ok(ResourceRow {
        identifier: r.try_get("identifier")?,
        name: r.try_get("name")?,
        scopes: r.try_get("scopes")?,
        token_format: r.try_get("token_format")?,
        access_token_lifetime: r.try_get("access_token_lifetime")?,
        secret_hash: r.try_get("secret_hash")?,
        created_at: r.try_get("created_at")?,
        signing_alg: r.try_get("signing_alg")?,
        jwks: r.try_get("jwks")?,
    })
}

#[async_trait]
impl ResourceStore for PgStore {
    async fn insert_resource(&self, s: &ResourceServer) -> StoreResult<()> {
        crate::telemetry::timed("insert_resource", async move {
            sqlx::query(q::INSERT_RESOURCE)
                .bind(&s.identifier)
                .bind(&s.name)
                .bind(s.scopes.to_string())
                .bind(s.token_format.as_str())
                .bind(s.access_token_lifetime.and_then(|l| i64::try_from(l).ok()))
                .bind(&s.secret_hash)
                .bind(s.created_at)
                .bind(s.signing_alg.as_str())
                .bind(&s.jwks)
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
            Ok(())
        })
        .await
    }

    async fn resource(&self, identifier: &str) -> StoreResult<Option<ResourceServer>> {
        crate::telemetry::timed("resource", async move {
            let row = sqlx::query(q::RESOURCE).bind(identifier).fetch_optional(&self.pool).await?;
            row.map(|r| resource_row(&r)?.into_resource()).transpose()
        })
        .await
    }

    async fn resources(&self) -> StoreResult<Vec<ResourceServer>> {
        crate::telemetry::timed("resources", async move {
            let rows = sqlx::query(q::RESOURCES).fetch_all(&self.pool).await?;
            rows.iter().map(|r| resource_row(r)?.into_resource()).collect()
        })
        .await
    }

    async fn delete_resource(&self, identifier: &str) -> StoreResult<bool> {
        crate::telemetry::timed("delete_resource", async move {
            Ok(sqlx::query(q::DELETE_RESOURCE).bind(identifier).execute(&self.pool).await?.rows_affected() == 1)
        })
        .await
    }
}

#[async_trait]
impl DecoupledStore for PgStore {
    async fn insert_decoupled_authorization(&self, d: &DecoupledAuthorization) -> StoreResult<()> {
        crate::telemetry::timed("insert_decoupled_authorization", async move {
            sqlx::query(q::INSERT_DECOUPLED_AUTHORIZATION)
                .bind(&d.code_hash)
                .bind(&d.user_code)
                .bind(&d.for_user)
                .bind(d.client_id.as_str())
                .bind(d.scope.to_string())
                .bind(&d.grant_id)
                .bind(d.expires_at)
                .bind(d.interval)
                .bind(&d.binding_message)
                .bind(d.ping.as_ref().map(|p| &p.client_notification_token))
                .bind(d.ping.as_ref().map(|p| &p.auth_req_id))
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
            Ok(())
        })
        .await
    }

    async fn pending_device_authorization(
        &self,
        user_code: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DecoupledAuthorization>> {
        crate::telemetry::timed("pending_device_authorization", async move {
            let row = sqlx::query(q::PENDING_DEVICE_AUTHORIZATION)
                .bind(user_code)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| decoupled_row(&r)?.into_authorization()).transpose()?.flatten())
        })
        .await
    }

    async fn decide_device_authorization(
        &self,
        user_code: &str,
        decision: &UserDecision,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (status, user_id, auth) = decision_status(decision);
        crate::telemetry::timed("decide_device_authorization", async move {
            let done = sqlx::query(q::DECIDE_DEVICE_AUTHORIZATION)
                .bind(status)
                .bind(user_id)
                .bind(auth)
                .bind(user_code)
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn backchannel_requests_for(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<DecoupledAuthorization>> {
        crate::telemetry::timed("backchannel_requests_for", async move {
            let rows =
                sqlx::query(q::PENDING_BACKCHANNEL_REQUESTS).bind(user_id).bind(now).fetch_all(&self.pool).await?;
            let mut requests = Vec::new();
            for r in &rows {
                requests.extend(decoupled_row(r)?.into_authorization()?);
            }
            Ok(requests)
        })
        .await
    }

    async fn decide_backchannel_request(
        &self,
        code_hash: &str,
        user_id: &str,
        decision: &UserDecision,
        now: Timestamp,
    ) -> StoreResult<Option<DecoupledAuthorization>> {
        let (status, _, auth) = decision_status(decision);
        crate::telemetry::timed("decide_backchannel_request", async move {
            let row = sqlx::query(q::DECIDE_BACKCHANNEL_REQUEST)
                .bind(status)
                .bind(user_id)
                .bind(auth)
                .bind(code_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| decoupled_row(&r)?.into_authorization()).transpose()?.flatten())
        })
        .await
    }

    async fn poll_decoupled_authorization(
        &self,
        code_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
        slow_down_by: i64,
    ) -> StoreResult<DecoupledPoll> {
        crate::telemetry::timed("poll_decoupled_authorization", async move {
            let mut tx = self.pool.begin().await?;
            let found = sqlx::query(q::POLLED_DECOUPLED_AUTHORIZATION_PG)
                .bind(code_hash)
                .bind(client_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(r) = found else { return Ok(DecoupledPoll::Unknown) };
            let last_polled_at: Option<i64> = r.try_get("last_polled_at")?;
            let row = decoupled_row(&r)?;
            let interval = row.interval;
            let (poll, too_soon) = decoupled_poll(row.into_authorization()?, last_polled_at, now);
            if matches!(poll, DecoupledPoll::SlowDown | DecoupledPoll::Waiting(_)) {
                let interval = if too_soon { interval + slow_down_by } else { interval };
                sqlx::query(q::RECORD_DECOUPLED_POLL)
                    .bind(now)
                    .bind(interval)
                    .bind(code_hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok(poll)
        })
        .await
    }
}

#[async_trait]
impl RegistrationStore for PgStore {
    async fn insert_initial_access_token(&self, t: &InitialAccessToken) -> StoreResult<()> {
        crate::telemetry::timed("insert_initial_access_token", async move {
            sqlx::query(q::INSERT_INITIAL_ACCESS_TOKEN)
                .bind(&t.id)
                .bind(&t.token_hash)
                .bind(t.created_at)
                .bind(t.expires_at)
                .bind(t.uses_left.map(i64::from))
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
            Ok(())
        })
        .await
    }

    async fn initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>> {
        crate::telemetry::timed("initial_access_tokens", async move {
            let rows: Vec<(String, String, i64, Option<i64>, Option<i64>)> =
                sqlx::query_as(q::INITIAL_ACCESS_TOKENS).fetch_all(&self.pool).await?;
            Ok(rows
                .into_iter()
                .map(|(id, token_hash, created_at, expires_at, uses_left)| InitialAccessToken {
                    id,
                    token_hash,
                    created_at,
                    expires_at,
                    uses_left: uses_left.map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
                })
                .collect())
        })
        .await
    }

    async fn revoke_initial_access_token(&self, id: &str) -> StoreResult<bool> {
        crate::telemetry::timed("revoke_initial_access_token", async move {
            let done = sqlx::query(q::DELETE_INITIAL_ACCESS_TOKEN).bind(id).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn initial_access_token_usable(&self, token_hash: &str, now: Timestamp) -> StoreResult<bool> {
        crate::telemetry::timed("initial_access_token_usable", async move {
            let row: Option<(i32,)> = sqlx::query_as(q::USABLE_INITIAL_ACCESS_TOKEN)
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        })
        .await
    }

    async fn register_client(&self, client: &Client, spending: Option<&str>, now: Timestamp) -> StoreResult<bool> {
        crate::telemetry::timed("register_client", async move {
            let mut tx = self.pool.begin().await?;
            if let Some(hash) = spending {
                let spent = sqlx::query(q::SPEND_INITIAL_ACCESS_TOKEN).bind(hash).bind(now).execute(&mut *tx).await?;
                if spent.rows_affected() != 1 {
                    return Ok(false);
                }
            }
            save_client(q::INSERT_CLIENT, client).execute(&mut *tx).await.map_err(conflict_or)?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn replace_client(&self, client: &Client) -> StoreResult<()> {
        crate::telemetry::timed("replace_client", async move {
            save_client(q::SAVE_CLIENT, client).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        crate::telemetry::timed("insert_user", async move {
            sqlx::query(q::INSERT_USER)
                .bind(&u.id)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(&u.email)
                .bind(u.email_verified)
                .bind(&u.name)
                .bind(&u.given_name)
                .bind(&u.family_name)
                .bind(&u.phone_number)
                .bind(u.phone_number_verified)
                .bind(&u.address)
                .bind(u.disabled)
                .bind(u.created_at)
                .bind(u.updated_at)
                .bind(to_json(&u.claims))
                .execute(&self.pool)
                .await
                .map_err(conflict_or)?;
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        crate::telemetry::timed("user", self.users.call(id.to_owned())).await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        crate::telemetry::timed("user_by_username", async move {
            let sql = q::USER_BY_USERNAME;
            let row = sqlx::query(sql).bind(username).fetch_optional(&self.pool).await?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        crate::telemetry::timed("users", async move {
            let sql = q::USERS;
            let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
            rows.iter().map(user_from_row).collect()
        })
        .await
    }

    async fn users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        crate::telemetry::timed("users_by_email", async move {
            let rows = sqlx::query(q::USERS_BY_EMAIL).bind(email).fetch_all(&self.pool).await?;
            rows.iter().map(user_from_row).collect()
        })
        .await
    }

    async fn verify_email(&self, id: &str, email: &str, now: Timestamp) -> StoreResult<bool> {
        crate::telemetry::timed("verify_email", async move {
            let done = sqlx::query(q::VERIFY_EMAIL).bind(now).bind(id).bind(email).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
        revoke_tokens: bool,
        logout: Logout,
    ) -> StoreResult<bool> {
        crate::telemetry::timed("set_password_hash", async move {
            let mut tx = self.pool.begin().await?;
            let done =
                sqlx::query(q::SET_PASSWORD_HASH).bind(hash).bind(now()).bind(username).execute(&mut *tx).await?;
            end_sessions(&mut tx, SessionsToEnd::Username(username), logout).await?;
            if revoke_tokens {
                for sql in USER_TOKEN_REVOCATIONS {
                    sqlx::query(sql).bind(username).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn set_user_claims(&self, username: &str, claims: &Map<String, Value>) -> StoreResult<bool> {
        crate::telemetry::timed("set_user_claims", async move {
            let done = sqlx::query(q::SET_USER_CLAIMS)
                .bind(to_json(claims))
                .bind(now())
                .bind(username)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn rename_user(&self, id: &str, username: &str) -> StoreResult<()> {
        crate::telemetry::timed("rename_user", async move {
            let renamed = sqlx::query(q::RENAME_USER).bind(username).bind(now()).bind(id).execute(&self.pool).await;
            renamed.map(drop).map_err(conflict_or)
        })
        .await
    }

    async fn disable_user(&self, username: &str, logout: Logout) -> StoreResult<bool> {
        crate::telemetry::timed("disable_user", async move {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(q::DISABLE_USER).bind(now()).bind(username).execute(&mut *tx).await?;
            // A disabled account loses its sessions and tokens at once.
            end_sessions(&mut tx, SessionsToEnd::Username(username), logout).await?;
            for sql in USER_TOKEN_REVOCATIONS {
                sqlx::query(sql).bind(username).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn delete_user(&self, username: &str, logout: Logout) -> StoreResult<bool> {
        crate::telemetry::timed("delete_user", async move {
            let mut tx = self.pool.begin().await?;
            // Its clients are told first; the rest goes by ON DELETE CASCADE.
            end_sessions(&mut tx, SessionsToEnd::Username(username), logout).await?;
            let done = sqlx::query(q::DELETE_USER).bind(username).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}

fn session_from_row(r: &PgRow) -> StoreResult<BrowserSession> {
    Ok(BrowserSession {
        id_hash: r.try_get("id_hash")?,
        sid: r.try_get("sid")?,
        user_id: r.try_get("user_id")?,
        auth_time: r.try_get("auth_time")?,
        amr: from_json("sessions.amr", r.try_get("amr")?)?,
        acr: r.try_get("acr")?,
        expires_at: r.try_get("expires_at")?,
        device: Device { ip: r.try_get("ip")?, user_agent: r.try_get("user_agent")? },
    })
}

/// Ends sessions inside the caller's transaction: notifications queued for their clients, their grants
/// revoked (but offline ones, each under its grant lock, as `revoke_grant`), then the sessions deleted.
async fn end_sessions(tx: &mut Tx, which: SessionsToEnd<'_>, logout: Logout) -> StoreResult<Vec<EndedSession>> {
    let (sql, key) = match which {
        SessionsToEnd::Sid(sid) => (q::SESSIONS_BY_SID, sid),
        SessionsToEnd::IdHash(hash) => (q::SESSIONS_BY_HASH, hash),
        SessionsToEnd::User(id) => (q::SESSIONS_BY_USER, id),
        SessionsToEnd::Username(name) => (q::SESSIONS_BY_USERNAME, name),
    };
    let found: Vec<(String, String)> = sqlx::query_as(sql).bind(key).fetch_all(&mut **tx).await?;
    let mut ended = Vec::with_capacity(found.len());
    for (sid, user_id) in found {
        let clients: Vec<String> = sqlx::query_scalar(q::SESSION_CLIENTS).bind(&sid).fetch_all(&mut **tx).await?;
        let clients = clients.iter().map(|c| parse("session_grants.client_id", c)).collect::<StoreResult<_>>()?;
        sqlx::query(q::ENQUEUE_LOGOUT_NOTIFICATIONS)
            .bind(&sid)
            .bind(&user_id)
            .bind(logout.now)
            .bind(logout.give_up_at)
            .execute(&mut **tx)
            .await?;
        let grants: Vec<String> =
            sqlx::query_scalar(q::ENDING_GRANTS).bind(&sid).bind(logout.revoke_offline).fetch_all(&mut **tx).await?;
        // In grant-id order, as every transaction takes several grant locks, so none waits on another.
        for grant_id in &grants {
            sqlx::query(q::LOCK_GRANT).bind(grant_id).execute(&mut **tx).await?;
            revoke(tx, grant_id).await?;
            sqlx::query(q::DELETE_CODES_OF_GRANT).bind(grant_id).execute(&mut **tx).await?;
        }
        sqlx::query(q::DELETE_SESSION_GRANTS).bind(&sid).execute(&mut **tx).await?;
        sqlx::query(q::DELETE_SESSION_BY_SID).bind(&sid).execute(&mut **tx).await?;
        ended.push(EndedSession { sid, user_id, clients });
    }
    Ok(ended)
}

fn notification_from_row(r: &PgRow) -> StoreResult<LogoutNotification> {
    let attempts: i64 = r.try_get("attempts")?;
    Ok(LogoutNotification {
        id: r.try_get("id")?,
        client_id: parse("logout_notifications.client_id", r.try_get("client_id")?)?,
        user_id: r.try_get("user_id")?,
        sid: r.try_get("sid")?,
        created_at: r.try_get("created_at")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        give_up_at: r.try_get("give_up_at")?,
        failed_at: r.try_get("failed_at")?,
        last_error: r.try_get("last_error")?,
    })
}

#[async_trait]
impl SessionStore for PgStore {
    async fn start_session(&self, start: &SessionStart<'_>) -> StoreResult<Vec<EndedSession>> {
        crate::telemetry::timed("start_session", async move {
            let s = start.session;
            let mut tx = self.pool.begin().await?;
            let mut ended = Vec::new();
            match start.replaced {
                // The same session, re-authenticated under a new cookie id.
                Some(old) if old.sid == s.sid => {
                    sqlx::query(q::DELETE_SESSION).bind(&old.id_hash).execute(&mut *tx).await?;
                }
                Some(old) => ended = end_sessions(&mut tx, SessionsToEnd::IdHash(&old.id_hash), start.logout).await?,
                None => {}
            }
            sqlx::query(q::INSERT_SESSION)
                .bind(&s.id_hash)
                .bind(&s.sid)
                .bind(&s.user_id)
                .bind(s.auth_time)
                .bind(to_json(&s.amr))
                .bind(&s.acr)
                .bind(s.expires_at)
                .bind(&s.device.ip)
                .bind(&s.device.user_agent)
                .execute(&mut *tx)
                .await?;
            if let Some(pending_id) = start.pending_id {
                sqlx::query(q::SET_PENDING_LOGIN).bind(&s.sid).bind(pending_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(ended)
        })
        .await
    }

    async fn session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<BrowserSession>> {
        let found = crate::telemetry::timed("session", self.sessions.call(id_hash.to_owned())).await?;
        Ok(found.filter(|s| s.expires_at > now))
    }

    async fn sessions(&self, user_id: Option<&str>, now: Timestamp, limit: u32) -> StoreResult<Vec<BrowserSession>> {
        crate::telemetry::timed("sessions", async move {
            let rows =
                sqlx::query(q::SESSIONS).bind(now).bind(user_id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
            rows.iter().map(session_from_row).collect()
        })
        .await
    }

    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<ClientId>> {
        crate::telemetry::timed("session_clients", async move {
            let clients: Vec<String> = sqlx::query_scalar(q::SESSION_CLIENTS).bind(sid).fetch_all(&self.pool).await?;
            clients.iter().map(|c| parse("session_grants.client_id", c)).collect()
        })
        .await
    }

    async fn end_sessions(&self, which: SessionsToEnd<'_>, logout: Logout) -> StoreResult<Vec<EndedSession>> {
        crate::telemetry::timed("end_sessions", async move {
            let mut tx = self.pool.begin().await?;
            let ended = end_sessions(&mut tx, which, logout).await?;
            tx.commit().await?;
            Ok(ended)
        })
        .await
    }
}

#[async_trait]
impl LogoutOutbox for PgStore {
    async fn claim_logout_notifications(
        &self,
        now: Timestamp,
        lease: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutNotification>> {
        crate::telemetry::timed("claim_logout_notifications", async move {
            let rows = sqlx::query(q::CLAIM_LOGOUT_NOTIFICATIONS_PG)
                .bind(now)
                .bind(lease)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(notification_from_row).collect()
        })
        .await
    }

    async fn delete_logout_notification(&self, id: i64) -> StoreResult<()> {
        crate::telemetry::timed("delete_logout_notification", async move {
            sqlx::query(q::DELETE_LOGOUT_NOTIFICATION).bind(id).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn logout_notification_failed(
        &self,
        id: i64,
        retry_at: Option<Timestamp>,
        now: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        crate::telemetry::timed("logout_notification_failed", async move {
            let query = match retry_at {
                Some(at) => sqlx::query(q::RETRY_LOGOUT_NOTIFICATION).bind(at),
                None => sqlx::query(q::GIVE_UP_LOGOUT_NOTIFICATION).bind(now),
            };
            query.bind(error).bind(id).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn logout_notifications(&self, undeliverable_only: bool, limit: u32) -> StoreResult<Vec<LogoutNotification>> {
        crate::telemetry::timed("logout_notifications", async move {
            let rows = sqlx::query(q::LOGOUT_NOTIFICATIONS)
                .bind(undeliverable_only)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(notification_from_row).collect()
        })
        .await
    }
}

#[async_trait]
impl InteractionStore for PgStore {
    async fn insert_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        crate::telemetry::timed("insert_pending", async move {
            sqlx::query(q::INSERT_PENDING)
                .bind(&p.id)
                .bind(p.client_id.as_str())
                .bind(&p.request_json)
                .bind(p.created_at)
                .bind(p.expires_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn pending(&self, id: &str, now: Timestamp) -> StoreResult<Option<PendingAuthorization>> {
        crate::telemetry::timed("pending", async move {
            let row = sqlx::query(q::PENDING).bind(id).bind(now).fetch_optional(&self.pool).await?;
            row.map(|r| {
                Ok(PendingAuthorization {
                    id: r.try_get("id")?,
                    client_id: parse("pending.client_id", r.try_get("client_id")?)?,
                    request_json: r.try_get("request_json")?,
                    login_sid: r.try_get("login_sid")?,
                    chosen_sid: r.try_get("chosen_sid")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_pending(&self, id: &str) -> StoreResult<()> {
        crate::telemetry::timed("delete_pending", async move {
            sqlx::query(q::DELETE_PENDING).bind(id).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn choose_account(&self, id: &str, sid: &str) -> StoreResult<()> {
        crate::telemetry::timed("choose_account", async move {
            sqlx::query(q::SET_PENDING_CHOICE).bind(sid).bind(id).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn push_request(
        &self,
        uri_hash: &str,
        client_id: &ClientId,
        params_json: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        crate::telemetry::timed("push_request", async move {
            sqlx::query(q::INSERT_PUSHED_REQUEST)
                .bind(uri_hash)
                .bind(client_id.as_str())
                .bind(params_json)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn take_pushed_request(&self, uri_hash: &str, now: Timestamp) -> StoreResult<Option<(ClientId, String)>> {
        crate::telemetry::timed("take_pushed_request", async move {
            let row: Option<(String, String)> =
                sqlx::query_as(q::TAKE_PUSHED_REQUEST).bind(uri_hash).bind(now).fetch_optional(&self.pool).await?;
            row.map(|(client_id, params)| Ok((parse("pushed_authorization_requests.client_id", &client_id)?, params)))
                .transpose()
        })
        .await
    }
}

#[async_trait]
impl ConsentStore for PgStore {
    async fn consent(&self, user_id: &str, client_id: &ClientId) -> StoreResult<Option<Consent>> {
        crate::telemetry::timed("consent", async move {
            let row: Option<(String, String)> =
                sqlx::query_as(q::CONSENT).bind(user_id).bind(client_id.as_str()).fetch_optional(&self.pool).await?;
            row.map(|(scope, claims)| {
                Ok(Consent { scope: parse("consents.scope", &scope)?, claims: from_json("consents.claims", &claims)? })
            })
            .transpose()
        })
        .await
    }

    async fn consented_apps(&self, user_id: &str) -> StoreResult<Vec<ConsentedApp>> {
        crate::telemetry::timed("consented_apps", async move {
            let rows: Vec<(String, String, String, String, i64)> =
                sqlx::query_as(q::CONSENTED_APPS).bind(user_id).fetch_all(&self.pool).await?;
            rows.into_iter()
                .map(|(client_id, client_name, scope, claims, granted_at)| {
                    Ok(ConsentedApp {
                        client_id: parse("consents.client_id", &client_id)?,
                        client_name,
                        consent: Consent {
                            scope: parse("consents.scope", &scope)?,
                            claims: from_json("consents.claims", &claims)?,
                        },
                        granted_at,
                    })
                })
                .collect()
        })
        .await
    }

    async fn revoke_app(&self, user_id: &str, client_id: &ClientId) -> StoreResult<bool> {
        crate::telemetry::timed("revoke_app", async move {
            let mut tx = self.pool.begin().await?;
            let grants: Vec<(String,)> =
                sqlx::query_as(q::GRANTS_TO_CLIENT).bind(user_id).bind(client_id.as_str()).fetch_all(&mut *tx).await?;
            for (grant_id,) in &grants {
                // Under the grant's lock, as every revocation (a token being issued meanwhile is refused).
                sqlx::query(q::LOCK_GRANT).bind(grant_id).execute(&mut *tx).await?;
                revoke(&mut tx, grant_id).await?;
                sqlx::query(q::DELETE_CODES_OF_GRANT).bind(grant_id).execute(&mut *tx).await?;
            }
            sqlx::query(q::DELETE_SESSION_GRANTS_TO_CLIENT)
                .bind(user_id)
                .bind(client_id.as_str())
                .execute(&mut *tx)
                .await?;
            let consented = sqlx::query(q::DELETE_CONSENT)
                .bind(user_id)
                .bind(client_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(consented || !grants.is_empty())
        })
        .await
    }
}

fn refresh_from_row(r: &PgRow) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        client_id: parse("refresh_tokens.client_id", r.try_get("client_id")?)?,
        user_id: r.try_get("user_id")?,
        scope: parse("refresh_tokens.scope", r.try_get("scope")?)?,
        grant_id: r.try_get("grant_id")?,
        auth: Authentication {
            auth_time: r.try_get("auth_time")?,
            amr: from_json("refresh_tokens.amr", r.try_get("amr")?)?,
            acr: r.try_get("acr")?,
            sid: r.try_get("sid")?,
        },
        expires_at: r.try_get("expires_at")?,
        claims: optional_json("refresh_tokens.claims", r.try_get("claims")?)?,
        jkt: r.try_get("jkt")?,
        resources: optional_json("refresh_tokens.resources", r.try_get("resources")?)?.unwrap_or_default(),
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Revokes a grant inside the caller's transaction, which holds the grant's lock.
async fn revoke(tx: &mut Tx, grant_id: &str) -> StoreResult<()> {
    sqlx::query(q::REVOKE_GRANT_1).bind(grant_id).bind(now()).execute(&mut **tx).await?;
    for sql in [q::REVOKE_GRANT_2, q::REVOKE_GRANT_3] {
        sqlx::query(sql).bind(grant_id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// An `access_tokens` row (the columns of `ACCESS_TOKENS_PG`, by name).
pub(super) fn access_token_of(r: &sqlx::postgres::PgRow) -> StoreResult<AccessToken> {
    Ok(AccessToken {
        client_id: parse("access_tokens.client_id", r.try_get("client_id")?)?,
        user_id: r.try_get("user_id")?,
        scope: parse("access_tokens.scope", r.try_get("scope")?)?,
        grant_id: r.try_get("grant_id")?,
        expires_at: r.try_get("expires_at")?,
        claims: optional_json("access_tokens.claims", r.try_get("claims")?)?,
        jkt: r.try_get("jkt")?,
        audience: optional_json("access_tokens.audience", r.try_get("audience")?)?.unwrap_or_default(),
        issued_at: r.try_get("issued_at")?,
    })
}

type SpendAndIssue<'a> = sqlx::query::QueryScalar<'a, sqlx::Postgres, i64, sqlx::postgres::PgArguments>;

/// One statement that spends `spent` and stores `tokens` (`q::SPEND_AND_ISSUE_PG`), bound.
fn spend_and_issue<'a>(spent: Option<Spent<'a>>, tokens: &'a NewTokens<'a>) -> SpendAndIssue<'a> {
    let (kind, hash, client_id, now) = match spent {
        Some(Spent::Code(hash)) => ("code", Some(hash), None, None),
        Some(Spent::RefreshToken { hash, client_id, now }) => ("refresh_token", Some(hash), Some(client_id), Some(now)),
        Some(Spent::Decoupled(hash)) => ("decoupled", Some(hash), None, None),
        None => ("none", None, None, None),
    };
    let ((access_hash, a), refresh) = (tokens.access, tokens.refresh);
    let r = refresh.map(|(_, r)| r);
    sqlx::query_scalar(q::SPEND_AND_ISSUE_PG)
        .bind(kind)
        .bind(hash)
        .bind(client_id.map(ClientId::as_str))
        .bind(now)
        .bind(access_hash)
        .bind(a.client_id.as_str())
        .bind(&a.user_id)
        .bind(a.scope.to_string())
        .bind(&a.grant_id)
        .bind(a.expires_at)
        .bind(a.claims.as_ref().map(to_json))
        .bind(&a.jkt)
        .bind((!a.audience.is_empty()).then(|| to_json(&a.audience)))
        .bind(a.issued_at)
        .bind(refresh.map(|(hash, _)| hash))
        .bind(r.map(|r| r.client_id.as_str()))
        .bind(r.map(|r| r.user_id.as_str()))
        .bind(r.map(|r| r.scope.to_string()))
        .bind(r.map(|r| r.grant_id.as_str()))
        .bind(r.map(|r| r.auth.auth_time))
        .bind(r.map(|r| to_json(&r.auth.amr)))
        .bind(r.map(|r| r.auth.acr.as_str()))
        .bind(r.map(|r| r.auth.sid.as_str()))
        .bind(r.map(|r| r.expires_at))
        .bind(r.and_then(|r| r.claims.as_ref()).map(to_json))
        .bind(r.and_then(|r| r.jkt.as_deref()))
        .bind(r.filter(|r| !r.resources.is_empty()).map(|r| to_json(&r.resources)))
}

/// After nothing live was spent: the grant of a code or refresh token that was spent before (a replay,
/// RFC 9700 4.14.2), or None (unknown, expired, or a decoupled authorization's lost race).
async fn replayed_grant(tx: &mut Tx, spent: Option<Spent<'_>>) -> StoreResult<Option<String>> {
    Ok(match spent {
        Some(Spent::Code(hash)) => sqlx::query_scalar(q::CODE_GRANT).bind(hash).fetch_optional(&mut **tx).await?,
        Some(Spent::RefreshToken { hash, client_id, .. }) => {
            let grant = sqlx::query_scalar(q::SPENT_REFRESH_TOKEN_GRANT).bind(hash).bind(client_id.as_str());
            grant.fetch_optional(&mut **tx).await?
        }
        Some(Spent::Decoupled(_)) | None => None,
    })
}

#[async_trait]
impl GrantStore for PgStore {
    async fn approve(&self, a: &Approval<'_>) -> StoreResult<()> {
        crate::telemetry::timed("approve", async move {
            let g = a.session;
            // The usual case, a signed-in user's code and nothing else: one statement, one round trip.
            if let (Some((hash, grant)), None, None, None) = (a.code, a.consent, a.pending_id, a.access_token) {
                sqlx::query(q::INSERT_CODE_WITH_SESSION_GRANT_PG)
                    .bind(g.grant_id)
                    .bind(g.sid)
                    .bind(a.client_id.as_str())
                    .bind(g.offline)
                    .bind(hash)
                    .bind(to_json(grant))
                    .bind(grant.expires_at)
                    .execute(&self.pool)
                    .await?;
                return Ok(());
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query(q::INSERT_SESSION_GRANT)
                .bind(g.grant_id)
                .bind(g.sid)
                .bind(a.client_id.as_str())
                .bind(g.offline)
                .execute(&mut *tx)
                .await?;
            if let Some(c) = a.consent {
                sqlx::query(q::SAVE_CONSENT)
                    .bind(a.user_id)
                    .bind(a.client_id.as_str())
                    .bind(c.scope.to_string())
                    .bind(now())
                    .bind(to_json(&c.claims))
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(id) = a.pending_id {
                sqlx::query(q::DELETE_PENDING).bind(id).execute(&mut *tx).await?;
            }
            if let Some((hash, grant)) = a.code {
                sqlx::query(q::INSERT_CODE)
                    .bind(hash)
                    .bind(&grant.grant_id)
                    .bind(to_json(grant))
                    .bind(grant.expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(access) = a.access_token {
                spend_and_issue(None, &NewTokens { access, refresh: None }).fetch_one(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn code(&self, code_hash: &str) -> StoreResult<Lookup<CodeGrant>> {
        Ok(match crate::telemetry::timed("code", self.codes.call(code_hash.to_owned())).await? {
            Some((grant, true)) => Lookup::Spent { grant_id: grant.grant_id },
            Some((grant, false)) => Lookup::Live(Box::new(grant)),
            None => Lookup::Unknown,
        })
    }

    async fn refresh_token(
        &self,
        refresh_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
    ) -> StoreResult<Lookup<RefreshToken>> {
        let found = crate::telemetry::timed("refresh_token", self.refresh_tokens.call(refresh_hash.to_owned())).await?;
        // Another client's token is unknown to this one.
        Ok(match found.filter(|(token, _)| token.client_id == *client_id) {
            Some((token, true)) => Lookup::Spent { grant_id: token.grant_id },
            Some((token, false)) if token.expires_at > now => Lookup::Live(Box::new(token)),
            _ => Lookup::Unknown,
        })
    }

    async fn issue_tokens(&self, spent: Option<Spent<'_>>, tokens: &NewTokens<'_>) -> StoreResult<Issuance> {
        crate::telemetry::timed("issue_tokens", async move {
            let (access_hash, access) = tokens.access;
            if spent.is_none() && tokens.refresh.is_none() {
                // A lone token (client_credentials, token exchange): inserted with the others in flight.
                let inserted = self.lone_access_tokens.call((access_hash.to_owned(), access.clone())).await?;
                return Ok(if inserted { Issuance::Issued } else { Issuance::Revoked });
            }
            // The grant's lock first, then what is spent (the same order as revocation, so the two never
            // wait on each other in a cycle), in one round trip. A grant revoked meanwhile commits
            // nothing: what was spent stays as it was.
            let spent_rows = match spend_and_issue(spent, tokens).fetch_one(&self.pool).await {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(q::GRANT_REVOKED_PG) => {
                    return Ok(Issuance::Revoked);
                }
                done => done?,
            };
            if spent_rows > 0 {
                return Ok(Issuance::Issued);
            }
            // Nothing live was spent: a replay revokes its grant, under the grant's lock.
            let mut tx = match &access.grant_id {
                Some(grant_id) => self.begin_locked(grant_id).await?,
                None => self.pool.begin().await?,
            };
            match replayed_grant(&mut tx, spent).await? {
                Some(grant_id) => {
                    revoke(&mut tx, &grant_id).await?;
                    tx.commit().await?;
                    Ok(Issuance::Replayed)
                }
                None => Ok(Issuance::Unknown),
            }
        })
        .await
    }

    async fn access_token(&self, access_hash: &str, now: Timestamp) -> StoreResult<Option<AccessToken>> {
        let found = crate::telemetry::timed("access_token", self.access_tokens.call(access_hash.to_owned())).await?;
        Ok(found.filter(|t| t.expires_at > now))
    }

    async fn delete_access_token(&self, access_hash: &str) -> StoreResult<()> {
        crate::telemetry::timed("delete_access_token", async move {
            sqlx::query(q::DELETE_ACCESS_TOKEN).bind(access_hash).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()> {
        crate::telemetry::timed("revoke_grant", async move {
            let mut tx = self.begin_locked(grant_id).await?;
            revoke(&mut tx, grant_id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        crate::telemetry::timed("signing_keys", async move {
            let rows = sqlx::query(q::SIGNING_KEYS).fetch_all(&self.pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(SigningKey {
                        kid: r.try_get("kid")?,
                        alg: parse("signing_keys.alg", r.try_get("alg")?)?,
                        private_jwk: r.try_get("private_jwk")?,
                        public_jwk: r.try_get("public_jwk")?,
                        created_at: r.try_get("created_at")?,
                        retired_at: r.try_get("retired_at")?,
                        activates_at: r.try_get("activates_at")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn install_signing_key(&self, key: &SigningKey, succession: KeySuccession<'_>) -> StoreResult<bool> {
        crate::telemetry::timed("install_signing_key", async move {
            let mut tx = self.pool.begin().await?;
            let retire = match succession {
                KeySuccession::First => None,
                KeySuccession::Current => {
                    Some(sqlx::query(q::RETIRE_CURRENT_KEY).bind(key.activates_at).bind(key.alg.as_str()))
                }
                KeySuccession::Key(kid) => Some(sqlx::query(q::RETIRE_KEY).bind(key.activates_at).bind(kid)),
            };
            if let Some(retire) = retire {
                let retired = retire.execute(&mut *tx).await?.rows_affected();
                if retired == 0 && matches!(succession, KeySuccession::Key(_)) {
                    return Ok(false);
                }
            }
            let inserted = sqlx::query(q::INSERT_SIGNING_KEY)
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(&key.private_jwk)
                .bind(&key.public_jwk)
                .bind(key.created_at)
                .bind(key.activates_at)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    Ok(true)
                }
                // The unique index on current keys: another node installed one first.
                Err(e) if matches!(succession, KeySuccession::First) && unique_violation(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn delete_keys_retired_before(&self, before: Timestamp) -> StoreResult<u64> {
        crate::telemetry::timed("delete_keys_retired_before", async move {
            let done = sqlx::query(q::DELETE_KEYS_RETIRED_BEFORE).bind(before).execute(&self.pool).await?;
            Ok(done.rows_affected())
        })
        .await
    }
}

#[async_trait]
impl ReplayStore for PgStore {
    async fn first_use(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<bool> {
        crate::telemetry::timed("first_use", async move {
            let done = sqlx::query(q::FIRST_USE).bind(key).bind(expires_at).bind(now).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}

#[async_trait]
impl ThrottleStore for PgStore {
    async fn reserve_attempt(&self, key: &str, now: Timestamp, window: i64, limit: u32) -> StoreResult<bool> {
        crate::telemetry::timed("reserve_attempt", async move {
            // ON CONFLICT DO UPDATE locks the row, so concurrent reservations on any node take turns.
            let counted: Option<i64> = sqlx::query_scalar(q::RESERVE_ATTEMPT)
                .bind(key)
                .bind(now)
                .bind(window)
                .bind(i64::from(limit))
                .fetch_optional(&self.pool)
                .await?;
            Ok(counted.is_some())
        })
        .await
    }

    async fn release_attempt(&self, key: &str) -> StoreResult<()> {
        crate::telemetry::timed("release_attempt", async move {
            sqlx::query(q::RELEASE_ATTEMPT).bind(key).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn clear_attempts(&self, key: &str) -> StoreResult<()> {
        crate::telemetry::timed("clear_attempts", async move {
            sqlx::query(q::CLEAR_ATTEMPTS).bind(key).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl SecretStore for PgStore {
    async fn secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        crate::telemetry::timed("secret", async move {
            sqlx::query(q::INSERT_SECRET).bind(name).bind(candidate).execute(&self.pool).await?;
            Ok(sqlx::query_scalar(q::SECRET).bind(name).fetch_one(&self.pool).await?)
        })
        .await
    }

    async fn existing_secret(&self, name: &str) -> StoreResult<Option<String>> {
        crate::telemetry::timed("existing_secret", async move {
            Ok(sqlx::query_scalar(q::SECRET).bind(name).fetch_optional(&self.pool).await?)
        })
        .await
    }

    async fn replace_secret(&self, name: &str, value: &str) -> StoreResult<()> {
        crate::telemetry::timed("replace_secret", async move {
            sqlx::query(q::REPLACE_SECRET).bind(name).bind(value).execute(&self.pool).await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit_event(&self, e: &AuditEvent) -> StoreResult<()> {
        crate::telemetry::timed("record_audit_event", async move {
            sqlx::query(q::INSERT_AUDIT_EVENT)
                .bind(e.at)
                .bind(e.kind.as_str())
                .bind(&e.user_id)
                .bind(&e.username)
                .bind(&e.client_id)
                .bind(&e.ip)
                .bind(&e.detail)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn audit_events(
        &self,
        user: Option<AuditedUser<'_>>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let (username, user_id) = (user.map(|u| u.username), user.and_then(|u| u.user_id));
        crate::telemetry::timed("audit_events", async move {
            let rows = sqlx::query(q::AUDIT_EVENTS)
                .bind(since)
                .bind(username)
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    let kind: String = r.try_get("kind")?;
                    Ok(AuditEvent {
                        at: r.try_get("at")?,
                        kind: AuditKind::parse(&kind).ok_or(StoreError::Corrupt(kind))?,
                        user_id: r.try_get("user_id")?,
                        username: r.try_get("username")?,
                        client_id: r.try_get("client_id")?,
                        ip: r.try_get("ip")?,
                        detail: r.try_get("detail")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64> {
        crate::telemetry::timed("delete_audit_events_before", async move {
            Ok(sqlx::query(q::DELETE_AUDIT_EVENTS_BEFORE).bind(before).execute(&self.pool).await?.rows_affected())
        })
        .await
    }
}

#[async_trait]
impl SweepStore for PgStore {
    async fn sweep(&self, cutoffs: SweepCutoffs, batch: u32) -> StoreResult<Vec<(&'static str, u64)>> {
        crate::telemetry::timed("sweep", async move {
            let mut deleted = Vec::new();
            for (table, sql) in q::sweep_statements() {
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(cutoffs.of(table))
                    .bind(i64::from(batch))
                    .execute(&self.pool)
                    .await?;
                deleted.push((table, done.rows_affected()));
            }
            Ok(deleted)
        })
        .await
    }

    async fn compact(&self) -> StoreResult<()> {
        // PostgreSQL's autovacuum reclaims deleted rows.
        Ok(())
    }

    async fn stats(&self) -> StoreResult<(Vec<(&'static str, i64)>, i64)> {
        crate::telemetry::timed("stats", async move {
            let mut counts = Vec::new();
            for table in q::COUNTED_TABLES {
                let sql = format!("SELECT COUNT(*) FROM {table}");
                counts.push((table, sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await?));
            }
            let size = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&self.pool).await?;
            Ok((counts, size))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgConnection;
    use sqlx::{Connection, Executor};

    /// A new database on the server `TEST_POSTGRES_URL` names, as `scripts/test`'s PostgreSQL pass
    /// arranges; None without one (the SQLite pass).
    async fn test_database() -> Option<String> {
        let admin_url = std::env::var("TEST_POSTGRES_URL").ok()?;
        let name = format!("oxid_store_test_{}", crate::crypto::ordered_token().to_lowercase().replace(['-', '_'], ""));
        let mut admin = PgConnection::connect(&admin_url).await.expect("the test PostgreSQL server is reachable");
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        let (server, _) = admin_url.rsplit_once('/').expect("a URL with a database");
        Some(format!("{server}/{name}"))
    }

    /// `begin_locked` spells an id of oxid's alphabet into its statement and binds any other: both must
    /// take the very lock `q::LOCK_GRANT` takes, which revocations hold, and a quote stays data.
    #[tokio::test]
    async fn a_grant_lock_is_one_lock_however_it_is_spelled() {
        let Some(url) = test_database().await else { return };
        let store = PgStore::open(&url, 2).await.unwrap();
        let mut other = PgConnection::connect(&url).await.unwrap();
        let try_lock = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))";
        for grant_id in [crate::crypto::ordered_token(), "it's -- not; ours".to_owned()] {
            let tx = store.begin_locked(&grant_id).await.unwrap();
            let free: bool = sqlx::query_scalar(try_lock).bind(&grant_id).fetch_one(&mut other).await.unwrap();
            assert!(!free, "{grant_id:?} is locked while its transaction is open");
            tx.rollback().await.unwrap();
            let free: bool = sqlx::query_scalar(try_lock).bind(&grant_id).fetch_one(&mut other).await.unwrap();
            assert!(free, "{grant_id:?} is free once the transaction ended");
        }
    }

    /// A code exchanged while its grant is revoked (its replay elsewhere, RFC 6749 4.1.2): the exchange,
    /// one round trip (migration 0020), waits for the revocation's lock and then commits nothing: no
    /// token is stored and the code stays as it was.
    #[tokio::test]
    async fn an_exchange_behind_a_revocation_commits_nothing() {
        let Some(url) = test_database().await else { return };
        let store = std::sync::Arc::new(PgStore::open(&url, 2).await.unwrap());
        let mut other = PgConnection::connect(&url).await.unwrap();
        other
            .execute(
                "INSERT INTO clients (id, name, redirect_uris, grant_types, auth_method, id_token_signed_response_alg, \
                 skip_consent, created_at) VALUES ('c', 'C', '[]', '[]', 'none', 'RS256', FALSE, 0); \
                 INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES ('u', 'u', '-', 0, 0); \
                 INSERT INTO authorization_codes (code_hash, grant_id, grant_json, expires_at) VALUES ('k', 'g', '{}', 0)",
            )
            .await
            .unwrap();
        let mut revocation = store.begin_locked("g").await.unwrap();
        revoke(&mut revocation, "g").await.unwrap();
        let exchange = tokio::spawn({
            let store = std::sync::Arc::clone(&store);
            async move {
                let client_id: ClientId = "c".parse().unwrap();
                let access = AccessToken {
                    client_id: client_id.clone(),
                    user_id: Some("u".into()),
                    scope: crate::model::ScopeSet::parse("openid").unwrap(),
                    grant_id: Some("g".into()),
                    expires_at: 9_999_999_999,
                    claims: None,
                    jkt: None,
                    audience: Vec::new(),
                    issued_at: Some(0),
                };
                store.issue_tokens(Some(Spent::Code("k")), &NewTokens { access: ("a", &access), refresh: None }).await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!exchange.is_finished(), "the exchange waits for the revocation's lock");
        revocation.commit().await.unwrap();
        assert!(matches!(exchange.await.unwrap(), Ok(Issuance::Revoked)));
        let count = |sql| sqlx::query_scalar::<_, i64>(sql);
        assert_eq!(count("SELECT count(*) FROM access_tokens").fetch_one(&mut other).await.unwrap(), 0);
        let used = "SELECT count(*) FROM authorization_codes WHERE used";
        assert_eq!(count(used).fetch_one(&mut other).await.unwrap(), 0, "what was spent stays as it was");
    }
}
