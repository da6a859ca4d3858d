//! A QA gate: QA's decision on a story, append-only (a new gate supersedes
//! the last).

use crate::domain::GateDecision;
use sea_orm::entity::prelude::*;

/// A QA gate. Its issues, waiver, NFR results and AC coverage are JSON
/// whose shapes `service::qa_gate` defines.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "qa_gates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub story_id: Uuid,
    pub decision: GateDecision,
    pub status_reason: String,
    pub reviewer: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub top_issues: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub waiver: Option<Json>,
    pub quality_score: Option<i32>,
    pub expires_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary")]
    pub nfr: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub ac_covered: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub ac_gaps: Json,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
