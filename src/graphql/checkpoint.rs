//! Checkpoints: versioned task state per step, its diff query and its verbs.

use async_graphql::{Context, ID, Json, Object, Result};
use chrono::{DateTime, Utc};

use serde_json::Value;

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT, OPERATOR, loaders, principal, services};
use crate::domain::CheckpointStatus;
use crate::domain::checkpoint::CheckpointVerb;
use crate::entity::task_checkpoint;
use crate::ids::{self, Kind};

/// A versioned snapshot of a task's state at a workflow step.
#[derive(async_graphql::Description)]
pub struct TaskCheckpoint(pub task_checkpoint::Model);

#[Object(use_type_description)]
impl TaskCheckpoint {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::TaskCheckpoint, self.0.id)
    }
    /// The task.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        Ok(one(&loaders(ctx).tasks, self.0.task_id).await?.map(Task))
    }
    /// The step this snapshot belongs to.
    async fn step_id(&self) -> Counted<&str> {
        Counted(&self.0.step_key)
    }
    /// Version within (task, step), from 1.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// Lifecycle state: `IN_PROGRESS → COMPLETED / FAILED / REVERTED`.
    async fn status(&self) -> CheckpointStatus {
        self.0.status
    }
    /// States this checkpoint may move to next.
    async fn allowed_transitions(&self) -> Vec<CheckpointStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// The saved state (loaded only when selected; see `stateSize`).
    async fn state(&self, ctx: &Context<'_>) -> Result<Counted<Json<Value>>> {
        {
            Ok(Json(
                one(&loaders(ctx).checkpoint_states, self.0.id)
                    .await?
                    .unwrap_or(Value::Null),
            ))
        }
        .map(Counted)
    }
    /// Size of the state as stored JSON, in bytes.
    async fn state_size(&self) -> i64 {
        self.0.state_size
    }
    /// Whether retention keeps it whatever its age.
    async fn pinned(&self) -> bool {
        self.0.pinned
    }
    /// The checkpoint this one grew from: the previous version of the same
    /// step, or the source of a fork. Following it walks the tree to the root.
    async fn parent_checkpoint(&self, ctx: &Context<'_>) -> Result<Option<TaskCheckpoint>> {
        let Some(id) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).checkpoints, id)
            .await?
            .map(TaskCheckpoint))
    }
    /// Who wrote it.
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

keyed_input!(
    /// Input of `createCheckpoint`.
    CreateCheckpointInput {
        /// The task.
        task_id: ID,
        /// The workflow step (or any step label) the state belongs to.
        step_id: String,
        /// The state to save, any JSON.
        state: Json<Value>,
        /// The latest version the caller has seen for this step (0 for none).
        /// When it is not the latest, the write is refused with `CONFLICT`.
        expected_version: Option<i32>,
        /// Initial status; default IN_PROGRESS.
        #[graphql(default_with = "CheckpointStatus::InProgress")]
        status: CheckpointStatus,
    }
);

payload!(
    /// Result of `createCheckpoint`.
    CreateCheckpointPayload {
        /// The new checkpoint.
        checkpoint: TaskCheckpoint,
    }
);

keyed_input!(
    /// Input of `forkFromCheckpoint`.
    ForkFromCheckpointInput {
        /// The checkpoint to branch from.
        checkpoint_id: ID,
        /// An RFC 7386 merge patch applied to the source's state.
        state_patch: Option<Json<Value>>,
    }
);

keyed_input!(
    /// Input of `updateCheckpointStatus`.
    UpdateCheckpointStatusInput {
        /// The checkpoint.
        checkpoint_id: ID,
        /// The new status (`IN_PROGRESS → COMPLETED / FAILED / REVERTED`).
        status: CheckpointStatus,
    }
);

keyed_input!(
    /// Input of `completeCheckpoint` and `failCheckpoint`.
    CheckpointTransitionInput {
        /// The checkpoint (IN_PROGRESS).
        checkpoint_id: ID,
    }
);

payload!(
    /// Result of a checkpoint lifecycle verb.
    CheckpointTransitionPayload {
        /// The checkpoint in its new state.
        checkpoint: TaskCheckpoint,
    }
);

keyed_input!(
    /// Input of `revertToCheckpoint`.
    RevertToCheckpointInput {
        /// The checkpoint to go back to.
        checkpoint_id: ID,
    }
);

keyed_input!(
    /// Input of `pinCheckpoint`.
    PinCheckpointInput {
        /// The checkpoint.
        checkpoint_id: ID,
        /// Pin (true) or unpin (false).
        pinned: bool,
    }
);

