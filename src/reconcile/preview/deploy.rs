//! Deploying a preview: wait for the commit's image, create or update the
//! stack, then check the URL and say it is ready.

use super::record::Outcome;
use super::{Pass, Scale};
use crate::aws::shared::Shared;
use crate::aws::stacks::{Stack, Started, tag};
use crate::config::{EdgeMode, StackRole};
use crate::domain::comment::{self, State};
use crate::domain::edge;
use crate::domain::naming::{EnvKey, short_sha};
use crate::domain::phases::Marks;
use crate::domain::template::Placeholders;
use crate::github::client::{DeploymentState, StatusState};
use crate::reconcile::checks::{self, Bypass};
use crate::reconcile::edge::Placement;
use crate::reconcile::spec::{self, Request, Sizing, Spec};
use crate::reconcile::{Action, Job, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// When each (environment, commit) started waiting for its image. Lost on
/// restart: the wait then counts again from the restart.
#[derive(Default)]
pub struct ImageWaits(Mutex<HashMap<(EnvKey, String), DateTime<Utc>>>);

/// How far each (environment, commit) deploy has been seen to come, from
/// the first pass that found its stack complete to the one that finds it
/// ready. Lost on restart: the phases then count from what the next pass
/// sees.
#[derive(Default)]
pub struct DeployMarks(Mutex<HashMap<(EnvKey, String), Marks>>);

impl DeployMarks {
    /// The marks of `key`'s deploy of `sha`, whose stack is complete
    /// `took` after its operation began: the first time, that ends the
    /// stack's phase.
    fn stack_done(&self, key: &EnvKey, sha: &str, took: Duration) -> Marks {
        let mut marks = self.0.lock().expect("deploy marks lock");
        *marks.entry((key.clone(), sha.to_owned())).or_insert(Marks {
            stack: took,
            ..Marks::default()
        })
    }

    /// Records what a later pass saw of `key`'s deploy of `sha`.
    fn set(&self, key: &EnvKey, sha: &str, seen: Marks) -> Marks {
        let mut marks = self.0.lock().expect("deploy marks lock");
        marks.insert((key.clone(), sha.to_owned()), seen);
        seen
    }

    /// Forgets every deploy of `key` (it is ready, or gone).
    pub(super) fn forget(&self, key: &EnvKey) {
        let mut marks = self.0.lock().expect("deploy marks lock");
        marks.retain(|(k, _), _| k != key);
    }
}

impl Pass<'_> {
    /// Creates or updates the stack for `sha`, once its image is in ECR,
    /// with the configured tasks or none.
    pub(super) async fn deploy(
        &mut self,
        stack: Option<&Stack>,
        sha: &str,
        scale: Scale,
    ) -> Result<Action> {
        let ctx = self.ctx;
        let shared = ctx.shared().await?;
        if ctx
            .aws
            .images
            .digest(&shared.repository_name, sha)
            .await?
            .is_none()
        {
            return self.wait_for_image(sha, &shared.image(sha)).await;
        }
        let waits = &ctx.image_waits.0;
        waits
            .lock()
            .expect("image waits lock")
            .remove(&(self.env.key.clone(), sha.to_owned()));
        let database = match self.database_env(sha, scale).await? {
            Ok(env) => env,
            Err(waiting) => return Ok(waiting),
        };
        let mut spec = self.spec(&shared, stack, sha, scale, database)?;
        let memory = &mut self.sticky.memory;
        memory.failed = None;
        memory.ready = None;
        memory.removing.clear();
        memory.on_delete = None;
        memory.on_delete_failed = None;
        let shared_edge = ctx.config.edge_mode() == EdgeMode::Shared;
        match stack {
            None => {
                if let Some(waiting) = self.create(sha, &mut spec).await? {
                    return Ok(waiting);
                }
            }
            Some(existing) => {
                let bypass = ctx.config.preview.access.has_bypass();
                let started = match Placement::of(existing) {
                    // On the edge already: it keeps its shard and priority,
                    // and gives back its bypass priority if it no longer
                    // has a bypass.
                    Some(mut placement)
                        if shared_edge && (!bypass || placement.bypass_priority.is_some()) =>
                    {
                        placement.bypass_priority = placement.bypass_priority.filter(|_| bypass);
                        spec.place(&placement)?;
                        self.update(&spec).await?
                    }
                    // Moving to the edge, or a bypass was added: one update
                    // removes its own load balancer (if any) and puts its
                    // rules at a new place, whose priorities are all free.
                    _ if shared_edge => match self.update_onto_edge(sha, &mut spec).await? {
                        Ok(started) => started,
                        Err(waiting) => return Ok(waiting),
                    },
                    _ => self.update(&spec).await?,
                };
                if started == Started::NoChange {
                    // Same template and parameters: restart the tasks instead.
                    if let (Some(cluster), Some(service)) = (
                        existing.output("ClusterName"),
                        existing.output("ServiceName"),
                    ) {
                        ctx.aws.services.restart(cluster, service).await?;
                    }
                    tracing::info!(
                        stack = self.env.stack_name,
                        "stack unchanged; tasks restarted"
                    );
                }
            }
        }
        let name = self.env.stack_name.clone();
        self.sticky.memory.attempted = Some(sha.to_owned());
        if scale == Scale::Up {
            tracing::info!(stack = name, commit = short_sha(sha), "deploy started");
        }
        // Nothing is written yet: the first poll, at once, shows what it
        // finds, so a stack already done by then is shown once, as ready,
        // rather than as deploying and then ready. What this pass learned
        // is kept for it.
        ctx.sticky.keep(&self.sticky);
        Ok(Action::after(Duration::ZERO))
    }

    async fn wait_for_image(&mut self, sha: &str, image: &str) -> Result<Action> {
        let ctx = self.ctx;
        let since = *ctx
            .image_waits
            .0
            .lock()
            .expect("image waits lock")
            .entry((self.env.key.clone(), sha.to_owned()))
            .or_insert_with(|| ctx.clock.now());
        let waited = ctx.clock.since(since);
        let image = image.to_owned();
        if waited > ctx.config.preview.image_timeout {
            self.report(Some(sha), State::ImageTimeout { image, waited })
                .await?;
            let why = "the image never appeared in ECR";
            self.status(sha, StatusState::Failure, None, why).await?;
            return Ok(Action::done());
        }
        self.report(Some(sha), State::WaitingForImage { image, since })
            .await?;
        Ok(Action::after(ctx.poll_delay(waited)))
    }

    /// The stack is at `sha`: check the URL if configured, then say so.
    pub(super) async fn ready(
        &mut self,
        stack: &Stack,
        sha: &str,
        took: Duration,
    ) -> Result<Action> {
        let Some(url) = stack.output("Url").map(str::to_owned) else {
            return Err(anyhow::anyhow!("stack {} has no Url output", self.env.stack_name).into());
        };
        let ctx = self.ctx;
        let success = Outcome::Ended {
            sha: sha.to_owned(),
            state: DeploymentState::Success,
            url: Some(url.clone()),
            description: "ready".into(),
        };
        if self.sticky.memory.ready.as_deref() == Some(sha) {
            // Said on the comment; the Deployment may not say it yet (its
            // record was lost with the process before).
            if !ctx
                .records
                .says(&self.env.key, sha, DeploymentState::Success)
            {
                self.record(success);
            }
            return Ok(Action::done());
        }
        let key = &self.env.key;
        let mut marks = ctx.deploy_marks.stack_done(key, sha, took);
        let preview = &ctx.config.preview;
        if preview.ready_check {
            marks = self.watch_phases(stack, sha, marks, took).await;
        }
        let answered = if preview.ready_check {
            self.answers(&url).await
        } else {
            Ok(true)
        };
        if answered != Ok(true) {
            if took > preview.ready_timeout {
                let why = answered.err().map(|w| format!(": {w}"));
                let status = format!(
                    "The stack is up but {url}{} did not answer within {}{}.",
                    preview.health_path,
                    comment::human(preview.ready_timeout),
                    why.unwrap_or_default()
                );
                let found = self.diagnose(stack).await;
                let reason = found.reason(&status);
                self.fail(sha, reason, Vec::new(), found.logs).await?;
                return Ok(Action::done());
            }
            let state = State::Deploying {
                status: "waiting for the app to answer".into(),
                since: stack.operation_started,
                trouble: None,
            };
            self.report(Some(sha), state).await?;
            return Ok(Action::after(ctx.poll_delay(took)));
        }
        self.sticky.memory.ready = Some(sha.to_owned());
        // Ready is a good outcome: a notice of failures in a row is over.
        self.sticky.memory.notice = None;
        // The URL reaches the comment first: it is what a person waits for.
        let phases = marks.phases(took, preview.ready_check);
        ctx.deploy_marks.forget(key);
        for phase in &phases {
            metrics::histogram!("pullstack_deploy_phase_seconds", "phase" => phase.step.label())
                .record(phase.took.as_secs_f64());
        }
        metrics::histogram!("pullstack_deploy_seconds").record(took.as_secs_f64());
        let checked = !preview.checks.is_empty();
        if checked {
            let wanted = super::checks::Wanted {
                sha: sha.to_owned(),
                url: url.clone(),
            };
            ctx.smoke_runs.put(key, wanted);
        }
        let state = State::Ready { url, took, phases };
        self.report(Some(sha), state).await?;
        self.record(success);
        let name = &self.env.stack_name;
        tracing::info!(stack = name, commit = short_sha(sha), took = ?took, "environment ready");
        Ok(if checked {
            Action::done().waking([Job::Checks(self.env.key.clone())])
        } else {
            Action::done()
        })
    }

    /// Whether the preview at `url` answers on its health path, or why it
    /// could not be asked. A private preview's bypass is read for each
    /// probe, so a rotated value is used at once.
    async fn answers(&self, url: &str) -> std::result::Result<bool, String> {
        let ctx = self.ctx;
        let bypass = super::checks::read_bypass(ctx).await.inspect_err(|why| {
            tracing::warn!(stack = self.env.stack_name, why, "cannot probe the preview");
        })?;
        let base = ctx.checks_origin.as_deref().unwrap_or(url);
        Ok(probe(base, &ctx.config.preview.health_path, bypass.as_ref()).await)
    }

    /// While the ready check waits: marks the tasks running and then the
    /// targets healthy, the first time a pass sees each. Looking is not
    /// waiting: the app answering is what makes the environment ready, so
    /// a failed look is logged and tried again on the next pass.
    async fn watch_phases(&self, stack: &Stack, sha: &str, marks: Marks, took: Duration) -> Marks {
        let output = |k: &str| stack.output(k).unwrap_or_default().to_owned();
        let seen = if marks.tasks.is_none() {
            self.ctx
                .aws
                .health
                .service_settled(&output("ClusterName"), &output("ServiceName"))
                .await
                .map(|settled| {
                    settled.then_some(Marks {
                        tasks: Some(took),
                        ..marks
                    })
                })
        } else if marks.targets.is_none() {
            self.ctx
                .aws
                .health
                .targets_healthy(&output("TargetGroupArn"))
                .await
                .map(|healthy| {
                    healthy.then_some(Marks {
                        targets: Some(took),
                        ..marks
                    })
                })
        } else {
            Ok(None)
        };
        match seen {
            Ok(Some(seen)) => self.ctx.deploy_marks.set(&self.env.key, sha, seen),
            Ok(None) => marks,
            Err(err) => {
                tracing::warn!(stack = self.env.stack_name, error = %err, "could not read a deploy's progress");
                marks
            }
        }
    }

    /// The spec for `sha` at `scale`, keeping what the existing `stack`
    /// must keep (its creation time, and its activity time unless the
    /// commit moved or it wakes), with the `database` clone's connection.
    fn spec(
        &self,
        shared: &Shared,
        stack: Option<&Stack>,
        sha: &str,
        scale: Scale,
        database: BTreeMap<String, String>,
    ) -> Result<Spec> {
        let ctx = self.ctx;
        let preview = &ctx.config.preview;
        let env = &self.env;
        let dns_name =
            (!preview.dns_zone.is_empty()).then(|| edge::host(&env.key.slug(), &preview.dns_zone));
        // Known before the stack exists whenever there is a DNS name.
        let certificate = ctx.config.dedicated_certificate();
        let scheme = match ctx.config.edge_mode() {
            EdgeMode::Shared => "https",
            EdgeMode::Dedicated if certificate.is_some() => "https",
            EdgeMode::Dedicated => "http",
        };
        let url = match (&dns_name, stack.and_then(|s| s.output("Url"))) {
            (Some(dns), _) => format!("{scheme}://{dns}"),
            (None, Some(url)) => url.to_owned(),
            (None, None) => String::new(),
        };
        let now = spec::tag_time(ctx.clock.now());
        let kept = |key: &str| stack.and_then(|s| s.tag(key)).map(str::to_owned);
        let request = Request {
            slug: env.key.slug(),
            sha,
            image: shared.image(sha),
            role: StackRole::Preview,
            env_tag: env.key.tag_value(),
            sizing: Sizing {
                cpu: &preview.cpu,
                memory: &preview.memory,
                // Zero until `before_traffic` has exited 0 for this commit.
                desired_count: match scale {
                    Scale::Up if !self.gated(sha) => preview.desired_count,
                    Scale::Up | Scale::Zero => 0,
                },
                capacity: preview.capacity,
            },
            dns: dns_name.map(|name| (name, preview.hosted_zone_id.as_str())),
            certificate_arn: certificate.unwrap_or_default(),
            placeholders: Placeholders {
                pr: env.pr.as_ref().map(|p| p.number),
                branch: env.branch.clone(),
                sha: sha.to_owned(),
                url,
                env: env.key.slug(),
            },
            created_at: kept(tag::CREATED_AT).unwrap_or(now.clone()),
            extra_env: database,
        };
        let mut spec = Spec::build(&ctx.config, shared, request)?;
        if let EnvKey::Pr(number) = env.key {
            spec.tags.insert(tag::PR.to_owned(), number.to_string());
        }
        // Idle time counts from the last new commit or wake. A redeploy of
        // the same commit keeps the tag, so an unchanged stack stays
        // unchanged and its tasks are restarted instead.
        let moved = stack
            .is_none_or(|s| s.tag(tag::COMMIT) != Some(sha) || s.tag(tag::IDLE_SINCE).is_some());
        let active_at = match (scale, moved) {
            (Scale::Up, true) => now.clone(),
            _ => kept(tag::ACTIVE_AT).unwrap_or(now.clone()),
        };
        spec.tags.insert(tag::ACTIVE_AT.to_owned(), active_at);
        if scale == Scale::Zero {
            spec.tags.insert(tag::IDLE_SINCE.to_owned(), now);
        }
        Ok(spec)
    }
}

/// Whether `url` + `path` answers with a success status within a few
/// seconds. A private preview's probe carries `bypass`; a redirect to
/// sign-in on another origin is then where it stops, and not an answer
/// from the app.
async fn probe(url: &str, path: &str, bypass: Option<&Bypass>) -> bool {
    let target = format!("{}{path}", url.trim_end_matches('/'));
    match checks::client(bypass)
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client
            .get(target)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::probe;

    #[tokio::test]
    async fn probe_needs_a_healthy_answer() {
        use axum::http::StatusCode;
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/broken", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        assert!(probe(&url, "/health", None).await);
        assert!(!probe(&url, "/broken", None).await);
        assert!(!probe(&url, "/missing", None).await);
        assert!(!probe("http://127.0.0.1:9", "/", None).await);
    }
}
