//! GitHub's limits, kept for the whole client rather than per request.
//! GitHub counts them per installation, so a server of many repositories
//! keeps one [`Limits`] per App installation, shared by its repositories'
//! clients (`reconcile/hub.rs`).
//!
//! - **Writes** (content-creating requests): at most the configured number
//!   reaches GitHub in any 60 s window. A small burst goes at once and the
//!   rest are spaced; a process starts with none in hand, so a restart
//!   cannot add a second burst to the writes of the process before it.
//! - **Turns.** Writes waiting for their turn go by [`Priority`]: what a
//!   person reads (the sticky comment) before bookkeeping (Deployments and
//!   commit statuses), then in the order they asked.
//! - **Pauses.** When GitHub says to wait (`Retry-After` on a 403 or 429,
//!   or `X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`), every
//!   request of every worker, reads and writes, waits until then.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::header::HeaderMap;
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The window GitHub's secondary limit on content-creating requests counts in.
const WINDOW: Duration = Duration::from_secs(60);

/// Added to the window the pacer spreads writes over, for requests that
/// reach GitHub later than they left: N + 1 writes span at least 60.5 s, so
/// no 60 s window at GitHub holds more than N while their delays on the way
/// differ by less than half a second.
const WINDOW_MARGIN: Duration = Duration::from_millis(500);

/// How long to wait after a secondary rate limit that does not say: GitHub
/// asks for at least a minute.
pub const SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// The longest pause taken from GitHub's headers: the primary limit
/// resets hourly, so anything later is a clock out of step.
const LONGEST_PAUSE: Duration = Duration::from_secs(3600);

/// A rate limiter for writes on `clock`.
pub type Pacer<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A pacer that lets `per_minute` writes through in any 60 s window.
///
/// A few writes (an eighth, at least one) may go at once, so a lone PR's
/// comment never waits; the rest are spaced over 60.5 s so that the burst
/// plus a minute's refill stays within `per_minute`. A pacer starts with
/// nothing in hand (the writes of a process just before this one may still
/// be in the window), and the burst refills at the spaced rate.
pub fn pacer<C: Clock>(per_minute: NonZeroU32, clock: C) -> Pacer<C> {
    let burst = (per_minute.get() / 8).max(1);
    // `burst` at once, then one per period: at most burst + (spaced - 1)
    // = per_minute in any 60 s, as 60 s holds fewer than `spaced` periods.
    let spaced = per_minute.get() - burst + 1;
    let period = (WINDOW + WINDOW_MARGIN) / spaced;
    let quota = Quota::with_period(period)
        .expect("60.5 s / u32 is never zero")
        .allow_burst(NonZeroU32::new(burst).expect("max(1) is non-zero"));
    let pacer = RateLimiter::direct_with_clock(quota, clock);
    // Start empty: take every cell a fresh limiter holds.
    for _ in 0..burst {
        let _ = pacer.check();
    }
    pacer
}

/// One of `processes`' even share of `per_minute` writes, rounded down
/// (so together they stay within it), and at least one.
fn share_of(per_minute: NonZeroU32, processes: u32) -> NonZeroU32 {
    NonZeroU32::new(per_minute.get() / processes.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// The pause GitHub asks for in a response's headers, if any.
///
/// `Retry-After` counts on a 403 or 429 (a secondary limit);
/// `X-RateLimit-Remaining: 0` on any response means the next request
/// would be refused until `X-RateLimit-Reset` (epoch seconds; `now` is the
/// current epoch second).
pub fn pause_from(status: u16, headers: &HeaderMap, now: i64) -> Option<Duration> {
    let number =
        |name: &str| -> Option<i64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let retry_after = matches!(status, 403 | 429)
        .then(|| number("retry-after"))
        .flatten()
        .map(|secs| Duration::from_secs(secs.max(0).unsigned_abs()));
    let reset = (number("x-ratelimit-remaining") == Some(0))
        .then(|| number("x-ratelimit-reset"))
        .flatten()
        // At least a second: a reset in the past is a clock out of step.
        .map(|reset| Duration::from_secs((reset - now).max(1).unsigned_abs()));
    retry_after.max(reset).map(|pause| pause.min(LONGEST_PAUSE))
}

/// Which of the writes waiting for a turn goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// What a person reads: the sticky comment, replies and reactions.
    Shown,
    /// What a person rarely waits on: Deployments and commit statuses.
    Record,
}

/// The pacer and the pause, shared by every clone of the client.
pub struct Limits {
    /// Writes a minute for the whole service.
    per_minute: NonZeroU32,
    /// How many processes share them, and the pacer of this one's share.
    writes: RwLock<(u32, Arc<Pacer<DefaultClock>>)>,
    /// No request leaves before this.
    not_before: Mutex<Option<Instant>>,
    /// Writes waiting for a turn, first in line first.
    line: Mutex<Line>,
    /// Told when the line changes: a write left it, or joined ahead.
    moved: Notify,
}

#[derive(Default)]
struct Line {
    waiting: BTreeSet<Place>,
    asked: u64,
}

/// A write's place in line: by priority, then by when it asked.
type Place = (Priority, u64);

/// Leaves the line when the write leaves, or gives up waiting.
struct InLine<'a> {
    limits: &'a Limits,
    place: Place,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let mut line = self.limits.line.lock().expect("line lock");
        line.waiting.remove(&self.place);
        drop(line);
        self.limits.moved.notify_waiters();
    }
}

