//! Parsing, defaults and the errors a bad config gets.

use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("pullstack.yaml"), text)
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pullstack.example.yaml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.app, "demo");
    // The example states the defaults: it must agree with the code.
    let defaults = PreviewConfig::default();
    assert_eq!(config.preview.image_timeout, defaults.image_timeout);
    assert_eq!(config.preview.approve_label, defaults.approve_label);
    assert_eq!(config.queue.workers, QueueConfig::default().workers);
    let images = ImagesConfig::default();
    assert_eq!(config.images.prune, images.prune);
    assert_eq!(config.images.prune_after, images.prune_after);
    assert_eq!(config.images.interval, images.interval);
    assert_eq!(config.images.mutable_tags, images.mutable_tags);
    assert_eq!(config.preview.task_role_arn, None);
    assert_eq!(config.production.task_role_arn, None);
    let sqs = SqsConfig::default();
    assert_eq!(config.queue.backend, Backend::Memory);
    assert_eq!(config.queue.sqs.lease_ttl, sqs.lease_ttl);
    assert_eq!(config.queue.sqs.receive_wait, sqs.receive_wait);
    assert_eq!(config.sqs_queue(), "demo-pullstack.fifo");
    assert_eq!(config.lease_table(), "demo-pullstack");
    let edge = EdgeConfig::default();
    assert_eq!(config.edge.mode, edge.mode);
    assert_eq!(config.edge.certificate_arn, edge.certificate_arn);
    assert_eq!(config.edge.rules_per_alb, edge.rules_per_alb);
    assert_eq!(config.production.certificate_arn, "");
    assert_eq!(config.production.strategy, super::Strategy::Route53);
    assert_eq!(config.production.sticky, None);
    assert_eq!(config.preview.access, AccessConfig::default());
}

#[test]
fn the_queue_stays_in_memory_unless_sqs_is_asked_for() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert_eq!(config.queue.backend, Backend::Memory);
    let text = "app: demo\nrepository: octo/app\nqueue:\n  backend: sqs\n  sqs:\n    \
                queue: https://sqs.eu-west-1.amazonaws.com/1/work.fifo\n    table: leases\n    \
                lease_ttl: 1m\n";
    let config = parse(text).unwrap();
    assert_eq!(config.queue.backend, Backend::Sqs);
    assert_eq!(
        config.sqs_queue(),
        "https://sqs.eu-west-1.amazonaws.com/1/work.fifo"
    );
    assert_eq!(config.lease_table(), "leases");
    assert_eq!(config.queue.sqs.lease_ttl, Duration::from_secs(60));
}

#[test]
fn a_queue_setting_that_cannot_work_names_its_line_and_field() {
    let base = "app: demo\nrepository: octo/app\nqueue:\n  backend: sqs\n  sqs:\n";
    for (extra, expected) in [
        (
            "    lease_ttl: 1s\n",
            "pullstack.yaml:6:5: lease_ttl: must be between 2s and 12h",
        ),
        (
            "    receive_wait: 21s\n",
            "pullstack.yaml:6:5: receive_wait: must be at most 20s",
        ),
        (
            "    queue: work\n",
            "pullstack.yaml:6:5: queue.sqs.queue: \"work\" must be a FIFO queue",
        ),
    ] {
        let err = parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }
    let err = parse("app: demo\nrepository: octo/app\nqueue:\n  backend: kafka\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pullstack.yaml:4:12") && err.contains("memory"),
        "{err}"
    );
}

#[test]
fn images_section_takes_durations_and_rejects_a_zero_window() {
    let config =
        parse("app: demo\nrepository: octo/app\nimages:\n  prune_after: 3d\n  interval: 0s\n")
            .unwrap();
    assert_eq!(config.images.prune_after, Duration::from_secs(3 * 86_400));
    assert!(config.images.interval.is_zero());
    let err = parse("app: demo\nrepository: octo/app\nimages:\n  prune_after: 0s\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: prune_after: must be more than 0s"),
        "{err}"
    );
}

#[test]
fn minimal_config_takes_defaults() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert_eq!(config.shared_stack_name(), "demo-shared");
    assert_eq!(config.preview.capacity, Capacity::FargateSpot);
    assert_eq!(config.queue.workers, 16);
}

