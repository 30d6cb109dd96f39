//! Names: repositories, environment keys, stack names and DNS labels.
//!
//! Stack names must match `[A-Za-z][-A-Za-z0-9]*` and be at most 128
//! characters. They are derived deterministically from the environment key so
//! that pullstack can find its stacks again after a restart, and they stay
//! unique for branch names that differ only in case, punctuation or unicode.

use sha2::{Digest, Sha256};
use std::fmt;

/// A GitHub repository, `owner/name`, validated against GitHub's rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName {
    pub owner: String,
    pub name: String,
}

impl RepoName {
    /// Parses `owner/name`; `None` if either part is empty or has characters
    /// GitHub does not allow.
    pub fn parse(full: &str) -> Option<RepoName> {
        let (owner, name) = full.split_once('/')?;
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 100
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(owner) && valid(name)).then(|| RepoName {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// What an environment belongs to. One environment, one stack, one sticky
/// comment, one GitHub Deployment environment.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum EnvKey {
    /// A pull request's preview.
    Pr(u64),
    /// A long-lived branch's environment; the branch name is kept verbatim.
    Branch(String),
}

impl EnvKey {
    /// A short, DNS-safe slug: `pr-42` or `br-<slug>-<hash>`.
    pub fn slug(&self) -> String {
        match self {
            EnvKey::Pr(number) => format!("pr-{number}"),
            EnvKey::Branch(branch) => {
                let slug = slugify(branch, 30);
                let hash = short_hash(branch);
                if slug.is_empty() {
                    format!("br-{hash}")
                } else {
                    format!("br-{slug}-{hash}")
                }
            }
        }
    }

    /// The CloudFormation stack name for this environment of `app`.
    pub fn stack_name(&self, app: &str) -> String {
        format!("{app}-{}", self.slug())
    }

    /// The PR whose environment of `app` a stack name is, if any: the
    /// inverse of [`EnvKey::stack_name`] for PRs.
    pub fn pr_of_stack(app: &str, stack: &str) -> Option<u64> {
        let number = stack.strip_prefix(app)?.strip_prefix("-pr-")?;
        let valid = !number.starts_with('0') && number.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| number.parse().ok()).flatten()
    }

    /// The GitHub Deployment environment name, shown in the PR's timeline.
    pub fn deployment_environment(&self) -> String {
        match self {
            EnvKey::Pr(number) => format!("pr-{number}"),
            // GitHub allows 255 characters.
            EnvKey::Branch(branch) if branch.chars().count() <= 248 => format!("branch/{branch}"),
            EnvKey::Branch(_) => self.slug(),
        }
    }

    /// The tag value identifying the environment on its stack.
    ///
    /// Stack tags are copied to every resource, and AWS allows at most 256
    /// characters from a small set in tag values. A branch name that does
    /// not fit is tagged by its slug instead; see [`Tagged`].
    pub fn tag_value(&self) -> String {
        match self {
            EnvKey::Pr(number) => format!("pr/{number}"),
            EnvKey::Branch(branch) if tag_safe(branch) => format!("branch/{branch}"),
            EnvKey::Branch(_) => format!("branch-slug/{}", self.slug()),
        }
    }

    /// Reads a key back from its tag value.
    pub fn from_tag_value(value: &str) -> Option<Tagged> {
        if let Some(number) = value.strip_prefix("pr/") {
            return number
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Tagged::Key(EnvKey::Pr(n)));
        }
        if let Some(slug) = value.strip_prefix("branch-slug/") {
            return slug
                .starts_with("br-")
                .then(|| Tagged::BranchSlug(slug.to_owned()));
        }
        value
            .strip_prefix("branch/")
            .filter(|b| !b.is_empty())
            .map(|b| Tagged::Key(EnvKey::Branch(b.to_owned())))
    }
}

/// What a stack's environment tag says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tagged {
    Key(EnvKey),
    /// A branch whose name could not be a tag value: find the branch whose
    /// slug this is.
    BranchSlug(String),
}

/// The longest tag value AWS accepts, less the `branch/` prefix.
const MAX_TAGGED_BRANCH: usize = 256 - "branch/".len();

/// Whether a branch name can be a tag value as it is: letters, digits,
/// spaces and `_ . : / = + - @` (the set every AWS service accepts).
fn tag_safe(branch: &str) -> bool {
    branch.chars().count() <= MAX_TAGGED_BRANCH
        && branch.chars().all(|c| {
            c.is_alphanumeric()
                || c == ' '
                || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
        })
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvKey::Pr(number) => write!(f, "PR #{number}"),
            EnvKey::Branch(branch) => write!(f, "branch {branch}"),
        }
    }
}

/// Lower-case ASCII letters and digits with single dashes between runs,
/// at most `max` characters, never starting or ending with a dash.
pub fn slugify(text: &str, max: usize) -> String {
    let mut slug = String::with_capacity(max);
    for c in text.chars() {
        if slug.len() >= max {
            break;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// The first 8 hex digits of the SHA-256 of `text`: enough to keep distinct
/// branch names apart once slugified.
fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..4])
}

