//! Container settings: previews and production apart, secrets, roles.

use super::*;

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