impl Limits {
    pub fn new(writes_per_minute: u32) -> Limits {
        let per_minute = NonZeroU32::new(writes_per_minute.max(1)).expect("max(1) is non-zero");
        Limits {
            per_minute,
            writes: RwLock::new((1, Arc::new(pacer(per_minute, DefaultClock::default())))),
            not_before: Mutex::new(None),
            line: Mutex::default(),
            moved: Notify::new(),
        }
    }

    /// From now on, `processes` (at least one) share the writes a minute,
    /// evenly: this one paces its share. A new share starts with nothing
    /// in hand, as a new process does.
    pub fn share(&self, processes: u32) {
        let processes = processes.max(1);
        {
            let mut writes = self.writes.write().expect("writes lock");
            if writes.0 == processes {
                return;
            }
            let share = share_of(self.per_minute, processes);
            *writes = (processes, Arc::new(pacer(share, DefaultClock::default())));
        }
        let share = self.per_minute();
        tracing::info!(
            processes,
            "GitHub writes shared by {processes}: {share} a minute here"
        );
        metrics::gauge!("pullstack_github_writes_per_minute").set(f64::from(share));
    }

    /// This process's writes a minute: its share of the configured ones.
    pub fn per_minute(&self) -> u32 {
        share_of(self.per_minute, self.writes.read().expect("writes lock").0).get()
    }

