//! What an environment's container is given, per kind of stack: its
//! environment variables, its secret references and the roles it runs with,
//! and the checks that keep previews and production apart.
//!
//! Secrets live under one prefix per kind, `pullstack/<app>/preview/` and
//! `pullstack/<app>/production/`, and each kind has an execution role in the
//! shared stack that may read only its own prefix. The config is checked
//! against the same rule, so a preview can never be handed a production
//! secret by mistake.

use std::collections::BTreeMap;

/// The kind of environment a stack is; it picks the container's settings
/// and the shared stack's execution role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackRole {
    Preview,
    Production,
}

impl StackRole {
    /// The name in stack tags, the template's `EnvironmentRole` and the
    /// secrets prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            StackRole::Preview => "preview",
            StackRole::Production => "production",
        }
    }

    fn other(self) -> StackRole {
        match self {
            StackRole::Preview => StackRole::Production,
            StackRole::Production => StackRole::Preview,
        }
    }
}

/// The secrets prefix of `role`: `pullstack/<app>/<role>/`.
pub fn secrets_prefix(app: &str, role: StackRole) -> String {
    format!("pullstack/{app}/{}/", role.as_str())
}

/// What one kind of stack's container gets.
#[derive(Clone, Copy, Debug)]
pub struct Container<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub secrets: &'a BTreeMap<String, String>,
    pub task_role_arn: Option<&'a str>,
}

/// Checks one secret reference of `role`'s config. The error starts with
/// the variable's name; it never shows a value that is not a well-formed
/// ARN under the app's prefix, since that value may be the secret itself.
pub fn check_secret(app: &str, role: StackRole, name: &str, reference: &str) -> Result<(), String> {
    let Some(path) = secret_path(reference) else {
        return Err(format!(
            "{name}: must be the ARN of a Secrets Manager secret or an SSM parameter (the value is not shown)"
        ));
    };
    let own = secrets_prefix(app, role);
    let other = secrets_prefix(app, role.other());
    let app_prefix = format!("pullstack/{app}/");
    let kind = role.as_str();
    if let Some(rest) = path.strip_prefix(&own) {
        return match rest {
            "" => Err(format!("{name}: names no secret under {own}")),
            _ => Ok(()),
        };
    }
    if path.starts_with(&other) {
        return Err(format!(
            "{name}: `{path}` is under {other}, which only {} stacks may read; \
             {kind} secrets live under {own}",
            role.other().as_str()
        ));
    }
    if let Some(rest) = path.strip_prefix(&app_prefix).filter(|r| !r.is_empty()) {
        let rest = strip_generated_suffix(reference, rest);
        return Err(format!(
            "{name}: `{path}` is under the old shared prefix {app_prefix}; previews and \
             production now have a prefix each, readable only by their own execution role. \
             Move the secret to `{own}{rest}` (production's to `{other}{rest}`, listed under \
             production.secrets) and use its new ARN"
        ));
    }
    Err(format!(
        "{name}: must be under {own}, the only secrets the {kind} execution role may read"
    ))
}

/// The secret's or parameter's name in an ARN, or `None` when `reference`
/// is not a Secrets Manager or SSM Parameter Store ARN.
fn secret_path(reference: &str) -> Option<&str> {
    let mut parts = reference.splitn(6, ':');
    let (arn, _partition, service, _region, _account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" {
        return None;
    }
    let path = match service {
        // `secret:NAME-AbCdEf`, optionally `:json-key:version-stage:version-id`.
        "secretsmanager" => resource.strip_prefix("secret:")?.split(':').next()?,
        // `parameter/NAME` (a leading `/` of the name is not repeated).
        "ssm" => resource.strip_prefix("parameter/")?,
        _ => return None,
    };
    (!path.is_empty()).then_some(path)
}

/// Drops the six characters Secrets Manager appends to a secret's ARN
/// (`-AbCdEf`), which a new secret gets anew, from a suggested name.
fn strip_generated_suffix<'a>(reference: &str, rest: &'a str) -> &'a str {
    let secrets_manager = reference.split(':').nth(2) == Some("secretsmanager");
    match rest.rsplit_once('-') {
        Some((name, suffix))
            if secrets_manager
                && !name.is_empty()
                && suffix.len() == 6
                && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            name
        }
        _ => rest,
    }
}

