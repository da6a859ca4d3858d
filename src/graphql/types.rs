//! Output types. Each wraps an entity model; relations resolve through the
//! request's DataLoaders.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Interface, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::fast::Fast;
use super::limits::Counted;
use super::loaders;
use super::loaders::{Columns, Cursor, PageKey, Rel};
use crate::domain::{
    AgentState, ArtifactKind, CheckpointStatus, EventType, HitlStatus, ProjectStatus,
    SessionStatus, TaskStatus,
};
use crate::entity::{
    agent_status, agent_status_history, artifact, event, hitl_request, persona, persona_context,
    project, session, task, task_checkpoint, team, workflow, workflow_step,
};
use crate::error::AppError;
use crate::ids::{Kind, encode};
use crate::service::query::{Completion as CompletionData, page_size};

/// An output type that wraps what the service layer returns, so a payload
/// can be built from a service result (see `payload!`).
pub trait Wraps {
    /// What the service returns.
    type Model;
    /// Wraps it.
    fn wrap(m: Self::Model) -> Self;
}

/// Output types that are a newtype over an entity model.
macro_rules! wraps {
    ($($t:ident => $m:ty),* $(,)?) => {$(
        impl Wraps for $t {
            type Model = $m;
            fn wrap(m: $m) -> Self {
                $t(m)
            }
        }
    )*};
}

wraps!(
    Project => project::Model,
    Task => task::Model,
    Session => session::Model,
    PersonaContext => persona_context::Model,
    TaskCheckpoint => task_checkpoint::Model,
    HitlRequest => hitl_request::Model,
    Artifact => artifact::Model,
    AgentStatus => agent_status::Model,
);

impl<T: Wraps> Wraps for Vec<T> {
    type Model = Vec<T::Model>;
    fn wrap(m: Self::Model) -> Self {
        m.into_iter().map(T::wrap).collect()
    }
}

/// A list page in Relay form with `totalCount`; its nodes resolve through
/// [`Fast`] (schema unchanged).
pub type Conn<T> = Connection<String, Fast<T>, TotalCount>;

/// How a connection learns its `totalCount`: never before a client selects
/// it, so a page costs one statement and its count a second only on demand.
pub enum TotalCount {
    /// A count statement of the list's filter.
    Count(crate::service::query::Count),
    /// The events matching a filter.
    Events(crate::events::EventFilter),
    /// Counted on demand, batched with its siblings.
    Child(Rel, Uuid),
}

#[Object]
impl TotalCount {
    /// Number of items in all pages of this list (with its filter).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        match self {
            TotalCount::Count(c) => Ok(c.run(crate::graphql::reader(ctx)).await?),
            TotalCount::Events(f) => Ok(f.count(crate::graphql::reader(ctx)).await?),
            TotalCount::Child(rel, parent) => Ok(loaders(ctx)
                .counts
                .load_one((*rel, *parent))
                .await
                .map_err(db_err)?
                .unwrap_or(0)),
        }
    }
}

/// Builds a connection from rows fetched with one extra row (to learn
/// whether another page follows).
pub fn connection<M, T>(
    mut rows: Vec<M>,
    limit: u64,
    has_previous: bool,
    total: TotalCount,
    cursor: impl Fn(&M) -> String,
    wrap: impl Fn(M) -> T,
) -> Conn<T>
where
    T: async_graphql::ContainerType,
{
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let mut c = Connection::with_additional_fields(has_previous, has_next, total);
    c.edges.extend(rows.into_iter().map(|m| {
        let cur = cursor(&m);
        Edge::new(cur, Fast(wrap(m)))
    }));
    c
}

/// Builds a connection from a page the service layer already cut.
pub fn page_connection<M, T: async_graphql::ContainerType>(
    pg: crate::service::query::Page<M>,
    has_previous: bool,
    cursor: impl Fn(&M) -> String,
    wrap: impl Fn(M) -> T,
) -> Conn<T> {
    let mut c =
        Connection::with_additional_fields(has_previous, pg.has_next, TotalCount::Count(pg.total));
    c.edges.extend(pg.items.into_iter().map(|m| {
        let cur = cursor(&m);
        Edge::new(cur, Fast(wrap(m)))
    }));
    c
}

/// Parses an `after` cursor of an id-ordered list.
pub fn id_cursor(after: Option<String>) -> Result<Option<Uuid>, AppError> {
    after
        .map(|a| {
            Uuid::parse_str(&a)
                .map_err(|_| AppError::bad_input(format!("'{a}' is not a valid cursor")))
        })
        .transpose()
}

/// Parses an `after` cursor of the event log.
pub fn seq_cursor(after: Option<String>) -> Result<Option<i64>, AppError> {
    after
        .map(|a| {
            a.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| AppError::bad_input(format!("'{a}' is not a valid event cursor")))
        })
        .transpose()
}

/// Loads one value through a DataLoader, with the error converted.
pub async fn one<T, K>(
    dl: &async_graphql::dataloader::DataLoader<T>,
    key: K,
) -> Result<Option<T::Value>>
where
    T: async_graphql::dataloader::Loader<K, Error = loaders::LoadError>,
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
{
    dl.load_one(key).await.map_err(db_err)
}