    /// Waits until a request may leave: after any pause, and for a write
    /// (`Some` priority), its turn. A turn goes to the first write in line;
    /// one that joins ahead takes the next turn. A write whose turn came
    /// during a pause waits for a new turn after it, so writes held back
    /// do not leave together.
    pub async fn ready(&self, write: Option<Priority>) {
        let Some(priority) = write else {
            self.pause_over().await;
            return;
        };
        let place = {
            let mut line = self.line.lock().expect("line lock");
            line.asked += 1;
            let place = (priority, line.asked);
            line.waiting.insert(place);
            place
        };
        let _in_line = InLine {
            limits: self,
            place,
        };
        // Whoever waited first in line now waits behind this write.
        self.moved.notify_waiters();
        loop {
            self.pause_over().await;
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let first = self.line.lock().expect("line lock").waiting.first() == Some(&place);
            if !first {
                moved.await;
                continue;
            }
            let writes = self.writes.read().expect("writes lock").1.clone();
            match writes.check() {
                Ok(()) if self.paused_until().is_none() => return,
                Ok(()) => {}
                Err(not_until) => {
                    let wait = not_until.wait_time_from(writes.clock().now());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = moved => {}
                    }
                }
            }
        }
    }

    /// Reads GitHub's answer for a pause and holds every request until it
    /// ends. Returns whether the answer asked for one.
    pub fn observe(&self, status: u16, headers: &HeaderMap) -> bool {
        match pause_from(status, headers, chrono::Utc::now().timestamp()) {
            Some(pause) => {
                self.pause(pause);
                true
            }
            None => false,
        }
    }

    /// Holds every request for `pause` (or longer, if already paused).
    pub fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut not_before = self.not_before.lock().expect("pause lock");
        if not_before.is_none_or(|current| current < until) {
            tracing::warn!(
                pause_secs = pause.as_secs_f64(),
                "GitHub asked to wait: every GitHub request waits"
            );
            metrics::counter!("pullstack_github_pauses_total").increment(1);
            *not_before = Some(until);
        }
    }

    /// The end of the pause in force, if any.
    fn paused_until(&self) -> Option<Instant> {
        let not_before = *self.not_before.lock().expect("pause lock");
        not_before.filter(|until| *until > Instant::now())
    }

    async fn pause_over(&self) {
        while let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_counts_on_a_403_or_429() {
        let h = headers(&[("retry-after", "3")]);
        assert_eq!(pause_from(403, &h, 0), Some(Duration::from_secs(3)));
        assert_eq!(pause_from(429, &h, 0), Some(Duration::from_secs(3)));
        assert_eq!(pause_from(200, &h, 0), None);
        assert_eq!(pause_from(403, &headers(&[]), 0), None);
    }

    #[test]
    fn an_exhausted_limit_waits_for_its_reset() {
        let now = 1_700_000_000;
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(now + 42).to_string()),
        ]);
        assert_eq!(pause_from(403, &h, now), Some(Duration::from_secs(42)));
        // A success that spent the last request: the next one would fail.
        assert_eq!(pause_from(200, &h, now), Some(Duration::from_secs(42)));
        let left = headers(&[
            ("x-ratelimit-remaining", "12"),
            ("x-ratelimit-reset", &(now + 42).to_string()),
        ]);
        assert_eq!(pause_from(403, &left, now), None);
        // A reset already past (clocks out of step) still waits a moment;
        // one far ahead waits an hour at most.
        let past = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(now - 5).to_string()),
        ]);
        assert_eq!(pause_from(200, &past, now), Some(Duration::from_secs(1)));
        let far = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(now + 86_400).to_string()),
        ]);
        assert_eq!(pause_from(200, &far, now), Some(LONGEST_PAUSE));
    }

    #[test]
    fn the_longer_of_both_counts() {
        let now = 100;
        let h = headers(&[
            ("retry-after", "30"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "110"),
        ]);
        assert_eq!(pause_from(429, &h, now), Some(Duration::from_secs(30)));
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_and_a_shorter_one_does_not_shorten_it() {
        let limits = std::sync::Arc::new(Limits::new(80));
        let start = Instant::now();
        let pause = Duration::from_millis(300);
        limits.pause(pause);
        limits.pause(Duration::from_millis(10));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move {
                    limits.ready(None).await;
                    Instant::now()
                })
            })
            .collect();
        for reader in readers {
            let left = reader.await.unwrap();
            assert!(left - start >= pause, "{:?}", left - start);
        }
        assert_eq!(limits.paused_until(), None, "the pause is over");
    }

    #[tokio::test]
    async fn what_a_person_reads_takes_the_next_turn() {
        // Attack: a PR's comment waits behind other PRs' Deployments, so
        // "Ready" reaches GitHub long after the stack was.
        let limits = std::sync::Arc::new(Limits::new(240));
        let (left, mut order) = tokio::sync::mpsc::unbounded_channel();
        let write = |name: &'static str, priority| {
            let (limits, left) = (limits.clone(), left.clone());
            tokio::spawn(async move {
                limits.ready(Some(priority)).await;
                left.send(name).unwrap();
            })
        };
        // Both bookkeeping writes are in line before the comments ask; the
        // first turn comes a quarter of a second after the start.
        let first = write("deployment", Priority::Record);
        let second = write("status", Priority::Record);
        tokio::task::yield_now().await;
        let shown = [
            write("comment 1", Priority::Shown),
            write("comment 2", Priority::Shown),
        ];
        for task in [first, second].into_iter().chain(shown) {
            task.await.unwrap();
        }
        let mut went = Vec::new();
        while let Ok(name) = order.try_recv() {
            went.push(name);
        }
        assert_eq!(went, ["comment 1", "comment 2", "deployment", "status"]);
    }

    #[tokio::test]
    async fn a_write_that_stops_waiting_leaves_the_line() {
        let limits = std::sync::Arc::new(Limits::new(240));
        let gone = tokio::time::timeout(
            Duration::from_millis(10),
            limits.ready(Some(Priority::Shown)),
        )
        .await;
        assert!(gone.is_err(), "no turn is free at start");
        // The write behind it is not stuck behind a place nobody holds.
        tokio::time::timeout(Duration::from_secs(5), limits.ready(Some(Priority::Record)))
            .await
            .expect("the next write gets its turn");
    }

    /// Processes of pullstack, one after another, writing through their
    /// own pacers on one fake clock (nanoseconds).
    struct Run {
        per_minute: NonZeroU32,
        clock: FakeRelativeClock,
        process: Pacer<FakeRelativeClock>,
        restarts: std::collections::VecDeque<u64>,
    }

    impl Run {
        fn now(&self) -> u64 {
            self.clock.now().as_u64()
        }

        /// Moves time to `to`, starting a new process (a new pacer) at each
        /// restart on the way.
        fn advance_to(&mut self, to: u64) {
            while let Some(&restart) = self.restarts.front().filter(|r| **r <= to) {
                self.restarts.pop_front();
                let now = self.now();
                self.clock
                    .advance(Duration::from_nanos(restart.saturating_sub(now)));
                self.process = pacer(self.per_minute, self.clock.clone());
            }
            let now = self.now();
            self.clock
                .advance(Duration::from_nanos(to.saturating_sub(now)));
        }
    }

    /// When writes asked for at `asks` (ms from the start, sorted) leave,
    /// in ms, with a new process at each of `restarts` (ms, sorted). A
    /// write still waiting at a restart is asked for again by the next
    /// process, as a resync would.
    fn leave_times(per_minute: u32, asks: &[u64], restarts: &[u64]) -> Vec<u64> {
        let per_minute = NonZeroU32::new(per_minute).unwrap();
        let clock = FakeRelativeClock::default();
        let mut run = Run {
            per_minute,
            process: pacer(per_minute, clock.clone()),
            clock,
            restarts: restarts.iter().map(|ms| ms * 1_000_000).collect(),
        };
        let mut left = Vec::new();
        for &ask in asks {
            run.advance_to(ask * 1_000_000);
            loop {
                match run.process.check() {
                    Ok(()) => {
                        left.push(run.now() / 1_000_000);
                        break;
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(run.clock.now());
                        run.advance_to(run.now() + wait.as_nanos() as u64);
                    }
                }
            }
        }
        left
    }

    /// The most writes in any 60 s window.
    fn busiest_window(left: &[u64]) -> usize {
        left.iter()
            .map(|&from| {
                left.iter()
                    .filter(|&&t| t >= from && t < from + 60_000)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn replicas_share_the_writes_evenly_and_never_more() {
        let limits = Limits::new(80);
        assert_eq!(limits.per_minute(), 80);
        limits.share(3);
        assert_eq!(limits.per_minute(), 26, "3 x 26 stays within 80");
        limits.share(200);
        assert_eq!(limits.per_minute(), 1, "each keeps at least one");
        limits.share(0);
        assert_eq!(limits.per_minute(), 80, "no roll call is one process");
    }

    #[test]
    fn a_burst_is_spread_over_the_minute() {
        let left = leave_times(80, &[0; 200], &[]);
        // A steady stream goes at the spaced rate: the burst, never
        // refilled, is not on top of it.
        assert_eq!(busiest_window(&left), 71);
        // The first waits one turn: a restart gets no fresh burst.
        assert!(left[0] > 0);
    }

    #[test]
    fn a_lone_write_after_a_quiet_spell_goes_at_once() {
        // Ten quiet seconds refill the burst: a lifecycle's few writes,
        // asked for together, leave when asked.
        let left = leave_times(80, &[10_000; 5], &[]);
        assert_eq!(left, [10_000; 5]);
        // The old pacer, with no burst, spaced them by 756 ms.
    }

    proptest! {
        /// Attack: a burst after each restart, or the refill on top of a
        /// full bucket, puts more than N writes in one minute at GitHub.
        #[test]
        fn no_minute_holds_more_writes_than_configured(
            per_minute in 1u32..200,
            mut asks in proptest::collection::vec(0u64..300_000, 1..400),
            mut restarts in proptest::collection::vec(0u64..300_000, 0..6),
        ) {
            asks.sort_unstable();
            restarts.sort_unstable();
            let left = leave_times(per_minute, &asks, &restarts);
            prop_assert!(busiest_window(&left) <= per_minute as usize);
        }
    }
}