#[test]
fn unknown_field_names_file_line_column_and_field() {
    let err = parse("app: demo\nrepository: octo/app\npreview:\n  cpus: 512\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: preview: unknown field `cpus`"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_field() {
    let err = parse("app: demo\nrepository: octo/app\npreview:\n  port: many\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:9: preview.port: invalid type"),
        "{err}"
    );
}

#[test]
fn bad_duration_is_reported() {
    let err = parse("app: demo\nrepository: octo/app\nresync:\n  interval: soon\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pullstack.yaml:4:13: resync.interval"),
        "{err}"
    );
}

#[test]
fn semantic_error_points_at_the_field() {
    let err = parse("repository: octo/app\napp: Demo_App\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:2:1: app: \"Demo_App\""),
        "{err}"
    );
}

#[test]
fn secret_values_are_never_echoed() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  secrets:\n    DB: hunter2-plaintext\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.starts_with("pullstack.yaml:5:5: preview.secrets: DB: must be the ARN"),
        "{err}"
    );
}

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:";
const PRODUCTION: &str = "production:\n  enabled: true\n  domain: www.example.com\n  hosted_zone_id: Z1\n\
     \x20 certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c\n";

#[test]
fn previews_and_production_get_their_own_container_settings() {
    let text = format!(
        "app: demo\nrepository: octo/app\n\
         preview:\n  env:\n    APP_ENV: preview\n  secrets:\n    DB: {SECRET}pullstack/demo/preview/db-AbCdEf\n\
         \x20 task_role_arn: arn:aws:iam::123456789012:role/demo-preview\n\
         {PRODUCTION}  env:\n    APP_ENV: production\n  secrets:\n    DB: {SECRET}pullstack/demo/production/db-XyZ123\n\
         \x20 task_role_arn: arn:aws:iam::123456789012:role/demo-production\n"
    );
    let config = parse(&text).unwrap();
    let preview = config.container(StackRole::Preview);
    assert_eq!(preview.env["APP_ENV"], "preview");
    assert!(preview.secrets["DB"].ends_with("pullstack/demo/preview/db-AbCdEf"));
    assert_eq!(
        preview.task_role_arn,
        Some("arn:aws:iam::123456789012:role/demo-preview")
    );
    let production = config.container(StackRole::Production);
    assert_eq!(production.env["APP_ENV"], "production");
    assert!(production.secrets["DB"].ends_with("pullstack/demo/production/db-XyZ123"));
    assert_eq!(
        production.task_role_arn,
        Some("arn:aws:iam::123456789012:role/demo-production")
    );
}

#[test]
fn production_without_settings_of_its_own_gets_none() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    let production = config.container(StackRole::Production);
    assert!(production.env.is_empty() && production.secrets.is_empty());
    assert_eq!(production.task_role_arn, None);
}

#[test]
fn a_production_secret_in_the_preview_section_is_refused_where_it_is_written() {
    // Production's section comes first: the error must point into the
    // preview's section, at the offending entry.
    let text = format!(
        "app: demo\nrepository: octo/app\n{PRODUCTION}  secrets:\n    DB: {SECRET}pullstack/demo/production/db-AbCdEf\n\
         preview:\n  secrets:\n    OTHER: {SECRET}pullstack/demo/preview/other-AbCdEf\n    DB: {SECRET}pullstack/demo/production/db-AbCdEf\n"
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:13:5: preview.secrets: DB: `pullstack/demo/production/db-AbCdEf` is under \
             pullstack/demo/production/, which only production stacks may read"
        ),
        "{err}"
    );
}

#[test]
fn a_preview_secret_in_the_production_section_is_refused() {
    let text = format!(
        "app: demo\nrepository: octo/app\npreview:\n  secrets:\n    DB: {SECRET}pullstack/demo/preview/db-AbCdEf\n\
         {PRODUCTION}  secrets:\n    DB: {SECRET}pullstack/demo/preview/db-AbCdEf\n"
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:12:5: production.secrets: DB: `pullstack/demo/preview/db-AbCdEf`"
        ),
        "{err}"
    );
    assert!(err.contains("only preview stacks may read"), "{err}");
}

