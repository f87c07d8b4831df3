//! Health, readiness, metrics and request ids.

mod common;

use common::TestOp;
use oxid::types::ClientAuthMethod;

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
        "oxid_store_operation_duration_seconds_bucket{operation=\"insert_tokens\"",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in:\n{metrics}");
    }
    assert!(!metrics.contains(secret.as_deref().unwrap()));
}
