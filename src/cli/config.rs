//! `pullstack config check FILE...`

use crate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate config files; exits non-zero naming the file, line, column
    /// and field of the first error in each.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Check { files } = command;
    let mut ok = true;
    for file in files {
        match Config::load(&file) {
            Ok(config) => println!(
                "{}: ok (app {}, repository {})",
                file.display(),
                config.app,
                config.repository
            ),
            Err(err) => {
                eprintln!("{err}");
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