#[test]
fn a_secret_under_the_old_shared_prefix_says_what_to_rename() {
    let text = format!(
        "app: demo\nrepository: octo/app\npreview:\n  secrets:\n    DB: {SECRET}pullstack/demo/db-AbCdEf\n"
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:5:5: preview.secrets: DB: `pullstack/demo/db-AbCdEf` is under the old shared prefix pullstack/demo/"),
        "{err}"
    );
    assert!(
        err.contains("Move the secret to `pullstack/demo/preview/db` (production's to `pullstack/demo/production/db`"),
        "{err}"
    );
}

#[test]
fn a_task_role_must_be_an_iam_role_arn() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  port: 8080\nproduction:\n  task_role_arn: demo-task\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:6:3: production.task_role_arn: \"demo-task\" must be an IAM role ARN"
        ),
        "{err}"
    );
}

#[test]
fn releases_no_longer_take_the_previews_settings_silently() {
    // A config written when releases took preview.env and preview.secrets.
    let text = format!("app: demo\nrepository: octo/app\npreview:\n  env:\n    A: b\n{PRODUCTION}");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:6:1: production.env: production releases no longer take preview.env: \
             give production its own (`env: {}` for none)"
        ),
        "{err}"
    );
    let text = format!(
        "app: demo\nrepository: octo/app\npreview:\n  secrets:\n    DB: {SECRET}pullstack/demo/preview/db-AbCdEf\n{PRODUCTION}"
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains(
            "production.secrets: production releases no longer take preview.secrets: list \
             production's own, under pullstack/demo/production/ (`secrets: {}` for none)"
        ),
        "{err}"
    );
    let stated = format!(
        "app: demo\nrepository: octo/app\npreview:\n  env:\n    A: b\n  secrets:\n    DB: {SECRET}pullstack/demo/preview/db-AbCdEf\n\
         {PRODUCTION}  env: {{}}\n  secrets: {{}}\n"
    );
    parse(&stated).unwrap();
    // Without production, previews' settings need nothing more.
    parse("app: demo\nrepository: octo/app\npreview:\n  env:\n    A: b\n").unwrap();
}

#[test]
fn missing_required_field() {
    let err = parse("app: demo\n").unwrap_err().to_string();
    assert!(err.contains("missing field `repository`"), "{err}");
}

