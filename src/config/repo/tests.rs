//! Laying a repository's `.pullstack.yaml` over the server's config.

use super::*;
use crate::config::{ConfigError, EdgeMode};

const SERVER: &str = "app: platform\nrepositories: [acme/*]\n\
                      preview:\n  limits:\n    per_repository: 3\n  env:\n    FROM: server\n\
                      allow:\n  production: [acme/web]\n";

fn server() -> Config {
    Config::parse(Path::new("pullstack.yaml"), SERVER).unwrap()
}

fn repo(name: &str) -> RepoName {
    RepoName::parse(name).unwrap()
}

/// The error's file, line, column and message.
fn error(text: &str) -> (String, usize, usize, String) {
    match server()
        .for_repository(&repo("acme/api"), text)
        .unwrap_err()
    {
        ConfigError::Invalid {
            file,
            line,
            column,
            message,
        } => (file.display().to_string(), line, column, message),
        other => panic!("{other}"),
    }
}

#[test]
fn a_repository_sets_what_its_team_owns_and_keeps_the_servers_limits() {
    let text = "app: api\npreview:\n  cpu: \"512\"\n  port: 3000\n  health_path: /up\n  \
                env:\n    MODE: api\n";
    let config = server().for_repository(&repo("acme/api"), text).unwrap();
    assert_eq!(config.app, "api");
    assert_eq!(config.repository, "acme/api");
    assert_eq!(config.preview.cpu, "512");
    assert_eq!(config.preview.port, 3000);
    assert_eq!(config.preview.health_path, "/up");
    assert_eq!(
        config.preview.env,
        BTreeMap::from([("MODE".into(), "api".into())])
    );
    // Unset fields keep the server's values; what the server names stays its own.
    assert_eq!(config.preview.memory, "512");
    assert_eq!(config.preview.limits.per_repository, Some(3));
    assert_eq!(config.shared_stack_name(), "platform-shared");
    assert_eq!(config.sqs_queue(), "platform-pullstack.fifo");
    assert_eq!(config.edge_mode(), EdgeMode::Dedicated);
    assert!(!config.serves_many());
}

#[test]
fn unset_sections_keep_the_servers_settings() {
    let config = server()
        .for_repository(&repo("acme/api"), "app: api\n")
        .unwrap();
    assert_eq!(
        config.preview.env,
        BTreeMap::from([("FROM".into(), "server".into())])
    );
    assert!(!config.production.enabled);
}

#[test]
fn a_size_past_the_servers_ceiling_is_refused_where_it_is_written() {
    let (file, line, column, message) =
        error("app: api\npreview:\n  memory: \"512\"\n  cpu: \"4096\"\n");
    assert_eq!(file, ".pullstack.yaml");
    assert_eq!((line, column), (4, 3));
    assert_eq!(
        message,
        "preview.cpu: 4096 is more than this server allows (allow.cpu: 1024)"
    );
    let (_, line, _, message) = error("app: api\nproduction:\n  desired_count: 9\n");
    assert_eq!(line, 3);
    assert!(
        message.starts_with("production.desired_count: 9 tasks"),
        "{message}"
    );
    let (_, _, _, message) = error("app: api\npreview:\n  memory: lots\n");
    assert_eq!(message, "preview.memory: \"lots\" is not a number");
}

#[test]
fn limits_and_server_sections_cannot_be_set_by_a_repository() {
    let (file, line, column, message) =
        error("app: api\npreview:\n  limits:\n    per_repository: 50\n");
    assert_eq!(file, ".pullstack.yaml");
    assert_eq!((line, column), (3, 3));
    assert!(message.contains("unknown field `limits`"), "{message}");
    let (_, line, _, message) = error("app: api\nedge:\n  mode: shared\n");
    assert_eq!(line, 2);
    assert!(message.contains("unknown field `edge`"), "{message}");
}

#[test]
fn only_allowed_repositories_turn_production_on() {
    let text = "app: api\npreview:\n  env: {}\nproduction:\n  enabled: true\n  domain: api.example.com\n  \
                hosted_zone_id: Z1\n  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/x\n";
    let (_, line, column, message) = error(text);
    assert_eq!((line, column), (5, 3));
    assert_eq!(
        message,
        "production.enabled: this server does not release acme/api to production (its allow.production)"
    );
    let web = server().for_repository(&repo("acme/web"), text).unwrap();
    assert!(web.production.enabled);
}

#[test]
fn the_merged_config_is_checked_against_the_repository_file() {
    let (file, line, _, message) = error("app: Not_An_App\n");
    assert_eq!((file.as_str(), line), (".pullstack.yaml", 1));
    assert!(message.starts_with("app: "), "{message}");
    let (_, line, column, message) = error("app: api\npreview:\n  health_path: up\n");
    assert_eq!((line, column), (3, 3));
    assert_eq!(message, "health_path: must start with '/'");
}

