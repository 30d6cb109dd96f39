//! The sticky PR comment: its rendering and the hidden state it carries.
//!
//! Each environment has one comment, found again by the hidden marker on its
//! first line and edited in place. The marker also carries the little memory
//! an environment needs across restarts (its Deployment id, a fork approval,
//! a destroy command), so GitHub itself holds it, under a [`Seal`].

use crate::domain::commands::Command;
use crate::domain::naming::short_sha;
use crate::domain::phases::Phase;
use crate::domain::seal::{Seal, Verified};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

const MARKER: &str = "<!-- pullstack:state ";
const MARKER_END: &str = " -->";
/// Between the memory's JSON and its seal, in the marker.
const SEALED_BY: &str = " sealed=";

/// What the comment remembers for its environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// The environment's slug, e.g. `pr-42`.
    pub env: String,
    /// The commit whose deploy pullstack last started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempted: Option<String>,
    /// A fork PR's head commit that a writer approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<String>,
    /// The fork PR's head commit the comment asks a maintainer to approve;
    /// a bare `/pullstack deploy` approves this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<String>,
    /// The head commit at which a `/pullstack destroy` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
    /// The commit whose failed deploy has been reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The commit reported ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Whether `destroyed` was set by the idle rules rather than a command.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub idle_deleted: bool,
    /// What deleting the stack removes, recorded before the delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<String>,
    /// While pullstack's own failures persist: the correlation id of the
    /// first, as its log line shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// The `before_traffic` task started for a commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_traffic: Option<TaskRun>,
    /// The commit whose `before_traffic` task exited 0: its service may
    /// take traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed: Option<String>,
    /// The `on_delete` task started before the teardown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<TaskRun>,
    /// How the `on_delete` task failed, shown once the environment is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_delete_failed: Option<String>,
}

/// A one-off task pullstack started and waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRun {
    /// The commit it runs for.
    pub sha: String,
    pub arn: String,
    pub started: DateTime<Utc>,
}

impl Memory {
    pub fn new(env: &str) -> Memory {
        Memory {
            env: env.to_owned(),
            ..Memory::default()
        }
    }

    /// Reads the memory from a comment body, if it is one of ours for `env`.
    ///
    /// A memory sealed by no key of `seal` is not ours. An unsealed one (from
    /// a version that did not seal, or a run without a key) is read, but its
    /// approval is not trusted.
    pub fn from_body(body: &str, env: &str, seal: &Seal) -> Option<Memory> {
        let first = body.lines().next()?;
        let inner = first.strip_prefix(MARKER)?.strip_suffix(MARKER_END)?;
        let (json, sealed) = match inner.rsplit_once(SEALED_BY) {
            Some((json, sealed)) => (json, Some(sealed)),
            None => (inner, None),
        };
        let mut memory: Memory = serde_json::from_str(json).ok()?;
        match seal.verify(json, sealed) {
            Verified::Sealed => {}
            Verified::Unsealed => {
                memory.approved = None;
                memory.awaiting = None;
            }
            Verified::Forged => return None,
        }
        (memory.env == env).then_some(memory)
    }

    fn marker(&self, seal: &Seal) -> String {
        let json = serde_json::to_string(self).expect("memory serialises");
        // `--` may only appear inside JSON strings; escaping it keeps the
        // HTML comment closed exactly where we close it.
        let json = json.replace("--", "-\\u002d");
        match seal.sign(&json) {
            Some(sealed) => format!("{MARKER}{json}{SEALED_BY}{sealed}{MARKER_END}"),
            None => format!("{MARKER}{json}{MARKER_END}"),
        }
    }
}

/// The environment's state, as the comment tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// A fork PR waits for a maintainer.
    AwaitingApproval {
        label: String,
        /// The commit to approve.
        sha: String,
    },
    /// The commit's image is not in the registry yet.
    WaitingForImage {
        image: String,
        /// When the wait began. A time, not a duration, so the comment is
        /// not edited while nothing happens.
        since: DateTime<Utc>,
    },
    /// The image never appeared.
    ImageTimeout { image: String, waited: Duration },
    /// A stack operation is under way.
    Deploying {
        status: String,
        /// When the stack operation began, if known.
        since: Option<DateTime<Utc>>,
        /// Why the tasks are not healthy yet, when it has taken long, and
        /// what to do about it.
        trouble: Option<String>,
    },
    Ready {
        url: String,
        took: Duration,
        /// How long each phase of the deploy took.
        phases: Vec<Phase>,
    },
    Failed {
        /// The cause first, in plain words, then what to do.
        reason: String,
        events: Vec<FailureEvent>,
        /// The last log lines of the task that failed, oldest first.
        logs: Vec<String>,
    },
    /// Deleting, after close or `/pullstack destroy`.
    Removing,
    /// Gone; `reversible` when a command can bring it back (not after close).
    Removed { why: String, reversible: bool },
    /// Waiting for a free preview slot: `position` in line, and `limit`
    /// names the limit reached.
    Queued { position: usize, limit: String },
    /// Not created, because an AWS quota would stop it half-way.
    Refused { reason: String },
    /// Scaled to zero tasks for want of activity; the stack stays.
    Asleep {
        idle_for: Duration,
        deletes_at: Option<DateTime<Utc>>,
    },
}

