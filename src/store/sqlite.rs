//! The embedded default backend: one SQLite file in WAL mode, queried in place.
//!
//! Statements run synchronously on the calling task (through rusqlite, with cached statements): on a
//! local file they take microseconds, and running them in place avoids the hand-off to a per-connection
//! worker thread that an async driver needs, which dominated request cost on a single core (two
//! context switches per statement). Writes go through one connection, as SQLite allows one writer.
//!
//! Group commit: the grants' writes (codes, tokens, sessions, one-time values) join an open group
//! transaction, each inside its own savepoint, and wait for its commit; the group commits once a turn
//! of the ready tasks adds no member (or after `GROUP_WINDOW`). So concurrent requests share one
//! commit (one WAL append and one round of file locks) instead of paying one each, and nothing is
//! acknowledged before it is committed. Other writes (administration, sweeping) commit the open group
//! first and then run their own transactions, as before.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::de::DeserializeOwned;

use super::queries as q;
use super::to_json;
use super::*;
use crate::model::{
    AuditKind, Authentication, ClientId, DecoupledAuthorization, DecoupledPoll, Device, InitialAccessToken,
    StoredPasskey, UserDecision, now,
};
use crate::telemetry::timed_sync;

/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 16;

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Writer>>,
    readers: Mutex<Vec<Connection>>,
}

/// How the members of a group transaction learn its outcome: `None` while it is open.
type GroupOutcome = Option<Result<(), Arc<str>>>;

/// The one write connection and its open group transaction, if any.
struct Writer {
    conn: Connection,
    group: Option<tokio::sync::watch::Sender<GroupOutcome>>,
}

impl Writer {
    /// Joins the open group transaction, or begins one (true: the caller must see that it commits).
    fn join_group(&mut self) -> rusqlite::Result<(bool, tokio::sync::watch::Receiver<GroupOutcome>)> {
        if let Some(group) = &self.group {
            return Ok((false, group.subscribe()));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let (group, members) = tokio::sync::watch::channel(None);
        self.group = Some(group);
        Ok((true, members))
    }

    /// Commits the open group transaction, if any, and tells its members.
    fn commit_group(&mut self) {
        let Some(group) = self.group.take() else { return };
        let outcome = match self.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(Arc::from(e.to_string()))
            }
        };
        group.send_replace(Some(outcome));
    }

    /// After a failed statement: if SQLite rolled the whole transaction back (as it does on some
    /// errors, e.g. a full disk), the group is over and its members are told it failed.
    fn abandon_group_if_rolled_back(&mut self) {
        if self.conn.is_autocommit() {
            if let Some(group) = self.group.take() {
                group.send_replace(Some(Err(Arc::from("the group transaction was rolled back"))));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The longest a group transaction stays open for more members to join.
const GROUP_WINDOW: Duration = Duration::from_millis(2);

/// How long a statement waits for a lock another connection (or process) holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoints (one per member of a group transaction) keep the pages they change in a sub-journal;
    // in memory, not a temporary file written on every change. It lives only until the group commits.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the embedded migrations. A new file
    /// and its directory are made readable by the owner only: they hold private signing keys.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Io(format!("cannot create the directory {}: {e}", dir.display())))?;
                restrict_permissions(dir, 0o700);
            }
        }
        let mut writer = connect(path)?;
        // Every write transaction takes the write lock at BEGIN, waiting its turn (busy_timeout). A
        // deferred one that reads first would have to upgrade its snapshot, and fails at once with
        // SQLITE_BUSY if another process (a second node, the CLI) committed in between.
        writer.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        restrict_permissions(path, 0o600);
        migrate(path).await?;
        compact_access_token_keys(&mut writer)?;
        let writer = Arc::new(Mutex::new(Writer { conn: writer, group: None }));
        Ok(Self { path: path.to_owned(), writer, readers: Mutex::new(Vec::new()) })
    }

    fn read<T>(&self, op: &'static str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        timed_sync(op, || {
            let conn = match lock(&self.readers).pop() {
                Some(c) => c,
                None => connect(&self.path)?,
            };
            let out = f(&conn);
            let mut idle = lock(&self.readers);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            Ok(out?)
        })
    }

    /// A write in its own transaction(s), after committing the open group: `f` begins and commits them.
    fn write<T>(&self, op: &'static str, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        timed_sync(op, || {
            let mut writer = lock(&self.writer);
            writer.commit_group();
            f(&mut writer.conn)
        })
    }

    /// A write that joins the group transaction; returns once the group has committed. `f` runs inside
    /// the group's transaction: a single statement as is, several inside a savepoint `f` opens, so a
    /// failure undoes only its own part.
    async fn write_grouped<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let (out, mut outcome) = timed_sync(op, || {
            let mut writer = lock(&self.writer);
            let (opened, outcome) = writer.join_group()?;
            if opened {
                let writer = Arc::clone(&self.writer);
                tokio::spawn(async move {
                    // Let the tasks that are ready run first, as long as they keep joining: under load the
                    // group then spans the requests in flight (each commit writes every page its members
                    // changed, so most of a commit's cost is shared), and an idle server commits after two
                    // turns. The window is bounded so that no member waits long.
                    let opened_at = std::time::Instant::now();
                    let mut members = 0;
                    loop {
                        let joined = lock(&writer).group.as_ref().map_or(0, |g| g.receiver_count());
                        if joined == members || opened_at.elapsed() >= GROUP_WINDOW {
                            break;
                        }
                        members = joined;
                        tokio::task::yield_now().await;
                    }
                    lock(&writer).commit_group();
                });
            }
            let out = f(&mut writer.conn);
            if out.is_err() {
                writer.abandon_group_if_rolled_back();
            }
            Ok::<_, StoreError>((out?, outcome))
        })?;
        let committed = outcome.wait_for(Option::is_some).await.map(|o| o.clone());
        match committed {
            Ok(Some(Ok(()))) => Ok(out),
            Ok(Some(Err(e))) => Err(StoreError::Io(format!("database error: commit failed: {e}"))),
            // The sender is dropped only with the store itself.
            Ok(None) | Err(_) => Err(StoreError::Io("database error: the store closed before commit".into())),
        }
    }
}

/// The migrations are sqlx's (shared tracking table and tooling with the PostgreSQL backend), applied
/// through a short-lived sqlx connection.
async fn migrate(path: &Path) -> StoreResult<()> {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(5));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::migrate!("migrations/sqlite").run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "could not restrict permissions");
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path, _mode: u32) {}

fn conversion(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

/// A text column parsed into a protocol type.
fn parsed<T: FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    row.get::<_, String>(idx)?.parse().map_err(|e| conversion(idx, e))
}

/// A JSON text column.
fn json<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    serde_json::from_str(&row.get::<_, String>(idx)?).map_err(|e| conversion(idx, e))
}

/// A nullable JSON text column.
fn optional_json<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(idx)? {
        Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| conversion(idx, e)),
        None => Ok(None),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn client_from_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    Ok(Client {
        id: parsed(r, 0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        secret_for_jwt: r.get(3)?,
        redirect_uris: json(r, 4)?,
        grant_types: json(r, 5)?,
        auth_method: parsed(r, 6)?,
        id_token_signed_response_alg: parsed(r, 7)?,
        jwks: r.get(8)?,
        skip_consent: r.get(9)?,
        created_at: r.get(10)?,
        metadata: json(r, 11)?,
    })
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        email: r.get(3)?,
        email_verified: r.get(4)?,
        name: r.get(5)?,
        given_name: r.get(6)?,
        family_name: r.get(7)?,
        phone_number: r.get(8)?,
        phone_number_verified: r.get(9)?,
        address: r.get(10)?,
        disabled: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        claims: json(r, 14)?,
    })
}

