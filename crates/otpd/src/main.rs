use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use otpd::config::Config;
use otpd::{commands, server, telemetry};
use otpd_core::SystemClock;

// Requests allocate many small short-lived buffers; glibc malloc was a
// tenth of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Email one-time codes: proves that a person controls an address.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; `OTPD_*` variables override it.
    #[arg(long, global = true, env = "OTPD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the web page and the outbox worker.
    Serve,
    /// Send a test message through the configured mailer.
    SendTestEmail {
        /// Where to send it.
        address: String,
    },
    /// Exit 0 if the server on the configured address is healthy.
    Healthcheck,
    /// Print a new random secret for OTPD_SECRET.
    GenSecret,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line, without a backtrace.
            eprintln!("otpd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::GenSecret = cli.command {
        commands::gen_secret();
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    let _flush_logs_on_exit = telemetry::init(config.log_format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match cli.command {
        Command::Serve => serve(&config).await,
        Command::SendTestEmail { address } => commands::send_test_email(&config, &address).await,
        Command::Healthcheck => commands::healthcheck(&config).await,
        Command::GenSecret => Ok(()),
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let running = server::start(config, Arc::new(SystemClock), listener).await?;
    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down: finishing requests in flight");
    running.stop().await
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return "interrupt";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
