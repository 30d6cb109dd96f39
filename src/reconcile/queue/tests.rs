//! The queue's rules, on a recording reconciler.

use super::*;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(u32, Vec<u32>)>>,
    concurrent: AtomicUsize,
    max_concurrent: AtomicUsize,
    /// Runs of key 5 that fail before one succeeds.
    fail_first: AtomicUsize,
    /// Key 7 fails for good, and is given up after this many failures.
    give_up_after: u32,
    /// Key 40 waits to be told before it ends.
    hold: tokio::sync::Notify,
}

impl Reconcile for Recorder {
    type Key = u32;
    type Intent = u32;
    type Error = String;

    async fn reconcile(&self, key: u32, intents: &[u32], _: u32) -> Result<Action<u32>, String> {
        let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.concurrent.fetch_sub(1, Ordering::SeqCst);
        self.runs.lock().unwrap().push((key, intents.to_vec()));
        if key == 40 {
            self.hold.notified().await;
        }
        match key {
            99 => panic!("boom"),
            7 => Err("for good".into()),
            5 if self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok() =>
            {
                Err("transient".into())
            }
            // Key 1 frees a slot that 2 and 3 wait for.
            1 => Ok(Action::done().waking([2, 3])),
            _ => Ok(Action::done()),
        }
    }

    /// Keys from 1000 on run under the background cap.
    fn background(&self, key: &u32) -> bool {
        *key >= 1000
    }

    fn error_policy(&self, key: &u32, _: &String, failures: u32) -> OnError {
        if *key == 7 && failures >= self.give_up_after {
            OnError::GiveUp
        } else {
            OnError::Retry
        }
    }
}

fn limits(workers: usize) -> Limits {
    Limits {
        workers,
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
    }
}

fn started(recorder: &Arc<Recorder>, workers: usize, clock: Clock) -> Queue<u32, u32> {
    let (queue, _) = start(
        recorder.clone(),
        limits(workers),
        clock,
        CancellationToken::new(),
        Duration::ZERO,
    );
    queue
}

fn runs_of(recorder: &Recorder, key: u32) -> Vec<Vec<u32>> {
    let runs = recorder.runs.lock().unwrap();
    runs.iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, i)| i.clone())
        .collect()
}

#[tokio::test]
async fn wishes_for_a_waiting_key_coalesce_into_one_run() {
    let recorder = Arc::new(Recorder::default());
    // One worker, busy with key 0, so key 4's wishes pile up behind it.
    let queue = started(&recorder, 1, Clock::system());
    queue.push(0, None);
    for intent in [11, 12, 13] {
        queue.push(4, Some(intent));
    }
    queue.idle().await;
    assert_eq!(runs_of(&recorder, 4), vec![vec![11, 12, 13]]);
    assert_eq!(recorder.max_concurrent.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn global_cap_holds() {
    let recorder = Arc::new(Recorder::default());
    let queue = started(&recorder, 3, Clock::system());
    for key in 10..22 {
        queue.push(key, None);
    }
    queue.idle().await;
    assert_eq!(recorder.runs.lock().unwrap().len(), 12);
    assert!(recorder.max_concurrent.load(Ordering::SeqCst) <= 3);
}

#[tokio::test]
async fn failures_retry_with_their_intents_and_panics_do_not_stop_others() {
    let recorder = Arc::new(Recorder {
        fail_first: AtomicUsize::new(2),
        ..Recorder::default()
    });
    let queue = started(&recorder, 2, Clock::system());
    queue.push(99, None);
    queue.push(5, Some(50));
    // Retries wait for their backoff: wait on progress, not on a clock.
    while runs_of(&recorder, 5).len() < 3 || runs_of(&recorder, 99).len() < 2 {
        queue.idle().await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        runs_of(&recorder, 5)[..3],
        [vec![50], vec![50], vec![50]],
        "the command is kept for each retry"
    );
}

#[tokio::test]
async fn the_error_policy_can_give_up() {
    let recorder = Arc::new(Recorder {
        give_up_after: 2,
        ..Recorder::default()
    });
    let queue = started(&recorder, 1, Clock::system());
    queue.push(7, None);
    queue.quiet().await;
    assert_eq!(runs_of(&recorder, 7).len(), 2);
}

#[tokio::test]
async fn an_action_wakes_other_keys() {
    let recorder = Arc::new(Recorder::default());
    let queue = started(&recorder, 4, Clock::system());
    queue.later(2, Duration::from_secs(3600));
    queue.push(1, None);
    queue.idle().await;
    assert_eq!(runs_of(&recorder, 2).len(), 1, "woken, not left delayed");
    assert_eq!(runs_of(&recorder, 3).len(), 1);
}

#[tokio::test]
async fn deadlines_follow_the_clock() {
    let recorder = Arc::new(Recorder::default());
    let clock = Clock::manual();
    let queue = started(&recorder, 1, clock.clone());
    queue.later(6, Duration::from_secs(86_400));
    queue.idle().await;
    assert!(runs_of(&recorder, 6).is_empty());
    clock.advance(Duration::from_secs(86_400));
    queue.quiet().await;
    assert_eq!(runs_of(&recorder, 6).len(), 1);
}

#[tokio::test]
async fn background_keys_do_not_take_the_places_of_others() {
    let recorder = Arc::new(Recorder::default());
    let queue = started(&recorder, 1, Clock::system());
    // Key 40 holds the only place until released.
    queue.push(40, None);
    queue.push(1000, None);
    queue.push(1001, None);
    tokio::time::timeout(Duration::from_secs(10), async {
        while runs_of(&recorder, 1000).len() + runs_of(&recorder, 1001).len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("background keys run beside a held main place");
    assert_eq!(runs_of(&recorder, 40).len(), 1);
    recorder.hold.notify_one();
    queue.idle().await;
}
