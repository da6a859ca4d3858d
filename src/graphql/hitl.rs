//! HITL requests: questions to a human that pause a task, their queries, verbs and stream.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT, OPERATOR, loaders, principal, services};
use crate::domain::{EventType, HitlDecision, HitlExpiryPolicy, HitlStatus};
use crate::entity::{event, hitl_request};
use crate::ids::{self, Kind};

/// A question from an agent to a human about one task.
#[derive(async_graphql::Description)]
pub struct HitlRequest(pub hitl_request::Model);

#[Object(use_type_description)]
impl HitlRequest {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::HitlRequest, self.0.id)
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The task waiting for the answer.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        Ok(one(&loaders(ctx).tasks, self.0.task_id).await?.map(Task))
    }
    /// The question.
    async fn question(&self) -> Counted<&str> {
        Counted(&self.0.question)
    }
    /// The JSON Schema an APPROVE or AMEND response must match, if any.
    async fn response_schema(&self) -> Counted<Option<Json<Value>>> {
        Counted(self.0.response_schema.clone().map(Json))
    }
    /// Suggested answers, if any.
    async fn options(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.options))
    }
    /// Lifecycle state: `PENDING → APPROVED / REJECTED / AMENDED` (or `EXPIRED`).
    async fn status(&self) -> HitlStatus {
        self.0.status
    }
    /// States this request may move to next (empty once answered).
    async fn allowed_transitions(&self) -> Vec<HitlStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// The human's response (free JSON: a comment, or the amendments).
    async fn response(&self) -> Counted<Option<Json<Value>>> {
        Counted(self.0.response.clone().map(Json))
    }
    /// Who asked.
    async fn requested_by(&self) -> Counted<&str> {
        Counted(&self.0.requested_by)
    }
    /// Who answered.
    async fn resolved_by(&self) -> Counted<Option<&str>> {
        Counted(self.0.resolved_by.as_deref())
    }
    /// When it was answered.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// When it expires unanswered.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// What happens to the task if it expires unanswered.
    async fn on_expiry(&self) -> crate::domain::HitlExpiryPolicy {
        self.0.on_expiry
    }
    /// When it was asked.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The human's decision, once answered.
    async fn decision(&self) -> Option<crate::domain::HitlDecision> {
        self.0
            .decision
            .as_deref()
            .and_then(crate::service::hitl::parse_decision)
    }
}

/// An item of `hitlRequested`: the event and the request as it was opened.
#[derive(async_graphql::Description)]
pub struct HitlRequestUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl HitlRequestUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// The request as recorded by the event.
    async fn hitl_request(&self, ctx: &Context<'_>) -> Result<Option<HitlRequest>> {
        match recorded::<hitl_request::Model>(&self.0) {
            Some(h) => Ok(Some(HitlRequest(h))),
            None => Ok(one(&loaders(ctx).hitl_requests, self.0.subject_id)
                .await?
                .map(HitlRequest)),
        }
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// Filter of `hitlRequests`.
#[derive(InputObject, Default)]
pub struct HitlRequestFilter {
    /// Only requests of this project.
    pub project_id: Option<ID>,
    /// Only requests in one of these states.
    pub status: Option<Vec<HitlStatus>>,
}

impl TryFrom<HitlRequestFilter> for crate::service::hitl::HitlRequestFilter {
    type Error = crate::error::AppError;
    fn try_from(f: HitlRequestFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            project_id: ids::decode_opt(Kind::Project, f.project_id)?,
            status: f.status,
        })
    }
}

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

fields! {
    /// Hitl queries.
    object HitlQuery;

    /// A HITL request by id.
    by_id hitl_request(HitlRequest) -> HitlRequest = |ctx, id|
        own::<hitl_request::Entity, _>(ctx, hitl_request::Column::TenantId, id, HitlRequest).await;

    /// HITL requests, oldest first.
    list hitl_requests(HitlRequestFilter) -> HitlRequest = hitl_requests;

    /// HITL requests opened in a project, oldest first: the query twin of
    /// the `hitlRequested` subscription.
    updates hitl_request_updates([EventType::HitlRequested]) -> HitlRequestUpdate;
}

fields! {
    /// Hitl mutations.
    object HitlMutation;

    /// Asks a human about a task and pauses it (WAITING_FOR_HITL).
    ///
    /// Roles: agent, admin.
    mutation AGENT request_hitl(ctx, input: RequestHitlInput) -> RequestHitlPayload {
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
    mutation OPERATOR resolve_hitl_request(ctx, input: ResolveHitlRequestInput)
        -> ResolveHitlRequestPayload {
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
    mutation OPERATOR resolve_hitl_requests(ctx, input: ResolveHitlRequestsInput)
        -> ResolveHitlRequestsPayload {
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
}

fields! {
    /// Hitl streams.
    subscription HitlSubscription;

    /// HITL requests opened in a project.
    stream hitl_requested([EventType::HitlRequested]) -> HitlRequestUpdate;
}