#[test]
fn cloudformation_role_is_optional_and_taken_as_written() {
    assert_eq!(
        parse("app: demo\nrepository: octo/app\n")
            .unwrap()
            .shared
            .cloudformation_role_arn,
        None
    );
    for arn in [
        "arn:aws:iam::123456789012:role/pullstack-cloudformation",
        "arn:aws-us-gov:iam::123456789012:role/service/pullstack+cfn@x",
    ] {
        let text =
            format!("app: demo\nrepository: octo/app\nshared:\n  cloudformation_role_arn: {arn}\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.shared.cloudformation_role_arn.as_deref(), Some(arn));
    }
}

#[test]
fn a_cloudformation_role_that_is_not_a_role_arn_names_the_field() {
    for bad in [
        "pullstack-cloudformation",
        "arn:aws:iam::123456789012:user/pullstack",
        "arn:aws:iam::1234:role/pullstack",
        "arn:aws:iam:us-east-1:123456789012:role/pullstack",
        "arn:aws:sts::123456789012:assumed-role/pullstack/x",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/has space",
    ] {
        let text = format!(
            "app: demo\nrepository: octo/app\nshared:\n  hosted_zone: \"\"\n  cloudformation_role_arn: \"{bad}\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("pullstack.yaml:5:3: cloudformation_role_arn: ")
                && err.contains("must be an IAM role ARN"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn the_edge_is_shared_when_previews_have_a_zone() {
    let base = "app: demo\nrepository: octo/app\n";
    assert_eq!(parse(base).unwrap().edge_mode(), EdgeMode::Dedicated);
    let zoned = format!("{base}preview:\n  dns_zone: preview.example.com\n  hosted_zone_id: Z1\n");
    let config = parse(&zoned).unwrap();
    assert_eq!(config.edge_mode(), EdgeMode::Shared);
    assert_eq!(config.edge.rules_per_alb, 90);
    assert!(config.edge.certificate_arn.is_empty());
    let kept = parse(&format!("{zoned}edge:\n  mode: dedicated\n")).unwrap();
    assert_eq!(kept.edge_mode(), EdgeMode::Dedicated);
}

#[test]
fn the_shared_edge_needs_a_zone_and_a_sane_rule_count() {
    let base = "app: demo\nrepository: octo/app\n";
    let err = parse(&format!("{base}edge:\n  mode: shared\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: edge.mode: shared needs preview.dns_zone"),
        "{err}"
    );
    let err = parse(&format!("{base}edge:\n  rules_per_alb: 101\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: edge.rules_per_alb: must be between 1 and 100"),
        "{err}"
    );
    let err = parse(&format!(
        "{base}edge:\n  certificate_arn: arn:aws:iam::1:role/x\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "edge.certificate_arn: \"arn:aws:iam::1:role/x\" is not an ACM certificate ARN"
        ),
        "{err}"
    );
}

#[test]
fn production_needs_a_certificate_for_https() {
    let text = "app: demo\nrepository: octo/app\nproduction:\n  enabled: true\n  \
                domain: www.example.com\n  hosted_zone_id: Z1\n  env: {}\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:3:1: production.certificate_arn: required when enabled"),
        "{err}"
    );
    assert!(err.contains("www.example.com"), "{err}");
}

const CERTIFICATE: &str = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c";

const ZONE: &str = "preview:\n  dns_zone: preview.example.com\n  hosted_zone_id: Z1\n";

fn access(zone: &str, access: &str) -> Result<Config, ConfigError> {
    parse(&format!(
        "app: demo\nrepository: octo/app\n{zone}{}  access:\n{access}",
        if zone.is_empty() { "preview:\n" } else { "" }
    ))
}

#[test]
fn access_is_public_unless_told_otherwise() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert!(config.preview.access.is_public());
    assert_eq!(config.preview.access.bypass_header, "X-Pullstack-Bypass");
    let config = access(
        ZONE,
        &format!(
            "    allow_cidrs: [203.0.113.0/24, \"2001:db8::/32\"]\n    oidc:\n      issuer: https://idp.example.com\n      \
             authorization_endpoint: https://idp.example.com/auth\n      \
             token_endpoint: https://idp.example.com/token\n      \
             user_info_endpoint: https://idp.example.com/userinfo\n      client_id: previews\n      \
             client_secret_arn: {SECRET}pullstack/demo/access/oidc-AbCdEf\n    bypass_secret_arn: {SECRET}pullstack/demo/access/bypass-AbCdEf\n"
        ),
    )
    .unwrap();
    let access = &config.preview.access;
    assert!(!access.is_public() && access.needs_login() && access.has_bypass());
    assert_eq!(access.oidc.as_ref().unwrap().scope, "openid");
}

#[test]
fn bad_access_names_its_line_and_field() {
    let cases = [
        (
            "    allow_cidrs: [10.0.0.0/33]\n",
            "pullstack.yaml:7:5: preview.access.allow_cidrs: \"10.0.0.0/33\" is not a CIDR",
        ),
        (
            "    allow_cidrs: [10.0.0.0/8, 10.1.0.0/16, 10.2.0.0/16, 10.3.0.0/16, 10.4.0.0/16]\n",
            "pullstack.yaml:7:5: preview.access.allow_cidrs: at most 4",
        ),
        (
            "    cognito:\n      user_pool_arn: arn:aws:s3:::bucket\n      client_id: c\n      domain: d\n",
            "pullstack.yaml:8:7: preview.access.cognito.user_pool_arn: \"arn:aws:s3:::bucket\" is not a user pool ARN",
        ),
        (
            "    allow_cidrs: [10.0.0.0/8]\n    bypass_secret_arn: hunter2\n",
            "pullstack.yaml:8:5: preview.access.bypass_secret_arn: \"hunter2\" is not a Secrets Manager",
        ),
        (
            &format!("    bypass_secret_arn: {SECRET}pullstack/demo/access/bypass\n"),
            "pullstack.yaml:7:5: preview.access.bypass_secret_arn: previews are public",
        ),
        (
            "    allow_cidrs: [10.0.0.0/8]\n    bypass_header: \"X Bypass\"\n",
            "pullstack.yaml:8:5: preview.access.bypass_header: \"X Bypass\" must be",
        ),
        (
            &format!(
                "    allow_cidrs: [10.0.0.0/8]\n    bypass_secret_arn: {SECRET}pullstack/demo/preview/bypass\n"
            ),
            "pullstack.yaml:8:5: preview.access.bypass_secret_arn: the secret's name must start with pullstack/demo/access/",
        ),
        (
            "    surprise: true\n",
            "pullstack.yaml:7:5: preview.access: unknown field `surprise`",
        ),
    ];
    for (written, expected) in cases {
        let err = access(ZONE, written).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{written}: {err}");
    }
}

#[test]
fn a_login_needs_https_host_rules_in_either_mode() {
    let cognito = "    cognito:\n      user_pool_arn: arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Ab\n      \
                   client_id: c\n      domain: previews\n";
    assert!(access(ZONE, cognito).is_ok());
    let err = access("", cognito).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:5:5: preview.access.cognito: needs HTTPS: with edge.mode \
             dedicated, set edge.certificate_arn"
        ),
        "{err}"
    );
    // Dedicated mode: a certificate gives each preview's own load balancer
    // HTTPS and host rules, which is all a sign-in needs.
    let dedicated = format!("edge:\n  mode: dedicated\n{ZONE}");
    let err = access(&dedicated, cognito).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:9:5: preview.access.cognito: needs HTTPS"),
        "{err}"
    );
    let certified = format!("edge:\n  mode: dedicated\n  certificate_arn: {CERTIFICATE}\n{ZONE}");
    let config = access(&certified, cognito).unwrap();
    assert_eq!(config.dedicated_certificate(), Some(CERTIFICATE));
    // Source ranges work without HTTPS; the bypass needs the host rules.
    let ranges = "    allow_cidrs: [10.0.0.0/8]\n";
    assert!(access("", ranges).is_ok());
    let bypass = format!("{ranges}    bypass_secret_arn: {SECRET}pullstack/demo/access/bypass\n");
    let err = access("", &bypass).unwrap_err().to_string();
    assert!(
        err.contains("preview.access.bypass_secret_arn: needs HTTPS host rules: with edge.mode dedicated, set edge.certificate_arn"),
        "{err}"
    );
    assert!(access(&certified, &bypass).is_ok());
    // The certificate covers the previews' zone, so dedicated mode needs one.
    let err = parse(&format!(
        "app: demo\nrepository: octo/app\nedge:\n  mode: dedicated\n  certificate_arn: {CERTIFICATE}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "pullstack.yaml:5:3: edge.certificate_arn: in dedicated mode, needs preview.dns_zone"
        ),
        "{err}"
    );
}

