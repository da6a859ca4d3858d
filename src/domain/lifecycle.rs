//! Status enums and their allowed transitions.

use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

/// Implements the transition table for one lifecycle enum.
///
/// `allowed` lists, for each state, the states it may move to; everything else
/// is refused with `INVALID_TRANSITION`.
macro_rules! lifecycle {
    ($ty:ident { $($from:ident => [$($to:ident),*]),* $(,)? }) => {
        impl $ty {
            /// The states this one may move to, per DESIGN.md's lifecycle table.
            pub fn allowed_transitions(self) -> &'static [$ty] {
                match self {
                    $($ty::$from => &[$($ty::$to),*],)*
                }
            }

            /// Whether the lifecycle allows moving from `self` to `to`.
            pub fn can_transition_to(self, to: $ty) -> bool {
                self.allowed_transitions().contains(&to)
            }

            /// Whether no transition leaves this state.
            pub fn is_terminal(self) -> bool {
                self.allowed_transitions().is_empty()
            }

        }
    };
}

/// Lifecycle of a project: `ACTIVE → COMPLETED / FAILED / CANCELLED`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ProjectStatus {
    /// Work is going on; tasks may be created and run.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// Finished successfully (terminal).
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// Given up after a failure (terminal).
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Stopped on purpose before it finished (terminal).
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

lifecycle!(ProjectStatus {
    Active => [Completed, Failed, Cancelled],
    Completed => [],
    Failed => [],
    Cancelled => [],
});

/// Lifecycle of a task:
/// `PENDING → WORKING ⇄ WAITING_FOR_HITL → COMPLETED / FAILED / CANCELLED`,
/// and `FAILED → PENDING` on retry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum TaskStatus {
    /// Created, not yet picked up by its agent.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// An agent is working on it.
    #[sea_orm(string_value = "WORKING")]
    Working,
    /// Paused until a human answers a HITL request.
    #[sea_orm(string_value = "WAITING_FOR_HITL")]
    WaitingForHitl,
    /// Done, with its output (terminal).
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// Stopped with an error; may be retried.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Stopped on purpose (terminal).
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

lifecycle!(TaskStatus {
    Pending => [Working, Cancelled],
    Working => [WaitingForHitl, Completed, Failed, Cancelled],
    WaitingForHitl => [Working, Failed, Cancelled],
    Completed => [],
    Failed => [Pending],
    Cancelled => [],
});

/// Lifecycle of a session: `ACTIVE ⇄ SUSPENDED → TERMINATED`, and
/// `ACTIVE / SUSPENDED → EXPIRED` by inactivity timeout.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum SessionStatus {
    /// In use.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// Put aside by its user; contexts are kept.
    #[sea_orm(string_value = "SUSPENDED")]
    Suspended,
    /// Ended by its user (terminal).
    #[sea_orm(string_value = "TERMINATED")]
    Terminated,
    /// Ended by the inactivity timeout (terminal).
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
}

lifecycle!(SessionStatus {
    Active => [Suspended, Terminated, Expired],
    Suspended => [Active, Terminated, Expired],
    Terminated => [],
    Expired => [],
});

/// Lifecycle of a task checkpoint: `IN_PROGRESS → COMPLETED / FAILED / REVERTED`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum CheckpointStatus {
    /// The step this checkpoint belongs to is still running.
    #[sea_orm(string_value = "IN_PROGRESS")]
    InProgress,
    /// The step finished with this state.
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// The step failed with this state.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Superseded by a revert to an earlier checkpoint; kept for history.
    #[sea_orm(string_value = "REVERTED")]
    Reverted,
}

lifecycle!(CheckpointStatus {
    InProgress => [Completed, Failed, Reverted],
    Completed => [Reverted],
    Failed => [Reverted],
    Reverted => [],
});

/// Lifecycle of a HITL request: `PENDING → APPROVED / REJECTED / AMENDED`
/// (or `EXPIRED`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum HitlStatus {
    /// Waiting for a human.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// The human approved; the task resumes.
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    /// The human rejected; the task fails.
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    /// The human answered with changes; the task resumes with them.
    #[sea_orm(string_value = "AMENDED")]
    Amended,
    /// Nobody answered in time.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
}

lifecycle!(HitlStatus {
    Pending => [Approved, Rejected, Amended, Expired],
    Approved => [],
    Rejected => [],
    Amended => [],
    Expired => [],
});

/// What happens to the task when a HITL request expires unanswered.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum HitlExpiryPolicy {
    /// The task fails (the default: no answer is not a yes).
    #[sea_orm(string_value = "FAIL_TASK")]
    FailTask,
    /// The task resumes as if approved.
    #[sea_orm(string_value = "RESUME_TASK")]
    ResumeTask,
}

