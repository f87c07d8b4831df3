//! Prometheus metrics: HTTP requests by endpoint and status, latency histograms, tokens issued by
//! grant, failed logins, and store operation latency. Served by oxid's own `/metrics` route.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The process-wide recorder (metrics has one global recorder; several servers in one test process
/// share it).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Installs the recorder; call before serving.
pub fn init() {
    handle();
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded samples into the histograms, periodically and forever. The recorder keeps every
/// sample until upkeep runs, so without this a server nobody scrapes would grow without bound.
pub async fn run_upkeep() {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle().run_upkeep();
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// Middleware: counts and times every request under its route (never the raw path, which can hold ids).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("oxid_http_requests_total", "endpoint" => endpoint.clone(), "status" => status).increment(1);
    metrics::histogram!("oxid_http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

pub fn token_issued(grant: &'static str) {
    metrics::counter!("oxid_tokens_issued_total", "grant" => grant).increment(1);
}

/// A mail the OP tried to send; `outcome` is `sent` or `failed`.
pub fn mail(kind: &'static str, outcome: &'static str) {
    metrics::counter!("oxid_mails_total", "kind" => kind, "outcome" => outcome).increment(1);
}

pub fn failed_login() {
    metrics::counter!("oxid_failed_logins_total").increment(1);
}

/// Runs a synchronous store operation and records how long it took.
pub fn timed_sync<T>(operation: &'static str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = work();
    record_store_operation(operation, started);
    out
}

fn record_store_operation(operation: &'static str, started: Instant) {
    metrics::histogram!("oxid_store_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

/// Runs a store operation and records how long it took.
pub async fn timed<T>(operation: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    record_store_operation(operation, started);
    out
}
