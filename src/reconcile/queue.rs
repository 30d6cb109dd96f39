//! The keyed work queue.
//!
//! - One reconcile per key at a time; wishes that arrive meanwhile are merged
//!   into one follow-up run, so three quick pushes cause one deploy.
//! - A global cap on reconciles running at once.
//! - A failed or panicking reconcile is retried with exponential backoff and
//!   full jitter; it never stops the others.
//! - A reconcile that waits on something (a stack in progress, an image not
//!   pushed yet) asks to run again later instead of holding a worker.

use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a reconcile wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Converged: run again only when something changes.
    Done,
    /// Look again after this long (polling a stack, waiting for an image).
    After(Duration),
}

/// The work done for one key.
pub trait Reconcile: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static;
    /// Something an event asked for beyond "look again" (a PR command, say).
    type Intent: Send + 'static;

    fn reconcile(
        &self,
        key: Self::Key,
        intents: Vec<Self::Intent>,
    ) -> impl Future<Output = anyhow::Result<Next>> + Send;
}

/// Retry and cap settings.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub workers: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

enum Msg<K, I> {
    Now(K, Option<I>),
    Later(K, Duration),
}

/// A handle for adding work. Cheap to clone.
pub struct Queue<K, I> {
    tx: mpsc::UnboundedSender<Msg<K, I>>,
    busy: watch::Receiver<usize>,
}

impl<K, I> Clone for Queue<K, I> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            busy: self.busy.clone(),
        }
    }
}

impl<K, I> Queue<K, I> {
    /// Asks for `key` to be reconciled as soon as possible.
    pub fn push(&self, key: K, intent: Option<I>) {
        // A closed queue means shutdown; the next start resyncs from state.
        let _ = self.tx.send(Msg::Now(key, intent));
    }

    /// Asks for `key` to be reconciled after `delay`, unless it runs sooner.
    pub fn later(&self, key: K, delay: Duration) {
        let _ = self.tx.send(Msg::Later(key, delay));
    }

    /// Keys queued or running right now.
    pub fn busy(&self) -> usize {
        *self.busy.borrow()
    }
}