/// A human's answer to a HITL request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
pub enum HitlDecision {
    /// Go ahead as proposed.
    Approve,
    /// Do not go ahead; the task fails with the response as its error.
    Reject,
    /// Go ahead with the changes given in the response.
    Amend,
}

impl HitlDecision {
    /// The request status a decision leads to.
    pub fn resulting_status(self) -> HitlStatus {
        match self {
            HitlDecision::Approve => HitlStatus::Approved,
            HitlDecision::Reject => HitlStatus::Rejected,
            HitlDecision::Amend => HitlStatus::Amended,
        }
    }

    /// The task status a decision leads to: resumed, or failed on rejection.
    pub fn resulting_task_status(self) -> TaskStatus {
        match self {
            HitlDecision::Reject => TaskStatus::Failed,
            HitlDecision::Approve | HitlDecision::Amend => TaskStatus::Working,
        }
    }
}

/// The live state of one persona's agent in a project. Any state may follow
/// any other: agents report what they are doing, the server does not decide it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum AgentState {
    /// Connected, nothing to do.
    #[sea_orm(string_value = "IDLE")]
    Idle,
    /// Working on a task.
    #[sea_orm(string_value = "WORKING")]
    Working,
    /// Blocked on something outside itself (a human, another agent).
    #[sea_orm(string_value = "WAITING")]
    Waiting,
    /// Hit an error it could not recover from.
    #[sea_orm(string_value = "ERROR")]
    Error,
    /// Not connected.
    #[sea_orm(string_value = "OFFLINE")]
    Offline,
    /// Silent for longer than `CEREBRAL_AGENT_STALE_SECONDS`: set by the
    /// server, never reported; the next heartbeat or report clears it.
    #[sea_orm(string_value = "STALE")]
    Stale,
}

/// What an artifact is. Stored as a stable string.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ArtifactKind {
    /// A specification or brief (e.g. a project brief).
    #[sea_orm(string_value = "SPEC")]
    Spec,
    /// A plan or requirements document (e.g. a PRD).
    #[sea_orm(string_value = "PLAN")]
    Plan,
    /// An architecture document.
    #[sea_orm(string_value = "ARCHITECTURE")]
    Architecture,
    /// A user story.
    #[sea_orm(string_value = "STORY")]
    Story,
    /// Source code.
    #[sea_orm(string_value = "CODE")]
    Code,
    /// Tests or test results.
    #[sea_orm(string_value = "TEST")]
    Test,
    /// A log.
    #[sea_orm(string_value = "LOG")]
    Log,
    /// Any other document.
    #[sea_orm(string_value = "DOCUMENT")]
    Document,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    /// Every (state, target) pair of every lifecycle against DESIGN.md's table,
    /// written out independently of the macro input.
    #[test]
    fn task_transition_table_matches_the_design() {
        use TaskStatus::*;
        let legal = [
            (Pending, Working),
            (Pending, Cancelled),
            (Working, WaitingForHitl),
            (Working, Completed),
            (Working, Failed),
            (Working, Cancelled),
            (WaitingForHitl, Working),
            (WaitingForHitl, Failed),
            (WaitingForHitl, Cancelled),
            (Failed, Pending),
        ];
        for from in TaskStatus::iter() {
            for to in TaskStatus::iter() {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        assert!(Completed.is_terminal() && Cancelled.is_terminal());
        assert!(!Failed.is_terminal());
    }

    #[test]
    fn project_session_checkpoint_and_hitl_tables_match_the_design() {
        for from in ProjectStatus::iter() {
            for to in ProjectStatus::iter() {
                let legal = from == ProjectStatus::Active && to != ProjectStatus::Active;
                assert_eq!(from.can_transition_to(to), legal, "{from:?} -> {to:?}");
            }
        }
        use SessionStatus::*;
        let legal = [
            (Active, Suspended),
            (Active, Terminated),
            (Active, Expired),
            (Suspended, Active),
            (Suspended, Terminated),
            (Suspended, Expired),
        ];
        for from in SessionStatus::iter() {
            for to in SessionStatus::iter() {
                assert_eq!(from.can_transition_to(to), legal.contains(&(from, to)));
            }
        }
        for from in HitlStatus::iter() {
            for to in HitlStatus::iter() {
                let legal = from == HitlStatus::Pending && to != HitlStatus::Pending;
                assert_eq!(from.can_transition_to(to), legal);
            }
        }
        assert!(CheckpointStatus::InProgress.can_transition_to(CheckpointStatus::Completed));
        assert!(!CheckpointStatus::Reverted.can_transition_to(CheckpointStatus::InProgress));
    }
}
