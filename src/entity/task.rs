//! A task: one unit of work for one persona inside a project.

use crate::domain::TaskStatus;
use sea_orm::entity::prelude::*;

/// A task: one unit of work for one persona inside a project.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub workflow_step_id: Option<Uuid>,
    pub step_key: Option<String>,
    pub persona_id: Option<Uuid>,
    pub title: String,
    pub instructions: Option<String>,
    pub priority: i32,
    pub position: i32,
    pub required: bool,
    pub status: TaskStatus,
    pub progress: i32,
    pub stage: Option<String>,
    pub status_message: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub output: Option<Json>,
    pub error: Option<String>,
    pub attempt: i32,
    pub version: i32,
    pub started_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations are resolved through DataLoaders and explicit queries, not sea-orm joins.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The columns of [`Model`], in its field order.
const COLUMNS: [&str; 23] = [
    "id",
    "tenant_id",
    "project_id",
    "workflow_step_id",
    "step_key",
    "persona_id",
    "title",
    "instructions",
    "priority",
    "position",
    "required",
    "status",
    "progress",
    "stage",
    "status_message",
    "output",
    "error",
    "attempt",
    "version",
    "started_at",
    "ended_at",
    "created_at",
    "updated_at",
];

impl super::FromRows for Model {
    /// Tasks are the rows a nested query reads most (a page under each
    /// project): on PostgreSQL they are decoded by position.
    fn from_rows(rows: &[sea_orm::QueryResult]) -> Result<Vec<Self>, DbErr> {
        use super::by_position::{Missing, decode, get};
        decode(rows, &COLUMNS, Missing::Default, |row, at| {
            // Not read (a page that needs no status): any value will do.
            let status = match get::<Option<String>>(row, at[11])? {
                Some(s) => <TaskStatus as sea_orm::ActiveEnum>::try_from_value(&s)?,
                None => TaskStatus::Pending,
            };
            Ok(Model {
                id: get(row, at[0])?,
                tenant_id: get(row, at[1])?,
                project_id: get(row, at[2])?,
                workflow_step_id: get(row, at[3])?,
                step_key: get(row, at[4])?,
                persona_id: get(row, at[5])?,
                title: get(row, at[6])?,
                instructions: get(row, at[7])?,
                priority: get(row, at[8])?,
                position: get(row, at[9])?,
                required: get(row, at[10])?,
                status,
                progress: get(row, at[12])?,
                stage: get(row, at[13])?,
                status_message: get(row, at[14])?,
                output: get(row, at[15])?,
                error: get(row, at[16])?,
                attempt: get(row, at[17])?,
                version: get(row, at[18])?,
                started_at: get(row, at[19])?,
                ended_at: get(row, at[20])?,
                created_at: get(row, at[21])?,
                updated_at: get(row, at[22])?,
            })
        })
    }
}
