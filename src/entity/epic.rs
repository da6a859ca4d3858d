//! An epic: a numbered slice of a project's PRD, completed when its stories are.

use crate::domain::EpicStatus;
use sea_orm::entity::prelude::*;

/// An epic: a numbered slice of a project's PRD.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "epics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    /// 1-based, unique in the project.
    pub number: i32,
    pub title: String,
    pub goal: Option<String>,
    pub status: EpicStatus,
    pub version: i32,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
