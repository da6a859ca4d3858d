//! Agent status: what each persona's agent is doing in a project.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use uuid::Uuid;

use super::task::load_task;
use super::{NewEvent, Services, now, snapshot};
use crate::auth::Principal;
use crate::domain::{AgentState, EventType};
use crate::entity::{agent_status, agent_status_history, event, project};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

impl Services {
    /// Records an agent's new status (one row per tenant, project and
    /// persona, created on first report) and keeps the old one in history.
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
        let mut tx = self.begin(p).await?;
        project::Entity::find_by_id(project_id)
            .filter(project::Column::TenantId.eq(p.tenant_id))
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("Project", encode(Kind::Project, project_id).0))?;
        if let Some(tid) = current_task_id {
            let t = load_task(&*tx, p, tid).await?;
            if t.project_id != project_id {
                return Err(AppError::bad_input(
                    "currentTaskId belongs to another project",
                ));
            }
        }
        let t = now();
        let existing = agent_status::Entity::find()
            .filter(agent_status::Column::TenantId.eq(p.tenant_id))
            .filter(agent_status::Column::ProjectId.eq(project_id))
            .filter(agent_status::Column::PersonaId.eq(persona_id))
            .one(&*tx)
            .await?;
        let is_new = existing.is_none();
        let mut am = match existing {
            Some(m) => m.into_active_model(),
            None => agent_status::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(p.tenant_id),
                project_id: Set(project_id),
                persona_id: Set(persona_id),
                created_at: Set(t),
                ..Default::default()
            },
        };
        am.status = Set(status);
        am.current_task_id = Set(current_task_id);
        am.message = Set(message.clone());
        am.last_activity_at = Set(t);
        am.updated_at = Set(t);
        let model = if is_new {
            am.insert(&*tx).await?
        } else {
            am.update(&*tx).await?
        };
        agent_status_history::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            agent_status_id: Set(model.id),
            project_id: Set(project_id),
            persona_id: Set(persona_id),
            status: Set(status),
            current_task_id: Set(current_task_id),
            message: Set(message),
            created_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent {
            event_type: EventType::AgentStatusChanged,
            project_id: Some(project_id),
            task_id: current_task_id,
            subject_type: "AgentStatus",
            subject_id: model.id,
            payload: snapshot(&model),
        });
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }
}
