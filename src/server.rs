//! Start-up and the serving loop: open the store, make sure keys exist, serve until shut down.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::config::{Config, Database};
use crate::http::OpKeys;
use crate::http::connections::{self, ConnectionLimits};
use crate::http::{AppState, SharedState, router};
use crate::jose::decryption::DecryptionKeys;
use crate::jose::keys::KeyRing;
use crate::jose::{Shared, SharedKeyRing};
use crate::key_management;
use crate::model::{AuditEvent, AuditKind, Clock};
use crate::store::{PgStore, SqliteStore, Store, SweepCutoffs};
use crate::ui::Pages;

/// How often a node re-reads the key set, to pick up rotations made elsewhere (CLI, other nodes).
const KEY_REFRESH: Duration = Duration::from_secs(60);

/// Opens the configured database, which must exist already: a command run elsewhere than the server
/// (another working directory, a forgotten OXID_DATABASE_URL) must not quietly make an empty one.
pub async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Database::Sqlite(path) = config.database()? {
        if !path.exists() {
            let shown = std::path::absolute(&path).unwrap_or(path);
            anyhow::bail!(
                "no database at {} (run `oxid migrate` or `oxid serve` to create it, or set OXID_DATABASE_URL)",
                shown.display()
            );
        }
    }
    open_store(config).await
}

/// Brings stored usernames to their canonical form (RFC 8265), which logins now look up; returns what
/// could not be changed (no canonical form, or another user already has it) for the operator to settle.
pub async fn canonicalize_usernames(store: &dyn Store) -> anyhow::Result<Vec<String>> {
    let mut unsettled = Vec::new();
    for user in store.users().await? {
        match crate::model::canonical_username(&user.username) {
            Ok(canonical) if canonical == user.username => {}
            Ok(canonical) => match store.rename_user(&user.id, &canonical).await {
                Ok(()) => tracing::info!(from = %user.username, to = %canonical, "username put in canonical form"),
                Err(crate::store::StoreError::Conflict) => unsettled.push(format!(
                    "user {:?} (sub {}) cannot become {canonical:?}: another user has that name",
                    user.username, user.id
                )),
                Err(e) => return Err(e.into()),
            },
            Err(e) => unsettled.push(format!("user {:?} (sub {}) has no canonical form: {e}", user.username, user.id)),
        }
    }
    Ok(unsettled)
}

/// Opens the configured database, creating it if needed, and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.database()? {
        Database::Sqlite(path) => Arc::new(
            SqliteStore::open(&path)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?,
        ),
        // The URL may hold a password: it is not repeated in the error.
        Database::Postgres(url) => Arc::new(
            PgStore::open(&url, config.database_pool_size)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the PostgreSQL database: {e}"))?,
        ),
    })
}

async fn load_key_ring(
    store: &dyn Store,
    config: &Config,
    decryption: &DecryptionKeys,
    now: crate::model::Timestamp,
) -> anyhow::Result<KeyRing> {
    // Retired keys are published until every ID Token they signed has expired.
    Ok(key_management::load_key_ring(store, now, config.id_token_lifetime as i64, decryption).await?)
}

/// Everything the server needs, ready to serve.
pub async fn prepare(config: Config, store: Arc<dyn Store>, clock: Clock) -> anyhow::Result<SharedState> {
    crate::telemetry::init();
    let decryption = key_management::load_decryption_keys(store.as_ref()).await?;
    let ring = load_key_ring(store.as_ref(), &config, &decryption, clock.now()).await?;
    let pages = Pages::load(config.templates_dir.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    let pairwise_salt = store.secret("pairwise_salt", &crate::crypto::random_token()).await?;
    let csrf_key = store.secret("csrf_key", &crate::crypto::random_token()).await?;
    let keys =
        OpKeys { signing: SharedKeyRing::new(ring), decryption: Shared::new(decryption), pairwise_salt, csrf_key };
    Ok(Arc::new(AppState::new(config, store, keys, pages, clock)))
}

/// Serves HTTP on `listener` until `shutdown` resolves; in-flight requests are allowed to finish.
pub async fn serve(
    state: SharedState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let refresher = tokio::spawn(refresh_keys(state.clone()));
    let sweeper = tokio::spawn(sweep_periodically(state.clone()));
    let logout_delivery = tokio::spawn(crate::backchannel::deliver_continuously(state.clone()));
    let upkeep = tokio::spawn(crate::telemetry::run_upkeep());
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(state.config.header_read_timeout),
        max_connections: state.config.max_connections,
    };
    connections::serve(listener, router(state), limits, shutdown).await;
    refresher.abort();
    sweeper.abort();
    logout_delivery.abort();
    upkeep.abort();
    Ok(())
}

