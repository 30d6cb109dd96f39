//! Unit and property tests of the rollout planner.

use super::*;
use crate::domain::release::Schedule;
use proptest::prelude::*;

const BAKE: Duration = Duration::from_secs(60);

fn policy() -> Policy {
    Policy {
        keep: 2,
        window: Duration::from_secs(7 * 86_400),
        poll: Duration::from_secs(5),
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

/// A tiny production: stacks, weights and a log, driven by the planner.
#[derive(Clone, Debug)]
struct Sim {
    view: View,
    created: usize,
    medium: Medium,
}

impl Sim {
    fn new() -> Sim {
        Sim::on(Medium::Records)
    }

    fn on(medium: Medium) -> Sim {
        Sim {
            medium,
            view: View {
                stacks: vec![],
                weights: BTreeMap::new(),
                log: Log::default(),
                head: None,
                now: at(0),
            },
            created: 0,
        }
    }

    /// Stores weights and log as the medium keeps them.
    fn store(&mut self, weights: &BTreeMap<String, u8>, log: &Log) {
        self.view.weights = kept(self.medium, weights, log);
        self.view.log = log.clone();
    }

    fn merge(&mut self, n: usize) {
        self.view.head = Some((format!("sha{n}"), format!("app-prod-{n}")));
    }

    fn settle(&mut self, healthy: bool, ok: bool) {
        for s in self
            .view
            .stacks
            .iter_mut()
            .filter(|s| s.phase == ProdPhase::Busy)
        {
            s.phase = if ok {
                ProdPhase::Ready { healthy }
            } else {
                ProdPhase::Failed
            };
        }
    }

    fn heal(&mut self) {
        for s in self.view.stacks.iter_mut() {
            if s.phase == (ProdPhase::Ready { healthy: false }) {
                s.phase = ProdPhase::Ready { healthy: true };
            }
        }
    }

    fn step(&mut self) -> Action {
        let action = plan(&self.view, &policy(), &Schedule::default_canary(BAKE));
        self.apply(&action);
        action
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::Create { sha, stack } => {
                self.created += 1;
                self.view.stacks.push(ProdStack {
                    name: stack.clone(),
                    sha: sha.clone(),
                    created: self.view.now,
                    phase: ProdPhase::Busy,
                });
            }
            Action::Track { log, .. } => self.view.log = log.clone(),
            Action::Shift { weights, log, .. } | Action::Fail { weights, log, .. } => {
                self.store(weights, log);
            }
            Action::Delete { stack } => {
                assert_eq!(
                    self.view.weight(stack),
                    0,
                    "deleting {stack} while it has traffic"
                );
                self.view.weights.remove(stack);
                self.view.stacks.retain(|s| s.name != *stack);
            }
            Action::Wait(_) | Action::Idle => {}
        }
    }

    /// A first release at 100%, and a second one just moved to 10%.
    fn second_release_at_10() -> Sim {
        let mut sim = Sim::new();
        sim.merge(1);
        sim.step();
        sim.settle(true, true);
        assert_eq!(sim.until_shift(), 100);
        sim.merge(2);
        sim.step();
        sim.settle(true, true);
        assert_eq!(sim.until_shift(), 10);
        sim
    }

    /// Plans until traffic moves to the release; returns the new percent.
    fn until_shift(&mut self) -> u8 {
        for _ in 0..10 {
            if let Action::Shift { percent, .. } = self.step()
                && percent > 0
            {
                return percent;
            }
        }
        panic!("no shift: {:?}", self.view);
    }

    fn check(&self) {
        if self.medium == Medium::Forward {
            assert!(
                self.view.weights.len() <= FORWARD_LIMIT,
                "a forward to {} target groups: {:?}",
                self.view.weights.len(),
                self.view.weights
            );
        }
        let sum: u32 = self.view.weights.values().map(|w| u32::from(*w)).sum();
        assert!(
            sum == 0 || sum == u32::from(TOTAL),
            "weights sum to {sum}: {:?}",
            self.view.weights
        );
        for (name, weight) in &self.view.weights {
            if *weight > 0 {
                let stack = self
                    .view
                    .stack(name)
                    .unwrap_or_else(|| panic!("traffic on missing stack {name}"));
                assert!(
                    matches!(stack.phase, ProdPhase::Ready { .. }),
                    "traffic on {stack:?}"
                );
            }
        }
    }
}

#[test]
fn first_release_takes_all_traffic() {
    let mut sim = Sim::new();
    sim.merge(1);
    assert!(matches!(sim.step(), Action::Create { .. }));
    assert!(matches!(sim.step(), Action::Track { .. }));
    assert_eq!(sim.step(), Action::Wait(Duration::from_secs(5)));
    sim.settle(true, true);
    assert_eq!(sim.until_shift(), 100);
    assert_eq!(sim.view.weight("app-prod-1"), 100);
    assert_eq!(sim.view.log.promoted, vec!["app-prod-1"]);
}

#[test]
fn second_release_walks_the_canary_with_bakes() {
    let mut sim = Sim::new();
    sim.merge(1);
    sim.step();
    sim.settle(true, true);
    assert_eq!(sim.until_shift(), 100);
    sim.merge(2);
    sim.step();
    sim.settle(true, true);
    let mut percents = vec![];
    for _ in 0..20 {
        if let Action::Shift { percent, .. } = sim.step() {
            percents.push(percent);
            if percent > 0 {
                let after = sim.step();
                assert!(
                    matches!(after, Action::Wait(_) | Action::Idle),
                    "no bake after {percent}: {after:?}"
                );
            }
        }
        sim.check();
        sim.view.now += chrono::Duration::seconds(30);
    }
    assert_eq!(percents, vec![0, 10, 50, 100], "the record starts at 0");
    assert_eq!(sim.view.weight("app-prod-1"), 0);
    assert_eq!(sim.view.weight("app-prod-2"), 100);
}

#[test]
fn an_unhealthy_stack_gets_no_traffic() {
    let mut sim = Sim::new();
    sim.merge(1);
    sim.step();
    sim.settle(true, true);
    sim.step();
    sim.merge(2);
    sim.step();
    sim.settle(false, true);
    assert!(matches!(sim.step(), Action::Track { .. }));
    assert_eq!(sim.step(), Action::Wait(Duration::from_secs(5)));
    assert_eq!(sim.view.weight("app-prod-2"), 0);
}

#[test]
fn a_failed_stack_is_recorded_and_never_retried() {
    let mut sim = Sim::new();
    sim.merge(1);
    sim.step();
    sim.settle(true, false);
    assert!(matches!(sim.step(), Action::Track { .. }));
    assert!(matches!(sim.step(), Action::Fail { .. }));
    assert!(sim.view.log.is_failed("app-prod-1"));
    assert_eq!(sim.step(), Action::Idle);
}

#[test]
fn rollback_mid_shift_restores_the_stable_stack() {
    let sim = Sim::second_release_at_10();
    let (weights, log, from, to) = rollback(&sim.view, None).unwrap();
    assert_eq!((from.as_str(), to.as_str()), ("app-prod-2", "app-prod-1"));
    assert_eq!(weights["app-prod-1"], 100);
    assert_eq!(weights["app-prod-2"], 0);
    assert!(log.is_failed("app-prod-2"));
}

#[test]
fn promote_finishes_now() {
    let sim = Sim::second_release_at_10();
    let (weights, _, release) = promote(&sim.view).unwrap();
    assert_eq!(
        (release.as_str(), weights["app-prod-2"]),
        ("app-prod-2", 100)
    );
}

#[test]
fn retention_keeps_the_rollback_target_and_deletes_the_rest() {
    let mut sim = Sim::new();
    for n in 1..=5 {
        sim.merge(n);
        for _ in 0..12 {
            sim.step();
            sim.settle(true, true);
            sim.view.now += chrono::Duration::seconds(61);
        }
        sim.check();
    }
    let names: Vec<&str> = sim.view.stacks.iter().map(|s| s.name.as_str()).collect();
    // The live one, and the newest two before it (one of them the rollback target).
    assert_eq!(names, vec!["app-prod-3", "app-prod-4", "app-prod-5"]);
}

/// Steps the planner, settling stacks healthy, a minute apart.
fn run(sim: &mut Sim, steps: usize) {
    for _ in 0..steps {
        sim.step();
        sim.settle(true, true);
        sim.view.now += chrono::Duration::seconds(61);
    }
}

// Found in a chaos run: a release replaced mid-shift counted toward `keep`,
// so retention deleted the last fully promoted release and kept the
// never-promoted one.
#[test]
fn a_release_replaced_mid_shift_never_pushes_out_a_rollback_target() {
    let mut sim = Sim::new();
    for n in 1..=2 {
        sim.merge(n);
        run(&mut sim, 12);
    }
    // Release 3 starts its canary, and release 4 replaces it mid-shift.
    sim.merge(3);
    sim.step();
    sim.settle(true, true);
    assert_eq!(sim.until_shift(), 10);
    sim.merge(4);
    run(&mut sim, 12);
    assert!(
        sim.view.log.is_failed("app-prod-3"),
        "recorded as never again"
    );
    assert_eq!(sim.view.weight("app-prod-4"), TOTAL);
    // Release 5 takes it all: 4 is the rollback target, 2 the one before.
    sim.merge(5);
    run(&mut sim, 12);
    sim.check();
    let names: Vec<&str> = sim.view.stacks.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"app-prod-4") && names.contains(&"app-prod-2"),
        "{names:?}"
    );
    let (_, _, from, to) = rollback(&sim.view, None).expect("a rollback target");
    assert_eq!((from.as_str(), to.as_str()), ("app-prod-5", "app-prod-4"));
}