/// Turns a shared loader error into a GraphQL error with a code.
pub fn db_err(e: loaders::LoadError) -> async_graphql::Error {
    AppError::Internal(anyhow::anyhow!("{e}")).into()
}

/// A page of children of `parent` under `rel`, reading `columns` of each
/// row (`Columns::ALL` but for `Project.tasks`).
async fn child_page<E, T>(
    loader: &async_graphql::dataloader::DataLoader<loaders::Children<E>>,
    (rel, parent, first, after): (Rel, Uuid, Option<i32>, Option<String>),
    columns: Columns,
    cursor: impl Fn(&E::Model) -> String,
    wrap: impl Fn(E::Model) -> T,
) -> Result<Conn<T>>
where
    E: sea_orm::EntityTrait,
    loaders::Children<E>: async_graphql::dataloader::Loader<
            PageKey,
            Value = Vec<E::Model>,
            Error = loaders::LoadError,
        >,
    T: async_graphql::ContainerType,
{
    let limit = page_size(first)?;
    let after_c = if rel == Rel::ProjectEvents {
        seq_cursor(after)?.map(Cursor::Seq)
    } else {
        id_cursor(after)?.map(Cursor::Id)
    };
    let has_prev = after_c.is_some();
    let rows = loader
        .load_one(PageKey {
            parent,
            limit: limit + 1,
            after: after_c,
            columns,
        })
        .await
        .map_err(db_err)?
        .unwrap_or_default();
    Ok(connection(
        rows,
        limit,
        has_prev,
        TotalCount::Child(rel, parent),
        cursor,
        wrap,
    ))
}

/// The persona or workflow keys of a team, in team order.
async fn team_keys(
    ctx: &Context<'_>,
    team: Uuid,
    pick: impl FnOnce((Vec<String>, Vec<String>)) -> Vec<String>,
) -> Result<Vec<String>> {
    let both = loaders(ctx)
        .team_keys
        .load_one(team)
        .await
        .map_err(db_err)?
        .unwrap_or_default();
    Ok(pick(both))
}

/// The rows `keys` name, in their order; keys that name nothing are left
/// out.
async fn in_key_order<L, T>(
    loader: &async_graphql::dataloader::DataLoader<L>,
    keys: Vec<String>,
    wrap: impl Fn(L::Value) -> T,
) -> Result<Counted<Vec<T>>>
where
    L: async_graphql::dataloader::Loader<String, Error = loaders::LoadError>,
{
    let mut found = loader
        .load_many(keys.iter().cloned())
        .await
        .map_err(db_err)?;
    Ok(Counted(
        keys.iter()
            .filter_map(|k| found.remove(k))
            .map(wrap)
            .collect(),
    ))
}

/// Any object with a global id; see `Query.node`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id, `<Type>:<uuid>`."))]
pub enum Node {
    /// A project.
    Project(Project),
    /// A task.
    Task(Task),
    /// A persona.
    Persona(Persona),
    /// A team.
    Team(Team),
    /// A workflow.
    Workflow(Workflow),
    /// A workflow step.
    WorkflowStep(WorkflowStep),
    /// A session.
    Session(Session),
    /// A persona context.
    PersonaContext(PersonaContext),
    /// A task checkpoint.
    TaskCheckpoint(TaskCheckpoint),
    /// A HITL request.
    HitlRequest(HitlRequest),
    /// An artifact.
    Artifact(Artifact),
    /// An agent status.
    AgentStatus(AgentStatus),
    /// An event of the log.
    Event(Event),
}

/// One product being built, with its tasks, artifacts and event history.
#[derive(async_graphql::Description)]
pub struct Project(pub project::Model);

