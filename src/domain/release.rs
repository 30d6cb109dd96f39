//! Production releases: canary schedules, title directives (and who may
//! give them), and the weight plan that moves traffic from the old stack to
//! the new one.
//!
//! Weights are Route53 weights out of [`TOTAL`]; every plan keeps the pair
//! consistent (old + new = TOTAL), so traffic is never split over more or
//! less than all of it.

use super::commands::Role;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The sum of the weights of the live pair. Route53 allows 0-255.
pub const TOTAL: u8 = 100;

/// One canary step: move to `percent` of traffic, then bake for `bake`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub percent: u8,
    #[serde(with = "humantime_serde")]
    pub bake: Duration,
}

/// The steps of one release, ending at 100%.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

impl Schedule {
    /// 10% → bake → 50% → bake → 100%.
    pub fn default_canary(bake: Duration) -> Schedule {
        Schedule {
            steps: vec![
                Step { percent: 10, bake },
                Step { percent: 50, bake },
                Step {
                    percent: 100,
                    bake: Duration::ZERO,
                },
            ],
        }
    }

    /// Straight to 100%.
    pub fn immediate() -> Schedule {
        Schedule {
            steps: vec![Step {
                percent: 100,
                bake: Duration::ZERO,
            }],
        }
    }

    /// Builds a schedule from percents, each followed by `bake` (none after
    /// 100). Percents must rise strictly and end at 100.
    pub fn from_percents(percents: &[u8], bake: Duration) -> Result<Schedule, String> {
        if percents.is_empty() {
            return Err("a schedule needs at least one step".into());
        }
        if percents.windows(2).any(|w| w[0] >= w[1]) {
            return Err("steps must rise".into());
        }
        if percents.last() != Some(&100) || percents.iter().any(|p| *p == 0 || *p > 100) {
            return Err("steps are between 1 and 100 and end at 100".into());
        }
        Ok(Schedule {
            steps: percents
                .iter()
                .map(|&percent| Step {
                    percent,
                    bake: if percent == 100 { Duration::ZERO } else { bake },
                })
                .collect(),
        })
    }

    /// The next step for a release that has `weight` of the traffic now.
    pub fn next(&self, weight: u8) -> Option<Step> {
        self.steps.iter().copied().find(|s| s.percent > weight)
    }

    /// The bake time after the step that reached `weight` (zero if none).
    pub fn bake_after(&self, weight: u8) -> Duration {
        self.steps
            .iter()
            .find(|s| s.percent == weight)
            .map_or(Duration::ZERO, |s| s.bake)
    }
}

/// A schedule asked for in the merged PR's title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// `[hotfix]` or `[revert]`: straight to 100%.
    Immediate,
    /// `[interval: 300, 180, 60, 10]`: as many equal steps as numbers, each
    /// number the bake in seconds after its step.
    Intervals(Vec<Duration>),
    /// `[canary: 5, 25, 100]`: these percents, with the configured bake.
    Percents(Vec<u8>),
}

/// Finds a schedule directive in a PR title; the first one wins. Unknown
/// or malformed brackets are ignored (titles are free text).
pub fn directive(title: &str) -> Option<Directive> {
    written_directive(title).map(|(_, directive)| directive)
}

/// [`directive`], with the directive as written (`[hotfix]`).
pub fn written_directive(title: &str) -> Option<(&str, Directive)> {
    let mut rest = title;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let Some(end) = after.find(']') else { break };
        let written = &rest[start..start + end + 2];
        let inner = after[..end].trim().to_ascii_lowercase();
        rest = &after[end + 1..];
        if inner == "hotfix" || inner == "revert" {
            return Some((written, Directive::Immediate));
        }
        let Some((key, values)) = inner.split_once(':') else {
            continue;
        };
        let numbers: Option<Vec<u64>> = values.split(',').map(|v| v.trim().parse().ok()).collect();
        let Some(numbers) = numbers.filter(|n| !n.is_empty() && n.len() <= 20) else {
            continue;
        };
        match key.trim() {
            "interval" | "intervals" if numbers.iter().all(|n| *n <= 86_400) => {
                return Some((
                    written,
                    Directive::Intervals(numbers.into_iter().map(Duration::from_secs).collect()),
                ));
            }
            "canary" | "steps" => {
                let percents: Option<Vec<u8>> =
                    numbers.iter().map(|n| u8::try_from(*n).ok()).collect();
                if let Some(percents) = percents {
                    return Some((written, Directive::Percents(percents)));
                }
            }
            _ => {}
        }
    }
    None
}

