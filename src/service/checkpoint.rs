//! Task checkpoints: versioned snapshots of a task's state at a step,
//! forming a tree (`parent`), with forks, diffs, reverts and pins.
//!
//! State bodies live in their own table (`task_checkpoint_states`), so
//! listing checkpoints never reads them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::task::lock_task;
use super::{EventRef, NewEvent, Services, Tx, now, snapshot, with_members};
use crate::auth::Principal;
use crate::domain::checkpoint::CheckpointVerb;
use crate::domain::{CheckpointStatus, EventType};
use crate::entity::{event, task_checkpoint, task_checkpoint_state};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

/// Loads a checkpoint of the caller's tenant, locked.
async fn lock_checkpoint(
    tx: &Tx<'_>,
    p: &Principal,
    id: Uuid,
) -> AppResult<task_checkpoint::Model> {
    task_checkpoint::Entity::find_by_id(id)
        .filter(task_checkpoint::Column::TenantId.eq(p.tenant_id))
        .lock_exclusive()
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("TaskCheckpoint", encode(Kind::TaskCheckpoint, id)))
}

/// The state of a checkpoint of the caller's tenant.
pub async fn state_of<C: sea_orm::ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: Uuid,
) -> AppResult<Json> {
    Ok(task_checkpoint_state::Entity::find_by_id(id)
        .filter(task_checkpoint_state::Column::TenantId.eq(p.tenant_id))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("TaskCheckpoint", encode(Kind::TaskCheckpoint, id)))?
        .state)
}

/// A version to write: its place, body, parent and event.
struct NewVersion<'a> {
    task_id: Uuid,
    project_id: Uuid,
    step_key: &'a str,
    state: Json,
    /// The latest version, or the fork's source.
    parent: Option<Uuid>,
    status: CheckpointStatus,
    /// Extra payload fields of the event.
    extra: Json,
}

/// Writes the next version of (task, step) with its state and queues its
/// `CHECKPOINT_CREATED` event.
async fn write_version(
    tx: &mut Tx<'_>,
    p: &Principal,
    v: NewVersion<'_>,
) -> AppResult<(task_checkpoint::Model, EventRef)> {
    let NewVersion {
        task_id,
        project_id,
        step_key,
        state,
        parent,
        status,
        extra,
    } = v;
    let latest = task_checkpoint::Entity::find()
        .filter(task_checkpoint::Column::TenantId.eq(p.tenant_id))
        .filter(task_checkpoint::Column::TaskId.eq(task_id))
        .filter(task_checkpoint::Column::StepKey.eq(step_key))
        .order_by_desc(task_checkpoint::Column::Version)
        .one(&**tx)
        .await?;
    let t = now();
    let size = serde_json::to_vec(&state).map(|v| v.len()).unwrap_or(0) as i64;
    let model = task_checkpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(p.tenant_id),
        task_id: Set(task_id),
        project_id: Set(project_id),
        step_key: Set(step_key.to_string()),
        version: Set(latest.map(|c| c.version).unwrap_or(0) + 1),
        status: Set(status),
        parent_id: Set(parent),
        pinned: Set(false),
        state_size: Set(size),
        created_by: Set(p.user_id.clone()),
        created_at: Set(t),
        updated_at: Set(t),
    }
    .insert(&**tx)
    .await?;
    task_checkpoint_state::ActiveModel {
        checkpoint_id: Set(model.id),
        tenant_id: Set(p.tenant_id),
        state: Set(state),
    }
    .insert(&**tx)
    .await?;
    let payload = with_members(snapshot(&model), extra);
    let ev = tx.append(NewEvent::about(
        EventType::CheckpointCreated,
        &model,
        payload,
    ));
    Ok((model, ev))
}