#[derive(Clone, Debug)]
enum Op {
    Merge,
    Settle { healthy: bool, ok: bool },
    Heal,
    Tick(i64),
    Plan,
    Rollback,
    Promote,
    Pause(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Merge),
        2 => (any::<bool>(), prop::bool::weighted(0.8)).prop_map(|(healthy, ok)| Op::Settle { healthy, ok }),
        1 => Just(Op::Heal),
        2 => (0i64..200).prop_map(Op::Tick),
        6 => Just(Op::Plan),
        1 => Just(Op::Rollback),
        1 => Just(Op::Promote),
        1 => any::<bool>().prop_map(Op::Pause),
    ]
}

proptest! {
    /// Whatever happens (releases, failures, rollbacks, promotions, pauses,
    /// and crashes, which are just planning again from the same state), the
    /// weights sum to the total and traffic only points at live stacks.
    #[test]
    fn weights_stay_whole_and_point_at_stacks(
        ops in prop::collection::vec(op(), 1..120),
        forward in any::<bool>(),
    ) {
        let mut sim = Sim::on(if forward { Medium::Forward } else { Medium::Records });
        let mut merges = 0;
        for op in ops {
            match op {
                Op::Merge => { merges += 1; sim.merge(merges); }
                Op::Settle { healthy, ok } => sim.settle(healthy, ok),
                Op::Heal => sim.heal(),
                Op::Tick(secs) => sim.view.now += chrono::Duration::seconds(secs),
                Op::Plan => { sim.step(); }
                Op::Rollback => {
                    if let Some((weights, log, _, _)) = rollback(&sim.view, None) {
                        sim.store(&weights, &log);
                    }
                }
                Op::Promote => {
                    if let Some((weights, log, _)) = promote(&sim.view) {
                        sim.store(&weights, &log);
                    }
                }
                Op::Pause(paused) => sim.view.log.paused = paused,
            }
            sim.check();
        }
    }
}