#[Object(use_type_description)]
impl Project {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Project, self.0.id)
    }
    /// Display name.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// The product idea in the user's words.
    async fn product_idea(&self) -> Counted<Option<&str>> {
        Counted(self.0.product_idea.as_deref())
    }
    /// Lifecycle state: `ACTIVE → COMPLETED / FAILED / CANCELLED`.
    async fn status(&self) -> ProjectStatus {
        self.0.status
    }
    /// Whether the project completes by itself when its last required task
    /// completes.
    async fn auto_complete(&self) -> bool {
        self.0.auto_complete
    }
    /// States this project may move to next (empty when terminal), so a UI
    /// need not copy the state machine.
    async fn allowed_transitions(&self) -> Vec<ProjectStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// The workflow the project was started with, if any.
    async fn workflow(&self, ctx: &Context<'_>) -> Result<Option<Workflow>> {
        let Some(id) = self.0.workflow_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).workflows, id).await?.map(Workflow))
    }
    /// Who created it.
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// When it reached a terminal state.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// Seconds this project's tasks have waited for humans: the sum over its
    /// HITL requests of the time from asking to answer (to now while
    /// pending).
    async fn human_wait_seconds(&self, ctx: &Context<'_>) -> Result<f64> {
        match &loaders(ctx).human_wait {
            Some(l) => Ok(one(l, self.0.id).await?.unwrap_or(0.0)),
            None => Ok(0.0),
        }
    }
    /// HITL requests of this project waiting for a human, for dashboards.
    async fn pending_hitl_count(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(
            one(&loaders(ctx).counts, (Rel::ProjectPendingHitl, self.0.id))
                .await?
                .unwrap_or(0),
        )
    }
    /// How far the project is, computed from its tasks.
    async fn completion(&self, ctx: &Context<'_>) -> Result<Completion> {
        Ok(Completion(
            loaders(ctx)
                .completions
                .load_one(self.0.id)
                .await
                .map_err(db_err)?
                .unwrap_or_default(),
        ))
    }
    /// Tasks in creation order (which, for a workflow, is step order).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<Task>> {
        child_page(
            &loaders(ctx).task_pages,
            (Rel::ProjectTasks, self.0.id, first, after),
            Task::columns_read(&ctx.field()),
            |m| m.id.to_string(),
            Task,
        )
        .await
    }
    /// Artifacts, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn artifacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<Artifact>> {
        child_page(
            &loaders(ctx).artifact_pages,
            (Rel::ProjectArtifacts, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            Artifact,
        )
        .await
    }
    /// HITL requests, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn hitl_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<HitlRequest>> {
        child_page(
            &loaders(ctx).hitl_pages,
            (Rel::ProjectHitl, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            HitlRequest,
        )
        .await
    }
    /// The project's event log, in sequence order.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Event cursor (sequence number) of the last event already seen.")]
        after: Option<String>,
    ) -> Result<Conn<Event>> {
        child_page(
            &loaders(ctx).event_pages,
            (Rel::ProjectEvents, self.0.id, first, after),
            Columns::ALL,
            |m| m.seq.to_string(),
            Event::from,
        )
        .await
    }
    /// The agents working on this project and what they are doing.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn agent_statuses(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<AgentStatus>> {
        child_page(
            &loaders(ctx).agent_pages,
            (Rel::ProjectAgents, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            AgentStatus,
        )
        .await
    }
}

/// Progress of a project, counted over its tasks.
#[derive(async_graphql::Description)]
pub struct Completion(pub CompletionData);

#[Object(use_type_description)]
impl Completion {
    /// Every task of the project.
    async fn total_tasks(&self) -> i64 {
        self.0.total
    }
    /// Tasks COMPLETED.
    async fn completed_tasks(&self) -> i64 {
        self.0.completed
    }
    /// Tasks FAILED.
    async fn failed_tasks(&self) -> i64 {
        self.0.failed
    }
    /// Tasks CANCELLED (skipped optional or conditional work).
    async fn cancelled_tasks(&self) -> i64 {
        self.0.cancelled
    }
    /// Completed share of the tasks that count, in percent (0–100, one
    /// decimal). Cancelled tasks leave the denominator: skipped work is not
    /// missing work.
    async fn percentage(&self) -> f64 {
        self.0.percentage()
    }
}

/// One unit of work for one persona, inside a project.
#[derive(async_graphql::Description)]
pub struct Task(pub task::Model);

