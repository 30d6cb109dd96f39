//! Webhook payloads parsed into pullstack's own event types.
//!
//! Only the fields pullstack acts on are read; everything else in GitHub's
//! large payloads is skipped. Events and actions pullstack does not act on
//! become [`Event::Ignored`] rather than errors, so GitHub adding a new action
//! never turns into failed deliveries.

use crate::domain::naming::RepoName;

/// A webhook delivery, as pullstack understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Ping,
    PullRequest(PullRequestEvent),
    Push(PushEvent),
    /// A branch was deleted (tag deletions are ignored).
    BranchDeleted {
        repo: RepoName,
        branch: String,
    },
    Comment(CommentEvent),
    /// A CI run finished for a commit; the image may now be in ECR.
    CiCompleted {
        repo: RepoName,
        head_sha: String,
    },
    /// Someone pressed a check run's "Re-run" button.
    CheckRunRerequested(CheckRunEvent),
    /// App installation changes; logged only.
    Installation {
        action: String,
        account: String,
    },
    /// A delivery pullstack acknowledges but does not act on.
    Ignored {
        reason: String,
    },
}

impl Event {
    /// The repository the event is about; `None` for pings, installation
    /// changes and ignored deliveries.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Event::PullRequest(pr) => Some(&pr.repo),
            Event::Push(push) => Some(&push.repo),
            Event::Comment(comment) => Some(&comment.repo),
            Event::CheckRunRerequested(run) => Some(&run.repo),
            Event::BranchDeleted { repo, .. } | Event::CiCompleted { repo, .. } => Some(repo),
            Event::Ping | Event::Installation { .. } | Event::Ignored { .. } => None,
        }
    }
}

/// What happened to a pull request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrAction {
    Opened,
    Reopened,
    Synchronize,
    Closed { merged: bool },
    Labeled,
    Unlabeled,
    Edited,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub repo: RepoName,
    pub action: PrAction,
    pub number: u64,
    pub title: String,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    /// The head branch lives in another repository.
    pub from_fork: bool,
    pub labels: Vec<String>,
    /// The label added or removed, for labeled/unlabeled.
    pub label: Option<String>,
    pub sender: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    pub repo: RepoName,
    /// The branch name without `refs/heads/`.
    pub branch: String,
    /// The new head; `None` when the branch was deleted.
    pub after: Option<String>,
    pub created: bool,
    pub forced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommentEvent {
    pub repo: RepoName,
    pub issue: u64,
    pub comment_id: u64,
    pub body: String,
    pub author: String,
    pub author_association: String,
    /// When the comment was made, by GitHub's clock.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A check run someone asked to run again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRunEvent {
    pub repo: RepoName,
    /// The run's name, as its creator gave it.
    pub name: String,
    pub head_sha: String,
    /// The GitHub App that created the run.
    pub app_id: Option<u64>,
    /// The pull requests of this repository whose head is the run's commit
    /// (empty for a fork's: GitHub lists only the repository's own).
    pub pull_requests: Vec<u64>,
    pub sender: String,
}

/// Why a payload was rejected: it is not what its `X-GitHub-Event` claims.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("{event} payload does not match its event: {reason}")]
    Shape { event: String, reason: String },
}

