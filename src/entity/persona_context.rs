//! One persona's context inside one session.

use sea_orm::entity::prelude::*;

/// One persona's context inside one session.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "persona_contexts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: String,
    pub session_id: Uuid,
    pub persona_id: Uuid,
    pub parent_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub state: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub history: Json,
    pub history_total: i64,
    pub active_tool: Option<String>,
    pub active_workflow: Option<String>,
    pub last_active_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
