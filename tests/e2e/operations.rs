//! Health, readiness, metrics and request ids.

use crate::common;

use std::process::Command;

use common::TestOp;
use oxid::model::ClientAuthMethod;

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let op = TestOp::start().await;
    let http = reqwest::Client::new();
    let r = http.get(op.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID per request: {id}");
    assert_eq!(http.get(op.url("/readyz")).send().await.unwrap().status(), 200);
    // A caller's request id is kept, so logs correlate across a proxy.
    let r = http.get(op.url("/healthz")).header("x-request-id", "from-the-proxy").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "from-the-proxy");
}

/// Hardening 10: ready means the store takes a write; a store that refuses writes (a full disk, a
/// read-only database) is not ready, while the process stays healthy.
#[tokio::test]
async fn readiness_needs_a_store_that_takes_writes() {
    let op = TestOp::start().await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(op.url("/readyz")).send().await.unwrap().status(), 200);
    op.refuse_writes("health", "UPDATE").await;
    let r = http.get(op.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "store does not take writes");
    assert_eq!(http.get(op.url("/healthz")).send().await.unwrap().status(), 200);
    op.allow_writes("health").await;
    assert_eq!(http.get(op.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_store_latency() {
    let op = TestOp::start().await;
    let (_, secret) = op.add_client("svc", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let http = reqwest::Client::new();
    let r = http
        .post(op.url("/token"))
        .basic_auth("svc", secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = http.get(op.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for expected in [
        "oxid_http_requests_total{endpoint=\"/token\",status=\"200\"}",
        "oxid_http_request_duration_seconds_bucket{endpoint=\"/token\"",
        "oxid_tokens_issued_total{grant=\"client_credentials\"}",
        "oxid_store_operation_duration_seconds_bucket{operation=\"issue_tokens\"",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in:\n{metrics}");
    }
    assert!(!metrics.contains(secret.as_deref().unwrap()));
}

/// Private signing keys live in the database: the SQLite file and its directory are private to the
/// server's user (0600 / 0700).
#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("oxid.db");
    let store = oxid::store::SqliteStore::open(&file).await.unwrap();
    oxid::key_management::ensure_current_keys(&store, oxid::model::now()).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&data), 0o700);
}

/// Issue 12 (bounded storage): the sweeper deletes what expired longer ago than `expired_rows_kept`, and
/// only that; `oxid store stats` and `oxid store sweep` for the operator.
#[tokio::test]
async fn expired_rows_are_swept_and_counted() {
    let op = TestOp::start().await;
    let (_, secret) = op.add_client("svc", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let http = reqwest::Client::new();
    let token =
        http.post(op.url("/token")).basic_auth("svc", secret.as_deref()).form(&[("grant_type", "client_credentials")]);
    assert_eq!(token.send().await.unwrap().status(), 200);
    let count = |name: &'static str| {
        let store = op.store.clone();
        async move { store.stats().await.unwrap().0.into_iter().find(|(t, _)| *t == name).unwrap().1 }
    };
    assert_eq!(count("access_tokens").await, 1);
    let config = oxid::config::Config::default(); // access tokens live an hour, expired rows are kept an hour
    let now = oxid::model::now();
    oxid::server::sweep(op.store.as_ref(), &config, now + 3600, None).await.unwrap();
    assert_eq!(count("access_tokens").await, 1, "expired, but kept for forensics");
    let swept = oxid::server::sweep(op.store.as_ref(), &config, now + 2 * 3600 + 60, None).await.unwrap();
    assert!(swept >= 1);
    assert_eq!(count("access_tokens").await, 0);

    let db = op.database_url.clone();
    let (stats, sweep) = tokio::task::spawn_blocking(move || {
        let stats =
            Command::new(env!("CARGO_BIN_EXE_oxid")).args(["store", "stats"]).env("OXID_DATABASE_URL", &db).output();
        let sweep =
            Command::new(env!("CARGO_BIN_EXE_oxid")).args(["store", "sweep"]).env("OXID_DATABASE_URL", &db).output();
        (String::from_utf8(stats.unwrap().stdout).unwrap(), String::from_utf8(sweep.unwrap().stdout).unwrap())
    })
    .await
    .unwrap();
    assert!(stats.contains("access_tokens") && stats.contains("database size:"), "{stats}");
    assert!(sweep.starts_with("deleted "), "{sweep}");
}
