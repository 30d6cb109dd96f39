//! What to do with an environment nobody has used for a while.
//!
//! Activity is a push (a deploy), a wake, or anything that touches the PR
//! (comments, labels, reviews). After `scale_after` without any, the
//! environment is scaled to zero tasks and its stack kept; after
//! `delete_after`, the stack is deleted. A keep label or an exempt branch
//! spares it, and wakes it if it was asleep.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The two idle periods; zero turns one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl {
    pub scale_after: Duration,
    pub delete_after: Duration,
}

/// The next step for a deployed environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// In use, or spared: nothing to do.
    Awake,
    /// Asleep but spared now (kept): scale it back up.
    Wake,
    /// Idle long enough: scale to zero.
    Sleep,
    /// Asleep, and stays so; deleted at `deletes_at` if that is set.
    Asleep { deletes_at: Option<DateTime<Utc>> },
    /// Idle long enough to delete.
    Delete,
}

pub fn verdict(
    now: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    asleep: bool,
    kept: bool,
    ttl: Ttl,
) -> Verdict {
    if kept {
        return if asleep {
            Verdict::Wake
        } else {
            Verdict::Awake
        };
    }
    let idle_for = (now - last_activity).to_std().unwrap_or_default();
    let past = |after: Duration| !after.is_zero() && idle_for >= after;
    if past(ttl.delete_after) {
        return Verdict::Delete;
    }
    if asleep {
        let deletes_at = (!ttl.delete_after.is_zero())
            .then(|| chrono::Duration::from_std(ttl.delete_after).ok())
            .flatten()
            .map(|after| last_activity + after);
        return Verdict::Asleep { deletes_at };
    }
    if past(ttl.scale_after) {
        return Verdict::Sleep;
    }
    Verdict::Awake
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const TTL: Ttl = Ttl {
        scale_after: Duration::from_secs(24 * 3600),
        delete_after: Duration::from_secs(7 * 24 * 3600),
    };

    fn ago(now: DateTime<Utc>, hours: u64) -> DateTime<Utc> {
        now - chrono::Duration::from_std(HOUR * hours as u32).unwrap()
    }

    #[test]
    fn the_lifecycle_of_an_unused_environment() {
        let now = Utc::now();
        assert_eq!(verdict(now, ago(now, 1), false, false, TTL), Verdict::Awake);
        assert_eq!(
            verdict(now, ago(now, 25), false, false, TTL),
            Verdict::Sleep
        );
        let last = ago(now, 30);
        assert_eq!(
            verdict(now, last, true, false, TTL),
            Verdict::Asleep {
                deletes_at: Some(last + chrono::Duration::days(7))
            }
        );
        assert_eq!(
            verdict(now, ago(now, 7 * 24), true, false, TTL),
            Verdict::Delete
        );
    }

    #[test]
    fn kept_environments_stay_up_and_wake() {
        let now = Utc::now();
        let long_ago = ago(now, 1000);
        assert_eq!(verdict(now, long_ago, false, true, TTL), Verdict::Awake);
        assert_eq!(verdict(now, long_ago, true, true, TTL), Verdict::Wake);
    }

    #[test]
    fn zero_turns_a_period_off() {
        let now = Utc::now();
        let long_ago = ago(now, 1000);
        let never = Ttl {
            scale_after: Duration::ZERO,
            delete_after: Duration::ZERO,
        };
        assert_eq!(verdict(now, long_ago, false, false, never), Verdict::Awake);
        assert_eq!(
            verdict(now, long_ago, true, false, never),
            Verdict::Asleep { deletes_at: None }
        );
        let delete_only = Ttl {
            scale_after: Duration::ZERO,
            ..TTL
        };
        assert_eq!(
            verdict(now, long_ago, false, false, delete_only),
            Verdict::Delete
        );
    }

    proptest! {
        /// Activity in the future (clock skew) never counts as idle time,
        /// and nothing kept is ever put to sleep or deleted.
        #[test]
        fn never_harsher_than_the_rules(hours in 0u64..2000, asleep: bool, kept: bool, skew: bool) {
            let now = Utc::now();
            let last = if skew { now + chrono::Duration::hours(hours as i64) } else { ago(now, hours) };
            let v = verdict(now, last, asleep, kept, TTL);
            if kept || skew {
                let spared = matches!(v, Verdict::Awake | Verdict::Wake | Verdict::Asleep { .. });
                prop_assert!(spared, "{:?}", v);
            }
            if v == Verdict::Delete {
                prop_assert!(hours >= 7 * 24);
            }
            if v == Verdict::Sleep {
                prop_assert!(!asleep && hours >= 24);
            }
        }
    }
}
