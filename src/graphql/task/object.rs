//! The `Task` object: its fields, the columns each of them reads (so a page
//! selects only those), and its relations through the request's loaders.

use crate::domain::TaskStatus;
use crate::entity::task;
use crate::graphql::fast::Fast;
use crate::graphql::limits::Counted;
use crate::graphql::loaders;
use crate::graphql::loaders::{Columns, PageKey};
use crate::graphql::types::*;
use crate::ids::Kind;
use async_graphql::{Context, ID, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;

/// One unit of work for one persona, inside a project.
#[derive(async_graphql::Description)]
pub struct Task(pub task::Model);

impl Task {
    /// The columns the field `name` of `Task` reads from its row; `None`
    /// for a field not listed, which makes its page read whole rows — so a
    /// new field is right before it is fast. Keep each entry in step with
    /// its resolver below: `tests/api/round_trips.rs` checks every field read
    /// through a page of chosen columns against the same field read whole.
    pub(crate) fn columns_of(name: &str) -> Option<Columns> {
        use task::Column as C;
        let cols: &[C] = match name {
            "__typename" => &[],
            "id" | "dependencies" | "failedAttempts" | "checkpoints" | "latestCheckpoint"
            | "pendingHitl" | "hitlRequests" | "artifacts" => &[C::Id],
            "project" => &[C::ProjectId],
            "persona" => &[C::PersonaId],
            "workflowStep" => &[C::WorkflowStepId],
            "stepKey" => &[C::StepKey],
            "title" => &[C::Title],
            "instructions" => &[C::Instructions],
            "priority" => &[C::Priority],
            "position" => &[C::Position],
            "required" => &[C::Required],
            "status" | "allowedTransitions" => &[C::Status],
            "progress" => &[C::Progress],
            "stage" => &[C::Stage],
            "statusMessage" => &[C::StatusMessage],
            "output" => &[C::Output],
            "error" => &[C::Error],
            "attempt" => &[C::Attempt],
            "retryOf" => &[C::Id, C::Attempt],
            "version" => &[C::Version],
            "startedAt" => &[C::StartedAt],
            "endedAt" => &[C::EndedAt],
            "createdAt" => &[C::CreatedAt],
            "updatedAt" => &[C::UpdatedAt],
            _ => return None,
        };
        Some(
            cols.iter()
                .fold(Columns::NONE, |acc, c| acc.with(*c as usize)),
        )
    }

    /// The columns a connection of tasks (`field`, with `nodes` and/or
    /// `edges { node }`) needs for what its selection asks of each task.
    pub(crate) fn columns_read(field: &async_graphql::SelectionField<'_>) -> Columns {
        let mut cols = Columns::NONE;
        let mut add = |task: async_graphql::SelectionField<'_>| -> bool {
            for f in task.selection_set() {
                match Task::columns_of(f.name()) {
                    Some(c) => cols = cols.union(c),
                    None => return false,
                }
            }
            true
        };
        for f in field.selection_set() {
            let whole = match f.name() {
                "nodes" => !add(f),
                "edges" => f.selection_set().any(|e| match e.name() {
                    "node" => !add(e),
                    _ => false,
                }),
                _ => false,
            };
            if whole {
                return Columns::ALL;
            }
        }
        cols
    }
}

