//! The keyed work queue.
//!
//! - One reconcile per key at a time; wishes that arrive meanwhile are merged
//!   into one follow-up run, so three quick pushes cause one deploy.
//! - A global cap on reconciles running at once.
//! - A reconcile returns an [`Action`]: when to look again, and which other
//!   keys to wake (a freed preview slot wakes those waiting for one).
//! - A failed or panicking reconcile goes to the reconciler's error policy.
//!   Retries back off exponentially with jitter (`backon`), and the intents
//!   of the failed run are kept for the retry. A failure never stops the
//!   other keys.
//! - Deadlines are read on the [`Clock`], so a manual clock moves them.

use crate::clock::Clock;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// What a reconcile wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action<K> {
    requeue: Option<Duration>,
    wake: Vec<K>,
}

impl<K> Action<K> {
    /// Converged: run again only when something changes.
    pub fn done() -> Action<K> {
        Action {
            requeue: None,
            wake: Vec::new(),
        }
    }

    /// Look again after this long (polling a stack, waiting for an image).
    pub fn after(delay: Duration) -> Action<K> {
        Action {
            requeue: Some(delay),
            wake: Vec::new(),
        }
    }

    /// Also asks for these keys to run now.
    pub fn waking(mut self, keys: impl IntoIterator<Item = K>) -> Action<K> {
        self.wake.extend(keys);
        self
    }

    pub fn requeue(&self) -> Option<Duration> {
        self.requeue
    }

    pub fn wakes(&self) -> &[K] {
        &self.wake
    }
}

/// What to do after a reconcile failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Run again after a backoff delay, with the same intents.
    Retry,
    /// Drop the key until something asks for it again.
    GiveUp,
}

/// The work done for one key.
pub trait Reconcile: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static;
    /// Something an event asked for beyond "look again" (a PR command, say).
    type Intent: Clone + Send + Sync + 'static;
    type Error: Display + Send + 'static;

    /// One pass over `key`. `failures` counts the failed passes just before
    /// this one.
    fn reconcile(
        &self,
        key: Self::Key,
        intents: &[Self::Intent],
        failures: u32,
    ) -> impl Future<Output = Result<Action<Self::Key>, Self::Error>> + Send;

    /// Decides what follows a failure; `failures` includes this one.
    fn error_policy(&self, key: &Self::Key, error: &Self::Error, failures: u32) -> OnError;
}

/// Retry and cap settings.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub workers: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// How much work the queue holds, as last published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Messages the dispatcher has taken in.
    pub accepted: u64,
    pub pending: usize,
    pub running: usize,
    /// Keys waiting for a deadline (a poll, a retry, the next resync).
    pub delayed: usize,
}

enum Msg<K, I> {
    Now(K, Option<I>),
    Later(K, Duration),
}

/// A handle for adding work. Cheap to clone.
pub struct Queue<K, I> {
    tx: mpsc::UnboundedSender<Msg<K, I>>,
    sent: Arc<AtomicU64>,
    load: watch::Receiver<Load>,
}

impl<K, I> Clone for Queue<K, I> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            sent: self.sent.clone(),
            load: self.load.clone(),
        }
    }
}

impl<K, I> Queue<K, I> {
    /// Asks for `key` to be reconciled as soon as possible.
    pub fn push(&self, key: K, intent: Option<I>) {
        self.send(Msg::Now(key, intent));
    }

    /// Asks for `key` to be reconciled after `delay`, unless it runs sooner.
    pub fn later(&self, key: K, delay: Duration) {
        self.send(Msg::Later(key, delay));
    }

