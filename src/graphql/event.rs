//! The event log: the `Event` type, the `events` query and stream, and the query twins' paging.

use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use futures::Stream;

use serde_json::Value;

use super::limits::Counted;
use super::subscription::{events_of, items};
use super::types::*;
use super::{loaders, principal, services};
use crate::domain::EventType;
use crate::entity::event;
use crate::events::EventFilter;
use crate::ids::{self, Kind};
use crate::service::query::page_size;

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
    pub(crate) async fn id(&self) -> ID {
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

pub(crate) fn twin_filter(
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
pub(crate) async fn event_page<T: async_graphql::ContainerType>(
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

/// Event queries.
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
}

/// Event streams.
#[derive(Default)]
pub struct EventSubscription;

#[async_graphql::Subscription]
impl EventSubscription {
    /// Every event of the caller's tenant, optionally narrowed, in sequence
    /// order. `after` is the cursor of the last event already seen (`"0"`
    /// replays the whole log); omitted or `"HEAD"`, the stream starts with
    /// the next commit.
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Cursor of the last event already seen, or `HEAD`.")] after: Option<
            String,
        >,
        #[graphql(desc = "Only events of this project.")] project_id: Option<ID>,
        #[graphql(desc = "Only events of these types.")] types: Option<Vec<EventType>>,
    ) -> Result<impl Stream<Item = Result<Event>>> {
        let s = events_of(ctx, project_id, types.unwrap_or_default(), after, None).await?;
        Ok(items(s, Event))
    }
}