fn refresh_from_row(r: &Row<'_>) -> rusqlite::Result<RefreshToken> {
    Ok(RefreshToken {
        client_id: parsed(r, 0)?,
        user_id: r.get(1)?,
        scope: parsed(r, 2)?,
        grant_id: r.get(3)?,
        auth: Authentication { auth_time: r.get(4)?, amr: json(r, 5)?, acr: r.get(6)?, sid: r.get(7)? },
        expires_at: r.get(8)?,
        claims: optional_json(r, 9)?,
        jkt: r.get(11)?,
        resources: optional_json(r, 12)?.unwrap_or_default(),
    })
}

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<SigningKey> {
    Ok(SigningKey {
        kid: r.get(0)?,
        alg: parsed(r, 1)?,
        private_jwk: r.get(2)?,
        public_jwk: r.get(3)?,
        created_at: r.get(4)?,
        retired_at: r.get(5)?,
        activates_at: r.get(6)?,
    })
}

/// Runs `sql` with `args` on a cached statement; returns the number of rows changed.
fn exec(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(args)
}

fn conflict_or(e: rusqlite::Error) -> StoreError {
    if is_unique_violation(&e) { StoreError::Conflict } else { e.into() }
}

#[async_trait]
impl Health for SqliteStore {
    async fn check_write(&self) -> StoreResult<()> {
        self.write("check_write", |conn| Ok(exec(conn, q::RECORD_HEALTH_CHECK, [now()]).map(drop)?))
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        self.write("insert_client", |conn| save_client(conn, q::INSERT_CLIENT, c).map(drop).map_err(conflict_or))
    }

    async fn client(&self, id: &ClientId) -> StoreResult<Option<Client>> {
        self.read("client", |c| c.prepare_cached(q::CLIENT)?.query_row([id.as_str()], client_from_row).optional())
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        self.read("clients", |c| c.prepare_cached(q::CLIENTS)?.query_map([], client_from_row)?.collect())
    }

    async fn delete_client(&self, id: &ClientId) -> StoreResult<bool> {
        self.write("delete_client", |conn| {
            let tx = conn.transaction()?;
            for sql in [q::DELETE_CLIENT_1, q::DELETE_CLIENT_2, q::DELETE_CLIENT_3, q::DELETE_CLIENT_4] {
                exec(&tx, sql, [id.as_str()])?;
            }
            let done = exec(&tx, q::DELETE_CLIENT_5, [id.as_str()])?;
            tx.commit()?;
            Ok(done == 1)
        })
    }

    async fn set_client_secret(&self, id: &ClientId, hash: &str, for_jwt: Option<&str>) -> StoreResult<bool> {
        self.write("set_client_secret", |conn| {
            Ok(exec(conn, q::SET_CLIENT_SECRET, params![hash, for_jwt, id.as_str()])? == 1)
        })
    }
}

/// Writes a client with `sql` (an insert, or the replacing upsert), which binds every column in order.
fn save_client(conn: &Connection, sql: &str, c: &Client) -> rusqlite::Result<usize> {
    let args = params![
        c.id.as_str(),
        c.name,
        c.secret_hash,
        c.secret_for_jwt,
        to_json(&c.redirect_uris),
        to_json(&c.grant_types),
        c.auth_method.as_str(),
        c.id_token_signed_response_alg.as_str(),
        c.jwks,
        c.skip_consent,
        c.created_at,
        to_json(&c.metadata)
    ];
    exec(conn, sql, args)
}

fn decoupled_row(r: &Row<'_>) -> rusqlite::Result<DecoupledRow> {
    Ok(DecoupledRow {
        code_hash: r.get(0)?,
        user_code: r.get(1)?,
        client_id: r.get(2)?,
        scope: r.get(3)?,
        grant_id: r.get(4)?,
        expires_at: r.get(5)?,
        interval: r.get(6)?,
        status: r.get(7)?,
        user_id: r.get(8)?,
        auth: r.get(9)?,
        binding_message: r.get(10)?,
        notification_token: r.get(11)?,
        ping_auth_req_id: r.get(12)?,
    })
}

#[async_trait]
impl MfaStore for SqliteStore {
    async fn totp(&self, user_id: &str) -> StoreResult<Option<Totp>> {
        self.read("totp", |c| {
            c.prepare_cached(q::TOTP)?
                .query_row([user_id], |r| {
                    Ok(Totp {
                        secret: r.get(0)?,
                        confirmed: r.get::<_, Option<i64>>(1)?.is_some(),
                        last_step: r.get(2)?,
                    })
                })
                .optional()
        })
    }

    async fn begin_totp(&self, user_id: &str, secret: &str) -> StoreResult<bool> {
        self.write("begin_totp", |conn| Ok(exec(conn, q::BEGIN_TOTP, [user_id, secret])? == 1))
    }

