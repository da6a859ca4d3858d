//! Projects and everything that hangs off them: tasks and their dependencies,
//! checkpoints, HITL requests, artifacts, agent statuses and their history.

use crate::common::{create_all, drop_all, fk, index, tenant_table, unique, with_timestamps};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, SetNull};
        let projects = with_timestamps(
            tenant_table("projects")
                .col(string("name"))
                .col(text_null("product_idea"))
                .col(uuid_null("workflow_id"))
                .col(boolean("auto_complete"))
                .col(string_len("status", 32))
                .col(string("created_by"))
                .col(timestamp_with_time_zone_null("ended_at"))
                .foreign_key(&mut fk("projects", "workflow_id", "workflows", SetNull)),
        )
        .take();
        let tasks = with_timestamps(
            tenant_table("tasks")
                .col(uuid("project_id"))
                .col(uuid_null("workflow_step_id"))
                .col(string_null("step_key"))
                .col(uuid_null("persona_id"))
                .col(string("title"))
                .col(text_null("instructions"))
                .col(integer("priority"))
                .col(integer("position"))
                .col(boolean("required"))
                .col(string_len("status", 32))
                .col(integer("progress"))
                .col(string_null("stage"))
                .col(text_null("status_message"))
                .col(json_binary_null("output"))
                .col(text_null("error"))
                .col(integer("attempt"))
                .col(integer("version"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("ended_at"))
                .foreign_key(&mut fk("tasks", "project_id", "projects", Cascade))
                .foreign_key(&mut fk(
                    "tasks",
                    "workflow_step_id",
                    "workflow_steps",
                    SetNull,
                ))
                .foreign_key(&mut fk("tasks", "persona_id", "personas", SetNull)),
        )
        .take();
        let task_dependencies = Table::create()
            .table("task_dependencies")
            .if_not_exists()
            .col(uuid("task_id"))
            .col(uuid("depends_on_id"))
            .col(uuid("tenant_id"))
            .primary_key(Index::create().col("task_id").col("depends_on_id"))
            .foreign_key(&mut fk("task_dependencies", "task_id", "tasks", Cascade))
            .foreign_key(&mut fk(
                "task_dependencies",
                "depends_on_id",
                "tasks",
                Cascade,
            ))
            .take();
        let checkpoints = with_timestamps(
            tenant_table("task_checkpoints")
                .col(uuid("task_id"))
                .col(uuid("project_id"))
                .col(string("step_key"))
                .col(integer("version"))
                .col(string_len("status", 32))
                .col(uuid_null("parent_id"))
                .col(boolean("pinned"))
                .col(big_integer("state_size"))
                .col(string("created_by"))
                .foreign_key(&mut fk("task_checkpoints", "task_id", "tasks", Cascade))
                .foreign_key(&mut fk(
                    "task_checkpoints",
                    "project_id",
                    "projects",
                    Cascade,
                ))
                .foreign_key(&mut fk(
                    "task_checkpoints",
                    "parent_id",
                    "task_checkpoints",
                    SetNull,
                )),
        )
        .take();
        // Bodies live apart from their rows, so lists never read them:
        // a page of checkpoints or artifacts costs the same whatever they hold.
        let checkpoint_states = Table::create()
            .table("task_checkpoint_states")
            .if_not_exists()
            .col(uuid("checkpoint_id").primary_key())
            .col(uuid("tenant_id"))
            .col(json_binary("state"))
            .foreign_key(&mut fk(
                "task_checkpoint_states",
                "checkpoint_id",
                "task_checkpoints",
                Cascade,
            ))
            .take();
        let hitl = with_timestamps(
            tenant_table("hitl_requests")
                .col(uuid("project_id"))
                .col(uuid("task_id"))
                .col(text("question"))
                .col(json_binary("options"))
                .col(json_binary_null("response_schema"))
                .col(string_len("status", 32))
                .col(string_len_null("decision", 32))
                .col(json_binary_null("response"))
                .col(string("requested_by"))
                .col(string_null("resolved_by"))
                .col(timestamp_with_time_zone_null("resolved_at"))
                .col(timestamp_with_time_zone_null("expires_at"))
                .col(string_len("on_expiry", 32))
                .foreign_key(&mut fk("hitl_requests", "project_id", "projects", Cascade))
                .foreign_key(&mut fk("hitl_requests", "task_id", "tasks", Cascade)),
        )
        .take();
        let artifacts = tenant_table("artifacts")
            .col(uuid("project_id"))
            .col(uuid_null("task_id"))
            .col(uuid_null("persona_id"))
            .col(string_len("kind", 32))
            .col(string("name"))
            .col(integer("version"))
            .col(uuid_null("supersedes_id"))
            .col(string_len("sha256", 64))
            .col(big_integer("size"))
            .col(string("created_by"))
            .col(timestamp_with_time_zone("created_at"))
            .foreign_key(&mut fk("artifacts", "project_id", "projects", Cascade))
            .foreign_key(&mut fk("artifacts", "task_id", "tasks", SetNull))
            .foreign_key(&mut fk("artifacts", "persona_id", "personas", SetNull))
            .foreign_key(&mut fk("artifacts", "supersedes_id", "artifacts", SetNull))
            .take();
        let artifact_contents = Table::create()
            .table("artifact_contents")
            .if_not_exists()
            .col(uuid("artifact_id").primary_key())
            .col(uuid("tenant_id"))
            .col(json_binary("content"))
            .foreign_key(&mut fk(
                "artifact_contents",
                "artifact_id",
                "artifacts",
                Cascade,
            ))
            .take();
        let agent_statuses = with_timestamps(
            tenant_table("agent_statuses")
                .col(uuid("project_id"))
                .col(uuid("persona_id"))
                .col(string_len("status", 32))
                .col(uuid_null("current_task_id"))
                .col(text_null("message"))
                .col(timestamp_with_time_zone("last_activity_at"))
                .foreign_key(&mut fk("agent_statuses", "project_id", "projects", Cascade))
                .foreign_key(&mut fk("agent_statuses", "persona_id", "personas", Cascade))
                .foreign_key(&mut fk(
                    "agent_statuses",
                    "current_task_id",
                    "tasks",
                    SetNull,
                )),
        )
        .take();
        let agent_status_history = tenant_table("agent_status_history")
            .col(uuid("agent_status_id"))
            .col(uuid("project_id"))
            .col(uuid("persona_id"))
            .col(string_len("status", 32))
            .col(uuid_null("current_task_id"))
            .col(text_null("message"))
            .col(timestamp_with_time_zone("created_at"))
            .foreign_key(&mut fk(
                "agent_status_history",
                "agent_status_id",
                "agent_statuses",
                Cascade,
            ))
            .take();
        create_all(
            manager,
            vec![
                projects,
                tasks,
                task_dependencies,
                checkpoints,
                checkpoint_states,
                hitl,
                artifacts,
                artifact_contents,
                agent_statuses,
                agent_status_history,
            ],
            vec![
                index("projects", &["tenant_id", "status"]),
                index("projects", &["workflow_id"]),
                index("tasks", &["tenant_id", "project_id"]),
                index("tasks", &["tenant_id", "status"]),
                index("tasks", &["project_id"]),
                index("tasks", &["persona_id"]),
                index("tasks", &["workflow_step_id"]),
                index("task_dependencies", &["depends_on_id"]),
                index("task_dependencies", &["tenant_id"]),
                unique(
                    "task_checkpoints",
                    &["tenant_id", "task_id", "step_key", "version"],
                ),
                index("task_checkpoints", &["task_id"]),
                index("task_checkpoints", &["project_id"]),
                index("task_checkpoints", &["parent_id"]),
                index("hitl_requests", &["tenant_id", "project_id", "status"]),
                index("hitl_requests", &["tenant_id", "status"]),
                index("hitl_requests", &["status", "expires_at"]),
                index("hitl_requests", &["project_id"]),
                index("hitl_requests", &["task_id"]),
                index("artifacts", &["tenant_id", "project_id", "kind"]),
                unique("artifacts", &["tenant_id", "project_id", "name", "version"]),
                index("artifacts", &["project_id"]),
                index("artifacts", &["task_id"]),
                index("artifacts", &["persona_id"]),
                index("artifacts", &["supersedes_id"]),
                index("artifact_contents", &["tenant_id"]),
                index("task_checkpoint_states", &["tenant_id"]),
                unique("agent_statuses", &["tenant_id", "project_id", "persona_id"]),
                index("agent_statuses", &["project_id"]),
                index("agent_statuses", &["persona_id"]),
                index("agent_statuses", &["current_task_id"]),
                index("agent_status_history", &["agent_status_id"]),
                index("agent_status_history", &["tenant_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "agent_status_history",
                "agent_statuses",
                "artifact_contents",
                "artifacts",
                "hitl_requests",
                "task_checkpoint_states",
                "task_checkpoints",
                "task_dependencies",
                "tasks",
                "projects",
            ],
        )
        .await
    }
}
