//! The durable queue (`queue.backend: sqs`): wishes wait in an SQS FIFO
//! queue that every replica reads, and the in-process [`queue`](super::queue)
//! runs them (coalescing, retries, polls).
//!
//! - The webhook sends a [`Wish`] per job, in the message group of the job's
//!   key. SQS hands out one message per group at a time across replicas, so
//!   one key never runs on two replicas at once.
//! - A received message travels through the local queue as a
//!   [`Carried::Message`], so the run that covers it is known exactly. It is
//!   deleted once its key's work is done; while the key waits for a poll or
//!   a retry, this replica keeps holding it and keeps it hidden from others.
//!   A replica that dies stops hiding it: within `lease_ttl` another replica
//!   receives it and runs the key again, picking up the poll where it was.
//! - Other keys a pass wakes are sent as messages, not run here, and so are
//!   looks far in the future (an idle deadline): no key ever runs without
//!   its group's message in hand. The one exception is a record job, which
//!   writes the Deployment outcomes this process holds, and so runs here.
//!
//! In memory mode ([`Durable::memory`]) the wrapper passes everything through.

use super::queue::{Action, OnError, Queue, Reconcile};
use super::{Ctx, Intent, Job};
use crate::aws::work_queue::WorkQueue;
use crate::clock::Clock;
use crate::domain::naming::EnvKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A wait this long or shorter (a poll, a retry) is spent holding the key's
/// message; a longer one gives the message back and sends a new one when
/// it is due. SQS lets a message stay hidden for 12 hours at most.
pub const HOLD_UP_TO: Duration = Duration::from_secs(300);

/// The pause after an empty receive that did not wait.
const EMPTY_PAUSE: Duration = Duration::from_millis(100);

/// What the local queue carries for a key, beyond "look again".
#[derive(Clone, Debug)]
pub enum Carried {
    /// What an event asked for, in this process.
    Intent(Intent),
    /// A message taken from SQS, with what it asks for.
    Message {
        receipt: String,
        intent: Option<Intent>,
    },
}

/// The body of a message: a job, the repository it is for, and what its
/// event asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wish {
    /// The repository (lower-case `owner/name`) whose job it is, when one
    /// server serves many (`repositories:`); absent for a server of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub job: Job,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
}

/// The message group of `job`: its environment key, `production` or
/// `resync`.
pub fn group(job: &Job) -> String {
    match job {
        Job::Env(EnvKey::Pr(number)) => format!("pr-{number}"),
        // The slug is bounded and DNS-safe, unlike a branch name.
        Job::Env(key @ EnvKey::Branch(_)) => key.slug(),
        Job::Production => "production".to_owned(),
        Job::Resync => "resync".to_owned(),
        // Not sent in practice: a record job runs in the process whose
        // memory holds its outcomes (see `Durable::reconcile`).
        Job::Record(key) => format!("record-{}", group(&Job::Env(key.clone()))),
        // Likewise: its request waits in this process's memory.
        Job::Checks(key) => format!("checks-{}", group(&Job::Env(key.clone()))),
        // Likewise: what it is to ask waits in this process's memory.
        Job::ReleaseGates => "production-gates".to_owned(),
    }
}

/// SQS's longest message group id.
const GROUP_MAX: usize = 128;

/// The message group of `job` of `repository` (none for a server of one
/// repository): `<repository>/<group>`, so each repository's keys are
/// apart. A repository's name is printable ASCII SQS takes; one too long
/// to fit goes by a hash of it, which keeps the groups of two
/// repositories apart just as well.
pub fn message_group(repository: Option<&str>, job: &Job) -> String {
    let key = group(job);
    let Some(repository) = repository else {
        return key;
    };
    let fits = repository.len() + 1 + key.len() <= GROUP_MAX
        && repository.chars().all(|c| c.is_ascii_graphic());
    if fits {
        return format!("{repository}/{key}");
    }
    let hash = hex::encode(Sha256::digest(repository.as_bytes()));
    format!("{}/{key}", &hash[..40])
}

