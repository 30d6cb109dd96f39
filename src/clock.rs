//! The clock port: wall time for every decision that depends on time (idle
//! rules, bakes, retention, timeouts, retries), and sleeping until a time.
//!
//! The system clock is what runs in production. A manual clock runs with
//! real time but can also be moved forward by hand, so a test can skip a
//! day of idleness or a bake in one call while stack polls keep their real
//! pace. Whoever sleeps on it wakes when real time or a jump reaches the
//! deadline.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A source of the current time. Cheap to clone; clones share the time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// How far a manual clock has been moved ahead of real time.
    skew: Option<Arc<watch::Sender<Duration>>>,
}

impl Clock {
    /// Real time.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Real time that [`Clock::advance`] can move forward.
    pub fn manual() -> Clock {
        Clock {
            skew: Some(Arc::new(watch::Sender::new(Duration::ZERO))),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let skew = self.skew.as_ref().map_or(Duration::ZERO, |s| *s.borrow());
        Utc::now() + skew
    }

    /// How long ago `then` was; zero for a time in the future.
    pub fn since(&self, then: DateTime<Utc>) -> Duration {
        (self.now() - then).to_std().unwrap_or_default()
    }

    /// Moves a manual clock forward and wakes everyone sleeping on it.
    ///
    /// # Panics
    /// On the system clock: real time cannot be moved.
    pub fn advance(&self, by: Duration) {
        let skew = self.skew.as_ref().expect("only a manual clock advances");
        skew.send_modify(|skew| *skew += by);
    }

    /// Sleeps until the clock reads `deadline`.
    pub async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let Some(skew) = &self.skew else {
            tokio::time::sleep(self.until(deadline)).await;
            return;
        };
        let mut moved = skew.subscribe();
        loop {
            let left = self.until(deadline);
            if left.is_zero() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                changed = moved.changed() => {
                    if changed.is_err() {
                        // Every clock handle is gone: only real time is left.
                        tokio::time::sleep(self.until(deadline)).await;
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps for `duration` of this clock's time.
    pub async fn sleep(&self, duration: Duration) {
        self.sleep_until(self.after(duration)).await;
    }

    /// The time `duration` from now.
    pub fn after(&self, duration: Duration) -> DateTime<Utc> {
        self.now() + duration
    }

    fn until(&self, deadline: DateTime<Utc>) -> Duration {
        (deadline - self.now()).to_std().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jump_wakes_a_sleeper_at_once() {
        let clock = Clock::manual();
        let deadline = clock.after(Duration::from_secs(86_400));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        clock.advance(Duration::from_secs(86_401));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by the jump")
            .unwrap();
        assert!(clock.now() >= deadline);
    }

    #[tokio::test]
    async fn real_time_still_flows() {
        let clock = Clock::manual();
        let before = clock.now();
        clock.sleep(Duration::from_millis(20)).await;
        assert!(clock.since(before) >= Duration::from_millis(20));
    }

    #[test]
    fn the_past_is_no_wait() {
        let clock = Clock::system();
        let earlier = clock.now() - chrono::Duration::seconds(5);
        assert!(clock.until(earlier).is_zero());
        assert!(clock.since(earlier) >= Duration::from_secs(5));
    }
}
