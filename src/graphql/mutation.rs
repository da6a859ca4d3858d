//! Mutation roots: one lifecycle verb per transition, each taking a
//! `<Verb><Noun>Input` and returning a `<Verb><Noun>Payload` with the changed
//! object and the event it appended, so a client needs one round trip.
//! Resolvers only parse input and call one service function.

use async_graphql::{Context, ID, InputObject, Json, MergedObject, Object, Result, SimpleObject};
use serde_json::Value;

use super::types::*;
use super::{ADMIN, AGENT, AGENT_OR_OPERATOR, OPERATOR, principal, services};
use crate::domain::{
    AgentState, ArtifactKind, CheckpointStatus, HitlDecision, HitlExpiryPolicy, ProjectStatus,
    SessionStatus,
};
use crate::ids::{self, Kind};
use crate::service::Services;
use crate::service::artifact::NewArtifact;
use crate::service::idempotency::Replay;
use crate::service::project::NewProject;
use crate::service::task::{NewTask, TaskChange, TaskVerb};

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    ProjectMutation,
    TaskMutation,
    HitlMutation,
    AgentMutation,
    SessionMutation,
    CatalogMutation,
);

/// Runs a mutation under its `idempotencyKey` through the service layer
/// (`crate::service::idempotency`), which also rebuilds a repeat's result;
/// the field's name and arguments identify the request.
async fn keyed<P, R, Run, Fut>(ctx: &Context<'_>, key: Option<&str>, run: Run) -> Result<P>
where
    P: From<R>,
    R: Replay,
    Run: FnOnce(Services) -> Fut,
    Fut: std::future::Future<Output = crate::error::AppResult<R>>,
{
    let request = match key {
        Some(_) => {
            let field = ctx.field();
            let args = field
                .arguments()
                .map_err(|e| async_graphql::Error::new(e.message))?;
            Value::Object(
                args.into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_json().unwrap_or_default()))
                    .collect(),
            )
        }
        None => Value::Null,
    };
    let done = services(ctx)
        .keyed(principal(ctx), key, (ctx.field().name(), &request), run)
        .await?;
    Ok(done.into())
}

// ---------- projects ----------

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

/// Project lifecycle.
#[derive(Default)]
pub struct ProjectMutation;

#[Object]
impl ProjectMutation {
    /// Creates an ACTIVE project; with `workflowId`, also its tasks.
    /// Errors: `BAD_USER_INPUT` (name), `NOT_FOUND` (workflow).
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn create_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `CreateProjectInput`.")]
        input: CreateProjectInput,
    ) -> Result<CreateProjectPayload> {
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

    /// ACTIVE → COMPLETED. Errors: `NOT_FOUND`, `INVALID_TRANSITION`, `CONFLICT`.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn complete_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ProjectTransitionInput`.")]
        input: ProjectTransitionInput,
    ) -> Result<ProjectTransitionPayload> {
        project_transition(ctx, input, ProjectStatus::Completed, false).await
    }

    /// ACTIVE → COMPLETED even with required tasks open (they are
    /// cancelled). Admins only (`FORBIDDEN` otherwise); the event records
    /// `forced: true` and the server logs it.
    ///
    /// Roles: admin.
    #[graphql(guard = "ADMIN")]
    async fn force_complete_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ProjectTransitionInput`.")]
        input: ProjectTransitionInput,
    ) -> Result<ProjectTransitionPayload> {
        project_transition(ctx, input, ProjectStatus::Completed, true).await
    }

    /// ACTIVE → FAILED. Errors: `NOT_FOUND`, `INVALID_TRANSITION`, `CONFLICT`.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn fail_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ProjectTransitionInput`.")]
        input: ProjectTransitionInput,
    ) -> Result<ProjectTransitionPayload> {
        project_transition(ctx, input, ProjectStatus::Failed, false).await
    }

    /// ACTIVE → CANCELLED. Errors: `NOT_FOUND`, `INVALID_TRANSITION`, `CONFLICT`.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn cancel_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ProjectTransitionInput`.")]
        input: ProjectTransitionInput,
    ) -> Result<ProjectTransitionPayload> {
        project_transition(ctx, input, ProjectStatus::Cancelled, false).await
    }
}

async fn project_transition(
    ctx: &Context<'_>,
    input: ProjectTransitionInput,
    to: ProjectStatus,
    force: bool,
) -> Result<ProjectTransitionPayload> {
    let id = ids::decode(Kind::Project, &input.project_id)?;
    keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
        s.transition_project(principal(ctx), id, to, input.reason, force)
            .await
    })
    .await
}

// ---------- tasks ----------

