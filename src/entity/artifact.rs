//! An immutable output kept in the context store; a new version is a new row.

use crate::domain::ArtifactKind;
use sea_orm::entity::prelude::*;

/// An immutable output kept in the context store; a new version is a new row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "artifacts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub task_id: Option<Uuid>,
    pub persona_id: Option<Uuid>,
    pub kind: ArtifactKind,
    pub name: String,
    pub version: i32,
    pub supersedes_id: Option<Uuid>,
    pub sha256: String,
    pub size: i64,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
