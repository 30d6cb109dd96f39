//! Many repositories, one server: the repositories of the GitHub App's
//! installations that match `repositories:`, each run under its own
//! `.pullstack.yaml` with its own reconciler (context, queue, router).
//!
//! The hub is itself a reconciler over two kinds of key: the list of
//! installations, and each repository. A repository's pass reads its
//! `.pullstack.yaml` from the default branch (parsed again only when its
//! blob SHA changes), starts or replaces the repository's reconciler when
//! the config changed, and hands it the events that woke the pass. A
//! broken config stops the repository's reconciler, leaving its
//! environments as they are, and says so once on each pull request. A pull
//! request that changes the file gets the `pullstack/config` Check Run.
//!
//! With the shared queue (`queue.backend: sqs`), one SQS FIFO queue serves
//! every repository and replica. The webhook turns a delivery into its
//! repository's jobs before answering ([`Hub::prepare`]) and sends them,
//! each carrying its repository; one receive loop per replica hands each
//! message to its repository's reconciler ([`Hub`] is the
//! [`Inboxes`](super::durable::Inboxes)), which holds and deletes it as for
//! one repository. The lease holder lists the installations again and
//! resyncs every repository ([`HubJob::Resync`]).

use super::durable::{self, Carried, Durable, Inbox, Inboxes, Shared};
use super::queue::{self, Action, OnError, Queue};
use super::routing::{Route, Router};
use super::{Ctx, Job, Mode};
use crate::aws::Aws;
use crate::aws::work_queue::WorkQueue;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, REPO_FILE};
use crate::domain::naming::RepoName;
use crate::domain::seal::Seal;
use crate::github::checks::{Annotation, CheckRun, CheckStatus, Conclusion, Level, Output};
use crate::github::client::{AppAuth, Forge, ForgeError, RepoFile, installations};
use crate::github::events::{Event, PrAction};
use crate::github::pacing::Limits;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A key of the hub's queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HubJob {
    /// List the App's installations and their repositories again.
    Installations,
    /// With the shared queue, the lease holder's periodic work: list the
    /// installations again, then resync every repository.
    Resync,
    /// Look at one repository (by its lower-case `owner/name`): its config,
    /// its reconciler, and the events that woke it.
    Repo(String),
}

impl HubJob {
    /// The key of `repo`'s events.
    pub fn repo(repo: &RepoName) -> HubJob {
        HubJob::Repo(key_of(repo))
    }
}

impl fmt::Display for HubJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubJob::Installations => f.write_str("the App's installations"),
            HubJob::Resync => f.write_str("the resync of every repository"),
            HubJob::Repo(repo) => write!(f, "{repo}"),
        }
    }
}

/// The hub's work queue: each repository's events wait here until its
/// config is read.
pub type HubQueue = Queue<HubJob, Event>;

/// What a hub pass can fail with: GitHub could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct HubError(anyhow::Error);

impl From<ForgeError> for HubError {
    fn from(err: ForgeError) -> Self {
        HubError(err.into())
    }
}

/// What the hub is started with.
pub struct HubOptions {
    pub config: Arc<Config>,
    pub github_api_url: String,
    pub app: AppAuth,
    pub aws: Aws,
    pub clock: Clock,
    pub webhook_secrets: Vec<SecretString>,
    /// The key production's gate hooks are signed with.
    pub gate_key: Option<SecretString>,
    pub shutdown: CancellationToken,
    pub shutdown_grace: Duration,
    /// The shared queue, when replicas share the work.
    pub sqs: Option<HubSqs>,
}

/// The queue and table every repository and replica share.
pub struct HubSqs {
    pub queue: WorkQueue,
    /// The lease table, where the admission line is kept too.
    pub table: String,
    pub lease_ttl: Duration,
    pub receive_wait: Duration,
}

/// A served repository's reconciler, as a delivery or message needs it.
pub struct Served {
    pub router: Router,
    pub queue: Queue<Job, Carried>,
    /// Its share of the shared queue, with the shared queue.
    pub shared: Option<Arc<Shared>>,
}

/// A repository's reconciler, run under one version of its config.
struct Run {
    /// The blob SHA of the `.pullstack.yaml` it runs under.
    sha: String,
    app: String,
    router: Router,
    queue: Queue<Job, Carried>,
    shared: Option<Arc<Shared>>,
    stop: CancellationToken,
}

