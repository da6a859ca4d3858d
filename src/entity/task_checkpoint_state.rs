//! The saved state of one checkpoint, kept apart so lists never read it.

use sea_orm::entity::prelude::*;

/// The saved state of one checkpoint, kept apart so lists never read it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "task_checkpoint_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub checkpoint_id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub state: Json,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