    async fn use_totp_step(&self, user_id: &str, step: i64, now: Timestamp) -> StoreResult<bool> {
        self.write("use_totp_step", |conn| Ok(exec(conn, q::USE_TOTP_STEP, params![step, now, user_id])? == 1))
    }

    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()> {
        self.write("replace_recovery_codes", |conn| {
            let tx = conn.transaction()?;
            exec(&tx, q::DELETE_RECOVERY_CODES, [user_id])?;
            for hash in hashes {
                exec(&tx, q::INSERT_RECOVERY_CODE, [user_id, hash.as_str()])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn use_recovery_code(&self, user_id: &str, hash: &str) -> StoreResult<bool> {
        self.write("use_recovery_code", |conn| Ok(exec(conn, q::USE_RECOVERY_CODE, [user_id, hash])? == 1))
    }

    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<u32> {
        self.read("recovery_codes_left", |c| {
            c.prepare_cached(q::RECOVERY_CODES_LEFT)?.query_row([user_id], |r| r.get(0))
        })
    }

    async fn remove_second_factors(&self, user_id: &str, which: FactorsToRemove) -> StoreResult<bool> {
        self.write("remove_second_factors", |conn| {
            let tx = conn.transaction()?;
            let mut removed = exec(&tx, q::DELETE_TOTP, [user_id])? + exec(&tx, q::DELETE_RECOVERY_CODES, [user_id])?;
            if which == FactorsToRemove::All {
                removed += exec(&tx, q::DELETE_PASSKEYS, [user_id])?;
            }
            tx.commit()?;
            Ok(removed > 0)
        })
    }

    async fn passkeys(&self, user_id: &str) -> StoreResult<Vec<StoredPasskey>> {
        self.read("passkeys", |c| c.prepare_cached(q::PASSKEYS)?.query_map([user_id], passkey_from_row)?.collect())
    }

    async fn passkey(&self, credential_id: &str) -> StoreResult<Option<StoredPasskey>> {
        self.read("passkey", |c| c.prepare_cached(q::PASSKEY)?.query_row([credential_id], passkey_from_row).optional())
    }

    async fn insert_passkey(&self, p: &StoredPasskey) -> StoreResult<()> {
        self.write("insert_passkey", |conn| {
            exec(conn, q::INSERT_PASSKEY, params![p.credential_id, p.user_id, p.name, p.credential, p.created_at])
                .map_err(conflict_or)?;
            Ok(())
        })
    }

    async fn passkey_used(&self, credential_id: &str, credential: &str, now: Timestamp) -> StoreResult<()> {
        self.write("passkey_used", |conn| {
            exec(conn, q::PASSKEY_USED, params![credential, now, credential_id])?;
            Ok(())
        })
    }

    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> StoreResult<bool> {
        self.write("delete_passkey", |conn| Ok(exec(conn, q::DELETE_PASSKEY, [user_id, credential_id])? == 1))
    }
}

fn passkey_from_row(r: &Row<'_>) -> rusqlite::Result<StoredPasskey> {
    Ok(StoredPasskey {
        credential_id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        credential: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
    })
}

fn resource_row(r: &Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok(ResourceRow {
        identifier: r.get(0)?,
        name: r.get(1)?,
        scopes: r.get(2)?,
        token_format: r.get(3)?,
        access_token_lifetime: r.get(4)?,
        secret_hash: r.get(5)?,
        created_at: r.get(6)?,
        signing_alg: r.get(7)?,
        jwks: r.get(8)?,
    })
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn insert_resource(&self, s: &ResourceServer) -> StoreResult<()> {
        self.write("insert_resource", |conn| {
            let lifetime = s.access_token_lifetime.and_then(|l| i64::try_from(l).ok());
            let args = params![
                s.identifier,
                s.name,
                s.scopes.to_string(),
                s.token_format.as_str(),
                lifetime,
                s.secret_hash,
                s.created_at,
                s.signing_alg.as_str(),
                s.jwks
            ];
            exec(conn, q::INSERT_RESOURCE, args).map(drop).map_err(conflict_or)
        })
    }

    async fn resource(&self, identifier: &str) -> StoreResult<Option<ResourceServer>> {
        let row =
            self.read("resource", |c| c.prepare_cached(q::RESOURCE)?.query_row([identifier], resource_row).optional())?;
        row.map(ResourceRow::into_resource).transpose()
    }

    async fn resources(&self) -> StoreResult<Vec<ResourceServer>> {
        let rows = self.read("resources", |c| {
            c.prepare_cached(q::RESOURCES)?.query_map([], resource_row)?.collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter().map(ResourceRow::into_resource).collect()
    }

    async fn delete_resource(&self, identifier: &str) -> StoreResult<bool> {
        self.write("delete_resource", |conn| Ok(exec(conn, q::DELETE_RESOURCE, [identifier])? == 1))
    }
}

#[async_trait]
impl DecoupledStore for SqliteStore {
    async fn insert_decoupled_authorization(&self, d: &DecoupledAuthorization) -> StoreResult<()> {
        self.write("insert_decoupled_authorization", |conn| {
            let args = params![
                d.code_hash,
                d.user_code,
                d.for_user,
                d.client_id.as_str(),
                d.scope.to_string(),
                d.grant_id,
                d.expires_at,
                d.interval,
                d.binding_message,
                d.ping.as_ref().map(|p| &p.client_notification_token),
                d.ping.as_ref().map(|p| &p.auth_req_id)
            ];
            exec(conn, q::INSERT_DECOUPLED_AUTHORIZATION, args).map(drop).map_err(conflict_or)
        })
    }

    async fn pending_device_authorization(
        &self,
        user_code: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DecoupledAuthorization>> {
        let row = self.read("pending_device_authorization", |c| {
            c.prepare_cached(q::PENDING_DEVICE_AUTHORIZATION)?
                .query_row(params![user_code, now], decoupled_row)
                .optional()
        })?;
        Ok(row.map(DecoupledRow::into_authorization).transpose()?.flatten())
    }

    async fn decide_device_authorization(
        &self,
        user_code: &str,
        decision: &UserDecision,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (status, user_id, auth) = decision_status(decision);
        self.write("decide_device_authorization", |conn| {
            Ok(exec(conn, q::DECIDE_DEVICE_AUTHORIZATION, params![status, user_id, auth, user_code, now])? == 1)
        })
    }

    async fn backchannel_requests_for(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<DecoupledAuthorization>> {
        let rows = self.read("backchannel_requests_for", |c| {
            c.prepare_cached(q::PENDING_BACKCHANNEL_REQUESTS)?
                .query_map(params![user_id, now], decoupled_row)?
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows
            .into_iter()
            .map(DecoupledRow::into_authorization)
            .collect::<StoreResult<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn decide_backchannel_request(
        &self,
        code_hash: &str,
        user_id: &str,
        decision: &UserDecision,
        now: Timestamp,
    ) -> StoreResult<Option<DecoupledAuthorization>> {
        let (status, _, auth) = decision_status(decision);
        let row = self.write("decide_backchannel_request", |conn| {
            Ok(conn
                .prepare_cached(q::DECIDE_BACKCHANNEL_REQUEST)?
                .query_row(params![status, user_id, auth, code_hash, now], decoupled_row)
                .optional()?)
        })?;
        Ok(row.map(DecoupledRow::into_authorization).transpose()?.flatten())
    }

    async fn poll_decoupled_authorization(
        &self,
        code_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
        slow_down_by: i64,
    ) -> StoreResult<DecoupledPoll> {
        self.write("poll_decoupled_authorization", |conn| {
            let tx = conn.transaction()?;
            let found = tx
                .prepare_cached(q::POLLED_DECOUPLED_AUTHORIZATION)?
                .query_row(params![code_hash, client_id.as_str()], |r| Ok((decoupled_row(r)?, r.get(13)?)))
                .optional()?;
            let Some((row, last_polled_at)) = found else { return Ok(DecoupledPoll::Unknown) };
            let interval = row.interval;
            let (poll, too_soon) = decoupled_poll(row.into_authorization()?, last_polled_at, now);
            if matches!(poll, DecoupledPoll::SlowDown | DecoupledPoll::Waiting(_)) {
                let interval = if too_soon { interval + slow_down_by } else { interval };
                exec(&tx, q::RECORD_DECOUPLED_POLL, params![now, interval, code_hash])?;
                tx.commit()?;
            }
            Ok(poll)
        })
    }
}

#[async_trait]
impl RegistrationStore for SqliteStore {
    async fn insert_initial_access_token(&self, t: &InitialAccessToken) -> StoreResult<()> {
        self.write("insert_initial_access_token", |conn| {
            let args = params![t.id, t.token_hash, t.created_at, t.expires_at, t.uses_left];
            exec(conn, q::INSERT_INITIAL_ACCESS_TOKEN, args).map(drop).map_err(conflict_or)
        })
    }

    async fn initial_access_tokens(&self) -> StoreResult<Vec<InitialAccessToken>> {
        self.read("initial_access_tokens", |c| {
            c.prepare_cached(q::INITIAL_ACCESS_TOKENS)?
                .query_map([], |r| {
                    Ok(InitialAccessToken {
                        id: r.get(0)?,
                        token_hash: r.get(1)?,
                        created_at: r.get(2)?,
                        expires_at: r.get(3)?,
                        uses_left: r.get(4)?,
                    })
                })?
                .collect()
        })
    }

    async fn revoke_initial_access_token(&self, id: &str) -> StoreResult<bool> {
        self.write("revoke_initial_access_token", |conn| Ok(exec(conn, q::DELETE_INITIAL_ACCESS_TOKEN, [id])? == 1))
    }

    async fn initial_access_token_usable(&self, token_hash: &str, now: Timestamp) -> StoreResult<bool> {
        self.read("initial_access_token_usable", |c| {
            c.prepare_cached(q::USABLE_INITIAL_ACCESS_TOKEN)?.exists(params![token_hash, now])
        })
    }

    async fn register_client(&self, client: &Client, spending: Option<&str>, now: Timestamp) -> StoreResult<bool> {
        self.write("register_client", |conn| {
            let tx = conn.transaction()?;
            if let Some(hash) = spending {
                if exec(&tx, q::SPEND_INITIAL_ACCESS_TOKEN, params![hash, now])? != 1 {
                    return Ok(false);
                }
            }
            save_client(&tx, q::INSERT_CLIENT, client).map_err(conflict_or)?;
            tx.commit()?;
            Ok(true)
        })
    }

    async fn replace_client(&self, client: &Client) -> StoreResult<()> {
        self.write("replace_client", |conn| Ok(save_client(conn, q::SAVE_CLIENT, client).map(drop)?))
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        self.write("insert_user", |conn| {
            exec(
                conn,
                q::INSERT_USER,
                params![
                    u.id,
                    u.username,
                    u.password_hash,
                    u.email,
                    u.email_verified,
                    u.name,
                    u.given_name,
                    u.family_name,
                    u.phone_number,
                    u.phone_number_verified,
                    u.address,
                    u.disabled,
                    u.created_at,
                    u.updated_at,
                    to_json(&u.claims)
                ],
            )
            .map_err(conflict_or)?;
            Ok(())
        })
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.read("user", |c| c.prepare_cached(q::USER)?.query_row([id], user_from_row).optional())
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.read("user_by_username", |c| {
            c.prepare_cached(q::USER_BY_USERNAME)?.query_row([username], user_from_row).optional()
        })
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.read("users", |c| c.prepare_cached(q::USERS)?.query_map([], user_from_row)?.collect())
    }

    async fn users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        self.read("users_by_email", |c| {
            c.prepare_cached(q::USERS_BY_EMAIL)?.query_map([email], user_from_row)?.collect()
        })
    }

    async fn verify_email(&self, id: &str, email: &str, now: Timestamp) -> StoreResult<bool> {
        self.write("verify_email", |conn| Ok(exec(conn, q::VERIFY_EMAIL, params![now, id, email])? == 1))
    }

    async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
        revoke_tokens: bool,
        logout: Logout,
    ) -> StoreResult<bool> {
        self.write("set_password_hash", |conn| {
            let tx = conn.transaction()?;
            let done = exec(&tx, q::SET_PASSWORD_HASH, params![hash, now(), username])?;
            end_sessions(&tx, SessionsToEnd::Username(username), logout)?;
            if revoke_tokens {
                for sql in USER_TOKEN_REVOCATIONS {
                    exec(&tx, sql, [username])?;
                }
            }
            tx.commit()?;
            Ok(done == 1)
        })
    }

    async fn set_user_claims(&self, username: &str, claims: &Map<String, Value>) -> StoreResult<bool> {
        self.write("set_user_claims", |conn| {
            Ok(exec(conn, q::SET_USER_CLAIMS, params![to_json(claims), now(), username])? == 1)
        })
    }

    async fn rename_user(&self, id: &str, username: &str) -> StoreResult<()> {
        self.write("rename_user", |conn| {
            exec(conn, q::RENAME_USER, params![username, now(), id]).map_err(conflict_or)?;
            Ok(())
        })
    }

    async fn disable_user(&self, username: &str, logout: Logout) -> StoreResult<bool> {
        self.write("disable_user", |conn| {
            let tx = conn.transaction()?;
            let done = exec(&tx, q::DISABLE_USER, params![now(), username])?;
            // A disabled account loses its sessions and tokens at once.
            end_sessions(&tx, SessionsToEnd::Username(username), logout)?;
            for sql in USER_TOKEN_REVOCATIONS {
                exec(&tx, sql, [username])?;
            }
            tx.commit()?;
            Ok(done == 1)
        })
    }

    async fn delete_user(&self, username: &str, logout: Logout) -> StoreResult<bool> {
        self.write("delete_user", |conn| {
            let tx = conn.transaction()?;
            // Its clients are told first; the rest goes by ON DELETE CASCADE.
            end_sessions(&tx, SessionsToEnd::Username(username), logout)?;
            let done = exec(&tx, q::DELETE_USER, [username])?;
            tx.commit()?;
            Ok(done == 1)
        })
    }
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<BrowserSession> {
    Ok(BrowserSession {
        id_hash: r.get(0)?,
        sid: r.get(1)?,
        user_id: r.get(2)?,
        auth_time: r.get(3)?,
        amr: json(r, 4)?,
        acr: r.get(5)?,
        expires_at: r.get(6)?,
        device: Device { ip: r.get(7)?, user_agent: r.get(8)? },
    })
}

/// Ends sessions inside the caller's transaction: notifications queued for their clients, their grants
/// revoked (but offline ones), then the sessions deleted.
fn end_sessions(tx: &Connection, which: SessionsToEnd<'_>, logout: Logout) -> rusqlite::Result<Vec<EndedSession>> {
    let (sql, key) = match which {
        SessionsToEnd::Sid(sid) => (q::SESSIONS_BY_SID, sid),
        SessionsToEnd::IdHash(hash) => (q::SESSIONS_BY_HASH, hash),
        SessionsToEnd::User(id) => (q::SESSIONS_BY_USER, id),
        SessionsToEnd::Username(name) => (q::SESSIONS_BY_USERNAME, name),
    };
    let found: Vec<(String, String)> =
        tx.prepare_cached(sql)?.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut ended = Vec::with_capacity(found.len());
    for (sid, user_id) in found {
        let clients =
            tx.prepare_cached(q::SESSION_CLIENTS)?.query_map([&sid], |r| parsed(r, 0))?.collect::<Result<_, _>>()?;
        exec(tx, q::ENQUEUE_LOGOUT_NOTIFICATIONS, params![sid, user_id, logout.now, logout.give_up_at])?;
        let grants: Vec<String> = tx
            .prepare_cached(q::ENDING_GRANTS)?
            .query_map(params![sid, logout.revoke_offline], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for grant_id in &grants {
            revoke(tx, grant_id)?;
            exec(tx, q::DELETE_CODES_OF_GRANT, [grant_id])?;
        }
        exec(tx, q::DELETE_SESSION_GRANTS, [&sid])?;
        exec(tx, q::DELETE_SESSION_BY_SID, [&sid])?;
        ended.push(EndedSession { sid, user_id, clients });
    }
    Ok(ended)
}

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<LogoutNotification> {
    Ok(LogoutNotification {
        id: r.get(0)?,
        client_id: parsed(r, 1)?,
        user_id: r.get(2)?,
        sid: r.get(3)?,
        created_at: r.get(4)?,
        attempts: r.get(5)?,
        give_up_at: r.get(6)?,
        failed_at: r.get(7)?,
        last_error: r.get(8)?,
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn start_session(&self, start: &SessionStart<'_>) -> StoreResult<Vec<EndedSession>> {
        let s = start.session;
        self.write_grouped("start_session", |conn| {
            let tx = conn.savepoint()?;
            let mut ended = Vec::new();
            match start.replaced {
                // The same session, re-authenticated under a new cookie id.
                Some(old) if old.sid == s.sid => drop(exec(&tx, q::DELETE_SESSION, [&old.id_hash])?),
                Some(old) => ended = end_sessions(&tx, SessionsToEnd::IdHash(&old.id_hash), start.logout)?,
                None => {}
            }
            let args = params![
                s.id_hash,
                s.sid,
                s.user_id,
                s.auth_time,
                to_json(&s.amr),
                s.acr,
                s.expires_at,
                s.device.ip,
                s.device.user_agent
            ];
            exec(&tx, q::INSERT_SESSION, args)?;
            if let Some(pending_id) = start.pending_id {
                exec(&tx, q::SET_PENDING_LOGIN, [s.sid.as_str(), pending_id])?;
            }
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    async fn session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<BrowserSession>> {
        self.read("session", |c| {
            c.prepare_cached(q::SESSION)?.query_row(params![id_hash, now], session_from_row).optional()
        })
    }

    async fn sessions(&self, user_id: Option<&str>, now: Timestamp, limit: u32) -> StoreResult<Vec<BrowserSession>> {
        self.read("sessions", |c| {
            c.prepare_cached(q::SESSIONS)?.query_map(params![now, user_id, limit], session_from_row)?.collect()
        })
    }

    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<ClientId>> {
        self.read("session_clients", |c| {
            c.prepare_cached(q::SESSION_CLIENTS)?.query_map([sid], |r| parsed(r, 0))?.collect()
        })
    }

    async fn end_sessions(&self, which: SessionsToEnd<'_>, logout: Logout) -> StoreResult<Vec<EndedSession>> {
        self.write("end_sessions", |conn| {
            let tx = conn.transaction()?;
            let ended = end_sessions(&tx, which, logout)?;
            tx.commit()?;
            Ok(ended)
        })
    }
}

#[async_trait]
impl LogoutOutbox for SqliteStore {
    async fn claim_logout_notifications(
        &self,
        now: Timestamp,
        lease: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutNotification>> {
        self.write("claim_logout_notifications", |conn| {
            let mut stmt = conn.prepare_cached(q::CLAIM_LOGOUT_NOTIFICATIONS)?;
            Ok(stmt.query_map(params![now, lease, limit], notification_from_row)?.collect::<Result<_, _>>()?)
        })
    }

    async fn delete_logout_notification(&self, id: i64) -> StoreResult<()> {
        self.write("delete_logout_notification", |conn| Ok(exec(conn, q::DELETE_LOGOUT_NOTIFICATION, [id]).map(drop)?))
    }

    async fn logout_notification_failed(
        &self,
        id: i64,
        retry_at: Option<Timestamp>,
        now: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        self.write("logout_notification_failed", |conn| {
            match retry_at {
                Some(at) => exec(conn, q::RETRY_LOGOUT_NOTIFICATION, params![at, error, id])?,
                None => exec(conn, q::GIVE_UP_LOGOUT_NOTIFICATION, params![now, error, id])?,
            };
            Ok(())
        })
    }

    async fn logout_notifications(&self, undeliverable_only: bool, limit: u32) -> StoreResult<Vec<LogoutNotification>> {
        self.read("logout_notifications", |c| {
            c.prepare_cached(q::LOGOUT_NOTIFICATIONS)?
                .query_map(params![undeliverable_only, limit], notification_from_row)?
                .collect()
        })
    }
}

#[async_trait]
impl InteractionStore for SqliteStore {
    async fn insert_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        self.write_grouped("insert_pending", |conn| {
            exec(
                conn,
                q::INSERT_PENDING,
                params![p.id, p.client_id.as_str(), p.request_json, p.created_at, p.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn pending(&self, id: &str, now: Timestamp) -> StoreResult<Option<PendingAuthorization>> {
        self.read("pending", |c| {
            c.prepare_cached(q::PENDING)?
                .query_row(params![id, now], |r| {
                    Ok(PendingAuthorization {
                        id: r.get(0)?,
                        client_id: parsed(r, 1)?,
                        request_json: r.get(2)?,
                        login_sid: r.get(3)?,
                        chosen_sid: r.get(4)?,
                        created_at: r.get(5)?,
                        expires_at: r.get(6)?,
                    })
                })
                .optional()
        })
    }

    async fn delete_pending(&self, id: &str) -> StoreResult<()> {
        self.write_grouped("delete_pending", |conn| Ok(exec(conn, q::DELETE_PENDING, [id]).map(drop)?)).await
    }

    async fn choose_account(&self, id: &str, sid: &str) -> StoreResult<()> {
        self.write_grouped("choose_account", |conn| Ok(exec(conn, q::SET_PENDING_CHOICE, [sid, id]).map(drop)?)).await
    }

    async fn push_request(
        &self,
        uri_hash: &str,
        client_id: &ClientId,
        params_json: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        self.write_grouped("push_request", |conn| {
            let args = params![uri_hash, client_id.as_str(), params_json, expires_at];
            Ok(exec(conn, q::INSERT_PUSHED_REQUEST, args).map(drop)?)
        })
        .await
    }

    async fn take_pushed_request(&self, uri_hash: &str, now: Timestamp) -> StoreResult<Option<(ClientId, String)>> {
        self.write_grouped("take_pushed_request", |conn| {
            Ok(conn
                .prepare_cached(q::TAKE_PUSHED_REQUEST)?
                .query_row(params![uri_hash, now], |r| Ok((parsed(r, 0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consent(&self, user_id: &str, client_id: &ClientId) -> StoreResult<Option<Consent>> {
        self.read("consent", |c| {
            c.prepare_cached(q::CONSENT)?
                .query_row([user_id, client_id.as_str()], |r| Ok(Consent { scope: parsed(r, 0)?, claims: json(r, 1)? }))
                .optional()
        })
    }

    async fn consented_apps(&self, user_id: &str) -> StoreResult<Vec<ConsentedApp>> {
        self.read("consented_apps", |c| {
            c.prepare_cached(q::CONSENTED_APPS)?
                .query_map([user_id], |r| {
                    Ok(ConsentedApp {
                        client_id: parsed(r, 0)?,
                        client_name: r.get(1)?,
                        consent: Consent { scope: parsed(r, 2)?, claims: json(r, 3)? },
                        granted_at: r.get(4)?,
                    })
                })?
                .collect()
        })
    }

    async fn revoke_app(&self, user_id: &str, client_id: &ClientId) -> StoreResult<bool> {
        self.write("revoke_app", |conn| {
            let tx = conn.transaction()?;
            let args = [user_id, client_id.as_str()];
            let grants: Vec<String> =
                tx.prepare_cached(q::GRANTS_TO_CLIENT)?.query_map(args, |r| r.get(0))?.collect::<Result<_, _>>()?;
            for grant_id in &grants {
                revoke(&tx, grant_id)?;
                exec(&tx, q::DELETE_CODES_OF_GRANT, [grant_id])?;
            }
            exec(&tx, q::DELETE_SESSION_GRANTS_TO_CLIENT, args)?;
            let consented = exec(&tx, q::DELETE_CONSENT, args)? == 1;
            tx.commit()?;
            Ok(consented || !grants.is_empty())
        })
    }
}

/// Revokes a grant inside the caller's transaction: from then on its tokens are not found, and none is
/// issued for it (`INSERT_ACCESS_TOKEN`). The tokens themselves stay until they expire and are swept
/// (the grant is remembered as long as any of them could be presented, `server::sweep`), so no index
/// by grant is kept up to date: with one, every new token was an insert at that grant's place in two
/// indexes, a random page per token and index (migration 0022: refresh 2,500 -> 2,900/s).
fn revoke(tx: &Connection, grant_id: &str) -> rusqlite::Result<()> {
    exec(tx, q::REVOKE_GRANT_1, params![grant_id, now()]).map(drop)
}

/// The key an access token is stored under. The stored form of a token in expiry order
/// (`crypto::token_hash` of an `expiring_token`: 12 hex digits and 43 base64url characters) becomes 22
/// bytes: the millisecond's low 6 bytes, which keep the order, and the digest's first 16 (128 bits: as
/// unguessable as the token, and no two tokens share them in practice; the primary key would refuse a
/// second anyway). A row then takes about two thirds of the space, on the table that grows fastest.
/// Other shapes (bare digests) are kept as text.
enum AccessTokenKey<'a> {
    Compact([u8; 22]),
    Text(&'a str),
}

impl<'a> AccessTokenKey<'a> {
    fn of(hash: &'a str) -> Self {
        match crate::crypto::ordered_hash_parts(hash) {
            Some((millis, digest)) => {
                let mut key = [0u8; 22];
                key[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
                key[6..].copy_from_slice(&digest[..16]);
                Self::Compact(key)
            }
            None => Self::Text(hash),
        }
    }
}

impl rusqlite::ToSql for AccessTokenKey<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Compact(key) => ValueRef::Blob(key),
            Self::Text(hash) => ValueRef::Text(hash.as_bytes()),
        }))
    }
}

/// Rewrites the text keys of access tokens stored before migration 0021 to their compact form, in one
/// transaction; once done, finds nothing (through the index of text keys).
fn compact_access_token_keys(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let hashes: Vec<String> = tx
        .prepare(q::TEXT_KEYED_ACCESS_TOKENS_SQLITE)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for hash in &hashes {
        let key = AccessTokenKey::of(hash);
        if matches!(key, AccessTokenKey::Compact(_)) {
            exec(&tx, q::REKEY_ACCESS_TOKEN_SQLITE, params![key, hash])?;
        }
    }
    tx.commit()
}

/// Inserts an access token unless its grant has been revoked; false if it was.
fn insert_access_token(tx: &Connection, hash: &str, a: &AccessToken) -> rusqlite::Result<bool> {
    let args = params![
        AccessTokenKey::of(hash),
        a.client_id.as_str(),
        a.user_id,
        a.scope.to_string(),
        a.grant_id,
        a.expires_at,
        a.claims.as_ref().map(to_json),
        a.jkt,
        (!a.audience.is_empty()).then(|| to_json(&a.audience)),
        a.issued_at
    ];
    Ok(exec(tx, q::INSERT_ACCESS_TOKEN, args)? == 1)
}

fn insert_refresh_token(tx: &Connection, hash: &str, r: &RefreshToken) -> rusqlite::Result<()> {
    let args = params![
        hash,
        r.client_id.as_str(),
        r.user_id,
        r.scope.to_string(),
        r.grant_id,
        r.auth.auth_time,
        to_json(&r.auth.amr),
        r.auth.acr,
        r.auth.sid,
        r.expires_at,
        r.claims.as_ref().map(to_json),
        r.jkt,
        (!r.resources.is_empty()).then(|| to_json(&r.resources))
    ];
    exec(tx, q::INSERT_REFRESH_TOKEN, args).map(drop)
}

/// Spends a code or refresh token; on failure, the grant of one that was spent before (a replay).
fn spend(tx: &Connection, spent: Spent<'_>) -> rusqlite::Result<Result<(), Option<String>>> {
    let done = match spent {
        Spent::Decoupled(hash) => exec(tx, q::SPEND_DECOUPLED, [hash])?,
        Spent::Code(hash) => exec(tx, q::SPEND_CODE, [hash])?,
        Spent::RefreshToken { hash, client_id, now } => {
            exec(tx, q::SPEND_REFRESH_TOKEN, params![hash, client_id.as_str(), now])?
        }
    };
    if done == 1 {
        return Ok(Ok(()));
    }
    // Not spent now: a value used before names the grant its reuse revokes; an unknown one nothing.
    let grant = match spent {
        Spent::Decoupled(_) => return Ok(Err(None)),
        Spent::Code(hash) => tx.prepare_cached(q::CODE_GRANT)?.query_row([hash], |r| r.get(0)),
        Spent::RefreshToken { hash, client_id, .. } => {
            tx.prepare_cached(q::SPENT_REFRESH_TOKEN_GRANT)?.query_row([hash, client_id.as_str()], |r| r.get(0))
        }
    };
    Ok(Err(grant.optional()?))
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn approve(&self, a: &Approval<'_>) -> StoreResult<()> {
        self.write_grouped("approve", |conn| {
            let tx = conn.savepoint()?;
            let g = a.session;
            let args = params![g.grant_id, g.sid, a.client_id.as_str(), g.offline];
            exec(&tx, q::INSERT_SESSION_GRANT, args)?;
            if let Some(c) = a.consent {
                let args = params![a.user_id, a.client_id.as_str(), c.scope.to_string(), now(), to_json(&c.claims)];
                exec(&tx, q::SAVE_CONSENT, args)?;
            }
            if let Some(id) = a.pending_id {
                exec(&tx, q::DELETE_PENDING, [id])?;
            }
            if let Some((hash, grant)) = a.code {
                exec(&tx, q::INSERT_CODE, params![hash, grant.grant_id, to_json(grant), grant.expires_at])?;
            }
            if let Some((hash, token)) = a.access_token {
                insert_access_token(&tx, hash, token)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn code(&self, code_hash: &str) -> StoreResult<Lookup<CodeGrant>> {
        let found: Option<(CodeGrant, bool)> = self.read("code", |c| {
            c.prepare_cached(q::CODE)?.query_row([code_hash], |r| Ok((json(r, 0)?, r.get(1)?))).optional()
        })?;
        Ok(match found {
            Some((grant, false)) => Lookup::Live(Box::new(grant)),
            Some((grant, true)) => Lookup::Spent { grant_id: grant.grant_id },
            None => Lookup::Unknown,
        })
    }

    async fn refresh_token(
        &self,
        refresh_hash: &str,
        client_id: &ClientId,
        now: Timestamp,
    ) -> StoreResult<Lookup<RefreshToken>> {
        let found: Option<(RefreshToken, bool, bool)> = self.read("refresh_token", |c| {
            c.prepare_cached(q::REFRESH_TOKEN_SQLITE)?
                .query_row([refresh_hash, client_id.as_str()], |r| {
                    Ok((refresh_from_row(r)?, r.get::<_, bool>(10)?, r.get::<_, bool>(13)?))
                })
                .optional()
        })?;
        Ok(match found {
            // A used token of a revoked grant is still reported as reused (revoking again changes nothing).
            Some((token, true, _)) => Lookup::Spent { grant_id: token.grant_id },
            Some((token, false, false)) if token.expires_at > now => Lookup::Live(Box::new(token)),
            _ => Lookup::Unknown,
        })
    }

    async fn issue_tokens(&self, spent: Option<Spent<'_>>, tokens: &NewTokens<'_>) -> StoreResult<Issuance> {
        self.write_grouped("issue_tokens", |conn| {
            let tx = conn.savepoint()?;
            if let Some(spent) = spent {
                match spend(&tx, spent)? {
                    Ok(()) => {}
                    Err(Some(grant_id)) => {
                        revoke(&tx, &grant_id)?;
                        tx.commit()?;
                        return Ok(Issuance::Replayed);
                    }
                    Err(None) => return Ok(Issuance::Unknown),
                }
            }
            // Conditional on the grant not being revoked, so a code replayed while this request was in
            // flight still revokes what it issues. (SQLite has one writer: nothing interleaves.)
            let (access_hash, access) = tokens.access;
            if !insert_access_token(&tx, access_hash, access)? {
                return Ok(Issuance::Revoked);
            }
            if let Some((hash, refresh)) = tokens.refresh {
                insert_refresh_token(&tx, hash, refresh)?;
            }
            tx.commit()?;
            Ok(Issuance::Issued)
        })
        .await
    }

    async fn access_token(&self, access_hash: &str, now: Timestamp) -> StoreResult<Option<AccessToken>> {
        self.read("access_token", |c| {
            c.prepare_cached(q::ACCESS_TOKEN_SQLITE)?
                .query_row(params![AccessTokenKey::of(access_hash), now], |r| {
                    Ok(AccessToken {
                        client_id: parsed(r, 0)?,
                        user_id: r.get(1)?,
                        scope: parsed(r, 2)?,
                        grant_id: r.get(3)?,
                        expires_at: r.get(4)?,
                        claims: optional_json(r, 5)?,
                        jkt: r.get(6)?,
                        audience: optional_json(r, 7)?.unwrap_or_default(),
                        issued_at: r.get(8)?,
                    })
                })
                .optional()
        })
    }

    async fn delete_access_token(&self, access_hash: &str) -> StoreResult<()> {
        self.write("delete_access_token", |conn| {
            Ok(exec(conn, q::DELETE_ACCESS_TOKEN, [AccessTokenKey::of(access_hash)]).map(drop)?)
        })
    }

    async fn revoke_grant(&self, grant_id: &str) -> StoreResult<()> {
        self.write("revoke_grant", |conn| {
            let tx = conn.transaction()?;
            revoke(&tx, grant_id)?;
            tx.commit()?;
            Ok(())
        })
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        self.read("signing_keys", |c| c.prepare_cached(q::SIGNING_KEYS)?.query_map([], key_from_row)?.collect())
    }

    async fn install_signing_key(&self, key: &SigningKey, succession: KeySuccession<'_>) -> StoreResult<bool> {
        self.write("install_signing_key", |conn| {
            let tx = conn.transaction()?;
            let retired = match succession {
                KeySuccession::First => 1,
                KeySuccession::Current => {
                    exec(&tx, q::RETIRE_CURRENT_KEY, params![key.activates_at, key.alg.as_str()])?
                }
                KeySuccession::Key(kid) => exec(&tx, q::RETIRE_KEY, params![key.activates_at, kid])?,
            };
            if retired == 0 && matches!(succession, KeySuccession::Key(_)) {
                return Ok(false);
            }
            let inserted = exec(
                &tx,
                q::INSERT_SIGNING_KEY,
                params![key.kid, key.alg.as_str(), key.private_jwk, key.public_jwk, key.created_at, key.activates_at],
            );
            match inserted {
                Ok(_) => {
                    tx.commit()?;
                    Ok(true)
                }
                // The unique index on unretired keys: another node installed one first.
                Err(e) if matches!(succession, KeySuccession::First) && is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    async fn delete_keys_retired_before(&self, before: Timestamp) -> StoreResult<u64> {
        self.write("delete_keys_retired_before", |conn| Ok(exec(conn, q::DELETE_KEYS_RETIRED_BEFORE, [before])? as u64))
    }
}

#[async_trait]
impl ReplayStore for SqliteStore {
    async fn first_use(&self, key: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<bool> {
        self.write_grouped("first_use", |conn| Ok(exec(conn, q::FIRST_USE, params![key, expires_at, now])? == 1)).await
    }
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn reserve_attempt(&self, key: &str, now: Timestamp, window: i64, limit: u32) -> StoreResult<bool> {
        self.write("reserve_attempt", |conn| {
            let counted: Option<i64> = conn
                .prepare_cached(q::RESERVE_ATTEMPT)?
                .query_row(params![key, now, window, limit], |r| r.get(0))
                .optional()?;
            Ok(counted.is_some())
        })
    }

    async fn release_attempt(&self, key: &str) -> StoreResult<()> {
        self.write("release_attempt", |conn| Ok(exec(conn, q::RELEASE_ATTEMPT, [key]).map(drop)?))
    }

    async fn clear_attempts(&self, key: &str) -> StoreResult<()> {
        self.write("clear_attempts", |conn| Ok(exec(conn, q::CLEAR_ATTEMPTS, [key]).map(drop)?))
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        self.write("secret", |conn| {
            exec(conn, q::INSERT_SECRET, params![name, candidate])?;
            Ok(conn.prepare_cached(q::SECRET)?.query_row([name], |r| r.get(0))?)
        })
    }

    async fn existing_secret(&self, name: &str) -> StoreResult<Option<String>> {
        self.read("existing_secret", |c| c.prepare_cached(q::SECRET)?.query_row([name], |r| r.get(0)).optional())
    }

    async fn replace_secret(&self, name: &str, value: &str) -> StoreResult<()> {
        self.write("replace_secret", |conn| Ok(exec(conn, q::REPLACE_SECRET, [name, value]).map(drop)?))
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit_event(&self, e: &AuditEvent) -> StoreResult<()> {
        self.write("record_audit_event", |conn| {
            let args = params![e.at, e.kind.as_str(), e.user_id, e.username, e.client_id, e.ip, e.detail];
            Ok(exec(conn, q::INSERT_AUDIT_EVENT, args).map(drop)?)
        })
    }

    async fn audit_events(
        &self,
        user: Option<AuditedUser<'_>>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let (username, user_id) = (user.map(|u| u.username), user.and_then(|u| u.user_id));
        self.read("audit_events", |c| {
            c.prepare_cached(q::AUDIT_EVENTS)?
                .query_map(params![since, username, user_id, limit], |r| {
                    let kind: String = r.get(1)?;
                    Ok(AuditEvent {
                        at: r.get(0)?,
                        kind: AuditKind::parse(&kind).ok_or_else(|| conversion(1, StoreError::Corrupt(kind)))?,
                        user_id: r.get(2)?,
                        username: r.get(3)?,
                        client_id: r.get(4)?,
                        ip: r.get(5)?,
                        detail: r.get(6)?,
                    })
                })?
                .collect()
        })
    }

    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64> {
        self.write("delete_audit_events_before", |conn| Ok(exec(conn, q::DELETE_AUDIT_EVENTS_BEFORE, [before])? as u64))
    }
}

#[async_trait]
impl SweepStore for SqliteStore {
    async fn sweep(&self, cutoffs: SweepCutoffs, batch: u32) -> StoreResult<Vec<(&'static str, u64)>> {
        let mut deleted = Vec::new();
        for (table, sql) in q::sweep_statements_sqlite() {
            let cutoff = cutoffs.of(table);
            // One short write each, so that the single writer is never held for long; and the requests
            // waiting meanwhile run before the next (these writes run in place, on this thread: without
            // the yield a sweep of many batches held up a one-core server for 5 s, seen in a soak).
            let n = self.write("sweep", |conn| Ok(exec(conn, &sql, params![cutoff, batch])?))?;
            deleted.push((table, n as u64));
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }

    async fn compact(&self) -> StoreResult<()> {
        self.write("compact", |conn| {
            // TRUNCATE waits for every reader to leave the WAL while this connection holds the write
            // lock: with the busy timeout, one long reader (a backup, `oxid store stats` on a large
            // table) would stall every write for up to 5 s. Without waiting, a checkpoint that readers
            // hold up ends at once and is tried again at the next sweep.
            conn.busy_timeout(Duration::ZERO)?;
            let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            conn.busy_timeout(BUSY_TIMEOUT)?;
            match checkpoint {
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => Ok(()),
                other => Ok(other?),
            }
        })
    }

    async fn stats(&self) -> StoreResult<(Vec<(&'static str, i64)>, i64)> {
        self.read("stats", |c| {
            let mut counts = Vec::new();
            for table in q::COUNTED_TABLES {
                counts.push((table, c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?));
            }
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let page_size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            Ok((counts, pages * page_size))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_of_unknown_client(id: String) -> PendingAuthorization {
        PendingAuthorization {
            id,
            client_id: "no-such-client".parse().unwrap(),
            request_json: "{}".into(),
            login_sid: None,
            chosen_sid: None,
            created_at: 0,
            expires_at: i64::MAX,
        }
    }

    /// Group commit: concurrent writes share transactions, yet each one's outcome is its own. A failing
    /// member (here a foreign-key violation) undoes only its own write; the others are committed (a
    /// fresh connection sees them) before they are acknowledged; one-time values stay one-time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxid.db");
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                match i % 3 {
                    0 => ("failing", store.insert_pending(&pending_of_unknown_client(format!("p{i}"))).await.is_ok()),
                    1 => ("distinct", store.first_use(&format!("k{i}"), i64::MAX, 0).await.unwrap()),
                    _ => ("shared", store.first_use("shared", i64::MAX, 0).await.unwrap()),
                }
            });
        }
        let (mut failing_ok, mut distinct_ok, mut shared_ok) = (0, 0, 0);
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                ("failing", ok) => failing_ok += ok as u32,
                ("distinct", ok) => distinct_ok += ok as u32,
                (_, ok) => shared_ok += ok as u32,
            }
        }
        assert_eq!((failing_ok, distinct_ok, shared_ok), (0, 20, 1));

        // Acknowledged means committed: another connection sees every acknowledged write, nothing else.
        let other = connect(&path).unwrap();
        let count = |sql: &str| other.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT count(*) FROM used_once"), 21);
        assert_eq!(count("SELECT count(*) FROM pending_authorizations"), 0);
    }

    /// Access tokens are swept as a range of their key (they are keyed in expiry order), with no scan of
    /// the table; keys ordered by issuing time stay until they expire, and bare digests (older tokens)
    /// are found through their own index.
    #[tokio::test]
    async fn expired_access_tokens_are_swept_by_key_range() {
        use crate::crypto::{expiring_token, ordered_token, random_token, token_hash};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxid.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let now = crate::model::now();
        // Swept at `now + 20`: what expired by then goes (tokens issued now, as they would have been).
        let (expired, live) = (now + 10, now + 30);
        let rows = [
            ("expired", token_hash(&expiring_token(expired)), expired),
            ("live", token_hash(&expiring_token(live)), live),
            ("issue-ordered live", token_hash(&ordered_token()), live),
            ("issue-ordered expired", token_hash(&ordered_token()), expired),
            ("bare expired", token_hash(&random_token()), expired),
            ("bare live", token_hash(&random_token()), live),
        ];
        // Written directly, without the foreign keys' clients.
        let other = Connection::open(&path).unwrap();
        other.pragma_update(None, "foreign_keys", "OFF").unwrap();
        for (_, hash, expires_at) in &rows {
            other
                .execute(
                    "INSERT INTO access_tokens (token_hash, client_id, scope, expires_at) VALUES (?1, 'c', 'api', ?2)",
                    params![AccessTokenKey::of(hash), expires_at],
                )
                .unwrap();
        }
        let at = now + 20;
        let cutoffs = SweepCutoffs { expired_before: at, revoked_before: at, failed_before: at };
        let deleted = store.sweep(cutoffs, 1000).await.unwrap();
        assert!(deleted.contains(&("access_tokens", 3)), "{deleted:?}");
        for (name, hash, _) in &rows {
            let left: i64 = other
                .query_row(
                    "SELECT count(*) FROM access_tokens WHERE token_hash = ?1",
                    [AccessTokenKey::of(hash)],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(left == 1, name.contains("live"), "{name}");
        }
        let sweep = q::sweep_statements_sqlite().find(|(table, _)| *table == "access_tokens").unwrap().1;
        let mut plan = other.prepare(&format!("EXPLAIN QUERY PLAN {sweep}")).unwrap();
        let plan: Vec<String> = plan.query_map(params![at, 1000], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(!plan.iter().any(|step| step.starts_with("SCAN access_tokens")), "{plan:?}");
    }

    /// An access token stored under its 55-character text key (before migration 0021) is rewritten to
    /// the 22-byte key when the store opens, and found by its token as before.
    #[tokio::test]
    async fn access_tokens_with_text_keys_are_rekeyed_at_open() {
        use crate::crypto::{expiring_token, random_token, token_hash};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxid.db");
        let now = crate::model::now();
        let (ordered, bare) = (token_hash(&expiring_token(now + 60)), token_hash(&random_token()));
        drop(SqliteStore::open(&path).await.unwrap());
        let other = Connection::open(&path).unwrap();
        other.pragma_update(None, "foreign_keys", "OFF").unwrap();
        for hash in [&ordered, &bare] {
            let sql =
                "INSERT INTO access_tokens (token_hash, client_id, scope, expires_at) VALUES (?1, 'c', 'api', ?2)";
            other.execute(sql, params![hash, now + 60]).unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let kinds: Vec<(String, i64)> = other
            .prepare("SELECT typeof(token_hash), length(token_hash) FROM access_tokens ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(kinds, [("blob".to_owned(), 22), ("text".to_owned(), 43)]);
        for hash in [&ordered, &bare] {
            let token = store.access_token(hash, now).await.unwrap().expect("found by its token");
            assert_eq!(token.expires_at, now + 60);
            store.delete_access_token(hash).await.unwrap();
            assert!(store.access_token(hash, now).await.unwrap().is_none(), "deleted by its token");
        }
    }

    /// Revoking a grant leaves its tokens to the sweeper: from then on they are not found (a used
    /// refresh token is still reported as reused), and nothing more is issued for the grant.
    #[tokio::test]
    async fn a_revoked_grants_tokens_are_refused_until_swept() {
        use crate::crypto::{expiring_token, ordered_token, token_hash};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxid.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "INSERT INTO clients (id, name, redirect_uris, grant_types, auth_method, id_token_signed_response_alg, \
                 skip_consent, created_at) VALUES ('c', 'C', '[]', '[]', 'none', 'RS256', FALSE, 0); \
                 INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES ('u', 'u', '-', 0, 0);",
            )
            .unwrap();
        let now = crate::model::now();
        let client_id: ClientId = "c".parse().unwrap();
        let access = |grant: &str| AccessToken {
            client_id: client_id.clone(),
            user_id: Some("u".into()),
            scope: crate::model::ScopeSet::parse("openid").unwrap(),
            grant_id: Some(grant.into()),
            expires_at: now + 600,
            claims: None,
            jkt: None,
            audience: Vec::new(),
            issued_at: Some(now),
        };
        let refresh = |grant: &str| RefreshToken {
            client_id: client_id.clone(),
            user_id: "u".into(),
            scope: crate::model::ScopeSet::parse("openid offline_access").unwrap(),
            grant_id: grant.into(),
            auth: Authentication { sid: "s".into(), auth_time: now, amr: vec!["pwd".into()], acr: "0".into() },
            expires_at: now + 3600,
            claims: None,
            jkt: None,
            resources: Vec::new(),
        };
        let issue = |grant: &'static str| {
            let (a, r) = (token_hash(&expiring_token(now + 600)), token_hash(&ordered_token()));
            let (access, refresh) = (access(grant), refresh(grant));
            let store = &store;
            async move {
                let tokens = NewTokens { access: (&a, &access), refresh: Some((&r, &refresh)) };
                (store.issue_tokens(None, &tokens).await.unwrap(), a, r)
            }
        };
        let (issued, first_access, first_refresh) = issue("g").await;
        assert_eq!(issued, Issuance::Issued);
        let (_, other_access, other_refresh) = issue("h").await;
        // Rotation: the first refresh token is spent for a second pair.
        let spent = Spent::RefreshToken { hash: &first_refresh, client_id: &client_id, now };
        let (second_access, second_refresh) = (token_hash(&expiring_token(now + 600)), token_hash(&ordered_token()));
        let (a, r) = (access("g"), refresh("g"));
        let tokens = NewTokens { access: (&second_access, &a), refresh: Some((&second_refresh, &r)) };
        assert_eq!(store.issue_tokens(Some(spent), &tokens).await.unwrap(), Issuance::Issued);

        store.revoke_grant("g").await.unwrap();
        for hash in [&first_access, &second_access] {
            assert_eq!(store.access_token(hash, now).await.unwrap(), None, "an access token of the grant");
        }
        let lookup = |hash: String| {
            let (store, client_id) = (&store, &client_id);
            async move { store.refresh_token(&hash, client_id, now).await.unwrap() }
        };
        assert!(matches!(lookup(second_refresh).await, Lookup::Unknown), "its live refresh token");
        assert!(matches!(lookup(first_refresh).await, Lookup::Spent { .. }), "its used one: reuse");
        let (issued, ..) = issue("g").await;
        assert_eq!(issued, Issuance::Revoked, "nothing more for the grant");
        // Another grant's tokens are untouched; the revoked grant's rows wait for the sweeper.
        assert!(store.access_token(&other_access, now).await.unwrap().is_some());
        assert!(matches!(lookup(other_refresh).await, Lookup::Live(_)));
        let rows: i64 = other.query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 3);
    }

    /// A write outside the group (administration) first commits the open group, then runs its own
    /// transaction: nothing nests, nothing waits.
    #[tokio::test]
    async fn an_ungrouped_write_commits_the_open_group_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("oxid.db")).await.unwrap());
        let grouped = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.first_use("k", i64::MAX, 0).await })
        };
        tokio::task::yield_now().await;
        store.replace_secret("name", "value").await.unwrap();
        assert!(grouped.await.unwrap().unwrap());
        assert!(!store.first_use("k", i64::MAX, 0).await.unwrap(), "a one-time value is used once");
    }
}
