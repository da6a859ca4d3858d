//! Sessions: a caller's working session, its queries and lifecycle verbs, and persona switching.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT_OR_OPERATOR, OPERATOR, loaders, principal, services};
use crate::domain::session::SessionVerb;
use crate::domain::{HitlStatus, SessionStatus};
use crate::entity::session;
use crate::ids::{self, Kind};

/// A user's working session with the agents.
#[derive(async_graphql::Description)]
pub struct Session(pub session::Model);

#[Object(use_type_description)]
impl Session {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Session, self.0.id)
    }
    /// The user it belongs to.
    async fn user_id(&self) -> Counted<&str> {
        Counted(&self.0.user_id)
    }
    /// Display name.
    async fn name(&self) -> Counted<Option<&str>> {
        Counted(self.0.name.as_deref())
    }
    /// Lifecycle state: `ACTIVE ⇄ SUSPENDED → TERMINATED`, or `EXPIRED`.
    async fn status(&self) -> SessionStatus {
        self.0.status
    }
    /// States this session may move to next.
    async fn allowed_transitions(&self) -> Vec<SessionStatus> {
        self.0.status.allowed_transitions().to_vec()
    }
    /// The context of the current persona.
    async fn current_context(&self, ctx: &Context<'_>) -> Result<Option<PersonaContext>> {
        let Some(id) = self.0.current_context_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).contexts, id).await?.map(PersonaContext))
    }
    /// HITL requests waiting for a human that this session's user may
    /// answer, oldest first. Requests have no assignee, so this is every
    /// PENDING request of the tenant; `totalCount` is the badge a dashboard
    /// shows.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn pending_hitl(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<HitlRequest>> {
        let at = page_at(first, after)?;
        let f = crate::service::hitl::HitlRequestFilter {
            project_id: None,
            status: Some(vec![HitlStatus::Pending]),
        };
        let pg = services(ctx).hitl_requests(principal(ctx), f, at).await?;
        Ok(id_connection(pg, at, HitlRequest))
    }
    /// Last activity.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }
    /// When it expires without further activity.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// When it was terminated or expired.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// When it was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    #[graphql(flatten)]
    async fn children(&self) -> SessionChildren {
        SessionChildren(self.0.id)
    }
}

fields! {
    /// The child pages of [`Session`] read through a DataLoader.
    children SessionChildren;

    /// Every persona context of this session, oldest first.
    children contexts -> PersonaContext = context_pages(SessionContexts);
}

/// Filter of `sessions`.
#[derive(InputObject, Default)]
pub struct SessionFilter {
    /// Only sessions in one of these states.
    pub status: Option<Vec<SessionStatus>>,
    /// Only sessions of this user.
    pub user_id: Option<String>,
}

impl TryFrom<SessionFilter> for crate::service::session::SessionFilter {
    type Error = crate::error::AppError;
    fn try_from(f: SessionFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            status: f.status,
            user_id: f.user_id,
        })
    }
}

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

async fn session_transition(
    ctx: &Context<'_>,
    input: SessionTransitionInput,
    verb: SessionVerb,
) -> Result<SessionPayload> {
    let id = ids::decode(Kind::Session, &input.session_id)?;
    keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
        s.transition_session(principal(ctx), id, verb).await
    })
    .await
}

fields! {
    /// Session queries.
    object SessionQuery;

    /// A session by id.
    by_id session(Session) -> Session = |ctx, id|
        own::<session::Entity, _>(ctx, session::Column::TenantId, id, Session).await;

    /// Sessions, oldest first.
    list sessions(SessionFilter) -> Session = list_sessions;
}

fields! {
    /// Session mutations.
    object SessionMutation;

    /// Starts an ACTIVE session for the caller.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR start_session(ctx, input: Option<StartSessionInput>)
        -> SessionPayload {
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
    mutation AGENT_OR_OPERATOR touch_session(ctx, input: TouchSessionInput) -> TouchSessionPayload {
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

    /// Makes a persona current in a session, creating its context on first use.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR switch_persona(ctx, input: SwitchPersonaInput)
        -> SwitchPersonaPayload {
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

    verbs(SessionTransitionInput) -> SessionPayload = session_transition {
        /// ACTIVE → SUSPENDED; contexts are kept.
        ///
        /// Roles: agent, operator, admin.
        AGENT_OR_OPERATOR suspend_session(SessionVerb::Suspend);

        /// SUSPENDED → ACTIVE; the inactivity timer restarts.
        ///
        /// Roles: agent, operator, admin.
        AGENT_OR_OPERATOR resume_session(SessionVerb::Resume);

        /// ACTIVE / SUSPENDED → TERMINATED.
        ///
        /// Roles: agent, operator, admin.
        AGENT_OR_OPERATOR terminate_session(SessionVerb::Terminate);
    }
}
