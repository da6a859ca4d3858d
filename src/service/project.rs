//! Projects: creation (with a workflow's tasks) and the project lifecycle.

use super::query::{Page, PageAt, page};
use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QueryTrait, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::catalog::visible;
use super::{EventRef, NewEvent, Services, Tx, guarded, json_strings, now, snapshot};
use crate::auth::{Principal, Role};
use crate::domain::project::{ProjectVerb, decide};
use crate::domain::{EventType, ProjectStatus, TaskStatus};
use crate::entity::{event, persona, project, task, task_dependency, workflow, workflow_step};
use crate::error::{AppError, AppResult};
use sea_orm::sea_query::{Expr, ExprTrait};

/// Input of [`Services::create_project`].
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Display name; 1–200 characters.
    pub name: String,
    /// The product idea in the user's words.
    pub product_idea: Option<String>,
    /// A workflow id or key; its steps become the project's tasks.
    pub workflow: Option<String>,
    /// Complete the project when its last required task completes; `None`
    /// means yes for workflow projects and no for ad-hoc ones.
    pub auto_complete: Option<bool>,
}

impl Services {
    /// Creates a project and, with a workflow, one task per work step with
    /// its dependencies; one `PROJECT_CREATED` event plus one `TASK_CREATED`
    /// per task, all in one transaction.
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn create_project(
        &self,
        p: &Principal,
        input: NewProject,
    ) -> AppResult<(project::Model, event::Model)> {
        let name = input.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AppError::bad_input("name must be 1–200 characters"));
        }
        let t = now();
        // Everything is read inside the transaction, so a concurrent
        // re-import of the workflow cannot pull steps or personas away
        // between reading and writing.
        let mut tx = self.begin(p).await?;
        let wf = match &input.workflow {
            Some(w) => Some(super::catalog::find_in::<workflow::Entity, _>(&*tx, p, w).await?),
            None => None,
        };
        let steps = match &wf {
            Some(w) => {
                workflow_step::Entity::find()
                    .filter(workflow_step::Column::WorkflowId.eq(w.id))
                    .order_by_asc(workflow_step::Column::Position)
                    .all(&*tx)
                    .await?
            }
            None => vec![],
        };
        // Personas by key, the tenant's own winning over built-ins.
        let mut personas: HashMap<String, persona::Model> = HashMap::new();
        for m in persona::Entity::find()
            .filter(visible::<persona::Entity>(p.tenant_id))
            .all(&*tx)
            .await?
        {
            let own = m.tenant_id == p.tenant_id;
            match personas.get(&m.key) {
                Some(prev) if prev.tenant_id == p.tenant_id && !own => {}
                _ => {
                    personas.insert(m.key.clone(), m);
                }
            }
        }
        let project = project::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            name: Set(name),
            product_idea: Set(input.product_idea.clone()),
            workflow_id: Set(wf.as_ref().map(|w| w.id)),
            auto_complete: Set(input.auto_complete.unwrap_or(wf.is_some())),
            status: Set(ProjectStatus::Active),
            created_by: Set(p.user_id.clone()),
            ended_at: Set(None),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent::snapshot(EventType::ProjectCreated, &project));

        let plan = plan_tasks(&steps);
        let mut task_ids: Vec<Uuid> = Vec::with_capacity(plan.len());
        for planned in &plan {
            let step = planned.step;
            let task = task::ActiveModel {
                workflow_step_id: Set(Some(step.id)),
                step_key: Set(Some(step.key.clone())),
                persona_id: Set(step
                    .persona_key
                    .as_ref()
                    .and_then(|k| personas.get(k))
                    .map(|m| m.id)),
                title: Set(step_title(step)),
                instructions: Set(step.notes.clone()),
                priority: Set(0),
                position: Set(step.position),
                required: Set(planned.required),
                ..super::task::pending_task(p, project.id, t)
            }
            .insert(&*tx)
            .await?;
            task_ids.push(task.id);
            for dep in &planned.depends_on {
                task_dependency::ActiveModel {
                    task_id: Set(task.id),
                    depends_on_id: Set(task_ids[*dep]),
                    tenant_id: Set(p.tenant_id),
                }
                .insert(&*tx)
                .await?;
            }
            let mut payload = snapshot(&task);
            payload["dependsOn"] = json!(
                planned
                    .depends_on
                    .iter()
                    .map(|d| task_ids[*d])
                    .collect::<Vec<_>>()
            );
            tx.append(NewEvent::about(EventType::TaskCreated, &task, payload));
        }
        let done = tx.commit().await?;
        Ok((project, done.event(ev)))
    }

    /// Moves a project along its lifecycle (`COMPLETED`, `FAILED`,
    /// `CANCELLED`), refusing what the lifecycle does not allow. `force`
    /// (admins only) completes a project whose required tasks are still
    /// open; they are cancelled and the event says it was forced.
    #[tracing::instrument(skip(self, reason), fields(tenant = %p.tenant_id))]
    pub async fn transition_project(
        &self,
        p: &Principal,
        id: Uuid,
        verb: ProjectVerb,
        reason: Option<String>,
    ) -> AppResult<(project::Model, event::Model)> {
        if verb.forced() {
            p.require(Role::Admin, "force-complete a project")?;
            tracing::warn!(project = %id, user = %p.user_id, "project completion forced");
        }
        let mut tx = self.begin(p).await?;
        let current = super::task::lock_project(&tx, p, id, true).await?;
        let (updated, ev) = end_project(&mut tx, current, verb, reason).await?;
        let done = tx.commit().await?;
        Ok((updated, done.event(ev)))
    }
}

