//! A task: one unit of work for one persona inside a project.

use crate::domain::TaskStatus;
use sea_orm::entity::prelude::*;

/// A task: one unit of work for one persona inside a project.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub workflow_step_id: Option<Uuid>,
    pub step_key: Option<String>,
    pub persona_id: Option<Uuid>,
    pub title: String,
    pub instructions: Option<String>,
    pub priority: i32,
    pub position: i32,
    pub required: bool,
    pub status: TaskStatus,
    pub progress: i32,
    pub stage: Option<String>,
    pub status_message: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub output: Option<Json>,
    pub error: Option<String>,
    pub attempt: i32,
    pub version: i32,
    pub started_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
