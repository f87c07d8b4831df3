//! The embedded default backend: one SQLite file in WAL mode.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, Row};

use super::sql::{from_json, parse, sql_store, to_json, unique_violation};
use super::*;
use crate::types::ClientId;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite allows one writer at a time. Queuing writes on one connection here, instead of letting
    /// connections collide on the file lock (and sleep in SQLite's busy handler), keeps write latency
    /// flat under load.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the embedded migrations. A new file
    /// and its directory are made readable by the owner only: they hold private signing keys.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Corrupt(format!("{}: {e}", dir.display())))?;
                restrict_permissions(dir, 0o700);
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        restrict_permissions(path, 0o600);
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        Ok(Self { pool, writer })
    }
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

sql_store!(SqliteStore, SqliteRow);
