//! Human-in-the-loop requests: an agent asks, a human answers.
//!
//! Every change locks the task row first (after the project, see
//! `service::task`), so two answers to two requests of one task are
//! serialised: the second sees the first committed and knows whether the
//! task still waits.

use super::query::{Page, PageAt, page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, QueryTrait, Set,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::task::{
    TaskChange, lock_project, lock_project_and_task, lock_task, move_task, require_active_project,
};
use super::{NewEvent, Services, guarded, now, snapshot};
use crate::auth::Principal;
use crate::domain::hitl::{self, Closing};
use crate::domain::{EventType, HitlDecision, HitlExpiryPolicy, HitlStatus, TaskStatus};
use crate::entity::{event, hitl_request, task};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

/// The stored name of a decision (`APPROVE`, `REJECT`, `AMEND`).
pub fn decision_name(d: HitlDecision) -> &'static str {
    match d {
        HitlDecision::Approve => "APPROVE",
        HitlDecision::Reject => "REJECT",
        HitlDecision::Amend => "AMEND",
    }
}

/// The decision behind a stored name.
pub fn parse_decision(s: &str) -> Option<HitlDecision> {
    match s {
        "APPROVE" => Some(HitlDecision::Approve),
        "REJECT" => Some(HitlDecision::Reject),
        "AMEND" => Some(HitlDecision::Amend),
        _ => None,
    }
}

/// Input of [`Services::request_hitl`].
#[derive(Debug, Clone)]
pub struct NewHitlRequest {
    /// The task that asks.
    pub task_id: Uuid,
    /// The question.
    pub question: String,
    /// Suggested answers.
    pub options: Vec<String>,
    /// When the question stops being useful.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What happens to the task if nobody answers in time.
    pub on_expiry: HitlExpiryPolicy,
    /// A JSON Schema that APPROVE and AMEND answers must match.
    pub response_schema: Option<Json>,
}

impl Services {
    /// Opens a HITL request on a WORKING task and moves the task to
    /// WAITING_FOR_HITL (a task already waiting may ask more questions).
    /// Appends `TASK_WAITING_FOR_HITL` (when the task moves) and `HITL_REQUESTED`.
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn request_hitl(
        &self,
        p: &Principal,
        input: NewHitlRequest,
    ) -> AppResult<(hitl_request::Model, task::Model, event::Model)> {
        let NewHitlRequest {
            task_id,
            question,
            options,
            expires_at,
            on_expiry,
            response_schema,
        } = input;
        if let Some(schema) = &response_schema {
            self.json_within("responseSchema", schema, super::JsonLimit::Small)?;
            jsonschema::validator_for(schema).map_err(|e| {
                AppError::bad_input(format!("responseSchema is not a valid JSON Schema: {e}"))
            })?;
        }
        let question = question.trim().to_string();
        if question.is_empty() {
            return Err(AppError::bad_input("question must not be empty"));
        }
        if expires_at.is_some_and(|e| e <= now()) {
            return Err(AppError::bad_input("expiresAt must be in the future"));
        }
        let mut tx = self.begin(p).await?;
        let (project, task) = lock_project_and_task(&tx, p, task_id, false).await?;
        require_active_project(&project, &task, TaskStatus::WaitingForHitl)?;
        let task = match hitl::ask(task.status)? {
            Some((to, event)) => {
                move_task(&mut tx, task, to, event, TaskChange::default())
                    .await?
                    .0
            }
            None => task,
        };
        let t = now();
        let req = hitl_request::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            project_id: Set(task.project_id),
            task_id: Set(task.id),
            question: Set(question),
            options: Set(json!(options)),
            response_schema: Set(response_schema),
            status: Set(HitlStatus::Pending),
            decision: Set(None),
            response: Set(None),
            requested_by: Set(p.user_id.clone()),
            resolved_by: Set(None),
            resolved_at: Set(None),
            expires_at: Set(expires_at),
            on_expiry: Set(on_expiry),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent::snapshot(EventType::HitlRequested, &req));
        let done = tx.commit().await?;
        Ok((req, task, done.event(ev)))
    }

    /// Answers a pending HITL request. APPROVE and AMEND resume the task once
    /// no other request of it is pending; REJECT fails the task at once (and
    /// closes its other pending requests). A request past its `expiresAt`
    /// can no longer be answered.
    #[tracing::instrument(skip(self, response), fields(tenant = %p.tenant_id))]
    pub async fn resolve_hitl(
        &self,
        p: &Principal,
        id: Uuid,
        decision: HitlDecision,
        response: Option<Json>,
    ) -> AppResult<(hitl_request::Model, task::Model, event::Model)> {
        if let Some(r) = &response {
            self.json_within("response", r, super::JsonLimit::Small)?;
        }
        let mut tx = self.begin(p).await?;
        let not_found = || AppError::not_found("HitlRequest", encode(Kind::HitlRequest, id));
        let req = hitl_request::Entity::find_by_id(id)
            .filter(hitl_request::Column::TenantId.eq(p.tenant_id))
            .one(&*tx)
            .await?
            .ok_or_else(not_found)?;
        let project = lock_project(&tx, p, req.project_id, false).await?;
        let task = lock_task(&tx, p, req.task_id).await?;
        let t = now();
        let to = hitl::answer(req.status, req.expires_at, t, decision)?;
        require_active_project(&project, &task, task.status)?;
        if decision != HitlDecision::Reject
            && let Some(schema) = &req.response_schema
        {
            check_answer(schema, response.as_ref().unwrap_or(&Json::Null))?;
        }
        let res = hitl_request::Entity::update_many()
            .col_expr(hitl_request::Column::Status, to.into())
            .col_expr(
                hitl_request::Column::Decision,
                Some(decision_name(decision).to_string()).into(),
            )
            .col_expr(hitl_request::Column::Response, response.clone().into())
            .col_expr(
                hitl_request::Column::ResolvedBy,
                Some(p.user_id.clone()).into(),
            )
            .col_expr(hitl_request::Column::ResolvedAt, Some(t).into())
            .col_expr(hitl_request::Column::UpdatedAt, t.into())
            .filter(hitl_request::Column::Id.eq(id))
            .filter(hitl_request::Column::TenantId.eq(p.tenant_id))
            .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
            .filter(
                Condition::any()
                    .add(hitl_request::Column::ExpiresAt.is_null())
                    .add(hitl_request::Column::ExpiresAt.gt(t)),
            )
            .exec(&*tx)
            .await?;
        guarded(res.rows_affected, "the HITL request")?;
        let resolved = hitl_request::Model {
            status: to,
            decision: Some(decision_name(decision).to_string()),
            response: response.clone(),
            resolved_by: Some(p.user_id.clone()),
            resolved_at: Some(t),
            updated_at: t,
            ..req
        };
        let ev = tx.append(NewEvent::snapshot(EventType::HitlResolved, &resolved));
        let task = if task.status == TaskStatus::WaitingForHitl {
            let still_pending = hitl_request::Entity::find()
                .filter(hitl_request::Column::TaskId.eq(task.id))
                .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
                .count(&*tx)
                .await?;
            match hitl::task_after(task.status, still_pending, Closing::Answered(decision)) {
                Some((to, event)) => {
                    let change = TaskChange {
                        error: (to == TaskStatus::Failed).then(|| {
                            Some(format!(
                                "rejected by {}: {}",
                                p.user_id,
                                response_text(&response)
                            ))
                        }),
                        ..Default::default()
                    };
                    move_task(&mut tx, task, to, event, change).await?.0
                }
                None => task,
            }
        } else {
            task
        };
        let done = tx.commit().await?;
        Ok((resolved, task, done.event(ev)))
    }
}