/// Rows per table deleted in one statement.
const SWEEP_BATCH: u32 = 1000;

/// Deletes what has expired, in small batches, so that storage stays bounded. Every node runs this; a
/// lease in the store (one holder per interval) has one of them do the work each time.
async fn sweep_periodically(state: SharedState) {
    let interval = state.config.sweep_interval;
    let mut tick = tokio::time::interval(Duration::from_secs(interval));
    loop {
        tick.tick().await;
        let now = state.now();
        match state.store.reserve_attempt("lease:sweeper", now, interval as i64, 1).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the sweeper lease");
                continue;
            }
        }
        // At most until the lease runs out (the next holder goes on), so a backlog never makes two
        // nodes sweep at once; a sweep keeps up with any rate at which tokens are made (a fixed number
        // of batches per sweep did not: at 27,000 tokens/s the table grew without bound in a soak).
        let until = Instant::now() + Duration::from_secs(interval);
        if let Err(e) = sweep(state.store.as_ref(), &state.config, now, Some(until)).await {
            tracing::warn!(error = %e, "sweeping expired rows failed");
        }
    }
}

/// One sweep: batches until nothing expired is left (or `until`), then compaction.
pub async fn sweep(
    store: &dyn Store,
    config: &Config,
    now: crate::model::Timestamp,
    until: Option<Instant>,
) -> anyhow::Result<u64> {
    let before = now - config.expired_rows_kept as i64;
    let longest_token_lifetime = longest_token_lifetime(store, config).await?;
    let cutoffs = SweepCutoffs {
        expired_before: before,
        revoked_before: before - longest_token_lifetime as i64,
        failed_before: now - config.audit_retention as i64,
    };
    let mut total = 0;
    loop {
        let deleted = store.sweep(cutoffs, SWEEP_BATCH).await?;
        total += deleted.iter().map(|(_, n)| n).sum::<u64>();
        let done = deleted.iter().all(|(_, n)| *n < u64::from(SWEEP_BATCH));
        if done || until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
    }
    store.compact().await?;
    if total > 0 {
        tracing::info!(rows = total, "expired rows swept");
    }
    Ok(total)
}

/// Where the longest token lifetime seen so far is kept (in seconds), shared by every node.
const LONGEST_TOKEN_LIFETIME: &str = "longest_token_lifetime";

/// How long a revoked grant must be remembered: while any of its tokens could still be presented. On
/// SQLite its tokens stay until they expire, refused only because the grant is remembered. The longest
/// lifetime any token was issued with: the configured ones, resources' own, and the longest seen before
/// (stored), so that shortening a lifetime does not forget grants whose tokens were issued for longer.
async fn longest_token_lifetime(store: &dyn Store, config: &Config) -> anyhow::Result<u64> {
    let resource_lifetimes = store.resources().await?.into_iter().filter_map(|r| r.access_token_lifetime);
    let current =
        resource_lifetimes.chain([config.access_token_lifetime, config.refresh_token_lifetime]).max().unwrap_or(0);
    let seen = store.existing_secret(LONGEST_TOKEN_LIFETIME).await?.and_then(|v| v.parse().ok()).unwrap_or(0);
    if current > seen {
        store.replace_secret(LONGEST_TOKEN_LIFETIME, &current.to_string()).await?;
    }
    Ok(current.max(seen))
}