/// Parses a delivery's body according to its `X-GitHub-Event` header.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    // Typed parsing straight from the bytes; only when it fails is the body
    // checked for being JSON at all, so the two errors read differently.
    fn typed<T: serde::de::DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, ParseError> {
        serde_json::from_slice(body).map_err(|err| {
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Err(json) => ParseError::Json(json.to_string()),
                Ok(_) => ParseError::Shape {
                    event: event.to_owned(),
                    reason: err.to_string(),
                },
            }
        })
    }
    let ignored = |reason: String| Ok(Event::Ignored { reason });
    match event {
        "ping" => {
            typed::<serde::de::IgnoredAny>(event, body)?;
            Ok(Event::Ping)
        }
        "pull_request" => match pull_request(typed(event, body)?)? {
            Some(event) => Ok(Event::PullRequest(event)),
            None => ignored("pull_request action not acted on".into()),
        },
        "push" => match push(typed(event, body)?)? {
            Some(event) => Ok(Event::Push(event)),
            None => ignored("push to a tag".into()),
        },
        "delete" => {
            let raw: wire::Delete = typed(event, body)?;
            if raw.ref_type != "branch" {
                return ignored(format!("{} deleted", raw.ref_type));
            }
            Ok(Event::BranchDeleted {
                repo: repo(&raw.repository.full_name, event)?,
                branch: raw.r#ref,
            })
        }
        "issue_comment" => {
            let raw: wire::IssueComment = typed(event, body)?;
            if raw.action != "created" {
                return ignored(format!("comment {}", raw.action));
            }
            if raw.issue.pull_request.is_none() {
                return ignored("comment on an issue, not a pull request".into());
            }
            Ok(Event::Comment(CommentEvent {
                repo: repo(&raw.repository.full_name, event)?,
                issue: raw.issue.number,
                comment_id: raw.comment.id,
                body: raw.comment.body.unwrap_or_default(),
                author: raw.comment.user.login,
                author_association: raw.comment.author_association,
                created_at: raw.comment.created_at,
            }))
        }
        "workflow_run" | "check_suite" => {
            let raw: wire::CiRun = typed(event, body)?;
            let run = raw
                .workflow_run
                .or(raw.check_suite)
                .ok_or_else(|| ParseError::Shape {
                    event: event.to_owned(),
                    reason: format!("missing field `{event}`"),
                })?;
            if raw.action != "completed" {
                return ignored(format!("{event} {}", raw.action));
            }
            Ok(Event::CiCompleted {
                repo: repo(&raw.repository.full_name, event)?,
                head_sha: run.head_sha,
            })
        }
        "check_run" => {
            let raw: wire::CheckRunDelivery = typed(event, body)?;
            if raw.action != "rerequested" {
                return ignored(format!("check_run {}", raw.action));
            }
            let run = raw.check_run;
            Ok(Event::CheckRunRerequested(CheckRunEvent {
                repo: repo(&raw.repository.full_name, event)?,
                name: run.name,
                head_sha: run.head_sha,
                app_id: run.app.map(|a| a.id),
                pull_requests: run.pull_requests.into_iter().map(|p| p.number).collect(),
                sender: raw.sender.login,
            }))
        }
        "installation" | "installation_repositories" => {
            let raw: wire::Installation = typed(event, body)?;
            Ok(Event::Installation {
                action: raw.action,
                account: raw
                    .installation
                    .account
                    .map(|a| a.login)
                    .unwrap_or_default(),
            })
        }
        other => {
            typed::<serde::de::IgnoredAny>(event, body)?;
            ignored(format!("event {other:?} not acted on"))
        }
    }
}

fn repo(full_name: &str, event: &str) -> Result<RepoName, ParseError> {
    RepoName::parse(full_name).ok_or_else(|| ParseError::Shape {
        event: event.to_owned(),
        reason: "repository.full_name is not owner/name".into(),
    })
}

fn pull_request(raw: wire::PullRequest) -> Result<Option<PullRequestEvent>, ParseError> {
    let action = match raw.action.as_str() {
        "opened" => PrAction::Opened,
        "reopened" => PrAction::Reopened,
        "synchronize" => PrAction::Synchronize,
        "closed" => PrAction::Closed {
            merged: raw.pull_request.merged.unwrap_or(false),
        },
        "labeled" => PrAction::Labeled,
        "unlabeled" => PrAction::Unlabeled,
        "edited" => PrAction::Edited,
        _ => return Ok(None),
    };
    let base_repo = repo(&raw.repository.full_name, "pull_request")?;
    let pr = raw.pull_request;
    // A head repository that was deleted arrives as null: treat it as a fork,
    // since its code cannot be attributed to this repository.
    let from_fork = pr
        .head
        .repo
        .as_ref()
        .is_none_or(|head| head.full_name != raw.repository.full_name);
    Ok(Some(PullRequestEvent {
        repo: base_repo,
        action,
        number: raw.number,
        title: pr.title,
        head_sha: pr.head.sha,
        head_ref: pr.head.r#ref,
        base_ref: pr.base.r#ref,
        from_fork,
        labels: pr.labels.into_iter().map(|l| l.name).collect(),
        label: raw.label.map(|l| l.name),
        sender: raw.sender.login,
    }))
}

