//! Branch-name globs from the config, such as `release/*`, and repository
//! globs, such as `acme/*`.
//!
//! `*` and `?` stay within one path segment, so `release/*` matches
//! `release/1.2` but not `release/1.2/hotfix`; `**` crosses segments.
//! Repository globs ignore case, as GitHub does in `owner/name`.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Deserializer};

/// A set of branch globs; empty matches nothing.
#[derive(Clone, Debug, Default)]
pub struct Globs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Globs {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Globs, String> {
        Globs::build(patterns, false)
    }

    /// Globs over `owner/name`, case-insensitive as GitHub's names are.
    pub fn repositories<S: AsRef<str>>(patterns: &[S]) -> Result<Globs, String> {
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if !pattern.contains('/') {
                return Err(format!(
                    "{pattern:?} must look like owner/name (globs allowed: acme/*)"
                ));
            }
        }
        Globs::build(patterns, true)
    }

    fn build<S: AsRef<str>>(patterns: &[S], ignore_case: bool) -> Result<Globs, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            builder.add(glob(pattern.as_ref(), ignore_case)?);
        }
        Ok(Globs {
            patterns: patterns.iter().map(|p| p.as_ref().to_owned()).collect(),
            set: builder.build().map_err(|e| e.to_string())?,
        })
    }

    pub fn matches(&self, branch: &str) -> bool {
        self.set.is_match(branch)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

fn glob(pattern: &str, ignore_case: bool) -> Result<Glob, String> {
    if pattern.is_empty() {
        return Err("an empty glob matches nothing".into());
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .case_insensitive(ignore_case)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("{pattern:?} is not a valid glob: {}", e.kind()))
}

impl<'de> Deserialize<'de> for Globs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let patterns = Vec::<String>::deserialize(deserializer)?;
        Globs::new(&patterns).map_err(serde::de::Error::custom)
    }
}

/// Repository globs (`acme/*`, `acme/web`) read from the config.
#[derive(Clone, Debug, Default)]
pub struct RepoGlobs(pub Globs);

impl<'de> Deserialize<'de> for RepoGlobs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let patterns = Vec::<String>::deserialize(deserializer)?;
        Globs::repositories(&patterns)
            .map(RepoGlobs)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Globs;

    #[test]
    fn star_stays_within_a_segment() {
        let globs = Globs::new(&["release/*", "preview/**", "main"]).unwrap();
        assert!(globs.matches("release/1.2"));
        assert!(!globs.matches("release/1.2/hotfix"));
        assert!(globs.matches("preview/a/b"));
        assert!(globs.matches("main"));
        assert!(!globs.matches("mainline"));
        assert!(!globs.matches("Release/1.2"));
    }

    #[test]
    fn repository_globs_stay_within_an_owner_and_ignore_case() {
        let globs = Globs::repositories(&["acme/*", "other/web"]).unwrap();
        assert!(globs.matches("acme/web"));
        assert!(globs.matches("ACME/Api"));
        assert!(globs.matches("Other/Web"));
        assert!(!globs.matches("other/web-2"));
        assert!(!globs.matches("acme-labs/web"));
        assert!(!globs.matches("evil/acme/web"));
        let err = Globs::repositories(&["acme"]).unwrap_err();
        assert!(err.contains("owner/name"), "{err}");
    }

    #[test]
    fn empty_matches_nothing() {
        assert!(!Globs::default().matches("anything"));
    }

    #[test]
    fn invalid_globs_are_named() {
        let err = Globs::new(&["release/["]).unwrap_err();
        assert!(err.contains("release/["), "{err}");
        assert!(Globs::new(&[""]).is_err());
    }
}