/// On a forward, the canary walks as on records, with only the stacks that
/// hold traffic (and the release before its first step) in the action.
#[test]
fn a_forward_holds_only_what_has_traffic() {
    let mut sim = Sim::on(Medium::Forward);
    for n in 1..=4 {
        sim.merge(n);
        sim.step();
        sim.settle(true, true);
        while sim.until_shift() < 100 {
            sim.view.now += chrono::Duration::from_std(BAKE).unwrap();
        }
    }
    assert_eq!(
        sim.view.weights,
        BTreeMap::from([("app-prod-4".to_owned(), 100)])
    );
    sim.merge(5);
    sim.step();
    sim.settle(true, true);
    assert!(matches!(sim.step(), Action::Track { .. }));
    assert!(matches!(sim.step(), Action::Shift { percent: 0, .. }));
    assert_eq!(
        sim.view.weights,
        BTreeMap::from([("app-prod-4".to_owned(), 100), ("app-prod-5".to_owned(), 0)]),
        "the release joins at 0"
    );
    assert_eq!(sim.until_shift(), 10);
    let (weights, log, _, _) = rollback(&sim.view, None).unwrap();
    sim.store(&weights, &log);
    assert_eq!(
        sim.view.weights,
        BTreeMap::from([("app-prod-4".to_owned(), 100)]),
        "a rolled-back release leaves the forward"
    );
}

