//! A project: one product being built.

use crate::domain::ProjectStatus;
use sea_orm::DbErr;
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

/// The columns of [`Model`], in its field order.
const COLUMNS: [&str; 11] = [
    "id",
    "tenant_id",
    "name",
    "product_idea",
    "workflow_id",
    "auto_complete",
    "status",
    "created_by",
    "ended_at",
    "created_at",
    "updated_at",
];

impl super::FromRows for Model {
    /// A page of projects is the root of most queries: on PostgreSQL its
    /// rows are decoded by position (by name, sea-orm's decoder was 9 % of
    /// a flat query's server CPU).
    fn from_rows(rows: &[sea_orm::QueryResult]) -> Result<Vec<Self>, DbErr> {
        use super::by_position::{Missing, decode, get};
        // Projects are always read whole: a column missing is a fault, not a
        // default (tasks default the columns a page chose not to read).
        decode(rows, &COLUMNS, Missing::Error, |row, at| {
            let status = match get::<Option<String>>(row, at[6])? {
                Some(s) => <ProjectStatus as sea_orm::ActiveEnum>::try_from_value(&s)?,
                None => ProjectStatus::Active,
            };
            Ok(Model {
                id: get(row, at[0])?,
                tenant_id: get(row, at[1])?,
                name: get(row, at[2])?,
                product_idea: get(row, at[3])?,
                workflow_id: get(row, at[4])?,
                auto_complete: get(row, at[5])?,
                status,
                created_by: get(row, at[7])?,
                ended_at: get(row, at[8])?,
                created_at: get(row, at[9])?,
                updated_at: get(row, at[10])?,
            })
        })
    }
}