impl Services {
    /// Expires PENDING requests past their `expiresAt` (all tenants), one
    /// transaction each: the request becomes EXPIRED (`HITL_EXPIRED`) and,
    /// if its task has nothing else pending, the task fails or resumes as
    /// the request's `onExpiry` says. Returns how many it expired.
    pub async fn expire_overdue_hitl(&self, limit: u64) -> AppResult<usize> {
        let due = hitl_request::Entity::find()
            .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
            .filter(hitl_request::Column::ExpiresAt.lte(now()))
            .limit(limit)
            .all(&self.all_tenants())
            .await?;
        let mut n = 0;
        for req in due {
            let system = Principal {
                tenant_id: req.tenant_id,
                ..Principal::system()
            };
            let mut tx = self.begin(&system).await?;
            lock_project(&tx, &system, req.project_id, false).await?;
            let task = lock_task(&tx, &system, req.task_id).await?;
            let t = now();
            let updated = hitl_request::Entity::update_many()
                .col_expr(hitl_request::Column::Status, HitlStatus::Expired.into())
                .col_expr(hitl_request::Column::ResolvedAt, Some(t).into())
                .col_expr(hitl_request::Column::UpdatedAt, t.into())
                .filter(hitl_request::Column::Id.eq(req.id))
                .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
                .exec_with_returning(&*tx)
                .await?;
            let Some(expired) = updated.into_iter().next() else {
                continue; // answered or expired by someone else meanwhile
            };
            let mut payload = snapshot(&expired);
            payload["reason"] = json!("no answer before expiresAt");
            tx.append(NewEvent::about(EventType::HitlExpired, &expired, payload));
            let others = hitl_request::Entity::find()
                .filter(hitl_request::Column::TaskId.eq(task.id))
                .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
                .count(&*tx)
                .await?;
            if let Some((to, event)) =
                hitl::task_after(task.status, others, Closing::Expired(expired.on_expiry))
            {
                let change = TaskChange {
                    error: (to == TaskStatus::Failed)
                        .then(|| Some("a HITL request expired unanswered".into())),
                    ..Default::default()
                };
                move_task(&mut tx, task, to, event, change).await?;
            }
            tx.commit().await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Refuses an answer that does not match the request's `responseSchema`,
/// naming (up to five of) the mismatches.
fn check_answer(schema: &Json, answer: &Json) -> AppResult<()> {
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        AppError::Internal(anyhow::anyhow!("stored schema no longer compiles: {e}"))
    })?;
    let problems: Vec<String> = validator
        .iter_errors(answer)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::bad_input(format!(
            "the response does not match the request's responseSchema: {}",
            problems.join("; ")
        )))
    }
}

fn response_text(r: &Option<Json>) -> String {
    match r {
        Some(Json::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "no reason given".into(),
    }
}

/// What `Services::hitl_requests` lists.
#[derive(Debug, Default)]
pub struct HitlRequestFilter {
    /// Only requests of this project.
    pub project_id: Option<Uuid>,
    /// Only requests in one of these states.
    pub status: Option<Vec<HitlStatus>>,
}

impl Services {
    /// A page of the caller's HITL requests, oldest first.
    pub async fn hitl_requests(
        &self,
        p: &Principal,
        f: HitlRequestFilter,
        at: PageAt,
    ) -> AppResult<Page<hitl_request::Model>> {
        let q = hitl_request::Entity::find()
            .filter(hitl_request::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.project_id, |q, id| {
                q.filter(hitl_request::Column::ProjectId.eq(id))
            })
            .apply_if(f.status, |q, st| {
                q.filter(hitl_request::Column::Status.is_in(st))
            });
        page(&self.reader(p.tenant_id), q, hitl_request::Column::Id, at).await
    }
}
