//! The command line as a user meets it: config checks, unknown commands,
//! and secrets that never reach an error message.

use crate::support;
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

/// The GitHub Action reads the shared stack's name this way.
#[test]
fn config_check_json_names_the_shared_stack() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pullstack.yaml");
    std::fs::write(
        &path,
        "app: demo\nrepository: octo/app\nshared:\n  stack_name: base\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let output = pullstack(&["config", "check", "-o", "json", file], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let checked: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(checked[0]["app"], "demo");
    assert_eq!(checked[0]["shared_stack"], "base");
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

#[test]
fn a_token_beside_app_credentials_is_refused_at_start() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pullstack.example.yaml");
    for var in ["PULLSTACK_GITHUB_TOKEN", "GITHUB_TOKEN"] {
        let output = pullstack(
            &["serve", "--config", example],
            &[
                ("PULLSTACK_WEBHOOK_SECRET", "s3cr3t-hook"),
                ("PULLSTACK_GITHUB_APP_ID", "42"),
                (var, "ghp_straytoken123"),
            ],
        );
        assert_eq!(output.status.code(), Some(1));
        let err = stderr(&output);
        assert!(
            err.contains(&format!("both {var} and PULLSTACK_GITHUB_APP_ID are set")),
            "{err}"
        );
        assert!(!err.contains("ghp_straytoken123"), "{err}");
    }
}

/// A wrong API URL answers 404 to `GET /user`: said once at start, with the
/// URL and what to check, rather than by every pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_that_cannot_be_read_stops_the_start() {
    let github = crate::support::github_fake::GitHubFake::start().await;
    let api = format!("{}not-the-api", github.url());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pullstack.example.yaml");
    let output = tokio::task::spawn_blocking(move || {
        pullstack(
            &["serve", "--config", example, "--listen", "127.0.0.1:0"],
            &[
                ("PULLSTACK_WEBHOOK_SECRET", "s3cr3t-hook"),
                ("PULLSTACK_GITHUB_TOKEN", "ghp_token123"),
                ("PULLSTACK_GITHUB_API_URL", &api),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("GET /user on http://"), "{err}");
    assert!(err.contains("not-the-api"), "{err}");
    assert!(err.contains("https://HOST/api/v3"), "{err}");
    assert!(!err.contains("ghp_token123"), "{err}");
}

/// SIGTERM stops accepting, lets work in flight finish, and exits cleanly.
#[test]
fn serve_shuts_down_gracefully_on_sigterm() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/pullstack.example.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pullstack"))
        .args([
            "serve",
            "--config",
            example,
            "--listen",
            &listen,
            "--shutdown-grace",
            "2s",
        ])
        // Nothing answers here: the start-up resync fails and is retried.
        .env("PULLSTACK_GITHUB_API_URL", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("PULLSTACK_WEBHOOK_SECRET", "secret")
        .env("PULLSTACK_GITHUB_TOKEN", "token")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its log says when it listens; a reader thread hands the lines over.
    let stderr = child.stderr.take().unwrap();
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            if lines.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let limit = std::time::Duration::from_secs(15);
    let mut err = String::new();
    while !err.contains("pullstack is listening") {
        let line = log.recv_timeout(limit).expect("server did not start");
        err.push_str(&line);
        err.push('\n');
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The log ends when the process does.
    loop {
        match log.recv_timeout(limit) {
            Ok(line) => {
                err.push_str(&line);
                err.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("no exit after SIGTERM: {err}")
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("shutting down"), "{err}");
}

/// `bootstrap` creates the shared stack with live progress, and a second run
/// says nothing changed.
#[test]
fn bootstrap_is_idempotent_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let app = format!("boot-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let config = dir.path().join("pullstack.yaml");
    std::fs::write(&config, format!("app: {app}\nrepository: octo/{app}\n")).unwrap();
    let endpoint = support::moto_endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let args = ["bootstrap", "--config", config.to_str().unwrap()];
    let first = pullstack(&args, &env);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}\n{out}", stderr(&first));
    assert!(
        out.contains(&format!("Creating shared stack {app}-shared")),
        "{out}"
    );
    // moto reports stack-level events only; AWS also lists each resource.
    assert!(
        out.contains("AWS::CloudFormation::Stack") && out.contains("CREATE_IN_PROGRESS"),
        "events are shown: {out}"
    );
    assert!(out.contains("CREATE_COMPLETE in"), "{out}");
    assert!(
        out.contains("RepositoryUri"),
        "ends with the outputs: {out}"
    );

    let second = pullstack(&args, &env);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(out.contains("is up to date: nothing changed"), "{out}");
}

/// Public previews of a public repository are open to anyone who finds
/// the URL: the check says so, from the Actions event it runs in.
#[test]
fn config_check_warns_of_public_previews_on_a_public_repository() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pullstack.yaml");
    let file = path.to_str().unwrap();
    let event = dir.path().join("event.json");
    let event_path = event.to_str().unwrap();
    std::fs::write(&path, "app: demo\nrepository: octo/app\n").unwrap();
    let write_event = |private: bool| {
        let body = serde_json::json!({"repository": {"full_name": "octo/app", "private": private}});
        std::fs::write(&event, body.to_string()).unwrap();
    };

    write_event(false);
    let output = pullstack(
        &["config", "check", "-o", "json", file],
        &[("GITHUB_EVENT_PATH", event_path)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("octo/app is a public repository and preview.access is public"),
        "{}",
        stderr(&output)
    );
    // The warning leaves the JSON scripts read intact.
    serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap();

    write_event(true);
    let output = pullstack(
        &["config", "check", file],
        &[("GITHUB_EVENT_PATH", event_path)],
    );
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));

    // Outside Actions it cannot tell, and says so.
    let output = pullstack(&["config", "check", file], &[]);
    assert!(
        stderr(&output).contains("Could not tell whether octo/app is a public repository"),
        "{}",
        stderr(&output)
    );

    // Private previews get no warning.
    std::fs::write(
        &path,
        "app: demo\nrepository: octo/app\npreview:\n  access:\n    allow_cidrs: [10.0.0.0/8]\n",
    )
    .unwrap();
    write_event(false);
    let output = pullstack(
        &["config", "check", file],
        &[("GITHUB_EVENT_PATH", event_path)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}
