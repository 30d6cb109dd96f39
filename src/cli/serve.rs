//! `pullstack serve`: the webhook server.

use crate::server::{self, Options};
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Secrets are not flags: they come from the environment only (see
/// `PULLSTACK_WEBHOOK_SECRET`, `PULLSTACK_GITHUB_TOKEN`, `PULLSTACK_GITHUB_APP_ID`
/// and `PULLSTACK_GITHUB_APP_KEY`, each also as `..._FILE`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "PULLSTACK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    config: super::ConfigFile,
    /// GitHub API base URL; for GitHub Enterprise Server, `https://HOST/api/v3`.
    #[arg(
        long,
        env = "PULLSTACK_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    github_api_url: String,
    /// How long work in flight may finish after SIGTERM.
    #[arg(long, env = "PULLSTACK_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let options = Options {
        listen: args.listen,
        config,
        github_api_url: args.github_api_url,
        auth: crate::settings::github_auth()?,
        webhook_secrets: crate::settings::webhook_secrets()?,
        shutdown_grace: args.shutdown_grace,
        aws: None,
        clock: crate::clock::Clock::system(),
    };
    let running = server::start(options).await?;
    let token = running.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    running.wait().await.context("server stopped")?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
