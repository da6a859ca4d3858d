//! Agent status: what each persona's agent is doing in a project, its
//! heartbeat, and STALE detection for agents that went silent.

use super::query::{Page, PageAt, page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set,
};
use uuid::Uuid;

use super::task::load_task;
use super::{EventRef, NewEvent, Services, Tx, now};
use crate::auth::Principal;
use crate::domain::{AgentState, EventType};
use crate::entity::{agent_status, agent_status_history, event, project};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

/// What to record for an agent.
struct Report {
    status: AgentState,
    current_task_id: Option<Uuid>,
    message: Option<String>,
}

/// Writes an agent's status (creating its row on first report), its history
/// entry and its `AGENT_STATUS_CHANGED` event. The row is locked, so two
/// reports of one agent are applied one after the other.
async fn record(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    project_id: Uuid,
    persona_id: Uuid,
    r: Report,
) -> AppResult<(agent_status::Model, EventRef)> {
    let t = now();
    let existing = agent_status::Entity::find()
        .filter(agent_status::Column::TenantId.eq(tenant))
        .filter(agent_status::Column::ProjectId.eq(project_id))
        .filter(agent_status::Column::PersonaId.eq(persona_id))
        .lock_exclusive()
        .one(&**tx)
        .await?;
    let is_new = existing.is_none();
    let mut am = match existing {
        Some(m) => m.into_active_model(),
        None => agent_status::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            project_id: Set(project_id),
            persona_id: Set(persona_id),
            created_at: Set(t),
            ..Default::default()
        },
    };
    am.status = Set(r.status);
    am.current_task_id = Set(r.current_task_id);
    am.message = Set(r.message.clone());
    am.last_activity_at = Set(t);
    am.updated_at = Set(t);
    let model = if is_new {
        am.insert(&**tx).await?
    } else {
        am.update(&**tx).await?
    };
    agent_status_history::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant),
        agent_status_id: Set(model.id),
        project_id: Set(project_id),
        persona_id: Set(persona_id),
        status: Set(r.status),
        current_task_id: Set(r.current_task_id),
        message: Set(r.message),
        created_at: Set(t),
    }
    .insert(&**tx)
    .await?;
    let ev = tx.append(NewEvent::snapshot(EventType::AgentStatusChanged, &model));
    Ok((model, ev))
}

async fn require_project(tx: &Tx<'_>, p: &Principal, project_id: Uuid) -> AppResult<()> {
    project::Entity::find_by_id(project_id)
        .filter(project::Column::TenantId.eq(p.tenant_id))
        .one(&**tx)
        .await?
        .map(|_| ())
        .ok_or_else(|| AppError::not_found("Project", encode(Kind::Project, project_id)))
}

