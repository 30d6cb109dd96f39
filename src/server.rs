//! Wires the server together: config, GitHub, AWS, the queue and the HTTP
//! routes. `pullstack serve` and the end-to-end tests both start it here.

use crate::aws::Aws;
use crate::clock::Clock;
use crate::config::Backend;
use crate::config::Config;
use crate::domain::seal::Seal;
use crate::github::client::{AppAuth, Auth, Forge};
use crate::http::body::BodyBudget;
use crate::http::serve::HttpLimits;
use crate::http::{Admit, AppState, SharedQueue, app};
use crate::reconcile::durable::{self, Carried, Durable};
use crate::reconcile::hub::{Hub, HubJob, HubOptions, HubQueue, HubSqs};
use crate::reconcile::lease::{self, Claim};
use crate::reconcile::queue::{self, Limits, Queue};
use crate::reconcile::routing::Router;
use crate::reconcile::{Ctx, Job, Mode};
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything `serve` needs.
pub struct Options {
    pub listen: SocketAddr,
    pub config: Config,
    pub github_api_url: String,
    pub auth: Auth,
    pub webhook_secrets: Vec<SecretString>,
    /// How long running reconciles may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Limits on HTTP clients, including how long open connections may
    /// finish after a shutdown signal.
    pub http: HttpLimits,
    /// AWS clients to use; `None` loads the SDK's standard configuration.
    pub aws: Option<Aws>,
    /// The clock every timer reads; tests move a manual one.
    pub clock: Clock,
    /// Where smoke checks and the ready probe send their requests instead
    /// of each preview's URL (tests, whose previews' names do not resolve);
    /// `None` in service.
    pub checks_origin: Option<String>,
    /// The key production's gate hooks are signed with; `None` without
    /// `production.gates`.
    pub gate_key: Option<SecretString>,
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// One repository's queue; `None` when the hub serves many.
    work: Option<Queue<Job, Carried>>,
    /// With `repositories:`: the hub and its queue.
    hub: Option<(Arc<Hub>, HubQueue)>,
    shutdown: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    queue: JoinHandle<()>,
    /// The periodic ECR image clean-up.
    prune: JoinHandle<()>,
    /// With the SQS backend: receiving, keeping messages hidden, the lease.
    shared: Vec<JoinHandle<()>>,
    /// Whether this process holds the periodic work, as it changes.
    lease: tokio::sync::watch::Receiver<bool>,
    /// Cancelled once the queue has finished what it runs: held messages
    /// are handed back then.
    drained: CancellationToken,
    quota_reads: tokio::sync::watch::Receiver<u64>,
}

impl Running {
    /// Stops accepting, lets requests and work in flight finish (dropping
    /// connections after the drain and abandoning work after the grace
    /// period), and waits until everything has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.http.await;
        let _ = self.queue.await;
        let _ = self.prune.await;
        if let Some((hub, _)) = &self.hub {
            hub.stopped().await;
        }
        self.drained.cancel();
        for task in self.shared {
            let _ = task.await;
        }
    }

    /// Ends the server at once, as a crash would: nothing finishes.
    pub fn kill(self) {
        self.http.abort();
        self.queue.abort();
        self.prune.abort();
        if let Some((hub, _)) = &self.hub {
            // The repositories' reconcilers stop at once, dropping their work.
            hub.abort();
            self.shutdown.cancel();
        }
        for task in &self.shared {
            task.abort();
        }
    }

    /// Waits until a shutdown is requested from outside and completes.
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.http.await;
        self.shutdown.cancel();
        let _ = self.queue.await;
        let _ = self.prune.await;
        if let Some((hub, _)) = &self.hub {
            hub.stopped().await;
        }
        self.drained.cancel();
        for task in self.shared {
            let _ = task.await;
        }
        result.context("HTTP server task")?.context("HTTP server")
    }

    /// The server's work queue (in this process) when it serves one
    /// repository.
    pub fn queue(&self) -> &Queue<Job, Carried> {
        (self.work.as_ref()).expect("a server of one repository (not repositories:)")
    }

    /// With `repositories:`: the hub, which runs each repository.
    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.hub.as_ref().map(|(hub, _)| hub)
    }

    /// Waits until nothing is queued or running: for one repository, its
    /// queue; with the hub, the hub's and every repository's, all at once.
    pub async fn idle(&self) {
        let Some((hub, queue)) = &self.hub else {
            return self.queue().idle().await;
        };
        loop {
            queue.idle().await;
            let queues = hub.queues();
            for queue in &queues {
                queue.idle().await;
            }
            if queue.busy() == 0 && hub.queues().iter().all(|q| q.busy() == 0) {
                return;
            }
        }
    }

    /// How many keys are queued or running in this process: for one
    /// repository, its queue's; with the hub, the hub's and every
    /// repository's.
    pub fn busy(&self) -> usize {
        let Some((hub, queue)) = &self.hub else {
            return self.queue().busy();
        };
        queue.busy() + hub.queues().iter().map(Queue::busy).sum::<usize>()
    }

    /// Whether this process holds the periodic work, as it changes.
    pub fn lease(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lease.clone()
    }

    /// How many reads of the account quotas have finished, as it changes.
    pub fn quota_reads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.quota_reads.clone()
    }

    /// Whether the server stopped on its own (it crashed).
    pub fn is_finished(&self) -> bool {
        self.http.is_finished() || self.queue.is_finished()
    }

    /// A token that shuts the server down when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// The process-wide Prometheus recorder (installed once, even when tests
