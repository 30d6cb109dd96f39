//! What an environment stack is sent on each deploy, previews and
//! production releases alike: the rendered template, its parameters and its
//! tags.

use super::Error;
use crate::aws::shared::Shared;
use crate::aws::stacks::{Deploy, tag};
use crate::config::{Capacity, Config, StackRole};
use crate::domain::template::{self, Placeholders};
use std::collections::BTreeMap;

/// How big an environment runs.
#[derive(Clone, Copy, Debug)]
pub struct Sizing<'a> {
    pub cpu: &'a str,
    pub memory: &'a str,
    pub desired_count: u32,
    pub capacity: Capacity,
}

/// Everything that differs between two environments' stacks.
pub struct Request<'a> {
    /// The environment's slug (`pr-42`, `prod-0123abc`): its resources' names.
    pub slug: String,
    pub sha: &'a str,
    /// The container image: by tag for a preview, by digest for a release.
    pub image: String,
    /// Picks the container's env, secrets, task role and execution role.
    pub role: StackRole,
    /// The tag value naming the environment.
    pub env_tag: String,
    pub sizing: Sizing<'a>,
    /// The DNS name and the zone it goes in, when the stack owns a record.
    pub dns: Option<(String, &'a str)>,
    /// A certificate for the DNS name: its own load balancer then serves
    /// HTTPS (production, and previews in dedicated mode with
    /// `edge.certificate_arn`).
    pub certificate_arn: &'a str,
    pub placeholders: Placeholders,
    /// When the environment was first created, RFC 3339.
    pub created_at: String,
    /// Variables pullstack adds to the container's own (a preview's
    /// database connection); they win over the config's of the same name.
    pub extra_env: BTreeMap<String, String>,
}

/// One deploy's template body, parameters and tags.
pub struct Spec {
    /// The template with the container's settings, conditions undecided.
    template: String,
    /// The template as sent: its conditions decided by the parameters.
    body: String,
    parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl Spec {
    /// Renders the template and fills in the parameters and tags.
    pub fn build(config: &Config, shared: &Shared, request: Request<'_>) -> Result<Spec, Error> {
        let preview = &config.preview;
        let container = config.container(request.role);
        let mut env = container.env.clone();
        env.extend(request.extra_env);
        let rendered = template::render(
            template::PREVIEW,
            &env,
            container.secrets,
            &request.placeholders,
        )
        .map_err(Error::internal)?;
        // Who may reach an environment is a preview setting; production is
        // public.
        let previewing = request.role == StackRole::Preview;
        let rendered = if previewing {
            crate::domain::access::apply(&rendered, &preview.access).map_err(Error::internal)?
        } else {
            rendered
        };
        let bypass_secret = if previewing {
            preview.access.bypass_secret_arn.clone()
        } else {
            String::new()
        };
        let sizing = request.sizing;
        let (dns_name, zone) = request.dns.unwrap_or_default();
        let mut parameters = BTreeMap::from([
            ("BypassSecretArn".to_owned(), bypass_secret),
            (
                "BypassHeaderName".to_owned(),
                preview.access.bypass_header.clone(),
            ),
            ("SharedStackName".to_owned(), shared.stack_name.clone()),
            ("EnvironmentName".to_owned(), request.slug),
            (
                "EnvironmentRole".to_owned(),
                request.role.as_str().to_owned(),
            ),
            ("Image".to_owned(), request.image),
            (
                "TaskRoleArn".to_owned(),
                container.task_role_arn.unwrap_or_default().to_owned(),
            ),
            ("ContainerPort".to_owned(), preview.port.to_string()),
            ("Cpu".to_owned(), sizing.cpu.to_owned()),
            ("Memory".to_owned(), sizing.memory.to_owned()),
            ("HealthCheckPath".to_owned(), preview.health_path.clone()),
            ("DesiredCount".to_owned(), sizing.desired_count.to_string()),
            (
                "CapacityProvider".to_owned(),
                sizing.capacity.as_str().to_owned(),
            ),
            ("HostedZoneId".to_owned(), zone.to_owned()),
            ("DnsName".to_owned(), dns_name),
            (
                "CertificateArn".to_owned(),
                request.certificate_arn.to_owned(),
            ),
        ]);
        // A preview on its own HTTPS load balancer has the listener to
        // itself: the bypass rule first, then its host rule. On the edge,
        // its placement sets them.
        if previewing && !request.certificate_arn.is_empty() {
            let bypass = preview.access.has_bypass();
            let (rule, bypass_rule) = if bypass { ("2", "1") } else { ("1", "0") };
            parameters.insert("RulePriority".to_owned(), rule.to_owned());
            parameters.insert("BypassRulePriority".to_owned(), bypass_rule.to_owned());
        }
        let body = template::decide(&rendered, &parameters).map_err(Error::internal)?;
        let tags = BTreeMap::from([
            (tag::MANAGED.to_owned(), "true".to_owned()),
            (tag::REPO.to_owned(), config.repository.clone()),
            (tag::ENV.to_owned(), request.env_tag),
            (tag::COMMIT.to_owned(), request.sha.to_owned()),
            (tag::ROLE.to_owned(), request.role.as_str().to_owned()),
            (tag::CREATED_AT.to_owned(), request.created_at),
        ]);
        Ok(Spec {
            template: rendered,
            body,
            parameters,
            tags,
        })
    }

    /// Puts the stack on the edge at `placement` (shared mode).
    pub fn place(&mut self, placement: &super::edge::Placement) -> Result<(), Error> {
        for (key, value) in placement.parameters() {
            self.parameters.insert(key.to_owned(), value);
        }
        self.body = template::decide(&self.template, &self.parameters).map_err(Error::internal)?;
        Ok(())
    }

    /// Keeps the stack's own load balancer and attaches a second target
    /// group, by a rule at `placement`, to another listener (bridged mode:
    /// a live release joining the production load balancer).
    pub fn bridge(&mut self, placement: &super::edge::Placement) -> Result<(), Error> {
        for (key, value) in [
            ("BridgeListenerArn", placement.listener.clone()),
            ("RulePriority", placement.priority.to_string()),
            ("EdgeSecurityGroupId", placement.security_group.clone()),
        ] {
            self.parameters.insert(key.to_owned(), value);
        }
        self.body = template::decide(&self.template, &self.parameters).map_err(Error::internal)?;
        Ok(())
    }

    pub fn deploy<'a>(&'a self, name: &'a str) -> Deploy<'a> {
        Deploy {
            name,
            template_body: &self.body,
            parameters: &self.parameters,
            tags: &self.tags,
        }
    }
}

/// A time as stack tags hold it.
pub fn tag_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What CloudFormation's refusal of a stack means for the config: a
/// validation error is about the values sent, which come from the config,
/// so it is the user's to fix and retrying cannot help.
pub fn refused(err: crate::aws::Error) -> Error {
    if err.kind() != crate::aws::ErrorKind::Validation {
        return err.into();
    }
    Error::user(format!(
        "CloudFormation refused the stack: {}. Its values come from the config's `preview` \
         section (`cpu`, `memory`, `port`, `health_path`, `env`, `secrets`, \
         `task_role_arn`, `access`): fix them there, \
         then push or comment `/pullstack redeploy`.",
        err.message
    ))
}
