//! Tasks: the `Task` type, its attempts and updates, its queries, lifecycle verbs and stream.

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT, AGENT_OR_OPERATOR, OPERATOR, loaders, principal};
use crate::domain::{EventType, TaskStatus};
use crate::entity::{event, task};
use crate::ids::{self, Kind};
use crate::service::task::{NewTask, TaskChange, TaskVerb};
use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::Value;

mod object;
pub use object::*;

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

impl TryFrom<TaskFilter> for crate::service::task::TaskFilter {
    type Error = crate::error::AppError;
    fn try_from(f: TaskFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            project_id: ids::decode_opt(Kind::Project, f.project_id)?,
            status: f.status,
            persona: f.persona_id.map(|p| p.0),
        })
    }
}

/// The event types of `taskUpdated` and its query twin `taskUpdates`.
const TASK_EVENTS: [EventType; 9] = [
    EventType::TaskCreated,
    EventType::TaskStarted,
    EventType::TaskProgress,
    EventType::TaskWaitingForHitl,
    EventType::TaskResumed,
    EventType::TaskCompleted,
    EventType::TaskFailed,
    EventType::TaskCancelled,
    EventType::TaskRetried,
];

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

/// The input of a task verb: which task, and its idempotency key.
trait TaskVerbInput {
    fn task_id(&self) -> &ID;
    fn key(&self) -> Option<&str>;
}

macro_rules! task_verb_inputs {
    ($($t:ty),*) => {$(
        impl TaskVerbInput for $t {
            fn task_id(&self) -> &ID {
                &self.task_id
            }
            fn key(&self) -> Option<&str> {
                self.idempotency_key.as_deref()
            }
        }
    )*};
}

task_verb_inputs!(
    StartTaskInput,
    ReportTaskProgressInput,
    CompleteTaskInput,
    FailTaskInput,
    CancelTaskInput,
    RetryTaskInput
);

/// Runs `verb` on the input's task with the change the input describes.
async fn task_verb<I: TaskVerbInput>(
    ctx: &Context<'_>,
    input: I,
    verb: TaskVerb,
    change: impl FnOnce(I) -> TaskChange,
) -> Result<TaskTransitionPayload> {
    let id = ids::decode(Kind::Task, input.task_id())?;
    let key = input.key().map(str::to_owned);
    let change = change(input);
    keyed(ctx, key.as_deref(), |s| async move {
        s.task_verb(principal(ctx), id, verb, change).await
    })
    .await
}

fields! {
    /// Task queries.
    object TaskQuery;

    /// A task by id.
    by_id task(Task) -> Task = |ctx, id| Ok(one(&loaders(ctx).tasks, id).await?.map(Task));

    /// Tasks, oldest first.
    list tasks(TaskFilter) -> Task = tasks;

    /// Task changes of a project, oldest first: the query twin of the
    /// `taskUpdated` subscription (same items, same cursors), for clients
    /// that poll.
    updates task_updates(TASK_EVENTS) -> TaskUpdate;
}

fields! {
    /// Task mutations.
    object TaskMutation;

    /// Adds a task to an ACTIVE project. Errors: `BAD_USER_INPUT`, `NOT_FOUND`.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR create_task(ctx, input: CreateTaskInput) -> CreateTaskPayload {
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
    verb AGENT start_task(StartTaskInput) -> TaskTransitionPayload = task_verb(
        TaskVerb::Start,
        |i| TaskChange { message: Some(i.message), force: i.force, ..Default::default() }
    );

    /// Reports progress of a WORKING task. Errors: `BAD_USER_INPUT`
    /// (progress outside 0–100), `INVALID_TRANSITION` (not WORKING).
    ///
    /// Roles: agent, admin.
    verb AGENT report_task_progress(ReportTaskProgressInput) -> TaskTransitionPayload = task_verb(
        TaskVerb::Progress,
        |i| TaskChange {
            progress: Some(i.progress),
            stage: Some(i.stage),
            message: Some(i.message),
            ..Default::default()
        }
    );

    /// WORKING → COMPLETED with its output; progress becomes 100.
    ///
    /// Roles: agent, admin.
    verb AGENT complete_task(CompleteTaskInput) -> TaskTransitionPayload = task_verb(
        TaskVerb::Complete,
        |i| TaskChange {
            output: Some(i.output.map(|j| j.0).unwrap_or(Value::Null)),
            ..Default::default()
        }
    );

    /// WORKING / WAITING_FOR_HITL → FAILED with the error.
    ///
    /// Roles: agent, admin.
    verb AGENT fail_task(FailTaskInput) -> TaskTransitionPayload = task_verb(
        TaskVerb::Fail,
        |i| TaskChange { error: Some(Some(i.error)), ..Default::default() }
    );

    /// PENDING / WORKING / WAITING_FOR_HITL → CANCELLED. A cancelled
    /// dependency counts as skipped: it no longer blocks its dependants.
    ///
    /// Roles: operator, admin.
    verb OPERATOR cancel_task(CancelTaskInput) -> TaskTransitionPayload = task_verb(
        TaskVerb::Cancel,
        |i| TaskChange { message: Some(i.reason), ..Default::default() }
    );

    /// FAILED → PENDING for another attempt (`attempt` + 1, error cleared).
    ///
    /// Roles: operator, admin.
    verb OPERATOR retry_task(RetryTaskInput) -> TaskTransitionPayload = task_verb(
        TaskVerb::Retry,
        |_| TaskChange::default()
    );
}

fields! {
    /// Task streams.
    subscription TaskSubscription;

    /// Task changes of a project (created, started, progress, waiting,
    /// resumed, completed, failed, cancelled, retried), as events: the
    /// payload holds the task as it was right after the change and `task`
    /// resolves it as it is now.
    stream task_updated(TASK_EVENTS) -> TaskUpdate;
}
