//! Query roots, one per domain, merged.

use async_graphql::{Context, ID, InputObject, MergedObject, Object, Result};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::limits::Counted;
use super::types::*;
use super::{loaders, principal, services};
use crate::auth::SYSTEM_TENANT;
use crate::domain::{
    ArtifactKind, EventType, HitlStatus, ProjectStatus, SessionStatus, TaskStatus,
};
use crate::entity::{
    agent_status, artifact, hitl_request, persona, project, session, task, team, workflow,
};
use crate::error::AppError;
use crate::events::EventFilter;
use crate::graphql::subscription::TASK_EVENTS;
use crate::ids::{self, Kind};
use crate::service::query::{page, page_size};

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    ProjectQuery,
    CatalogQuery,
    SessionQuery,
    EventQuery,
    AnalyticsQuery,
);

/// `node(id:)`.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its global id (`<Type>:<uuid>`); null when it does not
    /// exist or belongs to another tenant.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id.")] id: ID,
    ) -> Result<Option<Node>> {
        let (kind, uuid) = ids::decode_any(&id)?;
        let l = loaders(ctx);
        Ok(match kind {
            Kind::Project => one(&l.projects, uuid)
                .await?
                .map(|m| Node::Project(Project(m))),
            Kind::Task => one(&l.tasks, uuid).await?.map(|m| Node::Task(Task(m))),
            Kind::Persona => one(&l.personas, uuid)
                .await?
                .map(|m| Node::Persona(Persona(m))),
            Kind::Workflow => one(&l.workflows, uuid)
                .await?
                .map(|m| Node::Workflow(Workflow(m))),
            Kind::WorkflowStep => one(&l.steps, uuid)
                .await?
                .map(|m| Node::WorkflowStep(WorkflowStep(m))),
            Kind::PersonaContext => one(&l.contexts, uuid)
                .await?
                .map(|m| Node::PersonaContext(PersonaContext(m))),
            Kind::TaskCheckpoint => one(&l.checkpoints, uuid)
                .await?
                .map(|m| Node::TaskCheckpoint(TaskCheckpoint(m))),
            Kind::Team => find_team(ctx, uuid).await?.map(Node::Team),
            Kind::Session => find_session(ctx, uuid).await?.map(Node::Session),
            Kind::HitlRequest => find_hitl(ctx, uuid).await?.map(Node::HitlRequest),
            Kind::Artifact => find_artifact(ctx, uuid).await?.map(Node::Artifact),
            Kind::AgentStatus => find_agent(ctx, uuid).await?.map(Node::AgentStatus),
            Kind::Event => one(&l.events, uuid)
                .await?
                .map(|m| Node::Event(Event(m.into()))),
        })
    }
}

