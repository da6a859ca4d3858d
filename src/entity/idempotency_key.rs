//! A remembered idempotency key and the events of the change it protects.

use sea_orm::entity::prelude::*;

/// A remembered idempotency key and the events of the change it protects.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub operation: String,
    pub request_hash: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub event_seqs: Json,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved through explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
