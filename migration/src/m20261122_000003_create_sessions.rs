//! Sessions and the persona contexts inside them.

use crate::common::{create_all, drop_all, fk, index, tenant_table, unique, with_timestamps};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, SetNull};
        // `current_context_id` has no foreign key: sessions and contexts point
        // at each other, and a cycle of constraints would make either insert
        // order fail. The service keeps the pointer valid.
        let sessions = with_timestamps(
            tenant_table("sessions")
                .col(string("user_id"))
                .col(string_null("name"))
                .col(string_len("status", 32))
                .col(uuid_null("current_context_id"))
                .col(timestamp_with_time_zone("last_activity_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("ended_at")),
        )
        .take();
        let contexts = with_timestamps(
            tenant_table("persona_contexts")
                .col(string("user_id"))
                .col(uuid("session_id"))
                .col(uuid("persona_id"))
                .col(uuid_null("parent_id"))
                .col(json_binary("state"))
                .col(json_binary("history"))
                .col(big_integer("history_total"))
                .col(string_null("active_tool"))
                .col(string_null("active_workflow"))
                .col(timestamp_with_time_zone("last_active_at"))
                .foreign_key(&mut fk(
                    "persona_contexts",
                    "session_id",
                    "sessions",
                    Cascade,
                ))
                .foreign_key(&mut fk(
                    "persona_contexts",
                    "persona_id",
                    "personas",
                    Cascade,
                ))
                .foreign_key(&mut fk(
                    "persona_contexts",
                    "parent_id",
                    "persona_contexts",
                    SetNull,
                )),
        )
        .take();
        create_all(
            manager,
            vec![sessions, contexts],
            vec![
                index("sessions", &["tenant_id", "user_id", "status"]),
                index("sessions", &["tenant_id", "status"]),
                unique(
                    "persona_contexts",
                    &["tenant_id", "user_id", "persona_id", "session_id"],
                ),
                index("persona_contexts", &["session_id"]),
                index("persona_contexts", &["persona_id"]),
                index("persona_contexts", &["parent_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(manager, &["persona_contexts", "sessions"]).await
    }
}
