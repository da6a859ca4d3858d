//! Task checkpoints: versioned snapshots of a task's state at a step.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::task::load_task;
use super::{NewEvent, Services, now};
use crate::auth::Principal;
use crate::domain::{CheckpointStatus, EventType};
use crate::entity::{event, task_checkpoint};
use crate::error::{AppError, AppResult};

impl Services {
    /// Writes the next version of the checkpoint of (task, step).
    ///
    /// `expected_version` is the latest version the caller has seen (0 when
    /// it has seen none). When it is given and is not the latest, the write
    /// is refused with `CONFLICT`: a stale writer never overwrites newer
    /// state. Two racers that both pass the check collide on the unique
    /// (tenant, task, step, version) index, and the loser gets `CONFLICT` too.
    #[tracing::instrument(skip(self, state), fields(tenant = %p.tenant_id))]
    pub async fn create_checkpoint(
        &self,
        p: &Principal,
        task_id: Uuid,
        step_key: String,
        state: Json,
        expected_version: Option<i32>,
        status: CheckpointStatus,
    ) -> AppResult<(task_checkpoint::Model, event::Model)> {
        let step_key = step_key.trim().to_string();
        if step_key.is_empty() || step_key.len() > 200 {
            return Err(AppError::bad_input("stepId must be 1–200 characters"));
        }
        if status == CheckpointStatus::Reverted {
            return Err(AppError::bad_input(
                "a new checkpoint cannot start REVERTED",
            ));
        }
        let mut tx = self.begin(p).await?;
        let task = load_task(&*tx, p, task_id).await?;
        let latest = task_checkpoint::Entity::find()
            .filter(task_checkpoint::Column::TenantId.eq(p.tenant_id))
            .filter(task_checkpoint::Column::TaskId.eq(task.id))
            .filter(task_checkpoint::Column::StepKey.eq(&step_key))
            .order_by_desc(task_checkpoint::Column::Version)
            .one(&*tx)
            .await?;
        let latest_version = latest.as_ref().map(|c| c.version).unwrap_or(0);
        if let Some(expected) = expected_version
            && expected != latest_version
        {
            return Err(AppError::Conflict(format!(
                "checkpoint version conflict for step '{step_key}': expected {expected}, latest is {latest_version}"
            )));
        }
        let t = now();
        let model = task_checkpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            task_id: Set(task.id),
            project_id: Set(task.project_id),
            step_key: Set(step_key),
            version: Set(latest_version + 1),
            status: Set(status),
            state: Set(state),
            parent_id: Set(latest.map(|c| c.id)),
            created_by: Set(p.user_id.clone()),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent {
            event_type: EventType::CheckpointCreated,
            project_id: Some(model.project_id),
            task_id: Some(model.task_id),
            subject_type: "TaskCheckpoint",
            subject_id: model.id,
            payload: json!({
                "id": model.id, "taskId": model.task_id, "stepKey": model.step_key,
                "version": model.version, "status": model.status,
            }),
        });
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }
}