/// One CloudFormation event that explains a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureEvent {
    pub logical_id: String,
    pub resource_type: String,
    pub reason: String,
}

/// Everything the comment shows.
#[derive(Clone, Debug)]
pub struct View<'a> {
    pub title: &'a str,
    pub stack: &'a str,
    pub sha: Option<&'a str>,
    pub state: State,
    pub memory: &'a Memory,
    /// The estimated running cost, when known.
    pub cost: Option<&'a str>,
    /// The environment's log streams in the CloudWatch console, when known.
    pub logs: Option<&'a str>,
}

/// Renders the whole comment body, marker first.
pub fn render(view: &View<'_>, seal: &Seal) -> String {
    let mut out = view.memory.marker(seal);
    out.push('\n');
    let commit = view
        .sha
        .map(|sha| format!(" at `{}`", short_sha(sha)))
        .unwrap_or_default();
    let _ = writeln!(out, "### pullstack · {}{commit}\n", view.title);
    let _ = writeln!(out, "{}\n", headline(&view.state));
    if let Some(id) = &view.memory.notice {
        let _ = writeln!(
            out,
            "> ⚠️ pullstack keeps failing on its side and retries on its own. Operators find \
             the error in its logs under ref `{}`.\n",
            cell(id)
        );
    }
    if let State::Failed { logs, .. } = &view.state
        && !logs.is_empty()
    {
        let _ = writeln!(
            out,
            "<details><summary>The task's last {} log lines</summary>\n",
            logs.len()
        );
        out.push_str(&fenced(logs));
        out.push_str("\n</details>\n\n");
    }
    if let State::Failed { events, .. } = &view.state
        && !events.is_empty()
    {
        out.push_str("<details><summary>What CloudFormation reported</summary>\n\n");
        out.push_str("| resource | type | reason |\n|---|---|---|\n");
        for e in events {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} |",
                cell(&e.logical_id),
                cell(&e.resource_type),
                cell(&e.reason)
            );
        }
        out.push_str("\n</details>\n\n");
    }
    if let (State::Removed { .. }, Some(failed)) = (&view.state, &view.memory.on_delete_failed) {
        let _ = writeln!(
            out,
            "> ⚠️ **`on_delete` failed**: {failed} The environment was removed anyway.\n"
        );
    }
    if let State::Removed { .. } = &view.state
        && !view.memory.removing.is_empty()
    {
        out.push_str("<details><summary>What was removed</summary>\n\n");
        for item in &view.memory.removing {
            let _ = writeln!(out, "- {}", cell(item));
        }
        out.push_str("\n</details>\n\n");
    }
    let _ = writeln!(out, "Stack: `{}`", view.stack);
    let has_tasks = matches!(
        view.state,
        State::Deploying { .. } | State::Ready { .. } | State::Failed { .. } | State::Asleep { .. }
    );
    if let (true, Some(url)) = (has_tasks, view.logs) {
        let _ = writeln!(
            out,
            "\nLogs: [the tasks' log streams in CloudWatch]({url}), or `pullstack logs {}`",
            view.memory.env
        );
    }
    if let Some(cost) = view.cost {
        let _ = writeln!(out, "\nEstimated cost: {cost}");
    }
    let next = next_steps(&view.state);
    if !next.is_empty() {
        let _ = writeln!(out, "\n{next}");
    }
    out
}

