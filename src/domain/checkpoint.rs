//! The checkpoint lifecycle as a decision: a version in progress is
//! completed, failed or discarded; any version can later be reverted by
//! `revertToCheckpoint`. Pure, tested as a table below.

use super::CheckpointStatus;
use crate::error::AppError;

/// The lifecycle verbs of one checkpoint version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointVerb {
    /// IN_PROGRESS → COMPLETED.
    Complete,
    /// IN_PROGRESS → FAILED.
    Fail,
    /// IN_PROGRESS / COMPLETED / FAILED → REVERTED, this version alone
    /// (what the deprecated `updateCheckpointStatus(status: REVERTED)` did;
    /// `revertToCheckpoint` reverts every later version of a step).
    Discard,
}

impl CheckpointVerb {
    /// The status the verb moves a checkpoint to.
    pub fn target(self) -> CheckpointStatus {
        match self {
            CheckpointVerb::Complete => CheckpointStatus::Completed,
            CheckpointVerb::Fail => CheckpointStatus::Failed,
            CheckpointVerb::Discard => CheckpointStatus::Reverted,
        }
    }

    /// The verb that reaches `status`, for the deprecated
    /// `updateCheckpointStatus`; none reaches IN_PROGRESS.
    pub fn reaching(status: CheckpointStatus) -> Option<Self> {
        match status {
            CheckpointStatus::Completed => Some(CheckpointVerb::Complete),
            CheckpointStatus::Failed => Some(CheckpointVerb::Fail),
            CheckpointStatus::Reverted => Some(CheckpointVerb::Discard),
            CheckpointStatus::InProgress => None,
        }
    }
}

/// Decides a move of a checkpoint in `from` to `to` (a verb's target, or
/// a status no verb reaches): `to`, or `INVALID_TRANSITION`.
pub fn decide(from: CheckpointStatus, to: CheckpointStatus) -> Result<CheckpointStatus, AppError> {
    if !from.can_transition_to(to) {
        return Err(AppError::transition(
            "TaskCheckpoint",
            from,
            to,
            from.allowed_transitions(),
        ));
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckpointStatus::*;
    use CheckpointVerb::*;

    /// Which verbs each status accepts, in the order complete, fail, discard.
    #[test]
    fn each_status_accepts_exactly_its_verbs() {
        let table = [
            (InProgress, "yyy"),
            (Completed, "..y"),
            (Failed, "..y"),
            (Reverted, "..."),
        ];
        for (status, row) in table {
            for (verb, want) in [Complete, Fail, Discard].into_iter().zip(row.chars()) {
                assert_eq!(
                    decide(status, verb.target()).is_ok(),
                    want == 'y',
                    "{status:?} {verb:?}"
                );
            }
            assert!(
                decide(status, InProgress).is_err(),
                "nothing goes back to IN_PROGRESS"
            );
        }
        for verb in [Complete, Fail, Discard] {
            assert_eq!(CheckpointVerb::reaching(verb.target()), Some(verb));
        }
        assert_eq!(CheckpointVerb::reaching(InProgress), None);
    }
}
