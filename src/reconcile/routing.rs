//! Which environments an event asks to look at again, and with what intent.
//!
//! This is the only place events are interpreted, for `serve` and
//! `handle-event` alike; the reconcilers read state and never trust an
//! event's payload beyond "look again" and the commands it carries.

use super::{Given, Intent, Job};
use crate::domain::commands::{self, Parsed};
use crate::domain::globs::Globs;
use crate::domain::naming::{EnvKey, RepoName};
use crate::github::events::{CheckRunEvent, Event, PrAction};

/// Maps events to jobs for one repository.
#[derive(Clone, Debug)]
pub struct Router {
    pub repo: RepoName,
    pub approve_label: String,
    /// Whether merges are released to production.
    pub production: bool,
    /// Branches with environments of their own.
    pub branches: Globs,
    /// The name of the smoke checks' Check Run: the only run whose
    /// "Re-run" button pullstack answers.
    pub checks_name: String,
    /// pullstack's GitHub App, when it runs as one: a re-run of a check
    /// run another App created is not pullstack's to answer.
    pub app_id: Option<u64>,
}

/// What an event comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A `ping`: answer it.
    Pong,
    /// Nothing to do, and why.
    Ignored(String),
    /// Jobs to queue, each with what it asks for.
    Jobs(Vec<(Job, Option<Intent>)>),
}

impl Router {
    /// Where `event` goes.
    pub fn route(&self, event: &Event) -> Route {
        match event {
            Event::Ping => Route::Pong,
            Event::Ignored { reason } => Route::Ignored(reason.clone()),
            Event::Installation { action, account } => {
                tracing::info!(action, account, "installation event");
                Route::Ignored("installation events are logged only".into())
            }
            Event::CheckRunRerequested(run) if run.repo == self.repo => match self.rerun(run) {
                Ok(jobs) => Route::Jobs(jobs),
                Err(reason) => {
                    tracing::info!(run = run.name, sha = run.head_sha, reason, "re-run ignored");
                    Route::Ignored(reason)
                }
            },
            event => match self.jobs(event) {
                jobs if jobs.is_empty() => {
                    Route::Ignored(format!("it asks nothing of {}'s environments", self.repo))
                }
                jobs => Route::Jobs(jobs),
            },
        }
    }

    /// The environments a re-run of `run` asks to check again: its pull
    /// requests', if the run is pullstack's smoke checks. `Err` says why
    /// it is not.
    fn rerun(&self, run: &CheckRunEvent) -> Result<Vec<(Job, Option<Intent>)>, String> {
        if run.name != self.checks_name {
            return Err(format!(
                "check run {:?} is not pullstack's ({:?})",
                run.name, self.checks_name
            ));
        }
        if let Some(ours) = self.app_id
            && run.app_id != Some(ours)
        {
            return Err(format!(
                "check run {:?} was created by another GitHub App",
                run.name
            ));
        }
        if run.pull_requests.is_empty() {
            return Err("the re-run check run is on no pull request of this repository".into());
        }
        Ok(run
            .pull_requests
            .iter()
            .map(|&number| {
                let intent = Intent::Rerun {
                    sha: run.head_sha.clone(),
                };
                (Job::Env(EnvKey::Pr(number)), Some(intent))
            })
            .collect())
    }

