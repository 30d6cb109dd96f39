//! GitHub's errors, split by what the caller does about them.

/// An error from GitHub, split by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("not found on GitHub")]
    NotFound,
    #[error("GitHub refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("GitHub request failed: {0}")]
    Transport(String),
    /// GitHub answered with something pullstack cannot read.
    #[error("GitHub's answer cannot be read: {0}")]
    Malformed(String),
}

impl ForgeError {
    /// Whether waiting and asking again may help: a rate limit, GitHub
    /// being unavailable, or the connection failing.
    pub fn is_transient(&self) -> bool {
        match self {
            ForgeError::NotFound => false,
            ForgeError::Refused { status, .. } => *status >= 500 || self.is_rate_limit(),
            ForgeError::Transport(_) => true,
            ForgeError::Malformed(_) => false,
        }
    }

    /// Whether GitHub refused for a rate limit: a 429, or a 403 that says so.
    pub fn is_rate_limit(&self) -> bool {
        match self {
            ForgeError::Refused { status, message } => {
                *status == 429
                    || (*status == 403 && message.to_ascii_lowercase().contains("rate limit"))
            }
            _ => false,
        }
    }

    pub(super) fn from_octocrab(err: octocrab::Error) -> ForgeError {
        match err {
            octocrab::Error::GitHub { source, .. } if source.status_code == 404 => {
                ForgeError::NotFound
            }
            octocrab::Error::GitHub { source, .. } => ForgeError::Refused {
                status: source.status_code.as_u16(),
                message: source.message.chars().take(200).collect(),
            },
            // Display only: octocrab's Debug output carries backtraces.
            other => ForgeError::Transport(other.to_string()),
        }
    }
}
