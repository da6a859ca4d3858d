//! One ordered step of a workflow.

use sea_orm::entity::prelude::*;

/// One ordered step of a workflow.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "workflow_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
    pub position: i32,
    pub key: String,
    pub agent: Option<String>,
    pub persona_key: Option<String>,
    pub action: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub creates: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub requires: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub updates: Json,
    pub optional: bool,
    pub condition: Option<String>,
    pub repeats: Option<String>,
    pub requires_approval: bool,
    pub is_control: bool,
    pub notes: Option<String>,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
