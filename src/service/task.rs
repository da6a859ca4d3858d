//! Tasks: creation and the task lifecycle.
//!
//! Lock order, the same in every transaction so two writers never wait on
//! each other in a cycle: project row → task row → HITL request rows (→ on
//! SQLite the event counter row, taken at commit, see `Tx::commit`).

use super::query::{Page, PageAt, page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QuerySelect, QueryTrait, Set, TryIntoModel,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::{EventRef, NewEvent, Services, Tx, guarded, now, snapshot};
use crate::auth::Principal;
pub use crate::domain::task::TaskVerb;
use crate::domain::task::{TaskFacts, decide};
use crate::domain::{EventType, HitlStatus, ProjectStatus, TaskStatus};
use crate::entity::{event, hitl_request, project, task, task_dependency};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

/// Input of [`Services::create_task`].
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The project the task belongs to.
    pub project_id: Uuid,
    /// The persona expected to do it.
    pub persona_id: Option<Uuid>,
    /// Short title; 1–200 characters.
    pub title: String,
    /// What to do.
    pub instructions: Option<String>,
    /// Higher runs first among ready tasks.
    pub priority: i32,
    /// Tasks that must complete (or be cancelled) before this one starts.
    pub depends_on: Vec<Uuid>,
    /// Whether the project needs it done to complete.
    pub required: bool,
}

/// The field changes a lifecycle verb makes besides the status.
#[derive(Debug, Default)]
pub struct TaskChange {
    /// New progress, 0–100.
    pub progress: Option<i32>,
    /// New stage label.
    pub stage: Option<Option<String>>,
    /// New status message.
    pub message: Option<Option<String>>,
    /// The output on completion.
    pub output: Option<Json>,
    /// The error on failure.
    pub error: Option<Option<String>>,
    /// A new attempt number (on retry).
    pub attempt: Option<i32>,
    /// Start even though dependencies are open (admins only; logged and
    /// recorded in the event).
    pub force: bool,
}

/// Loads a task of the caller's tenant or fails with `NOT_FOUND`.
pub async fn load_task<C: sea_orm::ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: Uuid,
) -> AppResult<task::Model> {
    task::Entity::find_by_id(id)
        .filter(task::Column::TenantId.eq(p.tenant_id))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("Task", encode(Kind::Task, id)))
}

/// Finds the project of a task and locks it (see [`lock_project`]) in one
/// statement: the project is locked before the task (the fixed lock order),
/// so it is looked up through the task rather than read from it first.
/// `NOT_FOUND` names the task when there is none in the caller's tenant.
pub async fn lock_project_of_task(
    tx: &Tx<'_>,
    p: &Principal,
    task_id: Uuid,
    exclusive: bool,
) -> AppResult<project::Model> {
    use sea_orm::sea_query::Query;
    let of_task = Query::select()
        .column(task::Column::ProjectId)
        .from(task::Entity)
        .and_where(task::Column::Id.eq(task_id))
        .and_where(task::Column::TenantId.eq(p.tenant_id))
        .to_owned();
    let q = project::Entity::find()
        .filter(project::Column::Id.in_subquery(of_task))
        .filter(project::Column::TenantId.eq(p.tenant_id));
    locked(q, exclusive)
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("Task", encode(Kind::Task, task_id)))
}

/// Locks a task's project (shared, or `exclusive`) and then the task, in
/// the fixed order, and returns both: [`lock_project_of_task`] and
/// [`lock_task`] in one round trip on PostgreSQL.
///
/// Why one statement: a task verb is the commonest write, and each round
/// trip costs PostgreSQL a wake-up and the server a send, a receive and a
/// task switch — more, at this size, than the statement itself. The order
/// still holds: the project is locked by a `MATERIALIZED` CTE, and the
/// task by the outer `FOR UPDATE OF t`, whose row-locking node only ever
/// sees a task row joined with the CTE's row, so the project's lock is
/// taken first. `NOT_FOUND` names the task when there is none in the
/// caller's tenant (or its project is gone). SQLite, whose writers are
/// serialised already, runs the two statements.
pub async fn lock_project_and_task(
    tx: &Tx<'_>,
    p: &Principal,
    task_id: Uuid,
    exclusive: bool,
) -> AppResult<(project::Model, task::Model)> {
    use sea_orm::{ConnectionTrait, FromQueryResult, IdenStatic, Iterable, Statement};
    if tx.get_database_backend() != sea_orm::DbBackend::Postgres {
        let project = lock_project_of_task(tx, p, task_id, exclusive).await?;
        let task = lock_task(tx, p, task_id).await?;
        return Ok((project, task));
    }
    // The two statements (shared, exclusive), written once: this is the
    // hot path of every task verb.
    static SQL: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
        let project_columns = project::Column::iter()
            .map(|c| format!("p.{0} AS p__{0}", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        ["SHARE", "UPDATE"].map(|mode| {
            format!(
                "WITH p AS MATERIALIZED (SELECT * FROM projects WHERE id = \
                 (SELECT project_id FROM tasks WHERE id = $1 AND tenant_id = $2) AND tenant_id = $2 \
                 FOR {mode}) \
                 SELECT {project_columns}, t.* FROM p, tasks t \
                 WHERE t.id = $1 AND t.tenant_id = $2 AND t.project_id = p.id FOR UPDATE OF t"
            )
        })
    });
    let stmt = Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        SQL[usize::from(exclusive)].clone(),
        [task_id.into(), p.tenant_id.into()],
    );
    let row = tx
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| AppError::not_found("Task", encode(Kind::Task, task_id)))?;
    let project = project::Model::from_query_result(&row, "p__")?;
    let task = task::Model::from_query_result(&row, "")?;
    Ok((project, task))
}

