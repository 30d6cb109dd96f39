//! `pullstack config check FILE...`

use crate::config::{Config, ConfigError};
use crate::domain::naming::RepoName;
use anyhow::Context;
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
        /// Check each FILE as a repository's `.pullstack.yaml` laid over
        /// this server config (one with `repositories:`).
        #[arg(long, requires = "repository")]
        server: Option<PathBuf>,
        /// The repository, as owner/name, the `.pullstack.yaml` files are
        /// checked for (with `--server`).
        #[arg(long, requires = "server")]
        repository: Option<String>,
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
    let Command::Check {
        files,
        output,
        server,
        repository,
    } = command;
    let over = match (server, repository) {
        (Some(server), Some(repository)) => {
            let server = match Config::load(&server) {
                Ok(server) => server,
                Err(err) => {
                    eprintln!("{err}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let repo = RepoName::parse(&repository)
                .with_context(|| format!("--repository {repository:?} is not owner/name"))?;
            Some((server, repo))
        }
        _ => None,
    };
    let mut ok = true;
    let mut checked = Vec::new();
    for file in files {
        let loaded = match &over {
            None => Config::load(&file),
            Some((server, repo)) => std::fs::read_to_string(&file)
                .map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })
                .and_then(|text| server.for_repository_file(&file, repo, &text)),
        };
        match loaded {
            Ok(config) => {
                if let Some(warning) = public_warning(&config) {
                    eprintln!("{}: warning: {warning}", file.display());
                }
                let repository = if config.serves_many() {
                    config.repositories.0.patterns().join(", ")
                } else {
                    config.repository.clone()
                };
                checked.push(Checked {
                    shared_stack: config.shared_stack_name(),
                    app: config.app,
                    repository,
                    file,
                })
            }
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

/// A warning when previews are open to anyone (`preview.access` unset):
/// said plainly for a public repository, whose previews anyone can find,
/// and as a doubt when the repository's visibility is unknown.
fn public_warning(config: &Config) -> Option<String> {
    if !config.preview.enabled || !config.preview.access.is_public() {
        return None;
    }
    if config.serves_many() {
        return Some(
            "preview.access is public: anyone who finds a preview's URL reaches it, in \
             every repository this server serves. Set preview.access (allow_cidrs, oidc or \
             cognito) unless that is intended"
                .to_owned(),
        );
    }
    let repo = &config.repository;
    Some(match visibility(repo) {
        Some(false) => return None,
        Some(true) => format!(
            "{repo} is a public repository and preview.access is public: anyone who \
             finds a preview's URL reaches it. Set preview.access (allow_cidrs, oidc \
             or cognito) unless that is intended"
        ),
        None => format!(
            "preview.access is public: anyone who finds a preview's URL reaches it. \
             Could not tell whether {repo} is a public repository (this check reads \
             it only from a GitHub Actions event)"
        ),
    })
}

/// Whether `repo` is public, as the GitHub Actions event this check runs
/// in says (`GITHUB_EVENT_PATH`): no credentials and no request needed.
fn visibility(repo: &str) -> Option<bool> {
    let path = std::env::var_os("GITHUB_EVENT_PATH")?;
    let event: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let repository = event.get("repository")?;
    let name = repository.get("full_name")?.as_str()?;
    if !name.eq_ignore_ascii_case(repo) {
        return None;
    }
    repository.get("private")?.as_bool().map(|private| !private)
}
