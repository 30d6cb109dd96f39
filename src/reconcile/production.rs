//! Production releases: observe the stacks, weights and release log, let the
//! planner ([`crate::domain::rollout`]) choose the next action, carry it out,
//! and record it on the `production` GitHub Deployment.

use super::queue::Next;
use super::{Controller, Intent};
use crate::aws::Aws;
use crate::aws::stacks::{Deploy, Phase, Stack, tag};
use crate::aws::traffic::{Batch, Weighted};
use crate::config::{Config, Gate};
use crate::domain::commands::Command;
use crate::domain::naming::short_sha;
use crate::domain::release::{Schedule, TOTAL, directive};
use crate::domain::rollout::{self, Action, Log, Policy, ProdPhase, ProdStack, View};
use crate::domain::template;
use crate::github::client::DeploymentState;
use anyhow::Context;
use chrono::Utc;
use std::collections::BTreeMap;
use std::time::Duration;

/// Production as observed: the planner's view plus what carrying out an
/// action needs (stack outputs, current records).
pub struct Observed {
    pub view: View,
    pub stacks: Vec<Stack>,
    pub records: Vec<Weighted>,
}

/// Production operations shared by the reconciler and `pullstack prod`.
pub struct Production<'a> {
    pub config: &'a Config,
    pub aws: &'a Aws,
}

/// The stack name of a release of `sha`.
pub fn stack_name(app: &str, sha: &str) -> String {
    format!("{app}-prod-{}", short_sha(sha))
}

impl Production<'_> {
    fn zone(&self) -> &str {
        &self.config.production.hosted_zone_id
    }

    fn domain(&self) -> &str {
        &self.config.production.domain
    }

    /// Reads stacks, weights and the log. `head` is the release branch's head.
    pub async fn observe(&self, head: Option<String>) -> anyhow::Result<Observed> {
        let repo = &self.config.repository;
        let stacks: Vec<Stack> = self
            .aws
            .stacks
            .list_tagged(tag::REPO, repo)
            .await?
            .into_iter()
            .filter(|s| {
                s.tag(tag::ROLE) == Some("production") && s.tag(tag::MANAGED) == Some("true")
            })
            .collect();
        let (records, log) = self.aws.traffic.read(self.zone(), self.domain()).await?;
        let log: Log = log
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_default();
        let mut prod = Vec::new();
        for stack in &stacks {
            prod.push(ProdStack {
                name: stack.name.clone(),
                sha: stack.tag(tag::COMMIT).unwrap_or_default().to_owned(),
                created: stack.tag_time(tag::CREATED_AT).unwrap_or_else(Utc::now),
                phase: self.phase(stack, log.release.as_deref()).await?,
            });
        }
        let weights = records
            .iter()
            .map(|r| (r.stack.clone(), r.weight))
            .collect();
        let head = head.map(|sha| {
            let name = stack_name(&self.config.app, &sha);
            (sha, name)
        });
        Ok(Observed {
            view: View {
                stacks: prod,
                weights,
                log,
                head,
                now: Utc::now(),
            },
            stacks,
            records,
        })
    }

    /// A stack's phase; the health gate is checked for the release in flight.
    async fn phase(&self, stack: &Stack, release: Option<&str>) -> anyhow::Result<ProdPhase> {
        let production = &self.config.production;
        Ok(match stack.phase() {
            Phase::InProgress => ProdPhase::Busy,
            Phase::Stable
                if Some(stack.name.as_str()) != release || production.gate == Gate::Stack =>
            {
                ProdPhase::Ready { healthy: true }
            }
            Phase::Stable => {
                let output = |k: &str| stack.output(k).unwrap_or_default().to_owned();
                let healthy = self
                    .aws
                    .health
                    .service_settled(&output("ClusterName"), &output("ServiceName"))
                    .await?
                    && self
                        .aws
                        .health
                        .targets_healthy(&output("TargetGroupArn"))
                        .await?;
                let age = stack
                    .operation_started
                    .map(|t| Utc::now() - t)
                    .unwrap_or_default();
                let timeout = chrono::Duration::from_std(production.gate_timeout)
                    .unwrap_or(chrono::Duration::MAX);
                if !healthy && age > timeout {
                    ProdPhase::Failed
                } else {
                    ProdPhase::Ready { healthy }
                }
            }
            _ => ProdPhase::Failed,
        })
    }

    /// Sets the weights and the log in one change batch.
    pub async fn apply(
        &self,
        observed: &Observed,
        weights: &BTreeMap<String, u8>,
        log: &Log,
    ) -> anyhow::Result<()> {
        let mut upsert = Vec::new();
        let mut delete = Vec::new();
        for (name, weight) in weights {
            let current = observed.records.iter().find(|r| r.stack == *name);
            if current.is_some_and(|r| r.weight == *weight) {
                continue;
            }
            match observed.stacks.iter().find(|s| s.name == *name) {
                Some(stack) => {
                    let lb = stack
                        .output("LoadBalancerArn")
                        .context("stack has no LoadBalancerArn output")?;
                    let (dns_name, zone_id) = self.aws.health.alias_target(lb).await?;
                    upsert.push(Weighted {
                        stack: name.clone(),
                        weight: *weight,
                        dns_name,
                        zone_id,
                    });
                }
                // A record for a stack that no longer exists must go.
                None => delete.extend(current.cloned()),
            }
        }
        let log = serde_json::to_string(log)?;
        let batch = Batch {
            upsert,
            delete,
            log: Some(&log),
        };
        self.aws
            .traffic
            .apply(self.zone(), self.domain(), &batch)
            .await?;
        Ok(())
    }

    /// Removes a stack's record (if any) and then the stack.
    pub async fn delete(&self, observed: &Observed, stack: &str) -> anyhow::Result<()> {
        let record: Vec<Weighted> = observed
            .records
            .iter()
            .filter(|r| r.stack == stack)
            .cloned()
            .collect();
        if !record.is_empty() {
            let batch = Batch {
                upsert: vec![],
                delete: record,
                log: None,
            };
            self.aws
                .traffic
                .apply(self.zone(), self.domain(), &batch)
                .await?;
        }
        self.aws.stacks.delete(stack).await?;
        Ok(())
    }
}