/// `q` locking its project rows exclusively or shared (see [`lock_project`]).
fn locked(
    q: sea_orm::Select<project::Entity>,
    exclusive: bool,
) -> sea_orm::Select<project::Entity> {
    if exclusive {
        q.lock_exclusive()
    } else {
        q.lock_shared()
    }
}

/// Loads a task and locks its row until the transaction ends (PostgreSQL
/// `FOR UPDATE`; SQLite writers are serialised already), so every decision
/// taken from it holds at commit.
pub async fn lock_task(tx: &Tx<'_>, p: &Principal, id: Uuid) -> AppResult<task::Model> {
    task::Entity::find_by_id(id)
        .filter(task::Column::TenantId.eq(p.tenant_id))
        .lock_exclusive()
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("Task", encode(Kind::Task, id)))
}

/// Loads a project and locks it: `exclusive` for changes of the project or
/// of what is counted per project (task positions, artifact versions),
/// shared for changes of one task, which only need the project to stay
/// ACTIVE until they commit.
pub async fn lock_project(
    tx: &Tx<'_>,
    p: &Principal,
    id: Uuid,
    exclusive: bool,
) -> AppResult<project::Model> {
    let q = project::Entity::find_by_id(id).filter(project::Column::TenantId.eq(p.tenant_id));
    locked(q, exclusive)
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("Project", encode(Kind::Project, id)))
}

/// Moves a task to `to` inside `tx` with a guarded update and queues the
/// event. The caller holds the task's row lock (see [`lock_task`]).
///
/// A task that leaves WAITING_FOR_HITL other than by its last answer
/// (failed, cancelled) closes its pending HITL requests as EXPIRED, so no
/// question stays open for a task that no longer waits.
pub async fn move_task(
    tx: &mut Tx<'_>,
    current: task::Model,
    to: TaskStatus,
    event_type: EventType,
    change: TaskChange,
) -> AppResult<(task::Model, EventRef)> {
    if current.status != to && !current.status.can_transition_to(to) {
        return Err(AppError::transition(
            "Task",
            current.status,
            to,
            current.status.allowed_transitions(),
        ));
    }
    let t = now();
    let mut am = current.clone().into_active_model();
    am.status = Set(to);
    am.version = Set(current.version + 1);
    am.updated_at = Set(t);
    if let Some(v) = change.progress {
        am.progress = Set(v);
    }
    if let Some(v) = change.stage {
        am.stage = Set(v);
    }
    if let Some(v) = change.message {
        am.status_message = Set(v);
    }
    if let Some(v) = change.output {
        am.output = Set(Some(v));
    }
    if let Some(v) = change.error {
        am.error = Set(v);
    }
    if let Some(v) = change.attempt {
        am.attempt = Set(v);
    }
    if to == TaskStatus::Working && current.started_at.is_none() {
        am.started_at = Set(Some(t));
    }
    if to.is_terminal() || to == TaskStatus::Failed {
        am.ended_at = Set(Some(t));
    }
    if to == TaskStatus::Pending {
        am.ended_at = Set(None);
    }
    let updated = am.clone().try_into_model()?;
    // The guard: same row, same status, same version as we read. A racing
    // writer bumps the version, so exactly one of two racers matches.
    let res = task::Entity::update_many()
        .set(am)
        .filter(task::Column::Id.eq(current.id))
        .filter(task::Column::TenantId.eq(current.tenant_id))
        .filter(task::Column::Status.eq(current.status))
        .filter(task::Column::Version.eq(current.version))
        .exec(&**tx)
        .await?;
    guarded(res.rows_affected, "the task")?;
    let ev = tx.append(NewEvent::snapshot(event_type, &updated));
    if current.status == TaskStatus::WaitingForHitl
        && matches!(to, TaskStatus::Failed | TaskStatus::Cancelled)
    {
        expire_pending_hitl(tx, updated.id, "the task stopped waiting").await?;
    }
    Ok((updated, ev))
}

