//! One past state of an agent status row.

use crate::domain::AgentState;
use sea_orm::entity::prelude::*;

/// One past state of an agent status row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "agent_status_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_status_id: Uuid,
    pub project_id: Uuid,
    pub persona_id: Uuid,
    pub status: AgentState,
    pub current_task_id: Option<Uuid>,
    pub message: Option<String>,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
