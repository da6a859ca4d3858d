//! DataLoaders: every relation of the schema goes through one of these, so
//! the number of SQL statements for a request depends on its shape, never on
//! how many rows it returns.
//!
//! Loaders are built per request with the caller's tenant inside, so a
//! loader can never return another tenant's row and its cache never
//! outlives the request.

use super::batch::Batching;
use crate::auth::SYSTEM_TENANT;
use crate::entity::{
    agent_status, agent_status_history, artifact, artifact_content, epic, event, hitl_request,
    persona, persona_context, project, qa_gate, story, story_content, task, task_checkpoint,
    task_checkpoint_state, workflow, workflow_step,
};
use crate::rls::Scoped;
use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use uuid::Uuid;

mod children;
mod relations;
pub use children::*;
pub use relations::*;

/// Errors of loaders are shared between every field waiting on the batch.
pub type LoadError = Arc<sea_orm::DbErr>;

/// Loads rows of one table by primary key, scoped to a tenant (and, for the
/// catalog, to the built-in tenant as well).
pub struct ById<E> {
    db: Scoped,
    tenants: Vec<Uuid>,
    _e: PhantomData<E>,
}

macro_rules! by_id {
    ($($m:ident),* $(; shared $($sm:ident),*)?) => {
        $(by_id!(@one $m, $m::Model, std::convert::identity);)*
        $($(by_id!(@one $sm, Arc<$sm::Model>, Arc::new);)*)?
    };
    (@one $m:ident, $value:ty, $wrap:expr) => {
        impl Loader<Uuid> for ById<$m::Entity> {
            type Value = $value;
            type Error = LoadError;
            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
                let rows = $m::Entity::find()
                    .filter($m::Column::Id.is_in(keys.to_vec()))
                    .filter($m::Column::TenantId.is_in(self.tenants.clone()))
                    .all(&self.db)
                    .await
                    .map_err(Arc::new)?;
                Ok(rows.into_iter().map(|r| (r.id, $wrap(r))).collect())
            }
        }
    };
}

// Personas are shared (`Arc`): a persona carries its whole prompt, and a
// page of tasks resolves the same few personas hundreds of times; the
// loader hands each field a copy of its value.
by_id!(
    event,
    project,
    task,
    workflow,
    workflow_step,
    persona_context,
    task_checkpoint,
    hitl_request,
    artifact,
    agent_status,
    agent_status_history,
    epic,
    story,
    qa_gate;
    shared persona
);

/// A catalog row by key, the tenant's own before the built-in one.
pub struct ByKey<E> {
    db: Scoped,
    tenant: Uuid,
    _e: PhantomData<E>,
}

macro_rules! by_key {
    ($($m:ident => $value:ty, $wrap:expr);*) => {$(
        impl Loader<String> for ByKey<$m::Entity> {
            type Value = $value;
            type Error = LoadError;
            async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
                let rows = $m::Entity::find()
                    .filter($m::Column::Key.is_in(keys.to_vec()))
                    .filter($m::Column::TenantId.is_in([self.tenant, SYSTEM_TENANT]))
                    .all(&self.db)
                    .await
                    .map_err(Arc::new)?;
                let mut out: HashMap<String, $m::Model> = HashMap::new();
                for r in rows {
                    let own = r.tenant_id == self.tenant;
                    if own || !out.contains_key(&r.key) {
                        out.insert(r.key.clone(), r);
                    }
                }
                Ok(out.into_iter().map(|(k, v)| (k, $wrap(v))).collect())
            }
        }
    )*};
}

by_key!(persona => Arc<persona::Model>, Arc::new; workflow => workflow::Model, std::convert::identity);

/// The relations that are paginated lists under a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rel {
    /// `Project.tasks`
    ProjectTasks,
    /// `Project.artifacts`
    ProjectArtifacts,
    /// `Project.hitlRequests`
    ProjectHitl,
    /// `Project.events`
    ProjectEvents,
    /// `Task.checkpoints`
    TaskCheckpoints,
    /// `Task.hitlRequests`
    TaskHitl,
    /// `Task.artifacts`
    TaskArtifacts,
    /// `Session.contexts`
    SessionContexts,
    /// `Project.agentStatuses`
    ProjectAgents,
    /// `Task.latestCheckpoint` (newest first).
    TaskLatestCheckpoint,
    /// `AgentStatus.history` (newest first).
    AgentHistory,
    /// `Project.pendingHitlCount` (PENDING requests only).
    ProjectPendingHitl,
    /// `Task.pendingHitl` (PENDING requests only).
    TaskPendingHitl,
    /// `Project.epics`
    ProjectEpics,
    /// `Epic.stories`
    EpicStories,
    /// `Story.gates`
    StoryGates,
}