/// Closes every PENDING HITL request of a task as EXPIRED, one event each.
pub async fn expire_pending_hitl(tx: &mut Tx<'_>, task_id: Uuid, why: &str) -> AppResult<()> {
    let t = now();
    let expired = hitl_request::Entity::update_many()
        .col_expr(hitl_request::Column::Status, HitlStatus::Expired.into())
        .col_expr(hitl_request::Column::UpdatedAt, t.into())
        .col_expr(hitl_request::Column::ResolvedAt, Some(t).into())
        .filter(hitl_request::Column::TaskId.eq(task_id))
        .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
        .exec_with_returning(&**tx)
        .await?;
    for r in expired {
        let mut payload = snapshot(&r);
        payload["reason"] = json!(why);
        tx.append(NewEvent::about(EventType::HitlExpired, &r, payload));
    }
    Ok(())
}

/// Refuses a change of a task whose project is no longer ACTIVE.
pub fn require_active_project(
    project: &project::Model,
    task: &task::Model,
    to: TaskStatus,
) -> AppResult<()> {
    if project.status == ProjectStatus::Active {
        return Ok(());
    }
    Err(
        AppError::transition("Task", task.status, to, task.status.allowed_transitions()).because(
            format!(
                "its project is {}",
                sea_orm::ActiveEnum::to_value(&project.status)
            ),
        ),
    )
}

impl Services {
    /// Creates a task in an active project.
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn create_task(
        &self,
        p: &Principal,
        input: NewTask,
    ) -> AppResult<(task::Model, event::Model)> {
        let title = input.title.trim().to_string();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(AppError::bad_input("title must be 1–200 characters"));
        }
        let mut depends_on = input.depends_on.clone();
        depends_on.sort();
        depends_on.dedup();
        let mut tx = self.begin(p).await?;
        let project = lock_project(&tx, p, input.project_id, true).await?;
        if project.status != ProjectStatus::Active {
            return Err(AppError::bad_input(format!(
                "tasks can only be added to an ACTIVE project; this one is {}",
                sea_orm::ActiveEnum::to_value(&project.status)
            )));
        }
        for dep in &depends_on {
            let d = load_task(&*tx, p, *dep).await?;
            if d.project_id != project.id {
                return Err(AppError::bad_input(
                    "a task can only depend on tasks of its own project",
                ));
            }
        }
        let position = task::Entity::find()
            .filter(task::Column::ProjectId.eq(project.id))
            .count(&*tx)
            .await? as i32;
        let t = now();
        let model = task::ActiveModel {
            workflow_step_id: Set(None),
            step_key: Set(None),
            persona_id: Set(input.persona_id),
            title: Set(title),
            instructions: Set(input.instructions),
            priority: Set(input.priority),
            position: Set(position),
            required: Set(input.required),
            ..pending_task(p, project.id, t)
        }
        .insert(&*tx)
        .await?;
        for dep in &depends_on {
            task_dependency::ActiveModel {
                task_id: Set(model.id),
                depends_on_id: Set(*dep),
                tenant_id: Set(p.tenant_id),
            }
            .insert(&*tx)
            .await?;
        }
        let mut payload = snapshot(&model);
        payload["dependsOn"] = json!(depends_on);
        let ev = tx.append(NewEvent::about(EventType::TaskCreated, &model, payload));
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// Applies one lifecycle verb to a task.
    ///
    /// The project must be ACTIVE. Starting needs a PENDING task whose
    /// dependencies are all COMPLETED or CANCELLED (skipped); a task waiting
    /// for a human is resumed by the answer, not by `startTask`. Progress
    /// may only be reported while WORKING.
    #[tracing::instrument(skip(self, change), fields(tenant = %p.tenant_id))]
    pub async fn task_verb(
        &self,
        p: &Principal,
        id: Uuid,
        verb: TaskVerb,
        change: TaskChange,
    ) -> AppResult<(task::Model, event::Model)> {
        if let Some(pr) = change.progress
            && !(0..=100).contains(&pr)
        {
            return Err(AppError::bad_input("progress must be between 0 and 100"));
        }
        if let Some(output) = &change.output {
            self.json_within("output", output, super::JsonLimit::Small)?;
        }
        let mut tx = self.begin(p).await?;
        // Lock in the fixed order: project (shared), task.
        if change.force {
            p.require(
                crate::auth::Role::Admin,
                "start a task before its dependencies",
            )?;
        }
        // Completing may complete the project too, so it takes the project
        // exclusively: two last tasks completing at once are serialised and
        // the second sees the first done.
        let (project, current) =
            lock_project_and_task(&tx, p, id, verb == TaskVerb::Complete).await?;
        // Open dependencies matter only to a start that could go ahead.
        let blockers = if verb == TaskVerb::Start
            && current.status == TaskStatus::Pending
            && project.status == ProjectStatus::Active
        {
            blocking_dependencies(&*tx, &current).await?
        } else {
            vec![]
        };
        let facts = TaskFacts {
            status: current.status,
            attempt: current.attempt,
            project: project.status,
            blockers,
            force: change.force,
        };
        let step = decide(&facts, verb)?;
        if !step.forced_past.is_empty() {
            tracing::warn!(task = %current.id, user = %p.user_id, blockers = ?step.forced_past, "task started before its dependencies (forced)");
        }
        let mut change = change;
        change.progress = step.progress.or(change.progress);
        if step.clears_error {
            change.error = Some(None);
        }
        change.attempt = step.attempt.or(change.attempt);
        let (model, ev) = move_task(&mut tx, current, step.to, step.event, change).await?;
        let forced_past = step.forced_past;
        if !forced_past.is_empty() {
            tx.annotate(ev, "forcedPastDependencies", json!(forced_past));
        }
        if verb == TaskVerb::Complete
            && project.auto_complete
            && model.required
            && super::project::open_required(&tx, project.id).await? == 0
        {
            super::project::end_project(
                &mut tx,
                project,
                crate::domain::project::ProjectVerb::Complete,
                Some("its last required task completed".into()),
            )
            .await?;
        }
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }
}

