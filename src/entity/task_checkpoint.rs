//! A versioned snapshot of a task's state at a workflow step.

use crate::domain::CheckpointStatus;
use sea_orm::entity::prelude::*;

/// A versioned snapshot of a task's state at a workflow step.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "task_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub task_id: Uuid,
    pub project_id: Uuid,
    pub step_key: String,
    pub version: i32,
    pub status: CheckpointStatus,
    pub parent_id: Option<Uuid>,
    pub pinned: bool,
    pub state_size: i64,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
