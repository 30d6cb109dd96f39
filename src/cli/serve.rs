//! `pullstack serve`: the webhook server.

use crate::http::serve::HttpLimits;
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
    /// How long open HTTP connections may finish after SIGTERM before they
    /// are dropped.
    #[arg(long, env = "PULLSTACK_SHUTDOWN_DRAIN", default_value = "10s", value_parser = positive_duration)]
    shutdown_drain: Duration,
    /// HTTP connections open at once; more are answered 503 and closed. Keep
    /// it well under the descriptor limit (`ulimit -n`).
    #[arg(long, env = "PULLSTACK_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// How long a client may take to send a request's headers, from when it
    /// connects or its previous response was sent (so also how long a
    /// kept-alive connection may sit idle; behind a load balancer, set it
    /// above the balancer's idle timeout).
    #[arg(long, env = "PULLSTACK_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    header_timeout: Duration,
    /// How long a request may take from its headers to its answer, body
    /// included (GitHub waits 10 s for an answer).
    #[arg(long, env = "PULLSTACK_REQUEST_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    request_timeout: Duration,
    /// MiB of request bodies held at once across all connections; a delivery
    /// that finds no room within a second is answered 503 with Retry-After.
    /// At least 25 (GitHub's largest payload).
    #[arg(long, env = "PULLSTACK_BODY_MEMORY_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(25..))]
    body_memory_mib: u32,
}

impl Args {
    fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections as usize,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
            body_memory: self.body_memory_mib as usize * 1024 * 1024,
            shutdown_drain: self.shutdown_drain,
        }
    }
}

/// A duration above zero, as `10s` or `1m30s`.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than 0s".to_owned()),
        Ok(duration) => Ok(duration),
        Err(err) => Err(err.to_string()),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let http = args.http_limits();
    let gate_key = crate::settings::gate_key(&config.production.gates)?;
    let options = Options {
        listen: args.listen,
        config,
        github_api_url: args.github_api_url,
        auth: crate::settings::github_auth()?,
        webhook_secrets: crate::settings::webhook_secrets()?,
        shutdown_grace: args.shutdown_grace,
        http,
        aws: None,
        clock: crate::clock::Clock::system(),
        checks_origin: None,
        gate_key,
    };
    let signalled = shutdown_signal().context("listening for SIGTERM")?;
    let running = server::start(options).await?;
    let token = running.shutdown_token();
    tokio::spawn(async move {
        signalled.await;
        tracing::info!("shutting down");
        token.cancel();
    });
    running.wait().await.context("server stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// Listens for SIGTERM and Ctrl-C from now on. Set up before the server
/// starts, so a signal sent as soon as it says it listens stops it
/// gracefully rather than killing it.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve_args(args: &[&str]) -> Result<Args, clap::Error> {
        let cli = crate::cli::Cli::try_parse_from(["pullstack", "serve"].iter().chain(args))?;
        match cli.command {
            crate::cli::Command::Serve(args) => Ok(args),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn flag_defaults_are_the_documented_limits() {
        assert_eq!(
            serve_args(&[]).unwrap().http_limits(),
            HttpLimits::default()
        );
    }

    #[test]
    fn limits_are_read_from_flags() {
        let args = serve_args(&[
            "--max-connections=3",
            "--header-timeout=2s",
            "--request-timeout=1m",
            "--body-memory-mib=32",
            "--shutdown-drain=500ms",
        ])
        .unwrap();
        assert_eq!(
            args.http_limits(),
            HttpLimits {
                max_connections: 3,
                header_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(60),
                body_memory: 32 * 1024 * 1024,
                shutdown_drain: Duration::from_millis(500),
            }
        );
    }

    #[test]
    fn limits_that_cannot_work_are_refused() {
        for bad in [
            "--max-connections=0",
            "--header-timeout=0s",
            "--request-timeout=soon",
            "--shutdown-drain=0ms",
            // Below GitHub's largest payload, big deliveries could never land.
            "--body-memory-mib=24",
        ] {
            let err = serve_args(&[bad]).expect_err(bad).to_string();
            let flag = bad.split('=').next().unwrap();
            assert!(err.contains(flag), "{bad}: {err}");
        }
    }
}
