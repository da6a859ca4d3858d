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
use crate::service::artifact::NewArtifact;
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

/// Runs a mutation under its idempotency key (see
/// `crate::service::idempotency`), or rebuilds the original result from the
/// events of the first run.
async fn keyed<T, Run, RunFut, Replay, ReplayFut>(
    ctx: &Context<'_>,
    key: Option<&str>,
    run: Run,
    replay: Replay,
) -> Result<T>
where
    Run: FnOnce() -> RunFut,
    RunFut: std::future::Future<Output = Result<T>>,
    Replay: FnOnce(Vec<crate::entity::event::Model>) -> ReplayFut,
    ReplayFut: std::future::Future<Output = Result<T>>,
{
    use crate::service::idempotency::{CLAIM, Lookup};
    let Some(key) = key else { return run().await };
    let field = ctx.field();
    let args: serde_json::Map<String, serde_json::Value> = field
        .arguments()
        .map_err(|e| async_graphql::Error::new(e.message))?
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_json().unwrap_or_default()))
        .collect();
    match services(ctx)
        .idempotency_lookup(
            principal(ctx),
            key,
            field.name(),
            &serde_json::Value::Object(args),
        )
        .await?
    {
        Lookup::New(claim) => CLAIM.scope(claim, run()).await,
        Lookup::Replay(events) => replay(events).await,
    }
}

/// The first recorded event about a `subject` type and the object snapshot
/// it carries.
fn recorded<M: serde::de::DeserializeOwned>(
    events: &[crate::entity::event::Model],
    subject: &str,
) -> Result<(M, crate::entity::event::Model)> {
    events
        .iter()
        .find(|e| e.subject_type == subject)
        .and_then(|e| super::types::recorded(e).map(|m| (m, e.clone())))
        .ok_or_else(|| {
            crate::error::AppError::Internal(anyhow::anyhow!(
                "idempotent replay found no {subject} event"
            ))
            .into()
        })
}

/// Replays a persona context mutation: the context as it is now (context
/// events record a summary, not the whole state).
async fn replay_context(
    ctx: &Context<'_>,
    events: Vec<crate::entity::event::Model>,
) -> Result<PersonaContextPayload> {
    let ev = events
        .into_iter()
        .find(|e| e.subject_type == "PersonaContext")
        .ok_or_else(|| {
            crate::error::AppError::Internal(anyhow::anyhow!(
                "idempotent replay found no context event"
            ))
        })?;
    let c = super::types::one(&super::loaders(ctx).contexts, ev.subject_id)
        .await?
        .ok_or_else(|| crate::error::AppError::not_found("PersonaContext", ev.subject_id))?;
    Ok(PersonaContextPayload {
        context: PersonaContext(c),
        event: Event(ev.into()),
    })
}

/// The task as a replayed change recorded it, or as it is now when the
/// change did not touch it.
async fn recorded_task_or_current(
    ctx: &Context<'_>,
    events: &[crate::entity::event::Model],
    task_id: uuid::Uuid,
) -> Result<crate::entity::task::Model> {
    match recorded::<crate::entity::task::Model>(events, "Task") {
        Ok((t, _)) => Ok(t),
        Err(_) => super::types::one(&super::loaders(ctx).tasks, task_id)
            .await?
            .ok_or_else(|| crate::error::AppError::not_found("Task", task_id).into()),
    }
}

macro_rules! payload {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(SimpleObject)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            /// The event this change appended to the log.
            pub event: Event,
        }
    };
}

// ---------- projects ----------

