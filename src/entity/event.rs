//! An immutable audit row; `seq` is the stream cursor.

use crate::domain::EventType;
use sea_orm::entity::prelude::*;

/// An immutable audit row; `seq` is the stream cursor.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_type: EventType,
    pub project_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub subject_type: String,
    pub subject_id: Uuid,
    pub actor: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