async fn find_team(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Team>> {
    let p = principal(ctx);
    Ok(team::Entity::find_by_id(id)
        .filter(team::Column::TenantId.is_in([p.tenant_id, SYSTEM_TENANT]))
        .one(&services(ctx).reader(p.tenant_id))
        .await
        .map_err(AppError::from)?
        .map(Team))
}

async fn find_session(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Session>> {
    let p = principal(ctx);
    Ok(session::Entity::find_by_id(id)
        .filter(session::Column::TenantId.eq(p.tenant_id))
        .one(&services(ctx).reader(p.tenant_id))
        .await
        .map_err(AppError::from)?
        .map(Session))
}

async fn find_hitl(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<HitlRequest>> {
    let p = principal(ctx);
    Ok(hitl_request::Entity::find_by_id(id)
        .filter(hitl_request::Column::TenantId.eq(p.tenant_id))
        .one(&services(ctx).reader(p.tenant_id))
        .await
        .map_err(AppError::from)?
        .map(HitlRequest))
}

async fn find_artifact(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Artifact>> {
    let p = principal(ctx);
    Ok(artifact::Entity::find_by_id(id)
        .filter(artifact::Column::TenantId.eq(p.tenant_id))
        .one(&services(ctx).reader(p.tenant_id))
        .await
        .map_err(AppError::from)?
        .map(Artifact))
}

async fn find_agent(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<AgentStatus>> {
    let p = principal(ctx);
    Ok(agent_status::Entity::find_by_id(id)
        .filter(agent_status::Column::TenantId.eq(p.tenant_id))
        .one(&services(ctx).reader(p.tenant_id))
        .await
        .map_err(AppError::from)?
        .map(AgentStatus))
}

/// Filter of `projects`.
#[derive(InputObject, Default)]
pub struct ProjectFilter {
    /// Only projects in one of these states.
    pub status: Option<Vec<ProjectStatus>>,
    /// Only projects whose name contains this text, ignoring ASCII case
    /// (`%` and `_` match themselves).
    pub name_contains: Option<String>,
}

/// Filter of `tasks`.
#[derive(InputObject, Default)]
pub struct TaskFilter {
    /// Only tasks of this project.
    pub project_id: Option<ID>,
    /// Only tasks in one of these states.
    pub status: Option<Vec<TaskStatus>>,
    /// Only tasks of this persona (global id or catalog key).
    pub persona_id: Option<ID>,
}

/// Filter of `hitlRequests`.
#[derive(InputObject, Default)]
pub struct HitlRequestFilter {
    /// Only requests of this project.
    pub project_id: Option<ID>,
    /// Only requests in one of these states.
    pub status: Option<Vec<HitlStatus>>,
}

/// Filter of `artifacts`.
#[derive(InputObject, Default)]
pub struct ArtifactFilter {
    /// Only artifacts of this project.
    pub project_id: Option<ID>,
    /// Only artifacts of this task.
    pub task_id: Option<ID>,
    /// Only artifacts of this kind.
    pub kind: Option<ArtifactKind>,
}

/// Filter of `sessions`.
#[derive(InputObject, Default)]
pub struct SessionFilter {
    /// Only sessions in one of these states.
    pub status: Option<Vec<SessionStatus>>,
    /// Only sessions of this user.
    pub user_id: Option<String>,
}

/// Filter of `events`.
#[derive(InputObject, Default)]
pub struct EventQueryFilter {
    /// Only events of this project.
    pub project_id: Option<ID>,
    /// Only events of this task.
    pub task_id: Option<ID>,
    /// Only events of these types.
    pub types: Option<Vec<EventType>>,
}

/// Projects, tasks, HITL requests, artifacts and agent statuses.
#[derive(Default)]
pub struct ProjectQuery;

#[Object]
impl ProjectQuery {
    /// A project by id; null when it does not exist for the caller.
    async fn project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] id: ID,
    ) -> Result<Option<Project>> {
        let id = ids::decode(Kind::Project, &id)?;
        Ok(one(&loaders(ctx).projects, id).await?.map(Project))
    }

    /// Projects, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
        #[graphql(desc = "What to include.")] filter: Option<ProjectFilter>,
    ) -> Result<Conn<Project>> {
        let p = principal(ctx);
        let f = filter.unwrap_or_default();
        let mut q = project::Entity::find().filter(project::Column::TenantId.eq(p.tenant_id));
        if let Some(s) = f.status {
            q = q.filter(project::Column::Status.is_in(s));
        }
        if let Some(n) = f.name_contains {
            q = q.filter(name_contains(n));
        }
        let after = id_cursor(after)?;
        let pg = page(
            &services(ctx).reader(p.tenant_id),
            q,
            project::Column::Id,
            first,
            after,
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.id.to_string(),
            Project,
        ))
    }

    /// A task by id.
    async fn task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Task` id.")] id: ID,
    ) -> Result<Option<Task>> {
        let id = ids::decode(Kind::Task, &id)?;
        Ok(one(&loaders(ctx).tasks, id).await?.map(Task))
    }

    /// Tasks, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
        #[graphql(desc = "What to include.")] filter: Option<TaskFilter>,
    ) -> Result<Conn<Task>> {
        let p = principal(ctx);
        let s = services(ctx);
        let f = filter.unwrap_or_default();
        let mut q = task::Entity::find().filter(task::Column::TenantId.eq(p.tenant_id));
        if let Some(pid) = f.project_id {
            q = q.filter(task::Column::ProjectId.eq(ids::decode(Kind::Project, &pid)?));
        }
        if let Some(st) = f.status {
            q = q.filter(task::Column::Status.is_in(st));
        }
        if let Some(per) = f.persona_id {
            q = q.filter(task::Column::PersonaId.eq(s.find_persona(p, &per).await?.id));
        }
        let after = id_cursor(after)?;
        let pg = page(&s.reader(p.tenant_id), q, task::Column::Id, first, after).await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.id.to_string(),
            Task,
        ))
    }

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

    /// A HITL request by id.
    async fn hitl_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `HitlRequest` id.")] id: ID,
    ) -> Result<Option<HitlRequest>> {
        find_hitl(ctx, ids::decode(Kind::HitlRequest, &id)?).await
    }

    /// HITL requests, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn hitl_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
        #[graphql(desc = "What to include.")] filter: Option<HitlRequestFilter>,
    ) -> Result<Conn<HitlRequest>> {
        let p = principal(ctx);
        let f = filter.unwrap_or_default();
        let mut q =
            hitl_request::Entity::find().filter(hitl_request::Column::TenantId.eq(p.tenant_id));
        if let Some(pid) = f.project_id {
            q = q.filter(hitl_request::Column::ProjectId.eq(ids::decode(Kind::Project, &pid)?));
        }
        if let Some(st) = f.status {
            q = q.filter(hitl_request::Column::Status.is_in(st));
        }
        let after = id_cursor(after)?;
        let pg = page(
            &services(ctx).reader(p.tenant_id),
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

    /// Artifacts, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn artifacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
        #[graphql(desc = "What to include.")] filter: Option<ArtifactFilter>,
    ) -> Result<Conn<Artifact>> {
        let p = principal(ctx);
        let f = filter.unwrap_or_default();
        let mut q = artifact::Entity::find().filter(artifact::Column::TenantId.eq(p.tenant_id));
        if let Some(pid) = f.project_id {
            q = q.filter(artifact::Column::ProjectId.eq(ids::decode(Kind::Project, &pid)?));
        }
        if let Some(tid) = f.task_id {
            q = q.filter(artifact::Column::TaskId.eq(ids::decode(Kind::Task, &tid)?));
        }
        if let Some(k) = f.kind {
            q = q.filter(artifact::Column::Kind.eq(k));
        }
        let after = id_cursor(after)?;
        let pg = page(
            &services(ctx).reader(p.tenant_id),
            q,
            artifact::Column::Id,
            first,
            after,
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.id.to_string(),
            Artifact,
        ))
    }

    /// What every agent of a project is doing: one entry per persona that
    /// has reported, in order of first report.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn agent_statuses(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] project_id: ID,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<AgentStatus>> {
        let p = principal(ctx);
        let pid = ids::decode(Kind::Project, &project_id)?;
        let q = agent_status::Entity::find()
            .filter(agent_status::Column::TenantId.eq(p.tenant_id))
            .filter(agent_status::Column::ProjectId.eq(pid));
        let after = id_cursor(after)?;
        let pg = page(
            &services(ctx).reader(p.tenant_id),
            q,
            agent_status::Column::Id,
            first,
            after,
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.id.to_string(),
            AgentStatus,
        ))
    }
}

/// Personas, teams and workflows.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Every persona the caller can use: built-ins and the tenant's own.
    /// Ordered by key; the cursor is the key. A tenant's own entry hides a
    /// built-in one with the same key.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn personas(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Key of the last entry already seen.")] after: Option<String>,
    ) -> Result<Conn<Persona>> {
        let p = principal(ctx);
        let base = persona::Entity::find()
            .filter(persona::Column::TenantId.is_in([p.tenant_id, SYSTEM_TENANT]));
        let pg = catalog_page(
            &services(ctx).reader(p.tenant_id),
            base,
            persona::Column::Key,
            first,
            after.clone(),
            |m: &persona::Model| (m.key.clone(), m.tenant_id == p.tenant_id),
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.key.clone(),
            |m| Persona(m.into()),
        ))
    }

    /// A persona by global id or catalog key (e.g. `analyst`).
    async fn persona(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Persona` id or key.")] id: ID,
    ) -> Result<Option<Persona>> {
        match services(ctx).find_persona(principal(ctx), &id).await {
            Ok(m) => Ok(Some(Persona(m.into()))),
            Err(AppError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every team the caller can use.
    /// Ordered by key; the cursor is the key. A tenant's own entry hides a
    /// built-in one with the same key.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn teams(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Key of the last entry already seen.")] after: Option<String>,
    ) -> Result<Conn<Team>> {
        let p = principal(ctx);
        let base =
            team::Entity::find().filter(team::Column::TenantId.is_in([p.tenant_id, SYSTEM_TENANT]));
        let pg = catalog_page(
            &services(ctx).reader(p.tenant_id),
            base,
            team::Column::Key,
            first,
            after.clone(),
            |m: &team::Model| (m.key.clone(), m.tenant_id == p.tenant_id),
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.key.clone(),
            Team,
        ))
    }

    /// Every workflow the caller can use.
    /// Ordered by key; the cursor is the key. A tenant's own entry hides a
    /// built-in one with the same key.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Key of the last entry already seen.")] after: Option<String>,
    ) -> Result<Conn<Workflow>> {
        let p = principal(ctx);
        let base = workflow::Entity::find()
            .filter(workflow::Column::TenantId.is_in([p.tenant_id, SYSTEM_TENANT]));
        let pg = catalog_page(
            &services(ctx).reader(p.tenant_id),
            base,
            workflow::Column::Key,
            first,
            after.clone(),
            |m: &workflow::Model| (m.key.clone(), m.tenant_id == p.tenant_id),
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.key.clone(),
            Workflow,
        ))
    }

    /// A workflow by global id or catalog key (e.g. `greenfield-service`).
    async fn workflow(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Workflow` id or key.")] id: ID,
    ) -> Result<Option<Workflow>> {
        match services(ctx).find_workflow(principal(ctx), &id).await {
            Ok(m) => Ok(Some(Workflow(m))),
            Err(AppError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Sessions.
#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// A session by id.
    async fn session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Session` id.")] id: ID,
    ) -> Result<Option<Session>> {
        find_session(ctx, ids::decode(Kind::Session, &id)?).await
    }

    /// Sessions, oldest first.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
        #[graphql(desc = "What to include.")] filter: Option<SessionFilter>,
    ) -> Result<Conn<Session>> {
        let p = principal(ctx);
        let f = filter.unwrap_or_default();
        let mut q = session::Entity::find().filter(session::Column::TenantId.eq(p.tenant_id));
        if let Some(s) = f.status {
            q = q.filter(session::Column::Status.is_in(s));
        }
        if let Some(u) = f.user_id {
            q = q.filter(session::Column::UserId.eq(u));
        }
        let after = id_cursor(after)?;
        let pg = page(
            &services(ctx).reader(p.tenant_id),
            q,
            session::Column::Id,
            first,
            after,
        )
        .await?;
        Ok(page_connection(
            pg,
            after.is_some(),
            |m| m.id.to_string(),
            Session,
        ))
    }
}