/// The deduplication id of the `index`th job of a delivery for
/// `repository`: the same for a redelivery, so SQS drops it.
pub fn dedup_id(repository: Option<&str>, delivery: &str, index: usize, job: &Job) -> String {
    let mut hash = Sha256::new();
    hash.update(delivery.as_bytes());
    hash.update(format!("\n{index}\n{}", message_group(repository, job)).as_bytes());
    hex::encode(hash.finalize())
}

/// A deduplication id no other message has: for wakes, which must never be
/// dropped as duplicates.
fn fresh_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Sends `wish` to the shared queue.
pub async fn send(queue: &WorkQueue, wish: &Wish, dedup: &str) -> Result<(), crate::aws::Error> {
    let body = serde_json::to_string(wish).expect("a wish serializes");
    let group = message_group(wish.repository.as_deref(), &wish.job);
    queue.send(&group, dedup, &body).await
}

/// The messages this replica holds, by key.
#[derive(Default)]
struct Holding {
    /// Every message this replica holds, kept hidden from the others.
    all: HashMap<Job, Vec<String>>,
    /// Messages whose run asked to look again (a poll, a retry): the next
    /// run of the key covers them.
    waiting: HashMap<Job, Vec<String>>,
    /// When each held message was sent.
    sent: HashMap<String, DateTime<Utc>>,
}

/// The shared queue's side of a replica.
pub struct Shared {
    pub queue: WorkQueue,
    /// The repository whose keys these are, when one server serves many.
    pub repository: Option<String>,
    /// How long a held message stays hidden without being extended.
    pub lease_ttl: Duration,
    /// How long a receive waits for a message.
    pub receive_wait: Duration,
    holding: Mutex<Holding>,
    /// Sends due later, one per key.
    timers: Mutex<HashMap<Job, JoinHandle<()>>>,
}

impl Shared {
    pub fn new(
        queue: WorkQueue,
        repository: Option<String>,
        lease_ttl: Duration,
        receive_wait: Duration,
    ) -> Shared {
        Shared {
            queue,
            repository,
            lease_ttl,
            receive_wait,
            holding: Mutex::default(),
            timers: Mutex::default(),
        }
    }

    fn holding(&self) -> std::sync::MutexGuard<'_, Holding> {
        self.holding.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn took(&self, job: &Job, receipt: &str, sent: Option<DateTime<Utc>>) {
        let mut holding = self.holding();
        holding
            .all
            .entry(job.clone())
            .or_default()
            .push(receipt.to_owned());
        if let Some(sent) = sent {
            holding.sent.insert(receipt.to_owned(), sent);
        }
    }

    /// The messages a run of `job` carrying `carried` answers.
    fn covered(&self, job: &Job, carried: &[Carried]) -> Vec<String> {
        let mut covered = self.holding().waiting.remove(job).unwrap_or_default();
        for item in carried {
            if let Carried::Message { receipt, .. } = item
                && !covered.contains(receipt)
            {
                covered.push(receipt.clone());
            }
        }
        covered
    }

    /// The run ended, and `job` will run again here: keep its messages.
    fn keep(&self, job: &Job, covered: Vec<String>) {
        if covered.is_empty() {
            return;
        }
        self.holding()
            .waiting
            .entry(job.clone())
            .or_default()
            .extend(covered);
    }

    /// The work these messages asked for is done.
    async fn done(&self, job: &Job, covered: Vec<String>) {
        if covered.is_empty() {
            return;
        }
        {
            let mut holding = self.holding();
            if let Some(all) = holding.all.get_mut(job) {
                all.retain(|r| !covered.contains(r));
                if all.is_empty() {
                    holding.all.remove(job);
                }
            }
            for receipt in &covered {
                holding.sent.remove(receipt);
            }
        }
        if let Err(err) = self.queue.delete(&covered).await {
            // It comes back once hidden no more: one more harmless pass.
            tracing::warn!(job = %job, error = %err, "deleting a done message failed");
        }
    }

    /// Every message held, to keep hidden, and when the oldest was sent.
    fn receipts(&self) -> (Vec<String>, Option<DateTime<Utc>>) {
        let holding = self.holding();
        let receipts = holding.all.values().flatten().cloned().collect();
        (receipts, holding.sent.values().min().copied())
    }

