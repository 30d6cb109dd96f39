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

/// The body of a message: a job and what its event asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wish {
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
    }
}

/// The deduplication id of the `index`th job of a delivery: the same for a
/// redelivery, so SQS drops it.
pub fn dedup_id(delivery: &str, index: usize, job: &Job) -> String {
    let mut hash = Sha256::new();
    hash.update(delivery.as_bytes());
    hash.update(format!("\n{index}\n{}", group(job)).as_bytes());
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
    queue.send(&group(&wish.job), dedup, &body).await
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
    /// How long a held message stays hidden without being extended.
    pub lease_ttl: Duration,
    /// How long a receive waits for a message.
    pub receive_wait: Duration,
    holding: Mutex<Holding>,
    /// Sends due later, one per key.
    timers: Mutex<HashMap<Job, JoinHandle<()>>>,
}

impl Shared {
    pub fn new(queue: WorkQueue, lease_ttl: Duration, receive_wait: Duration) -> Shared {
        Shared {
            queue,
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
                    job: job.clone(),
                    intent: None,
                };
                let body = serde_json::to_string(&wish).expect("a wish serializes");
                (group(job), fresh_id(), body)
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
        let (local, sent): (Vec<Job>, Vec<Job>) = action
            .wakes()
            .iter()
            .cloned()
            .partition(|woken| matches!(woken, Job::Record(_) | Job::Checks(_)));
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
    let receiver = tokio::spawn(receive(shared.clone(), local.clone(), workers, shutdown));
    let keeper = tokio::spawn(keep_hidden(shared, drained));
    vec![receiver, keeper]
}

async fn receive(
    shared: Arc<Shared>,
    local: Queue<Job, Carried>,
    workers: usize,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = local.below(workers) => {}
        }
        let room = workers.saturating_sub(local.busy()).max(1);
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = shared.queue.receive(room, shared.receive_wait, shared.lease_ttl) => received,
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
        if messages.is_empty() && shared.receive_wait.is_zero() {
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
async fn keep_hidden(shared: Arc<Shared>, drained: CancellationToken) {
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
    fn a_redelivery_has_the_same_deduplication_id_and_other_jobs_do_not() {
        let pr = Job::Env(EnvKey::Pr(7));
        let id = dedup_id("72d3162e-cc78-11e3-81ab-4c9367dc0958", 0, &pr);
        assert_eq!(id, dedup_id("72d3162e-cc78-11e3-81ab-4c9367dc0958", 0, &pr));
        assert_ne!(id, dedup_id("72d3162e-cc78-11e3-81ab-4c9367dc0959", 0, &pr));
        assert_ne!(
            id,
            dedup_id("72d3162e-cc78-11e3-81ab-4c9367dc0958", 1, &Job::Production)
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
        Shared::new(queue, Duration::from_secs(30), Duration::ZERO)
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
