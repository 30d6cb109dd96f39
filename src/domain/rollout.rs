//! The production rollout planner: from what exists (stacks, Route53
//! weights, the release log) to the one next action. Pure, so the whole
//! release logic is property-tested; the reconciler only carries actions out.
//!
//! Crash safety comes from the inputs: weights and the log live together
//! (Route53 records and a TXT record changed in one batch, or an ALB rule's
//! forward action and its tags), so a restarted planner sees exactly how far
//! a release got and never jumps ahead.
//!
//! Both traffic media carry out the same actions; [`kept`] says what each
//! holds of them.

use super::release::{Ignored, Schedule, Step, TOTAL};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A production stack, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProdStack {
    pub name: String,
    pub sha: String,
    pub created: DateTime<Utc>,
    pub phase: ProdPhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProdPhase {
    /// Being created or updated.
    Busy,
    /// Complete; `healthy` when the health gate passes.
    Ready { healthy: bool },
    /// The stack failed; it must never get traffic.
    Failed,
}

/// What pullstack remembers about releases, stored next to the weights.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Log {
    /// The release in flight (or last completed).
    pub release: Option<String>,
    /// When the weights last moved.
    pub shifted_at: Option<DateTime<Utc>>,
    /// The schedule of the release in flight.
    pub schedule: Vec<Step>,
    /// Stacks that reached 100%, oldest first.
    pub promoted: Vec<String>,
    /// Stacks rolled back or failed: never given traffic again.
    pub failed: Vec<String>,
    pub paused: bool,
    /// The GitHub Deployment of the release in flight.
    pub deployment: Option<u64>,
    /// Title directives recent releases did not follow, oldest first. Left
    /// out when empty: the log shares one Route53 TXT record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// The weights of the release in flight at which its checks
    /// (`production.checks`) passed, so a restart or a held gate hook
    /// does not run them again. Left out when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<u8>,
}

const MEMORY: usize = 20;
/// How many ignored directives the log keeps.
const IGNORED_MEMORY: usize = 5;

impl Log {
    fn remember(list: &mut Vec<String>, name: &str) {
        list.retain(|n| n != name);
        list.push(name.to_owned());
        if list.len() > MEMORY {
            list.remove(0);
        }
    }

    pub fn is_failed(&self, name: &str) -> bool {
        self.failed.iter().any(|n| n == name)
    }

    /// Records that a release did not follow its title's directive.
    pub fn ignore(&mut self, ignored: Ignored) {
        self.ignored.retain(|i| i.stack != ignored.stack);
        self.ignored.push(ignored);
        if self.ignored.len() > IGNORED_MEMORY {
            self.ignored.remove(0);
        }
    }

    /// Records that the release's checks passed at `weight`.
    pub fn checks_passed(&mut self, weight: u8) {
        if !self.checked.contains(&weight) {
            self.checked.push(weight);
        }
    }

    /// The directive `stack` did not follow, if any.
    pub fn ignored(&self, stack: &str) -> Option<&Ignored> {
        self.ignored.iter().find(|i| i.stack == stack)
    }
}

/// Everything the planner looks at.
#[derive(Clone, Debug)]
pub struct View {
    pub stacks: Vec<ProdStack>,
    /// Route53 weights by stack name.
    pub weights: BTreeMap<String, u8>,
    pub log: Log,
    /// The default branch's head, and the stack name a release of it gets.
    pub head: Option<(String, String)>,
    pub now: DateTime<Utc>,
}

/// An ALB forward action takes at most this many target groups.
pub const FORWARD_LIMIT: usize = 5;

/// Where the weights live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// Route53: one weighted record per stack, kept at 0 until the stack goes.
    Records,
    /// An ALB rule's forward action: only target groups with traffic, and
    /// the release in flight at 0 until it gets some.
    Forward,
}

/// What `medium` holds of `weights` once `log` is in force. A forward keeps
/// only what has traffic and the release in flight, so it never needs more
/// than [`FORWARD_LIMIT`] target groups: at most the release, the stable
/// stack and the release at 0 before its first step.
pub fn kept(medium: Medium, weights: &BTreeMap<String, u8>, log: &Log) -> BTreeMap<String, u8> {
    match medium {
        Medium::Records => weights.clone(),
        Medium::Forward => weights
            .iter()
            .filter(|(name, weight)| {
                **weight > 0 || (log.release.as_ref() == Some(*name) && !log.is_failed(name))
            })
            .map(|(name, weight)| (name.clone(), *weight))
            .collect(),
    }
}