    /// Sends a wish for `job` after `delay` on `clock`, replacing any
    /// send of `job` already due.
    fn send_later(self: &Arc<Self>, job: Job, delay: Duration, clock: &Clock) {
        let shared = self.clone();
        let clock = clock.clone();
        let wish = Wish {
            repository: self.repository.clone(),
            job: job.clone(),
            intent: None,
        };
        let task = tokio::spawn(async move {
            clock.sleep(delay).await;
            if let Err(err) = send(&shared.queue, &wish, &fresh_id()).await {
                // The next resync looks at every key.
                tracing::warn!(job = %wish.job, error = %err, "sending a due look failed");
            }
        });
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        timers.retain(|_, task| !task.is_finished());
        if let Some(old) = timers.insert(job, task) {
            old.abort();
        }
    }
}

/// A run's messages, handed back for the retry if the run never ends.
struct Covered<'a> {
    shared: &'a Shared,
    job: &'a Job,
    covered: Option<Vec<String>>,
}

impl Covered<'_> {
    fn disarm(mut self) {
        self.covered = None;
    }
}

impl Drop for Covered<'_> {
    fn drop(&mut self) {
        if let Some(covered) = self.covered.take() {
            self.shared.keep(self.job, covered);
        }
    }
}

/// The reconciler behind the local queue: [`Ctx`], plus the shared queue's
/// bookkeeping when there is one.
pub struct Durable {
    ctx: Arc<Ctx>,
    shared: Option<Arc<Shared>>,
}

impl Durable {
    /// Work held in this process only.
    pub fn memory(ctx: Arc<Ctx>) -> Durable {
        Durable { ctx, shared: None }
    }

    /// Work shared by replicas through `shared`.
    pub fn sqs(ctx: Arc<Ctx>, shared: Arc<Shared>) -> Durable {
        Durable {
            ctx,
            shared: Some(shared),
        }
    }

    /// Sends each woken key to the shared queue, ten to a call (a resync
    /// wakes many).
    async fn wake(shared: &Shared, jobs: &[Job]) -> Result<(), crate::aws::Error> {
        let messages: Vec<(String, String, String)> = jobs
            .iter()
            .map(|job| {
                let wish = Wish {
                    repository: shared.repository.clone(),
                    job: job.clone(),
                    intent: None,
                };
                let body = serde_json::to_string(&wish).expect("a wish serializes");
                let group = message_group(shared.repository.as_deref(), job);
                (group, fresh_id(), body)
            })
            .collect();
        shared.queue.send_all(&messages).await
    }
}

impl Reconcile for Durable {
    type Key = Job;
    type Intent = Carried;
    type Error = super::Error;

    async fn reconcile(
        &self,
        job: Job,
        carried: &[Carried],
        failures: u32,
    ) -> super::Result<Action<Job>> {
        let intents: Vec<Intent> = carried
            .iter()
            .filter_map(|item| match item {
                Carried::Intent(intent) => Some(intent.clone()),
                Carried::Message { intent, .. } => intent.clone(),
            })
            .collect();
        let Some(shared) = &self.shared else {
            return self.ctx.reconcile(job, &intents, failures).await;
        };
        if let Job::Env(key) = &job
            && carried.iter().any(|c| matches!(c, Carried::Message { .. }))
        {
            // Another replica may have run the key since this one last did:
            // its comment is read afresh rather than from this one's cache.
            self.ctx.sticky.forget(&key.slug());
        }
        let covered = shared.covered(&job, carried);
        // A panicking pass leaves its messages for the retry.
        let guard = Covered {
            shared,
            job: &job,
            covered: Some(covered.clone()),
        };
        let result = self.ctx.reconcile(job.clone(), &intents, failures).await;
        guard.disarm();
        let action = match result {
            Ok(action) => action,
            Err(err) => {
                match self.ctx.error_policy(&job, &err, failures + 1) {
                    OnError::Retry => shared.keep(&job, covered),
                    OnError::GiveUp => shared.done(&job, covered).await,
                }
                return Err(err);
            }
        };
        // Deployment outcomes wait in this process's memory, so their
        // record jobs run here; every other key woken goes to the queue.
        let (local, sent): (Vec<Job>, Vec<Job>) =
            action.wakes().iter().cloned().partition(|woken| {
                matches!(woken, Job::Record(_) | Job::Checks(_) | Job::ReleaseGates)
            });
        if let Err(err) = Durable::wake(shared, &sent).await {
            // Run again: the pass is idempotent, and the wakes are sent then.
            shared.keep(&job, covered);
            return Err(super::Error::internal(err));
        }
        let next = match action.requeue() {
            // The periodic resync is the lease holder's to schedule.
            Some(_) if job == Job::Resync => {
                shared.done(&job, covered).await;
                Action::done()
            }
            Some(delay) if delay <= HOLD_UP_TO => {
                shared.keep(&job, covered);
                Action::after(delay)
            }
            Some(delay) => {
                shared.send_later(job.clone(), delay, &self.ctx.clock);
                shared.done(&job, covered).await;
                Action::done()
            }
            None => {
                shared.done(&job, covered).await;
                Action::done()
            }
        };
        Ok(next.waking(local))
    }

