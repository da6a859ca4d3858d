//! Status enums and their allowed transitions.

use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

/// Declares a status enum stored as text: the derives and attributes every
/// one of them needs, said once. A variant is stored, serialized and named
/// in GraphQL as its name in SCREAMING_SNAKE_CASE (`WaitingForHitl` is
/// `WAITING_FOR_HITL` in all three; a test checks they agree), so renaming
/// a variant renames a stored value: add a migration.
macro_rules! stored_enum {
    ($(#[$meta:meta])* pub enum $ty:ident { $($body:tt)* }) => {
        stored_enum! { @column "String(StringLen::N(32))" $(#[$meta])* pub enum $ty { $($body)* } }
    };
    // Event type names are longer than statuses: their column is wider.
    (@wide $(#[$meta:meta])* pub enum $ty:ident { $($body:tt)* }) => {
        stored_enum! { @column "String(StringLen::N(64))" $(#[$meta])* pub enum $ty { $($body)* } }
    };
    (@column $db:literal $(#[$meta:meta])* pub enum $ty:ident {
        $($(#[$vmeta:meta])* $variant:ident),* $(,)?
    }) => {
        $(#[$meta])*
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
        #[sea_orm(rs_type = "String", db_type = $db, rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $ty {
            $($(#[$vmeta])* $variant,)*
        }
    };
}

/// Declares a lifecycle: a [`stored_enum!`] whose every state lists the
/// states it may move to (`Pending => [Working, Cancelled]`); everything
/// else is refused with `INVALID_TRANSITION`.
macro_rules! lifecycle {
    ($(#[$meta:meta])* pub enum $ty:ident {
        $($(#[$vmeta:meta])* $from:ident => [$($to:ident),*]),* $(,)?
    }) => {
        stored_enum! {
            $(#[$meta])*
            pub enum $ty { $($(#[$vmeta])* $from),* }
        }

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

lifecycle! {
    /// Lifecycle of a project: `ACTIVE → COMPLETED / FAILED / CANCELLED`.
    pub enum ProjectStatus {
        /// Work is going on; tasks may be created and run.
        Active => [Completed, Failed, Cancelled],
        /// Finished successfully (terminal).
        Completed => [],
        /// Given up after a failure (terminal).
        Failed => [],
        /// Stopped on purpose before it finished (terminal).
        Cancelled => [],
    }
}

lifecycle! {
    /// Lifecycle of a task:
    /// `PENDING → WORKING ⇄ WAITING_FOR_HITL → COMPLETED / FAILED / CANCELLED`,
    /// and `FAILED → PENDING` on retry.
    pub enum TaskStatus {
        /// Created, not yet picked up by its agent.
        Pending => [Working, Cancelled],
        /// An agent is working on it.
        Working => [WaitingForHitl, Completed, Failed, Cancelled],
        /// Paused until a human answers a HITL request.
        WaitingForHitl => [Working, Failed, Cancelled],
        /// Done, with its output (terminal).
        Completed => [],
        /// Stopped with an error; may be retried.
        Failed => [Pending],
        /// Stopped on purpose (terminal).
        Cancelled => [],
    }
}

lifecycle! {
    /// Lifecycle of a session: `ACTIVE ⇄ SUSPENDED → TERMINATED`, and
    /// `ACTIVE / SUSPENDED → EXPIRED` by inactivity timeout.
    pub enum SessionStatus {
        /// In use.
        Active => [Suspended, Terminated, Expired],
        /// Put aside by its user; contexts are kept.
        Suspended => [Active, Terminated, Expired],
        /// Ended by its user (terminal).
        Terminated => [],
        /// Ended by the inactivity timeout (terminal).
        Expired => [],
    }
}

lifecycle! {
    /// Lifecycle of an epic: `PLANNED → IN_PROGRESS → DONE`. It moves by
    /// itself: to IN_PROGRESS when one of its stories starts, to DONE when
    /// every story of it is DONE.
    pub enum EpicStatus {
        /// Created; none of its stories has started.
        Planned => [InProgress],
        /// At least one story has started and not all are done.
        InProgress => [Done],
        /// Every story is DONE (terminal).
        Done => [],
    }
}

lifecycle! {
    /// Lifecycle of a story, the BMad Method's development cycle:
    /// `DRAFT → APPROVED → IN_PROGRESS → REVIEW → DONE`, and
    /// `REVIEW → IN_PROGRESS` when QA sends it back.
    pub enum StoryStatus {
        /// Drafted by the scrum master; waits for a person to approve it.
        Draft => [Approved],
        /// Approved; dev may start it.
        Approved => [InProgress],
        /// Dev is implementing it.
        InProgress => [Review],
        /// Implemented; QA is reviewing it.
        Review => [InProgress, Done],
        /// Accepted (terminal).
        Done => [],
    }
}

lifecycle! {
    /// Lifecycle of a task checkpoint: `IN_PROGRESS → COMPLETED / FAILED / REVERTED`.
    pub enum CheckpointStatus {
        /// The step this checkpoint belongs to is still running.
        InProgress => [Completed, Failed, Reverted],
        /// The step finished with this state.
        Completed => [Reverted],
        /// The step failed with this state.
        Failed => [Reverted],
        /// Superseded by a revert to an earlier checkpoint; kept for history.
        Reverted => [],
    }
}

lifecycle! {
    /// Lifecycle of a HITL request: `PENDING → APPROVED / REJECTED / AMENDED`
    /// (or `EXPIRED`).
    pub enum HitlStatus {
        /// Waiting for a human.
        Pending => [Approved, Rejected, Amended, Expired],
        /// The human approved; the task resumes.
        Approved => [],
        /// The human rejected; the task fails.
        Rejected => [],
        /// The human answered with changes; the task resumes with them.
        Amended => [],
        /// Nobody answered in time.
        Expired => [],
    }
}

stored_enum! {
    /// What happens to the task when a HITL request expires unanswered.
    pub enum HitlExpiryPolicy {
        /// The task fails (the default: no answer is not a yes).
        FailTask,
        /// The task resumes as if approved.
        ResumeTask,
    }
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

stored_enum! {
    /// A QA gate's decision on a story (BMad Method): whether it may be DONE.
    pub enum GateDecision {
        /// Meets its acceptance criteria; the story may be completed.
        Pass,
        /// Issues a person should weigh: waive them (a WAIVED gate) or send
        /// the story back.
        Concerns,
        /// Does not meet its criteria; the story goes back to dev.
        Fail,
        /// Issues accepted by a person (operator or admin) with a reason;
        /// the story may be completed.
        Waived,
    }
}

stored_enum! {
    /// How serious a QA finding is.
    pub enum IssueSeverity {
        /// Worth fixing some time.
        Low,
        /// Should be fixed soon.
        Medium,
        /// Must be fixed before release.
        High,
    }
}

stored_enum! {
    /// The verdict on one non-functional requirement in a QA gate.
    pub enum NfrStatus {
        /// Met.
        Pass,
        /// Met with reservations.
        Concerns,
        /// Not met.
        Fail,
    }
}

stored_enum! {
    /// The live state of one persona's agent in a project. Any state may follow
    /// any other: agents report what they are doing, the server does not decide it.
    pub enum AgentState {
        /// Connected, nothing to do.
        Idle,
        /// Working on a task.
        Working,
        /// Blocked on something outside itself (a human, another agent).
        Waiting,
        /// Hit an error it could not recover from.
        Error,
        /// Not connected.
        Offline,
        /// Silent for longer than `CEREBRAL_AGENT_STALE_SECONDS`: set by the
        /// server, never reported; the next heartbeat or report clears it.
        Stale,
    }
}

stored_enum! {
    /// What an artifact is. Stored as a stable string.
    pub enum ArtifactKind {
        /// A specification or brief (e.g. a project brief).
        Spec,
        /// A plan or requirements document (e.g. a PRD).
        Plan,
        /// An architecture document.
        Architecture,
        /// A user story.
        Story,
        /// Source code.
        Code,
        /// Tests or test results.
        Test,
        /// A log.
        Log,
        /// Any other document.
        Document,
    }
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

    /// What `stored_enum!` promises: a variant's stored value, its JSON
    /// (event payloads) and its GraphQL name are one string.
    fn names_agree<T>()
    where
        T: sea_orm::ActiveEnum<Value = String>
            + Iterable
            + serde::Serialize
            + async_graphql::resolver_utils::EnumType
            + std::fmt::Debug,
    {
        for variant in T::iter() {
            let stored = variant.to_value();
            let json = serde_json::to_value(variant).expect("serializes");
            let item = T::items().iter().find(|i| i.value == variant);
            assert_eq!(json.as_str(), Some(stored.as_str()), "{variant:?}");
            assert_eq!(item.map(|i| i.name), Some(stored.as_str()), "{variant:?}");
        }
    }

    #[test]
    fn stored_json_and_graphql_names_agree() {
        names_agree::<ProjectStatus>();
        names_agree::<TaskStatus>();
        names_agree::<SessionStatus>();
        names_agree::<EpicStatus>();
        names_agree::<StoryStatus>();
        names_agree::<GateDecision>();
        names_agree::<IssueSeverity>();
        names_agree::<NfrStatus>();
        names_agree::<CheckpointStatus>();
        names_agree::<HitlStatus>();
        names_agree::<HitlExpiryPolicy>();
        names_agree::<AgentState>();
        names_agree::<ArtifactKind>();
        names_agree::<crate::domain::EventType>();
        use sea_orm::ActiveEnum;
        assert_eq!(TaskStatus::WaitingForHitl.to_value(), "WAITING_FOR_HITL");
    }
}
