//! The catalog: personas, teams and workflows with their ordered steps.
//!
//! Built-in rows belong to the system tenant (the nil UUID) and are visible to
//! every tenant; a tenant's own rows with the same `key` take precedence.

use crate::common::{create_all, drop_all, fk, index, tenant_table, unique, with_timestamps};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let personas = with_timestamps(
            tenant_table("personas")
                .col(string("key"))
                .col(string("name"))
                .col(string("title"))
                .col(string_null("icon"))
                .col(text_null("role"))
                .col(text_null("when_to_use"))
                .col(text_null("description"))
                .col(json_binary("capabilities"))
                .col(boolean("builtin")),
        )
        .take();
        let teams = with_timestamps(
            tenant_table("teams")
                .col(string("key"))
                .col(string("name"))
                .col(string_null("icon"))
                .col(text_null("description"))
                .col(boolean("builtin")),
        )
        .take();
        let team_members = Table::create()
            .table("team_members")
            .if_not_exists()
            .col(uuid("team_id"))
            .col(uuid("tenant_id"))
            .col(integer("position"))
            .col(string("persona_key"))
            .primary_key(Index::create().col("team_id").col("position"))
            .foreign_key(&mut fk(
                "team_members",
                "team_id",
                "teams",
                ForeignKeyAction::Cascade,
            ))
            .take();
        let team_workflows = Table::create()
            .table("team_workflows")
            .if_not_exists()
            .col(uuid("team_id"))
            .col(uuid("tenant_id"))
            .col(integer("position"))
            .col(string("workflow_key"))
            .primary_key(Index::create().col("team_id").col("position"))
            .foreign_key(&mut fk(
                "team_workflows",
                "team_id",
                "teams",
                ForeignKeyAction::Cascade,
            ))
            .take();
        let workflows = with_timestamps(
            tenant_table("workflows")
                .col(string("key"))
                .col(string("name"))
                .col(text_null("description"))
                .col(string_null("kind"))
                .col(json_binary("project_types"))
                .col(boolean("builtin")),
        )
        .take();
        let workflow_steps = tenant_table("workflow_steps")
            .col(uuid("workflow_id"))
            .col(integer("position"))
            .col(string("key"))
            .col(string_null("agent"))
            .col(string_null("persona_key"))
            .col(string_null("action"))
            .col(json_binary("creates"))
            .col(json_binary("requires"))
            .col(json_binary("updates"))
            .col(boolean("optional"))
            .col(text_null("condition"))
            .col(string_null("repeats"))
            .col(boolean("requires_approval"))
            .col(boolean("is_control"))
            .col(text_null("notes"))
            .foreign_key(&mut fk(
                "workflow_steps",
                "workflow_id",
                "workflows",
                ForeignKeyAction::Cascade,
            ))
            .take();
        create_all(
            manager,
            vec![
                personas,
                teams,
                team_members,
                team_workflows,
                workflows,
                workflow_steps,
            ],
            vec![
                unique("personas", &["tenant_id", "key"]),
                unique("teams", &["tenant_id", "key"]),
                index("team_members", &["tenant_id"]),
                index("team_workflows", &["tenant_id"]),
                unique("workflows", &["tenant_id", "key"]),
                unique("workflow_steps", &["workflow_id", "key"]),
                index("workflow_steps", &["workflow_id", "position"]),
                index("workflow_steps", &["tenant_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "workflow_steps",
                "workflows",
                "team_workflows",
                "team_members",
                "teams",
                "personas",
            ],
        )
        .await
    }
}
