//! The comment's rendering and its marker's memory.

use super::*;
use crate::domain::phases::Marks;

fn seal() -> Seal {
    Seal::new(["test key"])
}

fn memory() -> Memory {
    Memory {
        attempted: Some("a".repeat(40)),
        ..Memory::new("pr-42")
    }
}

fn view(state: State, memory: &Memory) -> String {
    costed(state, memory, None)
}

fn costed(state: State, memory: &Memory, cost: Option<&str>) -> String {
    render(
        &View {
            title: "PR #42",
            stack: "demo-pr-42",
            sha: Some("0123456789abcdef0123456789abcdef01234567"),
            state,
            memory,
            cost,
            logs: None,
        },
        &seal(),
    )
}

/// The comment for `memory`, its marker sealed by `seal`.
fn sealed_with(memory: &Memory, seal: &Seal) -> String {
    let view = View {
        title: "PR #42",
        stack: "demo-pr-42",
        sha: None,
        state: State::Removing,
        memory,
        cost: None,
        logs: None,
    };
    render(&view, seal)
}

#[test]
fn the_log_link_shows_while_there_are_tasks() {
    let url = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logs";
    let with = |state: State| {
        render(
            &View {
                title: "PR #42",
                stack: "demo-pr-42",
                sha: None,
                state,
                memory: &memory(),
                cost: None,
                logs: Some(url),
            },
            &seal(),
        )
    };
    let ready = with(State::Ready {
        url: "https://pr-42.example.com".into(),
        took: Duration::from_secs(90),
        phases: Vec::new(),
    });
    assert!(
        ready.contains(&format!(
            "Logs: [the tasks' log streams in CloudWatch]({url}), or `pullstack logs pr-42`"
        )),
        "{ready}"
    );
    let removed = with(State::Removed {
        why: "closed".into(),
        reversible: false,
    });
    assert!(!removed.contains("Logs:"), "{removed}");
}

const COST: Option<&str> = Some("~$0.0492/hour (~$35.92/month): …");

#[test]
fn memory_round_trips_through_the_body() {
    let m = Memory {
        approved: Some("b".repeat(40)),
        ..memory()
    };
    let body = view(State::Removing, &m);
    assert_eq!(Memory::from_body(&body, "pr-42", &seal()), Some(m));
    assert_eq!(Memory::from_body(&body, "pr-43", &seal()), None);
}

// Attack: in a GitHub Action every workflow of the repository comments as
// `github-actions[bot]`, so a workflow could write a marker approving its
// own fork commit.
#[test]
fn a_memory_sealed_by_another_key_is_not_ours() {
    let m = Memory {
        approved: Some("b".repeat(40)),
        ..memory()
    };
    let forged = sealed_with(&m, &Seal::new(["the attacker's key"]));
    assert_eq!(Memory::from_body(&forged, "pr-42", &seal()), None);
    let tampered = view(State::Removing, &m).replacen("bbbb", "cccc", 1);
    assert_eq!(Memory::from_body(&tampered, "pr-42", &seal()), None);
}

#[test]
fn an_unsealed_memory_is_read_but_its_approval_is_not_trusted() {
    let m = Memory {
        approved: Some("b".repeat(40)),
        awaiting: Some("b".repeat(40)),
        destroyed: Some("c".repeat(40)),
        ..memory()
    };
    let unsealed = sealed_with(&m, &Seal::none());
    let read = Memory::from_body(&unsealed, "pr-42", &seal()).expect("still ours");
    assert_eq!(read.approved, None);
    assert_eq!(read.awaiting, None);
    assert_eq!(read.destroyed, m.destroyed);
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
    assert_eq!(Memory::from_body(&body, "br-x", &seal()), Some(m));
}

#[test]
fn foreign_comments_are_not_ours() {
    assert_eq!(Memory::from_body("hello", "pr-42", &seal()), None);
    assert_eq!(
        Memory::from_body("<!-- pullstack:state {bad -->", "pr-42", &seal()),
        None
    );
}

#[test]
fn ready_comment() {
    insta::assert_snapshot!(costed(
        State::Ready {
            url: "http://pr-42.preview.example.com".into(),
            took: Duration::from_secs(95),
            phases: Marks {
                stack: Duration::from_secs(70),
                tasks: Some(Duration::from_secs(85)),
                targets: Some(Duration::from_secs(93)),
            }
            .phases(Duration::from_secs(95), true),
        },
        &memory(),
        COST
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
            logs: Vec::new(),
        },
        &memory()
    ));
}

#[test]
fn failed_comment_puts_the_cause_first_then_logs_then_events() {
    insta::assert_snapshot!(view(
        State::Failed {
            reason: "The essential `app` container exited with code 3. Read the logs. \
                     The stack ended in `ROLLBACK_COMPLETE`."
                .into(),
            events: vec![FailureEvent {
                logical_id: "Service".into(),
                resource_type: "AWS::ECS::Service".into(),
                reason: "ECS Deployment Circuit Breaker was triggered".into(),
            }],
            logs: vec![
                "starting".into(),
                "a line with ``` fences </details>".into(),
                "panic: no DATABASE_URL".into(),
            ],
        },
        &memory()
    ));
}

#[test]
fn awaiting_approval_comment() {
    insta::assert_snapshot!(view(
        State::AwaitingApproval {
            label: "pullstack:approved".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
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
fn asleep_comment_says_how_to_wake() {
    let deletes_at = "2026-12-01T10:00:00Z".parse().unwrap();
    insta::assert_snapshot!(costed(
        State::Asleep {
            idle_for: Duration::from_secs(86_400),
            deletes_at: Some(deletes_at),
        },
        &memory(),
        COST
    ));
}

#[test]
fn queued_comment_says_what_frees_a_slot() {
    insta::assert_snapshot!(view(
        State::Queued {
            position: 2,
            limit: "20 of 20 preview environments for this repository are in use".into(),
        },
        &memory()
    ));
}

#[test]
fn durations() {
    assert_eq!(human(Duration::from_secs(5)), "5s");
    assert_eq!(human(Duration::from_secs(65)), "1m 05s");
    assert_eq!(human(Duration::from_secs(3720)), "1h 02m");
}

// A waiting or deploying comment reads the same however long it has run, so
// it is not edited while nothing happens.
#[test]
fn in_progress_comments_do_not_change_with_time() {
    let since = "2026-11-30T10:00:00Z".parse().unwrap();
    let waiting = view(
        State::WaitingForImage {
            image: "repo:abc".into(),
            since,
        },
        &memory(),
    );
    assert!(waiting.contains("since 10:00 UTC"), "{waiting}");
    let deploying = view(
        State::Deploying {
            status: "CREATE_IN_PROGRESS".into(),
            since: Some(since),
            trouble: None,
        },
        &memory(),
    );
    assert!(
        deploying.contains("(CREATE_IN_PROGRESS, since 10:00 UTC)"),
        "{deploying}"
    );
}