/// Analytics, computed in SQL.
#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Per persona: tasks completed and failed, success rate, mean and p95
    /// duration (seconds) — over the tenant, or one project.
    async fn persona_analytics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this project's tasks.")] project_id: Option<ID>,
    ) -> Result<Counted<Vec<PersonaAnalytics>>> {
        {
            let project = project_id
                .map(|p| ids::decode(Kind::Project, &p))
                .transpose()?;
            Ok(services(ctx)
                .persona_stats(principal(ctx), project)
                .await?
                .into_iter()
                .map(PersonaAnalytics)
                .collect())
        }
        .map(Counted)
    }

    /// Per workflow: projects started and completed, mean time to complete
    /// (seconds).
    async fn workflow_analytics(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Counted<Vec<WorkflowAnalytics>>> {
        {
            Ok(services(ctx)
                .workflow_stats(principal(ctx))
                .await?
                .into_iter()
                .map(WorkflowAnalytics)
                .collect())
        }
        .map(Counted)
    }
}

/// The event log.
#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// Events in sequence order: the query twin of the `events`
    /// subscription, with the same cursors, for clients that poll.
    ///
    /// On PostgreSQL an event is listed once every transaction begun before
    /// it has ended (so paging on with the last cursor never skips one);
    /// the query waits up to a second for that, so a client sees the events
    /// of its own mutations at once unless another write transaction stays
    /// open that long.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(
            desc = "Event cursor of the last event already seen; omit to start at the beginning."
        )]
        after: Option<String>,
        #[graphql(desc = "What to include.")] filter: Option<EventQueryFilter>,
    ) -> Result<Conn<Event>> {
        let p = principal(ctx);
        let f = filter.unwrap_or_default();
        let ef = EventFilter {
            tenant_id: p.tenant_id,
            project_id: f
                .project_id
                .map(|i| ids::decode(Kind::Project, &i))
                .transpose()?,
            task_id: f.task_id.map(|i| ids::decode(Kind::Task, &i)).transpose()?,
            types: f.types.unwrap_or_default(),
            persona_id: None,
        };
        event_page(ctx, ef, first, after, Event).await
    }

    /// Task changes of a project, oldest first: the query twin of the
    /// `taskUpdated` subscription (same items, same cursors), for clients
    /// that poll.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn task_updates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] project_id: ID,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last item already seen; omit to start at the beginning.")]
        after: Option<String>,
    ) -> Result<Conn<TaskUpdate>> {
        let f = twin_filter(ctx, &project_id, TASK_EVENTS.to_vec(), None)?;
        event_page(ctx, f, first, after, TaskUpdate).await
    }

    /// Artifacts stored in a project, oldest first: the query twin of the
    /// `artifactCreated` subscription.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn artifact_updates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] project_id: ID,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last item already seen; omit to start at the beginning.")]
        after: Option<String>,
    ) -> Result<Conn<ArtifactUpdate>> {
        let f = twin_filter(ctx, &project_id, vec![EventType::ArtifactCreated], None)?;
        event_page(ctx, f, first, after, ArtifactUpdate).await
    }

    /// Agent status changes in a project, oldest first, optionally of one
    /// persona: the query twin of the `agentStatusChanged` subscription.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn agent_status_updates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] project_id: ID,
        #[graphql(desc = "Only this persona (global id or key).")] persona_id: Option<ID>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last item already seen; omit to start at the beginning.")]
        after: Option<String>,
    ) -> Result<Conn<AgentStatusUpdate>> {
        let persona = match persona_id {
            Some(p) => Some(services(ctx).find_persona(principal(ctx), &p).await?.id),
            None => None,
        };
        let f = twin_filter(
            ctx,
            &project_id,
            vec![EventType::AgentStatusChanged],
            persona,
        )?;
        event_page(ctx, f, first, after, AgentStatusUpdate).await
    }

    /// HITL requests opened in a project, oldest first: the query twin of
    /// the `hitlRequested` subscription.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn hitl_request_updates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] project_id: ID,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last item already seen; omit to start at the beginning.")]
        after: Option<String>,
    ) -> Result<Conn<HitlRequestUpdate>> {
        let f = twin_filter(ctx, &project_id, vec![EventType::HitlRequested], None)?;
        event_page(ctx, f, first, after, HitlRequestUpdate).await
    }
}