impl Services {
    /// Writes the next version of the checkpoint of (task, step).
    ///
    /// `expected_version` is the latest version the caller has seen (0 when
    /// it has seen none). When it is given and is not the latest, the write
    /// is refused with `CONFLICT`: a stale writer never overwrites newer
    /// state. The task row is locked, so writers of one task take turns;
    /// the unique (tenant, task, step, version) index backs that up.
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
        self.json_within("state", &state, super::JsonLimit::Content)?;
        if status == CheckpointStatus::Reverted {
            return Err(AppError::bad_input(
                "a new checkpoint cannot start REVERTED",
            ));
        }
        let mut tx = self.begin(p).await?;
        let task = lock_task(&tx, p, task_id).await?;
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
            return Err(AppError::VersionConflict {
                what: format!("checkpoint step '{step_key}'"),
                expected,
                latest: latest_version,
            });
        }
        let (model, ev) = write_version(
            &mut tx,
            p,
            NewVersion {
                task_id: task.id,
                project_id: task.project_id,
                step_key: &step_key,
                state,
                parent: latest.map(|c| c.id),
                status,
                extra: json!({}),
            },
        )
        .await?;
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// Starts a branch: a new version of the source's step whose parent is
    /// the source and whose state is the source's state with `patch` (an RFC
    /// 7386 merge patch) applied. History is left as it is.
    #[tracing::instrument(skip(self, patch), fields(tenant = %p.tenant_id))]
    pub async fn fork_checkpoint(
        &self,
        p: &Principal,
        source_id: Uuid,
        patch: Option<Json>,
    ) -> AppResult<(task_checkpoint::Model, event::Model)> {
        if let Some(patch) = &patch {
            self.json_within("statePatch", patch, super::JsonLimit::Content)?;
        }
        let mut tx = self.begin(p).await?;
        let task_id = task_checkpoint::Entity::find_by_id(source_id)
            .filter(task_checkpoint::Column::TenantId.eq(p.tenant_id))
            .one(&*tx)
            .await?
            .ok_or_else(|| {
                AppError::not_found("TaskCheckpoint", encode(Kind::TaskCheckpoint, source_id))
            })?
            .task_id;
        let task = lock_task(&tx, p, task_id).await?;
        let source = lock_checkpoint(&tx, p, source_id).await?;
        let mut state = state_of(&*tx, p, source.id).await?;
        if let Some(patch) = &patch {
            json_patch::merge(&mut state, patch);
            // The patch is bounded, but so must be what it grows the state to.
            self.json_within("the patched state", &state, super::JsonLimit::Content)?;
        }
        let (model, ev) = write_version(
            &mut tx,
            p,
            NewVersion {
                task_id: task.id,
                project_id: task.project_id,
                step_key: &source.step_key,
                state,
                parent: Some(source.id),
                status: CheckpointStatus::InProgress,
                extra: json!({ "forkedFrom": source.id }),
            },
        )
        .await?;
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// Applies a lifecycle verb to a checkpoint (`CHECKPOINT_STATUS_CHANGED`).
    pub async fn checkpoint_verb(
        &self,
        p: &Principal,
        id: Uuid,
        verb: CheckpointVerb,
    ) -> AppResult<(task_checkpoint::Model, event::Model)> {
        self.move_checkpoint(p, id, verb.target()).await
    }

    /// The deprecated `updateCheckpointStatus` (kept for one release, see
    /// `docs/schema/deprecations.md`): a move to any status the lifecycle
    /// allows, as the verbs make it.
    pub async fn update_checkpoint_status(
        &self,
        p: &Principal,
        id: Uuid,
        to: CheckpointStatus,
    ) -> AppResult<(task_checkpoint::Model, event::Model)> {
        self.move_checkpoint(p, id, to).await
    }

    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    async fn move_checkpoint(
        &self,
        p: &Principal,
        id: Uuid,
        to: CheckpointStatus,
    ) -> AppResult<(task_checkpoint::Model, event::Model)> {
        let mut tx = self.begin(p).await?;
        let cp = lock_checkpoint(&tx, p, id).await?;
        let to = crate::domain::checkpoint::decide(cp.status, to)?;
        let mut am = cp.into_active_model();
        am.status = Set(to);
        am.updated_at = Set(now());
        let cp = am.update(&*tx).await?;
        let ev = tx.append(NewEvent::snapshot(EventType::CheckpointStatusChanged, &cp));
        let done = tx.commit().await?;
        Ok((cp, done.event(ev)))
    }

    /// Goes back to a checkpoint: every later version of its step that is
    /// not already REVERTED becomes REVERTED (kept, never deleted), and one
    /// `CHECKPOINT_REVERTED` event lists them. Returns the target and the
    /// checkpoints it reverted.
    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    pub async fn revert_to_checkpoint(
        &self,
        p: &Principal,
        id: Uuid,
    ) -> AppResult<(
        task_checkpoint::Model,
        Vec<task_checkpoint::Model>,
        event::Model,
    )> {
        let mut tx = self.begin(p).await?;
        let task_id = task_checkpoint::Entity::find_by_id(id)
            .filter(task_checkpoint::Column::TenantId.eq(p.tenant_id))
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("TaskCheckpoint", encode(Kind::TaskCheckpoint, id)))?
            .task_id;
        lock_task(&tx, p, task_id).await?;
        let target = lock_checkpoint(&tx, p, id).await?;
        if target.status == CheckpointStatus::Reverted {
            return Err(AppError::transition(
                "TaskCheckpoint",
                target.status,
                target.status,
                target.status.allowed_transitions(),
            )
            .because("a REVERTED checkpoint cannot be the target of a revert"));
        }
        let t = now();
        let reverted = task_checkpoint::Entity::update_many()
            .col_expr(
                task_checkpoint::Column::Status,
                CheckpointStatus::Reverted.into(),
            )
            .col_expr(task_checkpoint::Column::UpdatedAt, t.into())
            .filter(task_checkpoint::Column::TaskId.eq(target.task_id))
            .filter(task_checkpoint::Column::StepKey.eq(&target.step_key))
            .filter(task_checkpoint::Column::Version.gt(target.version))
            .filter(task_checkpoint::Column::Status.ne(CheckpointStatus::Reverted))
            .exec_with_returning(&*tx)
            .await?;
        let ev = tx.append(NewEvent::about(
            EventType::CheckpointReverted,
            &target,
            json!({
                "id": target.id, "taskId": target.task_id, "stepKey": target.step_key,
                "version": target.version,
                "reverted": reverted.iter().map(|c| c.id).collect::<Vec<_>>(),
            }),
        ));
        let done = tx.commit().await?;
        Ok((target, reverted, done.event(ev)))
    }

    /// Pins or unpins a checkpoint: pinned ones survive retention.
    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    pub async fn pin_checkpoint(
        &self,
        p: &Principal,
        id: Uuid,
        pinned: bool,
    ) -> AppResult<(task_checkpoint::Model, event::Model)> {
        let mut tx = self.begin(p).await?;
        let cp = lock_checkpoint(&tx, p, id).await?;
        let mut am = cp.into_active_model();
        am.pinned = Set(pinned);
        am.updated_at = Set(now());
        let cp = am.update(&*tx).await?;
        let ev = tx.append(NewEvent::snapshot(EventType::CheckpointStatusChanged, &cp));
        let done = tx.commit().await?;
        Ok((cp, done.event(ev)))
    }

    /// The RFC 6902 JSON Patch that turns checkpoint `a`'s state into `b`'s.
    pub async fn checkpoint_diff(&self, p: &Principal, a: Uuid, b: Uuid) -> AppResult<Json> {
        let from = state_of(&self.reader(p.tenant_id), p, a).await?;
        let to = state_of(&self.reader(p.tenant_id), p, b).await?;
        serde_json::to_value(json_patch::diff(&from, &to)).map_err(|e| AppError::Internal(e.into()))
    }
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct Prunable {
    id: Uuid,
    task_id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
}

