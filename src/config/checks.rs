//! Smoke checks run against a preview once it is ready, reported as a
//! GitHub Check Run.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// One HTTP request to the preview and what its answer must be.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Its name in the Check Run's table. Required.
    pub name: String,
    /// The path requested on the preview URL, starting with `/`. Required.
    pub path: String,
    /// The HTTP method. Default: GET.
    #[serde(default)]
    pub method: Method,
    /// The status the answer must have. Default: 200.
    #[serde(default = "Check::default_status")]
    pub expect_status: u16,
    /// A string the answer's body must contain. Default: none.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) the answer's body must
    /// match. Default: none.
    #[serde(default)]
    pub body_matches: Option<Pattern>,
    /// How long the request may take, answer included. Default: 10s.
    #[serde(with = "humantime_serde", default = "Check::default_timeout")]
    pub timeout: Duration,
}

impl Check {
    fn default_status() -> u16 {
        200
    }

    fn default_timeout() -> Duration {
        Duration::from_secs(10)
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
        if !check.path.starts_with('/') {
            return Err((
                "preview.checks",
                format!(
                    "path {:?} (check {:?}) must start with '/'",
                    check.path, check.name
                ),
            ));
        }
        if !(100..=599).contains(&check.expect_status) {
            return Err((
                "preview.checks",
                format!(
                    "expect_status {} (check {:?}) is not an HTTP status",
                    check.expect_status, check.name
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
        if check.timeout.is_zero() || check.timeout > Duration::from_secs(300) {
            return Err((
                "preview.checks",
                format!("check {:?}: timeout must be between 1s and 5m", check.name),
            ));
        }
    }
    Ok(())
}
