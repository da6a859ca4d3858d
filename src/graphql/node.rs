//! `Node` and `node(id:)`: any object by its global id.

use async_graphql::{Context, ID, Object, Result};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::types::*;
use super::{loaders, principal, services};
use crate::auth::SYSTEM_TENANT;
use crate::entity::{agent_status, artifact, hitl_request, session, team};
use crate::error::AppError;
use crate::ids::{self, Kind};

/// Any object with a global id; see `Query.node`.
#[derive(async_graphql::Interface)]
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

pub(crate) async fn find_session(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<Session>> {
    let p = principal(ctx);
    Ok(session::Entity::find_by_id(id)
        .filter(session::Column::TenantId.eq(p.tenant_id))
        .one(&services(ctx).reader(p.tenant_id))
        .await
        .map_err(AppError::from)?
        .map(Session))
}

pub(crate) async fn find_hitl(ctx: &Context<'_>, id: uuid::Uuid) -> Result<Option<HitlRequest>> {
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