/// start several servers in one process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Deploy times as histograms, from seconds to the 20 minutes a
            // slow stack may take, so dashboards can add replicas up.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Prefix("pullstack_deploy".to_owned()),
                    &[
                        1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
                    ],
                )
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The GitHub client for the config's repository. `serve` and
/// `handle-event` both connect here.
pub async fn forge(config: &Config, github_api_url: &str, auth: Auth) -> anyhow::Result<Forge> {
    let repo = one_repository(config)?;
    Forge::connect(github_api_url, repo, auth, config.github.writes_per_minute).await
}

/// The one repository `config` serves.
fn one_repository(config: &Config) -> anyhow::Result<crate::domain::naming::RepoName> {
    if config.serves_many() {
        anyhow::bail!(
            "config: repositories: is served by `pullstack serve` only; this command takes a \
             config with repository: (one repository)"
        );
    }
    crate::domain::naming::RepoName::parse(&config.repository)
        .context("config: repository is not owner/name")
}

/// Limits the queue runs under, from the config.
pub fn limits(config: &Config) -> Limits {
    Limits {
        workers: config.queue.workers,
        retry_initial: config.queue.retry_initial,
        retry_max: config.queue.retry_max,
    }
}

/// Maps the config repository's events to jobs, for `serve` and
/// `handle-event`; `app_id` is pullstack's GitHub App, when it runs as one.
pub fn router(config: &Config, app_id: Option<u64>) -> anyhow::Result<Router> {
    let repo = one_repository(config)?;
    Ok(Router {
        repo,
        approve_label: config.preview.approve_label.clone(),
        production: config.production.enabled,
        branches: config.preview.branches.clone(),
        checks_name: config.preview.checks_name.clone(),
        app_id,
    })
}

/// The given AWS clients, or those of the SDK's standard configuration.
async fn aws_or_env(aws: Option<Aws>) -> Aws {
    match aws {
        Some(aws) => aws,
        None => Aws::from_env().await,
    }
}

/// The HTTP side of a server, the same for one repository and for many.
struct Front {
    listen: SocketAddr,
    limits: HttpLimits,
    webhook_secrets: Vec<SecretString>,
}

impl Front {
    /// Listens, and serves the webhook routes until `shutdown`: deliveries
    /// go to `admit`, routed by `router` when one repository is served.
    async fn serve(
        self,
        router: Option<Router>,
        admit: Admit,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
        let state = Arc::new(AppState::new(
            self.webhook_secrets,
            router,
            admit,
            metrics_handle(),
            BodyBudget::new(self.limits.body_memory),
        ));
        let listener = TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let addr = listener.local_addr()?;
        let http = tokio::spawn(crate::http::serve::serve(
            listener,
            app(state),
            self.limits,
            shutdown.clone(),
        ));
        Ok((addr, http))
    }
}

