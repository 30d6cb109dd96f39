//! How long each phase of a deploy took, for the PR comment and `/metrics`:
//! the stack operation, the service's tasks running, the load balancer's
//! targets healthy, and the app answering the ready check.
//!
//! Each phase ends when a pass first sees it done, counted from the start of
//! the stack operation, so a phase is as exact as the polls that watch it.

use std::time::Duration;

/// A phase of a deploy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The CloudFormation operation, until the stack is complete.
    Stack,
    /// Then until the service runs all its tasks.
    Tasks,
    /// Then until every target of the load balancer is healthy.
    Targets,
    /// Then until the URL answers the ready check.
    Answering,
}

impl Step {
    /// The `phase` label on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Step::Stack => "stack",
            Step::Tasks => "tasks",
            Step::Targets => "targets",
            Step::Answering => "answering",
        }
    }

    /// The words on the PR comment.
    pub fn words(self) -> &'static str {
        match self {
            Step::Stack => "stack",
            Step::Tasks => "tasks running",
            Step::Targets => "targets healthy",
            Step::Answering => "app answering",
        }
    }
}

/// One phase of a deploy and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    pub step: Step,
    pub took: Duration,
}

/// When, after its stack operation began, a deploy was first seen past each
/// phase. The phases before the ready check are watched only while it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub stack: Duration,
    pub tasks: Option<Duration>,
    pub targets: Option<Duration>,
}

impl Marks {
    /// The phases of a deploy found ready at `ready` after its stack
    /// operation began; `checked` when the ready check ran, whose wait is a
    /// phase of its own. A phase never seen done before the next one is
    /// left out rather than guessed.
    pub fn phases(&self, ready: Duration, checked: bool) -> Vec<Phase> {
        let mut phases = vec![Phase {
            step: Step::Stack,
            took: self.stack,
        }];
        let mut last = self.stack;
        for (step, mark) in [(Step::Tasks, self.tasks), (Step::Targets, self.targets)] {
            if let Some(at) = mark {
                phases.push(Phase {
                    step,
                    took: at.saturating_sub(last),
                });
                last = last.max(at);
            }
        }
        if checked {
            phases.push(Phase {
                step: Step::Answering,
                took: ready.saturating_sub(last),
            });
        }
        phases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn took(phases: &[Phase]) -> Vec<(&'static str, u64)> {
        phases
            .iter()
            .map(|p| (p.step.label(), p.took.as_secs()))
            .collect()
    }

    #[test]
    fn each_phase_runs_from_the_end_of_the_one_before() {
        let marks = Marks {
            stack: secs(70),
            tasks: Some(secs(85)),
            targets: Some(secs(93)),
        };
        assert_eq!(
            took(&marks.phases(secs(95), true)),
            [
                ("stack", 70),
                ("tasks", 15),
                ("targets", 8),
                ("answering", 2)
            ]
        );
    }

    #[test]
    fn without_a_ready_check_the_stack_is_the_whole_deploy() {
        let marks = Marks {
            stack: secs(40),
            ..Marks::default()
        };
        assert_eq!(took(&marks.phases(secs(40), false)), [("stack", 40)]);
    }

    #[test]
    fn a_phase_never_seen_is_left_out_not_guessed() {
        // The targets were never seen healthy before the app answered.
        let marks = Marks {
            stack: secs(30),
            tasks: Some(secs(45)),
            targets: None,
        };
        assert_eq!(
            took(&marks.phases(secs(50), true)),
            [("stack", 30), ("tasks", 15), ("answering", 5)]
        );
    }
}
