//! A story: one user story of an epic, the unit of the development cycle.

use crate::domain::StoryStatus;
use sea_orm::entity::prelude::*;

/// A story: one user story of an epic. Its criteria, checklist, notes and
/// change log are kept apart ([`super::story_content`]).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "stories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub epic_id: Uuid,
    /// The epic's number, kept here so the story's `1.2` needs no lookup.
    pub epic_number: i32,
    /// 1-based, unique in the epic.
    pub number: i32,
    pub title: String,
    pub role: String,
    pub action: String,
    pub benefit: String,
    pub points: Option<i32>,
    pub status: StoryStatus,
    /// The gate of the current review round: set when QA records one,
    /// cleared when the story goes back to dev or into a new round.
    pub current_gate_id: Option<Uuid>,
    pub version: i32,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