/// The release candidate the test route (`next.<domain>`) should reach: the
/// release in flight once its stack is ready, until it holds all traffic or
/// fails. `None`: the route answers that there is no candidate.
pub fn candidate(view: &View) -> Option<String> {
    let release = view.log.release.as_ref()?;
    let ready = view
        .stack(release)
        .is_some_and(|s| matches!(s.phase, ProdPhase::Ready { .. }));
    (ready && !view.log.is_failed(release) && view.weight(release) < TOTAL).then(|| release.clone())
}

/// Release policy from the config.
#[derive(Clone, Debug)]
pub struct Policy {
    pub keep: usize,
    pub window: Duration,
    pub poll: Duration,
}

/// The one next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create a stack for this commit (it starts with no traffic).
    Create { sha: String, stack: String },
    /// Make the head's stack the release in flight (after a create, or a
    /// crash between the create and this).
    Track { log: Log, stack: String },
    /// Look again after this long.
    Wait(Duration),
    /// Set these weights and this log in one batch.
    Shift {
        weights: BTreeMap<String, u8>,
        log: Log,
        percent: u8,
    },
    /// The release failed before getting traffic, or lost it: record it.
    Fail {
        weights: BTreeMap<String, u8>,
        log: Log,
        stack: String,
    },
    /// Delete a stack past retention (it has no traffic).
    Delete { stack: String },
    /// Nothing to do.
    Idle,
}

impl View {
    fn stack(&self, name: &str) -> Option<&ProdStack> {
        self.stacks.iter().find(|s| s.name == name)
    }

    fn weight(&self, name: &str) -> u8 {
        self.weights.get(name).copied().unwrap_or(0)
    }

    /// The last promoted stack that still exists, other than `except`.
    fn stable(&self, except: &str) -> Option<String> {
        self.log
            .promoted
            .iter()
            .rev()
            .find(|n| *n != except && !self.log.is_failed(n) && self.stack(n).is_some())
            .cloned()
    }

    /// The stack holding the most traffic.
    pub fn live(&self) -> Option<String> {
        self.weights
            .iter()
            .filter(|(_, w)| **w > 0)
            .max_by_key(|(name, w)| (**w, (*name).clone()))
            .map(|(name, _)| name.clone())
    }

    /// The weights with all traffic on `target`; every other record at 0.
    fn all_on(&self, target: &str) -> BTreeMap<String, u8> {
        let mut weights: BTreeMap<String, u8> =
            self.weights.keys().map(|k| (k.clone(), 0)).collect();
        weights.insert(target.to_owned(), TOTAL);
        weights
    }
}

