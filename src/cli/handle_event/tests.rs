//! handle-event's parsing, routing, outputs and log escaping.

use super::*;

fn config() -> Config {
    Config::parse(Path::new("t.yaml"), "app: demo\nrepository: octo/app\n").unwrap()
}

#[test]
fn unknown_events_are_errors_naming_the_known_ones() {
    let err = known("frobnicate").unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("\"frobnicate\""), "{text}");
    assert!(text.contains("pull_request, issue_comment"), "{text}");
}

#[test]
fn a_bad_payload_is_an_error() {
    assert!(route(&config(), "pull_request", b"not json").is_err());
    assert!(route(&config(), "schedule", b"not json").is_err());
    assert!(route(&config(), "pull_request", b"{}").is_err());
}

#[test]
fn ignored_actions_have_nothing_to_do() {
    let body = br#"{"ref": "v1", "ref_type": "tag", "repository": {"full_name": "octo/app"}}"#;
    assert!(matches!(
        route(&config(), "delete", body).unwrap(),
        Route::Ignored(_)
    ));
}

#[test]
fn schedule_and_manual_runs_resync() {
    assert_eq!(
        route(&config(), "schedule", br#"{"schedule": "17 * * * *"}"#).unwrap(),
        Route::Jobs(vec![(Job::Resync, None)])
    );
}

#[test]
fn outputs_cannot_inject_entries() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out");
    write_outputs(&file, &[("url", "x\nstack-name=evil".into())]).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let delimiter = header.strip_prefix("url<<").unwrap();
    assert_eq!(lines.next(), Some("x"));
    assert_eq!(lines.next(), Some("stack-name=evil"));
    assert_eq!(lines.next(), Some(delimiter));
}

#[test]
fn only_the_integration_refusal_means_an_actions_token() {
    let refused = |message: &str| ForgeError::Refused {
        status: 403,
        message: message.into(),
    };
    assert!(is_installation_token(&refused(
        "Resource not accessible by integration"
    )));
    assert!(!is_installation_token(&refused(
        "API rate limit exceeded for installation ID 1."
    )));
    assert!(!is_installation_token(&ForgeError::NotFound));
}

#[test]
fn command_messages_are_escaped() {
    assert_eq!(escape_data("a\n::x%"), "a%0A::x%25");
}