impl Directive {
    /// The schedule this directive means; `bake` is the configured default.
    pub fn schedule(&self, bake: Duration) -> Result<Schedule, String> {
        match self {
            Directive::Immediate => Ok(Schedule::immediate()),
            Directive::Percents(percents) => Schedule::from_percents(percents, bake),
            Directive::Intervals(bakes) => {
                let n = bakes.len() as u32;
                let steps = bakes
                    .iter()
                    .enumerate()
                    .map(|(i, bake)| Step {
                        percent: u8::try_from((u32::from(TOTAL) * (i as u32 + 1)).div_ceil(n))
                            .unwrap_or(TOTAL),
                        bake: *bake,
                    })
                    .collect();
                Ok(Schedule { steps })
            }
        }
    }
}

/// The permission that lets a merge change how its release reaches
/// production: a directive skips the canary that guards everyone's traffic.
pub const DIRECTING_ROLE: Role = Role::Maintain;

/// A title directive a release did not follow, because whoever merged its
/// PR may not change the schedule. Kept in the release log, so compact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// The release's stack.
    pub stack: String,
    /// The directive as written, e.g. `[hotfix]`.
    pub directive: String,
    /// Who merged, when GitHub says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Their permission on the repository then (GitHub's name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Ignored {
    /// Rules on the directive `written` in the title of the PR merged by
    /// `by`, whose role is `role`: `None` when it is to be followed.
    pub fn rule(
        stack: &str,
        written: &str,
        by: Option<&str>,
        role: Option<Role>,
    ) -> Option<Ignored> {
        if by.is_some() && role >= Some(DIRECTING_ROLE) {
            return None;
        }
        // A directive may be long; the log keeps what identifies it.
        let directive: String = written.chars().take(40).collect();
        Some(Ignored {
            stack: stack.to_owned(),
            directive,
            by: by.map(str::to_owned),
            role: role.map(|r| r.name().to_owned()),
        })
    }
}

/// In plain words, for the Deployment, the log and `prod history`.
impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needed = DIRECTING_ROLE.name();
        match (&self.by, &self.role) {
            (Some(by), Some(role)) => write!(
                f,
                "{} ignored: merged by @{by}, who has {role} permission, not {needed} or admin",
                self.directive
            ),
            (Some(by), None) => write!(
                f,
                "{} ignored: merged by @{by}, who has no permission on the repository",
                self.directive
            ),
            (None, _) => write!(
                f,
                "{} ignored: GitHub does not say who merged it, and only {needed} or admin may change the steps",
                self.directive
            ),
        }
    }
}

