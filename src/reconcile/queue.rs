//! The keyed work queue.
//!
//! - One reconcile per key at a time; wishes that arrive meanwhile are merged
//!   into one follow-up run, so three quick pushes cause one deploy.
//! - A global cap on reconciles running at once, and one of the same size
//!   for background keys (work that mostly waits on someone else's pace),
//!   so they never hold a place the others need.
//! - A reconcile returns an [`Action`]: when to look again, and which other
//!   keys to wake (a freed preview slot wakes those waiting for one).
//! - A failed or panicking reconcile goes to the reconciler's error policy.
//!   Retries back off exponentially with jitter (`backon`), and the intents
//!   of the failed run are kept for the retry. A failure never stops the
//!   other keys.
//! - Deadlines are read on the [`Clock`], so a manual clock moves them.

use crate::clock::Clock;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
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

    /// Look again after this long (polling a stack, waiting for an image);
    /// zero looks again at once, before the queue counts as idle.
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

    /// Whether `key` runs under the background cap rather than the main one.
    fn background(&self, _key: &Self::Key) -> bool {
        false
    }
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

    /// Waits until fewer than `n` keys are queued or running.
    pub async fn below(&self, n: usize) {
        let mut load = self.load.clone();
        if load
            .wait_for(|load| load.pending + load.running < n)
            .await
            .is_err()
        {
            // The dispatcher stopped: there will never be room.
            std::future::pending::<()>().await;
        }
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
    let dispatcher = dispatcher::Dispatcher::new(reconciler, limits, clock, rx, load_tx);
    let handle = tokio::spawn(dispatcher.run(shutdown, grace));
    let queue = Queue {
        tx,
        sent: Arc::default(),
        load,
    };
    (queue, handle)
}

mod dispatcher;

#[cfg(test)]
mod tests;