/// The next action for production.
pub fn plan(view: &View, policy: &Policy, schedule: &Schedule) -> Action {
    if let Some((sha, stack)) = &view.head
        && view.stack(stack).is_none()
        && !view.log.is_failed(stack)
        && !view.log.promoted.contains(stack)
    {
        return Action::Create {
            sha: sha.clone(),
            stack: stack.clone(),
        };
    }
    if let Some((_, stack)) = &view.head
        && view.stack(stack).is_some()
        && view.log.release.as_ref() != Some(stack)
        && !view.log.is_failed(stack)
        && !view.log.promoted.contains(stack)
    {
        let mut log = view.log.clone();
        // A release replaced before it reached 100% is never given traffic
        // again: a rollback goes to the last release that held it all.
        if let Some(replaced) = view.log.release.as_ref()
            && !view.log.promoted.contains(replaced)
            && !view.log.is_failed(replaced)
        {
            Log::remember(&mut log.failed, replaced);
        }
        log.release = Some(stack.clone());
        log.shifted_at = None;
        log.schedule.clear();
        log.deployment = None;
        log.checked.clear();
        return Action::Track {
            log,
            stack: stack.clone(),
        };
    }
    let Some(release) = view.log.release.clone().filter(|r| !view.log.is_failed(r)) else {
        return retention(view, policy);
    };
    let Some(stack) = view.stack(&release) else {
        // The release's stack is gone: forget it, keep traffic where it is.
        let mut log = view.log.clone();
        log.release = None;
        return Action::Fail {
            weights: view.weights.clone(),
            log,
            stack: release,
        };
    };
    let weight = view.weight(&release);
    match stack.phase {
        ProdPhase::Busy => return Action::Wait(policy.poll),
        ProdPhase::Failed => return fail(view, &release),
        ProdPhase::Ready { healthy: false } if weight == 0 => return Action::Wait(policy.poll),
        ProdPhase::Ready { .. } => {}
    }
    if !view.weights.contains_key(&release) {
        // The new stack's record exists from the start, at weight 0.
        let mut weights = view.weights.clone();
        weights.insert(release.clone(), 0);
        let mut log = view.log.clone();
        log.shifted_at = Some(view.now);
        return Action::Shift {
            weights,
            log,
            percent: 0,
        };
    }
    if weight >= TOTAL {
        return retention(view, policy);
    }
    if view.log.paused {
        return Action::Idle;
    }
    let schedule = if view.log.schedule.is_empty() {
        schedule.clone()
    } else {
        Schedule {
            steps: view.log.schedule.clone(),
        }
    };
    let stable = view.stable(&release);
    let next = match (&stable, schedule.next(weight)) {
        // Nothing to shift from: the first release takes everything.
        (None, _) | (_, None) => Step {
            percent: TOTAL,
            bake: Duration::ZERO,
        },
        (Some(_), Some(step)) => step,
    };
    // A gate (checks, a hook) would hold the release here, before `next`.
    if weight > 0
        && let Some(at) = view.log.shifted_at
    {
        let due = at + chrono::Duration::from_std(schedule.bake_after(weight)).unwrap_or_default();
        if view.now < due {
            let left = (due - view.now).to_std().unwrap_or_default();
            return Action::Wait(left.min(policy.poll));
        }
    }
    shift(view, &release, stable.as_deref(), next.percent)
}

/// A step of the release in flight that its gates (checks, gate hooks)
/// must clear before it is taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub release: String,
    /// The release's weight now, and after the step.
    pub from: u8,
    pub to: u8,
    /// Which shift of the release this is, from 1.
    pub step: usize,
    /// Whether the release's checks already passed at `from`.
    pub checked: bool,
}

/// The gated step `action` is, if any: a shift that gives the release in
/// flight more traffic. Its first place in the weights (at 0) is not one,
/// nor is a promotion, a rollback or a failure.
pub fn due(view: &View, action: &Action, schedule: &Schedule) -> Option<Due> {
    let Action::Shift { log, percent, .. } = action else {
        return None;
    };
    let release = log.release.clone()?;
    if !view.weights.contains_key(&release) {
        return None;
    }
    let from = view.weight(&release);
    if *percent <= from {
        return None;
    }
    let steps = if view.log.schedule.is_empty() {
        &schedule.steps
    } else {
        &view.log.schedule
    };
    Some(Due {
        step: steps.iter().filter(|s| s.percent <= from).count() + 1,
        checked: view.log.checked.contains(&from),
        release,
        from,
        to: *percent,
    })
}

/// Marks the release in flight failed before its next step (its gates
/// refused it), putting any traffic it had back on the stable stack.
pub fn stop(view: &View) -> Option<Action> {
    let release = view.log.release.as_deref()?;
    Some(fail(view, release))
}

/// Puts `percent` on the release and the rest on the stable stack (all of
/// it on the release when there is no stable stack).
fn shift(view: &View, release: &str, stable: Option<&str>, percent: u8) -> Action {
    let mut weights: BTreeMap<String, u8> = view.weights.keys().map(|k| (k.clone(), 0)).collect();
    let (new, old) = super::release::pair(percent);
    weights.insert(release.to_owned(), new);
    if let Some(stable) = stable.filter(|_| old > 0) {
        weights.insert(stable.to_owned(), old);
    } else {
        weights.insert(release.to_owned(), TOTAL);
    }
    let mut log = view.log.clone();
    log.shifted_at = Some(view.now);
    if weights[release] >= TOTAL {
        Log::remember(&mut log.promoted, release);
    }
    let percent = weights[release];
    Action::Shift {
        weights,
        log,
        percent,
    }
}