/// The weights of the live pair after moving the new stack to `percent`.
pub fn pair(percent: u8) -> (u8, u8) {
    let new = percent.min(TOTAL);
    (new, TOTAL - new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BAKE: Duration = Duration::from_secs(300);

    #[test]
    fn default_canary_walks_10_50_100() {
        let s = Schedule::default_canary(BAKE);
        assert_eq!(s.next(0).unwrap().percent, 10);
        assert_eq!(s.next(10).unwrap().percent, 50);
        assert_eq!(s.next(50).unwrap().percent, 100);
        assert_eq!(s.next(100), None);
        assert_eq!(s.bake_after(10), BAKE);
        assert_eq!(s.bake_after(100), Duration::ZERO);
    }

    #[test]
    fn title_directives() {
        assert_eq!(directive("Fix login [hotfix]"), Some(Directive::Immediate));
        assert_eq!(directive("[Revert] bad change"), Some(Directive::Immediate));
        assert_eq!(
            directive("Roll slowly [interval: 300, 180, 60, 10]"),
            Some(Directive::Intervals(vec![
                Duration::from_secs(300),
                Duration::from_secs(180),
                Duration::from_secs(60),
                Duration::from_secs(10)
            ]))
        );
        assert_eq!(
            directive("[canary: 5, 25, 100] go"),
            Some(Directive::Percents(vec![5, 25, 100]))
        );
        assert_eq!(directive("[wip] [hotfix]"), Some(Directive::Immediate));
        assert_eq!(directive("no directive"), None);
        assert_eq!(directive("[interval: soon]"), None);
        assert_eq!(directive("[interval: 999999999999999999999]"), None);
        assert_eq!(directive("unclosed [hotfix"), None);
    }

    #[test]
    fn directives_as_written() {
        assert_eq!(
            written_directive("Fix [wip] then [HotFix] it"),
            Some(("[HotFix]", Directive::Immediate))
        );
        assert_eq!(
            written_directive("[canary: 5, 25, 100] go").map(|(w, _)| w),
            Some("[canary: 5, 25, 100]")
        );
        assert_eq!(written_directive("no directive"), None);
    }

    #[test]
    fn only_maintain_or_admin_direct_a_release() {
        let rule = |by, role| Ignored::rule("app-prod-1", "[hotfix]", by, role);
        assert_eq!(rule(Some("lead"), Some(Role::Maintain)), None);
        assert_eq!(rule(Some("owner"), Some(Role::Admin)), None);
        let writer = rule(Some("alice"), Some(Role::Write)).unwrap();
        assert_eq!(
            writer.to_string(),
            "[hotfix] ignored: merged by @alice, who has write permission, not maintain or admin"
        );
        assert_eq!(
            rule(Some("mallory"), None).unwrap().to_string(),
            "[hotfix] ignored: merged by @mallory, who has no permission on the repository"
        );
        // An unknown merger is never trusted, whatever role is passed.
        assert!(
            rule(None, Some(Role::Admin))
                .unwrap()
                .to_string()
                .contains("GitHub does not say who merged it")
        );
    }

    #[test]
    fn ignored_directives_are_kept_short() {
        let long = format!("[interval: {}]", ["1"; 20].join(", "));
        let ignored = Ignored::rule("s", &long, Some("a"), Some(Role::Read)).unwrap();
        assert_eq!(ignored.directive.chars().count(), 40);
    }

    #[test]
    fn intervals_spread_steps_evenly() {
        let s = directive("[interval: 300, 180, 60, 10]")
            .unwrap()
            .schedule(BAKE)
            .unwrap();
        let percents: Vec<u8> = s.steps.iter().map(|s| s.percent).collect();
        assert_eq!(percents, vec![25, 50, 75, 100]);
        assert_eq!(s.bake_after(25), Duration::from_secs(300));
    }

    #[test]
    fn bad_percent_lists_are_refused() {
        assert!(Schedule::from_percents(&[50, 10, 100], BAKE).is_err());
        assert!(Schedule::from_percents(&[10, 50], BAKE).is_err());
        assert!(Schedule::from_percents(&[], BAKE).is_err());
    }

    proptest! {
        #[test]
        fn titles_never_panic(title in ".*") {
            if let Some(d) = directive(&title) {
                let _ = d.schedule(BAKE);
            }
        }

        #[test]
        fn interval_schedules_rise_to_100(bakes in prop::collection::vec(0u64..1000, 1..20)) {
            let s = Directive::Intervals(bakes.into_iter().map(Duration::from_secs).collect()).schedule(BAKE).unwrap();
            prop_assert_eq!(s.steps.last().unwrap().percent, 100);
            prop_assert!(s.steps.windows(2).all(|w| w[0].percent < w[1].percent));
        }

        #[test]
        fn pairs_always_sum_to_total(percent in any::<u8>()) {
            let (new, old) = pair(percent);
            prop_assert_eq!(u16::from(new) + u16::from(old), u16::from(TOTAL));
        }
    }
}