keyed_input!(
    /// Input of `createTask`.
    CreateTaskInput {
        /// The project (must be ACTIVE).
        project_id: ID,
        /// The persona expected to do it (global id or key).
        persona_id: Option<ID>,
        /// Short title, 1–200 characters.
        title: String,
        /// What to do.
        instructions: Option<String>,
        /// Higher runs first among ready tasks; default 0.
        #[graphql(default)]
        priority: i32,
        /// Tasks of the same project that must complete first (duplicates count once).
        depends_on: Option<Vec<ID>>,
        /// Whether the project needs it done to complete; default true.
        #[graphql(default = true)]
        required: bool,
    }
);

keyed_input!(
    /// Input of `startTask`.
    StartTaskInput {
        /// The task (PENDING, with every dependency COMPLETED or CANCELLED).
        task_id: ID,
        /// A status message.
        message: Option<String>,
        /// Start even though dependencies are still open. Admins only
        /// (`FORBIDDEN` otherwise); logged, and the event lists the dependencies
        /// it went past (`forcedPastDependencies`).
        #[graphql(default)]
        force: bool,
    }
);

keyed_input!(
    /// Input of `reportTaskProgress`.
    ReportTaskProgressInput {
        /// The task (WORKING).
        task_id: ID,
        /// Progress in percent, 0–100.
        progress: i32,
        /// Free-form stage label, e.g. `drafting`.
        stage: Option<String>,
        /// A status message.
        message: Option<String>,
    }
);

keyed_input!(
    /// Input of `completeTask`.
    CompleteTaskInput {
        /// The task (WORKING).
        task_id: ID,
        /// The result, any JSON.
        output: Option<Json<Value>>,
    }
);

keyed_input!(
    /// Input of `failTask`.
    FailTaskInput {
        /// The task (WORKING or WAITING_FOR_HITL).
        task_id: ID,
        /// What went wrong.
        error: String,
    }
);

keyed_input!(
    /// Input of `cancelTask`.
    CancelTaskInput {
        /// The task (PENDING, WORKING or WAITING_FOR_HITL).
        task_id: ID,
        /// Why, e.g. `skipped: condition not met`.
        reason: Option<String>,
    }
);

keyed_input!(
    /// Input of `retryTask`.
    RetryTaskInput {
        /// The task (FAILED).
        task_id: ID,
    }
);

payload!(
    /// Result of `createTask`.
    CreateTaskPayload {
        /// The new task.
        task: Task,
    }
);
payload!(
    /// Result of a task lifecycle verb.
    TaskTransitionPayload {
        /// The task in its new state.
        task: Task,
    }
);

/// Task lifecycle.
#[derive(Default)]
pub struct TaskMutation;