/// Marks the release failed and puts any traffic it had back on the stable stack.
fn fail(view: &View, release: &str) -> Action {
    let mut log = view.log.clone();
    Log::remember(&mut log.failed, release);
    log.shifted_at = None;
    let weights = match view.stable(release) {
        Some(stable) if view.weight(release) > 0 => view.all_on(&stable),
        _ => view.weights.clone(),
    };
    Action::Fail {
        weights,
        log,
        stack: release.to_owned(),
    }
}

/// Rolls traffic back to `to`, or to the stack before the live one. `None`
/// when there is nothing to roll back to.
pub fn rollback(
    view: &View,
    to: Option<&str>,
) -> Option<(BTreeMap<String, u8>, Log, String, String)> {
    let in_flight = view
        .log
        .release
        .clone()
        .filter(|r| !view.log.is_failed(r) && view.weight(r) < TOTAL && view.weight(r) > 0);
    let from = in_flight.clone().or_else(|| view.live())?;
    let target = match to {
        Some(to) => to.to_owned(),
        None => view.stable(&from)?,
    };
    let target_ok = target != from
        && !view.log.is_failed(&target)
        && view
            .stack(&target)
            .is_some_and(|s| matches!(s.phase, ProdPhase::Ready { .. }));
    if !target_ok {
        return None;
    }
    let mut log = view.log.clone();
    Log::remember(&mut log.failed, &from);
    log.promoted.retain(|n| *n != from);
    Log::remember(&mut log.promoted, &target);
    log.release = None;
    log.checked.clear();
    log.shifted_at = Some(view.now);
    Some((view.all_on(&target), log, from, target))
}

/// Moves the release in flight to 100% now.
pub fn promote(view: &View) -> Option<(BTreeMap<String, u8>, Log, String)> {
    let release = view
        .log
        .release
        .clone()
        .filter(|r| !view.log.is_failed(r))?;
    let ready = view
        .stack(&release)
        .is_some_and(|s| s.phase == ProdPhase::Ready { healthy: true });
    if !ready || view.weight(&release) >= TOTAL {
        return None;
    }
    let mut log = view.log.clone();
    log.shifted_at = Some(view.now);
    Log::remember(&mut log.promoted, &release);
    Some((view.all_on(&release), log, release))
}

/// A stack past retention, if any. Never one with traffic, the release in
/// flight, the head's stack, or the rollback target (the last release that
/// held all the traffic). Releases that held it all and releases that never
/// did (replaced, rolled back, failed) are counted apart: of each, the
/// newest `keep` stay for the window. So a release that never held the
/// traffic, and never will, cannot push out one a rollback could go to.
fn retention(view: &View, policy: &Policy) -> Action {
    let live = view.live();
    let target = live.as_deref().and_then(|l| view.stable(l));
    let head = view.head.as_ref().map(|(_, s)| s.as_str());
    let mut previous: Vec<&ProdStack> = view
        .stacks
        .iter()
        .filter(|s| Some(s.name.as_str()) != live.as_deref())
        .filter(|s| Some(&s.name) != view.log.release.as_ref() || view.log.is_failed(&s.name))
        .filter(|s| Some(s.name.as_str()) != head || view.log.is_failed(&s.name))
        .filter(|s| s.phase != ProdPhase::Busy)
        .collect();
    previous.sort_by_key(|s| std::cmp::Reverse(s.created));
    let window = chrono::Duration::from_std(policy.window).unwrap_or(chrono::Duration::MAX);
    let promoted = |s: &&ProdStack| view.log.promoted.contains(&s.name);
    let (held, never): (Vec<&ProdStack>, Vec<&ProdStack>) =
        previous.into_iter().partition(promoted);
    [held, never]
        .iter()
        .flat_map(|kind| {
            kind.iter()
                .enumerate()
                .filter(|(index, s)| *index >= policy.keep || view.now - s.created > window)
                .map(|(_, s)| *s)
        })
        .find(|s| view.weight(&s.name) == 0 && Some(&s.name) != target.as_ref())
        .map_or(Action::Idle, |s| Action::Delete {
            stack: s.name.clone(),
        })
}

#[cfg(test)]
mod tests;