/// Whether `name` is a valid CloudFormation stack name.
pub fn is_valid_stack_name(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The permanent shared stack of `app` (VPC, cluster, registry).
pub fn shared_stack_name(app: &str) -> String {
    format!("{app}-shared")
}

/// The production stack of a release of `sha`.
pub fn release_stack_name(app: &str, sha: &str) -> String {
    format!("{app}-prod-{}", short_sha(sha))
}

/// The environment slug of a release of `sha`, as its resources are named.
pub fn release_slug(sha: &str) -> String {
    format!("prod-{}", short_sha(sha))
}

/// The first seven characters of a commit id, as GitHub shows it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Whether `sha` is a full 40-digit lower-case hex commit id.
pub fn is_commit_sha(sha: &str) -> bool {
    sha.len() == 40 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pr_stack_name_gives_back_its_pr() {
        let name = EnvKey::Pr(42).stack_name("demo");
        assert_eq!(EnvKey::pr_of_stack("demo", &name), Some(42));
        for other in [
            "demo-pr-",
            "demo-pr-04",
            "demo-pr-4x",
            "demo-br-x-1234",
            "dem-pr-4",
            "demo-prod-abc",
        ] {
            assert_eq!(EnvKey::pr_of_stack("demo", other), None, "{other}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn release_and_shared_names() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(release_stack_name("demo", sha), "demo-prod-0123456");
        assert_eq!(release_slug(sha), "prod-0123456");
        assert_eq!(shared_stack_name("demo"), "demo-shared");
        assert!(is_valid_stack_name(&release_stack_name("demo", sha)));
    }

    #[test]
    fn pr_names() {
        let key = EnvKey::Pr(42);
        assert_eq!(key.stack_name("demo"), "demo-pr-42");
        assert_eq!(key.deployment_environment(), "pr-42");
        assert_eq!(
            EnvKey::from_tag_value(&key.tag_value()),
            Some(Tagged::Key(key))
        );
    }

    #[test]
    fn branch_names_keep_a_hash() {
        let key = EnvKey::Branch("release/2.0".into());
        let name = key.stack_name("demo");
        assert!(name.starts_with("demo-br-release-2-0-"), "{name}");
        assert_ne!(
            name,
            EnvKey::Branch("release-2.0".into()).stack_name("demo")
        );
        assert_ne!(
            name,
            EnvKey::Branch("Release/2.0".into()).stack_name("demo")
        );
    }

    #[test]
    fn unicode_only_branch_still_gets_a_valid_name() {
        let name = EnvKey::Branch("ветка/功能".into()).stack_name("demo");
        assert!(is_valid_stack_name(&name), "{name}");
    }

    #[test]
    fn repo_names() {
        assert!(RepoName::parse("octo/app").is_some());
        assert!(RepoName::parse("octo/app.rs").is_some());
        assert!(RepoName::parse("octo").is_none());
        assert!(RepoName::parse("octo/a/b").is_none());
        assert!(RepoName::parse("octo/../x").is_none());
        assert!(RepoName::parse("/app").is_none());
        assert!(RepoName::parse("octo/$(rm -rf)").is_none());
    }

    #[test]
    fn tag_values_reject_garbage() {
        assert_eq!(EnvKey::from_tag_value("pr/0"), None);
        assert_eq!(EnvKey::from_tag_value("pr/x"), None);
        assert_eq!(EnvKey::from_tag_value("branch/"), None);
        assert_eq!(EnvKey::from_tag_value("other"), None);
        assert_eq!(EnvKey::from_tag_value("branch-slug/x"), None);
    }

    #[test]
    fn hostile_branches_are_tagged_by_slug() {
        for branch in ["feature/#1", "a".repeat(250).as_str(), "x<script>"] {
            let key = EnvKey::Branch(branch.to_owned());
            assert_eq!(
                EnvKey::from_tag_value(&key.tag_value()),
                Some(Tagged::BranchSlug(key.slug())),
                "{branch}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_branch_gives_a_valid_stack_name(branch in any::<String>()) {
            let name = EnvKey::Branch(branch).stack_name("a-twenty-four-char-app-x");
            prop_assert!(is_valid_stack_name(&name), "{}", name);
        }

        #[test]
        fn long_branches_give_valid_names(branch in "[a-zA-Z0-9/._-]{200,250}") {
            let name = EnvKey::Branch(branch).stack_name("demo");
            prop_assert!(is_valid_stack_name(&name), "{}", name);
            prop_assert!(name.len() <= 128);
        }

        #[test]
        fn distinct_branches_give_distinct_names(a in any::<String>(), b in any::<String>()) {
            prop_assume!(a != b);
            prop_assert_ne!(EnvKey::Branch(a).stack_name("demo"), EnvKey::Branch(b).stack_name("demo"));
        }

        #[test]
        fn names_differing_in_case_or_punctuation_stay_apart(base in "[a-z]{1,20}") {
            let upper = base.to_uppercase();
            let dotted = format!("{base}.");
            let names = [
                EnvKey::Branch(base.clone()).stack_name("demo"),
                EnvKey::Branch(upper).stack_name("demo"),
                EnvKey::Branch(dotted).stack_name("demo"),
            ];
            prop_assert_ne!(&names[0], &names[1]);
            prop_assert_ne!(&names[0], &names[2]);
        }

        #[test]
        fn tag_value_round_trips(branch in ".+", number in 1u64..) {
            for key in [EnvKey::Branch(branch.clone()), EnvKey::Pr(number)] {
                let value = key.tag_value();
                prop_assert!(value.chars().count() <= 256);
                let expected = if value.starts_with("branch-slug/") {
                    Tagged::BranchSlug(key.slug())
                } else {
                    Tagged::Key(key)
                };
                prop_assert_eq!(EnvKey::from_tag_value(&value), Some(expected));
            }
        }
    }
}
