//! Which images of a repository to delete, and why: pure, so every rule is
//! tested without AWS.
//!
//! The rules, in order:
//! 1. an image something references (by tag or by digest) is kept;
//! 2. an image pushed or pulled within the window is kept, and so is one
//!    whose push time is unknown;
//! 3. an image that is part of a kept image (a platform manifest of a kept
//!    multi-platform index, or a signature of a kept image) is kept;
//! 4. anything else is deleted. Untagged images follow the same rules.

use super::reference::ImageRef;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// An image as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Option<DateTime<Utc>>,
    pub last_pull: Option<DateTime<Utc>>,
    /// Digests of images this one belongs to: the multi-platform indexes
    /// that list it, or the image it is a signature or SBOM of.
    pub part_of: Vec<String>,
}

/// A reference to an image, and who holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Use {
    /// "stack demo-pr-3", "task definition web:12".
    pub by: String,
    pub image: ImageRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Delete,
}

/// Why an image is kept or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Referenced by these users (sorted, at least one).
    InUse(Vec<String>),
    /// Pushed or pulled this long ago, inside the window.
    Recent {
        pulled: bool,
        age: Duration,
        window: Duration,
    },
    /// The registry reports no push time: too little to go on.
    UnknownAge,
    /// Belongs to this image, which is kept.
    PartOf(String),
    /// Nothing references it and it has been idle longer than the window.
    Unused {
        pushed: Duration,
        pulled: Option<Duration>,
        window: Duration,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InUse(users) => write!(f, "in use by {}", users.join(", ")),
            Reason::Recent {
                pulled,
                age,
                window,
            } => write!(
                f,
                "{} {} ago, inside the {} window",
                if *pulled { "pulled" } else { "pushed" },
                ago(*age),
                ago(*window)
            ),
            Reason::UnknownAge => write!(f, "push time unknown"),
            Reason::PartOf(digest) => write!(f, "part of {}, which is kept", short(digest)),
            Reason::Unused {
                pushed,
                pulled,
                window,
            } => {
                write!(f, "unreferenced; pushed {} ago", ago(*pushed))?;
                match pulled {
                    Some(pulled) => write!(f, ", last pulled {} ago", ago(*pulled))?,
                    None => write!(f, ", never pulled")?,
                }
                write!(f, " (window {})", ago(*window))
            }
        }
    }
}

/// What to do with one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub digest: String,
    pub tags: Vec<String>,
    pub verdict: Verdict,
    pub reason: Reason,
}

/// Decides every image of `repository`: one decision per image, oldest
/// push first. `uses` may name other repositories; those are ignored.
pub fn plan(
    repository: &str,
    images: &[Image],
    uses: &[Use],
    now: DateTime<Utc>,
    window: Duration,
) -> Vec<Decision> {
    // Who references each digest and each tag of this repository.
    let mut by_digest: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut by_tag: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for u in uses.iter().filter(|u| u.image.repository == repository) {
        if let Some(digest) = &u.image.digest {
            by_digest.entry(digest).or_default().insert(&u.by);
        }
        if let Some(tag) = &u.image.tag {
            by_tag.entry(tag).or_default().insert(&u.by);
        }
    }

    let mut decisions: Vec<Decision> = images
        .iter()
        .map(|image| {
            let mut users: BTreeSet<&str> = BTreeSet::new();
            users.extend(by_digest.get(image.digest.as_str()).into_iter().flatten());
            for tag in &image.tags {
                users.extend(by_tag.get(tag.as_str()).into_iter().flatten());
            }
            let (verdict, reason) = if !users.is_empty() {
                let users = users.into_iter().map(str::to_owned).collect();
                (Verdict::Keep, Reason::InUse(users))
            } else {
                by_age(image, now, window)
            };
            Decision {
                digest: image.digest.clone(),
                tags: image.tags.clone(),
                verdict,
                reason,
            }
        })
        .collect();

    // Keep what belongs to a kept image, through any depth of nesting.
    loop {
        let kept: BTreeSet<&str> = decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Keep)
            .map(|d| d.digest.as_str())
            .collect();
        let rescued: Vec<(usize, String)> = images
            .iter()
            .enumerate()
            .filter(|(i, _)| decisions[*i].verdict == Verdict::Delete)
            .filter_map(|(i, image)| {
                let parent = image.part_of.iter().find(|p| kept.contains(p.as_str()))?;
                Some((i, parent.clone()))
            })
            .collect();
        if rescued.is_empty() {
            break;
        }
        for (i, parent) in rescued {
            decisions[i].verdict = Verdict::Keep;
            decisions[i].reason = Reason::PartOf(parent);
        }
    }

    let pushed: BTreeMap<&str, Option<DateTime<Utc>>> = images
        .iter()
        .map(|i| (i.digest.as_str(), i.pushed_at))
        .collect();
    decisions.sort_by(|a, b| {
        let at = |d: &Decision| pushed.get(d.digest.as_str()).copied().flatten();
        at(a).cmp(&at(b)).then_with(|| a.digest.cmp(&b.digest))
    });
    decisions
}

/// Rule 2 and 4 for an unreferenced image.
fn by_age(image: &Image, now: DateTime<Utc>, window: Duration) -> (Verdict, Reason) {
    let Some(pushed_at) = image.pushed_at else {
        return (Verdict::Keep, Reason::UnknownAge);
    };
    // A time in the future (clock skew) counts as now.
    let age = |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default();
    let pushed = age(pushed_at);
    let pulled = image.last_pull.map(age);
    let idle = pulled.map_or(pushed, |p| p.min(pushed));
    if idle < window {
        let pulled = pulled.is_some_and(|p| p < pushed);
        let reason = Reason::Recent {
            pulled,
            age: idle,
            window,
        };
        return (Verdict::Keep, reason);
    }
    let reason = Reason::Unused {
        pushed,
        pulled,
        window,
    };
    (Verdict::Delete, reason)
}

/// A coarse age, rounded down: "45s", "12m", "5h", "36h", "3d".
pub fn ago(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `sha256:0123456789ab`: enough of a digest to tell images apart in a log.
pub fn short(digest: &str) -> &str {
    let end = digest
        .find(':')
        .map_or(digest.len(), |i| (i + 13).min(digest.len()));
    digest.get(..end).unwrap_or(digest)
}

#[cfg(test)]
mod tests;
