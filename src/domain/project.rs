//! The project lifecycle as a decision: which status and event each verb
//! leads to, and when completion is refused. Pure, tested as a table below.

use super::{EventType, ProjectStatus};
use crate::error::AppError;

/// The lifecycle verbs of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectVerb {
    /// ACTIVE → COMPLETED once no required task is open.
    Complete,
    /// ACTIVE → COMPLETED even with required tasks open (admins; they are
    /// cancelled and the event records `forced: true`).
    ForceComplete,
    /// ACTIVE → FAILED.
    Fail,
    /// ACTIVE → CANCELLED.
    Cancel,
}

impl ProjectVerb {
    /// The status the verb moves a project to and the event it appends.
    pub fn target(self) -> (ProjectStatus, EventType) {
        match self {
            ProjectVerb::Complete | ProjectVerb::ForceComplete => {
                (ProjectStatus::Completed, EventType::ProjectCompleted)
            }
            ProjectVerb::Fail => (ProjectStatus::Failed, EventType::ProjectFailed),
            ProjectVerb::Cancel => (ProjectStatus::Cancelled, EventType::ProjectCancelled),
        }
    }

    /// Whether the verb goes past open required tasks.
    pub fn forced(self) -> bool {
        self == ProjectVerb::ForceComplete
    }
}

/// Decides a verb on a project in status `from` with `open_required`
/// required tasks still open (read for `Complete` only): the next status
/// and event, or `INVALID_TRANSITION` with the reason.
pub fn decide(
    from: ProjectStatus,
    verb: ProjectVerb,
    open_required: u64,
) -> Result<(ProjectStatus, EventType), AppError> {
    let (to, event) = verb.target();
    let refused = || AppError::transition("Project", from, to, from.allowed_transitions());
    if !from.can_transition_to(to) {
        return Err(refused());
    }
    if verb == ProjectVerb::Complete && open_required > 0 {
        return Err(refused().because(format!(
            "{open_required} required task(s) are not finished; complete or cancel them first, or force completion"
        )));
    }
    Ok((to, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProjectStatus::*;
    use ProjectVerb::*;

    #[test]
    fn only_an_active_project_ends_and_completion_waits_for_required_work() {
        for verb in [Complete, ForceComplete, Fail, Cancel] {
            assert_eq!(
                decide(Active, verb, 0).ok(),
                Some(verb.target()),
                "{verb:?}"
            );
            for ended in [Completed, Failed, Cancelled] {
                assert!(decide(ended, verb, 0).is_err(), "{ended:?} {verb:?}");
            }
        }
        let e = decide(Active, Complete, 2).expect_err("open work");
        assert!(e.to_string().contains("2 required task(s)"), "{e}");
        assert!(decide(Active, ForceComplete, 2).is_ok());
        assert!(decide(Active, Fail, 2).is_ok() && decide(Active, Cancel, 2).is_ok());
        assert!(ForceComplete.forced() && !Complete.forced());
    }
}
