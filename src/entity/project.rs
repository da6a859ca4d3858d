//! A project: one product being built.

use crate::domain::ProjectStatus;
use sea_orm::entity::prelude::*;

/// A project: one product being built.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub product_idea: Option<String>,
    pub workflow_id: Option<Uuid>,
    pub auto_complete: bool,
    pub status: ProjectStatus,
    pub created_by: String,
    pub ended_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