impl Controller {
    pub(super) async fn production(&self, intents: Vec<Intent>) -> anyhow::Result<Next> {
        let config = &self.config.production;
        if !config.enabled {
            return Ok(Next::Done);
        }
        let prod = Production {
            config: &self.config,
            aws: &self.aws,
        };
        let branch = match &config.branch {
            Some(branch) => branch.clone(),
            None => self.forge.default_branch().await?,
        };
        let head = self.forge.branch_head(&branch).await?;
        let mut observed = prod.observe(head.clone()).await?;
        if !intents.is_empty() {
            for intent in intents {
                self.production_command(&prod, &observed, intent).await?;
            }
            // Commands change state: observe again before planning.
            observed = prod.observe(head).await?;
        }
        if let Some(next) = self.watch_alarms(&prod, &observed).await? {
            return Ok(next);
        }
        let policy = Policy {
            keep: config.keep,
            window: config.window,
            poll: self.config.queue.poll_max,
        };
        let schedule =
            Schedule::from_percents(&config.steps, config.bake).map_err(anyhow::Error::msg)?;
        let action = rollout::plan(&observed.view, &policy, &schedule);
        tracing::debug!(?action, "production");
        self.carry_out(&prod, &observed, action).await
    }

    async fn carry_out(
        &self,
        prod: &Production<'_>,
        observed: &Observed,
        action: Action,
    ) -> anyhow::Result<Next> {
        let poll = self.poll_delay(Duration::ZERO);
        match action {
            Action::Create { sha, stack } => self.create_release(&sha, &stack).await,
            Action::Track { mut log, stack } => {
                let sha = observed
                    .view
                    .head
                    .as_ref()
                    .map(|(sha, _)| sha.clone())
                    .unwrap_or_default();
                let title = self
                    .forge
                    .pulls_for_commit(&sha)
                    .await?
                    .first()
                    .map(|pr| pr.title.clone());
                let config = &self.config.production;
                if let Some(directive) = title.as_deref().and_then(directive) {
                    match directive.schedule(config.bake) {
                        Ok(schedule) => log.schedule = schedule.steps,
                        Err(err) => tracing::warn!(err, "ignoring the title's schedule"),
                    }
                }
                let id = self
                    .forge
                    .create_deployment(&sha, "production", false, true, &format!("release {stack}"))
                    .await?;
                self.forge
                    .deployment_status(
                        id,
                        DeploymentState::InProgress,
                        None,
                        "waiting for the health gate",
                    )
                    .await?;
                log.deployment = Some(id);
                prod.apply(observed, &observed.view.weights, &log).await?;
                tracing::info!(stack, "release started");
                Ok(Next::After(poll))
            }
            Action::Shift {
                weights,
                log,
                percent,
            } => {
                prod.apply(observed, &weights, &log).await?;
                let state = if percent >= TOTAL {
                    DeploymentState::Success
                } else {
                    DeploymentState::InProgress
                };
                let url = self.production_url();
                if let Some(id) = log.deployment {
                    self.forge
                        .deployment_status(id, state, Some(&url), &format!("{percent}% of traffic"))
                        .await?;
                }
                tracing::info!(release = ?log.release, percent, "traffic shifted");
                let bake = log
                    .schedule
                    .iter()
                    .find(|s| s.percent == percent)
                    .map_or(self.config.production.bake, |s| s.bake);
                Ok(Next::After(
                    bake.min(self.config.queue.poll_max)
                        .max(Duration::from_millis(50)),
                ))
            }
            Action::Fail {
                weights,
                log,
                stack,
            } => {
                prod.apply(observed, &weights, &log).await?;
                if let Some(id) = observed
                    .view
                    .log
                    .deployment
                    .filter(|_| observed.view.log.release.as_ref() == Some(&stack))
                {
                    self.forge
                        .deployment_status(
                            id,
                            DeploymentState::Failure,
                            None,
                            "the new stack failed or never became healthy; it got no traffic",
                        )
                        .await?;
                }
                tracing::warn!(stack, "release failed");
                Ok(Next::After(poll))
            }
            Action::Delete { stack } => {
                prod.delete(observed, &stack).await?;
                tracing::info!(stack, "previous production stack deleted (retention)");
                Ok(Next::After(poll))
            }
            Action::Wait(delay) => Ok(Next::After(delay)),
            Action::Idle => Ok(Next::Done),
        }
    }