    fn send(&self, msg: Msg<K, I>) {
        // A closed queue means shutdown; the next start resyncs from state.
        if self.tx.send(msg).is_ok() {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Keys queued or running right now.
    pub fn busy(&self) -> usize {
        let load = *self.load.borrow();
        load.pending + load.running
    }

    /// Waits until everything pushed so far has run and nothing is queued
    /// or running; keys waiting for a deadline may remain.
    pub async fn idle(&self) {
        self.wait_for(|load| load.pending + load.running == 0).await;
    }

    /// Waits until nothing is queued, running or waiting for a deadline.
    pub async fn quiet(&self) {
        self.wait_for(|load| load.pending + load.running + load.delayed == 0)
            .await;
    }

    async fn wait_for(&self, done: impl Fn(&Load) -> bool) {
        let sent = self.sent.load(Ordering::SeqCst);
        let mut load = self.load.clone();
        // An error means the dispatcher stopped: nothing more will run.
        let _ = load
            .wait_for(|load| load.accepted >= sent && done(load))
            .await;
    }
}

/// Starts the dispatcher. It stops taking new work when `shutdown` fires and
/// gives running reconciles `grace` to finish before abandoning them, which is
/// safe because every step is idempotent.
pub fn start<R: Reconcile>(
    reconciler: Arc<R>,
    limits: Limits,
    clock: Clock,
    shutdown: CancellationToken,
    grace: Duration,
) -> (Queue<R::Key, R::Intent>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (load_tx, load) = watch::channel(Load::default());
    let dispatcher = Dispatcher {
        reconciler,
        limits,
        clock,
        rx,
        load: load_tx,
        accepted: 0,
        pending: HashMap::new(),
        order: Vec::new(),
        running: HashSet::new(),
        tasks: JoinSet::new(),
        task_keys: HashMap::new(),
        delayed: HashMap::new(),
        failures: HashMap::new(),
        kept: HashMap::new(),
    };
    let handle = tokio::spawn(dispatcher.run(shutdown, grace));
    let queue = Queue {
        tx,
        sent: Arc::default(),
        load,
    };
    (queue, handle)
}

type Outcome<R> = (
    Result<Action<<R as Reconcile>::Key>, <R as Reconcile>::Error>,
    Vec<<R as Reconcile>::Intent>,
);

struct Dispatcher<R: Reconcile> {
    reconciler: Arc<R>,
    limits: Limits,
    clock: Clock,
    rx: mpsc::UnboundedReceiver<Msg<R::Key, R::Intent>>,
    load: watch::Sender<Load>,
    accepted: u64,
    /// Keys waiting to run, with the intents merged for them.
    pending: HashMap<R::Key, Vec<R::Intent>>,
    /// Pending keys in arrival order, oldest first.
    order: Vec<R::Key>,
    running: HashSet<R::Key>,
    tasks: JoinSet<Outcome<R>>,
    task_keys: HashMap<Id, R::Key>,
    /// Keys to run again at a deadline, unless something runs them sooner.
    delayed: HashMap<R::Key, DateTime<Utc>>,
    /// Consecutive failures per key, with the backoff they have reached.
    failures: HashMap<R::Key, (u32, ExponentialBackoff)>,
    /// Intents of failed runs, handed to the retry.
    kept: HashMap<R::Key, Vec<R::Intent>>,
}

impl<R: Reconcile> Dispatcher<R> {
    async fn run(mut self, shutdown: CancellationToken, grace: Duration) {
        loop {
            self.start_ready();
            let deadline = self.delayed.values().min().copied();
            let clock = self.clock.clone();
            let due = async move {
                match deadline {
                    Some(deadline) => clock.sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.accept(msg),
                    None => break,
                },
                () = due => self.expire(),
                Some(joined) = self.tasks.join_next_with_id() => self.finish(joined),
            }
        }
        self.drain(grace).await;
    }

    fn accept(&mut self, msg: Msg<R::Key, R::Intent>) {
        self.accepted += 1;
        match msg {
            Msg::Now(key, intent) => {
                self.delayed.remove(&key);
                self.enqueue(key, intent);
            }
            Msg::Later(key, delay) => self.delay(key, delay),
        }
        self.publish();
    }

    fn enqueue(&mut self, key: R::Key, intent: Option<R::Intent>) {
        let kept = self.kept.remove(&key);
        let intents = self.pending.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            Vec::new()
        });
        // A failed run's intents go first: they were asked for earlier.
        if let Some(kept) = kept {
            intents.splice(0..0, kept);
        }
        intents.extend(intent);
    }

    fn delay(&mut self, key: R::Key, delay: Duration) {
        if self.pending.contains_key(&key) {
            return;
        }
        let deadline = self.clock.after(delay);
        // Keep the earlier deadline.
        self.delayed
            .entry(key)
            .and_modify(|at| *at = (*at).min(deadline))
            .or_insert(deadline);
    }