/// Input of `createProject`.
#[derive(InputObject)]
pub struct CreateProjectInput {
    /// Display name, 1–200 characters.
    pub name: String,
    /// The product idea in the user's words.
    pub product_idea: Option<String>,
    /// A workflow id or key (e.g. `greenfield-service`): its work steps
    /// become the project's tasks, with dependencies.
    pub workflow_id: Option<ID>,
    /// Complete the project automatically when its last required task
    /// completes. Default: true with a workflow, false without (an ad-hoc
    /// project grows task by task and is completed by hand).
    pub auto_complete: Option<bool>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `completeProject`, `failProject` and `cancelProject`.
#[derive(InputObject)]
pub struct ProjectTransitionInput {
    /// The project.
    pub project_id: ID,
    /// Why, recorded in the event.
    pub reason: Option<String>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async {
                let (project, ev) = services(ctx)
                    .create_project(
                        principal(ctx),
                        NewProject {
                            name: input.name,
                            product_idea: input.product_idea,
                            workflow: input.workflow_id.map(|w| w.0),
                            auto_complete: input.auto_complete,
                        },
                    )
                    .await?;
                Ok(CreateProjectPayload {
                    project: Project(project),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "Project")?;
                Ok(CreateProjectPayload {
                    project: Project(m),
                    event: Event(ev.into()),
                })
            },
        )
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
    keyed(
        ctx,
        input.idempotency_key.as_deref(),
        || async {
            let (project, ev) = services(ctx)
                .transition_project(principal(ctx), id, to, input.reason.clone(), force)
                .await?;
            Ok(ProjectTransitionPayload {
                project: Project(project),
                event: Event(ev.into()),
            })
        },
        |events| async move {
            let (m, ev) = recorded(&events, "Project")?;
            Ok(ProjectTransitionPayload {
                project: Project(m),
                event: Event(ev.into()),
            })
        },
    )
    .await
}

// ---------- tasks ----------

/// Input of `createTask`.
#[derive(InputObject)]
pub struct CreateTaskInput {
    /// The project (must be ACTIVE).
    pub project_id: ID,
    /// The persona expected to do it (global id or key).
    pub persona_id: Option<ID>,
    /// Short title, 1–200 characters.
    pub title: String,
    /// What to do.
    pub instructions: Option<String>,
    /// Higher runs first among ready tasks; default 0.
    #[graphql(default)]
    pub priority: i32,
    /// Tasks of the same project that must complete first (duplicates count once).
    pub depends_on: Option<Vec<ID>>,
    /// Whether the project needs it done to complete; default true.
    #[graphql(default = true)]
    pub required: bool,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `startTask`.
#[derive(InputObject)]
pub struct StartTaskInput {
    /// The task (PENDING, with every dependency COMPLETED or CANCELLED).
    pub task_id: ID,
    /// A status message.
    pub message: Option<String>,
    /// Start even though dependencies are still open. Admins only
    /// (`FORBIDDEN` otherwise); logged, and the event lists the dependencies
    /// it went past (`forcedPastDependencies`).
    #[graphql(default)]
    pub force: bool,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `reportTaskProgress`.
#[derive(InputObject)]
pub struct ReportTaskProgressInput {
    /// The task (WORKING).
    pub task_id: ID,
    /// Progress in percent, 0–100.
    pub progress: i32,
    /// Free-form stage label, e.g. `drafting`.
    pub stage: Option<String>,
    /// A status message.
    pub message: Option<String>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `completeTask`.
#[derive(InputObject)]
pub struct CompleteTaskInput {
    /// The task (WORKING).
    pub task_id: ID,
    /// The result, any JSON.
    pub output: Option<Json<Value>>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `failTask`.
#[derive(InputObject)]
pub struct FailTaskInput {
    /// The task (WORKING or WAITING_FOR_HITL).
    pub task_id: ID,
    /// What went wrong.
    pub error: String,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `cancelTask`.
#[derive(InputObject)]
pub struct CancelTaskInput {
    /// The task (PENDING, WORKING or WAITING_FOR_HITL).
    pub task_id: ID,
    /// Why, e.g. `skipped: condition not met`.
    pub reason: Option<String>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `retryTask`.
#[derive(InputObject)]
pub struct RetryTaskInput {
    /// The task (FAILED).
    pub task_id: ID,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let s = services(ctx);
                let p = principal(ctx);
                let persona_id = match input.persona_id {
                    Some(per) => Some(s.find_persona(p, &per).await?.id),
                    None => None,
                };
                let depends_on = input
                    .depends_on
                    .unwrap_or_default()
                    .iter()
                    .map(|d| ids::decode(Kind::Task, d))
                    .collect::<Result<Vec<_>, _>>()?;
                let (task, ev) = s
                    .create_task(
                        p,
                        NewTask {
                            project_id: ids::decode(Kind::Project, &input.project_id)?,
                            persona_id,
                            title: input.title,
                            instructions: input.instructions,
                            priority: input.priority,
                            depends_on,
                            required: input.required,
                        },
                    )
                    .await?;
                Ok(CreateTaskPayload {
                    task: Task(task),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "Task")?;
                Ok(CreateTaskPayload {
                    task: Task(m),
                    event: Event(ev.into()),
                })
            },
        )
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
    keyed(
        ctx,
        key,
        || async {
            let (task, ev) = services(ctx)
                .task_verb(principal(ctx), id, verb, change)
                .await?;
            Ok(TaskTransitionPayload {
                task: Task(task),
                event: Event(ev.into()),
            })
        },
        |events| async move {
            let (m, ev) = recorded(&events, "Task")?;
            Ok(TaskTransitionPayload {
                task: Task(m),
                event: Event(ev.into()),
            })
        },
    )
    .await
}

// ---------- HITL, checkpoints, artifacts ----------

/// Input of `requestHitl`.
#[derive(InputObject)]
pub struct RequestHitlInput {
    /// The task (WORKING, or already WAITING_FOR_HITL).
    pub task_id: ID,
    /// The question for the human.
    pub question: String,
    /// Suggested answers.
    pub options: Option<Vec<String>>,
    /// When the question stops being useful (UTC). After it, the request
    /// can no longer be answered and the sweeper marks it EXPIRED.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What happens to the task if it expires unanswered; default FAIL_TASK.
    #[graphql(default_with = "HitlExpiryPolicy::FailTask")]
    pub on_expiry: HitlExpiryPolicy,
    /// A JSON Schema the `response` of an APPROVE or AMEND must match; an
    /// answer that does not is refused with `BAD_USER_INPUT`.
    pub response_schema: Option<Json<Value>>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `resolveHitlRequest`.
#[derive(InputObject)]
pub struct ResolveHitlRequestInput {
    /// The request (PENDING).
    pub request_id: ID,
    /// The answer.
    pub decision: HitlDecision,
    /// A comment, or for AMEND the changes; any JSON.
    pub response: Option<Json<Value>>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `createCheckpoint`.
#[derive(InputObject)]
pub struct CreateCheckpointInput {
    /// The task.
    pub task_id: ID,
    /// The workflow step (or any step label) the state belongs to.
    pub step_id: String,
    /// The state to save, any JSON.
    pub state: Json<Value>,
    /// The latest version the caller has seen for this step (0 for none).
    /// When it is not the latest, the write is refused with `CONFLICT`.
    pub expected_version: Option<i32>,
    /// Initial status; default IN_PROGRESS.
    #[graphql(default_with = "CheckpointStatus::InProgress")]
    pub status: CheckpointStatus,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `createArtifact`.
#[derive(InputObject)]
pub struct CreateArtifactInput {
    /// The project (ACTIVE).
    pub project_id: ID,
    /// The task that produced it.
    pub task_id: Option<ID>,
    /// The persona that produced it; defaults to the task's persona.
    pub persona_id: Option<ID>,
    /// What it is.
    pub kind: ArtifactKind,
    /// Its name, e.g. `prd.md`; storing the same name again makes a new version.
    pub name: String,
    /// The content, any JSON.
    pub content: Json<Value>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Result of `requestHitl`.
#[derive(SimpleObject)]
pub struct RequestHitlPayload {
    /// The new request.
    pub hitl_request: HitlRequest,
    /// The task, now WAITING_FOR_HITL.
    pub task: Task,
    /// The `HITL_REQUESTED` event.
    pub event: Event,
}

/// Result of `resolveHitlRequest`.
#[derive(SimpleObject)]
pub struct ResolveHitlRequestPayload {
    /// The request in its final state.
    pub hitl_request: HitlRequest,
    /// The task: WORKING again, FAILED on rejection, or still waiting for
    /// its other pending requests.
    pub task: Task,
    /// The `HITL_RESOLVED` event.
    pub event: Event,
}

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

/// Input of `forkFromCheckpoint`.
#[derive(InputObject)]
pub struct ForkFromCheckpointInput {
    /// The checkpoint to branch from.
    pub checkpoint_id: ID,
    /// An RFC 7386 merge patch applied to the source's state.
    pub state_patch: Option<Json<Value>>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `updateCheckpointStatus`.
#[derive(InputObject)]
pub struct UpdateCheckpointStatusInput {
    /// The checkpoint.
    pub checkpoint_id: ID,
    /// The new status (`IN_PROGRESS → COMPLETED / FAILED / REVERTED`).
    pub status: CheckpointStatus,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `revertToCheckpoint`.
#[derive(InputObject)]
pub struct RevertToCheckpointInput {
    /// The checkpoint to go back to.
    pub checkpoint_id: ID,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `pinCheckpoint`.
#[derive(InputObject)]
pub struct PinCheckpointInput {
    /// The checkpoint.
    pub checkpoint_id: ID,
    /// Pin (true) or unpin (false).
    pub pinned: bool,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Result of `revertToCheckpoint`.
#[derive(SimpleObject)]
pub struct RevertToCheckpointPayload {
    /// The checkpoint gone back to.
    pub checkpoint: TaskCheckpoint,
    /// The later checkpoints of its step now REVERTED (kept, not deleted).
    pub reverted: Vec<TaskCheckpoint>,
    /// The `CHECKPOINT_REVERTED` event.
    pub event: Event,
}

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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let tid = ids::decode(Kind::Task, &input.task_id)?;
                let (req, task, ev) = services(ctx)
                    .request_hitl(
                        principal(ctx),
                        crate::service::hitl::NewHitlRequest {
                            task_id: tid,
                            question: input.question,
                            options: input.options.unwrap_or_default(),
                            expires_at: input.expires_at,
                            on_expiry: input.on_expiry,
                            response_schema: input.response_schema.map(|j| j.0),
                        },
                    )
                    .await?;
                Ok(RequestHitlPayload {
                    hitl_request: HitlRequest(req),
                    task: Task(task),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (h, ev) =
                    recorded::<crate::entity::hitl_request::Model>(&events, "HitlRequest")?;
                let task = recorded_task_or_current(ctx, &events, h.task_id).await?;
                Ok(RequestHitlPayload {
                    hitl_request: HitlRequest(h),
                    task: Task(task),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::HitlRequest, &input.request_id)?;
                let (req, task, ev) = services(ctx)
                    .resolve_hitl(
                        principal(ctx),
                        id,
                        input.decision,
                        input.response.map(|j| j.0),
                    )
                    .await?;
                Ok(ResolveHitlRequestPayload {
                    hitl_request: HitlRequest(req),
                    task: Task(task),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (h, ev) =
                    recorded::<crate::entity::hitl_request::Model>(&events, "HitlRequest")?;
                let task = recorded_task_or_current(ctx, &events, h.task_id).await?;
                Ok(ResolveHitlRequestPayload {
                    hitl_request: HitlRequest(h),
                    task: Task(task),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let tid = ids::decode(Kind::Task, &input.task_id)?;
                let (cp, ev) = services(ctx)
                    .create_checkpoint(
                        principal(ctx),
                        tid,
                        input.step_id,
                        input.state.0,
                        input.expected_version,
                        input.status,
                    )
                    .await?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(cp),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "TaskCheckpoint")?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(m),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
                let (cp, ev) = services(ctx)
                    .fork_checkpoint(principal(ctx), id, input.state_patch.map(|j| j.0))
                    .await?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(cp),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "TaskCheckpoint")?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(m),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
                let (cp, ev) = services(ctx)
                    .update_checkpoint_status(principal(ctx), id, input.status)
                    .await?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(cp),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "TaskCheckpoint")?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(m),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
                let (cp, reverted, ev) = services(ctx)
                    .revert_to_checkpoint(principal(ctx), id)
                    .await?;
                Ok(RevertToCheckpointPayload {
                    checkpoint: TaskCheckpoint(cp),
                    reverted: reverted.into_iter().map(TaskCheckpoint).collect(),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let ev = events
                    .into_iter()
                    .find(|e| e.subject_type == "TaskCheckpoint")
                    .ok_or_else(|| {
                        crate::error::AppError::Internal(anyhow::anyhow!(
                            "idempotent replay found no checkpoint event"
                        ))
                    })?;
                let target = super::types::one(&super::loaders(ctx).checkpoints, ev.subject_id)
                    .await?
                    .ok_or_else(|| {
                        crate::error::AppError::not_found("TaskCheckpoint", ev.subject_id)
                    })?;
                let ids: Vec<uuid::Uuid> = ev
                    .payload
                    .get("reverted")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                let mut found = super::loaders(ctx)
                    .checkpoints
                    .load_many(ids.iter().copied())
                    .await
                    .map_err(super::types::db_err)?;
                let reverted = ids
                    .iter()
                    .filter_map(|i| found.remove(i))
                    .map(TaskCheckpoint)
                    .collect();
                Ok(RevertToCheckpointPayload {
                    checkpoint: TaskCheckpoint(target),
                    reverted,
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::TaskCheckpoint, &input.checkpoint_id)?;
                let (cp, ev) = services(ctx)
                    .pin_checkpoint(principal(ctx), id, input.pinned)
                    .await?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(cp),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "TaskCheckpoint")?;
                Ok(CreateCheckpointPayload {
                    checkpoint: TaskCheckpoint(m),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let s = services(ctx);
                let p = principal(ctx);
                let persona_id = match input.persona_id {
                    Some(per) => Some(s.find_persona(p, &per).await?.id),
                    None => None,
                };
                let (a, ev) = s
                    .create_artifact(
                        p,
                        NewArtifact {
                            project_id: ids::decode(Kind::Project, &input.project_id)?,
                            task_id: input
                                .task_id
                                .map(|t| ids::decode(Kind::Task, &t))
                                .transpose()?,
                            persona_id,
                            kind: input.kind,
                            name: input.name,
                            content: input.content.0,
                        },
                    )
                    .await?;
                Ok(CreateArtifactPayload {
                    artifact: Artifact(a),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let ev = events
                    .into_iter()
                    .find(|e| e.subject_type == "Artifact")
                    .ok_or_else(|| {
                        crate::error::AppError::Internal(anyhow::anyhow!(
                            "idempotent replay found no artifact event"
                        ))
                    })?;
                let a = super::types::one(&super::loaders(ctx).artifacts, ev.subject_id)
                    .await?
                    .ok_or_else(|| crate::error::AppError::not_found("Artifact", ev.subject_id))?;
                Ok(CreateArtifactPayload {
                    artifact: Artifact(a),
                    event: Event(ev.into()),
                })
            },
        )
        .await
    }
}

// ---------- agents ----------

/// Input of `updateAgentStatus`.
#[derive(InputObject)]
pub struct UpdateAgentStatusInput {
    /// The persona whose agent reports (global id or key, e.g. `dev`).
    pub persona_id: ID,
    /// The project it works on.
    pub project_id: ID,
    /// What it is doing.
    pub status: AgentState,
    /// The task it is on.
    pub current_task_id: Option<ID>,
    /// A short message.
    pub message: Option<String>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

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

/// Input of `resetAgentStatus`.
#[derive(InputObject)]
pub struct ResetAgentStatusInput {
    /// The persona whose agent it is (global id or key, e.g. `dev`).
    pub persona_id: ID,
    /// The project it works on.
    pub project_id: ID,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let s = services(ctx);
                let p = principal(ctx);
                let persona = s.find_persona(p, &input.persona_id).await?;
                let (st, ev) = s
                    .update_agent_status(
                        p,
                        ids::decode(Kind::Project, &input.project_id)?,
                        persona.id,
                        AgentState::Idle,
                        None,
                        Some(format!("reset by {}", p.user_id)),
                    )
                    .await?;
                Ok(UpdateAgentStatusPayload {
                    agent_status: AgentStatus(st),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "AgentStatus")?;
                Ok(UpdateAgentStatusPayload {
                    agent_status: AgentStatus(m),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let s = services(ctx);
                let p = principal(ctx);
                let persona = s.find_persona(p, &input.persona_id).await?;
                let (st, ev) = s
                    .update_agent_status(
                        p,
                        ids::decode(Kind::Project, &input.project_id)?,
                        persona.id,
                        input.status,
                        input
                            .current_task_id
                            .map(|t| ids::decode(Kind::Task, &t))
                            .transpose()?,
                        input.message,
                    )
                    .await?;
                Ok(UpdateAgentStatusPayload {
                    agent_status: AgentStatus(st),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "AgentStatus")?;
                Ok(UpdateAgentStatusPayload {
                    agent_status: AgentStatus(m),
                    event: Event(ev.into()),
                })
            },
        )
        .await
    }
}

// ---------- sessions ----------

/// Input of `startSession`.
#[derive(InputObject, Default)]
pub struct StartSessionInput {
    /// Display name.
    pub name: Option<String>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `suspendSession`, `resumeSession` and `terminateSession`.
#[derive(InputObject)]
pub struct SessionTransitionInput {
    /// The session.
    pub session_id: ID,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `switchPersona`.
#[derive(InputObject)]
pub struct SwitchPersonaInput {
    /// The session (ACTIVE).
    pub session_id: ID,
    /// The persona to switch to (global id or key).
    pub persona_id: ID,
    /// State of a newly created context (a JSON object); ignored when the
    /// persona already has a context in this session.
    pub initial_state: Option<Json<Value>>,
    /// A context of the same session to nest the new one under.
    pub parent_context_id: Option<ID>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `updatePersonaContext`.
#[derive(InputObject)]
pub struct UpdatePersonaContextInput {
    /// The context.
    pub context_id: ID,
    /// An RFC 7386 JSON merge patch applied to the state (`null` removes a key).
    pub state_patch: Json<Value>,
    /// The tool the persona is now using.
    pub active_tool: Option<String>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

/// Input of `appendPersonaContextHistory`.
#[derive(InputObject)]
pub struct AppendPersonaContextHistoryInput {
    /// The context.
    pub context_id: ID,
    /// The entry, any JSON (e.g. `{"role": "user", "content": "…"}`).
    pub entry: Json<Value>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

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

/// Input of `importPersonaContext`.
#[derive(InputObject)]
pub struct ImportPersonaContextInput {
    /// The ACTIVE session to import into.
    pub session_id: ID,
    /// A snapshot as `exportPersonaContext` returned it.
    pub snapshot: PersonaContextSnapshot,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same input returns the original result and changes nothing; the same
    /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
    pub idempotency_key: Option<String>,
}

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
        let key = input.as_ref().and_then(|i| i.idempotency_key.clone());
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let (s, ev) = services(ctx)
                    .start_session(principal(ctx), input.unwrap_or_default().name)
                    .await?;
                Ok(SessionPayload {
                    session: Session(s),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded(&events, "Session")?;
                Ok(SessionPayload {
                    session: Session(m),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let sid = ids::decode(Kind::Session, &input.session_id)?;
                let snap = crate::service::session::ContextSnapshot {
                    data: input.snapshot.data,
                    compressed: input.snapshot.compressed,
                    checksum: input.snapshot.checksum,
                    size: input.snapshot.size,
                };
                let (c, ev) = services(ctx)
                    .import_context(principal(ctx), sid, &snap)
                    .await?;
                Ok(PersonaContextPayload {
                    context: PersonaContext(c),
                    event: Event(ev.into()),
                })
            },
            |events| replay_context(ctx, events),
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let s = services(ctx);
                let p = principal(ctx);
                let persona = s.find_persona(p, &input.persona_id).await?;
                let (sess, c, ev) = s
                    .switch_persona(
                        p,
                        ids::decode(Kind::Session, &input.session_id)?,
                        persona.id,
                        input.initial_state.map(|j| j.0),
                        input
                            .parent_context_id
                            .map(|c| ids::decode(Kind::PersonaContext, &c))
                            .transpose()?,
                    )
                    .await?;
                Ok(SwitchPersonaPayload {
                    session: Session(sess),
                    context: PersonaContext(c),
                    event: Event(ev.into()),
                })
            },
            |events| async move {
                let (m, ev) = recorded::<crate::entity::session::Model>(&events, "Session")?;
                let cid = ev
                    .payload
                    .get("toContextId")
                    .and_then(|v| v.as_str())
                    .and_then(|v| uuid::Uuid::parse_str(v).ok())
                    .ok_or_else(|| {
                        crate::error::AppError::Internal(anyhow::anyhow!(
                            "switch event without context"
                        ))
                    })?;
                let c = super::types::one(&super::loaders(ctx).contexts, cid)
                    .await?
                    .ok_or_else(|| crate::error::AppError::not_found("PersonaContext", cid))?;
                Ok(SwitchPersonaPayload {
                    session: Session(m),
                    context: PersonaContext(c),
                    event: Event(ev.into()),
                })
            },
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
                let (c, ev) = services(ctx)
                    .update_persona_context(
                        principal(ctx),
                        id,
                        input.state_patch.0,
                        input.active_tool.map(Some),
                    )
                    .await?;
                Ok(PersonaContextPayload {
                    context: PersonaContext(c),
                    event: Event(ev.into()),
                })
            },
            |events| replay_context(ctx, events),
        )
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
        let key = input.idempotency_key.clone();
        keyed(
            ctx,
            key.as_deref(),
            || async move {
                let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
                let (c, ev) = services(ctx)
                    .append_context_history(principal(ctx), id, input.entry.0)
                    .await?;
                Ok(PersonaContextPayload {
                    context: PersonaContext(c),
                    event: Event(ev.into()),
                })
            },
            |events| replay_context(ctx, events),
        )
        .await
    }
}

async fn session_transition(
    ctx: &Context<'_>,
    input: SessionTransitionInput,
    to: SessionStatus,
) -> Result<SessionPayload> {
    let id = ids::decode(Kind::Session, &input.session_id)?;
    keyed(
        ctx,
        input.idempotency_key.as_deref(),
        || async {
            let (s, ev) = services(ctx)
                .transition_session(principal(ctx), id, to)
                .await?;
            Ok(SessionPayload {
                session: Session(s),
                event: Event(ev.into()),
            })
        },
        |events| async move {
            let (m, ev) = recorded(&events, "Session")?;
            Ok(SessionPayload {
                session: Session(m),
                event: Event(ev.into()),
            })
        },
    )
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
        keyed(
            ctx,
            input.idempotency_key.as_deref(),
            || async {
                if has_items {
                    s.import_catalog(p, pack).await?;
                }
                Ok(())
            },
            |_| async { Ok(()) },
        )
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