/// The task states that count as open work.
const LIVE: [TaskStatus; 3] = [
    TaskStatus::Pending,
    TaskStatus::Working,
    TaskStatus::WaitingForHitl,
];

/// Open required tasks of a project.
pub async fn open_required(tx: &Tx<'_>, project: Uuid) -> AppResult<u64> {
    Ok(task::Entity::find()
        .filter(task::Column::ProjectId.eq(project))
        .filter(task::Column::Required.eq(true))
        .filter(task::Column::Status.is_in(LIVE))
        .count(&**tx)
        .await?)
}

/// Ends a project inside `tx` (the caller holds its row lock): checks the
/// lifecycle, stops whatever is still live — optional work when it
/// completes, everything when it fails or is cancelled — and closes the
/// questions of those tasks. Shared by the project verbs and by automatic
/// completion when the last required task completes.
pub async fn end_project(
    tx: &mut Tx<'_>,
    current: project::Model,
    verb: ProjectVerb,
    reason: Option<String>,
) -> AppResult<(project::Model, EventRef)> {
    let id = current.id;
    let open = match verb {
        ProjectVerb::Complete if current.status.can_transition_to(ProjectStatus::Completed) => {
            open_required(tx, id).await?
        }
        _ => 0,
    };
    let (to, event_type) = decide(current.status, verb, open)?;
    let forced = verb.forced();
    let t = now();
    let res = project::Entity::update_many()
        .col_expr(project::Column::Status, to.into())
        .col_expr(project::Column::UpdatedAt, t.into())
        .col_expr(project::Column::EndedAt, Some(t).into())
        .filter(project::Column::Id.eq(id))
        .filter(project::Column::TenantId.eq(current.tenant_id))
        .filter(project::Column::Status.eq(current.status))
        .exec(&**tx)
        .await?;
    guarded(res.rows_affected, "the project")?;
    let mut updated = current.into_active_model();
    updated.status = Set(to);
    updated.updated_at = Set(t);
    updated.ended_at = Set(Some(t));
    let updated = sea_orm::TryIntoModel::try_into_model(updated)?;
    let note = format!(
        "stopped: project {}",
        sea_orm::ActiveEnum::to_value(&to).to_lowercase()
    );
    let stopped = task::Entity::update_many()
        .col_expr(task::Column::Status, TaskStatus::Cancelled.into())
        .col_expr(
            task::Column::Version,
            Expr::col(task::Column::Version).add(1),
        )
        .col_expr(task::Column::UpdatedAt, t.into())
        .col_expr(task::Column::EndedAt, Some(t).into())
        .col_expr(task::Column::StatusMessage, Some(note.clone()).into())
        .filter(task::Column::ProjectId.eq(id))
        .filter(task::Column::Status.is_in(LIVE))
        .exec_with_returning(&**tx)
        .await?;
    let mut payload = snapshot(&updated);
    payload["reason"] = json!(reason);
    payload["forced"] = json!(forced);
    let ev = tx.append(NewEvent::about(event_type, &updated, payload));
    for task in stopped {
        tx.append(NewEvent::snapshot(EventType::TaskCancelled, &task));
        super::task::expire_pending_hitl(tx, task.id, &note).await?;
    }
    Ok((updated, ev))
}