impl Task {
    /// The columns the field `name` of `Task` reads from its row; `None`
    /// for a field not listed, which makes its page read whole rows — so a
    /// new field is right before it is fast. Keep each entry in step with
    /// its resolver below: `tests/round_trips.rs` checks every field read
    /// through a page of chosen columns against the same field read whole.
    fn columns_of(name: &str) -> Option<Columns> {
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
    fn columns_read(field: &async_graphql::SelectionField<'_>) -> Columns {
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
    async fn id(&self) -> ID {
        encode(Kind::Task, self.0.id)
    }
    /// The project it belongs to.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The persona expected to do it.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Fast<Persona>>> {
        let Some(id) = self.0.persona_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).personas, id)
            .await?
            .map(|p| Fast(Persona(p))))
    }
    /// The workflow step it was created from, if any.
    async fn workflow_step(&self, ctx: &Context<'_>) -> Result<Option<WorkflowStep>> {
        let Some(id) = self.0.workflow_step_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).steps, id).await?.map(WorkflowStep))
    }
    /// Key of the workflow step it was created from (kept even if the
    /// workflow is later re-imported).
    async fn step_key(&self) -> Counted<Option<&str>> {
        Counted(self.0.step_key.as_deref())
    }
    /// Short title.
    async fn title(&self) -> Counted<&str> {
        Counted(&self.0.title)
    }
    /// What to do.
    async fn instructions(&self) -> Counted<Option<&str>> {
        Counted(self.0.instructions.as_deref())
    }
    /// Higher runs first among ready tasks.
    async fn priority(&self) -> i32 {
        self.0.priority
    }
    /// Order within the project.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// Whether the project needs it done; optional and conditional workflow
    /// steps are not required and may be cancelled (skipped).
    async fn required(&self) -> bool {
        self.0.required
    }
    /// Lifecycle state.
    async fn status(&self) -> TaskStatus {
        self.0.status
    }
    /// States this task may move to next.
    async fn allowed_transitions(&self) -> Vec<TaskStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// Progress in percent, 0–100.
    async fn progress(&self) -> i32 {
        self.0.progress
    }
    /// Free-form label of the current stage, as reported by the agent.
    async fn stage(&self) -> Counted<Option<&str>> {
        Counted(self.0.stage.as_deref())
    }
    /// The last message the agent reported.
    async fn status_message(&self) -> Counted<Option<&str>> {
        Counted(self.0.status_message.as_deref())
    }
    /// The output, set on completion.
    async fn output(&self) -> Counted<Option<Json<Value>>> {
        Counted(self.0.output.clone().map(Json))
    }
    /// The error, set on failure.
    async fn error(&self) -> Counted<Option<&str>> {
        Counted(self.0.error.as_deref())
    }
    /// Attempt number, 1 for the first run, +1 per retry.
    async fn attempt(&self) -> i32 {
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
    async fn failed_attempts(&self, ctx: &Context<'_>) -> Result<Counted<Vec<TaskAttempt>>> {
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
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// When it first started.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When it completed, failed or was cancelled.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Tasks that must be COMPLETED (or CANCELLED) before this one starts.
    async fn dependencies(&self, ctx: &Context<'_>) -> Result<Counted<Vec<Task>>> {
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
    /// Checkpoints, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn checkpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<TaskCheckpoint>> {
        child_page(
            &loaders(ctx).checkpoint_pages,
            (Rel::TaskCheckpoints, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            TaskCheckpoint,
        )
        .await
    }
    /// The newest checkpoint of any step.
    async fn latest_checkpoint(&self, ctx: &Context<'_>) -> Result<Option<TaskCheckpoint>> {
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
    /// HITL requests of this task still waiting for a human, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn pending_hitl(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<HitlRequest>> {
        child_page(
            &loaders(ctx).task_pending_hitl_pages,
            (Rel::TaskPendingHitl, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            HitlRequest,
        )
        .await
    }
    /// HITL requests about this task, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn hitl_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<HitlRequest>> {
        child_page(
            &loaders(ctx).task_hitl_pages,
            (Rel::TaskHitl, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            HitlRequest,
        )
        .await
    }
    /// Artifacts this task produced, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn artifacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<Artifact>> {
        child_page(
            &loaders(ctx).task_artifact_pages,
            (Rel::TaskArtifacts, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            Artifact,
        )
        .await
    }
}

/// An agent role: built in (visible to every tenant) or the tenant's own.
#[derive(async_graphql::Description)]
pub struct Persona(pub std::sync::Arc<persona::Model>);

#[Object(use_type_description)]
impl Persona {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Persona, self.0.id)
    }
    /// Catalog key, e.g. `analyst`; accepted wherever a persona id is.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// The persona's name, e.g. `Mary`.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// Job title, e.g. `Business Analyst`.
    async fn title(&self) -> Counted<&str> {
        Counted(&self.0.title)
    }
    /// An emoji icon.
    async fn icon(&self) -> Counted<Option<&str>> {
        Counted(self.0.icon.as_deref())
    }
    /// The role it plays.
    async fn role(&self) -> Counted<Option<&str>> {
        Counted(self.0.role.as_deref())
    }
    /// When to call on it.
    async fn when_to_use(&self) -> Counted<Option<&str>> {
        Counted(self.0.when_to_use.as_deref())
    }
    /// A short description.
    async fn description(&self) -> Counted<Option<&str>> {
        Counted(self.0.description.as_deref())
    }
    /// Names of the commands it offers.
    async fn capabilities(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.capabilities))
    }
    /// Whether it comes with Cerebral (true) or was imported by the tenant.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
}

/// A named bundle of personas and workflows.
#[derive(async_graphql::Description)]
pub struct Team(pub team::Model);

#[Object(use_type_description)]
impl Team {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Team, self.0.id)
    }
    /// Catalog key, e.g. `team-fullstack`.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// Display name.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// An emoji icon.
    async fn icon(&self) -> Counted<Option<&str>> {
        Counted(self.0.icon.as_deref())
    }
    /// A short description.
    async fn description(&self) -> Counted<Option<&str>> {
        Counted(self.0.description.as_deref())
    }
    /// Whether it comes with Cerebral.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
    /// Members in team order; keys that name no known persona are left out.
    async fn personas(&self, ctx: &Context<'_>) -> Result<Counted<Vec<Persona>>> {
        let keys = team_keys(ctx, self.0.id, |(personas, _)| personas).await?;
        in_key_order(&loaders(ctx).personas_by_key, keys, Persona).await
    }
    /// Workflows in team order; unknown keys are left out.
    async fn workflows(&self, ctx: &Context<'_>) -> Result<Counted<Vec<Workflow>>> {
        let keys = team_keys(ctx, self.0.id, |(_, workflows)| workflows).await?;
        in_key_order(&loaders(ctx).workflows_by_key, keys, Workflow).await
    }
}

/// A workflow definition: ordered steps, each a persona producing artifacts.
#[derive(async_graphql::Description)]
pub struct Workflow(pub workflow::Model);