impl Services {
    /// Retention: per task, keeps the newest `keep` checkpoints whatever
    /// their age, and of the others drops those older than `max_age`; the
    /// newest of each task (even with `keep` 0) and pinned ones are always
    /// kept. One transaction and one `CHECKPOINTS_PRUNED` event per task.
    /// Returns how many it dropped.
    pub async fn prune_checkpoints(
        &self,
        keep: u64,
        max_age: chrono::Duration,
        limit: u64,
    ) -> AppResult<usize> {
        use sea_orm::{DbBackend, FromQueryResult, Statement};
        let b = self.unscoped().get_database_backend();
        let cutoff = now() - max_age;
        let (p1, p2, p3) = match b {
            DbBackend::Postgres => ("$1", "$2", "$3"),
            _ => ("?", "?", "?"),
        };
        let sql = format!(
            "SELECT id, task_id, tenant_id, project_id FROM (
                SELECT id, task_id, tenant_id, project_id, pinned, created_at,
                       ROW_NUMBER() OVER (PARTITION BY task_id ORDER BY id DESC) AS rn
                FROM task_checkpoints) c
             WHERE pinned = {false_lit} AND rn > 1 AND rn > {p1} AND created_at < {p2}
             ORDER BY task_id LIMIT {p3}",
            false_lit = if b == DbBackend::Postgres {
                "false"
            } else {
                "0"
            },
        );
        let rows = Prunable::find_by_statement(Statement::from_sql_and_values(
            b,
            sql,
            [(keep as i64).into(), cutoff.into(), (limit as i64).into()],
        ))
        .all(&self.all_tenants())
        .await?;
        let mut by_task: std::collections::BTreeMap<Uuid, Vec<Prunable>> = Default::default();
        for r in rows {
            by_task.entry(r.task_id).or_default().push(r);
        }
        let mut n = 0;
        for (task_id, rows) in by_task {
            let first = &rows[0];
            let system = Principal {
                tenant_id: first.tenant_id,
                ..Principal::system()
            };
            let project_id = first.project_id;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let mut tx = self.begin(&system).await?;
            let res = task_checkpoint::Entity::delete_many()
                .filter(task_checkpoint::Column::Id.is_in(ids.clone()))
                .filter(task_checkpoint::Column::Pinned.eq(false))
                .exec(&*tx)
                .await?;
            if res.rows_affected == 0 {
                continue;
            }
            tx.append(NewEvent {
                event_type: EventType::CheckpointsPruned,
                project_id: Some(project_id),
                task_id: Some(task_id),
                subject: Kind::Task.into(),
                subject_id: task_id,
                payload: json!({ "taskId": task_id, "deleted": ids, "keep": keep, "cutoff": cutoff }),
            });
            tx.commit().await?;
            n += res.rows_affected as usize;
        }
        Ok(n)
    }
}