#[test]
fn one_off_tasks_take_a_command_and_a_timeout() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  before_traffic:\n    command: [\"./migrate\", \"up\"]\n  on_delete:\n    command: [sh, -c, \"drop schema\"]\n    timeout: 2m\n";
    let config = parse(text).unwrap();
    let before = config.preview.before_traffic.unwrap();
    assert_eq!(before.command, ["./migrate", "up"]);
    assert_eq!(before.timeout, std::time::Duration::from_secs(600));
    let on_delete = config.preview.on_delete.unwrap();
    assert_eq!(on_delete.timeout, std::time::Duration::from_secs(120));
    assert_eq!(
        parse("app: demo\nrepository: octo/app\n")
            .unwrap()
            .preview
            .before_traffic,
        None
    );
}

#[test]
fn one_off_tasks_need_a_program() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  before_traffic:\n    command: []\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: before_traffic: command must name a program"),
        "{err}"
    );
    let text = "app: demo\nrepository: octo/app\npreview:\n  before_traffic:\n    command: [x]\n    timout: 1m\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(err.contains("timout"), "unknown fields are refused: {err}");
}

#[test]
fn a_database_clone_takes_its_defaults() {
    let text =
        "app: demo\nrepository: octo/app\npreview:\n  database:\n    clone_from: staging-db\n";
    let database = parse(text).unwrap().preview.database.unwrap();
    assert_eq!(database.clone_from, "staging-db");
    assert_eq!(database.instance_class, "db.serverless");
    assert!(database.serverless());
    assert_eq!(database.name, None);
    assert_eq!((database.min_acu, database.max_acu), (0.5, 2.0));
    let none = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert_eq!(none.preview.database, None);
}