/// Checks an IAM role ARN: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`,
/// with a 12-digit account and the characters IAM allows in role names.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            let name = resource
                .strip_prefix("role/")
                .and_then(|path| path.rsplit('/').next())
                .unwrap_or_default();
            partition.starts_with("aws")
                && partition
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (1..=64).contains(&name.len())
                && resource.len() <= "role/".len() + 512 + 64
                && resource
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} must be an IAM role ARN, like arn:aws:iam::123456789012:role/NAME"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREVIEW: StackRole = StackRole::Preview;
    const PRODUCTION: StackRole = StackRole::Production;

    fn secret(name: &str) -> String {
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}")
    }

    fn parameter(name: &str) -> String {
        format!("arn:aws:ssm:us-east-1:123456789012:parameter/{name}")
    }

    #[test]
    fn references_under_their_own_prefix_pass() {
        for (role, prefix) in [(PREVIEW, "preview"), (PRODUCTION, "production")] {
            let name = format!("pullstack/demo/{prefix}/db-AbCdEf");
            assert_eq!(check_secret("demo", role, "DB", &secret(&name)), Ok(()));
            let json_key = format!("{}:password::", secret(&name));
            assert_eq!(check_secret("demo", role, "DB", &json_key), Ok(()));
            let param = format!("pullstack/demo/{prefix}/db");
            assert_eq!(check_secret("demo", role, "DB", &parameter(&param)), Ok(()));
        }
    }

    #[test]
    fn a_preview_may_not_name_a_production_secret() {
        let err = check_secret(
            "demo",
            PREVIEW,
            "DB",
            &secret("pullstack/demo/production/db-AbCdEf"),
        )
        .unwrap_err();
        assert!(
            err.starts_with("DB: `pullstack/demo/production/db-AbCdEf` is under pullstack/demo/production/, which only production stacks may read; preview secrets live under pullstack/demo/preview/"),
            "{err}"
        );
        let err = check_secret(
            "demo",
            PRODUCTION,
            "DB",
            &parameter("pullstack/demo/preview/db"),
        )
        .unwrap_err();
        assert!(err.contains("only preview stacks may read"), "{err}");
    }

    #[test]
    fn old_shared_names_say_what_to_rename() {
        let err =
            check_secret("demo", PREVIEW, "DB", &secret("pullstack/demo/db-AbCdEf")).unwrap_err();
        assert!(
            err.contains("Move the secret to `pullstack/demo/preview/db` (production's to `pullstack/demo/production/db`"),
            "{err}"
        );
        let err = check_secret(
            "demo",
            PRODUCTION,
            "API",
            &parameter("pullstack/demo/api/key"),
        )
        .unwrap_err();
        assert!(
            err.contains("Move the secret to `pullstack/demo/production/api/key`"),
            "{err}"
        );
    }

    #[test]
    fn references_elsewhere_are_refused_without_echo() {
        for reference in [
            secret("other/db"),
            secret("pullstack/other-app/preview/db"),
            parameter("pullstack/demo"),
        ] {
            let err = check_secret("demo", PREVIEW, "DB", &reference).unwrap_err();
            assert_eq!(
                err,
                "DB: must be under pullstack/demo/preview/, the only secrets the preview execution role may read"
            );
        }
        for not_an_arn in [
            "hunter2",
            "arn:aws:s3:::bucket/pullstack/demo/preview/x",
            "arn:aws:secretsmanager:us-east-1:1:pullstack/demo/preview/x",
        ] {
            let err = check_secret("demo", PREVIEW, "DB", not_an_arn).unwrap_err();
            assert!(!err.contains(not_an_arn), "{err}");
            assert!(err.contains("the value is not shown"), "{err}");
        }
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            check_role_arn("arn:aws:iam::123456789012:role/app-task"),
            Ok(())
        );
        assert_eq!(
            check_role_arn("arn:aws-us-gov:iam::123456789012:role/team/app"),
            Ok(())
        );
        for bad in [
            "app-task",
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:iam::12345:role/app",
            "arn:aws:iam:us-east-1:123456789012:role/app",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:role/app",
            "arn:aws1:iam::123456789012:role/app",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bare_prefix_names_no_secret() {
        let err =
            check_secret("demo", PREVIEW, "DB", &secret("pullstack/demo/preview/")).unwrap_err();
        assert_eq!(err, "DB: names no secret under pullstack/demo/preview/");
    }
}