fn twin_filter(
    ctx: &Context<'_>,
    project_id: &ID,
    types: Vec<EventType>,
    persona_id: Option<uuid::Uuid>,
) -> Result<EventFilter> {
    Ok(EventFilter {
        tenant_id: principal(ctx).tenant_id,
        project_id: Some(ids::decode(Kind::Project, project_id)?),
        task_id: None,
        types,
        persona_id,
    })
}

/// One page of the log under a filter: the `events` query and every
/// subscription's query twin (the same filter, items and cursors as the
/// stream).
async fn event_page<T: async_graphql::ContainerType>(
    ctx: &Context<'_>,
    f: EventFilter,
    first: Option<i32>,
    after: Option<String>,
    wrap: fn(std::sync::Arc<crate::entity::event::Model>) -> T,
) -> Result<Conn<T>> {
    let limit = page_size(first)?;
    let after = seq_cursor(after)?;
    let db = &services(ctx).reader(f.tenant_id);
    let rows = f.page(db, after.unwrap_or(0), limit + 1).await?;
    Ok(connection(
        rows,
        limit,
        after.is_some(),
        TotalCount::Events(f),
        |m| m.seq.to_string(),
        |m| wrap(m.into()),
    ))
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

/// One keyset page of a catalog table by key, own rows hiding built-in ones
/// with the same key; `total` counts distinct keys.
async fn catalog_page<E, C>(
    db: &C,
    base: sea_orm::Select<E>,
    key_col: E::Column,
    first: Option<i32>,
    after: Option<String>,
    key_of: impl Fn(&E::Model) -> (String, bool),
) -> Result<crate::service::query::Page<E::Model>, AppError>
where
    E: EntityTrait,
    E::Model: Sync,
    C: sea_orm::ConnectionTrait,
{
    let limit = page_size(first)? as usize;
    let total = crate::service::query::Count::of(
        db.get_database_backend(),
        &base.clone().select_only().column(key_col).distinct(),
    );
    let mut q = base;
    if let Some(a) = after {
        q = q.filter(key_col.gt(a));
    }
    // At most two rows share a key (own and built-in).
    let rows = q
        .order_by_asc(key_col)
        .limit((limit as u64 + 1) * 2)
        .all(db)
        .await?;
    let own: std::collections::HashSet<String> = rows
        .iter()
        .map(&key_of)
        .filter(|(_, own)| *own)
        .map(|(k, _)| k)
        .collect();
    let mut rows: Vec<E::Model> = rows
        .into_iter()
        .filter(|m| {
            let (k, is_own) = key_of(m);
            is_own || !own.contains(&k)
        })
        .collect();
    let has_next = rows.len() > limit;
    rows.truncate(limit);
    Ok(crate::service::query::Page {
        items: rows,
        has_next,
        total,
    })
}