#[Object(use_type_description)]
impl Workflow {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Workflow, self.0.id)
    }
    /// Catalog key, e.g. `greenfield-service`; accepted wherever a workflow id is.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// Display name.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// A short description.
    async fn description(&self) -> Counted<Option<&str>> {
        Counted(self.0.description.as_deref())
    }
    /// `greenfield`, `brownfield` or another kind named by the pack.
    async fn kind(&self) -> Counted<Option<&str>> {
        Counted(self.0.kind.as_deref())
    }
    /// Project types it suits, e.g. `rest-api`.
    async fn project_types(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.project_types))
    }
    /// Whether it comes with Cerebral.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
    /// Steps in order (a definition has tens of steps, not thousands).
    async fn steps(&self, ctx: &Context<'_>) -> Result<Counted<Vec<WorkflowStep>>> {
        {
            Ok(loaders(ctx)
                .workflow_steps
                .load_one(self.0.id)
                .await
                .map_err(db_err)?
                .unwrap_or_default()
                .into_iter()
                .map(WorkflowStep)
                .collect())
        }
        .map(Counted)
    }
}

/// One step of a workflow.
#[derive(async_graphql::Description)]
pub struct WorkflowStep(pub workflow_step::Model);

#[Object(use_type_description)]
impl WorkflowStep {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::WorkflowStep, self.0.id)
    }
    /// Key unique within the workflow, e.g. `pm-prd-md`.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// 0-based order.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// The agent as the definition names it, e.g. `analyst/pm` or `various`.
    async fn agent(&self) -> Counted<Option<&str>> {
        Counted(self.0.agent.as_deref())
    }
    /// The persona that does it (the first one named).
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        let Some(k) = self.0.persona_key.clone() else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).personas_by_key, k).await?.map(Persona))
    }
    /// What it does, e.g. `create_story` or `validate`.
    async fn action(&self) -> Counted<Option<&str>> {
        Counted(self.0.action.as_deref())
    }
    /// Artifacts it creates, e.g. `prd.md`.
    async fn creates(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.creates))
    }
    /// Artifacts it needs.
    async fn requires(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.requires))
    }
    /// Artifacts it updates.
    async fn updates(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.updates))
    }
    /// Whether the step may be skipped.
    async fn optional(&self) -> bool {
        self.0.optional
    }
    /// The condition under which it runs, if any.
    async fn condition(&self) -> Counted<Option<&str>> {
        Counted(self.0.condition.as_deref())
    }
    /// How it repeats, e.g. `for_each_epic`.
    async fn repeats(&self) -> Counted<Option<&str>> {
        Counted(self.0.repeats.as_deref())
    }
    /// Whether a human must approve its outcome (a HITL gate).
    async fn requires_approval(&self) -> bool {
        self.0.requires_approval
    }
    /// Whether it is a control marker (e.g. `workflow_end`) rather than work.
    async fn is_control(&self) -> bool {
        self.0.is_control
    }
    /// Notes of the definition (imported packs only).
    async fn notes(&self) -> Counted<Option<&str>> {
        Counted(self.0.notes.as_deref())
    }
}

/// A user's working session with the agents.
#[derive(async_graphql::Description)]
pub struct Session(pub session::Model);

#[Object(use_type_description)]
impl Session {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Session, self.0.id)
    }
    /// The user it belongs to.
    async fn user_id(&self) -> Counted<&str> {
        Counted(&self.0.user_id)
    }
    /// Display name.
    async fn name(&self) -> Counted<Option<&str>> {
        Counted(self.0.name.as_deref())
    }
    /// Lifecycle state: `ACTIVE ⇄ SUSPENDED → TERMINATED`, or `EXPIRED`.
    async fn status(&self) -> SessionStatus {
        self.0.status
    }
    /// States this session may move to next.
    async fn allowed_transitions(&self) -> Vec<SessionStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// The context of the current persona.
    async fn current_context(&self, ctx: &Context<'_>) -> Result<Option<PersonaContext>> {
        let Some(id) = self.0.current_context_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).contexts, id).await?.map(PersonaContext))
    }
    /// HITL requests waiting for a human that this session's user may
    /// answer, oldest first. Requests have no assignee, so this is every
    /// PENDING request of the tenant; `totalCount` is the badge a dashboard
    /// shows.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn pending_hitl(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<HitlRequest>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let q = hitl_request::Entity::find()
            .filter(hitl_request::Column::TenantId.eq(self.0.tenant_id))
            .filter(hitl_request::Column::Status.eq(HitlStatus::Pending));
        let after = id_cursor(after)?;
        let pg = crate::service::query::page(
            &super::services(ctx).reader(self.0.tenant_id),
            q,
            hitl_request::Column::Id,
            first,
            after,
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.id.to_string(),
            HitlRequest,
        ))
    }
    /// Every persona context of this session, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn contexts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<PersonaContext>> {
        child_page(
            &loaders(ctx).context_pages,
            (Rel::SessionContexts, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            PersonaContext,
        )
        .await
    }
    /// Last activity.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }
    /// When it expires without further activity.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// When it was terminated or expired.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// When it was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One persona's context inside one session.