    /// Moves every key whose deadline has passed to the pending set.
    fn expire(&mut self) {
        let now = self.clock.now();
        let due: Vec<R::Key> = self
            .delayed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            self.delayed.remove(&key);
            self.enqueue(key, None);
        }
        self.publish();
    }

    /// Starts pending keys that are not running, oldest first, up to the cap.
    fn start_ready(&mut self) {
        let mut index = 0;
        while index < self.order.len() && self.running.len() < self.limits.workers {
            let key = &self.order[index];
            if self.running.contains(key) {
                index += 1;
                continue;
            }
            let key = self.order.remove(index);
            let intents = self.pending.remove(&key).unwrap_or_default();
            let failures = self.failures.get(&key).map_or(0, |(n, _)| *n);
            let reconciler = self.reconciler.clone();
            let task_key = key.clone();
            let handle = self.tasks.spawn(async move {
                let result = reconciler.reconcile(task_key, &intents, failures).await;
                (result, intents)
            });
            self.task_keys.insert(handle.id(), key.clone());
            self.running.insert(key);
        }
        self.publish();
    }

    fn finish(&mut self, joined: Result<(Id, Outcome<R>), tokio::task::JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, (result, intents))) => {
                (id, result.map_err(|e| (e.to_string(), Some(e), intents)))
            }
            Err(err) => {
                let what = if err.is_panic() {
                    "reconcile panicked"
                } else {
                    "reconcile was cancelled"
                };
                (err.id(), Err((what.to_owned(), None, Vec::new())))
            }
        };
        let Some(key) = self.task_keys.remove(&id) else {
            return;
        };
        self.running.remove(&key);
        match outcome {
            Ok(action) => {
                self.failures.remove(&key);
                metrics::counter!("pullstack_reconciles_total", "outcome" => "ok").increment(1);
                for woken in action.wake {
                    self.delayed.remove(&woken);
                    self.enqueue(woken, None);
                }
                if let Some(delay) = action.requeue {
                    self.delay(key, delay);
                }
            }
            Err((message, error, intents)) => self.failed(key, &message, error, intents),
        }
        self.publish();
    }

    fn failed(
        &mut self,
        key: R::Key,
        message: &str,
        error: Option<R::Error>,
        intents: Vec<R::Intent>,
    ) {
        metrics::counter!("pullstack_reconciles_total", "outcome" => "error").increment(1);
        let limits = self.limits;
        let (failures, backoff) = self.failures.entry(key.clone()).or_insert_with(|| {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(limits.retry_initial)
                .with_max_delay(limits.retry_max)
                .with_jitter()
                .without_max_times()
                .build();
            (0, backoff)
        });
        *failures += 1;
        let failures = *failures;
        let policy = match &error {
            Some(error) => self.reconciler.error_policy(&key, error, failures),
            None => OnError::Retry,
        };
        if policy == OnError::GiveUp {
            tracing::warn!(key = ?key, failures, error = message, "reconcile failed; not retried");
            self.failures.remove(&key);
            return;
        }
        let delay = backoff.next().unwrap_or(limits.retry_max);
        tracing::warn!(
            key = ?key,
            failures,
            retry_in = ?delay,
            error = message,
            "reconcile failed; will retry"
        );
        if !intents.is_empty() {
            self.kept.entry(key.clone()).or_default().extend(intents);
        }
        self.delay(key, delay);
    }

    fn publish(&self) {
        let load = Load {
            accepted: self.accepted,
            pending: self.pending.len(),
            running: self.running.len(),
            delayed: self.delayed.len(),
        };
        self.load.send_replace(load);
        metrics::gauge!("pullstack_queue_pending").set(load.pending as f64);
        metrics::gauge!("pullstack_queue_running").set(load.running as f64);
    }

    async fn drain(mut self, grace: Duration) {
        if self.tasks.is_empty() {
            return;
        }
        tracing::info!(running = self.tasks.len(), "waiting for running reconciles");
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!("abandoning reconciles still running; the next start resumes them");
            self.tasks.abort_all();
        }
    }
}

#[cfg(test)]
mod tests;
