//! `pullstack images prune`: the ECR image clean-up `serve` runs, on
//! demand, with a dry run that only lists what would go.

use crate::aws::Aws;
use crate::prune::{self, Options};
use anyhow::Context;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Delete images nothing uses from repositories tagged
    /// pullstack:prune=true, once idle for images.prune_after.
    Prune {
        /// List what would be deleted, and why, without deleting anything.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    match args.command {
        Command::Prune { dry_run } => {
            let aws = Aws::from_env().await;
            let options = Options {
                window: config.images.prune_after,
                dry_run,
            };
            let report = prune::prune(&aws, &options)
                .await
                .context("image prune failed")?;
            if report.repositories.is_empty() {
                println!(
                    "no ECR repository is tagged {}={}: nothing to do",
                    crate::aws::registry::PRUNE_TAG,
                    crate::aws::registry::PRUNE_TAG_VALUE
                );
            }
            for image in &report.images {
                println!("{image}");
            }
            for error in &report.errors {
                eprintln!("error: {}: {}", error.repository, error.error);
            }
            println!("{}", report.summary());
            Ok(if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
