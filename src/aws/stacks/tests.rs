//! Stack phases, deploy digests and the tag and parameter helpers.

use super::*;

#[test]
fn phases() {
    assert_eq!(Phase::of(&StackStatus::RollbackComplete), Phase::Dead);
    assert_eq!(
        Phase::of(&StackStatus::UpdateRollbackFailed),
        Phase::RollbackFailed
    );
    assert_eq!(
        Phase::of(&StackStatus::UpdateCompleteCleanupInProgress),
        Phase::InProgress
    );
    assert_eq!(Phase::of(&StackStatus::DeleteFailed), Phase::DeleteFailed);
    assert_eq!(Phase::of(&StackStatus::UpdateComplete), Phase::Stable);
}
