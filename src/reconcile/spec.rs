//! What a preview stack is sent on each deploy: the rendered template, its
//! parameters and its tags.

use super::Controller;
use super::preview::{Env, Scale};
use crate::aws::shared::Shared;
use crate::aws::stacks::{Deploy, Stack, tag};
use crate::domain::naming::EnvKey;
use crate::domain::template::{self, Placeholders};
use chrono::Utc;
use std::collections::BTreeMap;

/// One deploy's template body, parameters and tags.
pub(super) struct Spec {
    body: String,
    parameters: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl Spec {
    pub(super) fn deploy<'a>(&'a self, name: &'a str) -> Deploy<'a> {
        Deploy {
            name,
            template_body: &self.body,
            parameters: &self.parameters,
            tags: &self.tags,
        }
    }
}

impl Controller {
    /// The spec for `sha` at `scale`, keeping what the existing `stack`
    /// must keep (its creation time, and its activity time unless the
    /// commit moved or it wakes).
    pub(super) fn spec(
        &self,
        env: &Env<'_>,
        shared: &Shared,
        stack: Option<&Stack>,
        sha: &str,
        scale: Scale,
    ) -> anyhow::Result<Spec> {
        let image = shared.image(sha);
        let preview = &self.config.preview;
        let dns_name = (!preview.dns_zone.is_empty())
            .then(|| format!("{}.{}", env.key.slug(), preview.dns_zone));
        let url = match (&dns_name, stack.and_then(|s| s.output("Url"))) {
            (Some(dns), _) => format!("http://{dns}"),
            (None, Some(url)) => url.to_owned(),
            (None, None) => String::new(),
        };
        let placeholders = Placeholders {
            pr: env.pr.map(|p| p.number),
            branch: env.branch.to_owned(),
            sha: sha.to_owned(),
            url,
            env: env.key.slug(),
        };
        let body = template::render(
            template::PREVIEW,
            &preview.env,
            &preview.secrets,
            &placeholders,
        )?;
        let parameters = BTreeMap::from([
            ("SharedStackName".to_owned(), shared.stack_name.clone()),
            ("EnvironmentName".to_owned(), env.key.slug()),
            ("Image".to_owned(), image),
            ("ContainerPort".to_owned(), preview.port.to_string()),
            ("Cpu".to_owned(), preview.cpu.clone()),
            ("Memory".to_owned(), preview.memory.clone()),
            ("HealthCheckPath".to_owned(), preview.health_path.clone()),
            (
                "DesiredCount".to_owned(),
                match scale {
                    Scale::Up => preview.desired_count,
                    Scale::Zero => 0,
                }
                .to_string(),
            ),
            (
                "CapacityProvider".to_owned(),
                preview.capacity.as_str().to_owned(),
            ),
            (
                "HostedZoneId".to_owned(),
                if dns_name.is_some() {
                    preview.hosted_zone_id.clone()
                } else {
                    String::new()
                },
            ),
            ("DnsName".to_owned(), dns_name.unwrap_or_default()),
        ]);
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let kept = |key: &str| stack.and_then(|s| s.tag(key)).map(str::to_owned);
        let mut tags = self.tags(env, sha, &kept(tag::CREATED_AT).unwrap_or(now.clone()));
        // Idle time counts from the last new commit or wake. A redeploy of
        // the same commit keeps the tag, so an unchanged stack stays
        // unchanged and its tasks are restarted instead.
        let moved = stack
            .is_none_or(|s| s.tag(tag::COMMIT) != Some(sha) || s.tag(tag::IDLE_SINCE).is_some());
        let active_at = match (scale, moved) {
            (Scale::Up, true) => now.clone(),
            _ => kept(tag::ACTIVE_AT).unwrap_or(now.clone()),
        };
        tags.insert(tag::ACTIVE_AT.to_owned(), active_at);
        if scale == Scale::Zero {
            tags.insert(tag::IDLE_SINCE.to_owned(), now);
        }
        Ok(Spec {
            body,
            parameters,
            tags,
        })
    }

    fn tags(&self, env: &Env<'_>, sha: &str, created_at: &str) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::from([
            (tag::MANAGED.to_owned(), "true".to_owned()),
            (tag::REPO.to_owned(), self.forge.repo().to_string()),
            (tag::ENV.to_owned(), env.key.tag_value()),
            (tag::COMMIT.to_owned(), sha.to_owned()),
            (tag::ROLE.to_owned(), "preview".to_owned()),
            (tag::CREATED_AT.to_owned(), created_at.to_owned()),
        ]);
        if let EnvKey::Pr(number) = env.key {
            tags.insert(tag::PR.to_owned(), number.to_string());
        }
        tags
    }
}