#[Object]
impl TaskMutation {
    /// Adds a task to an ACTIVE project. Errors: `BAD_USER_INPUT`, `NOT_FOUND`.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn create_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `CreateTaskInput`.")]
        input: CreateTaskInput,
    ) -> Result<CreateTaskPayload> {
        let project_id = ids::decode(Kind::Project, &input.project_id)?;
        let depends_on = ids::decode_all(Kind::Task, input.depends_on.unwrap_or_default())?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let persona_id = s.find_persona_id(p, input.persona_id.as_ref()).await?;
            let new = NewTask {
                project_id,
                persona_id,
                title: input.title,
                instructions: input.instructions,
                priority: input.priority,
                depends_on,
                required: input.required,
            };
            s.create_task(p, new).await
        })
        .await
    }

    /// PENDING → WORKING. Refused with `INVALID_TRANSITION` while a
    /// dependency is not COMPLETED or CANCELLED.
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn start_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `StartTaskInput`.")] input: StartTaskInput,
    ) -> Result<TaskTransitionPayload> {
        task_verb(
            ctx,
            &input.task_id,
            TaskVerb::Start,
            TaskChange {
                message: Some(input.message),
                force: input.force,
                ..Default::default()
            },
            input.idempotency_key.as_deref(),
        )
        .await
    }

    /// Reports progress of a WORKING task. Errors: `BAD_USER_INPUT`
    /// (progress outside 0–100), `INVALID_TRANSITION` (not WORKING).
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn report_task_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ReportTaskProgressInput`.")]
        input: ReportTaskProgressInput,
    ) -> Result<TaskTransitionPayload> {
        let change = TaskChange {
            progress: Some(input.progress),
            stage: Some(input.stage),
            message: Some(input.message),
            ..Default::default()
        };
        task_verb(
            ctx,
            &input.task_id,
            TaskVerb::Progress,
            change,
            input.idempotency_key.as_deref(),
        )
        .await
    }

    /// WORKING → COMPLETED with its output; progress becomes 100.
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn complete_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `CompleteTaskInput`.")]
        input: CompleteTaskInput,
    ) -> Result<TaskTransitionPayload> {
        let change = TaskChange {
            output: Some(input.output.map(|j| j.0).unwrap_or(Value::Null)),
            ..Default::default()
        };
        task_verb(
            ctx,
            &input.task_id,
            TaskVerb::Complete,
            change,
            input.idempotency_key.as_deref(),
        )
        .await
    }

    /// WORKING / WAITING_FOR_HITL → FAILED with the error.
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn fail_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `FailTaskInput`.")] input: FailTaskInput,
    ) -> Result<TaskTransitionPayload> {
        task_verb(
            ctx,
            &input.task_id,
            TaskVerb::Fail,
            TaskChange {
                error: Some(Some(input.error)),
                ..Default::default()
            },
            input.idempotency_key.as_deref(),
        )
        .await
    }

    /// PENDING / WORKING / WAITING_FOR_HITL → CANCELLED. A cancelled
    /// dependency counts as skipped: it no longer blocks its dependants.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn cancel_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `CancelTaskInput`.")]
        input: CancelTaskInput,
    ) -> Result<TaskTransitionPayload> {
        task_verb(
            ctx,
            &input.task_id,
            TaskVerb::Cancel,
            TaskChange {
                message: Some(input.reason),
                ..Default::default()
            },
            input.idempotency_key.as_deref(),
        )
        .await
    }

    /// FAILED → PENDING for another attempt (`attempt` + 1, error cleared).
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn retry_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `RetryTaskInput`.")] input: RetryTaskInput,
    ) -> Result<TaskTransitionPayload> {
        task_verb(
            ctx,
            &input.task_id,
            TaskVerb::Retry,
            TaskChange::default(),
            input.idempotency_key.as_deref(),
        )
        .await
    }
}

async fn task_verb(
    ctx: &Context<'_>,
    id: &ID,
    verb: TaskVerb,
    change: TaskChange,
    key: Option<&str>,
) -> Result<TaskTransitionPayload> {
    let id = ids::decode(Kind::Task, id)?;
    keyed(ctx, key, |s| async move {
        s.task_verb(principal(ctx), id, verb, change).await
    })
    .await
}

// ---------- HITL, checkpoints, artifacts ----------

keyed_input!(
    /// Input of `requestHitl`.
    RequestHitlInput {
        /// The task (WORKING, or already WAITING_FOR_HITL).
        task_id: ID,
        /// The question for the human.
        question: String,
        /// Suggested answers.
        options: Option<Vec<String>>,
        /// When the question stops being useful (UTC). After it, the request
        /// can no longer be answered and the sweeper marks it EXPIRED.
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// What happens to the task if it expires unanswered; default FAIL_TASK.
        #[graphql(default_with = "HitlExpiryPolicy::FailTask")]
        on_expiry: HitlExpiryPolicy,
        /// A JSON Schema the `response` of an APPROVE or AMEND must match; an
        /// answer that does not is refused with `BAD_USER_INPUT`.
        response_schema: Option<Json<Value>>,
    }
);

keyed_input!(
    /// Input of `resolveHitlRequest`.
    ResolveHitlRequestInput {
        /// The request (PENDING).
        request_id: ID,
        /// The answer.
        decision: HitlDecision,
        /// A comment, or for AMEND the changes; any JSON.
        response: Option<Json<Value>>,
    }
);

keyed_input!(
    /// Input of `createCheckpoint`.
    CreateCheckpointInput {
        /// The task.
        task_id: ID,
        /// The workflow step (or any step label) the state belongs to.
        step_id: String,
        /// The state to save, any JSON.
        state: Json<Value>,
        /// The latest version the caller has seen for this step (0 for none).
        /// When it is not the latest, the write is refused with `CONFLICT`.
        expected_version: Option<i32>,
        /// Initial status; default IN_PROGRESS.
        #[graphql(default_with = "CheckpointStatus::InProgress")]
        status: CheckpointStatus,
    }
);

keyed_input!(
    /// Input of `createArtifact`.
    CreateArtifactInput {
        /// The project (ACTIVE).
        project_id: ID,
        /// The task that produced it.
        task_id: Option<ID>,
        /// The persona that produced it; defaults to the task's persona.
        persona_id: Option<ID>,
        /// What it is.
        kind: ArtifactKind,
        /// Its name, e.g. `prd.md`; storing the same name again makes a new version.
        name: String,
        /// The content, any JSON.
        content: Json<Value>,
    }
);

payload!(
    /// Result of `requestHitl`.
    RequestHitlPayload {
        /// The new request.
        hitl_request: HitlRequest,
        /// The task, now WAITING_FOR_HITL.
        task: Task,
    }
    event "The `HITL_REQUESTED` event."
);

payload!(
    /// Result of `resolveHitlRequest`.
    ResolveHitlRequestPayload {
        /// The request in its final state.
        hitl_request: HitlRequest,
        /// The task: WORKING again, FAILED on rejection, or still waiting for
        /// its other pending requests.
        task: Task,
    }
    event "The `HITL_RESOLVED` event."
);

payload!(
    /// Result of `createCheckpoint`.
    CreateCheckpointPayload {
        /// The new checkpoint.
        checkpoint: TaskCheckpoint,
    }
);
payload!(
    /// Result of `createArtifact`.
    CreateArtifactPayload {
        /// The new artifact (or new version).
        artifact: Artifact,
    }
);

/// Input of `resolveHitlRequests`.
#[derive(InputObject)]
pub struct ResolveHitlRequestsInput {
    /// The answers, at most 100; each is applied on its own.
    pub items: Vec<ResolveHitlRequestInput>,
}

/// Why one item of a batch failed.
#[derive(SimpleObject)]
pub struct ItemError {
    /// The stable code, as in `extensions.code`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The outcome of one answer in `resolveHitlRequests`.
#[derive(SimpleObject)]
pub struct ResolveHitlRequestResult {
    /// The request the item named.
    pub request_id: ID,
    /// The request after the answer, when it succeeded.
    pub hitl_request: Option<HitlRequest>,
    /// Its task after the answer, when it succeeded.
    pub task: Option<Task>,
    /// Why it failed, when it did.
    pub error: Option<ItemError>,
}

/// Result of `resolveHitlRequests`.
#[derive(SimpleObject)]
pub struct ResolveHitlRequestsPayload {
    /// One result per item, in input order.
    pub results: Vec<ResolveHitlRequestResult>,
    /// Items that succeeded.
    pub resolved_count: i32,
    /// Items that failed.
    pub failed_count: i32,
}

keyed_input!(
    /// Input of `forkFromCheckpoint`.
    ForkFromCheckpointInput {
        /// The checkpoint to branch from.
        checkpoint_id: ID,
        /// An RFC 7386 merge patch applied to the source's state.
        state_patch: Option<Json<Value>>,
    }
);

keyed_input!(
    /// Input of `updateCheckpointStatus`.
    UpdateCheckpointStatusInput {
        /// The checkpoint.
        checkpoint_id: ID,
        /// The new status (`IN_PROGRESS → COMPLETED / FAILED / REVERTED`).
        status: CheckpointStatus,
    }
);

keyed_input!(
    /// Input of `revertToCheckpoint`.
    RevertToCheckpointInput {
        /// The checkpoint to go back to.
        checkpoint_id: ID,
    }
);

keyed_input!(
    /// Input of `pinCheckpoint`.
    PinCheckpointInput {
        /// The checkpoint.
        checkpoint_id: ID,
        /// Pin (true) or unpin (false).
        pinned: bool,
    }
);

payload!(
    /// Result of `revertToCheckpoint`.
    RevertToCheckpointPayload {
        /// The checkpoint gone back to.
        checkpoint: TaskCheckpoint,
        /// The later checkpoints of its step now REVERTED (kept, not deleted).
        reverted: Vec<TaskCheckpoint>,
    }
    event "The `CHECKPOINT_REVERTED` event."
);

/// HITL requests, checkpoints and artifacts.
#[derive(Default)]
pub struct HitlMutation;

#[Object]
impl HitlMutation {
    /// Asks a human about a task and pauses it (WAITING_FOR_HITL).
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn request_hitl(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `RequestHitlInput`.")]
        input: RequestHitlInput,
    ) -> Result<RequestHitlPayload> {
        let new = crate::service::hitl::NewHitlRequest {
            task_id: ids::decode(Kind::Task, &input.task_id)?,
            question: input.question,
            options: input.options.unwrap_or_default(),
            expires_at: input.expires_at,
            on_expiry: input.on_expiry,
            response_schema: input.response_schema.map(|j| j.0),
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.request_hitl(principal(ctx), new).await
        })
        .await
    }

    /// Answers a PENDING request: APPROVE or AMEND resume the task, REJECT
    /// fails it. Errors: `NOT_FOUND`, `INVALID_TRANSITION` (already answered),
    /// `CONFLICT` (answered at the same time by someone else).
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn resolve_hitl_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ResolveHitlRequestInput`.")]
        input: ResolveHitlRequestInput,
    ) -> Result<ResolveHitlRequestPayload> {
        let id = ids::decode(Kind::HitlRequest, &input.request_id)?;
        let response = input.response.map(|j| j.0);
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.resolve_hitl(principal(ctx), id, input.decision, response)
                .await
        })
        .await
    }

    /// Answers many requests in one call, e.g. a reviewer approving a
    /// morning's queue. (Items' `idempotencyKey`s are not used here: an
    /// answer is idempotent by nature — a repeat is refused as already
    /// answered, and the per-item result says so.) Each answer is its own transaction with its own
    /// result: one failing (already answered, expired, unknown) does not undo
    /// or block the others.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn resolve_hitl_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ResolveHitlRequestsInput`.")]
        input: ResolveHitlRequestsInput,
    ) -> Result<ResolveHitlRequestsPayload> {
        if input.items.len() > 100 {
            return Err(crate::error::AppError::bad_input("at most 100 answers per call").into());
        }
        let s = services(ctx);
        let p = principal(ctx);
        let mut results = Vec::with_capacity(input.items.len());
        for item in input.items {
            let outcome = match ids::decode(Kind::HitlRequest, &item.request_id) {
                Ok(id) => {
                    s.resolve_hitl(p, id, item.decision, item.response.map(|j| j.0))
                        .await
                }
                Err(e) => Err(e),
            };
            results.push(match outcome {
                Ok((req, task, _)) => ResolveHitlRequestResult {
                    request_id: item.request_id,
                    hitl_request: Some(HitlRequest(req)),
                    task: Some(Task(task)),
                    error: None,
                },
                Err(e) => {
                    let code = e.code().to_string();
                    let message = async_graphql::Error::from(e).message;
                    ResolveHitlRequestResult {
                        request_id: item.request_id,
                        hitl_request: None,
                        task: None,
                        error: Some(ItemError { code, message }),
                    }
                }
            });
        }
        let resolved = results.iter().filter(|r| r.error.is_none()).count() as i32;
        Ok(ResolveHitlRequestsPayload {
            failed_count: results.len() as i32 - resolved,
            resolved_count: resolved,
            results,
        })
    }

    /// Saves the next version of a task's state at a step. Errors:
    /// `CONFLICT` (stale `expectedVersion` or a racing writer).
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn create_checkpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `CreateCheckpointInput`.")]
        input: CreateCheckpointInput,
    ) -> Result<CreateCheckpointPayload> {
        let task = ids::decode(Kind::Task, &input.task_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let (step, state) = (input.step_id, input.state.0);
            s.create_checkpoint(p, task, step, state, input.expected_version, input.status)
                .await
        })
        .await
    }

    /// Branches from a checkpoint: a new version of its step whose parent is
    /// the source and whose state is the source's state with the patch
    /// applied. Nothing earlier changes.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn fork_from_checkpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ForkFromCheckpointInput`.")]
        input: ForkFromCheckpointInput,
    ) -> Result<CreateCheckpointPayload> {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        let patch = input.state_patch.map(|j| j.0);
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.fork_checkpoint(principal(ctx), id, patch).await
        })
        .await
    }

    /// Moves a checkpoint along its lifecycle.
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn update_checkpoint_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `UpdateCheckpointStatusInput`.")]
        input: UpdateCheckpointStatusInput,
    ) -> Result<CreateCheckpointPayload> {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.update_checkpoint_status(principal(ctx), id, input.status)
                .await
        })
        .await
    }

    /// Goes back to a checkpoint: later versions of its step become
    /// REVERTED (kept for history, never deleted).
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn revert_to_checkpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `RevertToCheckpointInput`.")]
        input: RevertToCheckpointInput,
    ) -> Result<RevertToCheckpointPayload> {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.revert_to_checkpoint(principal(ctx), id).await
        })
        .await
    }

    /// Pins a checkpoint so retention keeps it, or unpins it.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn pin_checkpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `PinCheckpointInput`.")]
        input: PinCheckpointInput,
    ) -> Result<CreateCheckpointPayload> {
        let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.pin_checkpoint(principal(ctx), id, input.pinned).await
        })
        .await
    }

    /// Stores an artifact (a new row per version; artifacts never change).
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn create_artifact(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `CreateArtifactInput`.")]
        input: CreateArtifactInput,
    ) -> Result<CreateArtifactPayload> {
        let project_id = ids::decode(Kind::Project, &input.project_id)?;
        let task_id = ids::decode_opt(Kind::Task, input.task_id.as_ref())?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let new = NewArtifact {
                project_id,
                task_id,
                persona_id: s.find_persona_id(p, input.persona_id.as_ref()).await?,
                kind: input.kind,
                name: input.name,
                content: input.content.0,
            };
            s.create_artifact(p, new).await
        })
        .await
    }
}

