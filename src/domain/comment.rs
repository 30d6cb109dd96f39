//! The sticky PR comment: its rendering and the hidden state it carries.
//!
//! Each environment has one comment, found again by the hidden marker on its
//! first line and edited in place. The marker also carries the little memory
//! an environment needs across restarts (its Deployment id, a fork approval,
//! a destroy command), so GitHub itself holds it.

use crate::domain::commands::Command;
use crate::domain::naming::short_sha;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

const MARKER: &str = "<!-- pullstack:state ";
const MARKER_END: &str = " -->";

/// What the comment remembers for its environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// The environment's slug, e.g. `pr-42`.
    pub env: String,
    /// The GitHub Deployment for the commit being deployed: (id, sha).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<(u64, String)>,
    /// A fork PR's head commit that a writer approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<String>,
    /// The head commit at which a `/pullstack destroy` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
    /// The commit whose failed deploy has been reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The commit reported ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// What deleting the stack removes, recorded before the delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<String>,
}

impl Memory {
    pub fn new(env: &str) -> Memory {
        Memory {
            env: env.to_owned(),
            ..Memory::default()
        }
    }

    /// Reads the memory from a comment body, if it is one of ours for `env`.
    pub fn from_body(body: &str, env: &str) -> Option<Memory> {
        let first = body.lines().next()?;
        let json = first.strip_prefix(MARKER)?.strip_suffix(MARKER_END)?;
        let memory: Memory = serde_json::from_str(json).ok()?;
        (memory.env == env).then_some(memory)
    }

    fn marker(&self) -> String {
        let json = serde_json::to_string(self).expect("memory serialises");
        // `--` may only appear inside JSON strings; escaping it keeps the
        // HTML comment closed exactly where we close it.
        format!("{MARKER}{}{MARKER_END}", json.replace("--", "-\\u002d"))
    }
}

/// The environment's state, as the comment tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// A fork PR waits for a maintainer.
    AwaitingApproval {
        label: String,
    },
    /// The commit's image is not in the registry yet.
    WaitingForImage {
        image: String,
        waited: Duration,
    },
    /// The image never appeared.
    ImageTimeout {
        image: String,
        waited: Duration,
    },
    /// A stack operation is under way.
    Deploying {
        status: String,
        elapsed: Duration,
    },
    Ready {
        url: String,
        took: Duration,
    },
    Failed {
        reason: String,
        events: Vec<FailureEvent>,
    },
    /// Deleting, after close or `/pullstack destroy`.
    Removing,
    /// Gone; `reversible` when a command can bring it back (not after close).
    Removed {
        why: String,
        reversible: bool,
    },
    /// Waiting for a free preview slot.
    Queued {
        position: usize,
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
}

/// Renders the whole comment body, marker first.
pub fn render(view: &View<'_>) -> String {
    let mut out = view.memory.marker();
    out.push('\n');
    let commit = view
        .sha
        .map(|sha| format!(" at `{}`", short_sha(sha)))
        .unwrap_or_default();
    let _ = writeln!(out, "### pullstack · {}{commit}\n", view.title);
    let _ = writeln!(out, "{}\n", headline(&view.state));
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
    let next = next_steps(&view.state);
    if !next.is_empty() {
        let _ = writeln!(out, "\n{next}");
    }
    out
}

fn headline(state: &State) -> String {
    match state {
        State::AwaitingApproval { label } => format!(
            "⏸️ **Waiting for approval.** This pull request comes from a fork, so it is not deployed \
             on its own. A maintainer can approve this commit with `/pullstack deploy` or the \
             `{label}` label. A new push needs a new approval."
        ),
        State::WaitingForImage { image, waited } => format!(
            "⏳ **Waiting for the image** `{image}` to be pushed ({} so far). The deploy starts as \
             soon as it appears.",
            human(*waited)
        ),
        State::ImageTimeout { image, waited } => format!(
            "❌ **No image.** `{image}` did not appear within {}. Check that the workflow that builds \
             and pushes it ran for this commit.",
            human(*waited)
        ),
        State::Deploying { status, elapsed } => format!(
            "🚧 **Deploying** ({}, {} so far). The link appears here when it is ready.",
            status,
            human(*elapsed)
        ),
        State::Ready { url, took } => {
            format!("✅ **Ready** at {url} (deployed in {}).", human(*took))
        }
        State::Failed { reason, .. } => format!("❌ **Deploy failed.** {reason}"),
        State::Removing => "🧹 **Removing** the environment.".to_owned(),
        State::Removed { why, .. } => format!("🗑️ **Removed** ({why})."),
        State::Queued { position } => format!(
            "🕒 **Queued** (position {position}): the preview limit is reached. The environment \
             starts when another pull request closes or its environment is destroyed."
        ),
    }
}