    fn error_policy(&self, job: &Job, error: &super::Error, failures: u32) -> OnError {
        self.ctx.error_policy(job, error, failures)
    }
}

/// Where a received wish goes.
pub enum Inbox {
    /// To the local queue that runs its key, with that key's bookkeeping.
    Run(Arc<Shared>, Queue<Job, Carried>),
    /// No one here runs it any more: the message is deleted, saying why.
    Gone(String),
    /// Not now (its repository's config cannot be read yet): the message
    /// is left to come back once hidden no more.
    Later(String),
}

/// Where a replica's received wishes go: one repository's queue, or each
/// repository's (the hub's).
pub trait Inboxes: Send + Sync + 'static {
    /// Returns once fewer than `n` keys run here.
    fn below(&self, n: usize) -> impl Future<Output = ()> + Send;
    /// How many keys run here.
    fn busy(&self) -> usize;
    /// Where a wish for `repository` goes.
    fn inbox(&self, repository: Option<&str>) -> impl Future<Output = Inbox> + Send;
}

/// The inbox of a server of one repository.
pub struct One {
    pub shared: Arc<Shared>,
    pub local: Queue<Job, Carried>,
}

impl Inboxes for One {
    async fn below(&self, n: usize) {
        self.local.below(n).await;
    }

    fn busy(&self) -> usize {
        self.local.busy()
    }

    async fn inbox(&self, _repository: Option<&str>) -> Inbox {
        Inbox::Run(self.shared.clone(), self.local.clone())
    }
}

/// Receives messages into `local` while it has room for them, until
/// `shutdown`; keeps every held message hidden until `drained` (when the
/// local queue has finished what it runs), then hands them back. Returns
/// the two tasks.
pub fn spawn(
    shared: Arc<Shared>,
    local: Queue<Job, Carried>,
    workers: usize,
    shutdown: CancellationToken,
    drained: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let receiver = tokio::spawn(receive(
        Arc::new(One {
            shared: shared.clone(),
            local,
        }),
        shared.queue.clone(),
        (shared.lease_ttl, shared.receive_wait),
        workers,
        shutdown,
    ));
    let keeper = tokio::spawn(keep_hidden(shared, drained));
    vec![receiver, keeper]
}