async fn refresh_keys(state: SharedState) {
    let mut tick = tokio::time::interval(KEY_REFRESH);
    tick.tick().await;
    loop {
        tick.tick().await;
        let config = &state.config;
        if config.signing_key_rotation_period > 0 {
            let (period, ahead) = (config.signing_key_rotation_period as i64, config.signing_key_publish_ahead as i64);
            match key_management::rotate_due_keys(state.store.as_ref(), state.now(), period, ahead).await {
                Ok(installed) => {
                    for key in installed {
                        let detail = format!("{} key {} signs from {} (scheduled)", key.alg, key.kid, key.activates_at);
                        let event = AuditEvent::new(state.now(), AuditKind::KeyRotated, detail);
                        crate::audit::record(state.store.as_ref(), event).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed"),
            }
        }
        if let Err(e) = state.store.delete_audit_events_before(state.now() - config.audit_retention as i64).await {
            tracing::warn!(error = %e, "could not prune the audit log");
        }
        let pruned = state.store.delete_keys_retired_before(state.now() - config.id_token_lifetime as i64).await;
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "could not prune retired keys");
        }
        // Encryption keys first: the JWKS built next publishes them.
        match key_management::load_decryption_keys(state.store.as_ref()).await {
            Ok(decryption) => state.decryption.replace(decryption),
            Err(e) => tracing::warn!(error = %e, "could not refresh the request-object encryption keys"),
        }
        match load_key_ring(state.store.as_ref(), config, &state.decryption.get(), state.now()).await {
            Ok(ring) => state.keys.replace(ring),
            Err(e) => tracing::warn!(error = %e, "could not refresh signing keys"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// A backlog far beyond what one batch deletes is swept in one sweep: the sweep goes on until
    /// nothing expired is left (a fixed number of batches per sweep could not keep up with a fast
    /// issuer), and what has not expired stays.
    #[tokio::test]
    async fn a_sweep_clears_a_backlog_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxid.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let expired = 120 * u64::from(SWEEP_BATCH);
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx.prepare("INSERT INTO used_once (key, expires_at) VALUES (?1, ?2)").unwrap();
            for i in 0..expired {
                insert.execute(rusqlite::params![format!("expired-{i}"), 100]).unwrap();
            }
            insert.execute(rusqlite::params!["live", i64::MAX]).unwrap();
        }
        tx.commit().unwrap();
        let config = Config { expired_rows_kept: 0, ..Config::default() };
        assert_eq!(sweep(&store, &config, 1_000, None).await.unwrap(), expired);
        let left: i64 = conn.query_row("SELECT count(*) FROM used_once", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 1, "the live value stays");
    }

    /// A revoked grant is remembered as long as the longest-lived of its tokens could be presented: on
    /// SQLite its tokens stay until they expire, refused only because the grant is remembered. A
    /// resource's access tokens may outlive refresh tokens.
    #[tokio::test]
    async fn a_revoked_grant_is_remembered_for_its_longest_lived_token() {
        use crate::model::{ResourceServer, ScopeSet, SigningAlg, TokenFormat};
        use crate::store::ResourceStore as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxid.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let config = Config { expired_rows_kept: 0, refresh_token_lifetime: 1_000, ..Config::default() };
        let resource = ResourceServer {
            identifier: "https://api.example".into(),
            name: "API".into(),
            scopes: ScopeSet::parse("api").unwrap(),
            token_format: TokenFormat::Opaque,
            signing_alg: SigningAlg::RS256,
            access_token_lifetime: Some(5_000),
            secret_hash: None,
            jwks: None,
            created_at: 0,
        };
        store.insert_resource(&resource).await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("INSERT INTO revoked_grants (grant_id, revoked_at) VALUES ('g', 10000)", []).unwrap();
        let remembered = || conn.query_row("SELECT count(*) FROM revoked_grants", [], |r| r.get::<_, i64>(0)).unwrap();
        sweep(&store, &config, 10_000 + 4_999, None).await.unwrap();
        assert_eq!(remembered(), 1, "a token of the resource's could still be presented");
        // The resource's tokens live shorter from now on: those issued before still count.
        let resource = ResourceServer { access_token_lifetime: Some(100), ..resource };
        store.delete_resource(&resource.identifier).await.unwrap();
        store.insert_resource(&resource).await.unwrap();
        sweep(&store, &config, 10_000 + 4_999, None).await.unwrap();
        assert_eq!(remembered(), 1, "a token issued for 5,000 s could still be presented");
        sweep(&store, &config, 10_000 + 5_001, None).await.unwrap();
        assert_eq!(remembered(), 0, "every token it had has expired");
    }
}
