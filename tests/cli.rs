//! The command line as a user meets it: config checks, unknown commands,
//! and secrets that never reach an error message.

use std::process::{Command, Output};

fn pullstack(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pullstack"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run pullstack")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn config_check_accepts_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pullstack.example.yaml");
    let output = pullstack(&["config", "check", example], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok (app demo"));
}

#[test]
fn config_check_names_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "app: demo\nrepository: octo/app\npreview:\n  cpus: 512\n",
    )
    .unwrap();
    let output = pullstack(&["config", "check", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "{}:4:3: preview: unknown field `cpus`",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn unknown_command_is_a_clear_error() {
    let output = pullstack(&["frobnicate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_without_a_webhook_secret_says_which_variable() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pullstack.example.yaml");
    let output = pullstack(
        &["serve", "--config", example],
        &[("PULLSTACK_GITHUB_TOKEN", "ghp_secretvalue123")],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("PULLSTACK_WEBHOOK_SECRET is not set"), "{err}");
    assert!(!err.contains("ghp_secretvalue123"), "{err}");
}

#[test]
fn a_bad_app_key_is_reported_without_its_contents() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pullstack.example.yaml");
    let key = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END RSA PRIVATE KEY-----";
    let output = pullstack(
        &["serve", "--config", example],
        &[
            ("PULLSTACK_WEBHOOK_SECRET", "s3cr3t-hook"),
            ("PULLSTACK_GITHUB_APP_ID", "42"),
            ("PULLSTACK_GITHUB_APP_KEY", key),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("PULLSTACK_GITHUB_APP_KEY is not valid"),
        "{err}"
    );
    assert!(
        !err.contains("c2VjcmV0") && !err.contains("s3cr3t-hook"),
        "{err}"
    );
}
