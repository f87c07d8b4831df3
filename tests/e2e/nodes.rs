//! Interchangeable nodes: two servers on one database (PostgreSQL under `scripts/test`'s second run)
//! serve one issuer; every request of a sign-in alternates between them.

use crate::common;

use std::collections::HashSet;

use common::{Browser, PASSWORD, REDIRECT_URI, TestOp, VERIFIER, exchange_code_at, json, query};
use oxid::model::ClientAuthMethod;

#[tokio::test]
async fn nodes_started_together_agree_on_one_key_per_algorithm() {
    let op = TestOp::start_cluster(3, |_| {}).await;
    let keys = op.store.signing_keys().await.unwrap();
    let current: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.alg).collect();
    let distinct: HashSet<_> = current.iter().collect();
    let algorithms = oxid::model::SigningAlg::ALL.len();
    assert_eq!(current.len(), algorithms, "one current key per algorithm, no duplicates from the race: {current:?}");
    assert_eq!(distinct.len(), algorithms);
    let http = reqwest::Client::new();
    let mut jwks = Vec::new();
    for node in &op.nodes {
        jwks.push(http.get(format!("{node}/jwks.json")).send().await.unwrap().text().await.unwrap());
    }
    assert!(jwks.windows(2).all(|w| w[0] == w[1]), "every node publishes the same JWKS");
}

#[tokio::test]
async fn a_sign_in_alternating_between_two_nodes() {
    let op = TestOp::start_cluster(2, |_| {}).await;
    op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let secret = secret.unwrap();
    let node = |i: usize| op.nodes[i % 2].clone();
    let b = Browser::new(&op);

    // authorize on node 0 -> login page on node 1 -> login on node 0 -> resume on node 1
    let url = op
        .authorize_url("webapp", "&scope=openid%20offline_access&prompt=consent")
        .replace("&scope=openid%20email%20profile", "");
    let to_login = b.get(&url).await.location.unwrap();
    let login = b.get(&format!("{}{to_login}", node(1))).await;
    let request = login.hidden("request");
    let csrf = login.hidden("csrf_token");
    let form = [("request", request.as_str()), ("csrf_token", &csrf), ("username", "alice"), ("password", PASSWORD)];
    let to_resume = b.post(&format!("{}/login", node(0)), &form).await.location.unwrap();
    let to_consent = b.get(&format!("{}{to_resume}", node(1))).await.location.unwrap();
    // consent page on node 0, consent decision on node 1
    let consent = b.get(&format!("{}{to_consent}", node(0))).await;
    let form = [
        ("request", consent.hidden("request")),
        ("csrf_token", consent.hidden("csrf_token")),
        ("decision", "allow".into()),
    ];
    let callback = b.http.post(format!("{}/consent", node(1))).form(&form).send().await.unwrap();
    let callback = callback.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");
    let code = query(&callback)["code"].clone();

    // token on node 0, userinfo on node 1, refresh on node 0, userinfo on node 1
    let http = reqwest::Client::new();
    let (status, tokens) = json(exchange_code_at(&node(0), "webapp", &secret, &code, Some(VERIFIER)).await).await;
    assert_eq!(status, 200, "{tokens}");
    let userinfo = |base: String, token: String| {
        let http = http.clone();
        async move { http.get(format!("{base}/userinfo")).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(userinfo(node(1), tokens["access_token"].as_str().unwrap().into()).await, 200);
    let r = http
        .post(format!("{}/token", node(0)))
        .basic_auth("webapp", Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let (status, refreshed) = json(r).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(userinfo(node(1), refreshed["access_token"].as_str().unwrap().into()).await, 200);

    // The code is single-use across nodes too.
    let replay = exchange_code_at(&node(1), "webapp", &secret, &code, Some(VERIFIER)).await;
    assert_eq!(replay.status(), 400);
    // The ID Token signed by node 0 verifies with node 1's JWKS.
    let id_token = tokens["id_token"].as_str().unwrap();
    let kid = {
        use base64::Engine;
        let header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id_token.split('.').next().unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
    };
    let jwks = http.get(format!("{}/jwks.json", node(1))).send().await.unwrap().text().await.unwrap();
    assert!(jwks.contains(&kid));
}

/// Hardening 21: scheduled rotation run by every node at once rotates each algorithm once; the new
/// keys are published ahead of signing.
#[tokio::test]
async fn scheduled_rotation_on_every_node_rotates_each_key_once() {
    let op = TestOp::start().await;
    let later = oxid::model::now() + 10_000;
    let store = op.store.clone();
    let rotations = (0..3).map(|_| {
        let store = store.clone();
        async move { oxid::key_management::rotate_due_keys(store.as_ref(), later, 3600, 600).await.unwrap() }
    });
    let installed: Vec<_> = futures_join_all(rotations).await.into_iter().flatten().collect();
    assert_eq!(installed.len(), oxid::model::SigningAlg::ALL.len(), "one successor per algorithm");
    assert!(installed.iter().all(|k| k.activates_at == later + 600));
    let keys = store.signing_keys().await.unwrap();
    let unretired = keys.iter().filter(|k| k.retired_at.is_none()).count();
    assert_eq!(unretired, oxid::model::SigningAlg::ALL.len());
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    set.join_all().await
}

/// SQLite serves several processes on one file (two nodes, or a node and the `oxid` command line) with
/// one writer at a time. A transaction that reads before it writes must wait for another process's
/// write transaction rather than fail with SQLITE_BUSY, which would surface as a server_error.
#[tokio::test]
async fn on_sqlite_a_write_waits_for_another_processs_transaction() {
    let op = TestOp::start().await;
    let Some(path) = op.database_url.strip_prefix("sqlite://").map(str::to_owned) else {
        return; // PostgreSQL: row locks, no database-wide writer.
    };
    op.add_user("alice").await;
    op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |c| c.skip_consent = true).await;
    let b = Browser::new(&op);
    let code = query(&b.sign_in(&op.authorize_url("webapp", ""), "alice").await)["code"].clone();
    assert!(!code.is_empty());
    let sessions = op.store.sessions(None, oxid::model::now(), 10).await.unwrap();
    assert_eq!(sessions.len(), 1);

    // Another process holds the write lock for a moment, and commits a write meanwhile.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM login_failures WHERE key = 'none';").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        conn.execute_batch("COMMIT").unwrap();
    });
    is_locked.recv().unwrap();
    // Ending a session reads the session's clients and grants, then writes.
    let logout = oxid::config::Config::default().logout(oxid::model::now());
    let ended = op.store.end_sessions(oxid::store::SessionsToEnd::Sid(&sessions[0].sid), logout).await.unwrap();
    assert_eq!(ended.len(), 1, "the session is ended once the other transaction is done");
    other.join().unwrap();
}