fn push(raw: wire::Push) -> Result<Option<PushEvent>, ParseError> {
    let Some(branch) = raw.r#ref.strip_prefix("refs/heads/") else {
        return Ok(None);
    };
    Ok(Some(PushEvent {
        repo: repo(&raw.repository.full_name, "push")?,
        branch: branch.to_owned(),
        after: (!raw.deleted).then_some(raw.after),
        created: raw.created,
        forced: raw.forced,
    }))
}

/// The wire shapes: only the fields pullstack reads.
mod wire {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Repository {
        pub full_name: String,
    }

    #[derive(Deserialize)]
    pub struct User {
        pub login: String,
    }

    #[derive(Deserialize)]
    pub struct Label {
        pub name: String,
    }

    #[derive(Deserialize)]
    pub struct PullRequest {
        pub action: String,
        pub number: u64,
        pub pull_request: Pr,
        pub repository: Repository,
        pub sender: User,
        pub label: Option<Label>,
    }

    #[derive(Deserialize)]
    pub struct Pr {
        pub title: String,
        pub merged: Option<bool>,
        pub head: Ref,
        pub base: Ref,
        #[serde(default)]
        pub labels: Vec<Label>,
    }

    #[derive(Deserialize)]
    pub struct Ref {
        pub r#ref: String,
        pub sha: String,
        pub repo: Option<Repository>,
    }

    #[derive(Deserialize)]
    pub struct Push {
        pub r#ref: String,
        pub after: String,
        #[serde(default)]
        pub created: bool,
        #[serde(default)]
        pub deleted: bool,
        #[serde(default)]
        pub forced: bool,
        pub repository: Repository,
    }

    #[derive(Deserialize)]
    pub struct Delete {
        pub r#ref: String,
        pub ref_type: String,
        pub repository: Repository,
    }

    #[derive(Deserialize)]
    pub struct CheckRunDelivery {
        pub action: String,
        pub check_run: CheckRun,
        pub repository: Repository,
        pub sender: User,
    }

    #[derive(Deserialize)]
    pub struct CheckRun {
        pub name: String,
        pub head_sha: String,
        pub app: Option<App>,
        #[serde(default)]
        pub pull_requests: Vec<Number>,
    }

    #[derive(Deserialize)]
    pub struct App {
        pub id: u64,
    }

    #[derive(Deserialize)]
    pub struct Number {
        pub number: u64,
    }

    #[derive(Deserialize)]
    pub struct IssueComment {
        pub action: String,
        pub issue: Issue,
        pub comment: Comment,
        pub repository: Repository,
    }

    #[derive(Deserialize)]
    pub struct Issue {
        pub number: u64,
        pub pull_request: Option<serde::de::IgnoredAny>,
    }

    #[derive(Deserialize)]
    pub struct Comment {
        pub id: u64,
        pub body: Option<String>,
        pub user: User,
        pub author_association: String,
        #[serde(default)]
        pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[derive(Deserialize)]
    pub struct CiRun {
        pub action: String,
        pub workflow_run: Option<Run>,
        pub check_suite: Option<Run>,
        pub repository: Repository,
    }

    #[derive(Deserialize)]
    pub struct Run {
        pub head_sha: String,
    }

    #[derive(Deserialize)]
    pub struct Installation {
        pub action: String,
        pub installation: InstallationInfo,
    }

    #[derive(Deserialize)]
    pub struct InstallationInfo {
        pub account: Option<User>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pr_payload(action: &str, head_repo: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action,
            "number": 7,
            "pull_request": {
                "title": "Add a thing",
                "merged": action == "closed",
                "head": {"ref": "feature", "sha": "a".repeat(40), "repo": {"full_name": head_repo}},
                "base": {"ref": "main", "sha": "b".repeat(40), "repo": {"full_name": "octo/app"}},
                "labels": [{"name": "pullstack:keep"}]
            },
            "repository": {"full_name": "octo/app"},
            "sender": {"login": "alice"}
        })
        .to_string()
        .into_bytes()
    }

