//! Process settings that are secrets: read only from the environment (or from
//! files the environment names), typed so they cannot be printed.

use crate::domain::seal::Seal;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;

/// Environment variable names, in one place for docs and errors.
pub mod vars {
    pub const WEBHOOK_SECRET: &str = "PULLSTACK_WEBHOOK_SECRET";
    /// The previous secret, accepted too while a rotation is under way.
    pub const WEBHOOK_SECRET_PREVIOUS: &str = "PULLSTACK_WEBHOOK_SECRET_PREVIOUS";
    pub const GITHUB_TOKEN: &str = "PULLSTACK_GITHUB_TOKEN";
    pub const GITHUB_TOKEN_FALLBACK: &str = "GITHUB_TOKEN";
    pub const GITHUB_APP_ID: &str = "PULLSTACK_GITHUB_APP_ID";
    pub const GITHUB_APP_KEY: &str = "PULLSTACK_GITHUB_APP_KEY";
    pub const GITHUB_INSTALLATION_ID: &str = "PULLSTACK_GITHUB_INSTALLATION_ID";
    /// The key sticky comments' memories are sealed with, where there is
    /// no webhook secret (a GitHub Action).
    pub const SEAL_KEY: &str = "PULLSTACK_SEAL_KEY";
    /// The key production's gate hooks (`production.gates`) are signed with.
    pub const GATE_SECRET: &str = "PULLSTACK_GATE_SECRET";
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0} is not set (nor {0}_FILE)")]
    Missing(&'static str),
    #[error("{var}_FILE names {path}, which cannot be read: {source}")]
    File {
        var: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error(
        "set {} or {} and {}",
        vars::GITHUB_TOKEN,
        vars::GITHUB_APP_ID,
        vars::GITHUB_APP_KEY
    )]
    NoGitHubAuth,
    #[error(
        "both {token} and {} are set, so pullstack cannot tell which GitHub identity to act \
         as; unset one of them",
        vars::GITHUB_APP_ID
    )]
    AmbiguousGitHubAuth { token: &'static str },
}

/// Reads `VAR`, or the file named by `VAR_FILE`. Surrounding whitespace
/// (a trailing newline in a mounted file) is trimmed.
pub fn secret(var: &'static str) -> Result<Option<SecretString>, SecretError> {
    if let Ok(value) = std::env::var(var) {
        return Ok(Some(value.trim().to_owned().into()));
    }
    let Ok(path) = std::env::var(format!("{var}_FILE")) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(Path::new(&path)).map_err(|source| SecretError::File {
        var,
        path: path.clone(),
        source,
    })?;
    Ok(Some(text.trim().to_owned().into()))
}

/// The webhook secrets: the current one, and the previous one during a rotation.
pub fn webhook_secrets() -> Result<Vec<SecretString>, SecretError> {
    let current =
        secret(vars::WEBHOOK_SECRET)?.ok_or(SecretError::Missing(vars::WEBHOOK_SECRET))?;
    let mut secrets = vec![current];
    secrets.extend(secret(vars::WEBHOOK_SECRET_PREVIOUS)?);
    if secrets.iter().any(|s| s.expose_secret().is_empty()) {
        return Err(SecretError::Invalid {
            var: vars::WEBHOOK_SECRET,
            reason: "empty".into(),
        });
    }
    Ok(secrets)
}

/// The seal on sticky comments' memories: `PULLSTACK_SEAL_KEY` (empty is
/// unset), else the
/// webhook secrets (so `serve` and `handle-event` read each other's
/// memories), else none, in which case no approval recorded in a comment is
/// trusted.
pub fn seal() -> Result<Seal, SecretError> {
    // Empty counts as unset: an Action passes an empty input along.
    if let Some(key) = secret(vars::SEAL_KEY)?.filter(|key| !key.expose_secret().is_empty()) {
        return Ok(Seal::new([key.expose_secret()]));
    }
    match webhook_secrets() {
        Ok(secrets) => Ok(Seal::new(secrets.iter().map(|s| s.expose_secret()))),
        Err(SecretError::Missing(_)) => Ok(Seal::none()),
        Err(err) => Err(err),
    }
}

/// The key gate hooks are signed with, when `gates` (the config's
/// `production.gates`) are set: then it is required, and not empty.
pub fn gate_key(gates: &[String]) -> Result<Option<SecretString>, SecretError> {
    if gates.is_empty() {
        return Ok(None);
    }
    let key = secret(vars::GATE_SECRET)?.ok_or(SecretError::Missing(vars::GATE_SECRET))?;
    if key.expose_secret().is_empty() {
        return Err(SecretError::Invalid {
            var: vars::GATE_SECRET,
            reason: "empty".into(),
        });
    }
    Ok(Some(key))
}

/// GitHub credentials: a token, or a GitHub App id and private key.
pub fn github_auth() -> Result<crate::github::client::Auth, SecretError> {
    use crate::github::client::Auth;
    let app_id = std::env::var(vars::GITHUB_APP_ID).ok();
    for var in [vars::GITHUB_TOKEN, vars::GITHUB_TOKEN_FALLBACK] {
        let Some(token) = secret(var)? else {
            continue;
        };
        // A stray token next to App credentials must not silently win.
        if app_id.is_some() {
            return Err(SecretError::AmbiguousGitHubAuth { token: var });
        }
        tracing::info!("GitHub identity: the token in {var}");
        return Ok(Auth::Token(token));
    }
    let Some(app_id) = app_id else {
        return Err(SecretError::NoGitHubAuth);
    };
    tracing::info!(
        "GitHub identity: the GitHub App in {} and {}",
        vars::GITHUB_APP_ID,
        vars::GITHUB_APP_KEY
    );
    let app_id = app_id.trim().parse().map_err(|_| SecretError::Invalid {
        var: vars::GITHUB_APP_ID,
        reason: "not a number".into(),
    })?;
    let pem = secret(vars::GITHUB_APP_KEY)?.ok_or(SecretError::Missing(vars::GITHUB_APP_KEY))?;
    // The key's parse error could quote it; say only that it is not a key.
    let key =
        octocrab::EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(|_| {
            SecretError::Invalid {
                var: vars::GITHUB_APP_KEY,
                reason: "not an RSA private key in PEM form".into(),
            }
        })?;
    let installation_id = match std::env::var(vars::GITHUB_INSTALLATION_ID) {
        Ok(id) => Some(id.trim().parse().map_err(|_| SecretError::Invalid {
            var: vars::GITHUB_INSTALLATION_ID,
            reason: "not a number".into(),
        })?),
        Err(_) => None,
    };
    Ok(Auth::App {
        app_id,
        key,
        installation_id,
    })
}
