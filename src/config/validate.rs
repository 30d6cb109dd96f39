//! What a parsed config must also satisfy, field by field.

use super::{ALB_RULES, Config, EdgeMode, StackRole, Strategy, container, secrets_prefix};
use std::time::Duration;

impl Config {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        let app_ok = !self.app.is_empty()
            && self.app.len() <= 24
            && self.app.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .app
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !app_ok {
            return Err((
                "app",
                format!(
                    "{:?} must be 1-24 lower-case letters, digits or dashes, starting with a letter",
                    self.app
                ),
            ));
        }
        match (self.repository.is_empty(), self.serves_many()) {
            (false, true) => {
                return Err((
                    "repositories",
                    "serves the App's repositories: leave out repository:".into(),
                ));
            }
            (true, false) => {
                return Err((
                    "repository",
                    "missing field `repository` (owner/name; or repositories:, to serve many)"
                        .into(),
                ));
            }
            (true, true) => {}
            (false, false) => {
                if crate::domain::naming::RepoName::parse(&self.repository).is_none() {
                    return Err((
                        "repository",
                        format!("{:?} must look like owner/name", self.repository),
                    ));
                }
            }
        }
        if !self.preview.health_path.starts_with('/') {
            return Err(("health_path", "must start with '/'".into()));
        }
        for (field, task) in [
            ("before_traffic", &self.preview.before_traffic),
            ("on_delete", &self.preview.on_delete),
        ] {
            let Some(task) = task else { continue };
            if task.command.is_empty() || task.command[0].is_empty() {
                return Err((field, "command must name a program to run".into()));
            }
            if task.timeout.is_zero() || task.timeout > Duration::from_secs(24 * 3600) {
                return Err((field, "timeout must be between 1s and 24h".into()));
            }
        }
        if let Some(database) = &self.preview.database {
            use crate::domain::database::is_valid_identifier;
            if !is_valid_identifier(&database.clone_from) {
                return Err((
                    "preview.database.clone_from",
                    format!(
                        "{:?} must be a DB cluster identifier: 1-63 letters, digits or single \
                         hyphens, starting with a letter",
                        database.clone_from
                    ),
                ));
            }
            if !is_valid_identifier(&self.app) {
                return Err((
                    "app",
                    format!(
                        "{:?} names each preview's database clone, so it may not have two \
                         dashes in a row or end with one",
                        self.app
                    ),
                ));
            }
            let class_ok = database.instance_class.starts_with("db.")
                && database.instance_class.len() > 3
                && (database.instance_class.chars()).all(|c| c.is_ascii_alphanumeric() || c == '.');
            if !class_ok {
                return Err((
                    "preview.database.instance_class",
                    format!(
                        "{:?} must be an RDS instance class such as db.serverless or db.t4g.medium",
                        database.instance_class
                    ),
                ));
            }
            let name_ok = |n: &str| {
                !n.is_empty()
                    && n.len() <= 63
                    && n.starts_with(|c: char| c.is_ascii_alphabetic())
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if let Some(name) = database.name.as_deref().filter(|n| !name_ok(n)) {
                return Err((
                    "preview.database.name",
                    format!(
                        "{name:?} must be 1-63 letters, digits or underscores, starting with a letter"
                    ),
                ));
            }
            let acu_ok = |acu: f64| (0.0..=256.0).contains(&acu) && (acu * 2.0).fract() == 0.0;
            if !acu_ok(database.min_acu) {
                return Err((
                    "preview.database.min_acu",
                    "must be 0 to 256 in steps of 0.5".into(),
                ));
            }
            if !acu_ok(database.max_acu) || database.max_acu < 1.0 {
                return Err((
                    "preview.database.max_acu",
                    "must be 1 to 256 in steps of 0.5".into(),
                ));
            }
            if database.max_acu < database.min_acu {
                return Err((
                    "preview.database.max_acu",
                    "must be at least min_acu".into(),
                ));
            }
        }
        super::checks::validate(&self.preview.checks)?;
        if self.preview.checks_name.trim().is_empty() {
            return Err(("checks_name", "must not be empty".into()));
        }
        if self.preview.port == 0 {
            return Err(("port", "must be between 1 and 65535".into()));
        }
        let idle = &self.preview.idle;
        if !idle.scale_after.is_zero()
            && !idle.delete_after.is_zero()
            && idle.delete_after <= idle.scale_after
        {
            return Err(("delete_after", "must be longer than scale_after".into()));
        }
        if self.queue.workers == 0 {
            return Err(("workers", "must be at least 1".into()));
        }
        let lease_ttl = self.queue.sqs.lease_ttl;
        if lease_ttl < Duration::from_secs(2) || lease_ttl > Duration::from_secs(12 * 3600) {
            return Err(("lease_ttl", "must be between 2s and 12h".into()));
        }
        if self.queue.sqs.receive_wait > Duration::from_secs(20) {
            return Err(("receive_wait", "must be at most 20s".into()));
        }
        if !self.sqs_queue().ends_with(".fifo") {
            return Err((
                "queue.sqs.queue",
                format!(
                    "{:?} must be a FIFO queue (its name ends in .fifo)",
                    self.sqs_queue()
                ),
            ));
        }
        if self.github.writes_per_minute == 0 {
            return Err(("writes_per_minute", "must be at least 1".into()));
        }
        if self.images.prune_after.is_zero() {
            return Err(("prune_after", "must be more than 0s".into()));
        }
        let production = &self.production;
        if production.enabled
            && (production.domain.is_empty() || production.hosted_zone_id.is_empty())
        {
            return Err((
                "production",
                "domain and hosted_zone_id are required when enabled".into(),
            ));
        }
        if production.enabled && production.certificate_arn.is_empty() {
            return Err((
                "production.certificate_arn",
                format!(
                    "required when enabled: an ACM certificate for {} in the region, \
                     so production serves HTTPS",
                    production.domain
                ),
            ));
        }
        if !production.certificate_arn.is_empty() {
            check_certificate_arn(&production.certificate_arn)
                .map_err(|err| ("production.certificate_arn", err))?;
        }
        if let Some(sticky) = production.sticky {
            if production.strategy != Strategy::Alb {
                return Err((
                    "production.sticky",
                    "only `strategy: alb` keeps sessions on one release; Route53 cannot".into(),
                ));
            }
            if !(1..=604_800).contains(&sticky.as_secs()) {
                return Err(("production.sticky", "must be from 1s to 7d".into()));
            }
        }
        self.validate_edge()?;
        self.validate_release_gates()?;
        if let Err(err) =
            crate::domain::release::Schedule::from_percents(&production.steps, production.bake)
        {
            return Err(("steps", err));
        }
        if let Some(role) = &self.shared.cloudformation_role_arn {
            container::check_role_arn(role).map_err(|err| ("cloudformation_role_arn", err))?;
        }
        Ok(())
    }

