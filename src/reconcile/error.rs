//! What a failed reconcile is, and so what happens next.
//!
//! - A **user** error is the user's mistake (a config the template cannot
//!   take, say). It is said once on the PR in plain words and not retried:
//!   nothing changes until the user does.
//! - A **transient** error is the world being busy (throttling, a conflict
//!   with an operation in flight, a GitHub rate limit). It is retried with
//!   backoff and never shown.
//! - An **internal** error is ours. It is retried with backoff too, and once
//!   it persists the PR gets a short notice carrying the same correlation id
//!   as the log line, so an operator can find it.

use crate::github::client::ForgeError;
use std::fmt;

/// The kinds of [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Transient,
    Internal,
}

/// A reconcile's failure, classified.
///
/// GitHub, AWS and `anyhow` errors convert into it with `?` and are
/// classified on the way, by what they are underneath any context.
pub struct Error {
    kind: Kind,
    /// Ties the PR notice to the log line.
    id: String,
    source: anyhow::Error,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The user's mistake; `message` is shown on the PR as it is, so it
    /// says what to do next.
    pub fn user(message: impl Into<String>) -> Error {
        Error::new(Kind::User, anyhow::Error::msg(message.into()))
    }

    /// Our failure, whatever its cause.
    pub fn internal(source: impl Into<anyhow::Error>) -> Error {
        Error::new(Kind::Internal, source.into())
    }

    fn new(kind: Kind, source: anyhow::Error) -> Error {
        let id = format!("{:08x}", rand::random::<u32>());
        Error { kind, id, source }
    }

    /// Classifies any error by what it is underneath its context.
    fn classify(source: anyhow::Error) -> Error {
        let transient = source
            .chain()
            .any(|cause| match cause.downcast_ref::<ForgeError>() {
                Some(forge) => forge.is_transient(),
                None => cause
                    .downcast_ref::<crate::aws::Error>()
                    .is_some_and(crate::aws::Error::is_retryable),
            });
        let kind = if transient {
            Kind::Transient
        } else {
            Kind::Internal
        };
        Error::new(kind, source)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The correlation id shown on the PR and logged with the error.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Adds what was being done, as `anyhow::Context` does.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Error {
        Error {
            source: self.source.context(context),
            ..self
        }
    }

    /// The user's message, for a user error.
    pub fn user_message(&self) -> Option<String> {
        (self.kind == Kind::User).then(|| self.source.to_string())
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Error {
        Error::classify(err)
    }
}

impl From<ForgeError> for Error {
    fn from(err: ForgeError) -> Error {
        Error::classify(err.into())
    }
}

impl From<crate::aws::Error> for Error {
    fn from(err: crate::aws::Error) -> Error {
        Error::classify(err.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#} (ref {})", self.source, self.id)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} error {}: {:#}", self.kind, self.id, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_rate_limits_are_transient_and_the_rest_internal() {
        let limited = ForgeError::Refused {
            status: 403,
            message: "You have exceeded a secondary rate limit".into(),
        };
        assert_eq!(Error::from(limited).kind(), Kind::Transient);
        let refused = ForgeError::Refused {
            status: 422,
            message: "Validation Failed".into(),
        };
        assert_eq!(Error::from(refused).kind(), Kind::Internal);
        assert_eq!(Error::from(ForgeError::NotFound).kind(), Kind::Internal);
    }

    #[test]
    fn aws_throttling_and_conflicts_are_transient() {
        use crate::aws::{Error as AwsError, ErrorKind};
        let aws = |kind| AwsError::new(kind, "CloudFormation", "CreateStack", "s", "C", "m");
        assert_eq!(
            Error::from(aws(ErrorKind::Throttled)).kind(),
            Kind::Transient
        );
        assert_eq!(
            Error::from(aws(ErrorKind::Conflict)).kind(),
            Kind::Transient
        );
        assert_eq!(Error::from(aws(ErrorKind::Other)).kind(), Kind::Internal);
        assert_eq!(
            Error::from(aws(ErrorKind::Validation)).kind(),
            Kind::Internal
        );
    }

    #[test]
    fn context_keeps_the_kind() {
        let err = anyhow::Error::new(ForgeError::Transport("reset".into())).context("reading");
        let err = Error::from(err).context("the pass");
        assert_eq!(err.kind(), Kind::Transient);
        assert!(err.to_string().starts_with("the pass: reading"), "{err}");
        assert!(
            err.to_string().ends_with(&format!("(ref {})", err.id())),
            "{err}"
        );
    }

    #[test]
    fn user_errors_keep_their_words() {
        let err = Error::user("Fix `preview.env`.");
        assert_eq!(err.user_message().as_deref(), Some("Fix `preview.env`."));
        assert_eq!(Error::internal(anyhow::anyhow!("x")).user_message(), None);
        assert_ne!(Error::user("a").id(), Error::user("a").id());
    }
}