/// Issue 12: clients are read from a per-node cache. A change made elsewhere (here straight in the
/// store, as the CLI or another node does) reaches a node within `record_cache_ttl`; until then the
/// node answers from memory.
#[tokio::test]
async fn a_client_changed_elsewhere_takes_effect_within_the_cache_ttl() {
    let op = TestOp::start_with(|c| c.record_cache_ttl = 5).await;
    let (client, secret) = op.add_client("svc", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let old = secret.unwrap();
    let status = |secret: String| {
        let url = op.url("/token");
        async move {
            let form = [("grant_type", "client_credentials")];
            let r = reqwest::Client::new().post(url).basic_auth("svc", Some(secret)).form(&form).send().await.unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(status(old.clone()).await, 200);
    let new = oxid::crypto::random_token();
    assert!(op.store.set_client_secret(&client.id, &oxid::crypto::token_hash(&new), None).await.unwrap());
    assert_eq!(status(old.clone()).await, 200, "served from this node's cache until its entry expires");
    op.advance_clock(5);
    assert_eq!(status(old).await, 401, "the replaced secret no longer works");
    assert_eq!(status(new).await, 200);
}

/// Users are served from a node's cache on the token paths (ID Tokens, UserInfo, introspection): a
/// change made elsewhere (the CLI, another node) reaches this node within `record_cache_ttl`.
#[tokio::test]
async fn a_user_changed_elsewhere_shows_within_the_cache_ttl() {
    let op = TestOp::start_with(|c| c.record_cache_ttl = 5).await;
    let alice = op.add_user("alice").await;
    let (_, secret) = op.add_client("webapp", ClientAuthMethod::ClientSecretBasic, |_| {}).await;
    let secret = secret.unwrap();
    let location = Browser::new(&op).sign_in(&op.authorize_url("webapp", ""), "alice").await;
    let code = query(&location)["code"].clone();
    let (_, tokens) = json(exchange_code_at(&op.nodes[0], "webapp", &secret, &code, Some(VERIFIER)).await).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let username = || async {
        let http = reqwest::Client::new().post(op.url("/introspect")).basic_auth("webapp", Some(&secret));
        let (_, answer) = json(http.form(&[("token", token.as_str())]).send().await.unwrap()).await;
        answer["username"].clone()
    };
    assert_eq!(username().await, "alice");
    op.store.rename_user(&alice.id, "alicia").await.unwrap();
    assert_eq!(username().await, "alice", "served from this node's cache until its entry expires");
    op.advance_clock(5);
    assert_eq!(username().await, "alicia");
}
