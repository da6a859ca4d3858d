//! The kinds of events the log records. Every change the services make
//! appends exactly one of these in the same transaction.

use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

stored_enum! {
    @wide
    /// What happened. Stored as a stable string; clients filter on it.
    pub enum EventType {
        /// A project was created (with its workflow's tasks, if any).
        ProjectCreated,
        /// A project moved to COMPLETED.
        ProjectCompleted,
        /// A project moved to FAILED.
        ProjectFailed,
        /// A project moved to CANCELLED.
        ProjectCancelled,
        /// A task was created.
        TaskCreated,
        /// A task moved to WORKING from PENDING.
        TaskStarted,
        /// A working task reported progress.
        TaskProgress,
        /// A task moved to WAITING_FOR_HITL.
        TaskWaitingForHitl,
        /// A task moved back to WORKING after a HITL answer.
        TaskResumed,
        /// A task moved to COMPLETED.
        TaskCompleted,
        /// A task moved to FAILED.
        TaskFailed,
        /// A task moved to CANCELLED.
        TaskCancelled,
        /// A failed task moved back to PENDING for another attempt.
        TaskRetried,
        /// An agent asked a human a question.
        HitlRequested,
        /// A human answered a HITL request.
        HitlResolved,
        /// A HITL request was closed unanswered: its task left the wait some
        /// other way (failed, cancelled, its project ended) or it timed out.
        HitlExpired,
        /// A task checkpoint was written.
        CheckpointCreated,
        /// A checkpoint's status or pin changed.
        CheckpointStatusChanged,
        /// A task step went back to an earlier checkpoint; later ones became
        /// REVERTED.
        CheckpointReverted,
        /// Retention dropped old checkpoints of a task (listed in the payload).
        CheckpointsPruned,
        /// An artifact was stored.
        ArtifactCreated,
        /// An agent reported a new status.
        AgentStatusChanged,
        /// A session was started.
        SessionStarted,
        /// A session was suspended.
        SessionSuspended,
        /// A suspended session was resumed.
        SessionResumed,
        /// A session was terminated by its user.
        SessionTerminated,
        /// A session expired after inactivity.
        SessionExpired,
        /// A session switched to another persona's context.
        PersonaSwitched,
        /// A persona context's state or history changed.
        PersonaContextUpdated,
        /// Personas, teams and workflows were imported into the catalog.
        CatalogImported,
        /// An epic was created (PLANNED).
        EpicCreated,
        /// An epic moved to IN_PROGRESS or DONE with its stories.
        EpicStatusChanged,
        /// A story was drafted (DRAFT).
        StoryDrafted,
        /// A story draft was approved (APPROVED).
        StoryApproved,
        /// Dev started a story (IN_PROGRESS).
        StoryStarted,
        /// A story was submitted for QA review (REVIEW).
        StorySubmittedForReview,
        /// A story in review went back to dev (IN_PROGRESS), by hand or by a
        /// FAIL gate.
        StoryReopened,
        /// A story passed review and is DONE.
        StoryCompleted,
        /// QA recorded a gate on a story.
        QaGateRecorded,
    }
}