#[test]
fn the_test_route_reaches_the_candidate_until_it_holds_everything() {
    let mut sim = Sim::new();
    sim.merge(1);
    sim.step();
    assert_eq!(candidate(&sim.view), None, "nothing ready yet");
    sim.settle(true, true);
    sim.step();
    assert_eq!(candidate(&sim.view).as_deref(), Some("app-prod-1"));
    sim.until_shift();
    assert_eq!(candidate(&sim.view), None, "it holds all traffic");

    let mut sim = Sim::second_release_at_10();
    assert_eq!(candidate(&sim.view).as_deref(), Some("app-prod-2"));
    let (weights, log, _, _) = rollback(&sim.view, None).unwrap();
    sim.store(&weights, &log);
    assert_eq!(candidate(&sim.view), None, "rolled back");
}

/// The next gated step, without taking it.
fn next_due(sim: &Sim) -> Option<Due> {
    let schedule = Schedule::default_canary(BAKE);
    due(&sim.view, &plan(&sim.view, &policy(), &schedule), &schedule)
}

#[test]
fn every_step_up_is_gated_and_only_those() {
    let mut sim = Sim::new();
    sim.merge(1);
    sim.step();
    sim.settle(true, true);
    assert!(matches!(sim.step(), Action::Track { .. }));
    assert_eq!(next_due(&sim), None, "joining at 0 is not a step");
    assert!(matches!(sim.step(), Action::Shift { percent: 0, .. }));
    let first = next_due(&sim).unwrap();
    assert_eq!((first.from, first.to, first.step), (0, 100, 1));

    let mut sim = Sim::second_release_at_10();
    sim.view.now += chrono::Duration::from_std(BAKE).unwrap();
    let due = next_due(&sim).unwrap();
    assert_eq!(
        due,
        Due {
            release: "app-prod-2".into(),
            from: 10,
            to: 50,
            step: 2,
            checked: false,
        }
    );
    let mut log = sim.view.log.clone();
    log.checks_passed(10);
    sim.view.log = log;
    assert!(next_due(&sim).unwrap().checked, "the log says they passed");
    // Rolled back: nothing in flight, nothing gated, the record gone.
    let (weights, log, _, _) = rollback(&sim.view, None).unwrap();
    sim.store(&weights, &log);
    assert!(sim.view.log.checked.is_empty());
    assert_eq!(next_due(&sim), None);
}

#[test]
fn a_release_stopped_by_its_gates_gives_its_traffic_back() {
    let mut sim = Sim::second_release_at_10();
    let Some(Action::Fail {
        weights,
        log,
        stack,
    }) = stop(&sim.view)
    else {
        panic!("a failure")
    };
    assert_eq!(stack, "app-prod-2");
    assert_eq!(weights["app-prod-1"], 100);
    sim.store(&weights, &log);
    sim.check();
    assert!(sim.view.log.is_failed("app-prod-2"));
    assert_eq!(next_due(&sim), None);
}
