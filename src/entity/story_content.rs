//! The content of one story, kept apart so lists of stories never read it.

use sea_orm::entity::prelude::*;

/// The content of one story (`service::story::StoryContent` as JSON): its
/// acceptance criteria, dev's checklist, dev notes and change log.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "story_contents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub story_id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub content: Json,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