#[test]
fn a_server_serves_one_repository_or_globs_never_both() {
    let parse = |text: &str| Config::parse(Path::new("pullstack.yaml"), text);
    let both = parse("app: p\nrepository: acme/web\nrepositories: [acme/*]\n").unwrap_err();
    assert!(
        both.to_string().contains("repositories: serves the App's"),
        "{both}"
    );
    let neither = parse("app: p\n").unwrap_err();
    assert!(
        neither.to_string().contains("missing field `repository`"),
        "{neither}"
    );
    let bad = parse("app: p\nrepositories: [acme]\n").unwrap_err();
    assert!(bad.to_string().contains("owner/name"), "{bad}");
    assert!(
        parse("app: p\nrepositories: [acme/*]\n")
            .unwrap()
            .serves_many()
    );
    assert!(
        !parse("app: p\nrepository: acme/web\n")
            .unwrap()
            .serves_many()
    );
}

#[test]
fn shipped_repository_example_is_valid_and_states_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pullstack.repo.example.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let server = Config::parse(
        Path::new("pullstack.yaml"),
        "app: p\nrepositories: [acme/*]\n",
    )
    .unwrap();
    let config = server.for_repository(&repo("acme/web"), &text).unwrap();
    assert_eq!(config.app, "web");
    let defaults = Config::parse(
        Path::new("pullstack.yaml"),
        "app: p\nrepository: acme/web\n",
    )
    .unwrap();
    let (p, d) = (&config.preview, &defaults.preview);
    assert_eq!((&p.cpu, &p.memory, p.port), (&d.cpu, &d.memory, d.port));
    assert_eq!(
        (&p.health_path, p.desired_count),
        (&d.health_path, d.desired_count)
    );
    assert_eq!(
        (p.ready_check, p.ready_timeout),
        (d.ready_check, d.ready_timeout)
    );
    let (p, d) = (&config.production, &defaults.production);
    assert_eq!(
        (&p.cpu, &p.memory, p.desired_count),
        (&d.cpu, &d.memory, d.desired_count)
    );
    assert_eq!((&p.steps, p.bake, p.gate), (&d.steps, d.bake, d.gate));
    assert_eq!(p.enabled, d.enabled);
}

#[test]
fn shipped_server_example_states_the_allow_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pullstack.example.yaml");
    let config = Config::load(&path).unwrap();
    let allow = AllowConfig::default();
    assert_eq!(
        (
            config.allow.cpu,
            config.allow.memory,
            config.allow.desired_count
        ),
        (allow.cpu, allow.memory, allow.desired_count)
    );
    assert!(config.allow.production.0.is_empty());
    assert!(!config.serves_many());
}

#[test]
fn a_repository_names_its_own_tasks_before_traffic_and_on_delete() {
    let text = "app: api\npreview:\n  before_traffic:\n    command: [\"./migrate\"]\n    \
                timeout: 2m\n";
    let config = server().for_repository(&repo("acme/api"), text).unwrap();
    let task = config.preview.before_traffic.expect("its own task");
    assert_eq!(task.command, ["./migrate"]);
    assert_eq!(task.timeout, Duration::from_secs(120));
    assert!(config.preview.on_delete.is_none(), "the server's: none");
}

#[test]
fn a_repository_clones_its_own_database() {
    let text = "app: api\npreview:\n  database:\n    clone_from: api-staging\n";
    let config = server().for_repository(&repo("acme/api"), text).unwrap();
    let database = config.preview.database.expect("its own clone");
    assert_eq!(database.clone_from, "api-staging");
}

#[test]
fn a_repository_checks_its_own_releases_but_not_with_the_servers_gates() {
    let text = "app: api\nproduction:\n  checks:\n    - name: api\n      path: /v1/health\n  \
                checks_name: api/release\n";
    let config = server().for_repository(&repo("acme/api"), text).unwrap();
    assert_eq!(config.production.checks[0].path, "/v1/health");
    assert_eq!(config.production.checks_name, "api/release");
    // Gate hooks are signed with the server's key: a repository cannot
    // have that signature sent where it likes.
    let (_, line, _, message) =
        error("app: api\nproduction:\n  gates:\n    - https://x.example/\n");
    assert_eq!(line, 3, "{message}");
    assert!(message.contains("unknown field `gates`"), "{message}");
    let (_, _, _, message) =
        error("app: api\nproduction:\n  checks:\n    - name: api\n      path: v1\n");
    assert!(message.contains("production.checks"), "{message}");
}

#[test]
fn a_repository_names_its_own_checks_and_their_check_run() {
    let text = "app: api\npreview:\n  checks:\n    - name: home\n      path: /\n      \
                body_matches: \"^<!doctype\"\n  checks_name: api/smoke\n";
    let config = server().for_repository(&repo("acme/api"), text).unwrap();
    let [check] = &config.preview.checks[..] else {
        panic!("one check: {:?}", config.preview.checks)
    };
    assert_eq!((check.name.as_str(), check.expect_status()), ("home", 200));
    assert!(
        check
            .body_matches
            .as_ref()
            .unwrap()
            .0
            .is_match("<!doctype html>")
    );
    assert_eq!(config.preview.checks_name, "api/smoke");
    let unset = server()
        .for_repository(&repo("acme/api"), "app: api\n")
        .unwrap();
    assert!(unset.preview.checks.is_empty());
    assert_eq!(unset.preview.checks_name, "pullstack/checks");
    let (file, line, _, message) = error(
        "app: api\npreview:\n  checks:\n    - name: x\n      path: /\n      body_matches: \"(\"\n",
    );
    assert_eq!((file.as_str(), line), (".pullstack.yaml", 4), "{message}");
    assert!(message.contains("not a regular expression"), "{message}");
}
