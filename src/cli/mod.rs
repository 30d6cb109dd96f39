//! The command line: one file per subcommand.

pub mod bootstrap;
mod config;
mod handle_event;
mod healthcheck;
mod images;
mod logs;
mod prod;
mod serve;

use crate::config::{Config, ConfigError};
use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Preview environments per pull request on AWS ECS Fargate.
#[derive(Debug, Parser)]
#[command(name = "pullstack", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "PULLSTACK_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook server.
    Serve(serve::Args),
    /// Create or update the shared stack (VPC, cluster, ECR repository), and
    /// the production load balancer with `production.strategy: alb`.
    Bootstrap(bootstrap::Args),
    /// Check config files.
    #[command(subcommand)]
    Config(config::Command),
    /// Exit 0 if a running server answers /healthz (for container health checks).
    Healthcheck(healthcheck::Args),
    /// Watch and steer production releases.
    Prod(prod::Args),
    /// Clean up ECR images nothing uses (`images prune [--dry-run]`).
    Images(images::Args),
    /// Reconcile one GitHub Actions event to the end (no server needed).
    HandleEvent(handle_event::Args),
    /// Print an environment's task logs (`logs 42 --follow --since 30m`).
    Logs(logs::Args),
}

/// The `--config` flag of every command that reads the config.
#[derive(Debug, clap::Args)]
pub struct ConfigFile {
    /// The YAML config file.
    #[arg(
        long,
        short,
        env = "PULLSTACK_CONFIG",
        default_value = "pullstack.yaml",
        global = true
    )]
    config: PathBuf,
}

impl ConfigFile {
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.config)
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Bootstrap(args) => bootstrap::run(args).await,
            Command::Config(command) => config::run(command),
            Command::Healthcheck(args) => healthcheck::run(args).await,
            Command::Prod(args) => prod::run(args).await,
            Command::Images(args) => images::run(args).await,
            Command::HandleEvent(args) => handle_event::run(args).await,
            Command::Logs(args) => logs::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
