//! Epics, stories and QA gates: the development half of the BMad Method (an
//! epic is a numbered slice of the PRD; a story is one user story of an epic
//! and the unit of the development cycle; a QA gate is QA's decision on a
//! story, append-only).

use crate::common::{
    create_all, drop_all, fk, index, isolate, tenant_table, unique, with_timestamps,
};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// The tenant tables this migration adds.
pub const TABLES: &[&str] = &["epics", "stories", "story_contents", "qa_gates"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::Cascade;
        let epics = with_timestamps(
            tenant_table("epics")
                .col(uuid("project_id"))
                .col(integer("number"))
                .col(string("title"))
                .col(text_null("goal"))
                .col(string_len("status", 32))
                .col(integer("version"))
                .col(string("created_by"))
                .foreign_key(&mut fk("epics", "project_id", "projects", Cascade)),
        )
        .take();
        let stories = with_timestamps(
            tenant_table("stories")
                .col(uuid("project_id"))
                .col(uuid("epic_id"))
                .col(integer("epic_number"))
                .col(integer("number"))
                .col(string("title"))
                .col(string_len("role", 2000))
                .col(string_len("action", 2000))
                .col(string_len("benefit", 2000))
                .col(integer_null("points"))
                .col(string_len("status", 32))
                .col(uuid_null("current_gate_id"))
                .col(integer("version"))
                .col(string("created_by"))
                .foreign_key(&mut fk("stories", "project_id", "projects", Cascade))
                .foreign_key(&mut fk("stories", "epic_id", "epics", Cascade)),
        )
        .take();
        // The story's criteria, checklist, notes and change log: read only
        // when a client selects them, so lists of stories stay small.
        let contents = Table::create()
            .table("story_contents")
            .if_not_exists()
            .col(uuid("story_id").primary_key())
            .col(uuid("tenant_id"))
            .col(json_binary("content"))
            .foreign_key(&mut fk("story_contents", "story_id", "stories", Cascade))
            .take();
        // `stories.current_gate_id` has no foreign key: stories and gates
        // point at each other; the service keeps the pointer valid.
        let gates = tenant_table("qa_gates")
            .col(uuid("project_id"))
            .col(uuid("story_id"))
            .col(string_len("decision", 32))
            .col(text("status_reason"))
            .col(string("reviewer"))
            .col(json_binary("top_issues"))
            .col(json_binary_null("waiver"))
            .col(integer_null("quality_score"))
            .col(timestamp_with_time_zone_null("expires_at"))
            .col(json_binary("nfr"))
            .col(json_binary("ac_covered"))
            .col(json_binary("ac_gaps"))
            .col(string("created_by"))
            .col(timestamp_with_time_zone("created_at"))
            .foreign_key(&mut fk("qa_gates", "project_id", "projects", Cascade))
            .foreign_key(&mut fk("qa_gates", "story_id", "stories", Cascade))
            .take();
        create_all(
            manager,
            vec![epics, stories, contents, gates],
            vec![
                unique("epics", &["project_id", "number"]),
                unique("stories", &["epic_id", "number"]),
                index("stories", &["project_id", "status"]),
                index("stories", &["tenant_id", "status"]),
                index("qa_gates", &["story_id", "id"]),
            ],
        )
        .await?;
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            let sql: String = TABLES.iter().map(|t| isolate(t)).collect();
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(manager, &["qa_gates", "story_contents", "stories", "epics"]).await
    }
}
