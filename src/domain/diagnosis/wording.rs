//! How a diagnosis is said on the PR: a cause in plain words and what to
//! do about it, and how a one-off task ended.

use super::{Cause, OneOffEnd};
use std::fmt;

impl Cause {
    /// What to do about it.
    pub fn next(&self) -> &'static str {
        match self {
            Cause::ImagePull { .. } => {
                "Check that the image was pushed for this commit and that the task execution \
                 role may pull it (and read its secrets)."
            }
            Cause::OutOfMemory { .. } => {
                "Raise `preview.memory` in the config, or make the app use less at start."
            }
            Cause::Exited { .. } => {
                "Run the image locally with the same environment, or read the task's logs \
                 in CloudWatch."
            }
            Cause::HealthCodes { .. } | Cause::HealthFailed { .. } => {
                "Make the app answer 200 on that path, or point `preview.health_path` at one \
                 that does."
            }
            Cause::HealthTimeout { .. } => {
                "Check that the app listens on `preview.port` on all interfaces (0.0.0.0) and \
                 answers quickly."
            }
            Cause::SpotInterrupted => {
                "`/pullstack redeploy` tries again; set `preview.capacity: FARGATE` to avoid \
                 Spot."
            }
            Cause::Other { .. } => "Read the task's logs in CloudWatch.",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::ImagePull { detail } => {
                write!(f, "The task could not pull its image: {detail}")
            }
            Cause::OutOfMemory { container } => write!(
                f,
                "The `{container}` container ran out of memory (exit code 137, OutOfMemoryError)."
            ),
            Cause::Exited {
                container,
                code,
                reason,
            } => {
                write!(
                    f,
                    "The essential `{container}` container exited with code {code}"
                )?;
                if reason.is_empty() {
                    f.write_str(".")
                } else {
                    write!(f, " ({reason}).")
                }
            }
            Cause::HealthCodes { codes, path } => write!(
                f,
                "The load balancer's health check got {codes} on `{path}`."
            ),
            Cause::HealthTimeout { path, detail } => {
                write!(
                    f,
                    "The load balancer's health check on `{path}` got no answer"
                )?;
                if detail.is_empty() {
                    f.write_str(".")
                } else {
                    write!(f, " ({detail}).")
                }
            }
            Cause::HealthFailed { path } => write!(
                f,
                "The tasks failed the load balancer's health check on `{path}`."
            ),
            Cause::SpotInterrupted => f.write_str("Fargate Spot took the task's capacity back."),
            Cause::Other { reason } => write!(f, "ECS stopped the task: {reason}"),
        }
    }
}

/// The words for a one-off task `name` running `command` that ended as
/// `end`, with ECS's `stopped_reason`.
pub fn one_off(name: &str, command: &[String], end: &OneOffEnd, stopped_reason: &str) -> String {
    let command = command.join(" ");
    let command: String = command.chars().take(200).collect();
    let how = match end {
        OneOffEnd::Exited(code) => format!("exited with code {code}"),
        OneOffEnd::NoExitCode => "stopped without an exit code".to_owned(),
        OneOffEnd::TimedOut(after) => format!(
            "did not finish within {}, so it was stopped",
            crate::domain::comment::human(*after)
        ),
        OneOffEnd::Gone => "is no longer known to ECS".to_owned(),
    };
    let mut text = format!("`{name}` (`{}`) {how}.", command.replace('`', "'"));
    if !stopped_reason.is_empty() && !matches!(end, OneOffEnd::TimedOut(_)) {
        let reason: String = stopped_reason.chars().take(300).collect();
        text.push_str(&format!(" ECS's stop reason: {reason}."));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::diagnosis::tests::{task, unhealthy};
    use crate::domain::diagnosis::{from_target, from_task};

    #[test]
    fn essential_container_exit_names_the_code() {
        let t = task(
            "Essential container in task exited",
            "EssentialContainerExited",
            &[("sidecar", Some(0), ""), ("app", Some(3), "")],
        );
        let cause = from_task(&t, "/").unwrap();
        assert_eq!(
            cause.to_string(),
            "The essential `app` container exited with code 3."
        );
    }

    #[test]
    fn unknown_reasons_are_passed_on() {
        let t = task(
            "Timeout waiting for network interface provisioning",
            "",
            &[],
        );
        assert_eq!(
            from_task(&t, "/").unwrap().to_string(),
            "ECS stopped the task: Timeout waiting for network interface provisioning"
        );
    }

    #[test]
    fn health_check_codes_are_named_with_the_path() {
        let t = unhealthy(
            "Target.ResponseCodeMismatch",
            "Health checks failed with these codes: [404]",
        );
        let cause = from_target(&t, "/health").unwrap();
        assert_eq!(
            cause.to_string(),
            "The load balancer's health check got 404 on `/health`."
        );
        let many = unhealthy("Target.ResponseCodeMismatch", "codes: [404,502]");
        assert!(
            from_target(&many, "/")
                .unwrap()
                .to_string()
                .contains("404, 502")
        );
    }

    #[test]
    fn one_off_words_name_code_reason_and_timeout() {
        let cmd = ["./migrate".to_owned(), "up".to_owned()];
        assert_eq!(
            one_off(
                "before_traffic",
                &cmd,
                &OneOffEnd::Exited(3),
                "Essential container in task exited"
            ),
            "`before_traffic` (`./migrate up`) exited with code 3. ECS's stop reason: \
             Essential container in task exited."
        );
        let timed_out = OneOffEnd::TimedOut(std::time::Duration::from_secs(600));
        assert_eq!(
            one_off("before_traffic", &cmd, &timed_out, "Task stopped by user"),
            "`before_traffic` (`./migrate up`) did not finish within 10m 00s, so it was stopped."
        );
        let odd = ["echo".to_owned(), "`rm`".to_owned()];
        assert!(!one_off("x", &odd, &OneOffEnd::NoExitCode, "").contains("`rm`"));
    }
}