/// A `.pullstack.yaml` read once: the config it makes, or why it makes none.
type Parsed = Result<Arc<Config>, String>;

/// Every repository the server serves, and their reconcilers.
pub struct Hub {
    options: HubOptions,
    /// Served repositories by lower-case name: the name as GitHub spells
    /// it, and the installation it is reached through.
    served: RwLock<BTreeMap<String, (RepoName, u64)>>,
    /// One pacer per installation: GitHub's limits are per installation.
    pacers: Mutex<HashMap<u64, Arc<Limits>>>,
    /// The pacer of the App's own requests (listing installations).
    app_pacer: Limits,
    forges: Mutex<HashMap<String, Forge>>,
    /// Each repository's `.pullstack.yaml`, by blob SHA, as last parsed.
    parsed: Mutex<HashMap<String, (String, Parsed)>>,
    runs: Mutex<HashMap<String, Run>>,
    /// Every reconciler's queue task, for a graceful stop.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// How many replicas share GitHub's writes (the roll call's count).
    replicas: AtomicU32,
    /// A turn per repository for [`Hub::prepare`].
    preparing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Hub {
    pub fn new(options: HubOptions) -> Hub {
        let writes = options.config.github.writes_per_minute;
        Hub {
            options,
            served: RwLock::default(),
            pacers: Mutex::default(),
            app_pacer: Limits::new(writes),
            forges: Mutex::default(),
            parsed: Mutex::default(),
            runs: Mutex::default(),
            tasks: Mutex::default(),
            replicas: AtomicU32::new(1),
            preparing: Mutex::default(),
        }
    }

    /// From now on `replicas` share GitHub's writes: each installation's
    /// pacer, and the App's, paces this replica's share.
    pub fn share_writes(&self, replicas: u32) {
        self.replicas.store(replicas, Ordering::Relaxed);
        self.app_pacer.share(replicas);
        for pacer in self.pacers.lock().expect("pacers lock").values() {
            pacer.share(replicas);
        }
    }

    /// Whether deliveries for `repo` are taken: it is in one of the App's
    /// installations and matches `repositories:`.
    pub fn serves(&self, repo: &RepoName) -> bool {
        self.serves_key(&key_of(repo))
    }

    fn serves_key(&self, key: &str) -> bool {
        let served = self.served.read().expect("served lock");
        served.contains_key(key)
    }

    /// [`Hub::serves`], listing the installations again first when `key`
    /// (a lower-case `owner/name`) matches `repositories:` but is not
    /// served yet: with replicas, the `installation_repositories` delivery
    /// that added it may have gone to another one.
    pub async fn serves_now(&self, key: &str) -> anyhow::Result<bool> {
        if self.serves_key(key) {
            return Ok(true);
        }
        if !self.options.config.repositories.0.matches(key) {
            return Ok(false);
        }
        self.refresh().await?;
        Ok(self.serves_key(key))
    }

    /// Lists the installations again; returns the repositories served.
    pub async fn refresh(&self) -> anyhow::Result<Vec<String>> {
        let options = &self.options;
        let listed = installations(&options.github_api_url, &options.app, &self.app_pacer).await?;
        let globs = &options.config.repositories.0;
        let mut served = BTreeMap::new();
        for installation in listed {
            for repo in installation.repositories {
                if globs.matches(&repo.to_string()) {
                    served.insert(key_of(&repo), (repo, installation.id));
                } else {
                    tracing::debug!(%repo, "not in repositories: ignored");
                }
            }
        }
        let gone: Vec<String> = {
            let mut current = self.served.write().expect("served lock");
            let gone = (current.keys())
                .filter(|key| !served.contains_key(*key))
                .cloned()
                .collect();
            *current = served.clone();
            gone
        };
        for key in gone {
            // Its environments stay: the App may be given the repository back.
            tracing::info!(repo = key, "no longer served: its reconciler stops");
            self.stop_run(&key);
        }
        tracing::info!(
            repositories = served.len(),
            "serving the App's repositories"
        );
        Ok(served.into_keys().collect())
    }

    /// Every reconciler's queue, for tests and metrics.
    pub fn queues(&self) -> Vec<Queue<Job, Carried>> {
        let runs = self.runs.lock().expect("runs lock");
        runs.values().map(|run| run.queue.clone()).collect()
    }

    /// Waits until every repository's reconciler has stopped.
    pub async fn stopped(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Ends every repository's reconciler at once, as a crash would: held
    /// messages are not handed back.
    pub fn abort(&self) {
        for task in self.tasks.lock().expect("tasks lock").iter() {
            task.abort();
        }
    }

    fn stop_run(&self, key: &str) {
        if let Some(run) = self.runs.lock().expect("runs lock").remove(key) {
            run.stop.cancel();
        }
    }

    fn forge(&self, repo: &RepoName, installation: u64) -> anyhow::Result<Forge> {
        let key = key_of(repo);
        if let Some(forge) = self.forges.lock().expect("forges lock").get(&key) {
            return Ok(forge.clone());
        }
        let limits = self.pacer(installation);
        let options = &self.options;
        let forge = Forge::for_installation(
            &options.github_api_url,
            repo.clone(),
            &options.app,
            installation,
            limits,
        )?;
        let mut forges = self.forges.lock().expect("forges lock");
        Ok(forges.entry(key).or_insert(forge).clone())
    }

    /// The pacer every repository of `installation` shares.
    fn pacer(&self, installation: u64) -> Arc<Limits> {
        let writes = self.options.config.github.writes_per_minute;
        let replicas = self.replicas.load(Ordering::Relaxed);
        let mut pacers = self.pacers.lock().expect("pacers lock");
        (pacers.entry(installation))
            .or_insert_with(|| {
                let limits = Limits::new(writes);
                limits.share(replicas);
                Arc::new(limits)
            })
            .clone()
    }

    /// The config `file` makes for `repo`, parsed only when its blob SHA
    /// is new.
    fn parse(&self, repo: &RepoName, file: &RepoFile) -> Parsed {
        let key = key_of(repo);
        let mut parsed = self.parsed.lock().expect("parsed lock");
        if let Some((sha, outcome)) = parsed.get(&key)
            && *sha == file.sha
        {
            return outcome.clone();
        }
        metrics::counter!("pullstack_repo_config_parses_total", "repo" => repo.to_string())
            .increment(1);
        let outcome = (self.options.config.for_repository(repo, &file.text))
            .map(Arc::new)
            .map_err(|err| err.to_string());
        parsed.insert(key, (file.sha.clone(), outcome.clone()));
        outcome
    }

    /// The repository that already runs an app named `app`, other than `key`.
    fn app_taken(&self, key: &str, app: &str) -> Option<String> {
        let runs = self.runs.lock().expect("runs lock");
        (runs.iter())
            .find(|(other, run)| *other != key && run.app == app)
            .map(|(other, _)| other.clone())
    }

    /// The reconciler of `key` under `config`: the running one if it runs
    /// this version, else a new one (the old one stops; every step is
    /// idempotent, so the new one takes over where it was).
    fn run(&self, key: &str, forge: Forge, config: Arc<Config>, sha: &str) -> Served {
        let mut runs = self.runs.lock().expect("runs lock");
        if let Some(run) = runs.get(key)
            && run.sha == sha
        {
            return run.served();
        }
        if let Some(old) = runs.remove(key) {
            tracing::info!(
                repo = key,
                "its .pullstack.yaml changed: its reconciler restarts"
            );
            old.stop.cancel();
        }
        let options = &self.options;
        let router = crate::server::router(&config, Some(options.app.app_id))
            .expect("a merged config names its repository");
        let mut ctx = Ctx::new(
            config.clone(),
            forge,
            Aws::clone(&options.aws),
            options.clock.clone(),
            Mode::Serve,
            Seal::new(options.webhook_secrets.iter().map(|s| s.expose_secret())),
        );
        ctx.gate_key = options.gate_key.clone();
        let ctx = Arc::new(ctx);
        ctx.admissions.refresh_quotas(&ctx);
        let stop = options.shutdown.child_token();
        let shared = options.sqs.as_ref().map(|sqs| {
            // The admission line is the server's, its entries this
            // repository's.
            (ctx.admissions).share(ctx.aws.leases.clone(), sqs.table.clone(), key.to_owned());
            Arc::new(Shared::new(
                sqs.queue.clone(),
                Some(key.to_owned()),
                sqs.lease_ttl,
                sqs.receive_wait,
            ))
        });
        let reconciler = match &shared {
            None => Durable::memory(ctx),
            Some(shared) => Durable::sqs(ctx, shared.clone()),
        };
        let (queue, task) = queue::start(
            Arc::new(reconciler),
            crate::server::limits(&config),
            options.clock.clone(),
            stop.clone(),
            options.shutdown_grace,
        );
        let task = match &shared {
            None => {
                // In memory, each reconciler starts with a resync and keeps
                // it going; with the shared queue, the lease holder resyncs
                // every repository (`HubJob::Resync`).
                queue.push(Job::Resync, None);
                task
            }
            Some(shared) => {
                // Its held messages stay hidden until its queue has
                // finished what it runs, then go back for the next run.
                let shared = shared.clone();
                tokio::spawn(async move {
                    let drained = CancellationToken::new();
                    let ran = async {
                        let _ = task.await;
                        drained.cancel();
                    };
                    tokio::join!(ran, durable::keep_hidden(shared, drained.clone()));
                })
            }
        };
        self.tasks.lock().expect("tasks lock").push(task);
        tracing::info!(repo = key, app = config.app, "serving");
        let run = Run {
            sha: sha.to_owned(),
            app: config.app.clone(),
            router,
            queue,
            shared,
            stop,
        };
        let served = run.served();
        runs.insert(key.to_owned(), run);
        served
    }

    /// Reads `key`'s config, starts or replaces its reconciler, and hands
    /// back the reconciler `events` go to: `None` when the repository is not
    /// served, has no config, or a broken one (said on each pull request
    /// `events` open). A pull request that changes the config gets its
    /// Check Run first.
    pub async fn prepare(&self, key: &str, events: &[Event]) -> Result<Option<Served>, HubError> {
        // One at a time per repository in this process, as the hub's queue
        // runs them: a Check Run or a broken-config comment is posted once.
        let lock = {
            let mut locks = self.preparing.lock().expect("preparing lock");
            locks.entry(key.to_owned()).or_default().clone()
        };
        let _turn = lock.lock().await;
        let served = self.served.read().expect("served lock").get(key).cloned();
        let Some((repo, installation)) = served else {
            tracing::info!(
                repo = key,
                "not served by this server: its events are ignored"
            );
            return Ok(None);
        };
        let forge = self.forge(&repo, installation).map_err(HubError)?;
        let branch = forge.default_branch().await?;
        for event in events {
            if let Event::PullRequest(pr) = event
                && matches!(
                    pr.action,
                    PrAction::Opened | PrAction::Reopened | PrAction::Synchronize
                )
            {
                self.check_config(key, &repo, &forge, &branch, pr.number, &pr.head_sha)
                    .await?;
            }
        }
        let Some(file) = forge.file(REPO_FILE, &branch).await? else {
            tracing::info!(%repo, branch, "no {REPO_FILE} on its default branch: not served");
            self.stop_run(key);
            return Ok(None);
        };
        let parsed =
            self.parse(&repo, &file)
                .and_then(|config| match self.app_taken(key, &config.app) {
                    Some(other) => {
                        let (line, column) = crate::config::key_position(&file.text, "app");
                        let why = app_taken_by(&config.app, &other);
                        Err(format!("{REPO_FILE}:{line}:{column}: {why}"))
                    }
                    None => Ok(config),
                });
        match parsed {
            Ok(config) => Ok(Some(self.run(key, forge, config, &file.sha))),
            Err(message) => {
                tracing::warn!(%repo, error = message, "its config is broken: environments are left as they are");
                self.stop_run(key);
                for event in events {
                    if let Event::PullRequest(pr) = event
                        && !matches!(pr.action, PrAction::Closed { .. })
                    {
                        tell_broken(&forge, pr.number, &branch, &file.sha, &message).await?;
                    }
                }
                Ok(None)
            }
        }
    }

    /// A pass over `key` woken by `events`, in this process: they go to
    /// its reconciler's queue.
    async fn repository(&self, key: &str, events: &[Event]) -> Result<Action<HubJob>, HubError> {
        if let Some(served) = self.prepare(key, events).await? {
            for event in events {
                if let Route::Jobs(jobs) = served.router.route(event) {
                    for (job, intent) in jobs {
                        served.queue.push(job, intent.map(Carried::Intent));
                    }
                }
            }
        }
        Ok(Action::done())
    }

    /// The lease holder's periodic work with the shared queue: lists the
    /// installations again and resyncs each repository (whose reconciler
    /// sends the keys the resync wakes to the shared queue).
    async fn resync(&self) -> Result<Action<HubJob>, HubError> {
        let served = self.refresh().await.map_err(HubError)?;
        for key in served {
            match self.prepare(&key, &[]).await {
                Ok(Some(served)) => served.queue.push(Job::Resync, None),
                Ok(None) => {}
                // The other repositories are resynced all the same.
                Err(err) => tracing::warn!(repo = key, error = %err, "resyncing failed"),
            }
        }
        Ok(Action::done())
    }

    /// The reconciler running `key` now, if any.
    fn running(&self, key: &str) -> Option<Served> {
        let runs = self.runs.lock().expect("runs lock");
        runs.get(key).map(|run| run.served())
    }
}

impl Run {
    fn served(&self) -> Served {
        Served {
            router: self.router.clone(),
            queue: self.queue.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// With the shared queue, each received message goes to its repository's
/// reconciler, started (its config read) if it is not running here yet.
impl Inboxes for Hub {
    async fn below(&self, n: usize) {
        // Any repository's key may end: look again shortly.
        while self.busy() >= n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn busy(&self) -> usize {
        let runs = self.runs.lock().expect("runs lock");
        runs.values().map(|run| run.queue.busy()).sum()
    }

    async fn inbox(&self, repository: Option<&str>) -> Inbox {
        let Some(key) = repository.map(str::to_lowercase) else {
            return Inbox::Gone("it names no repository".to_owned());
        };
        if let Some(Served {
            shared: Some(shared),
            queue,
            ..
        }) = self.running(&key)
        {
            return Inbox::Run(shared, queue);
        }
        // A message another replica sent for a repository this one has not
        // listed yet is not deleted.
        match self.serves_now(&key).await {
            Ok(true) => {}
            Ok(false) => return Inbox::Gone(format!("{key} is no longer served")),
            Err(err) => return Inbox::Later(format!("{err:#}")),
        }
        let served = self.prepare(&key, &[]).await;
        match served {
            Ok(Some(Served {
                shared: Some(shared),
                queue,
                ..
            })) => Inbox::Run(shared, queue),
            Ok(Some(_)) => Inbox::Later("the server does not share its queue".to_owned()),
            Ok(None) => Inbox::Gone(format!("{key} has no valid {REPO_FILE}")),
            Err(err) => Inbox::Later(err.to_string()),
        }
    }
}

impl Hub {
    /// When PR `number` changes `.pullstack.yaml`, checks the file at its
    /// head `sha` as it would run once merged, and reports it as the
    /// `pullstack/config` Check Run on that commit (once per commit).
    async fn check_config(
        &self,
        key: &str,
        repo: &RepoName,
        forge: &Forge,
        branch: &str,
        number: u64,
        sha: &str,
    ) -> Result<(), ForgeError> {
        let files = forge.pull_request_files(number).await?;
        let Some((_, change)) = files.iter().find(|(path, _)| path == REPO_FILE) else {
            return Ok(());
        };
        if !forge.check_runs(sha, CONFIG_CHECK).await?.is_empty() {
            return Ok(());
        }
        let file = match change.as_str() {
            "removed" => None,
            _ => forge.file(REPO_FILE, sha).await?,
        };
        let (conclusion, title, summary, annotations) = match file {
            None => (
                Conclusion::Neutral,
                format!("This pull request removes {REPO_FILE}"),
                format!(
                    "Once it is on `{branch}`, pullstack stops serving {repo}; its environments \
                     are left as they are."
                ),
                Vec::new(),
            ),
            Some(file) => match self.judge(key, repo, &file.text) {
                Ok(app) => (
                    Conclusion::Success,
                    format!("{REPO_FILE} is valid"),
                    format!("Once it is on `{branch}`, pullstack runs {repo} as app `{app}`."),
                    Vec::new(),
                ),
                Err((line, column, message)) => (
                    Conclusion::Failure,
                    format!("{REPO_FILE} has an error"),
                    format!(
                        "```\n{REPO_FILE}:{line}:{column}: {message}\n```\n\nOnce it is on \
                         `{branch}`, pullstack would leave {repo}'s environments as they are \
                         until the file is fixed."
                    ),
                    vec![Annotation::at(
                        REPO_FILE,
                        line,
                        column,
                        Level::Failure,
                        message,
                    )],
                ),
            },
        };
        let run = CheckRun {
            name: CONFIG_CHECK.to_owned(),
            head_sha: sha.to_owned(),
            status: CheckStatus::Completed,
            conclusion: Some(conclusion),
            output: Some(Output {
                title,
                summary,
                annotations,
            }),
        };
        forge.create_check_run(&run).await?;
        Ok(())
    }

    /// The app `text` would run `repo` as, or where and why it cannot.
    fn judge(&self, key: &str, repo: &RepoName, text: &str) -> Result<String, (u32, u32, String)> {
        let config = match self.options.config.for_repository(repo, text) {
            Ok(config) => config,
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => return Err((line as u32, column as u32, message)),
            Err(err) => return Err((1, 1, err.to_string())),
        };
        if let Some(other) = self.app_taken(key, &config.app) {
            let (line, column) = crate::config::key_position(text, "app");
            let message = app_taken_by(&config.app, &other);
            return Err((line as u32, column as u32, message));
        }
        Ok(config.app)
    }
}

/// The name of the Check Run that reports a changed `.pullstack.yaml`.
pub const CONFIG_CHECK: &str = "pullstack/config";

/// Says on PR `number`, once per broken version, that the repository's
/// config is broken and its environments are left as they are.
async fn tell_broken(
    forge: &Forge,
    number: u64,
    branch: &str,
    sha: &str,
    message: &str,
) -> Result<(), ForgeError> {
    let marker = format!("<!-- pullstack:config-broken {sha} -->");
    let me = forge.identity().await?;
    let comments = forge.comments(number).await?;
    if comments
        .iter()
        .any(|c| c.user.login == me && c.body.contains(&marker))
    {
        return Ok(());
    }
    let body = format!(
        "{marker}\n**pullstack cannot read `{REPO_FILE}` on `{branch}`**, so it leaves this \
         repository's environments as they are until it is fixed:\n\n```\n{message}\n```\n\n\
         Run `pullstack config check` on the file, or see the `pullstack/config` check of the \
         pull request that changes it."
    );
    forge.create_comment(number, &body).await?;
    Ok(())
}

/// Why a repository cannot take `app`, which `other` runs.
fn app_taken_by(app: &str, other: &str) -> String {
    format!(
        "app: {app:?} is already the app of {other}; stack names start with it, so give this \
         repository an app name of its own"
    )
}

/// The key a repository goes by: GitHub's names ignore case.
pub fn key_of(repo: &RepoName) -> String {
    repo.to_string().to_lowercase()
}

impl queue::Reconcile for Hub {
    type Key = HubJob;
    type Intent = Event;
    type Error = HubError;

    async fn reconcile(
        &self,
        job: HubJob,
        events: &[Event],
        _failures: u32,
    ) -> Result<Action<HubJob>, HubError> {
        match job {
            HubJob::Installations => {
                let served = self.refresh().await.map_err(HubError)?;
                let interval = self.options.config.resync.interval;
                if self.options.sqs.is_some() {
                    // Every replica keeps its list of repositories fresh, to
                    // take their deliveries; the lease holder resyncs them.
                    return Ok(Action::after(interval));
                }
                Ok(Action::after(interval).waking(served.into_iter().map(HubJob::Repo)))
            }
            HubJob::Resync => self.resync().await,
            HubJob::Repo(key) => self.repository(&key, events).await,
        }
    }

    /// GitHub unavailable or limiting: try again. Anything else (a
    /// repository gone, a refusal) waits for the next delivery or resync
    /// rather than asking again and again.
    fn error_policy(&self, job: &HubJob, error: &HubError, failures: u32) -> OnError {
        let transient = (error.0.chain())
            .filter_map(|cause| cause.downcast_ref::<ForgeError>())
            .any(ForgeError::is_transient);
        if transient {
            tracing::warn!(%job, failures, error = %error, "will try again");
            OnError::Retry
        } else {
            tracing::warn!(%job, error = %error, "given up until the next delivery or resync");
            OnError::GiveUp
        }
    }
}