fn headline(state: &State) -> String {
    match state {
        State::AwaitingApproval { label, sha } => format!(
            "⏸️ **Waiting for approval.** This pull request comes from a fork, so it is not deployed \
             on its own. A maintainer can approve commit `{short}` with `/pullstack deploy {short}` \
             or the `{label}` label. A new push needs a new approval.",
            short = short_sha(sha)
        ),
        State::WaitingForImage { image, since } => format!(
            "⏳ **Waiting for the image** `{image}` to be pushed (since {}). The deploy starts as \
             soon as it appears.",
            clock_time(since)
        ),
        State::ImageTimeout { image, waited } => format!(
            "❌ **No image.** `{image}` did not appear within {}. Check that the workflow that builds \
             and pushes it ran for this commit.",
            human(*waited)
        ),
        State::Deploying {
            status,
            since,
            trouble,
        } => {
            let since = since
                .map(|at| format!(", since {}", clock_time(&at)))
                .unwrap_or_default();
            let mut text = format!(
                "🚧 **Deploying** ({status}{since}). The link appears here when it is ready."
            );
            if let Some(trouble) = trouble {
                let _ = write!(text, "\n\n⚠️ **The tasks are not healthy yet.** {trouble}");
            }
            text
        }
        State::Ready { url, took, phases } => {
            let mut text = format!("✅ **Ready** at {url} (deployed in {}", human(*took));
            // One phase is the whole deploy: it says nothing more.
            if phases.len() > 1 {
                let each: Vec<String> = phases
                    .iter()
                    .map(|p| format!("{} {}", p.step.words(), human(p.took)))
                    .collect();
                let _ = write!(text, ": {}", each.join(", "));
            }
            text.push_str(").");
            text
        }
        State::Failed { reason, .. } => format!("❌ **Deploy failed.** {reason}"),
        State::Removing => "🧹 **Removing** the environment.".to_owned(),
        State::Removed { why, .. } => format!("🗑️ **Removed** ({why})."),
        State::Queued { position, limit } => format!(
            "🕒 **Queued**, number {position} in line: {limit}. It starts by itself, oldest \
             first, as soon as a slot frees: when a pull request with an environment closes, \
             gets `/pullstack destroy`, or has its environment deleted for being idle."
        ),
        State::Refused { reason } => format!(
            "⛔ **Not created.** {reason} Nothing was created. pullstack tries again on the next \
             push, `/pullstack redeploy`, or its periodic resync."
        ),
        State::Asleep {
            idle_for,
            deletes_at,
        } => {
            let deletes = deletes_at
                .map(|at| {
                    format!(
                        " Without activity it will be deleted at {} UTC.",
                        at.format("%Y-%m-%d %H:%M")
                    )
                })
                .unwrap_or_default();
            format!(
                "😴 **Asleep**: scaled to zero tasks after {} without a push or activity; the \
                 stack and its URL are kept.{deletes} A push or `/pullstack wake` brings it back.",
                human(*idle_for)
            )
        }
    }
}

/// A time of day as the comment shows it, e.g. `14:03 UTC`.
fn clock_time(at: &DateTime<Utc>) -> String {
    at.format("%H:%M UTC").to_string()
}

fn next_steps(state: &State) -> String {
    let commands: &[Command] = match state {
        State::AwaitingApproval { .. } => &[Command::Deploy],
        State::Ready { .. } => &[Command::Redeploy, Command::Destroy],
        State::Failed { .. } | State::ImageTimeout { .. } | State::Refused { .. } => {
            &[Command::Redeploy]
        }
        State::Asleep { .. } => &[Command::Wake, Command::Destroy],
        State::Removed {
            reversible: true, ..
        } => &[Command::Redeploy],
        _ => &[],
    };
    commands
        .iter()
        .map(|c| format!("`/pullstack {}` to {}", c.name(), c.summary()))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The reply to `/pullstack help`: the commands that apply here, so the
/// production ones only where production releases are enabled.
pub fn help(production: bool) -> String {
    let mut out = String::from("pullstack commands (comment on the pull request):\n\n");
    for c in Command::ALL
        .into_iter()
        .filter(|c| production || !c.is_production())
    {
        let _ = writeln!(out, "- `/pullstack {}`: {}", c.name(), c.summary());
    }
    out
}

/// Keeps a table cell on one line, free of markup from hostile input.
fn cell(text: &str) -> String {
    text.chars()
        .take(300)
        .map(|c| match c {
            '|' => '/',
            '\n' | '\r' => ' ',
            '<' => '‹',
            '>' => '›',
            '`' => '\'',
            c => c,
        })
        .collect()
}

/// Log lines in a code block that no line can close: the fence is longer
/// than any run of backticks in them.
fn fenced(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!("{fence}text\n");
    for line in lines {
        // One line each, at most 500 characters.
        let line: String = line
            .chars()
            .take(500)
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        let _ = writeln!(out, "{line}");
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// `1m 05s`-style durations, to the second.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests;
