//! A question from an agent to a human about one task.

use crate::domain::{HitlExpiryPolicy, HitlStatus};
use sea_orm::entity::prelude::*;

/// A question from an agent to a human about one task.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "hitl_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub task_id: Uuid,
    pub question: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub options: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub response_schema: Option<Json>,
    pub status: HitlStatus,
    pub decision: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub response: Option<Json>,
    pub requested_by: String,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub on_expiry: HitlExpiryPolicy,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
