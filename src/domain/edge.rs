//! The preview edge's bookkeeping, pure: on which shard (one shared HTTPS
//! load balancer, `<app>-edge-<n>`) a new preview goes, which listener rule
//! priority it takes, and which shards are surplus.
//!
//! A preview takes one rule, or two when it has an automation bypass: the
//! bypass rule at the priority just before its own, so it is matched
//! first. Both are claimed at once, as a run of free priorities.
//!
//! A shard's taken priorities are what AWS says (the rules on its listener)
//! together with what pullstack has asked for (the `RulePriority` of every
//! preview stack placed on it that is not deleted), so a stack whose rule
//! is not created yet still holds its priority.

use std::collections::BTreeSet;

/// The highest priority a listener rule may have.
pub const MAX_PRIORITY: u32 = 50_000;

/// One shard as read from AWS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    /// `n` in `<app>-edge-<n>`.
    pub number: u32,
    /// Whether its stack is complete, so rules can be added to it.
    pub ready: bool,
    /// Priorities in use on its listener.
    pub taken: BTreeSet<u32>,
}

impl Shard {
    /// Rules on it: one per preview, two for one with a bypass.
    pub fn load(&self) -> usize {
        self.taken.len()
    }
}

/// Where a new preview goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// On shard `number`, at `priority` and the `width - 1` after it.
    On { number: u32, priority: u32 },
    /// Every ready shard is full; shard `number` is being created: wait.
    Wait { number: u32 },
    /// Every shard is full and none is being created: create `number`.
    Add { number: u32 },
}

/// The fullest ready shard with room for `width` more rules under `limit`
/// (fewest shards stay in use, so more become surplus), the lowest number
/// on a tie, and its lowest run of `width` free priorities. Without room:
/// wait for a shard under way, or add the next one.
pub fn place(shards: &[Shard], limit: u32, width: u32) -> Choice {
    let limit = limit as usize;
    let width = width.max(1);
    let room = shards
        .iter()
        .filter(|s| s.ready && s.load() + width as usize <= limit)
        .filter_map(|s| lowest_free_run(&s.taken, width).map(|p| (s, p)))
        .max_by(|(a, _), (b, _)| a.load().cmp(&b.load()).then(b.number.cmp(&a.number)));
    if let Some((shard, priority)) = room {
        return Choice::On {
            number: shard.number,
            priority,
        };
    }
    if let Some(pending) = shards.iter().filter(|s| !s.ready).map(|s| s.number).min() {
        return Choice::Wait { number: pending };
    }
    Choice::Add {
        number: next_number(shards),
    }
}

/// The lowest priority not in `taken`, if any is left.
pub fn lowest_free(taken: &BTreeSet<u32>) -> Option<u32> {
    lowest_free_run(taken, 1)
}

/// The lowest priority that starts `width` consecutive ones not in
/// `taken`, if any is left.
pub fn lowest_free_run(taken: &BTreeSet<u32>, width: u32) -> Option<u32> {
    let width = width.max(1);
    (1..=MAX_PRIORITY.checked_sub(width - 1)?)
        .find(|p| (*p..*p + width).all(|q| !taken.contains(&q)))
}

/// The lowest shard number not in use.
pub fn next_number(shards: &[Shard]) -> u32 {
    let used: BTreeSet<u32> = shards.iter().map(|s| s.number).collect();
    (1..).find(|n| !used.contains(n)).unwrap_or(1)
}

/// Ready shards with no preview that may go: all empty ones but the first
/// when no ready shard holds a preview (the pool keeps a load balancer, so
/// the next preview is fast), and every empty one otherwise.
pub fn surplus(shards: &[Shard]) -> Vec<u32> {
    let mut empty: Vec<u32> = shards
        .iter()
        .filter(|s| s.ready && s.load() == 0)
        .map(|s| s.number)
        .collect();
    empty.sort_unstable();
    if !empty.is_empty() && shards.iter().all(|s| !s.ready || s.load() == 0) {
        empty.remove(0);
    }
    empty
}

/// Whether a failure reason is ELB's "this priority is taken": a race with
/// another process placing a preview, to be retried at another priority
/// and never shown as a failure.
pub fn priority_conflict(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    lower.contains("priorityinuse") || (lower.contains("priority") && lower.contains("in use"))
}