#[Object(use_type_description)]
impl Task {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Task, self.0.id)
    }
    /// The project it belongs to.
    pub(crate) async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The persona expected to do it.
    pub(crate) async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Fast<Persona>>> {
        let Some(id) = self.0.persona_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).personas, id)
            .await?
            .map(|p| Fast(Persona(p))))
    }
    /// The workflow step it was created from, if any.
    pub(crate) async fn workflow_step(&self, ctx: &Context<'_>) -> Result<Option<WorkflowStep>> {
        let Some(id) = self.0.workflow_step_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).steps, id).await?.map(WorkflowStep))
    }
    /// Key of the workflow step it was created from (kept even if the
    /// workflow is later re-imported).
    pub(crate) async fn step_key(&self) -> Counted<Option<&str>> {
        Counted(self.0.step_key.as_deref())
    }
    /// Short title.
    pub(crate) async fn title(&self) -> Counted<&str> {
        Counted(&self.0.title)
    }
    /// What to do.
    pub(crate) async fn instructions(&self) -> Counted<Option<&str>> {
        Counted(self.0.instructions.as_deref())
    }
    /// Higher runs first among ready tasks.
    pub(crate) async fn priority(&self) -> i32 {
        self.0.priority
    }
    /// Order within the project.
    pub(crate) async fn position(&self) -> i32 {
        self.0.position
    }
    /// Whether the project needs it done; optional and conditional workflow
    /// steps are not required and may be cancelled (skipped).
    pub(crate) async fn required(&self) -> bool {
        self.0.required
    }
    /// Lifecycle state.
    pub(crate) async fn status(&self) -> TaskStatus {
        self.0.status
    }
    /// States this task may move to next.
    pub(crate) async fn allowed_transitions(&self) -> Vec<TaskStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// Progress in percent, 0–100.
    pub(crate) async fn progress(&self) -> i32 {
        self.0.progress
    }
    /// Free-form label of the current stage, as reported by the agent.
    pub(crate) async fn stage(&self) -> Counted<Option<&str>> {
        Counted(self.0.stage.as_deref())
    }
    /// The last message the agent reported.
    pub(crate) async fn status_message(&self) -> Counted<Option<&str>> {
        Counted(self.0.status_message.as_deref())
    }
    /// The output, set on completion.
    pub(crate) async fn output(&self) -> Counted<Option<Json<Value>>> {
        Counted(self.0.output.clone().map(Json))
    }
    /// The error, set on failure.
    pub(crate) async fn error(&self) -> Counted<Option<&str>> {
        Counted(self.0.error.as_deref())
    }
    /// Attempt number, 1 for the first run, +1 per retry.
    pub(crate) async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    /// The failed attempt this run retries (null on the first attempt): the
    /// lineage link of `retryTask`, which keeps the task's row and counts up
    /// `attempt`.
    async fn retry_of(&self, ctx: &Context<'_>) -> Result<Option<TaskAttempt>> {
        if self.0.attempt <= 1 {
            return Ok(None);
        }
        Ok(one(&loaders(ctx).failed_attempts, self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|e| {
                e.payload.get("attempt").and_then(|v| v.as_i64())
                    == Some(i64::from(self.0.attempt) - 1)
            })
            .map(TaskAttempt))
    }
    /// The attempts before this one that failed, oldest first (at most 100):
    /// a retry keeps the task's row — and so every edge to it — and counts
    /// up `attempt`, and each failed attempt stays in the log.
    pub(crate) async fn failed_attempts(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Counted<Vec<TaskAttempt>>> {
        {
            Ok(one(&loaders(ctx).failed_attempts, self.0.id)
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(TaskAttempt)
                .collect())
        }
        .map(Counted)
    }
    /// Row version, +1 on every change (for optimistic concurrency).
    pub(crate) async fn version(&self) -> i32 {
        self.0.version
    }
    /// When it first started.
    pub(crate) async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When it completed, failed or was cancelled.
    pub(crate) async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// When it was created.
    pub(crate) async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    pub(crate) async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Tasks that must be COMPLETED (or CANCELLED) before this one starts.
    pub(crate) async fn dependencies(&self, ctx: &Context<'_>) -> Result<Counted<Vec<Task>>> {
        {
            let ids = loaders(ctx)
                .dependencies
                .load_one(self.0.id)
                .await
                .map_err(db_err)?
                .unwrap_or_default();
            let mut found = loaders(ctx)
                .tasks
                .load_many(ids.iter().copied())
                .await
                .map_err(db_err)?;
            Ok(ids
                .iter()
                .filter_map(|i| found.remove(i))
                .map(Task)
                .collect())
        }
        .map(Counted)
    }
    /// The newest checkpoint of any step.
    pub(crate) async fn latest_checkpoint(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<TaskCheckpoint>> {
        let key = PageKey {
            parent: self.0.id,
            limit: 1,
            after: None,
            columns: Columns::ALL,
        };
        Ok(loaders(ctx)
            .latest_checkpoint
            .load_one(key)
            .await
            .map_err(db_err)?
            .and_then(|v| v.into_iter().next())
            .map(TaskCheckpoint))
    }
    #[graphql(flatten)]
    async fn children(&self) -> TaskChildren {
        TaskChildren(self.0.id)
    }
}

fields! {
    /// The child pages of [`Task`].
    children TaskChildren;

    /// Checkpoints, oldest first.
    children checkpoints -> TaskCheckpoint = checkpoint_pages(TaskCheckpoints);
    /// HITL requests of this task still waiting for a human, oldest first.
    children pending_hitl -> HitlRequest = task_pending_hitl_pages(TaskPendingHitl);
    /// HITL requests about this task, oldest first.
    children hitl_requests -> HitlRequest = task_hitl_pages(TaskHitl);
    /// Artifacts this task produced, oldest first.
    children artifacts -> Artifact = task_artifact_pages(TaskArtifacts);
}