impl Rel {
    /// (table, parent column, order column) of the relation.
    fn shape(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Rel::ProjectTasks => ("tasks", "project_id", "id"),
            Rel::ProjectArtifacts => ("artifacts", "project_id", "id"),
            Rel::ProjectHitl => ("hitl_requests", "project_id", "id"),
            Rel::ProjectEvents => ("events", "project_id", "seq"),
            Rel::TaskCheckpoints => ("task_checkpoints", "task_id", "id"),
            Rel::TaskHitl => ("hitl_requests", "task_id", "id"),
            Rel::TaskArtifacts => ("artifacts", "task_id", "id"),
            Rel::SessionContexts => ("persona_contexts", "session_id", "id"),
            Rel::ProjectAgents => ("agent_statuses", "project_id", "id"),
            Rel::TaskLatestCheckpoint => ("task_checkpoints", "task_id", "id"),
            Rel::AgentHistory => ("agent_status_history", "agent_status_id", "id"),
            Rel::ProjectPendingHitl => ("hitl_requests", "project_id", "id"),
            Rel::TaskPendingHitl => ("hitl_requests", "task_id", "id"),
            Rel::ProjectEpics => ("epics", "project_id", "id"),
            Rel::EpicStories => ("stories", "epic_id", "id"),
            Rel::StoryGates => ("qa_gates", "story_id", "id"),
        }
    }

    /// A fixed status the rows must have (a static literal, never input).
    fn status(self) -> Option<&'static str> {
        matches!(self, Rel::ProjectPendingHitl | Rel::TaskPendingHitl).then_some("PENDING")
    }

    /// Whether the relation lists newest first.
    fn descending(self) -> bool {
        matches!(self, Rel::TaskLatestCheckpoint | Rel::AgentHistory)
    }
}

/// A page of children under one parent: `first` rows after `after` (an id
/// or, for events, a sequence number), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The parent row.
    pub parent: Uuid,
    /// Rows to fetch (one more than the page, to learn `hasNextPage`).
    pub limit: u64,
    /// Exclusive lower bound of the order column.
    pub after: Option<Cursor>,
    /// The columns to read.
    pub columns: Columns,
}

/// The columns of a child row a page reads, by position in the entity's
/// `Column` enum (its model's field order): all of them, or only those
/// the page's selection reads (`Task::columns_of` in `graphql/task.rs`).
///
/// Why: a nested page is the biggest result a query reads, and on
/// PostgreSQL most of its cost, in the database and in decoding, is per
/// column: the nested benchmark's 400 tasks with 4 of their 23 columns
/// take half the time of whole rows (`docs/benchmarks.md`). Only
/// PostgreSQL reads a subset (tasks are decoded by position there); on
/// SQLite, an embedded file, a page reads whole rows. A row read with a
/// subset carries default values in the other fields, so a subset must
/// cover every field the page's resolvers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Columns(u64);

impl Columns {
    /// Every column.
    pub const ALL: Columns = Columns(u64::MAX);
    /// No column yet (the parent and order columns are always read).
    pub const NONE: Columns = Columns(0);

    /// These columns and the one at `position`.
    #[must_use]
    pub const fn with(self, position: usize) -> Columns {
        if position >= 64 {
            return Columns::ALL;
        }
        Columns(self.0 | (1 << position))
    }

    /// These columns and `other`'s.
    #[must_use]
    pub const fn union(self, other: Columns) -> Columns {
        Columns(self.0 | other.0)
    }

    /// Whether the column at `position` is read.
    pub const fn has(self, position: usize) -> bool {
        position >= 64 || self.0 & (1 << position) != 0
    }
}

/// A keyset position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cursor {
    /// After this id.
    Id(Uuid),
    /// After this event sequence number.
    Seq(i64),
}

