//! The Check Runs port: a named check on a commit, with its status,
//! conclusion and output (title, summary, annotations on file lines), as
//! GitHub shows it in a pull request's checks.
//!
//! GitHub takes at most 50 annotations per request and adds those of each
//! update to the run's, so longer lists go in batches.

use super::client::{Forge, ForgeError, Result, StatusState};
use super::pacing::Priority;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// The most annotations GitHub takes in one request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;

/// The most characters GitHub takes in an output's summary.
const SUMMARY_CHARS: usize = 65_535;

/// Where a check run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed,
}

/// How a completed check run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    Neutral,
    Cancelled,
    Skipped,
    TimedOut,
    ActionRequired,
}

/// How much an annotation matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Notice,
    Warning,
    Failure,
}

/// A note on a line of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    /// Only when the note is on one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
    #[serde(rename = "annotation_level")]
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Annotation {
    /// A note at one point of a file.
    pub fn at(path: &str, line: u32, column: u32, level: Level, message: String) -> Annotation {
        Annotation {
            path: path.to_owned(),
            start_line: line,
            end_line: line,
            start_column: Some(column),
            end_column: Some(column),
            level,
            message,
            title: None,
        }
    }
}

/// What a check run shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub title: String,
    pub summary: String,
    pub annotations: Vec<Annotation>,
}

/// A check run as pullstack writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRun {
    pub name: String,
    pub head_sha: String,
    pub status: CheckStatus,
    /// Required when `status` is completed.
    pub conclusion: Option<Conclusion>,
    pub output: Option<Output>,
}

/// A check run as GitHub lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CheckRunRef {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: CheckStatus,
    pub conclusion: Option<Conclusion>,
}

impl CheckRun {
    /// The request body, with `annotations` as this request's batch.
    fn body(&self, annotations: &[Annotation], with_head: bool) -> serde_json::Value {
        let mut body = serde_json::json!({ "name": self.name, "status": self.status });
        if with_head {
            body["head_sha"] = self.head_sha.clone().into();
        }
        if let Some(conclusion) = self.conclusion {
            body["conclusion"] = serde_json::to_value(conclusion).expect("an enum serializes");
        }
        if let Some(output) = &self.output {
            let summary: String = output.summary.chars().take(SUMMARY_CHARS).collect();
            body["output"] = serde_json::json!({
                "title": output.title,
                "summary": summary,
                "annotations": annotations,
            });
        }
        body
    }

    /// The annotations in request-sized batches; at least one, maybe empty.
    fn batches(&self) -> Vec<&[Annotation]> {
        let all = self.output.as_ref().map_or(&[][..], |o| &o.annotations[..]);
        if all.is_empty() {
            return vec![&[]];
        }
        all.chunks(ANNOTATIONS_PER_REQUEST).collect()
    }
}

impl Forge {
    /// Creates `run` on its head commit; returns its id. Annotations past
    /// the first 50 are added by updates.
    pub async fn create_check_run(&self, run: &CheckRun) -> Result<u64> {
        #[derive(Deserialize)]
        struct Created {
            id: u64,
        }
        let batches = run.batches();
        let route = format!("/repos/{}/check-runs", self.repo());
        let created: Created = self
            .write_post(route, &run.body(batches[0], true), Priority::Shown)
            .await?;
        for batch in &batches[1..] {
            self.patch_check_run(created.id, &run.body(batch, false))
                .await?;
        }
        Ok(created.id)
    }

    /// Replaces check run `id`'s status, conclusion and output with `run`'s.
    pub async fn update_check_run(&self, id: u64, run: &CheckRun) -> Result<()> {
        for batch in run.batches() {
            self.patch_check_run(id, &run.body(batch, false)).await?;
        }
        Ok(())
    }

    /// The check runs named `name` on commit `sha`, newest first.
    pub async fn check_runs(&self, sha: &str, name: &str) -> Result<Vec<CheckRunRef>> {
        #[derive(Deserialize)]
        struct Listed {
            check_runs: Vec<CheckRunRef>,
        }
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let route = format!(
            "/repos/{}/commits/{sha}/check-runs?check_name={name}&per_page=100",
            self.repo()
        );
        let listed: Listed = self.get(route).await?;
        Ok(listed.check_runs)
    }

    async fn patch_check_run(&self, id: u64, body: &serde_json::Value) -> Result<()> {
        let route = format!("/repos/{}/check-runs/{id}", self.repo());
        let _: serde_json::Value = self.write_patch(route, body, Priority::Shown).await?;
        Ok(())
    }
}