/// Receives messages while the replica has room for them, until
/// `shutdown`, and hands each to its inbox. `(lease_ttl, receive_wait)`:
/// how long a received message stays hidden, and how long a receive waits.
pub async fn receive<I: Inboxes>(
    inboxes: Arc<I>,
    queue: WorkQueue,
    (lease_ttl, receive_wait): (Duration, Duration),
    workers: usize,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = inboxes.below(workers) => {}
        }
        let room = workers.saturating_sub(inboxes.busy()).max(1);
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = queue.receive(room, receive_wait, lease_ttl) => received,
        };
        let messages = match received {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(error = %err, "receiving work failed; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        if messages.is_empty() && receive_wait.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(EMPTY_PAUSE) => {}
            }
        }
        for message in messages {
            if let Some(sent) = message.sent_at {
                let waited = (Utc::now() - sent).to_std().unwrap_or_default();
                metrics::histogram!("pullstack_queue_wait_seconds").record(waited.as_secs_f64());
            }
            let wish: Wish = match serde_json::from_str(&message.body) {
                Ok(wish) => wish,
                Err(err) => {
                    // Left in flight: after a few receives SQS moves it to
                    // the dead-letter queue, where an operator can read it.
                    tracing::error!(
                        error = %err,
                        receives = message.receives,
                        "a message is not a wish pullstack can read"
                    );
                    continue;
                }
            };
            let (shared, local) = match inboxes.inbox(wish.repository.as_deref()).await {
                Inbox::Run(shared, local) => (shared, local),
                Inbox::Gone(why) => {
                    tracing::info!(
                        repo = wish.repository,
                        job = %wish.job,
                        why,
                        "a message no one here runs: deleted"
                    );
                    if let Err(err) = queue.delete(std::slice::from_ref(&message.receipt)).await {
                        tracing::warn!(error = %err, "deleting a message failed");
                    }
                    continue;
                }
                Inbox::Later(why) => {
                    // Hidden for `lease_ttl`, then received again.
                    tracing::warn!(
                        repo = wish.repository,
                        job = %wish.job,
                        why,
                        "a message cannot be run yet: it comes back"
                    );
                    continue;
                }
            };
            shared.took(&wish.job, &message.receipt, message.sent_at);
            local.push(
                wish.job,
                Some(Carried::Message {
                    receipt: message.receipt,
                    intent: wish.intent,
                }),
            );
        }
    }
}