impl Loader<(Rel, Uuid)> for ChildCounts {
    type Value = u64;
    type Error = LoadError;
    async fn load(&self, keys: &[(Rel, Uuid)]) -> Result<HashMap<(Rel, Uuid), u64>, LoadError> {
        let mut by_rel: HashMap<Rel, Vec<Uuid>> = HashMap::new();
        for (r, p) in keys {
            by_rel.entry(*r).or_default().push(*p);
        }
        let mut out = HashMap::new();
        for (rel, parents) in by_rel {
            let (table, parent, _) = rel.shape();
            let stmt = sea_orm::sea_query::Query::select()
                .expr_as(Expr::col(Alias::new(parent)), Alias::new("parent"))
                .expr_as(Expr::col(Alias::new(parent)).count(), Alias::new("n"))
                .from(Alias::new(table))
                .and_where(Expr::col(Alias::new("tenant_id")).eq(self.tenant))
                .and_where(Expr::col(Alias::new(parent)).is_in(parents.clone()))
                .group_by_col(Alias::new(parent))
                .take();
            let mut stmt = stmt;
            if let Some(st) = rel.status() {
                stmt.and_where(Expr::col(Alias::new("status")).eq(st));
            }
            let rows = CountRow::find_by_statement(self.db.get_database_backend().build(&stmt))
                .all(&self.db)
                .await
                .map_err(Arc::new)?;
            let counts: HashMap<Uuid, i64> = rows.into_iter().map(|r| (r.parent, r.n)).collect();
            for p in parents {
                out.insert((rel, p), counts.get(&p).copied().unwrap_or(0) as u64);
            }
        }
        Ok(out)
    }
}

/// Every loader of one request.
pub struct Loaders {
    /// Projects by id.
    pub projects: DataLoader<ById<project::Entity>>,
    /// Tasks by id.
    pub tasks: DataLoader<ById<task::Entity>>,
    /// Personas by id (own and built-in).
    pub personas: DataLoader<ById<persona::Entity>>,
    /// Personas by key.
    pub personas_by_key: DataLoader<ByKey<persona::Entity>>,
    /// Workflows by id (own and built-in).
    pub workflows: DataLoader<ById<workflow::Entity>>,
    /// Workflows by key.
    pub workflows_by_key: DataLoader<ByKey<workflow::Entity>>,
    /// Workflow steps by id.
    pub steps: DataLoader<ById<workflow_step::Entity>>,
    /// Steps of workflows.
    pub workflow_steps: DataLoader<Steps>,
    /// Persona contexts by id.
    pub contexts: DataLoader<ById<persona_context::Entity>>,
    /// Checkpoint states by checkpoint id.
    pub checkpoint_states: DataLoader<Bodies<task_checkpoint_state::Entity>>,
    /// Artifact contents by artifact id.
    pub artifact_contents: DataLoader<Bodies<artifact_content::Entity>>,
    /// Events by id.
    pub events: DataLoader<ById<event::Entity>>,
    /// Artifacts by id.
    pub artifacts: DataLoader<ById<artifact::Entity>>,
    /// HITL requests by id.
    pub hitl_requests: DataLoader<ById<hitl_request::Entity>>,
    /// Agent statuses by id.
    pub agent_statuses: DataLoader<ById<agent_status::Entity>>,
    /// Checkpoints by id.
    pub checkpoints: DataLoader<ById<task_checkpoint::Entity>>,
    /// Dependencies of tasks.
    pub dependencies: DataLoader<Dependencies>,
    /// Latest checkpoint of tasks (pages of one, newest first).
    pub latest_checkpoint: DataLoader<Children<task_checkpoint::Entity>>,
    /// Members and workflows of teams.
    pub team_keys: DataLoader<TeamKeys>,
    /// Time waiting for humans, per project.
    pub human_wait: Option<DataLoader<HumanWait>>,
    /// Failed attempts of tasks.
    pub failed_attempts: DataLoader<FailedAttempts>,
    /// Completion of projects.
    pub completions: DataLoader<Completions>,
    /// Child counts.
    pub counts: DataLoader<ChildCounts>,
    /// Tasks under projects.
    pub task_pages: DataLoader<Children<task::Entity>>,
    /// Artifacts under projects or tasks.
    pub artifact_pages: DataLoader<Children<artifact::Entity>>,
    /// Artifacts under tasks.
    pub task_artifact_pages: DataLoader<Children<artifact::Entity>>,
    /// HITL requests under projects.
    pub hitl_pages: DataLoader<Children<hitl_request::Entity>>,
    /// HITL requests under tasks.
    pub task_hitl_pages: DataLoader<Children<hitl_request::Entity>>,
    /// Events under projects.
    pub event_pages: DataLoader<Children<event::Entity>>,
    /// Checkpoints under tasks.
    pub checkpoint_pages: DataLoader<Children<task_checkpoint::Entity>>,
    /// Contexts under sessions.
    pub context_pages: DataLoader<Children<persona_context::Entity>>,
    /// Agent statuses under projects.
    pub agent_pages: DataLoader<Children<agent_status::Entity>>,
    /// Pending HITL requests under tasks.
    pub task_pending_hitl_pages: DataLoader<Children<hitl_request::Entity>>,
    /// Epics by id.
    pub epics: DataLoader<ById<epic::Entity>>,
    /// Stories by id.
    pub stories: DataLoader<ById<story::Entity>>,
    /// Epics under projects.
    pub epic_pages: DataLoader<Children<epic::Entity>>,
    /// Stories under epics.
    pub story_pages: DataLoader<Children<story::Entity>>,
    /// QA gates by id.
    pub qa_gates: DataLoader<ById<qa_gate::Entity>>,
    /// QA gates under stories.
    pub gate_pages: DataLoader<Children<qa_gate::Entity>>,
    /// Story contents (criteria, checklist, notes, change log).
    pub story_contents: DataLoader<Bodies<story_content::Entity>>,
    /// History of agent statuses.
    pub agent_history_pages: DataLoader<Children<agent_status_history::Entity>>,
}

