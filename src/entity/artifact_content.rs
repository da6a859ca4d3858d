//! The content of one artifact, kept apart so lists never read it.

use sea_orm::entity::prelude::*;

/// The content of one artifact, kept apart so lists never read it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "artifact_contents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub artifact_id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub content: Json,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