    /// A `check_run` delivery, shaped as GitHub documents it (trimmed).
    fn check_run_payload(action: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action,
            "check_run": {
                "id": 4,
                "name": "pullstack/checks",
                "head_sha": "c".repeat(40),
                "status": "completed",
                "conclusion": "failure",
                "app": {"id": 29310, "slug": "pullstack", "name": "pullstack"},
                "check_suite": {"id": 5, "head_branch": "feature", "head_sha": "c".repeat(40)},
                "pull_requests": [{
                    "url": "https://api.github.com/repos/octo/app/pulls/7",
                    "id": 1, "number": 7,
                    "head": {"ref": "feature", "sha": "c".repeat(40), "repo": {"id": 1, "name": "app"}},
                    "base": {"ref": "main", "sha": "d".repeat(40), "repo": {"id": 1, "name": "app"}}
                }]
            },
            "requested_action": null,
            "repository": {"full_name": "octo/app"},
            "sender": {"login": "alice"},
            "installation": {"id": 9}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_check_run_rerequest_names_the_run_its_app_and_its_prs() {
        let Event::CheckRunRerequested(run) =
            parse("check_run", &check_run_payload("rerequested")).unwrap()
        else {
            panic!("not a re-run")
        };
        assert_eq!(run.name, "pullstack/checks");
        assert_eq!(run.head_sha, "c".repeat(40));
        assert_eq!(run.app_id, Some(29310));
        assert_eq!(run.pull_requests, [7]);
        assert_eq!(run.sender, "alice");
        let other = parse("check_run", &check_run_payload("completed")).unwrap();
        assert!(matches!(other, Event::Ignored { .. }), "{other:?}");
    }

    #[test]
    fn pull_request_opened() {
        let Event::PullRequest(pr) =
            parse("pull_request", &pr_payload("opened", "octo/app")).unwrap()
        else {
            panic!("not a pull request event")
        };
        assert_eq!(pr.action, PrAction::Opened);
        assert_eq!(pr.number, 7);
        assert!(!pr.from_fork);
        assert_eq!(pr.labels, vec!["pullstack:keep"]);
    }

    #[test]
    fn fork_is_marked() {
        let Event::PullRequest(pr) =
            parse("pull_request", &pr_payload("opened", "mallory/app")).unwrap()
        else {
            panic!("not a pull request event")
        };
        assert!(pr.from_fork);
    }

    #[test]
    fn merged_close() {
        let Event::PullRequest(pr) =
            parse("pull_request", &pr_payload("closed", "octo/app")).unwrap()
        else {
            panic!("not a pull request event")
        };
        assert_eq!(pr.action, PrAction::Closed { merged: true });
    }

    #[test]
    fn unknown_action_is_ignored() {
        assert!(matches!(
            parse("pull_request", &pr_payload("locked", "octo/app")),
            Ok(Event::Ignored { .. })
        ));
    }

    #[test]
    fn malformed_json_and_wrong_shape_differ() {
        assert!(matches!(parse("push", b"{nope"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse("push", b"{}"),
            Err(ParseError::Shape { .. })
        ));
        assert!(matches!(
            parse("push", b"[]"),
            Err(ParseError::Shape { .. })
        ));
    }

    #[test]
    fn hostile_repository_name_is_rejected() {
        let body = serde_json::json!({
            "ref": "refs/heads/main", "after": "a", "repository": {"full_name": "../../etc"}
        });
        assert!(matches!(
            parse("push", body.to_string().as_bytes()),
            Err(ParseError::Shape { .. })
        ));
    }

    #[test]
    fn unknown_event_is_ignored() {
        assert!(matches!(parse("star", b"{}"), Ok(Event::Ignored { .. })));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(event in "[a-z_]{1,20}", body in any::<Vec<u8>>()) {
            let _ = parse(&event, &body);
        }

        #[test]
        fn never_panics_on_arbitrary_json(
            event in prop::sample::select(vec!["ping", "pull_request", "push", "delete", "issue_comment", "workflow_run", "check_suite", "installation"]),
            json in arbitrary_json(),
        ) {
            let _ = parse(event, json.to_string().as_bytes());
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let keys = prop::sample::select(vec![
                "action",
                "number",
                "pull_request",
                "head",
                "base",
                "ref",
                "sha",
                "repo",
                "full_name",
                "repository",
                "sender",
                "login",
                "title",
                "labels",
                "name",
                "after",
                "deleted",
                "ref_type",
                "issue",
                "comment",
                "body",
                "user",
                "id",
                "author_association",
                "workflow_run",
                "head_sha",
                "installation",
                "merged",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.prop_map(String::from), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