payload!(
    /// Result of `revertToCheckpoint`.
    RevertToCheckpointPayload {
        /// The checkpoint gone back to.
        checkpoint: TaskCheckpoint,
        /// The later checkpoints of its step now REVERTED (kept, not deleted).
        reverted: Vec<TaskCheckpoint>,
    }
    event "The `CHECKPOINT_REVERTED` event."
);

/// Checkpoint queries.
#[derive(Default)]
pub struct CheckpointQuery;

#[Object]
impl CheckpointQuery {
    /// The RFC 6902 JSON Patch (an array of operations) that turns the
    /// state of checkpoint `from` into the state of checkpoint `to`.
    async fn checkpoint_diff(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `TaskCheckpoint` id: the starting state.")] from: ID,
        #[graphql(desc = "A `TaskCheckpoint` id: the resulting state.")] to: ID,
    ) -> Result<Counted<async_graphql::Json<serde_json::Value>>> {
        {
            let a = ids::decode(Kind::TaskCheckpoint, &from)?;
            let b = ids::decode(Kind::TaskCheckpoint, &to)?;
            Ok(async_graphql::Json(
                services(ctx).checkpoint_diff(principal(ctx), a, b).await?,
            ))
        }
        .map(Counted)
    }
}

fields! {
    /// Checkpoint mutations.
    object CheckpointMutation;

    /// Saves the next version of a task's state at a step. Errors:
    /// `CONFLICT` (stale `expectedVersion` or a racing writer).
    ///
    /// Roles: agent, admin.
    mutation AGENT create_checkpoint(ctx, input: CreateCheckpointInput) -> CreateCheckpointPayload {
        let task = ids::decode(Kind::Task, &input.task_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let (step, state) = (input.step_id, input.state.0);
            s.create_checkpoint(p, task, step, state, input.expected_version, input.status)
                .await
        })
        .await
    }

    /// Branches from a checkpoint: a new version of its step whose parent is
    /// the source and whose state is the source's state with the patch
    /// applied. Nothing earlier changes.
    ///
    /// Roles: operator, admin.
    mutation OPERATOR fork_from_checkpoint(ctx, input: ForkFromCheckpointInput)
        -> CreateCheckpointPayload {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        let patch = input.state_patch.map(|j| j.0);
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.fork_checkpoint(principal(ctx), id, patch).await
        })
        .await
    }

    /// Moves a checkpoint to a status. Deprecated (see
    /// `docs/schema/deprecations.md`): use the verbs `completeCheckpoint`
    /// and `failCheckpoint`, and `revertToCheckpoint` to go back.
    ///
    /// Roles: agent, admin.
    #[graphql(
        guard = "AGENT",
        deprecation = "Use completeCheckpoint or failCheckpoint (revertToCheckpoint to go back); removed in the release after next."
    )]
    async fn update_checkpoint_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; each field is described on the input type.")]
        input: UpdateCheckpointStatusInput,
    ) -> Result<CreateCheckpointPayload> {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.update_checkpoint_status(principal(ctx), id, input.status)
                .await
        })
        .await
    }

    /// Goes back to a checkpoint: later versions of its step become
    /// REVERTED (kept for history, never deleted).
    ///
    /// Roles: operator, admin.
    mutation OPERATOR revert_to_checkpoint(ctx, input: RevertToCheckpointInput)
        -> RevertToCheckpointPayload {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.revert_to_checkpoint(principal(ctx), id).await
        })
        .await
    }

    /// Pins a checkpoint so retention keeps it, or unpins it.
    ///
    /// Roles: operator, admin.
    mutation OPERATOR pin_checkpoint(ctx, input: PinCheckpointInput) -> CreateCheckpointPayload {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.pin_checkpoint(principal(ctx), id, input.pinned).await
        })
        .await
    }

    verbs(CheckpointTransitionInput) -> CheckpointTransitionPayload = checkpoint_verb {
        /// IN_PROGRESS → COMPLETED: the step's work this version holds is done.
        /// Errors: `NOT_FOUND`, `INVALID_TRANSITION`.
        ///
        /// Roles: agent, admin.
        AGENT complete_checkpoint(CheckpointVerb::Complete);

        /// IN_PROGRESS → FAILED: the step's work this version holds failed.
        /// Errors: `NOT_FOUND`, `INVALID_TRANSITION`.
        ///
        /// Roles: agent, admin.
        AGENT fail_checkpoint(CheckpointVerb::Fail);
    }
}

async fn checkpoint_verb(
    ctx: &Context<'_>,
    input: CheckpointTransitionInput,
    verb: CheckpointVerb,
) -> Result<CheckpointTransitionPayload> {
    let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
    keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
        s.checkpoint_verb(principal(ctx), id, verb).await
    })
    .await
}
