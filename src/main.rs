use std::process::ExitCode;

use clap::Parser;
use oxid::cli::{Cli, Command};
use oxid::config::{Config, LogFormat};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

// jemalloc in place of glibc's malloc: allocation and freeing were 7.5% of a code flow's CPU under load
// (glibc's free-list consolidation among it); see the README's performance section.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oxid: {e}");
            return ExitCode::from(2);
        }
    };
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    // RUST_LOG as `target=level` directives and a bare default level. `Targets` rather than `EnvFilter`:
    // span and field filters were never needed, and EnvFilter's matching engine is code that every
    // server would map (issue 12, idle RSS).
    let default_filter = || default_level.parse::<Targets>().expect("a level");
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => directives.parse().unwrap_or_else(|e| {
            eprintln!("oxid: RUST_LOG {directives:?}: {e}; logging at {default_level}");
            default_filter()
        }),
        _ => default_filter(),
    };
    // Colours only for a person at a terminal, never into a log file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let subscriber = tracing_subscriber::registry().with(filter);
    match config.log_format {
        LogFormat::Json => subscriber.with(output.json()).init(),
        LogFormat::Text => subscriber.with(output).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oxid: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(oxid::cli::run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxid: {e:#}");
            // 2 for what the operator asked wrongly (as for configuration), 1 for what failed.
            if e.is::<oxid::cli::UsageError>() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