#[derive(async_graphql::Description)]
pub struct PersonaContext(pub persona_context::Model);

#[Object(use_type_description)]
impl PersonaContext {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::PersonaContext, self.0.id)
    }
    /// The persona.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        Ok(one(&loaders(ctx).personas, self.0.persona_id)
            .await?
            .map(Persona))
    }
    /// The enclosing context, when contexts nest.
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<PersonaContext>> {
        let Some(id) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).contexts, id).await?.map(PersonaContext))
    }
    /// Key-value state (a JSON object).
    async fn state(&self) -> Counted<Json<Value>> {
        Counted(Json(self.0.state.clone()))
    }
    /// Retained conversation history, oldest first (bounded; the oldest
    /// entries are dropped beyond the configured maximum).
    async fn history(&self) -> Counted<Json<Value>> {
        Counted(Json(self.0.history.clone()))
    }
    /// Entries currently retained in `history`.
    async fn history_count(&self) -> i64 {
        self.0
            .history
            .as_array()
            .map(|a| a.len() as i64)
            .unwrap_or(0)
    }
    /// Entries ever appended, dropped ones included.
    async fn history_total(&self) -> i64 {
        self.0.history_total
    }
    /// The tool the persona is using.
    async fn active_tool(&self) -> Counted<Option<&str>> {
        Counted(self.0.active_tool.as_deref())
    }
    /// The workflow the persona is following.
    async fn active_workflow(&self) -> Counted<Option<&str>> {
        Counted(self.0.active_workflow.as_deref())
    }
    /// Last time it was switched to or changed.
    async fn last_active_at(&self) -> DateTime<Utc> {
        self.0.last_active_at
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A versioned snapshot of a task's state at a workflow step.
#[derive(async_graphql::Description)]
pub struct TaskCheckpoint(pub task_checkpoint::Model);

#[Object(use_type_description)]
impl TaskCheckpoint {
    /// Global id.
    async fn id(&self) -> ID {
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

/// A question from an agent to a human about one task.
#[derive(async_graphql::Description)]
pub struct HitlRequest(pub hitl_request::Model);

#[Object(use_type_description)]
impl HitlRequest {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::HitlRequest, self.0.id)
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The task waiting for the answer.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        Ok(one(&loaders(ctx).tasks, self.0.task_id).await?.map(Task))
    }
    /// The question.
    async fn question(&self) -> Counted<&str> {
        Counted(&self.0.question)
    }
    /// The JSON Schema an APPROVE or AMEND response must match, if any.
    async fn response_schema(&self) -> Counted<Option<Json<Value>>> {
        Counted(self.0.response_schema.clone().map(Json))
    }
    /// Suggested answers, if any.
    async fn options(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.options))
    }
    /// Lifecycle state: `PENDING → APPROVED / REJECTED / AMENDED` (or `EXPIRED`).
    async fn status(&self) -> HitlStatus {
        self.0.status
    }
    /// States this request may move to next (empty once answered).
    async fn allowed_transitions(&self) -> Vec<HitlStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// The human's response (free JSON: a comment, or the amendments).
    async fn response(&self) -> Counted<Option<Json<Value>>> {
        Counted(self.0.response.clone().map(Json))
    }
    /// Who asked.
    async fn requested_by(&self) -> Counted<&str> {
        Counted(&self.0.requested_by)
    }
    /// Who answered.
    async fn resolved_by(&self) -> Counted<Option<&str>> {
        Counted(self.0.resolved_by.as_deref())
    }
    /// When it was answered.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// When it expires unanswered.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// What happens to the task if it expires unanswered.
    async fn on_expiry(&self) -> crate::domain::HitlExpiryPolicy {
        self.0.on_expiry
    }
    /// When it was asked.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The human's decision, once answered.
    async fn decision(&self) -> Option<crate::domain::HitlDecision> {
        self.0
            .decision
            .as_deref()
            .and_then(crate::service::hitl::parse_decision)
    }
}

/// An immutable output kept in the context store.
#[derive(async_graphql::Description)]
pub struct Artifact(pub artifact::Model);

#[Object(use_type_description)]
impl Artifact {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Artifact, self.0.id)
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The task that produced it.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        let Some(id) = self.0.task_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).tasks, id).await?.map(Task))
    }
    /// The persona that produced it.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Fast<Persona>>> {
        let Some(id) = self.0.persona_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).personas, id)
            .await?
            .map(|p| Fast(Persona(p))))
    }
    /// What it is.
    async fn kind(&self) -> ArtifactKind {
        self.0.kind
    }
    /// Its name, e.g. `prd.md`.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// Version of this name within the project, from 1.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The content (loaded only when selected; see `size`).
    async fn content(&self, ctx: &Context<'_>) -> Result<Counted<Json<Value>>> {
        {
            Ok(Json(
                one(&loaders(ctx).artifact_contents, self.0.id)
                    .await?
                    .unwrap_or(Value::Null),
            ))
        }
        .map(Counted)
    }
    /// SHA-256 of the content as stored JSON, lower-case hex (64 characters).
    async fn sha256(&self) -> Counted<&str> {
        Counted(&self.0.sha256)
    }
    /// Size of the content as stored JSON, in bytes.
    async fn size(&self) -> i64 {
        self.0.size
    }
    /// The previous version of the same name, if any.
    async fn supersedes(&self, ctx: &Context<'_>) -> Result<Option<Artifact>> {
        let Some(id) = self.0.supersedes_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).artifacts, id).await?.map(Artifact))
    }
    /// Who stored it.
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The live state of one persona's agent in one project.
#[derive(async_graphql::Description)]
pub struct AgentStatus(pub agent_status::Model);

