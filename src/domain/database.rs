//! Names of the Aurora clones that back previews, and what RDS accepts as
//! a DB cluster identifier.

use crate::domain::naming::EnvKey;
use sha2::{Digest, Sha256};

/// RDS's limit on DB cluster and instance identifiers.
pub const MAX_IDENTIFIER: usize = 63;

/// Whether RDS accepts `id` as a DB cluster (or instance) identifier:
/// 1-63 letters, digits or hyphens, starting with a letter, with no two
/// hyphens in a row and no hyphen at the end.
pub fn is_valid_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_IDENTIFIER
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-')
}

/// The clone of `key`'s environment of `app`: `<app>-<env-slug>`, lower
/// case. A name RDS would find too long keeps its start and ends with a
/// hash of the whole, so two long branch names stay apart.
pub fn clone_identifier(app: &str, key: &EnvKey) -> String {
    let full = format!("{app}-{}", key.slug()).to_ascii_lowercase();
    if full.len() <= MAX_IDENTIFIER {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash = hex::encode(&digest[..4]);
    let head = full[..MAX_IDENTIFIER - hash.len() - 1].trim_end_matches('-');
    format!("{head}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_pull_request_clone_is_named_after_its_environment() {
        assert_eq!(clone_identifier("shop", &EnvKey::Pr(42)), "shop-pr-42");
    }

    #[test]
    fn identifiers_follow_the_rds_rules() {
        assert!(is_valid_identifier("shop-pr-42"));
        assert!(is_valid_identifier("a"));
        assert!(!is_valid_identifier(""));
        assert!(!is_valid_identifier("1shop"));
        assert!(!is_valid_identifier("shop--pr"));
        assert!(!is_valid_identifier("shop-"));
        assert!(!is_valid_identifier("shop_pr"));
        assert!(!is_valid_identifier(&"a".repeat(64)));
        assert!(is_valid_identifier(&"a".repeat(63)));
    }

    #[test]
    fn long_branch_names_are_cut_and_kept_apart() {
        let app = "a-twenty-four-char-app-x";
        let one = clone_identifier(app, &EnvKey::Branch("feature/a-very-long-name-one".into()));
        let two = clone_identifier(app, &EnvKey::Branch("feature/a-very-long-name-two".into()));
        assert!(one.len() <= MAX_IDENTIFIER, "{one}");
        assert!(is_valid_identifier(&one), "{one}");
        assert_ne!(one, two);
        assert!(
            one.starts_with("a-twenty-four-char-app-x-br-feature"),
            "{one}"
        );
    }

    proptest! {
        #[test]
        fn every_branch_gets_a_valid_identifier(branch in "\\PC{0,120}") {
            let id = clone_identifier("shop", &EnvKey::Branch(branch));
            prop_assert!(is_valid_identifier(&id), "{}", id);
        }
    }
}