/// A run of checks reported on a commit: as a Check Run, or, once the
/// token is found unable to write check runs (`as_status`, remembered for
/// the process), as a commit status of the same name.
pub struct Reported<'a> {
    forge: &'a Forge,
    run: CheckRun,
    url: &'a str,
    /// The Check Run; `None` when reported as a commit status.
    id: Option<u64>,
}

impl<'a> Reported<'a> {
    /// Shows the run started on `sha`: an `in_progress` Check Run, or a
    /// pending commit status.
    pub async fn start(
        forge: &'a Forge,
        as_status: &AtomicBool,
        name: &str,
        sha: &str,
        url: &'a str,
    ) -> Result<Reported<'a>> {
        let run = CheckRun {
            name: name.to_owned(),
            head_sha: sha.to_owned(),
            status: CheckStatus::InProgress,
            conclusion: None,
            output: None,
        };
        let mut id = None;
        if !as_status.load(Ordering::Relaxed) {
            match forge.create_check_run(&run).await {
                Ok(created) => id = Some(created),
                Err(err) if cannot_write_check_runs(&err) => {
                    tracing::warn!(
                        check = name,
                        "this token cannot write check runs; checks are reported as commit \
                         statuses from now on"
                    );
                    as_status.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        if id.is_none() {
            forge
                .commit_status(sha, name, StatusState::Pending, None, "checks running")
                .await?;
        }
        Ok(Reported {
            forge,
            run,
            url,
            id,
        })
    }

    /// Concludes the run: success when `passed`. A commit status shows
    /// only the title, and links to the checked URL.
    pub async fn conclude(self, passed: bool, title: String, summary: String) -> Result<()> {
        let Some(id) = self.id else {
            let state = if passed {
                StatusState::Success
            } else {
                StatusState::Failure
            };
            let run = &self.run;
            return self
                .forge
                .commit_status(&run.head_sha, &run.name, state, Some(self.url), &title)
                .await;
        };
        let done = CheckRun {
            status: CheckStatus::Completed,
            conclusion: Some(if passed {
                Conclusion::Success
            } else {
                Conclusion::Failure
            }),
            output: Some(Output {
                title,
                summary,
                annotations: Vec::new(),
            }),
            ..self.run
        };
        self.forge.update_check_run(id, &done).await
    }
}

/// Whether GitHub refused a check run because of who is asking: a
/// personal token gets 403 "Resource not accessible by personal access
/// token", and some setups answer the Checks API with 404.
pub fn cannot_write_check_runs(err: &ForgeError) -> bool {
    match err {
        ForgeError::NotFound => true,
        ForgeError::Refused {
            status: 403,
            message,
        } => message.contains("not accessible by personal access token"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(annotations: usize) -> CheckRun {
        let note =
            |n: usize| Annotation::at("a.yaml", n as u32 + 1, 1, Level::Failure, "no".into());
        CheckRun {
            name: "pullstack/config".into(),
            head_sha: "a".repeat(40),
            status: CheckStatus::Completed,
            conclusion: Some(Conclusion::Failure),
            output: Some(Output {
                title: "t".into(),
                summary: "s".into(),
                annotations: (0..annotations).map(note).collect(),
            }),
        }
    }

    #[test]
    fn annotations_go_fifty_to_a_request() {
        let sizes = |n| run(n).batches().iter().map(|b| b.len()).collect::<Vec<_>>();
        assert_eq!(sizes(0), vec![0]);
        assert_eq!(sizes(50), vec![50]);
        assert_eq!(sizes(51), vec![50, 1]);
        assert_eq!(sizes(120), vec![50, 50, 20]);
    }

    #[test]
    fn the_body_speaks_githubs_names() {
        let run = run(1);
        let body = run.body(&run.output.as_ref().unwrap().annotations, true);
        assert_eq!(body["status"], "completed");
        assert_eq!(body["conclusion"], "failure");
        assert_eq!(body["head_sha"], "a".repeat(40));
        let note = &body["output"]["annotations"][0];
        assert_eq!(note["annotation_level"], "failure");
        assert_eq!(
            (note["start_line"].as_u64(), note["start_column"].as_u64()),
            (Some(1), Some(1))
        );
        assert!(note.get("title").is_none());
        assert!(run.body(&[], false).get("head_sha").is_none());
    }
}
