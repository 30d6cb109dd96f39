//! Smoke checks run against a preview once it is ready, reported as a
//! GitHub Check Run.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// One check of a preview: an HTTP request (`path`) and what its answer
/// must be, or a one-off task (`task`) that must exit 0. Exactly one of
/// `path` and `task`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Its name in the Check Run's table. Required.
    pub name: String,
    /// The path requested on the preview URL, starting with `/`. Required
    /// unless `task` is set.
    #[serde(default)]
    pub path: String,
    /// The HTTP method. Default: GET.
    #[serde(default)]
    method: Option<Method>,
    /// The status the answer must have. Default: 200.
    #[serde(default)]
    expect_status: Option<u16>,
    /// A string the answer's body must contain. Default: none.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) the answer's body must
    /// match. Default: none.
    #[serde(default)]
    pub body_matches: Option<Pattern>,
    /// How long the request may take, answer included. Default: 10s.
    #[serde(with = "humantime_serde", default)]
    timeout: Option<Duration>,
    /// The team's own test command, run as a one-off Fargate task instead
    /// of an HTTP request. Default: none (an HTTP check).
    #[serde(default)]
    pub task: Option<TaskCheck>,
}

impl Check {
    /// The HTTP method of an HTTP check.
    pub fn method(&self) -> Method {
        self.method.unwrap_or_default()
    }

    /// The status an HTTP check's answer must have.
    pub fn expect_status(&self) -> u16 {
        self.expect_status.unwrap_or(200)
    }

    /// How long an HTTP check's request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(10))
    }
}

/// A check that runs a command as a one-off Fargate task on the preview's
/// task definition (its image, variables, secrets, network and task role),
/// with `PREVIEW_URL` and, for a private preview, `PULLSTACK_BYPASS_HEADER`
/// and `PULLSTACK_BYPASS_SECRET_ARN` in its environment. It passes when
/// the command exits 0.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaskCheck {
    /// The command and its arguments, replacing the image's own (no
    /// shell: `["sh", "-c", "..."]` for one). Required.
    pub command: Vec<String>,
    /// Another image to run the command on. Not supported: ECS cannot
    /// override a container's image, so a task check runs on the PR's
    /// image; set, it is a config error. Default: none.
    #[serde(default)]
    pub image: Option<String>,
    /// How long it may run; it is then stopped and the check fails.
    /// Default: 10m.
    #[serde(with = "humantime_serde", default = "TaskCheck::default_timeout")]
    pub timeout: Duration,
}

impl TaskCheck {
    fn default_timeout() -> Duration {
        Duration::from_secs(10 * 60)
    }
}

/// The HTTP methods a check may use.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
        }
    }
}

/// A regular expression, compiled when the config is read so a bad one is
/// an error at its line.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        regex::Regex::new(&text).map(Pattern).map_err(|e| {
            // The regex crate draws the error under the pattern; its last
            // line says what is wrong.
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default();
            let why = why.trim_start_matches("error: ");
            serde::de::Error::custom(format!("body_matches is not a regular expression: {why}"))
        })
    }
}

/// The checks' own constraints; `Err` is (field, why).
pub(super) fn validate(checks: &[Check]) -> Result<(), (&'static str, String)> {
    let mut names = std::collections::BTreeSet::new();
    for check in checks {
        if check.name.trim().is_empty() {
            return Err(("preview.checks", "each check needs a name".into()));
        }
        if !names.insert(check.name.as_str()) {
            return Err((
                "preview.checks",
                format!("two checks are named {:?}", check.name),
            ));
        }
        if let Some(task) = &check.task {
            validate_task(check, task)?;
            continue;
        }
        if !check.path.starts_with('/') {
            return Err((
                "preview.checks",
                format!(
                    "path {:?} (check {:?}) must start with '/'",
                    check.path, check.name
                ),
            ));
        }
        if !(100..=599).contains(&check.expect_status()) {
            return Err((
                "preview.checks",
                format!(
                    "expect_status {} (check {:?}) is not an HTTP status",
                    check.expect_status(),
                    check.name
                ),
            ));
        }
        if check.body_contains.is_some() && check.body_matches.is_some() {
            return Err((
                "preview.checks",
                format!(
                    "check {:?} sets both body_contains and body_matches: keep one",
                    check.name
                ),
            ));
        }
        let timeout = check.timeout();
        if timeout.is_zero() || timeout > Duration::from_secs(300) {
            return Err((
                "preview.checks",
                format!("check {:?}: timeout must be between 1s and 5m", check.name),
            ));
        }
    }
    Ok(())
}

/// A task check sets only what a task uses.
fn validate_task(check: &Check, task: &TaskCheck) -> Result<(), (&'static str, String)> {
    let err = |why: String| Err(("preview.checks", format!("check {:?}: {why}", check.name)));
    let http = [
        ("path", !check.path.is_empty()),
        ("method", check.method.is_some()),
        ("expect_status", check.expect_status.is_some()),
        ("body_contains", check.body_contains.is_some()),
        ("body_matches", check.body_matches.is_some()),
        ("timeout", check.timeout.is_some()),
    ];
    if let Some((field, _)) = http.iter().find(|(_, set)| *set) {
        let hint = if *field == "timeout" {
            " (a task's timeout goes under task:)"
        } else {
            ""
        };
        return err(format!(
            "{field} is for HTTP checks; a check with task: runs a command{hint}"
        ));
    }
    if task.command.first().is_none_or(String::is_empty) {
        return err("task.command must name a program to run".into());
    }
    if task.image.is_some() {
        return err(
            "task.image is not supported: ECS cannot override a container's image, so a task \
             check runs on the preview's own image; leave image: out"
                .into(),
        );
    }
    if task.timeout.is_zero() || task.timeout > Duration::from_secs(3600) {
        return err("task.timeout must be between 1s and 1h".into());
    }
    Ok(())
}