/// A preview's host name: `<slug>.<zone>`.
pub fn host(slug: &str, zone: &str) -> String {
    format!("{slug}.{}", zone.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(number: u32, taken: impl IntoIterator<Item = u32>) -> Shard {
        Shard {
            number,
            ready: true,
            taken: taken.into_iter().collect(),
        }
    }

    #[test]
    fn the_first_preview_asks_for_the_first_shard() {
        assert_eq!(place(&[], 90, 1), Choice::Add { number: 1 });
    }

    #[test]
    fn the_fullest_shard_with_room_takes_the_lowest_free_priority() {
        let shards = [shard(1, [1, 2, 4]), shard(2, [1, 2, 3, 5, 6])];
        assert_eq!(
            place(&shards, 90, 1),
            Choice::On {
                number: 2,
                priority: 4
            }
        );
        assert_eq!(
            place(&shards, 5, 1),
            Choice::On {
                number: 1,
                priority: 3
            }
        );
    }

    #[test]
    fn a_full_pool_waits_for_a_shard_under_way_or_adds_one() {
        let full = shard(1, 1..=3);
        assert_eq!(
            place(std::slice::from_ref(&full), 3, 1),
            Choice::Add { number: 2 }
        );
        let creating = Shard {
            number: 2,
            ready: false,
            taken: BTreeSet::new(),
        };
        assert_eq!(place(&[full, creating], 3, 1), Choice::Wait { number: 2 });
    }

    #[test]
    fn a_gap_in_numbers_is_filled() {
        let shards = [shard(1, 1..=3), shard(3, 1..=3)];
        assert_eq!(place(&shards, 3, 1), Choice::Add { number: 2 });
    }

    #[test]
    fn a_preview_with_a_bypass_takes_two_adjacent_priorities() {
        // 3 is free but 4 is not: 5 and 6 are.
        let shards = [shard(1, [1, 2, 4])];
        assert_eq!(
            place(&shards, 90, 2),
            Choice::On {
                number: 1,
                priority: 5
            }
        );
        // One rule's room left is not room for two.
        let nearly = [shard(1, [1, 2, 3]), shard(2, [1])];
        assert_eq!(
            place(&nearly, 4, 2),
            Choice::On {
                number: 2,
                priority: 2
            }
        );
        assert_eq!(place(&nearly[..1], 4, 2), Choice::Add { number: 2 });
        assert_eq!(lowest_free_run(&(1..MAX_PRIORITY).collect(), 2), None);
        assert_eq!(
            lowest_free_run(&(1..MAX_PRIORITY - 1).collect(), 2),
            Some(MAX_PRIORITY - 1)
        );
    }

    #[test]
    fn only_an_empty_shard_beside_others_is_surplus() {
        assert_eq!(surplus(&[]), Vec::<u32>::new());
        assert_eq!(surplus(&[shard(1, [])]), Vec::<u32>::new());
        assert_eq!(surplus(&[shard(1, []), shard(2, [])]), vec![2]);
        assert_eq!(surplus(&[shard(1, [7]), shard(2, [])]), vec![2]);
        assert_eq!(surplus(&[shard(1, []), shard(2, [3])]), vec![1]);
        let creating = Shard {
            number: 2,
            ready: false,
            taken: BTreeSet::new(),
        };
        assert_eq!(
            surplus(&[shard(1, [1]), creating.clone()]),
            Vec::<u32>::new()
        );
        assert_eq!(surplus(&[shard(1, []), creating]), Vec::<u32>::new());
    }

    #[test]
    fn priority_conflicts_are_told_apart() {
        assert!(priority_conflict(
            "PriorityInUse: The specified priority is in use."
        ));
        assert!(priority_conflict(
            "Priority '12' is currently in use (Service: ElasticLoadBalancingV2)"
        ));
        assert!(!priority_conflict("Resource creation cancelled"));
        assert!(!priority_conflict("The target group does not exist"));
    }

    proptest! {
        /// However full the shards, a placement never reuses a taken
        /// priority, never passes the limit, and placing one after the
        /// other never gives two previews the same priority on a shard.
        #[test]
        fn placements_never_collide(
            loads in proptest::collection::vec(proptest::collection::btree_set(1u32..120, 0..20), 1..5),
            limit in 1u32..25,
            opens in proptest::collection::vec(1u32..=2, 1..60),
        ) {
            let mut shards: Vec<Shard> = loads
                .into_iter()
                .enumerate()
                .map(|(i, taken)| Shard { number: i as u32 + 1, ready: true, taken })
                .collect();
            for width in opens {
                match place(&shards, limit, width) {
                    Choice::On { number, priority } => {
                        let shard = shards.iter_mut().find(|s| s.number == number).unwrap();
                        prop_assert!(shard.load() + width as usize <= limit as usize);
                        for p in priority..priority + width {
                            prop_assert!(shard.taken.insert(p), "priority {p} reused");
                        }
                    }
                    Choice::Add { number } => {
                        prop_assert!(shards.iter().all(|s| s.number != number));
                        prop_assert!(shards.iter().all(|s| s.load() + width as usize > limit as usize));
                        shards.push(Shard { number, ready: true, taken: BTreeSet::new() });
                    }
                    Choice::Wait { .. } => prop_assert!(false, "no shard is pending"),
                }
            }
        }
    }
}
