//! `pullstack healthcheck`: the container image's HEALTHCHECK, which has no curl.

use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The URL to check.
    #[arg(
        long,
        env = "PULLSTACK_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:8080/healthz"
    )]
    url: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let healthy = client
        .get(&args.url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