#[Object(use_type_description)]
impl AgentStatus {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::AgentStatus, self.0.id)
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The persona.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        Ok(one(&loaders(ctx).personas, self.0.persona_id)
            .await?
            .map(Persona))
    }
    /// What the agent is doing.
    async fn status(&self) -> AgentState {
        self.0.status
    }
    /// The task it is on.
    async fn current_task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        let Some(id) = self.0.current_task_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).tasks, id).await?.map(Task))
    }
    /// The last message it reported.
    async fn message(&self) -> Counted<Option<&str>> {
        Counted(self.0.message.as_deref())
    }
    /// Its last report.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }
    /// Every report so far, newest first (the current one included).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<AgentStatusHistoryEntry>> {
        child_page(
            &loaders(ctx).agent_history_pages,
            (Rel::AgentHistory, self.0.id, first, after),
            Columns::ALL,
            |m| m.id.to_string(),
            AgentStatusHistoryEntry,
        )
        .await
    }
}

/// An immutable record of one change. `cursor` orders all events of a
/// tenant; pass it back as `after` to resume.
#[derive(async_graphql::Description)]
pub struct Event(pub std::sync::Arc<event::Model>);

impl From<event::Model> for Event {
    fn from(m: event::Model) -> Self {
        Event(m.into())
    }
}

#[Object(use_type_description)]
impl Event {
    /// Global id.
    async fn id(&self) -> ID {
        encode(Kind::Event, self.0.id)
    }
    /// Stream cursor: the event's sequence number as a string.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// What happened.
    #[graphql(name = "type")]
    async fn event_type(&self) -> EventType {
        self.0.event_type
    }
    /// The project it belongs to.
    async fn project_id(&self) -> Option<ID> {
        self.0.project_id.map(|p| encode(Kind::Project, p))
    }
    /// The task it belongs to.
    async fn task_id(&self) -> Option<ID> {
        self.0.task_id.map(|t| encode(Kind::Task, t))
    }
    /// GraphQL type name of the changed object.
    async fn subject_type(&self) -> Counted<&str> {
        Counted(&self.0.subject_type)
    }
    /// Global id of the changed object (raw UUID for types without ids).
    async fn subject_id(&self) -> ID {
        match self.0.subject_type.as_str() {
            "Project" => encode(Kind::Project, self.0.subject_id),
            "Task" => encode(Kind::Task, self.0.subject_id),
            "HitlRequest" => encode(Kind::HitlRequest, self.0.subject_id),
            "TaskCheckpoint" => encode(Kind::TaskCheckpoint, self.0.subject_id),
            "Artifact" => encode(Kind::Artifact, self.0.subject_id),
            "AgentStatus" => encode(Kind::AgentStatus, self.0.subject_id),
            "Session" => encode(Kind::Session, self.0.subject_id),
            "PersonaContext" => encode(Kind::PersonaContext, self.0.subject_id),
            _ => ID(self.0.subject_id.to_string()),
        }
    }
    /// Who made the change.
    async fn actor(&self) -> Counted<&str> {
        Counted(&self.0.actor)
    }
    /// A JSON snapshot of the change (field names in camelCase).
    async fn payload(&self) -> Counted<Json<Value>> {
        Counted(Json(self.0.payload.clone()))
    }
    /// When it was committed.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The project, as it is now.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        let Some(id) = self.0.project_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).projects, id).await?.map(Project))
    }
    /// The task, as it is now.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        let Some(id) = self.0.task_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).tasks, id).await?.map(Task))
    }
}

/// Reads the object snapshot an event recorded right after its change.
pub fn recorded<T: serde::de::DeserializeOwned>(e: &event::Model) -> Option<T> {
    serde_json::from_value(e.payload.clone()).ok()
}