/// Starts the dispatcher. It stops taking new work when `shutdown` fires and
/// gives running reconciles `grace` to finish before abandoning them, which is
/// safe because every step is idempotent.
pub fn start<R: Reconcile>(
    reconciler: Arc<R>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> (Queue<R::Key, R::Intent>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (busy_tx, busy) = watch::channel(0);
    let dispatcher = Dispatcher {
        reconciler,
        limits,
        rx,
        busy: busy_tx,
        pending: HashMap::new(),
        order: Vec::new(),
        running: HashSet::new(),
        tasks: JoinSet::new(),
        task_keys: HashMap::new(),
        delayed: HashMap::new(),
        failures: HashMap::new(),
    };
    let handle = tokio::spawn(dispatcher.run(shutdown, grace));
    (Queue { tx, busy }, handle)
}

struct Dispatcher<R: Reconcile> {
    reconciler: Arc<R>,
    limits: Limits,
    rx: mpsc::UnboundedReceiver<Msg<R::Key, R::Intent>>,
    busy: watch::Sender<usize>,
    /// Keys waiting to run, with the intents merged for them.
    pending: HashMap<R::Key, Vec<R::Intent>>,
    /// Pending keys in arrival order, oldest first.
    order: Vec<R::Key>,
    running: HashSet<R::Key>,
    tasks: JoinSet<anyhow::Result<Next>>,
    task_keys: HashMap<Id, R::Key>,
    /// Keys to run again at a deadline, unless something runs them sooner.
    delayed: HashMap<R::Key, Instant>,
    /// Consecutive failures per key, for backoff.
    failures: HashMap<R::Key, u32>,
}

impl<R: Reconcile> Dispatcher<R> {
    async fn run(mut self, shutdown: CancellationToken, grace: Duration) {
        loop {
            self.start_ready();
            let deadline = self.next_deadline();
            let has_delayed = !self.delayed.is_empty();
            tokio::select! {
                () = shutdown.cancelled() => break,
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.accept(msg),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline), if has_delayed => {
                    self.expire();
                }
                Some(joined) = self.tasks.join_next_with_id() => self.finish(joined),
            }
        }
        self.drain(grace).await;
    }

    fn accept(&mut self, msg: Msg<R::Key, R::Intent>) {
        match msg {
            Msg::Now(key, intent) => {
                self.delayed.remove(&key);
                self.enqueue(key, intent);
            }
            Msg::Later(key, delay) => self.delay(key, delay),
        }
    }

    fn enqueue(&mut self, key: R::Key, intent: Option<R::Intent>) {
        let intents = self.pending.entry(key.clone()).or_insert_with(|| {
            self.order.push(key);
            Vec::new()
        });
        intents.extend(intent);
        self.publish();
    }

    fn delay(&mut self, key: R::Key, delay: Duration) {
        if self.pending.contains_key(&key) {
            return;
        }
        let deadline = Instant::now() + delay;
        // Keep the earlier deadline.
        self.delayed
            .entry(key)
            .and_modify(|at| *at = (*at).min(deadline))
            .or_insert(deadline);
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        self.delayed.values().copied().min().unwrap_or(far)
    }

    /// Moves every key whose deadline has passed to the pending set.
    fn expire(&mut self) {
        let now = Instant::now();
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
            let reconciler = self.reconciler.clone();
            let task_key = key.clone();
            let handle = self
                .tasks
                .spawn(async move { reconciler.reconcile(task_key, intents).await });
            self.task_keys.insert(handle.id(), key.clone());
            self.running.insert(key);
        }
        self.publish();
    }

    fn finish(&mut self, joined: Result<(Id, anyhow::Result<Next>), tokio::task::JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, result)) => (id, result),
            Err(err) => {
                let outcome = Err(anyhow::anyhow!(if err.is_panic() {
                    "reconcile panicked"
                } else {
                    "reconcile was cancelled"
                }));
                (err.id(), outcome)
            }
        };
        let Some(key) = self.task_keys.remove(&id) else {
            return;
        };
        self.running.remove(&key);
        match outcome {
            Ok(next) => {
                self.failures.remove(&key);
                metrics::counter!("pullstack_reconciles_total", "outcome" => "ok").increment(1);
                if let Next::After(delay) = next {
                    self.delay(key, delay);
                }
            }
            Err(err) => {
                let attempt = self.failures.entry(key.clone()).or_insert(0);
                *attempt += 1;
                let delay = backoff(*attempt, self.limits.retry_initial, self.limits.retry_max);
                metrics::counter!("pullstack_reconciles_total", "outcome" => "error").increment(1);
                tracing::warn!(
                    key = ?key,
                    attempt = *attempt,
                    retry_in = ?delay,
                    error = format!("{err:#}"),
                    "reconcile failed; will retry"
                );
                self.delay(key, delay);
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let busy = self.pending.len() + self.running.len();
        self.busy.send_replace(busy);
        metrics::gauge!("pullstack_queue_pending").set(self.pending.len() as f64);
        metrics::gauge!("pullstack_queue_running").set(self.running.len() as f64);
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

/// A queue that no dispatcher serves: what is pushed waits in the [`Inbox`]
/// for the caller to run, for one-shot runs outside the server.
pub fn inbox<K, I>() -> (Queue<K, I>, Inbox<K, I>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (_, busy) = watch::channel(0);
    (Queue { tx, busy }, Inbox { rx })
}

/// The receiving end of [`inbox`].
pub struct Inbox<K, I> {
    rx: mpsc::UnboundedReceiver<Msg<K, I>>,
}

impl<K: Eq + Hash, I> Inbox<K, I> {
    /// Everything pushed so far, each key once with its intents merged, in
    /// the order first asked for; a wish for later counts as one for now.
    pub fn take(&mut self) -> Vec<(K, Vec<I>)> {
        let mut taken: Vec<(K, Vec<I>)> = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            let (key, intent) = match msg {
                Msg::Now(key, intent) => (key, intent),
                Msg::Later(key, _) => (key, None),
            };
            match taken.iter_mut().find(|(k, _)| *k == key) {
                Some((_, intents)) => intents.extend(intent),
                None => taken.push((key, intent.into_iter().collect())),
            }
        }
        taken
    }
}

/// Full-jitter exponential backoff: a random delay up to
/// `initial * 2^(attempt-1)`, capped at `max`, and never under `initial / 2`.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(max);
    let floor = (initial / 2).min(ceiling);
    let spread = ceiling.saturating_sub(floor);
    floor + spread.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Recorder {
        runs: Mutex<Vec<(u32, Vec<u32>)>>,
        concurrent: AtomicUsize,
        max_concurrent: AtomicUsize,
        fail_first: AtomicUsize,
    }

    impl Reconcile for Recorder {
        type Key = u32;
        type Intent = u32;

        async fn reconcile(&self, key: u32, intents: Vec<u32>) -> anyhow::Result<Next> {
            let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_concurrent.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.concurrent.fetch_sub(1, Ordering::SeqCst);
            self.runs.lock().unwrap().push((key, intents));
            if key == 99 {
                panic!("boom");
            }
            if self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                anyhow::bail!("transient");
            }
            Ok(Next::Done)
        }
    }

    fn limits(workers: usize) -> Limits {
        Limits {
            workers,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(50),
        }
    }

    async fn settle<K, I>(queue: &Queue<K, I>) {
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if queue.busy() == 0 {
                return;
            }
        }
        panic!("queue did not settle");
    }

    #[tokio::test]
    async fn wishes_for_a_running_key_coalesce_into_one_run() {
        let recorder = Arc::new(Recorder::default());
        let (queue, _) = start(
            recorder.clone(),
            limits(4),
            CancellationToken::new(),
            Duration::ZERO,
        );
        queue.push(1, Some(10));
        tokio::time::sleep(Duration::from_millis(5)).await;
        for intent in [11, 12, 13] {
            queue.push(1, Some(intent));
        }
        settle(&queue).await;
        let runs = recorder.runs.lock().unwrap().clone();
        assert_eq!(runs, vec![(1, vec![10]), (1, vec![11, 12, 13])]);
        assert_eq!(recorder.max_concurrent.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn global_cap_holds() {
        let recorder = Arc::new(Recorder::default());
        let (queue, _) = start(
            recorder.clone(),
            limits(3),
            CancellationToken::new(),
            Duration::ZERO,
        );
        for key in 0..12 {
            queue.push(key, None);
        }
        settle(&queue).await;
        assert_eq!(recorder.runs.lock().unwrap().len(), 12);
        assert_eq!(recorder.max_concurrent.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn failures_retry_and_panics_do_not_stop_others() {
        let recorder = Arc::new(Recorder {
            fail_first: AtomicUsize::new(2),
            ..Recorder::default()
        });
        let (queue, _) = start(
            recorder.clone(),
            limits(2),
            CancellationToken::new(),
            Duration::ZERO,
        );
        queue.push(99, None);
        queue.push(5, None);
        // A panic's backtrace can take a while to print: wait on progress, not a clock.
        let count = |key: u32| {
            recorder
                .runs
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k == key)
                .count()
        };
        for _ in 0..1000 {
            if count(5) >= 3 && count(99) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let runs = recorder.runs.lock().unwrap().clone();
        let fives = runs.iter().filter(|(k, _)| *k == 5).count();
        assert_eq!(fives, 3, "two failures then success: {runs:?}");
        assert!(
            runs.iter().filter(|(k, _)| *k == 99).count() >= 2,
            "panicking key is retried"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..40 {
            let d = backoff(attempt, initial, max);
            assert!(
                d >= Duration::from_millis(500) && d <= max,
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(1, initial, max) <= initial);
    }
}