/// Starts the server and its workers, and runs the first resync.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    if options.config.serves_many() {
        return start_hub(options).await;
    }
    let config = Arc::new(options.config);
    let app_id = match &options.auth {
        Auth::App { app_id, .. } => Some(*app_id),
        Auth::Token(_) => None,
    };
    let router = router(&config, app_id)?;
    let forge = forge(&config, &options.github_api_url, options.auth).await?;
    forge.introduce().await?;
    let aws = aws_or_env(options.aws).await;
    let mut ctx = Ctx::new(
        config.clone(),
        forge,
        aws,
        options.clock.clone(),
        Mode::Serve,
        Seal::new(options.webhook_secrets.iter().map(|s| s.expose_secret())),
    );
    ctx.checks_origin = options.checks_origin.clone();
    ctx.gate_key = options.gate_key.clone();
    let ctx = Arc::new(ctx);
    // Read before the first PR needs them, and never while it waits.
    ctx.admissions.refresh_quotas(&ctx);
    let shutdown = CancellationToken::new();
    let shared = match config.queue.backend {
        Backend::Memory => None,
        Backend::Sqs => {
            let work = (ctx.aws.sqs.open(&config.sqs_queue()).await)
                .with_context(|| format!("opening the SQS queue {}", config.sqs_queue()))?;
            let sqs = &config.queue.sqs;
            Some(Arc::new(durable::Shared::new(
                work,
                None,
                sqs.lease_ttl,
                sqs.receive_wait,
            )))
        }
    };
    let reconciler = match &shared {
        None => Durable::memory(ctx.clone()),
        Some(shared) => Durable::sqs(ctx.clone(), shared.clone()),
    };
    let (queue, queue_task) = queue::start(
        Arc::new(reconciler),
        limits(&config),
        options.clock.clone(),
        shutdown.clone(),
        options.shutdown_grace,
    );
    let mut shared_tasks = Vec::new();
    let drained = CancellationToken::new();
    let (admit, held) = match &shared {
        None => {
            queue.push(Job::Resync, None);
            (Admit::Local(queue.clone()), lease::always())
        }
        Some(shared) => {
            ctx.admissions.share(
                ctx.aws.leases.clone(),
                config.lease_table(),
                config.repository.clone(),
            );
            let claim = Claim {
                leases: ctx.aws.leases.clone(),
                table: config.lease_table(),
                key: Claim::key_for(&config.repository),
                holder: Claim::replica_name(),
                ttl: config.queue.sqs.lease_ttl,
            };
            let forge = ctx.forge.clone();
            let local = queue.clone();
            let (task, held) = lease::spawn(
                claim.clone(),
                move || local.push(Job::Resync, None),
                config.resync.interval,
                options.clock.clone(),
                shutdown.clone(),
                move |replicas| forge.share_writes(replicas),
            );
            shared_tasks.push(task);
            shared_tasks.extend(durable::spawn(
                shared.clone(),
                queue.clone(),
                config.queue.workers,
                shutdown.clone(),
                drained.clone(),
            ));
            let admit = Admit::Shared(SharedQueue {
                queue: shared.queue.clone(),
                claim,
                clock: options.clock.clone(),
            });
            (admit, held)
        }
    };

    let front = Front {
        listen: options.listen,
        limits: options.http,
        webhook_secrets: options.webhook_secrets,
    };
    let (addr, http) = front.serve(Some(router), admit, &shutdown).await?;
    let prune = crate::prune::spawn(
        ctx.aws.clone(),
        config.images.clone(),
        held.clone(),
        shutdown.clone(),
    );
    tracing::info!(%addr, "pullstack is listening");
    Ok(Running {
        addr,
        work: Some(queue),
        hub: None,
        shutdown,
        http,
        queue: queue_task,
        prune,
        shared: shared_tasks,
        lease: held,
        drained,
        quota_reads: ctx.admissions.quota_reads(),
    })
}