/// An item of `taskUpdated`: the event and the task as it was right after
/// the change.
#[derive(async_graphql::Description)]
pub struct TaskUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl TaskUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// What happened to the task.
    #[graphql(name = "type")]
    async fn event_type(&self) -> EventType {
        self.0.event_type
    }
    /// The task as recorded by the event.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        match recorded::<task::Model>(&self.0) {
            Some(t) => Ok(Some(Task(t))),
            None => match self.0.task_id {
                Some(id) => Ok(one(&loaders(ctx).tasks, id).await?.map(Task)),
                None => Ok(None),
            },
        }
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// An item of `agentStatusChanged`: the event and the agent status it
/// recorded.
#[derive(async_graphql::Description)]
pub struct AgentStatusUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl AgentStatusUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// The agent status as recorded by the event.
    async fn agent_status(&self, ctx: &Context<'_>) -> Result<Option<AgentStatus>> {
        match recorded::<agent_status::Model>(&self.0) {
            Some(a) => Ok(Some(AgentStatus(a))),
            None => Ok(one(&loaders(ctx).agent_statuses, self.0.subject_id)
                .await?
                .map(AgentStatus)),
        }
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// An item of `artifactCreated`: the event and the new artifact (its
/// content is loaded only when selected).
#[derive(async_graphql::Description)]
pub struct ArtifactUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl ArtifactUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// The artifact (artifacts never change, so this is also how it was).
    async fn artifact(&self, ctx: &Context<'_>) -> Result<Option<Artifact>> {
        Ok(one(&loaders(ctx).artifacts, self.0.subject_id)
            .await?
            .map(Artifact))
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// An item of `hitlRequested`: the event and the request as it was opened.
#[derive(async_graphql::Description)]
pub struct HitlRequestUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl HitlRequestUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// The request as recorded by the event.
    async fn hitl_request(&self, ctx: &Context<'_>) -> Result<Option<HitlRequest>> {
        match recorded::<hitl_request::Model>(&self.0) {
            Some(h) => Ok(Some(HitlRequest(h))),
            None => Ok(one(&loaders(ctx).hitl_requests, self.0.subject_id)
                .await?
                .map(HitlRequest)),
        }
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// One past report of an agent.
#[derive(async_graphql::Description)]
pub struct AgentStatusHistoryEntry(pub agent_status_history::Model);

#[Object(use_type_description)]
impl AgentStatusHistoryEntry {
    /// What the agent was doing.
    async fn status(&self) -> AgentState {
        self.0.status
    }
    /// The task it was on.
    async fn current_task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        let Some(id) = self.0.current_task_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).tasks, id).await?.map(Task))
    }
    /// The message it reported.
    async fn message(&self) -> Counted<Option<&str>> {
        Counted(self.0.message.as_deref())
    }
    /// When it reported this.
    async fn reported_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// How one persona's tasks went.
#[derive(async_graphql::Description)]
pub struct PersonaAnalytics(pub crate::service::analytics::PersonaStats);

#[Object(use_type_description)]
impl PersonaAnalytics {
    /// The persona.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        Ok(one(&loaders(ctx).personas, self.0.persona_id)
            .await?
            .map(Persona))
    }
    /// Tasks COMPLETED.
    async fn tasks_completed(&self) -> i64 {
        self.0.completed
    }
    /// Tasks FAILED.
    async fn tasks_failed(&self) -> i64 {
        self.0.failed
    }
    /// Share of finished tasks that completed: completed / (completed +
    /// failed), 0–1; null before any finished.
    async fn success_rate(&self) -> Option<f64> {
        let done = self.0.completed + self.0.failed;
        (done > 0).then(|| self.0.completed as f64 / done as f64)
    }
    /// Mean start-to-completion time of completed tasks, in seconds.
    async fn mean_duration_seconds(&self) -> Option<f64> {
        self.0.mean_seconds
    }
    /// 95th percentile (nearest rank) of the same, in seconds.
    async fn p95_duration_seconds(&self) -> Option<f64> {
        self.0.p95_seconds
    }
}

/// How one workflow's projects went.
#[derive(async_graphql::Description)]
pub struct WorkflowAnalytics(pub crate::service::analytics::WorkflowStats);

#[Object(use_type_description)]
impl WorkflowAnalytics {
    /// The workflow.
    async fn workflow(&self, ctx: &Context<'_>) -> Result<Option<Workflow>> {
        Ok(one(&loaders(ctx).workflows, self.0.workflow_id)
            .await?
            .map(Workflow))
    }
    /// Projects started from it.
    async fn projects_started(&self) -> i64 {
        self.0.started
    }
    /// Of those, COMPLETED.
    async fn projects_completed(&self) -> i64 {
        self.0.completed
    }
    /// Mean time from creation to completion, in seconds.
    async fn mean_time_to_complete_seconds(&self) -> Option<f64> {
        self.0.mean_seconds
    }
}

/// One failed attempt of a task, as its `TASK_FAILED` event recorded it.
#[derive(async_graphql::Description)]
pub struct TaskAttempt(pub event::Model);

#[Object(use_type_description)]
impl TaskAttempt {
    /// The attempt number (1 for the first run).
    async fn attempt(&self) -> i64 {
        self.0
            .payload
            .get("attempt")
            .and_then(|v| v.as_i64())
            .unwrap_or(1)
    }
    /// The error it failed with.
    async fn error(&self) -> Counted<Option<String>> {
        Counted({
            self.0
                .payload
                .get("error")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
    }
    /// When it started.
    async fn started_at(&self) -> Counted<Option<String>> {
        Counted({
            self.0
                .payload
                .get("startedAt")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
    }
    /// When it failed.
    async fn failed_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The `TASK_FAILED` event.
    async fn event(&self) -> Event {
        Event::from(self.0.clone())
    }
}