impl Services {
    /// Records an agent's new status (one row per tenant, project and
    /// persona, created on first report) and keeps the old one in history.
    /// STALE is the server's verdict on silence and cannot be reported.
    #[tracing::instrument(skip(self, message), fields(tenant = %p.tenant_id))]
    pub async fn update_agent_status(
        &self,
        p: &Principal,
        project_id: Uuid,
        persona_id: Uuid,
        status: AgentState,
        current_task_id: Option<Uuid>,
        message: Option<String>,
    ) -> AppResult<(agent_status::Model, event::Model)> {
        if status == AgentState::Stale {
            return Err(AppError::bad_input(
                "STALE is set by the server when an agent stops sending heartbeats",
            ));
        }
        let mut tx = self.begin(p).await?;
        require_project(&tx, p, project_id).await?;
        if let Some(tid) = current_task_id {
            let t = load_task(&*tx, p, tid).await?;
            if t.project_id != project_id {
                return Err(AppError::bad_input(
                    "currentTaskId belongs to another project",
                ));
            }
        }
        let (model, ev) = record(
            &mut tx,
            p.tenant_id,
            project_id,
            persona_id,
            Report {
                status,
                current_task_id,
                message,
            },
        )
        .await?;
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// An agent says it is alive. Its last activity moves to now; no event,
    /// unless this changes what observers should believe: an agent seen for
    /// the first time appears as IDLE, and a STALE one comes back as IDLE.
    #[tracing::instrument(skip(self), fields(tenant = %p.tenant_id))]
    pub async fn heartbeat(
        &self,
        p: &Principal,
        project_id: Uuid,
        persona_id: Uuid,
    ) -> AppResult<agent_status::Model> {
        let mut tx = self.begin(p).await?;
        require_project(&tx, p, project_id).await?;
        let existing = agent_status::Entity::find()
            .filter(agent_status::Column::TenantId.eq(p.tenant_id))
            .filter(agent_status::Column::ProjectId.eq(project_id))
            .filter(agent_status::Column::PersonaId.eq(persona_id))
            .lock_exclusive()
            .one(&*tx)
            .await?;
        let model = match existing {
            Some(m) if m.status != AgentState::Stale => {
                let t = now();
                let mut am = m.into_active_model();
                am.last_activity_at = Set(t);
                am.update(&*tx).await?
            }
            Some(m) => {
                record(
                    &mut tx,
                    p.tenant_id,
                    project_id,
                    persona_id,
                    Report {
                        status: AgentState::Idle,
                        current_task_id: m.current_task_id,
                        message: Some("heartbeat resumed".into()),
                    },
                )
                .await?
                .0
            }
            None => {
                record(
                    &mut tx,
                    p.tenant_id,
                    project_id,
                    persona_id,
                    Report {
                        status: AgentState::Idle,
                        current_task_id: None,
                        message: Some("first heartbeat".into()),
                    },
                )
                .await?
                .0
            }
        };
        tx.commit().await?;
        Ok(model)
    }

    /// Marks agents STALE whose last activity is older than `silence`
    /// (skipping OFFLINE and already STALE ones, so the event is emitted
    /// once per silence). All tenants; one transaction per agent.
    pub async fn mark_stale_agents(
        &self,
        silence: chrono::Duration,
        limit: u64,
    ) -> AppResult<usize> {
        let cutoff = now() - silence;
        let due = agent_status::Entity::find()
            .filter(
                agent_status::Column::Status.is_not_in([AgentState::Offline, AgentState::Stale]),
            )
            .filter(agent_status::Column::LastActivityAt.lt(cutoff))
            .limit(limit)
            .all(&self.all_tenants())
            .await?;
        let mut n = 0;
        for a in due {
            let system = Principal {
                tenant_id: a.tenant_id,
                ..Principal::system()
            };
            let mut tx = self.begin(&system).await?;
            // Re-read under the lock: a heartbeat may have arrived since.
            let fresh = agent_status::Entity::find_by_id(a.id)
                .lock_exclusive()
                .one(&*tx)
                .await?;
            let Some(fresh) = fresh else { continue };
            if fresh.last_activity_at >= cutoff
                || matches!(fresh.status, AgentState::Offline | AgentState::Stale)
            {
                continue;
            }
            let silent_for = (now() - fresh.last_activity_at).num_seconds();
            record(
                &mut tx,
                fresh.tenant_id,
                fresh.project_id,
                fresh.persona_id,
                Report {
                    status: AgentState::Stale,
                    current_task_id: fresh.current_task_id,
                    message: Some(format!("no heartbeat for {silent_for} s")),
                },
            )
            .await?;
            // `record` moved last activity to now; keep the real last sign
            // of life so the silence stays measurable.
            agent_status::Entity::update_many()
                .col_expr(
                    agent_status::Column::LastActivityAt,
                    fresh.last_activity_at.into(),
                )
                .filter(agent_status::Column::Id.eq(fresh.id))
                .exec(&*tx)
                .await?;
            tx.commit().await?;
            n += 1;
        }
        Ok(n)
    }
}

impl Services {
    /// A page of the agent statuses of a project, in order of first report.
    pub async fn agent_statuses(
        &self,
        p: &Principal,
        project_id: Uuid,
        at: PageAt,
    ) -> AppResult<Page<agent_status::Model>> {
        let q = agent_status::Entity::find()
            .filter(agent_status::Column::TenantId.eq(p.tenant_id))
            .filter(agent_status::Column::ProjectId.eq(project_id));
        page(&self.reader(p.tenant_id), q, agent_status::Column::Id, at).await
    }
}