    /// `production.checks`, `checks_name`, `gates` and `gates_timeout`.
    fn validate_release_gates(&self) -> Result<(), (&'static str, String)> {
        let production = &self.production;
        super::checks::validate(&production.checks)
            .map_err(|(_, why)| ("production.checks", why))?;
        if let Some(check) = production.checks.iter().find(|c| c.task.is_some()) {
            return Err((
                "production.checks",
                format!(
                    "check {:?}: a task check runs on previews only; production checks are \
                     HTTP requests (path:)",
                    check.name
                ),
            ));
        }
        if production.checks_name.trim().is_empty() {
            return Err(("production.checks_name", "must not be empty".into()));
        }
        for url in &production.gates {
            check_gate_url(url).map_err(|why| ("production.gates", why))?;
        }
        let timeout = production.gates_timeout;
        if timeout.is_zero() || timeout > Duration::from_secs(300) {
            return Err((
                "production.gates_timeout",
                "must be between 1s and 5m".into(),
            ));
        }
        Ok(())
    }

    fn validate_edge(&self) -> Result<(), (&'static str, String)> {
        let edge = &self.edge;
        if edge.rules_per_alb == 0 || edge.rules_per_alb > ALB_RULES {
            return Err((
                "edge.rules_per_alb",
                format!("must be between 1 and {ALB_RULES}, the rules an ALB takes"),
            ));
        }
        if self.preview.access.has_bypass() && edge.rules_per_alb < 2 {
            return Err((
                "edge.rules_per_alb",
                "must be at least 2 with preview.access.bypass_secret_arn: a preview \
                 then takes two rules"
                    .into(),
            ));
        }
        if !edge.certificate_arn.is_empty() {
            check_certificate_arn(&edge.certificate_arn)
                .map_err(|err| ("edge.certificate_arn", err))?;
        }
        let preview = &self.preview;
        if self.edge_mode() == EdgeMode::Dedicated
            && !edge.certificate_arn.is_empty()
            && (preview.dns_zone.is_empty() || preview.hosted_zone_id.is_empty())
        {
            return Err((
                "edge.certificate_arn",
                "in dedicated mode, needs preview.dns_zone and preview.hosted_zone_id: a \
                 preview's own load balancer serves it at https://<env>.<dns_zone>, the \
                 name the certificate covers"
                    .into(),
            ));
        }
        if self.edge_mode() == EdgeMode::Shared
            && (preview.dns_zone.is_empty() || preview.hosted_zone_id.is_empty())
        {
            return Err((
                "edge.mode",
                "shared needs preview.dns_zone and preview.hosted_zone_id: previews are \
                 reached at https://<env>.<dns_zone>"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Each kind of stack's secrets under its own prefix, its task role an
    /// IAM role, and production's settings its own.
    pub(super) fn validate_containers(&self) -> Result<(), Problem> {
        for role in [StackRole::Preview, StackRole::Production] {
            // Each kind's settings live in the config section of its name.
            let section = role.as_str();
            let container = self.container(role);
            for (name, reference) in container.secrets {
                container::check_secret(&self.app, role, name, reference).map_err(|message| {
                    Problem {
                        field: format!("{section}.secrets"),
                        at: format!("{section}.secrets.{name}"),
                        message,
                    }
                })?;
            }
            if let Some(arn) = container.task_role_arn {
                let field = format!("{section}.task_role_arn");
                container::check_role_arn(arn).map_err(|message| Problem {
                    field: field.clone(),
                    at: field.clone(),
                    message,
                })?;
            }
        }
        // Releases used to take the preview's settings: a config written
        // then must say what production gets now, not lose it silently.
        let production = &self.production;
        let inherited = |field: &str, own: String| Problem {
            field: format!("production.{field}"),
            at: "production".to_owned(),
            message: format!(
                "production releases no longer take preview.{field}: {own} \
                 (`{field}: {{}}` for none)"
            ),
        };
        if production.enabled && production.env.is_none() && !self.preview.env.is_empty() {
            return Err(inherited("env", "give production its own".to_owned()));
        }
        if production.enabled && production.secrets.is_none() && !self.preview.secrets.is_empty() {
            let prefix = secrets_prefix(&self.app, StackRole::Production);
            return Err(inherited(
                "secrets",
                format!("list production's own, under {prefix}"),
            ));
        }
        Ok(())
    }
}

/// Whether `url` may be a gate: https, or http to this machine (a test's
/// own server); never with credentials in it, which would be logged.
pub(super) fn check_gate_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|err| format!("{url:?} is not a URL: {err}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let local = host == "localhost"
        || (host.trim_matches(['[', ']']).parse::<std::net::IpAddr>())
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if !host.is_empty() => {}
        "http" if local => {}
        _ => {
            return Err(format!(
                "{url:?} must be an https URL (http only to localhost, for tests)"
            ));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{:?} carries credentials: gates authenticate pullstack by the signature",
            parsed.host_str().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Whether `arn` looks like an ACM certificate's ARN.
fn check_certificate_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "acm"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("certificate/")
            .is_some_and(|id| !id.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an ACM certificate ARN \
             (arn:aws:acm:<region>:<account>:certificate/<id>)"
        ))
    }
}

/// A value the config cannot take: the field to name, the dotted path of
/// the key to point at, and why.
pub(super) struct Problem {
    pub(super) field: String,
    pub(super) at: String,
    pub(super) message: String,
}

impl Problem {
    /// A problem with the key at dotted path `field`.
    pub(super) fn at(field: &str, message: String) -> Problem {
        Problem {
            field: field.to_owned(),
            at: field.to_owned(),
            message,
        }
    }

    /// The error naming `path` and where the key is written in `text`.
    pub(super) fn at_in(self, path: &std::path::Path, text: &str) -> super::ConfigError {
        let (line, column) = super::locate::locate(text, &self.at);
        super::ConfigError::Invalid {
            file: path.to_owned(),
            line,
            column,
            message: format!("{}: {}", self.field, self.message),
        }
    }
}
