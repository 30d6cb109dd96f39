//! The dispatcher behind a [`Queue`](super::Queue): takes wishes in, runs
//! each key once at a time under the global cap, and keeps deadlines,
//! failures and the intents a failed run must retry with.

use super::{Action, Limits, Load, Msg, OnError, Reconcile};
use crate::clock::Clock;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

type Outcome<R> = (
    Result<Action<<R as Reconcile>::Key>, <R as Reconcile>::Error>,
    Vec<<R as Reconcile>::Intent>,
);

pub(super) struct Dispatcher<R: Reconcile> {
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
    pub(super) fn new(
        reconciler: Arc<R>,
        limits: Limits,
        clock: Clock,
        rx: mpsc::UnboundedReceiver<Msg<R::Key, R::Intent>>,
        load: watch::Sender<Load>,
    ) -> Dispatcher<R> {
        Dispatcher {
            reconciler,
            limits,
            clock,
            rx,
            load,
            accepted: 0,
            pending: HashMap::new(),
            order: Vec::new(),
            running: HashSet::new(),
            tasks: JoinSet::new(),
            task_keys: HashMap::new(),
            delayed: HashMap::new(),
            failures: HashMap::new(),
            kept: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken, grace: Duration) {
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

    /// Starts pending keys that are not running, oldest first, up to the
    /// cap of their kind (main or background).
    fn start_ready(&mut self) {
        let background = |key: &R::Key| self.reconciler.background(key);
        let behind = self.running.iter().filter(|k| background(k)).count();
        let mut running = [self.running.len() - behind, behind];
        let mut index = 0;
        while index < self.order.len() && running.iter().any(|n| *n < self.limits.workers) {
            let key = &self.order[index];
            let kind = usize::from(self.reconciler.background(key));
            if self.running.contains(key) || running[kind] >= self.limits.workers {
                index += 1;
                continue;
            }
            running[kind] += 1;
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
                match action.requeue {
                    // At once: still part of the work in hand, so the queue
                    // is not idle before it ran.
                    Some(Duration::ZERO) => self.enqueue(key, None),
                    Some(delay) => self.delay(key, delay),
                    None => {}
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
