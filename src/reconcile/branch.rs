//! A long-lived branch's environment: kept at the branch head while the
//! branch exists and matches `preview.branches`, removed once it does not.
//!
//! It takes the same steps as a PR's preview, but has no PR to comment on:
//! its URL reaches GitHub as a Deployment and a commit status on the branch
//! head, and its little memory lives in this process.

use super::Controller;
use super::preview::{Desired, Env, Pass, destroyed, forgive_destroy};
use super::queue::Next;
use crate::domain::naming::EnvKey;

/// GitHub's limit on ref names, in bytes; a longer name is not a branch.
const MAX_BRANCH_BYTES: usize = 255;

impl Controller {
    pub(super) async fn branch(&self, branch: &str) -> anyhow::Result<Next> {
        let key = EnvKey::Branch(branch.to_owned());
        let preview = &self.config.preview;
        let wanted =
            preview.enabled && branch.len() <= MAX_BRANCH_BYTES && preview.branches.matches(branch);
        let head = if wanted {
            self.forge.branch_head(branch).await?
        } else {
            None
        };
        let mut sticky = self.sticky.detached(&key.slug());
        forgive_destroy(&mut sticky.memory, head.as_deref());
        let desired = match head {
            Some(sha) if sticky.memory.destroyed.as_deref() == Some(sha.as_str()) => {
                destroyed(&sticky.memory)
            }
            Some(sha) => Desired::Deployed { sha },
            None if !wanted => Desired::Absent {
                why: "the branch no longer matches `preview.branches`".into(),
                reversible: false,
            },
            None => Desired::Absent {
                why: "the branch was deleted".into(),
                reversible: false,
            },
        };
        let stack_name = key.stack_name(&self.config.app);
        let env = Env {
            key: &key,
            stack_name: &stack_name,
            pr: None,
            branch,
            touched_at: None,
            kept: preview.idle.exempt.matches(branch),
            since: None,
        };
        self.pursue(&env, &mut sticky, desired, Pass::default())
            .await
    }
}
