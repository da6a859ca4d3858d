//! Sessions: starting, touching, expiring and moving them along their
//! lifecycle, and switching the persona a session works as.

use super::query::{Page, PageAt, page};
use super::{EventRef, NewEvent, Services, Tx, guarded, now, snapshot, with_members};
use crate::auth::Principal;
use crate::domain::session::{self as lifecycle, SessionVerb};
use crate::domain::{EventType, SessionStatus};
use crate::entity::{event, persona_context, session};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set, TryIntoModel,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::persona_context::load_context;

impl Services {
    /// Starts an ACTIVE session for the caller.
    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    pub async fn start_session(
        &self,
        p: &Principal,
        name: Option<String>,
    ) -> AppResult<(session::Model, event::Model)> {
        let t = now();
        let mut tx = self.begin(p).await?;
        // The limit: the user's live sessions, least recently active first;
        // the ones beyond the limit (counting the new one) expire.
        let live = session::Entity::find()
            .filter(session::Column::TenantId.eq(p.tenant_id))
            .filter(session::Column::UserId.eq(&p.user_id))
            .filter(
                session::Column::Status.is_in([SessionStatus::Active, SessionStatus::Suspended]),
            )
            .order_by_asc(session::Column::LastActivityAt)
            .lock_exclusive()
            .all(&*tx)
            .await?;
        let max = self.settings().max_sessions_per_user.max(1);
        let excess = (live.len() + 1).saturating_sub(max);
        for old in live.into_iter().take(excess) {
            expire_one(
                &mut tx,
                old,
                &format!("session limit of {max} per user reached"),
            )
            .await?;
        }
        let model = session::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            user_id: Set(p.user_id.clone()),
            name: Set(name),
            status: Set(SessionStatus::Active),
            current_context_id: Set(None),
            last_activity_at: Set(t),
            expires_at: Set(t + self.settings().session_timeout),
            ended_at: Set(None),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = session_event(&mut tx, EventType::SessionStarted, &model, json!({}));
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// Records activity in an ACTIVE session: its inactivity deadline moves
    /// to now + the timeout. No event: a heartbeat is not a change of state,
    /// and one event per heartbeat would drown the log; the expiry it
    /// prevents is what gets logged.
    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    pub async fn touch_session(&self, p: &Principal, id: Uuid) -> AppResult<session::Model> {
        let tx = self.begin(p).await?;
        let s = load_session(&tx, p, id).await?;
        if s.status != SessionStatus::Active {
            return Err(AppError::transition(
                "Session",
                s.status,
                SessionStatus::Active,
                s.status.allowed_transitions(),
            )
            .because("only an ACTIVE session can be touched"));
        }
        require_not_overdue(&s)?;
        let t = now();
        let mut am = s.into_active_model();
        am.last_activity_at = Set(t);
        am.expires_at = Set(t + self.settings().session_timeout);
        let s = am.update(&*tx).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Expires every live session past its deadline — of one tenant, or of
    /// all tenants for the background sweeper — one transaction and one
    /// `SESSION_EXPIRED` event per session. Returns what it expired (at most
    /// `limit` per call). Safe to run on several replicas at once: the
    /// guarded update lets one of them win per session.
    pub async fn expire_overdue_sessions(
        &self,
        tenant: Option<Uuid>,
        limit: u64,
    ) -> AppResult<Vec<session::Model>> {
        let mut q = session::Entity::find()
            .filter(
                session::Column::Status.is_in([SessionStatus::Active, SessionStatus::Suspended]),
            )
            .filter(session::Column::ExpiresAt.lte(now()));
        if let Some(t) = tenant {
            q = q.filter(session::Column::TenantId.eq(t));
        }
        let db = match tenant {
            Some(t) => self.reader(t),
            None => self.all_tenants(),
        };
        let due = q
            .order_by_asc(session::Column::ExpiresAt)
            .limit(limit)
            .all(&db)
            .await?;
        let mut out = vec![];
        for s in due {
            let system = Principal {
                tenant_id: s.tenant_id,
                ..Principal::system()
            };
            let mut tx = self.begin(&system).await?;
            if let Some(e) = expire_one(&mut tx, s, "inactivity timeout").await? {
                tx.commit().await?;
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Moves a session along its lifecycle (suspend, resume, terminate).
    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    pub async fn transition_session(
        &self,
        p: &Principal,
        id: Uuid,
        verb: SessionVerb,
    ) -> AppResult<(session::Model, event::Model)> {
        let mut tx = self.begin(p).await?;
        let current = load_session(&tx, p, id).await?;
        let t = now();
        let (to, event_type) = lifecycle::decide(current.status, verb, current.expires_at, t)?;
        let mut am = current.clone().into_active_model();
        am.status = Set(to);
        am.updated_at = Set(t);
        if to == SessionStatus::Active {
            am.last_activity_at = Set(t);
            am.expires_at = Set(t + self.settings().session_timeout);
        }
        if to.is_terminal() {
            am.ended_at = Set(Some(t));
        }
        let updated = am.clone().try_into_model()?;
        let res = session::Entity::update_many()
            .set(am)
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::TenantId.eq(p.tenant_id))
            .filter(session::Column::Status.eq(current.status))
            .exec(&*tx)
            .await?;
        guarded(res.rows_affected, "the session")?;
        let ev = session_event(&mut tx, event_type, &updated, json!({}));
        let done = tx.commit().await?;
        Ok((updated, done.event(ev)))
    }

    /// Makes `persona_id` the session's current persona: reopens its context
    /// in this session or creates it with `initial_state`, and points the
    /// session at it. The outgoing context keeps its state untouched.
    #[tracing::instrument(skip(self, initial_state), fields(tenant = %p.tenant_id))]
    pub async fn switch_persona(
        &self,
        p: &Principal,
        session_id: Uuid,
        persona_id: Uuid,
        initial_state: Option<Json>,
        parent_id: Option<Uuid>,
    ) -> AppResult<(session::Model, persona_context::Model, event::Model)> {
        if let Some(s) = &initial_state
            && !s.is_object()
        {
            return Err(AppError::bad_input("initialState must be a JSON object"));
        }
        if let Some(s) = &initial_state {
            self.json_within("initialState", s, super::JsonLimit::Content)?;
        }
        let mut tx = self.begin(p).await?;
        let session = load_session(&tx, p, session_id).await?;
        if session.status != SessionStatus::Active {
            return Err(AppError::bad_input(format!(
                "personas can only be switched in an ACTIVE session; this one is {}",
                sea_orm::ActiveEnum::to_value(&session.status)
            )));
        }
        require_not_overdue(&session)?;
        if let Some(parent) = parent_id {
            let parent = load_context(&tx, p, parent).await?;
            if parent.session_id != session.id {
                return Err(AppError::bad_input(
                    "the parent context belongs to another session",
                ));
            }
        }
        let t = now();
        let existing = persona_context::Entity::find()
            .filter(persona_context::Column::TenantId.eq(p.tenant_id))
            .filter(persona_context::Column::UserId.eq(&session.user_id))
            .filter(persona_context::Column::PersonaId.eq(persona_id))
            .filter(persona_context::Column::SessionId.eq(session.id))
            .lock_exclusive()
            .one(&*tx)
            .await?;
        let context = match existing {
            Some(c) => {
                let mut am = c.into_active_model();
                am.last_active_at = Set(t);
                am.updated_at = Set(t);
                am.update(&*tx).await?
            }
            None => {
                persona_context::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    tenant_id: Set(p.tenant_id),
                    user_id: Set(session.user_id.clone()),
                    session_id: Set(session.id),
                    persona_id: Set(persona_id),
                    parent_id: Set(parent_id),
                    state: Set(initial_state.unwrap_or_else(|| json!({}))),
                    history: Set(json!([])),
                    history_total: Set(0),
                    active_tool: Set(None),
                    active_workflow: Set(None),
                    last_active_at: Set(t),
                    created_at: Set(t),
                    updated_at: Set(t),
                }
                .insert(&*tx)
                .await?
            }
        };
        let previous = session.current_context_id;
        let mut am = session.into_active_model();
        am.current_context_id = Set(Some(context.id));
        am.last_activity_at = Set(t);
        am.expires_at = Set(t + self.settings().session_timeout);
        am.updated_at = Set(t);
        let session = am.update(&*tx).await?;
        let ev = session_event(
            &mut tx,
            EventType::PersonaSwitched,
            &session,
            json!({ "fromContextId": previous, "toContextId": context.id, "personaId": persona_id }),
        );
        let done = tx.commit().await?;
        Ok((session, context, done.event(ev)))
    }
}

/// Loads a session and locks its row until the transaction ends. Every
/// session write locks the session before any of its contexts.
pub(crate) async fn load_session(
    tx: &Tx<'_>,
    p: &Principal,
    id: Uuid,
) -> AppResult<session::Model> {
    session::Entity::find_by_id(id)
        .filter(session::Column::TenantId.eq(p.tenant_id))
        .lock_exclusive()
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("Session", encode(Kind::Session, id)))
}

/// Loads a context and locks its row; state and history are read, changed
/// and written back, so two writers must not interleave.
/// Moves one live session to EXPIRED inside `tx` (guarded by its status).
async fn expire_one(
    tx: &mut Tx<'_>,
    s: session::Model,
    why: &str,
) -> AppResult<Option<session::Model>> {
    let t = now();
    let res = session::Entity::update_many()
        .col_expr(session::Column::Status, SessionStatus::Expired.into())
        .col_expr(session::Column::EndedAt, Some(t).into())
        .col_expr(session::Column::UpdatedAt, t.into())
        .filter(session::Column::Id.eq(s.id))
        .filter(session::Column::Status.eq(s.status))
        .exec(&**tx)
        .await?;
    if res.rows_affected == 0 {
        // Someone else ended it first: nothing to do, nothing to log.
        return Ok(None);
    }
    let expired = session::Model {
        status: SessionStatus::Expired,
        ended_at: Some(t),
        updated_at: t,
        ..s
    };
    session_event(
        tx,
        EventType::SessionExpired,
        &expired,
        json!({ "reason": why }),
    );
    Ok(Some(expired))
}

pub(crate) fn require_not_overdue(s: &session::Model) -> AppResult<()> {
    crate::domain::session::require_not_overdue(s.expires_at, now())
}

fn session_event(
    tx: &mut Tx<'_>,
    event_type: EventType,
    s: &session::Model,
    extra: Json,
) -> EventRef {
    let payload = with_members(snapshot(s), extra);
    tx.append(NewEvent::about(event_type, s, payload))
}

/// What `Services::list_sessions` lists.
#[derive(Debug, Default)]
pub struct SessionFilter {
    /// Only sessions in one of these states.
    pub status: Option<Vec<SessionStatus>>,
    /// Only sessions of this user.
    pub user_id: Option<String>,
}

impl Services {
    /// A page of the caller's tenant's sessions, oldest first.
    pub async fn list_sessions(
        &self,
        p: &Principal,
        f: SessionFilter,
        at: PageAt,
    ) -> AppResult<Page<session::Model>> {
        let q = session::Entity::find()
            .filter(session::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.status, |q, s| q.filter(session::Column::Status.is_in(s)))
            .apply_if(f.user_id, |q, u| q.filter(session::Column::UserId.eq(u)));
        page(&self.reader(p.tenant_id), q, session::Column::Id, at).await
    }
}