/// One task to create from a workflow step.
struct Planned<'a> {
    step: &'a workflow_step::Model,
    required: bool,
    /// Indexes into the plan of the tasks this one waits for.
    depends_on: Vec<usize>,
}

/// Turns workflow steps into tasks with dependencies.
///
/// Control markers (`workflow_end`, `repeat_development_cycle`) are not work
/// and get no task. Each task waits for the nearest earlier *required* task
/// (the spine of the workflow), and also for the task that creates any
/// artifact it `requires`. Optional and conditional steps are not required:
/// the project can complete without them, and skipping one (cancelling it)
/// unblocks what waits for it.
fn plan_tasks(steps: &[workflow_step::Model]) -> Vec<Planned<'_>> {
    let mut plan: Vec<Planned<'_>> = Vec::new();
    let mut last_required: Option<usize> = None;
    let mut creators: HashMap<String, usize> = HashMap::new();
    for step in steps.iter().filter(|s| !s.is_control) {
        let required = !step.optional && step.condition.is_none();
        let mut deps: Vec<usize> = last_required.into_iter().collect();
        for r in json_strings(&step.requires) {
            if let Some(i) = creators.get(&artifact_name(&r))
                && !deps.contains(i)
            {
                deps.push(*i);
            }
        }
        let idx = plan.len();
        for c in json_strings(&step.creates) {
            creators.insert(artifact_name(&c), idx);
        }
        plan.push(Planned {
            step,
            required,
            depends_on: deps,
        });
        if required {
            last_required = Some(idx);
        }
    }
    plan
}

/// `"prd.md (if needed)"` → `"prd.md"`.
fn artifact_name(s: &str) -> String {
    s.split(" (").next().unwrap_or(s).trim().to_lowercase()
}

/// A readable title such as `pm: create prd.md` or `po: validate`.
fn step_title(s: &workflow_step::Model) -> String {
    let who = s.agent.clone().unwrap_or_else(|| "team".into());
    let what = match (&s.action, json_strings(&s.creates).first()) {
        (Some(a), Some(c)) => format!("{} → {c}", a.replace('_', " ")),
        (Some(a), None) => a.replace('_', " "),
        (None, Some(c)) => format!("create {c}"),
        (None, None) => json_strings(&s.updates)
            .first()
            .map(|u| format!("update {u}"))
            .unwrap_or_else(|| s.key.clone()),
    };
    format!("{who}: {what}")
}

/// What `Services::projects` lists.
#[derive(Debug, Default)]
pub struct ProjectFilter {
    /// Only projects in one of these states.
    pub status: Option<Vec<ProjectStatus>>,
    /// Only projects whose name contains this text, ignoring ASCII case.
    pub name_contains: Option<String>,
}

impl Services {
    /// A page of the caller's projects, oldest first.
    pub async fn projects(
        &self,
        p: &Principal,
        f: ProjectFilter,
        at: PageAt,
    ) -> AppResult<Page<project::Model>> {
        let q = project::Entity::find()
            .filter(project::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.status, |q, s| q.filter(project::Column::Status.is_in(s)))
            .apply_if(f.name_contains, |q, n| q.filter(name_contains(n)));
        page(&self.reader(p.tenant_id), q, project::Column::Id, at).await
    }
}

/// `LOWER(name) LIKE '%text%'` with LIKE's wildcards escaped, so both
/// back-ends agree (SQLite's LIKE ignores ASCII case, PostgreSQL's does not).
fn name_contains(text: String) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
    let escaped: String = text
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '\\' | '%' | '_' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Expr::expr(Func::lower(Expr::col((
        project::Entity,
        project::Column::Name,
    ))))
    .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}
