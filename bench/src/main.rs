//! oxid-bench: starts an oxid server (pinned to one core), drives closed-loop scenarios against it
//! at a fixed concurrency, and reports throughput, latency percentiles, errors and server memory.
//!
//! Run the generator on another core than the server, e.g.:
//! `taskset -c 0 target/release/oxid-bench --server-cpu 1`
//!
//! With `--issuer URL` it measures an OP that is already running (any OP: `scripts/bench-compare` runs
//! it against node-oidc-provider), signing in through whatever login and consent forms it shows.

mod conn;
mod form;
mod scenarios;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use scenarios::{Scenario, Target};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "oxid-bench", about = "Measure oxid: throughput, latency, errors, memory")]
struct Args {
    /// The oxid binary to start (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/oxid")]
    oxid: PathBuf,
    /// Database for the server; default: a fresh SQLite file. A postgres:// URL must name an empty database.
    #[arg(long)]
    database_url: Option<String>,
    /// Core the server is pinned to (with taskset); none to leave it unpinned.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Concurrent clients, each a closed loop (next request after the previous reply).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unmeasured seconds before each scenario.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Scenarios to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scenario::Discovery, Scenario::Jwks, Scenario::ClientCredentials, Scenario::JwtAccessToken, Scenario::Introspection, Scenario::Refresh, Scenario::CodeFlow, Scenario::Login])]
    scenarios: Vec<Scenario>,
    /// Concurrency for the password-login scenario (Argon2id makes it CPU-bound at any concurrency).
    #[arg(long, default_value_t = 8)]
    login_concurrency: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Measure the OP running at this issuer instead of starting oxid (its client and user must exist:
    /// see the client and user flags).
    #[arg(long)]
    issuer: Option<String>,
    /// With `--issuer`: the process whose memory is reported.
    #[arg(long, requires = "issuer")]
    server_pid: Option<u32>,
    /// The confidential client (client_secret_basic) allowed authorization_code, refresh_token and
    /// client_credentials, with the redirect URI http://127.0.0.1:9/cb.
    #[arg(long, default_value = server::CLIENT_ID)]
    client_id: String,
    #[arg(long, default_value = server::CLIENT_SECRET)]
    client_secret: String,
    /// The user who signs in; UserInfo must give `email` USERNAME@example.com.
    #[arg(long, default_value = server::USERNAME)]
    username: String,
    #[arg(long, default_value = server::PASSWORD)]
    password: String,
    /// Scope asked for with client_credentials (empty: none).
    #[arg(long, default_value = "api")]
    client_credentials_scope: String,
}

#[derive(Serialize)]
struct ScenarioReport {
    scenario: Scenario,
    concurrency: usize,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// Server RSS at the end of the scenario, KiB.
    rss_kib: u64,
    /// Of which anonymous (allocated by the server rather than mapped code), KiB.
    anon_kib: u64,
}

#[derive(Serialize)]
struct Report {
    /// What was measured: oxid on its database, or the issuer given.
    subject: String,
    server_cpu: Option<usize>,
    duration_secs: u64,
    idle_rss_kib: u64,
    idle_anon_kib: u64,
    peak_rss_kib: u64,
    scenarios: Vec<ScenarioReport>,
}

struct WorkerResult {
    latencies: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn worker(scenario: Scenario, target: Arc<Target>, measure_from: Instant, until: Instant) -> WorkerResult {
    let mut result = WorkerResult {
        latencies: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut conn = target.connection();
    let mut state = match scenarios::prepare(scenario, &target, &mut conn).await {
        Ok(s) => s,
        Err(e) => {
            result.errors += 1;
            result.first_error = Some(format!("setup: {e:#}"));
            return result;
        }
    };
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let outcome = scenarios::run_once(scenario, &target, &mut conn, &mut state).await;
        if started < measure_from {
            continue;
        }
        match outcome {
            Ok(()) => {
                result.ok += 1;
                let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                result.latencies.record(micros).expect("within bounds");
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    result
}

async fn measure(args: &Args, scenario: Scenario, target: &Arc<Target>, server: Option<u32>) -> ScenarioReport {
    let concurrency = if scenario == Scenario::Login { args.login_concurrency } else { args.concurrency };
    // Workers do their setup (logins) first; the clock for warm-up starts after a grace second.
    let start = Instant::now() + Duration::from_secs(1);
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.duration);
    let handles: Vec<_> =
        (0..concurrency).map(|_| tokio::spawn(worker(scenario, target.clone(), measure_from, until))).collect();
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for h in handles {
        let r = h.await.expect("worker does not panic");
        merged.add(&r.latencies).expect("same bounds");
        ok += r.ok;
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
    let memory = server.and_then(|pid| server::memory_kib(pid).ok());
    ScenarioReport {
        scenario,
        concurrency,
        ops_per_sec: ok as f64 / args.duration as f64,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: merged.max() as f64 / 1000.0,
        ok,
        errors,
        first_error,
        rss_kib: memory.as_ref().map_or(0, |m| m.rss),
        anon_kib: memory.as_ref().map_or(0, |m| m.anon),
    }
}

fn print_table(report: &Report) {
    println!(
        "{} | server cpu {} | {}s per scenario",
        report.subject,
        report.server_cpu.map_or("unpinned".into(), |c| c.to_string()),
        report.duration_secs
    );
    println!(
        "{:<18} {:>5} {:>12} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9}",
        "scenario", "conc", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "rss MiB", "anon MiB"
    );
    for s in &report.scenarios {
        println!(
            "{:<18} {:>5} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>9.1} {:>9.1}",
            serde_json::to_value(s.scenario).unwrap().as_str().unwrap_or("?"),
            s.concurrency,
            s.ops_per_sec,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.errors,
            s.rss_kib as f64 / 1024.0,
            s.anon_kib as f64 / 1024.0
        );
        if let Some(e) = &s.first_error {
            println!("  first error: {e}");
        }
    }
    println!(
        "server RSS: idle {:.1} MiB ({:.1} MiB anonymous), peak {:.1} MiB",
        report.idle_rss_kib as f64 / 1024.0,
        report.idle_anon_kib as f64 / 1024.0,
        report.peak_rss_kib as f64 / 1024.0
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The server oxid-bench starts (kept alive until the end), or none with --issuer.
    let (started, issuer, pid) = match &args.issuer {
        Some(issuer) => (None, issuer.trim_end_matches('/').to_owned(), args.server_pid),
        None => {
            let server =
                server::start(&args.oxid, args.database_url.as_deref(), args.server_cpu, args.concurrency).await?;
            let (issuer, pid) = (server.issuer.clone(), server.pid());
            (Some(server), issuer, Some(pid))
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = pid.map(server::memory_kib).transpose()?;
    let client = scenarios::Client {
        id: args.client_id.clone(),
        secret: args.client_secret.clone(),
        username: args.username.clone(),
        password: args.password.clone(),
        client_credentials_scope: args.client_credentials_scope.clone(),
    };
    let target = Arc::new(Target::discover(&issuer, client).await?);
    let mut scenarios = Vec::new();
    for scenario in &args.scenarios {
        let report = measure(&args, *scenario, &target, pid).await;
        eprintln!("{:?}: {:.0} ops/s, {} errors", scenario, report.ops_per_sec, report.errors);
        scenarios.push(report);
    }
    let peak_rss_kib = pid.map(server::memory_kib).transpose()?.map_or(0, |m| m.peak_rss);
    let subject = match (&args.issuer, &args.database_url) {
        (Some(issuer), _) => issuer.clone(),
        (None, Some(url)) if url.starts_with("postgres") => "oxid on PostgreSQL".to_owned(),
        (None, _) => "oxid on SQLite".to_owned(),
    };
    let report = Report {
        subject,
        server_cpu: args.server_cpu,
        duration_secs: args.duration,
        idle_rss_kib: idle.as_ref().map_or(0, |m| m.rss),
        idle_anon_kib: idle.as_ref().map_or(0, |m| m.anon),
        peak_rss_kib,
        scenarios,
    };
    print_table(&report);
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = &args.json {
        std::fs::write(path, &json)?;
    }
    let failed = report.scenarios.iter().any(|s| s.errors > 0);
    drop(started);
    std::process::exit(if failed { 1 } else { 0 })
}