/// Starts a server for the repositories of the App's installations that
/// match `repositories:`, each under its own `.pullstack.yaml`.
async fn start_hub(options: Options) -> anyhow::Result<Running> {
    let config = Arc::new(options.config);
    let Auth::App { app_id, key, .. } = options.auth else {
        anyhow::bail!(
            "repositories: serves the repositories of a GitHub App's installations: \
             give the App's id and private key (PULLSTACK_GITHUB_APP_ID, \
             PULLSTACK_GITHUB_APP_KEY), not a token"
        );
    };
    let aws = aws_or_env(options.aws).await;
    let shutdown = CancellationToken::new();
    // One queue and one table for every repository, named in the server's
    // config.
    let sqs = match config.queue.backend {
        Backend::Memory => None,
        Backend::Sqs => {
            let work = (aws.sqs.open(&config.sqs_queue()).await)
                .with_context(|| format!("opening the SQS queue {}", config.sqs_queue()))?;
            Some(HubSqs {
                queue: work,
                table: config.lease_table(),
                lease_ttl: config.queue.sqs.lease_ttl,
                receive_wait: config.queue.sqs.receive_wait,
            })
        }
    };
    let work = sqs.as_ref().map(|sqs| sqs.queue.clone());
    let hub = Arc::new(Hub::new(HubOptions {
        config: config.clone(),
        github_api_url: options.github_api_url.clone(),
        app: AppAuth { app_id, key },
        aws: aws.clone(),
        clock: options.clock.clone(),
        webhook_secrets: options.webhook_secrets.clone(),
        gate_key: options.gate_key.clone(),
        shutdown: shutdown.clone(),
        shutdown_grace: options.shutdown_grace,
        sqs,
    }));
    // Deliveries are taken only for repositories known to be served, so
    // the list is read before the first one is.
    let served = match hub.refresh().await {
        Ok(served) => served,
        Err(err)
            if err
                .downcast_ref::<crate::github::client::ForgeError>()
                .is_some_and(|e| e.is_transient()) =>
        {
            tracing::warn!(error = %format!("{err:#}"), "listing the App's installations failed; trying again");
            Vec::new()
        }
        Err(err) => {
            return Err(err.context(format!(
                "listing the GitHub App's installations on {}: check the API URL and the \
                 App's id and key",
                options.github_api_url
            )));
        }
    };
    let (queue, queue_task) = queue::start(
        hub.clone(),
        limits(&config),
        options.clock.clone(),
        shutdown.clone(),
        options.shutdown_grace,
    );
    if served.is_empty() {
        queue.push(HubJob::Installations, None);
    } else {
        if work.is_none() {
            // With the shared queue, the lease holder resyncs them.
            for key in served {
                queue.push(HubJob::Repo(key), None);
            }
        }
        queue.later(HubJob::Installations, config.resync.interval);
    }
    let drained = CancellationToken::new();
    let mut shared_tasks = Vec::new();
    let (shared, held) = match work {
        None => (None, lease::always()),
        Some(work) => {
            // One lease for the server: its holder lists the installations
            // and resyncs every repository. One roll call per replica: the
            // replicas split each installation's GitHub writes.
            let claim = Claim {
                leases: aws.leases.clone(),
                table: config.lease_table(),
                key: Claim::SERVER.to_owned(),
                holder: Claim::replica_name(),
                ttl: config.queue.sqs.lease_ttl,
            };
            let (local, counted) = (queue.clone(), hub.clone());
            let (task, held) = lease::spawn(
                claim.clone(),
                move || local.push(HubJob::Resync, None),
                config.resync.interval,
                options.clock.clone(),
                shutdown.clone(),
                move |replicas| counted.share_writes(replicas),
            );
            shared_tasks.push(task);
            shared_tasks.push(tokio::spawn(durable::receive(
                hub.clone(),
                work.clone(),
                (config.queue.sqs.lease_ttl, config.queue.sqs.receive_wait),
                config.queue.workers,
                shutdown.clone(),
            )));
            let shared = SharedQueue {
                queue: work,
                claim,
                clock: options.clock.clone(),
            };
            (Some(shared), held)
        }
    };
    let admit = Admit::Hub {
        hub: hub.clone(),
        queue: queue.clone(),
        shared,
    };
    let front = Front {
        listen: options.listen,
        limits: options.http,
        webhook_secrets: options.webhook_secrets,
    };
    let (addr, http) = front.serve(None, admit, &shutdown).await?;
    let prune = crate::prune::spawn(aws, config.images.clone(), held.clone(), shutdown.clone());
    tracing::info!(%addr, "pullstack is listening for the App's repositories");
    Ok(Running {
        addr,
        work: None,
        hub: Some((hub, queue)),
        shutdown,
        http,
        queue: queue_task,
        prune,
        shared: shared_tasks,
        lease: held,
        drained,
        quota_reads: tokio::sync::watch::channel(0).1,
    })
}