    /// The production URL, as Deployments and `{url}` show it.
    fn production_url(&self) -> String {
        format!("https://{}", self.config.production.domain)
    }

    async fn create_release(&self, sha: &str, stack: &str) -> anyhow::Result<Next> {
        let shared = self.shared().await?;
        if !self.aws.images.exists(&shared.repository_name, sha).await? {
            tracing::info!(commit = short_sha(sha), "waiting for the release image");
            return Ok(Next::After(self.config.queue.poll_max));
        }
        let config = &self.config.production;
        let preview = &self.config.preview;
        let body = template::render(
            template::PREVIEW,
            &preview.env,
            &preview.secrets,
            &template::Placeholders {
                sha: sha.to_owned(),
                url: self.production_url(),
                env: "production".into(),
                ..Default::default()
            },
        )?;
        let parameters = BTreeMap::from([
            ("SharedStackName".to_owned(), shared.stack_name.clone()),
            (
                "EnvironmentName".to_owned(),
                format!("prod-{}", short_sha(sha)),
            ),
            ("Image".to_owned(), shared.image(sha)),
            ("ContainerPort".to_owned(), preview.port.to_string()),
            ("Cpu".to_owned(), config.cpu.clone()),
            ("Memory".to_owned(), config.memory.clone()),
            ("HealthCheckPath".to_owned(), preview.health_path.clone()),
            ("DesiredCount".to_owned(), config.desired_count.to_string()),
            (
                "CapacityProvider".to_owned(),
                config.capacity.as_str().to_owned(),
            ),
        ]);
        let tags = BTreeMap::from([
            (tag::MANAGED.to_owned(), "true".to_owned()),
            (tag::REPO.to_owned(), self.config.repository.clone()),
            (tag::ENV.to_owned(), "production".to_owned()),
            (tag::COMMIT.to_owned(), sha.to_owned()),
            (tag::ROLE.to_owned(), "production".to_owned()),
            (
                tag::CREATED_AT.to_owned(),
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        ]);
        let deploy = Deploy {
            name: stack,
            template_body: &body,
            parameters: &parameters,
            tags: &tags,
        };
        self.aws.stacks.create(&deploy).await?;
        tracing::info!(stack, "production stack created");
        Ok(Next::After(self.poll_delay(Duration::ZERO)))
    }

    /// During a shift, an alarm in ALARM rolls traffic back at once.
    async fn watch_alarms(
        &self,
        prod: &Production<'_>,
        observed: &Observed,
    ) -> anyhow::Result<Option<Next>> {
        let view = &observed.view;
        let Some(release) = view.log.release.as_deref() else {
            return Ok(None);
        };
        let weight = view.weights.get(release).copied().unwrap_or(0);
        if weight == 0 || weight >= TOTAL || view.log.is_failed(release) {
            return Ok(None);
        }
        let firing = self
            .aws
            .health
            .alarms_firing(&self.config.production.alarms)
            .await?;
        if firing.is_empty() {
            return Ok(None);
        }
        let reason = format!("alarm {} is in ALARM", firing.join(", "));
        self.roll_back(prod, observed, None, &reason).await?;
        Ok(Some(Next::After(self.config.queue.poll_max)))
    }

    /// Rolls back and records it; returns (from, to).
    async fn roll_back(
        &self,
        prod: &Production<'_>,
        observed: &Observed,
        to: Option<&str>,
        reason: &str,
    ) -> anyhow::Result<(String, String)> {
        let (weights, log, from, to) =
            rollout::rollback(&observed.view, to).context("nothing to roll back to")?;
        prod.apply(observed, &weights, &log).await?;
        tracing::warn!(from, to, reason, "rolled back");
        if let Some(id) = observed
            .view
            .log
            .deployment
            .filter(|_| observed.view.log.release.as_deref() == Some(from.as_str()))
        {
            self.forge
                .deployment_status(
                    id,
                    DeploymentState::Failure,
                    None,
                    &format!("rolled back: {reason}"),
                )
                .await?;
        }
        let target_sha = observed
            .view
            .stacks
            .iter()
            .find(|s| s.name == to)
            .map(|s| s.sha.clone())
            .unwrap_or_default();
        let id = self
            .forge
            .create_deployment(
                &target_sha,
                "production",
                false,
                true,
                &format!("rollback to {to}"),
            )
            .await?;
        let url = self.production_url();
        self.forge
            .deployment_status(
                id,
                DeploymentState::Success,
                Some(&url),
                &format!("rolled back from {from}: {reason}"),
            )
            .await?;
        if let Some(pr) = self
            .forge
            .pulls_for_commit(
                observed
                    .view
                    .stacks
                    .iter()
                    .find(|s| s.name == from)
                    .map_or("", |s| s.sha.as_str()),
            )
            .await?
            .first()
        {
            let body = format!("⏪ **Production rolled back** from `{from}` to `{to}`: {reason}.");
            self.forge.create_comment(pr.number, &body).await?;
        }
        Ok((from, to))
    }

    async fn production_command(
        &self,
        prod: &Production<'_>,
        observed: &Observed,
        intent: Intent,
    ) -> anyhow::Result<()> {
        let Intent::Command {
            command,
            author,
            comment_id,
            issue,
        } = intent
        else {
            return Ok(());
        };
        if self.forge.role(&author).await? < Some(command.required_role()) {
            self.forge.react(comment_id, "-1").await?;
            let body = format!(
                "@{author} `/pullstack {}` needs maintain or admin permission on this repository, \
                 which you do not have. Ask a release manager to run it.",
                command.name()
            );
            self.forge.create_comment(issue, &body).await?;
            return Ok(());
        }
        self.forge.react(comment_id, "eyes").await?;
        let reply = match command {
            Command::Rollback => match self
                .roll_back(prod, observed, None, &format!("requested by @{author}"))
                .await
            {
                Ok((from, to)) => format!("Rolled production back from `{from}` to `{to}`."),
                Err(err) => format!("Cannot roll back: {err:#}."),
            },
            Command::Promote => match rollout::promote(&observed.view) {
                Some((weights, log, release)) => {
                    prod.apply(observed, &weights, &log).await?;
                    if let Some(id) = log.deployment {
                        let url = self.production_url();
                        self.forge
                            .deployment_status(
                                id,
                                DeploymentState::Success,
                                Some(&url),
                                &format!("promoted by @{author}"),
                            )
                            .await?;
                    }
                    format!("Promoted `{release}` to 100% of production traffic.")
                }
                None => "Nothing to promote: no healthy release is in flight.".to_owned(),
            },
            _ => return Ok(()),
        };
        self.forge.create_comment(issue, &reply).await?;
        Ok(())
    }
}
