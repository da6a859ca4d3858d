//! `Node` and `node(id:)`: any object by its global id.

use async_graphql::{Context, ID, Object, Result};

use super::types::*;
use super::{loaders, principal, services};
use crate::entity::{agent_status, artifact, hitl_request, session};
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
    /// An epic.
    Epic(Epic),
    /// A story.
    Story(Story),
    /// A QA gate.
    QaGate(QaGate),
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
            Kind::Team => services(ctx)
                .find_team(principal(ctx), uuid)
                .await?
                .map(|m| Node::Team(Team(m))),
            Kind::Session => {
                own::<session::Entity, _>(ctx, session::Column::TenantId, uuid, |m| {
                    Node::Session(Session(m))
                })
                .await?
            }
            Kind::HitlRequest => {
                own::<hitl_request::Entity, _>(ctx, hitl_request::Column::TenantId, uuid, |m| {
                    Node::HitlRequest(HitlRequest(m))
                })
                .await?
            }
            Kind::Artifact => {
                own::<artifact::Entity, _>(ctx, artifact::Column::TenantId, uuid, |m| {
                    Node::Artifact(Artifact(m))
                })
                .await?
            }
            Kind::AgentStatus => {
                own::<agent_status::Entity, _>(ctx, agent_status::Column::TenantId, uuid, |m| {
                    Node::AgentStatus(AgentStatus(m))
                })
                .await?
            }
            Kind::Event => one(&l.events, uuid)
                .await?
                .map(|m| Node::Event(Event(m.into()))),
            Kind::Epic => one(&l.epics, uuid).await?.map(|m| Node::Epic(Epic(m))),
            Kind::Story => one(&l.stories, uuid).await?.map(|m| Node::Story(Story(m))),
            Kind::QaGate => one(&l.qa_gates, uuid)
                .await?
                .map(|m| Node::QaGate(QaGate(m))),
        })
    }
}

/// A row of the caller's tenant by id, wrapped; `None` for another
/// tenant's row as for no row.
pub(crate) async fn own<E, T>(
    ctx: &Context<'_>,
    tenant: E::Column,
    id: uuid::Uuid,
    wrap: impl FnOnce(E::Model) -> T,
) -> Result<Option<T>>
where
    E: sea_orm::EntityTrait,
    E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = uuid::Uuid>,
{
    let found = services(ctx)
        .find_own::<E>(principal(ctx), tenant, id)
        .await?;
    Ok(found.map(wrap))
}