#[test]
fn a_database_clone_is_checked_field_by_field() {
    let base = "app: demo\nrepository: octo/app\npreview:\n  database:\n";
    let cases = [
        (
            "    clone_from: 1bad\n",
            "pullstack.yaml:5:5: preview.database.clone_from:",
        ),
        (
            "    clone_from: db\n    min_acu: 0.3\n",
            "pullstack.yaml:6:5: preview.database.min_acu:",
        ),
        (
            "    clone_from: db\n    min_acu: 4\n    max_acu: 2\n",
            "pullstack.yaml:7:5: preview.database.max_acu: must be at least min_acu",
        ),
        (
            "    clone_from: db\n    name: \"drop;\"\n",
            "pullstack.yaml:6:5: preview.database.name:",
        ),
        (
            "    clone_from: db\n    instance_class: serverless\n",
            "pullstack.yaml:6:5: preview.database.instance_class:",
        ),
    ];
    for (yaml, expected) in cases {
        let err = parse(&format!("{base}{yaml}")).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{yaml}: {err}");
    }
    let err = parse(&format!("{base}    clone_from: db\n    min_acus: 1\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("min_acus") && err.contains("pullstack.yaml:6"),
        "{err}"
    );
    let err = parse(&format!("{base}    instance_class: db.serverless\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("clone_from"), "clone_from is required: {err}");
    let err =
        parse("app: my--app\nrepository: octo/app\npreview:\n  database:\n    clone_from: db\n")
            .unwrap_err()
            .to_string();
    assert!(err.starts_with("pullstack.yaml:1:1: app:"), "{err}");
}

#[test]
fn stickiness_needs_the_load_balancer_and_a_sane_duration() {
    let base = format!("app: demo\nrepository: octo/app\n{PRODUCTION}  env: {{}}\n");
    let config = parse(&format!("{base}  strategy: alb\n  sticky: 1h\n")).unwrap();
    assert_eq!(config.production.strategy, super::Strategy::Alb);
    assert_eq!(config.production.sticky, Some(Duration::from_secs(3600)));
    let err = parse(&format!("{base}  sticky: 1h\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("production.sticky: only `strategy: alb` keeps sessions"),
        "{err}"
    );
    let err = parse(&format!("{base}  strategy: alb\n  sticky: 8d\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("production.sticky: must be from 1s to 7d"),
        "{err}"
    );
    let err = parse(&format!("{base}  strategy: nlb\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("strategy"), "{err}");
}

#[test]
fn checks_take_defaults_and_refuse_what_cannot_run() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  checks:\n    - name: home\n      path: /\n    - name: api\n      path: /api/health\n      method: HEAD\n      expect_status: 204\n      body_contains: ok\n      timeout: 3s\n";
    let config = parse(text).unwrap();
    let checks = &config.preview.checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(
        (
            checks[0].method(),
            checks[0].expect_status(),
            checks[0].timeout()
        ),
        (
            crate::config::Method::Get,
            200,
            std::time::Duration::from_secs(10)
        )
    );
    assert!(checks[0].body_contains.is_none() && checks[0].body_matches.is_none());
    assert_eq!(
        (
            checks[1].method(),
            checks[1].expect_status(),
            checks[1].timeout()
        ),
        (
            crate::config::Method::Head,
            204,
            std::time::Duration::from_secs(3)
        )
    );
    assert_eq!(config.preview.checks_name, "pullstack/checks");

    let base = "app: demo\nrepository: octo/app\npreview:\n  checks:\n    - name: home\n";
    let err = |rest: &str| parse(&format!("{base}{rest}")).unwrap_err().to_string();
    let bad_regex = err("      path: /\n      body_matches: \"a(\"\n");
    assert!(
        bad_regex.starts_with("pullstack.yaml:5:")
            && bad_regex.contains("not a regular expression"),
        "{bad_regex}"
    );
    let typo = err("      path: /\n      expect: 200\n");
    assert!(
        typo.starts_with("pullstack.yaml:7:") && typo.contains("expect"),
        "{typo}"
    );
    let method = err("      path: /\n      method: FETCH\n");
    assert!(method.starts_with("pullstack.yaml:7:"), "{method}");
    let relative = err("      path: health\n");
    assert!(
        relative.starts_with("pullstack.yaml:4:3: preview.checks: path \"health\""),
        "{relative}"
    );
    let both = err("      path: /\n      body_contains: a\n      body_matches: a\n");
    assert!(both.contains("keep one"), "{both}");
    let slow = err("      path: /\n      timeout: 1h\n");
    assert!(slow.contains("between 1s and 5m"), "{slow}");
}

#[test]
fn production_checks_and_gates_are_validated_where_written() {
    let base = format!("app: demo\nrepository: octo/app\n{PRODUCTION}  env: {{}}\n");
    let config = parse(&format!(
        "{base}  checks:\n    - name: home\n      path: /\n  \
         gates:\n    - https://gate.example.com/ok\n    - http://127.0.0.1:8080/gate\n  \
         gates_timeout: 3s\n"
    ))
    .unwrap();
    let production = &config.production;
    assert_eq!(production.checks[0].name, "home");
    assert_eq!(production.checks_name, "pullstack/production-checks");
    assert_eq!(production.gates.len(), 2);
    assert_eq!(production.gates_timeout, Duration::from_secs(3));
    assert_eq!(
        parse(&base).unwrap().production.gates_timeout,
        Duration::from_secs(10)
    );
    let err = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err().to_string();
    let e = err("  checks:\n    - name: home\n      path: nope\n");
    assert!(e.contains("production.checks: path \"nope\""), "{e}");
    // Attack: a gate over plain http to another machine would carry the
    // release's details, and take its verdict, unprotected on the wire.
    let e = err("  gates:\n    - http://gate.example.com/\n");
    assert!(e.contains("production.gates") && e.contains("https"), "{e}");
    // Credentials in a gate's URL would be logged with it.
    let e = err("  gates:\n    - https://user:hunter2@gate.example.com/\n");
    assert!(e.contains("carries credentials"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = err("  gates_timeout: 0s\n");
    assert!(e.contains("production.gates_timeout"), "{e}");
}

#[test]
fn a_task_check_is_strict_and_for_previews_only() {
    let base = "app: demo\nrepository: octo/app\npreview:\n  checks:\n    - name: e2e\n";
    let config = parse(&format!(
        "{base}      task:\n        command: [npm, test]\n"
    ))
    .unwrap();
    let task = config.preview.checks[0].task.as_ref().unwrap();
    assert_eq!(task.command, ["npm", "test"]);
    assert_eq!(task.timeout, Duration::from_secs(600));
    assert!(task.image.is_none());

    let err = |rest: &str| parse(&format!("{base}{rest}")).unwrap_err().to_string();
    let e = err("      task:\n        command: [npm, test]\n      method: POST\n");
    assert!(
        e.starts_with("pullstack.yaml:4:3: preview.checks: check \"e2e\": method is for HTTP"),
        "{e}"
    );
    for field in [
        "path: /",
        "expect_status: 200",
        "body_contains: ok",
        "timeout: 1s",
    ] {
        let e = err(&format!(
            "      task:\n        command: [x]\n      {field}\n"
        ));
        let name = field.split(':').next().unwrap();
        assert!(e.contains(&format!("{name} is for HTTP checks")), "{e}");
    }
    let e = err("      task:\n        command: [x]\n        image: busybox\n");
    assert!(e.contains("task.image is not supported"), "{e}");
    let e = err("      task:\n        command: []\n");
    assert!(e.contains("task.command must name a program"), "{e}");
    let e = err("      task:\n        command: [x]\n        timeout: 2h\n");
    assert!(e.contains("between 1s and 1h"), "{e}");
    let e = err("      task:\n        command: [x]\n        cmd: [y]\n");
    assert!(
        e.starts_with("pullstack.yaml:8:9:") && e.contains("cmd"),
        "{e}"
    );

    let production = format!("app: demo\nrepository: octo/app\n{PRODUCTION}  env: {{}}\n");
    let e = parse(&format!(
        "{production}  checks:\n    - name: e2e\n      task:\n        command: [x]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("production.checks: check \"e2e\": a task check runs on previews only"),
        "{e}"
    );
}
