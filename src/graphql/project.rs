//! Projects: the `Project` type, its queries and its lifecycle verbs.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use super::limits::Counted;
use super::loaders::{Columns, Rel};
use super::mutation::keyed;
use super::types::*;
use super::{ADMIN, OPERATOR, loaders, principal};
use crate::domain::ProjectStatus;
use crate::domain::project::ProjectVerb;
use crate::entity::project;
use crate::ids::{self, Kind};
use crate::service::project::NewProject;
use crate::service::query::Completion as CompletionData;

/// One product being built, with its tasks, artifacts and event history.
#[derive(async_graphql::Description)]
pub struct Project(pub project::Model);

#[Object(use_type_description)]
impl Project {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
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
    #[graphql(flatten)]
    async fn children(&self) -> ProjectChildren {
        ProjectChildren(self.0.id)
    }
}

fields! {
    /// The child pages of [`Project`] read through a DataLoader.
    children ProjectChildren;

    /// Artifacts, oldest first.
    children artifacts -> Artifact = artifact_pages(ProjectArtifacts);
    /// HITL requests, oldest first.
    children hitl_requests -> HitlRequest = hitl_pages(ProjectHitl);
    /// The agents working on this project and what they are doing.
    children agent_statuses -> AgentStatus = agent_pages(ProjectAgents);
    /// Its epics, by number of creation (oldest first).
    children epics -> Epic = epic_pages(ProjectEpics);
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

/// Filter of `projects`.
#[derive(InputObject, Default)]
pub struct ProjectFilter {
    /// Only projects in one of these states.
    pub status: Option<Vec<ProjectStatus>>,
    /// Only projects whose name contains this text, ignoring ASCII case
    /// (`%` and `_` match themselves).
    pub name_contains: Option<String>,
}

impl TryFrom<ProjectFilter> for crate::service::project::ProjectFilter {
    type Error = crate::error::AppError;
    fn try_from(f: ProjectFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            status: f.status,
            name_contains: f.name_contains,
        })
    }
}

keyed_input!(
    /// Input of `createProject`.
    CreateProjectInput {
        /// Display name, 1–200 characters.
        name: String,
        /// The product idea in the user's words.
        product_idea: Option<String>,
        /// A workflow id or key (e.g. `greenfield-service`): its work steps
        /// become the project's tasks, with dependencies.
        workflow_id: Option<ID>,
        /// Complete the project automatically when its last required task
        /// completes. Default: true with a workflow, false without (an ad-hoc
        /// project grows task by task and is completed by hand).
        auto_complete: Option<bool>,
    }
);

keyed_input!(
    /// Input of `completeProject`, `failProject` and `cancelProject`.
    ProjectTransitionInput {
        /// The project.
        project_id: ID,
        /// Why, recorded in the event.
        reason: Option<String>,
    }
);

payload!(
    /// Result of `createProject`.
    CreateProjectPayload {
        /// The new project.
        project: Project,
    }
);

payload!(
    /// Result of a project lifecycle verb.
    ProjectTransitionPayload {
        /// The project in its new state.
        project: Project,
    }
);

async fn project_transition(
    ctx: &Context<'_>,
    input: ProjectTransitionInput,
    verb: ProjectVerb,
) -> Result<ProjectTransitionPayload> {
    let id = ids::decode(Kind::Project, &input.project_id)?;
    keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
        s.transition_project(principal(ctx), id, verb, input.reason)
            .await
    })
    .await
}

fields! {
    /// Project queries.
    object ProjectQuery;

    /// A project by id; null when it does not exist for the caller.
    by_id project(Project) -> Project = |ctx, id|
        Ok(one(&loaders(ctx).projects, id).await?.map(Project));

    /// Projects, oldest first.
    list projects(ProjectFilter) -> Project = projects;
}

fields! {
    /// Project mutations.
    object ProjectMutation;

    /// Creates an ACTIVE project; with `workflowId`, also its tasks.
    /// Errors: `BAD_USER_INPUT` (name), `NOT_FOUND` (workflow).
    ///
    /// Roles: operator, admin.
    mutation OPERATOR create_project(ctx, input: CreateProjectInput) -> CreateProjectPayload {
        let new = NewProject {
            name: input.name,
            product_idea: input.product_idea,
            workflow: input.workflow_id.map(|w| w.0),
            auto_complete: input.auto_complete,
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.create_project(principal(ctx), new).await
        })
        .await
    }

    verbs(ProjectTransitionInput) -> ProjectTransitionPayload = project_transition {
        /// ACTIVE → COMPLETED. Errors: `NOT_FOUND`, `INVALID_TRANSITION`, `CONFLICT`.
        ///
        /// Roles: operator, admin.
        OPERATOR complete_project(ProjectVerb::Complete);

        /// ACTIVE → COMPLETED even with required tasks open (they are
        /// cancelled). Admins only (`FORBIDDEN` otherwise); the event records
        /// `forced: true` and the server logs it.
        ///
        /// Roles: admin.
        ADMIN force_complete_project(ProjectVerb::ForceComplete);

        /// ACTIVE → FAILED. Errors: `NOT_FOUND`, `INVALID_TRANSITION`, `CONFLICT`.
        ///
        /// Roles: operator, admin.
        OPERATOR fail_project(ProjectVerb::Fail);

        /// ACTIVE → CANCELLED. Errors: `NOT_FOUND`, `INVALID_TRANSITION`, `CONFLICT`.
        ///
        /// Roles: operator, admin.
        OPERATOR cancel_project(ProjectVerb::Cancel);
    }
}