fn next_steps(state: &State) -> String {
    let commands: &[Command] = match state {
        State::AwaitingApproval { .. } => &[Command::Deploy],
        State::Ready { .. } => &[Command::Redeploy, Command::Destroy],
        State::Failed { .. } | State::ImageTimeout { .. } => &[Command::Redeploy],
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

/// The reply to `/pullstack help`.
pub fn help() -> String {
    let mut out = String::from("pullstack commands (comment on the pull request):\n\n");
    for c in Command::ALL {
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
mod tests {
    use super::*;

    fn memory() -> Memory {
        Memory {
            deployment: Some((7, "a".repeat(40))),
            ..Memory::new("pr-42")
        }
    }

    fn view(state: State, memory: &Memory) -> String {
        render(&View {
            title: "PR #42",
            stack: "demo-pr-42",
            sha: Some("0123456789abcdef0123456789abcdef01234567"),
            state,
            memory,
        })
    }

    #[test]
    fn memory_round_trips_through_the_body() {
        let m = Memory {
            approved: Some("b".repeat(40)),
            ..memory()
        };
        let body = view(State::Removing, &m);
        assert_eq!(Memory::from_body(&body, "pr-42"), Some(m));
        assert_eq!(Memory::from_body(&body, "pr-43"), None);
    }

    #[test]
    fn hostile_strings_cannot_close_the_marker() {
        let m = Memory {
            env: "br-x".into(),
            removing: vec!["--> <script>".into(), "a -- b".into()],
            ..Memory::default()
        };
        let body = view(State::Removing, &m);
        let first = body.lines().next().unwrap();
        assert_eq!(first.matches("-->").count(), 1, "{first}");
        assert_eq!(Memory::from_body(&body, "br-x"), Some(m));
    }

    #[test]
    fn foreign_comments_are_not_ours() {
        assert_eq!(Memory::from_body("hello", "pr-42"), None);
        assert_eq!(
            Memory::from_body("<!-- pullstack:state {bad -->", "pr-42"),
            None
        );
    }

    #[test]
    fn ready_comment() {
        insta::assert_snapshot!(view(
            State::Ready {
                url: "http://pr-42.preview.example.com".into(),
                took: Duration::from_secs(95)
            },
            &memory()
        ));
    }

    #[test]
    fn failed_comment_lists_events() {
        insta::assert_snapshot!(view(
            State::Failed {
                reason: "The stack rolled back.".into(),
                events: vec![FailureEvent {
                    logical_id: "Service".into(),
                    resource_type: "AWS::ECS::Service".into(),
                    reason: "Circuit breaker | tripped\nsecond line".into(),
                }],
            },
            &memory()
        ));
    }

    #[test]
    fn awaiting_approval_comment() {
        insta::assert_snapshot!(view(
            State::AwaitingApproval {
                label: "pullstack:approved".into()
            },
            &memory()
        ));
    }

    #[test]
    fn removed_comment_lists_resources() {
        let m = Memory {
            removing: vec!["AWS::ElasticLoadBalancingV2::LoadBalancer LoadBalancer".into()],
            ..memory()
        };
        insta::assert_snapshot!(view(
            State::Removed {
                why: "the pull request was closed".into(),
                reversible: false,
            },
            &m
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(65)), "1m 05s");
        assert_eq!(human(Duration::from_secs(3720)), "1h 02m");
    }
}
