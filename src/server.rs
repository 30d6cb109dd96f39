//! Wires the server together: config, GitHub, AWS, the queue and the HTTP
//! routes. `pullstack serve` and the end-to-end tests both start it here.

use crate::aws::Aws;
use crate::clock::Clock;
use crate::config::Backend;
use crate::config::Config;
use crate::domain::seal::Seal;
use crate::github::client::{Auth, Forge};
use crate::http::body::BodyBudget;
use crate::http::serve::HttpLimits;
use crate::http::{Admit, AppState, app};
use crate::reconcile::durable::{self, Carried, Durable};
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
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    work: Queue<Job, Carried>,
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
        self.drained.cancel();
        for task in self.shared {
            let _ = task.await;
        }
        result.context("HTTP server task")?.context("HTTP server")
    }

    /// The server's work queue (in this process).
    pub fn queue(&self) -> &Queue<Job, Carried> {
        &self.work
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
    let repo = crate::domain::naming::RepoName::parse(&config.repository)
        .context("config: repository is not owner/name")?;
    Forge::connect(github_api_url, repo, auth, config.github.writes_per_minute).await
}

/// Limits the queue runs under, from the config.
pub fn limits(config: &Config) -> Limits {
    Limits {
        workers: config.queue.workers,
        retry_initial: config.queue.retry_initial,
        retry_max: config.queue.retry_max,
    }
}

/// Maps the config repository's events to jobs, for `serve` and `handle-event`.
pub fn router(config: &Config) -> anyhow::Result<Router> {
    let repo = crate::domain::naming::RepoName::parse(&config.repository)
        .context("config: repository is not owner/name")?;
    Ok(Router {
        repo,
        approve_label: config.preview.approve_label.clone(),
        production: config.production.enabled,
        branches: config.preview.branches.clone(),
    })
}

/// Starts the server and its workers, and runs the first resync.
pub async fn start(options: Options) -> anyhow::Result<Running> {
    let config = Arc::new(options.config);
    let router = router(&config)?;
    let forge = forge(&config, &options.github_api_url, options.auth).await?;
    forge.introduce().await?;
    let aws = match options.aws {
        Some(aws) => aws,
        None => Aws::from_env().await,
    };
    let ctx = Arc::new(Ctx::new(
        config.clone(),
        forge,
        aws,
        options.clock.clone(),
        Mode::Serve,
        Seal::new(options.webhook_secrets.iter().map(|s| s.expose_secret())),
    ));
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
            let (task, held) = lease::spawn(
                claim.clone(),
                queue.clone(),
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
            let admit = Admit::Shared {
                queue: shared.queue.clone(),
                claim,
                clock: options.clock.clone(),
            };
            (admit, held)
        }
    };

    let state = Arc::new(AppState::new(
        options.webhook_secrets,
        router,
        admit,
        metrics_handle(),
        BodyBudget::new(options.http.body_memory),
    ));
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let stop = shutdown.clone();
    let http = tokio::spawn(crate::http::serve::serve(
        listener,
        app(state),
        options.http,
        stop,
    ));
    let prune = crate::prune::spawn(
        ctx.aws.clone(),
        config.images.clone(),
        held.clone(),
        shutdown.clone(),
    );
    tracing::info!(%addr, "pullstack is listening");
    Ok(Running {
        addr,
        work: queue,
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
