//! The task lifecycle as a decision: given what the service read (the
//! task's and its project's status, the open dependencies), what a verb
//! does — the next status, the event, the fields it resets — or why it is
//! refused. Pure, so every (status, verb) pair is tested as a table below.

use uuid::Uuid;

use super::{EventType, ProjectStatus, TaskStatus};
use crate::error::AppError;

/// The lifecycle verbs of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskVerb {
    /// PENDING → WORKING.
    Start,
    /// WORKING → WORKING with progress.
    Progress,
    /// WORKING → COMPLETED.
    Complete,
    /// WORKING / WAITING_FOR_HITL → FAILED.
    Fail,
    /// any live state → CANCELLED.
    Cancel,
    /// FAILED → PENDING.
    Retry,
}

impl TaskVerb {
    /// The status the verb moves a task to and the event it appends.
    pub fn target(self) -> (TaskStatus, EventType) {
        match self {
            TaskVerb::Start => (TaskStatus::Working, EventType::TaskStarted),
            TaskVerb::Progress => (TaskStatus::Working, EventType::TaskProgress),
            TaskVerb::Complete => (TaskStatus::Completed, EventType::TaskCompleted),
            TaskVerb::Fail => (TaskStatus::Failed, EventType::TaskFailed),
            TaskVerb::Cancel => (TaskStatus::Cancelled, EventType::TaskCancelled),
            TaskVerb::Retry => (TaskStatus::Pending, EventType::TaskRetried),
        }
    }
}

/// What the service knows about a task when a verb arrives.
#[derive(Debug, Clone)]
pub struct TaskFacts {
    /// The task's status.
    pub status: TaskStatus,
    /// The task's attempt number.
    pub attempt: i32,
    /// Its project's status.
    pub project: ProjectStatus,
    /// Dependencies not yet COMPLETED or CANCELLED (read for `Start` only).
    pub blockers: Vec<Uuid>,
    /// Whether the caller asked to start past open dependencies (an admin:
    /// the service checks the role).
    pub force: bool,
}

/// What a verb does to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTransition {
    /// The next status.
    pub to: TaskStatus,
    /// The event recorded.
    pub event: EventType,
    /// Progress the verb sets by itself (100 on completion, 0 on retry).
    pub progress: Option<i32>,
    /// Whether the previous error is cleared (retry).
    pub clears_error: bool,
    /// The next attempt number (retry).
    pub attempt: Option<i32>,
    /// Open dependencies a forced start went past.
    pub forced_past: Vec<Uuid>,
}

/// Decides a verb on a task: the transition, or `INVALID_TRANSITION` with
/// the reason (DESIGN.md's task lifecycle: a task starts only from PENDING
/// with its dependencies done or skipped, reports progress only while
/// WORKING, and changes only while its project is ACTIVE).
pub fn decide(facts: &TaskFacts, verb: TaskVerb) -> Result<TaskTransition, AppError> {
    let (to, event) = verb.target();
    let from = facts.status;
    let refused = || AppError::transition("Task", from, to, from.allowed_transitions());
    match verb {
        TaskVerb::Progress if from != TaskStatus::Working => {
            return Err(refused().because("progress is reported while WORKING"));
        }
        TaskVerb::Start if from != TaskStatus::Pending => {
            return Err(refused().because(
                "only a PENDING task starts; a task waiting for a human resumes when its HITL requests are answered",
            ));
        }
        TaskVerb::Progress => {}
        _ if from == to => return Err(refused()),
        _ => {}
    }
    if facts.project != ProjectStatus::Active {
        return Err(refused().because(format!(
            "its project is {}",
            sea_orm::ActiveEnum::to_value(&facts.project)
        )));
    }
    let mut forced_past = vec![];
    if verb == TaskVerb::Start && !facts.blockers.is_empty() {
        if !facts.force {
            return Err(refused().because(format!(
                "waiting for dependencies: {}",
                facts
                    .blockers
                    .iter()
                    .map(|b| crate::ids::encode(crate::ids::Kind::Task, *b))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        forced_past = facts.blockers.clone();
    }
    if verb != TaskVerb::Progress && !from.can_transition_to(to) {
        return Err(refused());
    }
    Ok(TaskTransition {
        to,
        event,
        progress: match verb {
            TaskVerb::Complete => Some(100),
            TaskVerb::Retry => Some(0),
            _ => None,
        },
        clears_error: verb == TaskVerb::Retry,
        attempt: (verb == TaskVerb::Retry).then_some(facts.attempt + 1),
        forced_past,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    fn facts(status: TaskStatus) -> TaskFacts {
        TaskFacts {
            status,
            attempt: 1,
            project: ProjectStatus::Active,
            blockers: vec![],
            force: false,
        }
    }

    /// Which verbs each status accepts in an ACTIVE project with no open
    /// dependency (DESIGN.md's task lifecycle), in the order
    /// start, progress, complete, fail, cancel, retry.
    #[test]
    fn each_status_accepts_exactly_its_verbs() {
        use TaskVerb::*;
        let verbs = [Start, Progress, Complete, Fail, Cancel, Retry];
        let table = [
            (Pending, "y...y."),
            (Working, ".yyyy."),
            (WaitingForHitl, "...yy."),
            (Completed, "......"),
            (Failed, ".....y"),
            (Cancelled, "......"),
        ];
        for (status, row) in table {
            for (verb, want) in verbs.iter().zip(row.chars()) {
                let got = decide(&facts(status), *verb);
                assert_eq!(got.is_ok(), want == 'y', "{status:?} {verb:?}: {got:?}");
                if let Ok(t) = got {
                    assert_eq!((t.to, t.event), verb.target());
                }
            }
        }
    }

    #[test]
    fn nothing_changes_in_a_project_that_is_not_active() {
        for project in [
            ProjectStatus::Completed,
            ProjectStatus::Failed,
            ProjectStatus::Cancelled,
        ] {
            let f = TaskFacts {
                project,
                ..facts(Working)
            };
            let e = decide(&f, TaskVerb::Complete).expect_err("refused");
            assert!(e.to_string().contains("its project is"), "{e}");
        }
    }

    #[test]
    fn open_dependencies_hold_a_start_unless_forced() {
        let b = Uuid::nil();
        let f = TaskFacts {
            blockers: vec![b],
            ..facts(Pending)
        };
        let e = decide(&f, TaskVerb::Start).expect_err("held");
        assert!(e.to_string().contains("waiting for dependencies"), "{e}");
        let forced = decide(&TaskFacts { force: true, ..f }, TaskVerb::Start).expect("forced");
        assert_eq!(forced.forced_past, vec![b]);
    }

    #[test]
    fn completion_and_retry_set_their_own_fields() {
        let done = decide(&facts(Working), TaskVerb::Complete).expect("complete");
        assert_eq!(
            (done.progress, done.clears_error, done.attempt),
            (Some(100), false, None)
        );
        let again = decide(&facts(Failed), TaskVerb::Retry).expect("retry");
        assert_eq!(
            (again.progress, again.clears_error, again.attempt),
            (Some(0), true, Some(2))
        );
        let progress = decide(&facts(Working), TaskVerb::Progress).expect("progress");
        assert_eq!(
            progress.progress, None,
            "the reported progress is the caller's"
        );
    }
}
