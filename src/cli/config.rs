//! `pullstack config check FILE...`

use crate::config::Config;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate config files; exits non-zero naming the file, line, column
    /// and field of the first error in each.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format; `json` lists each valid file's names, for scripts.
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Output {
    #[default]
    Human,
    Json,
}

/// What scripts need from a valid config (the GitHub Action finds the
/// shared stack, and so the ECR repository, from it).
#[derive(Serialize)]
struct Checked {
    file: PathBuf,
    app: String,
    repository: String,
    shared_stack: String,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Check { files, output } = command;
    let mut ok = true;
    let mut checked = Vec::new();
    for file in files {
        match Config::load(&file) {
            Ok(config) => checked.push(Checked {
                shared_stack: config.shared_stack_name(),
                app: config.app,
                repository: config.repository,
                file,
            }),
            Err(err) => {
                eprintln!("{err}");
                ok = false;
            }
        }
    }
    match output {
        Output::Human => {
            for c in &checked {
                println!(
                    "{}: ok (app {}, repository {})",
                    c.file.display(),
                    c.app,
                    c.repository
                );
            }
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(&checked)?),
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