async fn blocking_dependencies<C: sea_orm::ConnectionTrait>(
    db: &C,
    t: &task::Model,
) -> AppResult<Vec<Uuid>> {
    let deps: Vec<Uuid> = task_dependency::Entity::find()
        .filter(task_dependency::Column::TaskId.eq(t.id))
        .all(db)
        .await?
        .into_iter()
        .map(|d| d.depends_on_id)
        .collect();
    if deps.is_empty() {
        return Ok(vec![]);
    }
    Ok(task::Entity::find()
        .filter(task::Column::Id.is_in(deps))
        .filter(task::Column::Status.is_not_in([TaskStatus::Completed, TaskStatus::Cancelled]))
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect())
}

/// What `Services::tasks` lists.
#[derive(Debug, Default)]
pub struct TaskFilter {
    /// Only tasks of this project.
    pub project_id: Option<Uuid>,
    /// Only tasks in one of these states.
    pub status: Option<Vec<TaskStatus>>,
    /// Only tasks of this persona (global id or catalog key).
    pub persona: Option<String>,
}

impl Services {
    /// A page of the caller's tasks, oldest first; `NOT_FOUND` for an
    /// unknown persona.
    pub async fn tasks(
        &self,
        p: &Principal,
        f: TaskFilter,
        at: PageAt,
    ) -> AppResult<Page<task::Model>> {
        let persona = match f.persona {
            Some(key) => Some(self.find_persona(p, &key).await?.id),
            None => None,
        };
        let q = task::Entity::find()
            .filter(task::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.project_id, |q, id| {
                q.filter(task::Column::ProjectId.eq(id))
            })
            .apply_if(f.status, |q, st| q.filter(task::Column::Status.is_in(st)))
            .apply_if(persona, |q, id| q.filter(task::Column::PersonaId.eq(id)));
        page(&self.reader(p.tenant_id), q, task::Column::Id, at).await
    }
}

/// A new task row in its starting state (PENDING, no progress, attempt 1),
/// for the caller to complete with what the task is: its step, persona,
/// title, instructions, priority, position and whether it is required.
pub(crate) fn pending_task(
    p: &Principal,
    project_id: Uuid,
    t: chrono::DateTime<chrono::Utc>,
) -> task::ActiveModel {
    task::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(p.tenant_id),
        project_id: Set(project_id),
        status: Set(TaskStatus::Pending),
        progress: Set(0),
        stage: Set(None),
        status_message: Set(None),
        output: Set(None),
        error: Set(None),
        attempt: Set(1),
        version: Set(1),
        started_at: Set(None),
        ended_at: Set(None),
        created_at: Set(t),
        updated_at: Set(t),
        ..Default::default()
    }
}
