//! Agent status: what each persona's agent is doing in a project, its history, verbs and stream.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use futures::Stream;

use super::limits::Counted;
use super::mutation::keyed;
use super::subscription::{events_of, items, one_item};
use super::types::*;
use super::{AGENT, OPERATOR, loaders, principal, services};
use crate::domain::{AgentState, EventType};
use crate::entity::{agent_status, agent_status_history, event};
use crate::ids::{self, Kind};

/// The live state of one persona's agent in one project.
#[derive(async_graphql::Description)]
pub struct AgentStatus(pub agent_status::Model);

#[Object(use_type_description)]
impl AgentStatus {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
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

    #[graphql(flatten)]
    async fn children(&self) -> AgentStatusChildren {
        AgentStatusChildren(self.0.id)
    }
}

fields! {
    /// The child pages of [`AgentStatus`] read through a DataLoader.
    children AgentStatusChildren;

    /// Every report so far, newest first (the current one included).
    children history -> AgentStatusHistoryEntry = agent_history_pages(AgentHistory);
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

keyed_input!(
    /// Input of `updateAgentStatus`.
    UpdateAgentStatusInput {
        /// The persona whose agent reports (global id or key, e.g. `dev`).
        persona_id: ID,
        /// The project it works on.
        project_id: ID,
        /// What it is doing.
        status: AgentState,
        /// The task it is on.
        current_task_id: Option<ID>,
        /// A short message.
        message: Option<String>,
    }
);

payload!(
    /// Result of `updateAgentStatus`.
    UpdateAgentStatusPayload {
        /// The agent status as recorded.
        agent_status: AgentStatus,
    }
);

/// Input of `heartbeat` and `resetAgentStatus`.
#[derive(InputObject)]
pub struct AgentInput {
    /// The persona whose agent it is (global id or key, e.g. `dev`).
    pub persona_id: ID,
    /// The project it works on.
    pub project_id: ID,
}

keyed_input!(
    /// Input of `resetAgentStatus`.
    ResetAgentStatusInput {
        /// The persona whose agent it is (global id or key, e.g. `dev`).
        persona_id: ID,
        /// The project it works on.
        project_id: ID,
    }
);

/// Result of `heartbeat`.
#[derive(SimpleObject)]
pub struct HeartbeatPayload {
    /// The agent status with its new `lastActivityAt`.
    pub agent_status: AgentStatus,
}

/// Agent queries.
#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
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
        let at = page_at(first, after)?;
        let project = ids::decode(Kind::Project, &project_id)?;
        let pg = services(ctx)
            .agent_statuses(principal(ctx), project, at)
            .await?;
        Ok(id_connection(pg, at, AgentStatus))
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
}

fields! {
    /// Agent mutations.
    object AgentMutation;

    /// An agent says it is alive; send one at least every
    /// `CEREBRAL_AGENT_STALE_SECONDS` (default 60), or it is reported STALE.
    /// Appends no event unless the agent was unknown or STALE (it then
    /// appears as IDLE).
    ///
    /// Roles: agent, admin.
    mutation AGENT heartbeat(ctx, input: AgentInput) -> HeartbeatPayload {
        let s = services(ctx);
        let p = principal(ctx);
        let persona = s.find_persona(p, &input.persona_id).await?;
        let st = s
            .heartbeat(
                p,
                ids::decode(Kind::Project, &input.project_id)?,
                persona.id,
            )
            .await?;
        Ok(HeartbeatPayload {
            agent_status: AgentStatus(st),
        })
    }

    /// Puts an agent back to IDLE with no current task, e.g. after an
    /// operator restarted it.
    ///
    /// Roles: operator, admin.
    mutation OPERATOR reset_agent_status(ctx, input: ResetAgentStatusInput)
        -> UpdateAgentStatusPayload {
        let project = ids::decode(Kind::Project, &input.project_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let persona = s.find_persona(p, &input.persona_id).await?.id;
            let why = Some(format!("reset by {}", p.user_id));
            s.update_agent_status(p, project, persona, AgentState::Idle, None, why)
                .await
        })
        .await
    }

    /// Records what an agent is doing; the previous state goes to history.
    ///
    /// Roles: agent, admin.
    mutation AGENT update_agent_status(ctx, input: UpdateAgentStatusInput)
        -> UpdateAgentStatusPayload {
        let project = ids::decode(Kind::Project, &input.project_id)?;
        let task = ids::decode_opt(Kind::Task, input.current_task_id.as_ref())?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let persona = s.find_persona(p, &input.persona_id).await?.id;
            s.update_agent_status(p, project, persona, input.status, task, input.message)
                .await
        })
        .await
    }
}

/// Agent streams.
#[derive(Default)]
pub struct AgentSubscription;

#[async_graphql::Subscription]
impl AgentSubscription {
    /// Agent status changes in a project, optionally of one persona.
    async fn agent_status_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Project` id.")] project_id: ID,
        #[graphql(desc = "Only this persona (global id or key).")] persona_id: Option<ID>,
        #[graphql(desc = "Cursor of the last event already seen, or `HEAD`.")] after: Option<
            String,
        >,
    ) -> Result<impl Stream<Item = Result<AgentStatusUpdate>>> {
        let persona = match persona_id {
            Some(p) if !one_item(ctx) => Some(
                Box::pin(services(ctx).find_persona(principal(ctx), &p))
                    .await?
                    .id,
            ),
            _ => None,
        };
        let s = events_of(
            ctx,
            Some(project_id),
            vec![EventType::AgentStatusChanged],
            after,
            persona,
        )
        .await?;
        Ok(items(s, AgentStatusUpdate))
    }
}