impl Loaders {
    /// Adds the loaders that need the service layer.
    pub fn with_services(
        mut self,
        services: &crate::service::Services,
        reads: &Scoped,
        tenant: Uuid,
        batching: &Batching,
    ) -> Self {
        self.human_wait = Some(batching.loader(HumanWait {
            services: services.clone(),
            reads: reads.clone(),
            tenant,
        }));
        self
    }

    /// Builds the loaders of one request for `tenant`.
    pub fn new(db: &Scoped, tenant: Uuid, batching: &Batching) -> Self {
        let own = vec![tenant];
        let catalog = vec![tenant, SYSTEM_TENANT];
        let by_id = |tenants: &Vec<Uuid>| (db.clone(), tenants.clone());
        macro_rules! id_loader {
            ($t:expr) => {{
                let (db, tenants) = by_id($t);
                batching.loader(ById {
                    db,
                    tenants,
                    _e: PhantomData,
                })
            }};
        }
        macro_rules! key_loader {
            () => {
                batching.loader(ByKey {
                    db: db.clone(),
                    tenant,
                    _e: PhantomData,
                })
            };
        }
        macro_rules! pages {
            ($rel:expr) => {
                batching.loader(Children {
                    db: db.clone(),
                    tenant,
                    rel: $rel,
                    _e: PhantomData,
                })
            };
        }
        macro_rules! tenant_loader {
            ($t:ident) => {
                batching.loader($t {
                    db: db.clone(),
                    tenant,
                })
            };
        }
        Loaders {
            projects: id_loader!(&own),
            tasks: id_loader!(&own),
            personas: id_loader!(&catalog),
            personas_by_key: key_loader!(),
            workflows: id_loader!(&catalog),
            workflows_by_key: key_loader!(),
            steps: id_loader!(&catalog),
            workflow_steps: tenant_loader!(Steps),
            contexts: id_loader!(&own),
            checkpoints: id_loader!(&own),
            artifacts: id_loader!(&own),
            events: id_loader!(&own),
            checkpoint_states: batching.loader(Bodies {
                db: db.clone(),
                tenant,
                _e: PhantomData,
            }),
            artifact_contents: batching.loader(Bodies {
                db: db.clone(),
                tenant,
                _e: PhantomData,
            }),
            hitl_requests: id_loader!(&own),
            agent_statuses: id_loader!(&own),
            dependencies: tenant_loader!(Dependencies),
            latest_checkpoint: pages!(Rel::TaskLatestCheckpoint),
            team_keys: tenant_loader!(TeamKeys),
            failed_attempts: tenant_loader!(FailedAttempts),
            human_wait: None,
            completions: tenant_loader!(Completions),
            counts: tenant_loader!(ChildCounts),
            task_pages: pages!(Rel::ProjectTasks),
            artifact_pages: pages!(Rel::ProjectArtifacts),
            task_artifact_pages: pages!(Rel::TaskArtifacts),
            hitl_pages: pages!(Rel::ProjectHitl),
            task_hitl_pages: pages!(Rel::TaskHitl),
            event_pages: pages!(Rel::ProjectEvents),
            checkpoint_pages: pages!(Rel::TaskCheckpoints),
            context_pages: pages!(Rel::SessionContexts),
            agent_pages: pages!(Rel::ProjectAgents),
            agent_history_pages: pages!(Rel::AgentHistory),
            task_pending_hitl_pages: pages!(Rel::TaskPendingHitl),
            epics: id_loader!(&own),
            stories: id_loader!(&own),
            epic_pages: pages!(Rel::ProjectEpics),
            story_pages: pages!(Rel::EpicStories),
            qa_gates: id_loader!(&own),
            gate_pages: pages!(Rel::StoryGates),
            story_contents: batching.loader(Bodies {
                db: db.clone(),
                tenant,
                _e: PhantomData,
            }),
        }
    }
}