    fn jobs(&self, event: &Event) -> Vec<(Job, Option<Intent>)> {
        match event {
            Event::PullRequest(pr) if pr.repo == self.repo => {
                let job = Job::Env(EnvKey::Pr(pr.number));
                let intent = match (&pr.action, &pr.label) {
                    (PrAction::Labeled, Some(label)) if *label == self.approve_label => {
                        Some(Intent::ApproveLabel {
                            by: pr.sender.clone(),
                            sha: pr.head_sha.clone(),
                        })
                    }
                    _ => None,
                };
                vec![(job, intent)]
            }
            Event::Comment(comment) if comment.repo == self.repo => {
                let Some(parsed) = commands::parse(&comment.body) else {
                    return Vec::new();
                };
                let given = Given {
                    author: comment.author.clone(),
                    comment_id: comment.comment_id,
                    issue: comment.issue,
                    at: comment.created_at,
                };
                let job = match &parsed {
                    Parsed::Command { command, .. }
                        if command.is_production() && self.production =>
                    {
                        Job::Production
                    }
                    _ => Job::Env(EnvKey::Pr(comment.issue)),
                };
                let intent = match parsed {
                    Parsed::Command { command, sha } => Intent::Command {
                        command,
                        sha,
                        comment: given,
                    },
                    Parsed::Unclear { reply } => Intent::Unclear {
                        reply,
                        comment: given,
                    },
                };
                vec![(job, Some(intent))]
            }
            Event::CiCompleted { repo, .. } if *repo == self.repo => vec![(Job::Resync, None)],
            Event::Push(push) if push.repo == self.repo => {
                let mut jobs = Vec::new();
                if self.branches.matches(&push.branch) {
                    jobs.push((Job::Env(EnvKey::Branch(push.branch.clone())), None));
                }
                if self.production {
                    jobs.push((Job::Production, None));
                }
                jobs
            }
            Event::BranchDeleted { repo, branch }
                if *repo == self.repo && self.branches.matches(branch) =>
            {
                vec![(Job::Env(EnvKey::Branch(branch.clone())), None)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::commands::Command;
    use crate::github::events::{CommentEvent, PullRequestEvent};

    fn router() -> Router {
        Router {
            repo: RepoName::parse("octo/app").unwrap(),
            approve_label: "pullstack:approved".into(),
            production: true,
            branches: Globs::new(&["release/*"]).unwrap(),
            checks_name: "pullstack/checks".into(),
            app_id: Some(29_310),
        }
    }

    fn rerun(name: &str, app_id: Option<u64>) -> Event {
        Event::CheckRunRerequested(CheckRunEvent {
            repo: RepoName::parse("octo/app").unwrap(),
            name: name.into(),
            head_sha: "c".repeat(40),
            app_id,
            pull_requests: vec![7],
            sender: "alice".into(),
        })
    }

    #[test]
    fn a_rerun_of_pullstacks_own_check_run_checks_its_pull_request_again() {
        let Route::Jobs(jobs) = router().route(&rerun("pullstack/checks", Some(29_310))) else {
            panic!("no jobs")
        };
        let intent = Intent::Rerun {
            sha: "c".repeat(40),
        };
        assert_eq!(jobs, vec![(Job::Env(EnvKey::Pr(7)), Some(intent))]);
    }

    // Attack: a re-run of another App's check run (or of a run that only
    // shares the repository) must not make pullstack do anything.
    #[test]
    fn a_rerun_of_another_run_or_app_is_ignored() {
        let router = router();
        for event in [
            rerun("ci/tests", Some(29_310)),
            rerun("pullstack/checks", Some(1)),
            rerun("pullstack/checks", None),
        ] {
            let route = router.route(&event);
            assert!(matches!(route, Route::Ignored(_)), "{route:?}");
        }
        // With a personal token there is no App to compare: the name decides.
        let token = Router {
            app_id: None,
            ..router
        };
        let route = token.route(&rerun("pullstack/checks", Some(1)));
        assert!(matches!(route, Route::Jobs(_)), "{route:?}");
    }

    #[test]
    fn pushes_and_deletes_of_matching_branches_look_at_their_environment() {
        use crate::github::events::PushEvent;
        let push = |branch: &str| {
            Event::Push(PushEvent {
                repo: RepoName::parse("octo/app").unwrap(),
                branch: branch.into(),
                after: Some("a".repeat(40)),
                created: false,
                forced: false,
            })
        };
        let key = |b: &str| Job::Env(EnvKey::Branch(b.into()));
        assert_eq!(
            router().jobs(&push("release/1.0")),
            vec![(key("release/1.0"), None), (Job::Production, None)]
        );
        assert_eq!(
            router().jobs(&push("feature/x")),
            vec![(Job::Production, None)]
        );
        let deleted = Event::BranchDeleted {
            repo: RepoName::parse("octo/app").unwrap(),
            branch: "release/1.0".into(),
        };
        assert_eq!(router().jobs(&deleted), vec![(key("release/1.0"), None)]);
    }

    fn pr(action: PrAction, label: Option<&str>, repo: &str) -> Event {
        Event::PullRequest(PullRequestEvent {
            repo: RepoName::parse(repo).unwrap(),
            action,
            number: 3,
            title: "t".into(),
            head_sha: "a".repeat(40),
            head_ref: "f".into(),
            base_ref: "main".into(),
            from_fork: true,
            labels: vec![],
            label: label.map(str::to_owned),
            sender: "alice".into(),
        })
    }

    #[test]
    fn pull_request_events_look_again() {
        let jobs = router().jobs(&pr(PrAction::Synchronize, None, "octo/app"));
        assert_eq!(jobs, vec![(Job::Env(EnvKey::Pr(3)), None)]);
    }

    #[test]
    fn approve_label_carries_who_added_it() {
        let jobs = router().jobs(&pr(
            PrAction::Labeled,
            Some("pullstack:approved"),
            "octo/app",
        ));
        assert_eq!(
            jobs[0].1,
            Some(Intent::ApproveLabel {
                by: "alice".into(),
                sha: "a".repeat(40)
            })
        );
    }

    #[test]
    fn other_repositories_are_ignored() {
        assert!(
            router()
                .jobs(&pr(PrAction::Opened, None, "evil/app"))
                .is_empty()
        );
    }

    fn comment(body: &str) -> Event {
        Event::Comment(CommentEvent {
            repo: RepoName::parse("octo/app").unwrap(),
            issue: 9,
            comment_id: 77,
            body: body.into(),
            author: "bob".into(),
            author_association: "MEMBER".into(),
            created_at: None,
        })
    }

    #[test]
    fn a_comment_becomes_one_command_intent() {
        let jobs = router().jobs(&comment("/pullstack redeploy\n/pullstack frobnicate"));
        assert_eq!(
            jobs,
            vec![(
                Job::Env(EnvKey::Pr(9)),
                Some(Intent::Command {
                    command: Command::Redeploy,
                    sha: None,
                    comment: Given {
                        author: "bob".into(),
                        comment_id: 77,
                        issue: 9,
                        at: None,
                    },
                })
            )]
        );
        let jobs = router().jobs(&comment("/pullstack frobnicate"));
        assert!(matches!(jobs[0].1, Some(Intent::Unclear { .. })));
        assert!(router().jobs(&comment("lgtm")).is_empty());
    }

    #[test]
    fn production_commands_are_answered_on_the_pr_when_production_is_off() {
        let off = Router {
            production: false,
            ..router()
        };
        let event = comment("/pullstack rollback");
        assert_eq!(off.jobs(&event)[0].0, Job::Env(EnvKey::Pr(9)));
        assert_eq!(router().jobs(&event)[0].0, Job::Production);
    }
}