// ---------- agents ----------

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

/// Agent status.
#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
    /// An agent says it is alive; send one at least every
    /// `CEREBRAL_AGENT_STALE_SECONDS` (default 60), or it is reported STALE.
    /// Appends no event unless the agent was unknown or STALE (it then
    /// appears as IDLE).
    ///
    /// Roles: agent, admin.
    #[graphql(guard = "AGENT")]
    async fn heartbeat(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `AgentInput`.")] input: AgentInput,
    ) -> Result<HeartbeatPayload> {
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
    #[graphql(guard = "OPERATOR")]
    async fn reset_agent_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ResetAgentStatusInput`.")]
        input: ResetAgentStatusInput,
    ) -> Result<UpdateAgentStatusPayload> {
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
    #[graphql(guard = "AGENT")]
    async fn update_agent_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `UpdateAgentStatusInput`.")]
        input: UpdateAgentStatusInput,
    ) -> Result<UpdateAgentStatusPayload> {
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

// ---------- sessions ----------

keyed_input!(
    /// Input of `startSession`.
    #[derive(Default)]
    StartSessionInput {
        /// Display name.
        name: Option<String>,
    }
);

keyed_input!(
    /// Input of `suspendSession`, `resumeSession` and `terminateSession`.
    SessionTransitionInput {
        /// The session.
        session_id: ID,
    }
);

keyed_input!(
    /// Input of `switchPersona`.
    SwitchPersonaInput {
        /// The session (ACTIVE).
        session_id: ID,
        /// The persona to switch to (global id or key).
        persona_id: ID,
        /// State of a newly created context (a JSON object); ignored when the
        /// persona already has a context in this session.
        initial_state: Option<Json<Value>>,
        /// A context of the same session to nest the new one under.
        parent_context_id: Option<ID>,
    }
);

keyed_input!(
    /// Input of `updatePersonaContext`.
    UpdatePersonaContextInput {
        /// The context.
        context_id: ID,
        /// An RFC 7386 JSON merge patch applied to the state (`null` removes a key).
        state_patch: Json<Value>,
        /// The tool the persona is now using.
        active_tool: Option<String>,
    }
);

keyed_input!(
    /// Input of `appendPersonaContextHistory`.
    AppendPersonaContextHistoryInput {
        /// The context.
        context_id: ID,
        /// The entry, any JSON (e.g. `{"role": "user", "content": "…"}`).
        entry: Json<Value>,
    }
);

payload!(
    /// Result of `startSession` and the session lifecycle verbs.
    SessionPayload {
        /// The session in its new state.
        session: Session,
    }
);
payload!(
    /// Result of `switchPersona`.
    SwitchPersonaPayload {
        /// The session, now pointing at the context.
        session: Session,
        /// The incoming persona's context.
        context: PersonaContext,
    }
);
payload!(
    /// Result of the persona context verbs.
    PersonaContextPayload {
        /// The context after the change.
        context: PersonaContext,
    }
);

/// Input of `exportPersonaContext`.
#[derive(InputObject)]
pub struct ExportPersonaContextInput {
    /// The context.
    pub context_id: ID,
    /// gzip the JSON before base64; default false.
    #[graphql(default)]
    pub compress: bool,
}

/// A portable copy of a persona context.
#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "PersonaContextSnapshotInput")]
pub struct PersonaContextSnapshot {
    /// The snapshot: JSON (gzip-compressed when `compressed`), base64.
    pub data: String,
    /// Whether `data` holds gzip-compressed JSON.
    pub compressed: bool,
    /// `sha256:` + lower-case hex of the uncompressed JSON; checked on import.
    pub checksum: String,
    /// Size of the uncompressed JSON, in bytes; checked on import, where
    /// a size over `CEREBRAL_MAX_SNAPSHOT_BYTES` is refused before the
    /// data is decoded.
    pub size: i64,
}

/// Result of `exportPersonaContext`.
#[derive(SimpleObject)]
pub struct ExportPersonaContextPayload {
    /// The snapshot.
    pub snapshot: PersonaContextSnapshot,
}

keyed_input!(
    /// Input of `importPersonaContext`.
    ImportPersonaContextInput {
        /// The ACTIVE session to import into.
        session_id: ID,
        /// A snapshot as `exportPersonaContext` returned it.
        snapshot: PersonaContextSnapshot,
    }
);

/// Input of `touchSession` (a heartbeat repeats by design, so it takes no
/// idempotency key).
#[derive(InputObject)]
pub struct TouchSessionInput {
    /// The session.
    pub session_id: ID,
}

/// Result of `touchSession`.
#[derive(SimpleObject)]
pub struct TouchSessionPayload {
    /// The session with its new deadline (`expiresAt`).
    pub session: Session,
}

/// Result of `cleanupExpiredSessions`.
#[derive(SimpleObject)]
pub struct CleanupExpiredSessionsPayload {
    /// How many sessions this call expired.
    pub expired_count: i32,
    /// The sessions it expired (at most 500; call again for more).
    pub sessions: Vec<Session>,
}

/// Sessions and persona contexts.
#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Starts an ACTIVE session for the caller.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn start_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `StartSessionInput`; optional.")]
        input: Option<StartSessionInput>,
    ) -> Result<SessionPayload> {
        let input = input.unwrap_or_default();
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.start_session(principal(ctx), input.name).await
        })
        .await
    }
    /// Records activity in an ACTIVE session: its inactivity deadline moves
    /// to now + `CEREBRAL_SESSION_TIMEOUT_MINUTES`. Heartbeats append no
    /// event; the expiry they prevent does.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn touch_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `TouchSessionInput`.")]
        input: TouchSessionInput,
    ) -> Result<TouchSessionPayload> {
        let id = ids::decode(Kind::Session, &input.session_id)?;
        let s = services(ctx).touch_session(principal(ctx), id).await?;
        Ok(TouchSessionPayload {
            session: Session(s),
        })
    }

    /// Expires the caller's tenant's sessions that are past their
    /// inactivity deadline now, without waiting for the background sweeper
    /// (`CEREBRAL_SWEEP_INTERVAL_SECONDS`). One `SESSION_EXPIRED` event each.
    ///
    /// Roles: operator, admin.
    #[graphql(guard = "OPERATOR")]
    async fn cleanup_expired_sessions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<CleanupExpiredSessionsPayload> {
        let p = principal(ctx);
        let expired = services(ctx)
            .expire_overdue_sessions(Some(p.tenant_id), 500)
            .await?;
        Ok(CleanupExpiredSessionsPayload {
            expired_count: expired.len() as i32,
            sessions: expired.into_iter().map(Session).collect(),
        })
    }

    /// Exports a context (state, history, tool, workflow, persona key) as a
    /// portable snapshot with a SHA-256 checksum. Changes nothing.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn export_persona_context(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ExportPersonaContextInput`.")]
        input: ExportPersonaContextInput,
    ) -> Result<ExportPersonaContextPayload> {
        let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
        let s = services(ctx)
            .export_context(principal(ctx), id, input.compress)
            .await?;
        Ok(ExportPersonaContextPayload {
            snapshot: PersonaContextSnapshot {
                data: s.data,
                compressed: s.compressed,
                checksum: s.checksum,
                size: s.size,
            },
        })
    }

    /// Imports a snapshot into a session, creating or replacing that
    /// persona's context there. A snapshot whose checksum or size does not
    /// match (corrupted or tampered), or whose JSON is larger than
    /// `CEREBRAL_MAX_SNAPSHOT_BYTES` once inflated, is refused with
    /// `BAD_USER_INPUT`; a history longer than `CEREBRAL_MAX_CONTEXT_HISTORY`
    /// keeps its newest entries.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn import_persona_context(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ImportPersonaContextInput`.")]
        input: ImportPersonaContextInput,
    ) -> Result<PersonaContextPayload> {
        let session = ids::decode(Kind::Session, &input.session_id)?;
        let snap = crate::service::session::ContextSnapshot {
            data: input.snapshot.data,
            compressed: input.snapshot.compressed,
            checksum: input.snapshot.checksum,
            size: input.snapshot.size,
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.import_context(principal(ctx), session, &snap).await
        })
        .await
    }

    /// ACTIVE → SUSPENDED; contexts are kept.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn suspend_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `SessionTransitionInput`.")]
        input: SessionTransitionInput,
    ) -> Result<SessionPayload> {
        session_transition(ctx, input, SessionStatus::Suspended).await
    }
    /// SUSPENDED → ACTIVE; the inactivity timer restarts.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn resume_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `SessionTransitionInput`.")]
        input: SessionTransitionInput,
    ) -> Result<SessionPayload> {
        session_transition(ctx, input, SessionStatus::Active).await
    }
    /// ACTIVE / SUSPENDED → TERMINATED.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn terminate_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `SessionTransitionInput`.")]
        input: SessionTransitionInput,
    ) -> Result<SessionPayload> {
        session_transition(ctx, input, SessionStatus::Terminated).await
    }
    /// Makes a persona current in a session, creating its context on first use.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn switch_persona(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `SwitchPersonaInput`.")]
        input: SwitchPersonaInput,
    ) -> Result<SwitchPersonaPayload> {
        let session = ids::decode(Kind::Session, &input.session_id)?;
        let parent = ids::decode_opt(Kind::PersonaContext, input.parent_context_id.as_ref())?;
        let state = input.initial_state.map(|j| j.0);
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let persona = s.find_persona(p, &input.persona_id).await?.id;
            s.switch_persona(p, session, persona, state, parent).await
        })
        .await
    }
    /// Merges a patch into a context's state.
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn update_persona_context(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `UpdatePersonaContextInput`.")]
        input: UpdatePersonaContextInput,
    ) -> Result<PersonaContextPayload> {
        let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
        let tool = input.active_tool.map(Some);
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.update_persona_context(principal(ctx), id, input.state_patch.0, tool)
                .await
        })
        .await
    }
    /// Appends to a context's conversation history (bounded; the oldest
    /// entries are dropped beyond `CEREBRAL_MAX_CONTEXT_HISTORY`).
    ///
    /// Roles: agent, operator, admin.
    #[graphql(guard = "AGENT_OR_OPERATOR")]
    async fn append_persona_context_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `AppendPersonaContextHistoryInput`.")]
        input: AppendPersonaContextHistoryInput,
    ) -> Result<PersonaContextPayload> {
        let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.append_context_history(principal(ctx), id, input.entry.0)
                .await
        })
        .await
    }
}

