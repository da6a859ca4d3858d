//! The kinds of events the log records. Every change the services make
//! appends exactly one of these in the same transaction.

use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

/// What happened. Stored as a stable string; clients filter on it.
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
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(64))")]
pub enum EventType {
    /// A project was created (with its workflow's tasks, if any).
    #[sea_orm(string_value = "PROJECT_CREATED")]
    ProjectCreated,
    /// A project moved to COMPLETED.
    #[sea_orm(string_value = "PROJECT_COMPLETED")]
    ProjectCompleted,
    /// A project moved to FAILED.
    #[sea_orm(string_value = "PROJECT_FAILED")]
    ProjectFailed,
    /// A project moved to CANCELLED.
    #[sea_orm(string_value = "PROJECT_CANCELLED")]
    ProjectCancelled,
    /// A task was created.
    #[sea_orm(string_value = "TASK_CREATED")]
    TaskCreated,
    /// A task moved to WORKING from PENDING.
    #[sea_orm(string_value = "TASK_STARTED")]
    TaskStarted,
    /// A working task reported progress.
    #[sea_orm(string_value = "TASK_PROGRESS")]
    TaskProgress,
    /// A task moved to WAITING_FOR_HITL.
    #[sea_orm(string_value = "TASK_WAITING_FOR_HITL")]
    TaskWaitingForHitl,
    /// A task moved back to WORKING after a HITL answer.
    #[sea_orm(string_value = "TASK_RESUMED")]
    TaskResumed,
    /// A task moved to COMPLETED.
    #[sea_orm(string_value = "TASK_COMPLETED")]
    TaskCompleted,
    /// A task moved to FAILED.
    #[sea_orm(string_value = "TASK_FAILED")]
    TaskFailed,
    /// A task moved to CANCELLED.
    #[sea_orm(string_value = "TASK_CANCELLED")]
    TaskCancelled,
    /// A failed task moved back to PENDING for another attempt.
    #[sea_orm(string_value = "TASK_RETRIED")]
    TaskRetried,
    /// An agent asked a human a question.
    #[sea_orm(string_value = "HITL_REQUESTED")]
    HitlRequested,
    /// A human answered a HITL request.
    #[sea_orm(string_value = "HITL_RESOLVED")]
    HitlResolved,
    /// A HITL request was closed unanswered: its task left the wait some
    /// other way (failed, cancelled, its project ended) or it timed out.
    #[sea_orm(string_value = "HITL_EXPIRED")]
    HitlExpired,
    /// A task checkpoint was written.
    #[sea_orm(string_value = "CHECKPOINT_CREATED")]
    CheckpointCreated,
    /// A checkpoint's status or pin changed.
    #[sea_orm(string_value = "CHECKPOINT_STATUS_CHANGED")]
    CheckpointStatusChanged,
    /// A task step went back to an earlier checkpoint; later ones became
    /// REVERTED.
    #[sea_orm(string_value = "CHECKPOINT_REVERTED")]
    CheckpointReverted,
    /// Retention dropped old checkpoints of a task (listed in the payload).
    #[sea_orm(string_value = "CHECKPOINTS_PRUNED")]
    CheckpointsPruned,
    /// An artifact was stored.
    #[sea_orm(string_value = "ARTIFACT_CREATED")]
    ArtifactCreated,
    /// An agent reported a new status.
    #[sea_orm(string_value = "AGENT_STATUS_CHANGED")]
    AgentStatusChanged,
    /// A session was started.
    #[sea_orm(string_value = "SESSION_STARTED")]
    SessionStarted,
    /// A session was suspended.
    #[sea_orm(string_value = "SESSION_SUSPENDED")]
    SessionSuspended,
    /// A suspended session was resumed.
    #[sea_orm(string_value = "SESSION_RESUMED")]
    SessionResumed,
    /// A session was terminated by its user.
    #[sea_orm(string_value = "SESSION_TERMINATED")]
    SessionTerminated,
    /// A session expired after inactivity.
    #[sea_orm(string_value = "SESSION_EXPIRED")]
    SessionExpired,
    /// A session switched to another persona's context.
    #[sea_orm(string_value = "PERSONA_SWITCHED")]
    PersonaSwitched,
    /// A persona context's state or history changed.
    #[sea_orm(string_value = "PERSONA_CONTEXT_UPDATED")]
    PersonaContextUpdated,
    /// Personas, teams and workflows were imported into the catalog.
    #[sea_orm(string_value = "CATALOG_IMPORTED")]
    CatalogImported,
}