/// Extends every held message's visibility a few times per `lease_ttl`;
/// once `drained`, makes them visible at once for the other replicas.
pub async fn keep_hidden(shared: Arc<Shared>, drained: CancellationToken) {
    let mut tick = tokio::time::interval(shared.lease_ttl / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = drained.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (receipts, oldest) = shared.receipts();
        metrics::gauge!("pullstack_queue_messages_held").set(receipts.len() as f64);
        let age = oldest.map_or(0.0, |sent| (Utc::now() - sent).as_seconds_f64().max(0.0));
        metrics::gauge!("pullstack_queue_oldest_held_seconds").set(age);
        if receipts.is_empty() {
            continue;
        }
        if let Err(err) = shared.queue.extend(&receipts, shared.lease_ttl).await {
            tracing::warn!(error = %err, "keeping held messages hidden failed");
        }
    }
    let (receipts, _) = shared.receipts();
    if !receipts.is_empty()
        && let Err(err) = shared.queue.extend(&receipts, Duration::ZERO).await
    {
        tracing::debug!(error = %err, "handing messages back failed; they return on their own");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::commands::Command;

    #[test]
    fn groups_are_the_environment_key_production_or_resync() {
        assert_eq!(group(&Job::Env(EnvKey::Pr(42))), "pr-42");
        let branch = Job::Env(EnvKey::Branch("release/ünïcode".repeat(20)));
        let branch_group = group(&branch);
        // SQS takes at most 128 characters of printable ASCII.
        assert!(branch_group.len() <= 128, "{branch_group}");
        assert!(branch_group.chars().all(|c| c.is_ascii_graphic()));
        assert_eq!(group(&Job::Production), "production");
        assert_eq!(group(&Job::Resync), "resync");
    }

    #[test]
    fn each_repository_has_groups_of_its_own_within_what_sqs_takes() {
        let pr = Job::Env(EnvKey::Pr(1));
        assert_eq!(message_group(None, &pr), "pr-1");
        assert_eq!(message_group(Some("acme/web"), &pr), "acme/web/pr-1");
        assert_ne!(
            message_group(Some("acme/web"), &pr),
            message_group(Some("acme/api"), &pr)
        );
        // GitHub allows 39-character owners and 100-character names.
        let long_a = format!("{}/{}", "o".repeat(39), "a".repeat(100));
        let long_b = format!("{}/{}", "o".repeat(39), "b".repeat(100));
        let branch = Job::Env(EnvKey::Branch("release/ünïcode".repeat(20)));
        for job in [&pr, &branch, &Job::Production, &Job::Resync] {
            let a = message_group(Some(&long_a), job);
            assert!(a.len() <= 128, "{a}");
            assert!(a.chars().all(|c| c.is_ascii_graphic()), "{a}");
            assert_ne!(a, message_group(Some(&long_b), job));
        }
        assert_ne!(
            message_group(Some(&long_a), &pr),
            message_group(Some(&long_a), &Job::Env(EnvKey::Pr(2)))
        );
    }

    #[test]
    fn a_redelivery_has_the_same_deduplication_id_and_other_jobs_do_not() {
        let pr = Job::Env(EnvKey::Pr(7));
        let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        let id = dedup_id(None, delivery, 0, &pr);
        assert_eq!(id, dedup_id(None, delivery, 0, &pr));
        assert_ne!(
            id,
            dedup_id(None, "72d3162e-cc78-11e3-81ab-4c9367dc0959", 0, &pr)
        );
        assert_ne!(id, dedup_id(None, delivery, 1, &Job::Production));
        // Another repository's job of the same delivery is another message.
        assert_ne!(
            dedup_id(Some("acme/web"), delivery, 0, &pr),
            dedup_id(Some("acme/api"), delivery, 0, &pr)
        );
        assert!(id.len() <= 128);
        assert_ne!(fresh_id(), fresh_id());
    }

    /// Bookkeeping only: nothing here reaches SQS.
    async fn shared() -> Shared {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .build();
        let sqs = crate::aws::work_queue::Sqs::new(aws_sdk_sqs::Client::from_conf(config));
        let queue = sqs.open("https://sqs.example/1/work.fifo").await.unwrap();
        Shared::new(queue, None, Duration::from_secs(30), Duration::ZERO)
    }

    fn message(receipt: &str) -> Carried {
        Carried::Message {
            receipt: receipt.to_owned(),
            intent: None,
        }
    }

    #[tokio::test]
    async fn a_run_covers_the_messages_it_carries_and_those_its_key_kept() {
        let shared = shared().await;
        let pr = Job::Env(EnvKey::Pr(1));
        shared.took(&pr, "r1", None);
        // Taken while the run starts, but carried by the next run: the run
        // that starts now must not delete it, or its intent could be lost.
        shared.took(&pr, "r2", None);
        let covered = shared.covered(&pr, &[message("r1")]);
        assert_eq!(covered, ["r1"]);
        // The run polls: r1 stays held, and the next run covers it again,
        // with what it carries, each once.
        shared.keep(&pr, covered);
        let covered = shared.covered(&pr, &[message("r2"), message("r1")]);
        assert_eq!(covered, ["r1", "r2"]);
        let (mut held, _) = shared.receipts();
        held.sort();
        assert_eq!(held, ["r1", "r2"]);
        // Another key's messages are its own.
        let other = Job::Env(EnvKey::Pr(2));
        assert!(shared.covered(&other, &[]).is_empty());
    }

    #[tokio::test]
    async fn a_run_that_never_ends_leaves_its_messages_to_the_retry() {
        let shared = shared().await;
        let pr = Job::Env(EnvKey::Pr(1));
        shared.took(&pr, "r1", None);
        let covered = shared.covered(&pr, &[message("r1")]);
        // Dropped armed, as when the pass panics.
        drop(Covered {
            shared: &shared,
            job: &pr,
            covered: Some(covered),
        });
        assert_eq!(shared.covered(&pr, &[]), ["r1"]);
    }

    #[test]
    fn a_wish_survives_the_message_body() {
        let wish = Wish {
            repository: Some("acme/web".into()),
            job: Job::Env(EnvKey::Branch("release/1.0".into())),
            intent: Some(Intent::Command {
                command: Command::Redeploy,
                sha: Some("abc".into()),
                comment: super::super::Given {
                    author: "alice".into(),
                    comment_id: 9,
                    issue: 3,
                    at: Some(chrono::Utc::now()),
                },
            }),
        };
        let body = serde_json::to_string(&wish).unwrap();
        assert_eq!(serde_json::from_str::<Wish>(&body).unwrap(), wish);
    }
}