async fn session_transition(
    ctx: &Context<'_>,
    input: SessionTransitionInput,
    to: SessionStatus,
) -> Result<SessionPayload> {
    let id = ids::decode(Kind::Session, &input.session_id)?;
    keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
        s.transition_session(principal(ctx), id, to).await
    })
    .await
}

// ---------- catalog ----------

/// One file of a catalog pack.
#[derive(InputObject)]
pub struct CatalogFileInput {
    /// Path inside the pack, e.g. `agents/po.md`, `agent-teams/team-all.yaml`,
    /// `workflows/greenfield-service.yaml`; the folder decides the kind.
    pub path: String,
    /// The file's text.
    pub content: String,
}

/// Input of `importCatalog`.
#[derive(InputObject)]
pub struct ImportCatalogInput {
    /// The files of a V4-format pack (at most 500).
    pub files: Vec<CatalogFileInput>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same files writes nothing again and returns the catalog entries; the
    /// same key with other files is `CONFLICT`. Per tenant, kept ≥ 24 h.
    pub idempotency_key: Option<String>,
}

/// A file that could not be imported.
#[derive(SimpleObject)]
pub struct ImportFileError {
    /// The file's path as given.
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

/// Result of `importCatalog`.
#[derive(SimpleObject)]
pub struct ImportCatalogPayload {
    /// Personas inserted or updated.
    pub personas: Vec<Persona>,
    /// Teams inserted or updated.
    pub teams: Vec<Team>,
    /// Workflows inserted or updated.
    pub workflows: Vec<Workflow>,
    /// Files refused, with the reason; nothing of them was written.
    pub errors: Vec<ImportFileError>,
}

/// Catalog import.
#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Imports personas, teams and workflows from the files of a V4-format
    /// pack (an upsert by key, so repeating it is harmless and needs no
    /// idempotency key) into the caller's tenant (insert or update by key). A malformed
    /// file is reported in `errors` and contributes nothing; the others
    /// still import. So is a file with YAML anchors or aliases (their
    /// expansion has no bound), a file over `CEREBRAL_MAX_CATALOG_FILE_BYTES`
    /// and the files past `CEREBRAL_MAX_CATALOG_IMPORT_BYTES` in all.
    ///
    /// Roles: admin.
    #[graphql(guard = "ADMIN")]
    async fn import_catalog(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do, field by field on `ImportCatalogInput`.")]
        input: ImportCatalogInput,
    ) -> Result<ImportCatalogPayload> {
        if input.files.len() > 500 {
            return Err(crate::error::AppError::bad_input("at most 500 files per import").into());
        }
        let files: Vec<(String, String)> = input
            .files
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect();
        let s = services(ctx);
        // Parsing is CPU work (and a file may be large): off the async
        // workers, within the catalog limits.
        let limits = s.settings().catalog_limits;
        let report =
            tokio::task::spawn_blocking(move || crate::catalog::parse_files_with(&files, &limits))
                .await
                .map_err(|e| crate::error::AppError::Internal(e.into()))?;
        let p = principal(ctx);
        let has_items = !(report.pack.personas.is_empty()
            && report.pack.teams.is_empty()
            && report.pack.workflows.is_empty());
        let pack = &report.pack;
        // The answer is read back from the catalog either way, so a replay
        // only has to skip the write.
        keyed::<(), _, _, _>(ctx, input.idempotency_key.as_deref(), |s| async move {
            if has_items {
                s.import_catalog(p, pack).await?;
            }
            Ok(())
        })
        .await?;
        let mut personas = vec![];
        for d in &report.pack.personas {
            personas.push(Persona(s.find_persona(p, &d.key).await?.into()));
        }
        let mut workflows = vec![];
        for d in &report.pack.workflows {
            workflows.push(Workflow(s.find_workflow(p, &d.key).await?));
        }
        let teams = s
            .find_teams(p, report.pack.teams.iter().map(|t| t.key.clone()).collect())
            .await?
            .into_iter()
            .map(Team)
            .collect();
        Ok(ImportCatalogPayload {
            personas,
            teams,
            workflows,
            errors: report
                .errors
                .into_iter()
                .map(|e| ImportFileError {
                    path: e.path,
                    reason: e.reason,
                })
                .collect(),
        })
    }
}
